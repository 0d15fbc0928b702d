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
//! [`TestDatabase::private`] starts such a cluster with [`ClusterOptions`]: also listening on
//! `127.0.0.1` on a free TCP port (`url` then names `localhost:<port>`), and with TLS on
//! (`ssl = on`) using a certificate and key the test made, for the `sslmode` tests.
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

/// How a private cluster listens besides its Unix socket.
#[derive(Debug, Default)]
pub(crate) struct ClusterOptions {
    /// Also listen on `127.0.0.1` on a free TCP port; [`TestDatabase::url`] then names
    /// `localhost:<port>` (trusted without a password, as the socket is).
    pub(crate) tcp: bool,
    /// Turn TLS on with this server certificate chain and private key (PEM, in that order);
    /// needs `tcp`, since PostgreSQL offers no TLS on a Unix socket.
    pub(crate) tls: Option<(String, String)>,
}

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
            _ => Self::private(ClusterOptions::default()).await,
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

    /// A fresh private cluster (never `ATTENDANT_TEST_DATABASE_URL`'s server: only a private
    /// one can be told to listen on TCP or to offer TLS).
    pub(crate) async fn private(options: ClusterOptions) -> Self {
        let mut cluster = Cluster::start(&options);
        let url = if options.tcp {
            format!("postgres://postgres@localhost:{}/postgres", cluster.port)
        } else {
            format!(
                "postgres://postgres@localhost:{}/postgres?host={}",
                cluster.port,
                cluster.dir.path().display()
            )
        };
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
    /// The TCP port, and the number in the socket's name `.s.PGSQL.<port>`.
    port: u16,
    server: Child,
}

impl Cluster {
    fn start(options: &ClusterOptions) -> Self {
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
        // A throwaway cluster: durability only costs time.
        let mut settings = vec![
            "fsync=off".to_owned(),
            "synchronous_commit=off".to_owned(),
            "full_page_writes=off".to_owned(),
        ];
        let port = if options.tcp {
            settings.push("listen_addresses=127.0.0.1".to_owned());
            free_port()
        } else {
            settings.push("listen_addresses=".to_owned());
            5432
        };
        if let Some((certificate, key)) = &options.tls {
            assert!(
                options.tcp,
                "PostgreSQL offers TLS on TCP only: set `tcp` too"
            );
            let certificate = install(dir.path(), "server.crt", certificate, run_as);
            let key = install(dir.path(), "server.key", key, run_as);
            settings.push("ssl=on".to_owned());
            settings.push(format!("ssl_cert_file={}", certificate.display()));
            settings.push(format!("ssl_key_file={}", key.display()));
        }
        let log = std::fs::File::create(dir.path().join("postgres.log"))
            .expect("create the test PostgreSQL log file");
        let mut server = command(run_as, &bin.join("postgres"));
        server
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(dir.path())
            .arg("-p")
            .arg(port.to_string());
        for setting in settings {
            server.arg("-c").arg(setting);
        }
        let server = server
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
        Self { dir, port, server }
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

/// A TCP port on 127.0.0.1 that was free a moment ago (PostgreSQL binds it itself).
fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .expect("find a free TCP port for the test PostgreSQL")
        .port()
}

/// Writes `contents` to `dir/name`, readable only by the server's user (PostgreSQL refuses a
/// private key that others can read), and returns the path.
fn install(dir: &Path, name: &str, contents: &str, run_as: Option<(u32, u32)>) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;

    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap_or_else(|error| {
        panic!("cannot write `{}`: {error}", path.display());
    });
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .expect("make the test PostgreSQL's TLS files private");
    if let Some((uid, gid)) = run_as {
        std::os::unix::fs::chown(&path, Some(uid), Some(gid))
            .expect("hand the test PostgreSQL's TLS files to the `postgres` user");
    }
    path
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
