//! A throwaway PostgreSQL database for tests, shared by the store unit tests
//! (`src/store/tests.rs` includes this file), the end-to-end tests and the store benchmark.
//!
//! [`TestDatabase::start`] gives each caller a fresh, empty database and removes it on drop:
//!
//! * With `ATTENDANT_TEST_DATABASE_URL` set (`postgres://user:password@host/postgres`, a role
//!   allowed to `CREATE DATABASE`), it creates a database with a unique name on that server and
//!   drops it afterwards.
//! * Otherwise it runs a private cluster of Debian's `postgresql` package
//!   (`/usr/lib/postgresql/<version>/bin`): `initdb` into a temporary directory, `postgres`
//!   listening only on a Unix socket in that directory (no TCP port, nothing shared with other
//!   tests or a system cluster), stopped and deleted on drop. `initdb` refuses to run as root,
//!   so under root (CI) both run as the `postgres` system user, which owns the directory.
//!
//! Without either, the test fails and says `apt-get install postgresql`: a PostgreSQL test that
//! skips itself would pass on a machine where the backend was never tried.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::{Connection, Executor, PgConnection};

/// Environment variable naming an existing PostgreSQL server to create test databases on.
pub(crate) const TEST_DATABASE_ENV: &str = "ATTENDANT_TEST_DATABASE_URL";

/// How long a private cluster may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A fresh PostgreSQL database, gone when this is dropped.
pub(crate) struct TestDatabase {
    url: String,
    owner: Owner,
}

enum Owner {
    /// Held for its drop, which stops the cluster.
    Private {
        _cluster: Cluster,
    },
    External {
        admin_url: String,
        name: String,
    },
}

impl TestDatabase {
    /// A fresh database: on `ATTENDANT_TEST_DATABASE_URL`'s server, else on a private cluster.
    pub(crate) async fn start() -> Self {
        match std::env::var(TEST_DATABASE_ENV) {
            Ok(admin_url) if !admin_url.trim().is_empty() => Self::external(admin_url).await,
            _ => Self::private().await,
        }
    }

    /// The URL to give `PostgresStore::open` or `database_url`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    async fn external(admin_url: String) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "attendant_test_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|error| panic!("cannot connect to {TEST_DATABASE_ENV}: {error}"));
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap_or_else(|error| {
                panic!("cannot create a test database on {TEST_DATABASE_ENV}: {error}")
            });
        let _ = admin.close().await;
        let mut url = reqwest::Url::parse(&admin_url)
            .unwrap_or_else(|error| panic!("{TEST_DATABASE_ENV} is not a URL: {error}"));
        url.set_path(&format!("/{name}"));
        Self {
            url: url.to_string(),
            owner: Owner::External { admin_url, name },
        }
    }

    async fn private() -> Self {
        let mut cluster = Cluster::start();
        let url = format!(
            "postgres://postgres@localhost/postgres?host={}",
            cluster.dir.path().display()
        );
        let started = Instant::now();
        loop {
            match PgConnection::connect(&url).await {
                Ok(connection) => {
                    let _ = connection.close().await;
                    break;
                }
                Err(error) => {
                    if started.elapsed() > START_TIMEOUT {
                        panic!(
                            "the test PostgreSQL did not accept connections within {START_TIMEOUT:?}: {error}\n{}",
                            cluster.log()
                        );
                    }
                    cluster.assert_running();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        Self {
            url,
            owner: Owner::Private { _cluster: cluster },
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // A private cluster is stopped by its own drop; an external database is dropped from a
        // thread with its own runtime, since drop cannot await.
        if let Owner::External { admin_url, name } = &self.owner {
            let admin_url = admin_url.clone();
            let statement = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                runtime.block_on(async {
                    let mut admin = PgConnection::connect(&admin_url).await.ok()?;
                    admin.execute(sqlx::AssertSqlSafe(statement)).await.ok()?;
                    admin.close().await.ok()
                })
            })
            .join();
        }
    }
}

/// A private PostgreSQL cluster in a temporary directory.
struct Cluster {
    dir: tempfile::TempDir,
    server: Child,
}

impl Cluster {
    fn start() -> Self {
        let bin = postgres_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("attendant-pg-")
            .tempdir()
            .expect("create a temporary directory for the test PostgreSQL");
        let run_as = if rustix::process::getuid().is_root() {
            let (uid, gid) = postgres_user();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("hand the test PostgreSQL directory to the `postgres` user");
            Some((uid, gid))
        } else {
            None
        };
        let data = dir.path().join("data");
        let initdb = command(run_as, &bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions"])
            .output()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot run `{}` through util-linux's `setpriv`: {error}",
                    bin.join("initdb").display()
                )
            });
        assert!(
            initdb.status.success(),
            "initdb failed ({}):\n{}\n{}",
            initdb.status,
            String::from_utf8_lossy(&initdb.stdout),
            String::from_utf8_lossy(&initdb.stderr)
        );
        let log = std::fs::File::create(dir.path().join("postgres.log"))
            .expect("create the test PostgreSQL log file");
        let server = command(run_as, &bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(dir.path())
            .args(["-p", "5432", "-c", "listen_addresses="])
            // A throwaway cluster: durability only costs time.
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start `{}` through util-linux's `setpriv`: {error}",
                    bin.join("postgres").display()
                )
            });
        Self { dir, server }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    fn assert_running(&mut self) {
        let exited = self.server.try_wait().ok().flatten();
        assert!(
            exited.is_none(),
            "the test PostgreSQL exited ({exited:?}):\n{}",
            self.log()
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SIGINT is PostgreSQL's "fast shutdown": clients are disconnected, no checkpoint wait.
        let pid = rustix::process::Pid::from_child(&self.server);
        if rustix::process::kill_process(pid, rustix::process::Signal::INT).is_err() {
            let _ = self.server.kill();
        }
        let _ = self.server.wait();
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb` and `postgres`.
fn postgres_bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("postgres").is_file())
                .then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL is not installed: the PostgreSQL store tests found no \
             /usr/lib/postgresql/*/bin/initdb\n\nhint: apt-get install postgresql (or set \
             {TEST_DATABASE_ENV} to a server where the tests may create databases)"
        ),
    }
}

/// The uid and gid of the `postgres` system user (the one Debian's package creates).
fn postgres_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            if fields.next()? != "postgres" {
                return None;
            }
            let uid = fields.nth(1)?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            Some((uid, gid))
        })
        .unwrap_or_else(|| {
            panic!(
                "the tests run as root, where initdb refuses to run, and there is no `postgres` \
                 user to run it as\n\nhint: apt-get install postgresql (it creates the user)"
            )
        })
}

/// `program` through util-linux's `setpriv`: as `run_as` (uid, gid) when given, and with
/// SIGINT ("fast shutdown") sent to it when the test thread that started it dies, so a killed
/// test run leaves no server behind.
fn command(run_as: Option<(u32, u32)>, program: &Path) -> Command {
    let mut command = Command::new("setpriv");
    if let Some((uid, gid)) = run_as {
        command
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg("--clear-groups");
    }
    command.args(["--pdeathsig=INT", "--"]).arg(program);
    command
}
