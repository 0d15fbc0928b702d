//! TLS to PostgreSQL, driven the way an operator configures it: `sslmode` and `sslrootcert` in
//! `database_url`, against a private cluster with `ssl = on` listening on `127.0.0.1`. The CA and
//! the server certificate for `localhost` are made at test time with the `openssl` command
//! (Debian's `postgresql` package depends on it through `ssl-cert`), together with a second,
//! unrelated CA for the refusals.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::test_database::ClusterOptions;
use super::*;
use crate::config::Config;

/// A password in every URL below: trust authentication never asks for it, so it only serves to
/// show that no message repeats it.
const PASSWORD: &str = "s3cret-pw";

/// The OpenSSL configuration for the test certificates: a CA that may sign, and a server
/// certificate for `localhost` (webpki reads the subject alternative name, never the CN).
const OPENSSL_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = attendant test
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// Test certificates in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("openssl.cnf"), OPENSSL_CONFIG).unwrap();
        for ca in ["ca", "other-ca"] {
            openssl(
                dir.path(),
                &[
                    "req",
                    "-x509",
                    "-config",
                    "openssl.cnf",
                    "-extensions",
                    "ca",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN=attendant test {ca}"),
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.crt"),
                ],
            );
        }
        openssl(
            dir.path(),
            &[
                "req",
                "-new",
                "-config",
                "openssl.cnf",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        );
        openssl(
            dir.path(),
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-set_serial",
                "2",
                "-days",
                "2",
                "-extfile",
                "openssl.cnf",
                "-extensions",
                "server",
                "-out",
                "server.crt",
            ],
        );
        Self { dir }
    }

    /// The CA that signed the server's certificate.
    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A CA that signed nothing the server has.
    fn other_ca(&self) -> PathBuf {
        self.dir.path().join("other-ca.crt")
    }

    /// A private cluster on `127.0.0.1` with TLS on, serving the `localhost` certificate.
    async fn cluster(&self) -> TestDatabase {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap();
        TestDatabase::private(ClusterOptions {
            tcp: true,
            tls: Some((read("server.crt"), read("server.key"))),
        })
        .await
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run `openssl`: {error}\n\nhint: apt-get install openssl (Debian's \
                 postgresql package brings it in)"
            )
        });
    assert!(
        output.status.success(),
        "openssl {args:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `database`'s URL (`postgres://postgres@localhost:<port>/postgres`) with a password, a host
/// in place of `localhost`, and `query`.
fn url(database: &TestDatabase, host: &str, query: &str) -> String {
    let url = database.url().replacen(
        "postgres://postgres@localhost:",
        &format!("postgres://postgres:{PASSWORD}@{host}:"),
        1,
    );
    assert_ne!(url, database.url(), "the harness URL changed shape");
    format!("{url}?{query}")
}

/// What `attendant-server` prints when its store does not open: the error chain of
/// `open_store` for a configuration whose `ATTENDANT_DATABASE_URL` is `url`.
async fn start_up_error(url: &str) -> String {
    let config = Config::from_sources(
        "",
        Path::new(""),
        [("ATTENDANT_DATABASE_URL".to_owned(), url.to_owned())],
    )
    .unwrap();
    let error = crate::service::open_store(&config)
        .await
        .err()
        .expect("the store opened");
    let chain = format!("{error:#}");
    assert!(!chain.contains(PASSWORD), "{chain}");
    assert!(!format!("{error:?}").contains(PASSWORD), "{error:?}");
    chain
}

/// How many connections `attendant-server` has open, and whether all of them are encrypted.
async fn store_connections(database: &TestDatabase) -> (i64, bool) {
    let mut admin = PgConnection::connect(&url(database, "localhost", "sslmode=disable"))
        .await
        .unwrap();
    let row: (i64, Option<bool>) = sqlx::query_as(
        "SELECT COUNT(*), bool_and(s.ssl AND s.version LIKE 'TLSv1.%')
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
         WHERE a.application_name = 'attendant-server'",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
    (row.0, row.1.unwrap_or(false))
}

#[tokio::test]
async fn postgres_store_runs_over_tls_verified_against_sslrootcert() {
    let pki = Pki::new();
    let database = pki.cluster().await;
    let ca = pki.ca();

    let verified = url(
        &database,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    );
    let store = PostgresStore::open(&verified).await.unwrap();
    created(&store, 1, 0).await;
    let claim = store.claim("w", 0, MINUTE).await.unwrap().unwrap();
    store
        .finish(&claim.request_hash, claim.attempt, "{}", 1, 10_000)
        .await
        .unwrap();
    let job = store.job(&hash(1), 2).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Succeeded);
    let (connections, encrypted) = store_connections(&database).await;
    assert!(connections >= 1, "no store connection seen");
    assert!(encrypted, "a store connection is not encrypted");

    // `verify-ca` checks the chain only, so an address the certificate does not name is fine.
    let by_address = url(
        &database,
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={}", ca.display()),
    );
    let store = PostgresStore::open(&by_address).await.unwrap();
    assert!(store.job(&hash(1), 2).await.unwrap().is_some());
}

#[tokio::test]
async fn postgres_certificate_from_another_ca_or_for_another_host_is_refused() {
    let pki = Pki::new();
    let database = pki.cluster().await;
    let port = database.url().rsplit(':').next().unwrap();
    let port = port.trim_end_matches("/postgres");
    let (ca, other_ca) = (pki.ca(), pki.other_ca());

    let wrong_ca = start_up_error(&url(
        &database,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", other_ca.display()),
    ))
    .await;
    assert_eq!(
        wrong_ca,
        format!(
            "cannot open the job store named by `database_url`: cannot connect to PostgreSQL at \
             `localhost:{port}`, database `postgres`, user `postgres` over TLS (sslmode \
             `verify-full`, sslrootcert `{}`): invalid peer certificate: UnknownIssuer",
            other_ca.display()
        )
    );

    // libpq's rule: `require` with a root certificate verifies the chain.
    let require = start_up_error(&url(
        &database,
        "localhost",
        &format!("sslmode=require&sslrootcert={}", other_ca.display()),
    ))
    .await;
    assert!(
        require.ends_with(&format!(
            "over TLS (sslmode `require`, sslrootcert `{}`, verified as `verify-ca`): invalid \
             peer certificate: UnknownIssuer",
            other_ca.display()
        )),
        "{require}"
    );

    let wrong_host = start_up_error(&url(
        &database,
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    ))
    .await;
    assert!(
        wrong_host.contains(&format!(
            "at `127.0.0.1:{port}`, database `postgres`, user `postgres` over TLS (sslmode \
             `verify-full`, sslrootcert `{}`): invalid peer certificate: certificate not valid \
             for name",
            ca.display()
        )),
        "{wrong_host}"
    );
}

#[tokio::test]
async fn postgres_sslmode_require_against_a_server_without_tls_fails_clearly() {
    let database = TestDatabase::private(ClusterOptions {
        tcp: true,
        tls: None,
    })
    .await;
    let port = database.url().rsplit(':').next().unwrap();
    let port = port.trim_end_matches("/postgres");
    let error = start_up_error(&url(&database, "localhost", "sslmode=require")).await;
    assert_eq!(
        error,
        format!(
            "cannot open the job store named by `database_url`: cannot connect to PostgreSQL at \
             `localhost:{port}`, database `postgres`, user `postgres` over TLS (sslmode \
             `require`): server does not support TLS"
        )
    );
    // The default, `prefer`, falls back to an unencrypted connection.
    let store = PostgresStore::open(&url(&database, "localhost", ""))
        .await
        .unwrap();
    created(&store, 1, 0).await;
    let (connections, encrypted) = store_connections(&database).await;
    assert!(connections >= 1 && !encrypted, "{connections} connections");
}

#[tokio::test]
async fn postgres_missing_or_non_pem_sslrootcert_is_named_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-ca.crt");
    // Nothing listens on port 1: the file is checked before any connection is tried.
    let error = start_up_error(&format!(
        "postgres://attendant:{PASSWORD}@127.0.0.1:1/jobs?sslmode=verify-full&sslrootcert={}",
        missing.display()
    ))
    .await;
    assert_eq!(
        error,
        format!(
            "cannot open the job store named by `database_url`: cannot read the `sslrootcert` \
             file `{}` named by `database_url`: No such file or directory (os error 2)",
            missing.display()
        )
    );

    let key = dir.path().join("server.key");
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let error = start_up_error(&format!(
        "postgres://attendant:{PASSWORD}@127.0.0.1:1/jobs?sslmode=verify-ca&sslrootcert={}",
        key.display()
    ))
    .await;
    assert_eq!(
        error,
        format!(
            "cannot open the job store named by `database_url`: the `sslrootcert` file `{}` \
             holds no PEM certificate (`-----BEGIN CERTIFICATE-----`); expected the CA \
             certificate that signed the PostgreSQL server's certificate",
            key.display()
        )
    );
}
