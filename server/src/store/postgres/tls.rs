//! TLS to PostgreSQL: the `sslmode` and `sslrootcert` of `database_url`, as the PostgreSQL store
//! applies and reports them.
//!
//! sqlx parses both from the URL (or `PGSSLMODE` and `PGSSLROOTCERT`) and does the handshake with
//! rustls (the *ring* provider). With `verify-ca` and `verify-full` it trusts the system's CA
//! store (`/etc/ssl/certs`, through rustls-native-certs) plus the `sslrootcert` certificates.
//! This module adds what an operator coming from libpq expects:
//!
//! * `sslmode=require` together with an `sslrootcert` verifies the certificate chain as
//!   `verify-ca` does. libpq behaves so, and sqlx documents it for `PgSslMode::Require` without
//!   doing it; without this, naming the CA would silently check nothing.
//! * The `sslrootcert` file is read before connecting, so a missing file, or one without a PEM
//!   certificate, is named rather than surfacing from the handshake as a bare "No such file" or
//!   as an unknown issuer.
//! * Messages name the mode and the root certificate, so that a refused certificate reads as a
//!   TLS problem.
//! * [`install_crypto_provider`] gives rustls a process-default provider before the first
//!   connection: sqlx builds its `verify-ca` verifier from that default, and rustls cannot pick
//!   one by itself when, as here, both *ring* (sqlx) and aws-lc-rs (reqwest) are compiled in. It
//!   panics instead, inside the connection attempt.

use std::path::PathBuf;

use sqlx::postgres::{PgConnectOptions, PgSslMode};
use tokio::io::AsyncReadExt;

use crate::store::StoreError;

/// Most bytes of an `sslrootcert` file read to check that it holds a PEM certificate (a whole
/// system CA bundle is about 200 KiB).
const MAX_ROOT_CERT_BYTES: u64 = 1024 * 1024;

/// The URL parameters sqlx reads as `sslrootcert`.
const ROOT_CERT_PARAMETERS: [&str; 3] = ["sslrootcert", "ssl-root-cert", "ssl-ca"];

/// The TLS settings of one `database_url`.
#[derive(Debug, Clone)]
pub(super) struct TlsSettings {
    /// The mode as written (or defaulted).
    written: PgSslMode,
    /// The CA certificates to trust besides the system's, if any.
    root_cert: Option<RootCert>,
}

/// Where `sslrootcert` points.
#[derive(Debug, Clone)]
enum RootCert {
    /// A PEM file.
    File(PathBuf),
    /// PEM text in the parameter itself (sqlx accepts `-----BEGIN CERTIFICATE-----...`).
    Inline,
}

impl TlsSettings {
    /// The settings of `url`, whose parsed form is `options`.
    pub(super) fn of(url: &str, options: &PgConnectOptions) -> Self {
        let written = options.get_ssl_mode();
        let from_url = reqwest::Url::parse(url).ok().and_then(|url| {
            url.query_pairs()
                .filter(|(key, _)| ROOT_CERT_PARAMETERS.contains(&key.as_ref()))
                .map(|(_, value)| value.into_owned())
                .last()
        });
        let root_cert = from_url
            .or_else(|| std::env::var(crate::config::PG_ROOT_CERT_ENV).ok())
            .filter(|value| !value.trim().is_empty())
            .map(|value| {
                // sqlx's own test for inline PEM (`CertificateInput::from`).
                if value.trim_start().starts_with("-----BEGIN") {
                    RootCert::Inline
                } else {
                    RootCert::File(PathBuf::from(value))
                }
            });
        Self { written, root_cert }
    }

    /// The mode the connection uses: `require` with a root certificate verifies like `verify-ca`.
    fn effective(&self) -> PgSslMode {
        match (self.written, &self.root_cert) {
            (PgSslMode::Require, Some(_)) => PgSslMode::VerifyCa,
            (mode, _) => mode,
        }
    }

    /// `options` with the effective mode.
    pub(super) fn apply(&self, options: PgConnectOptions) -> PgConnectOptions {
        options.ssl_mode(self.effective())
    }

    /// Whether the server's certificate is checked against the trusted CAs.
    fn verifies(&self) -> bool {
        matches!(
            self.effective(),
            PgSslMode::VerifyCa | PgSslMode::VerifyFull
        )
    }

    /// Whether a connection may be encrypted at all.
    fn may_use_tls(&self) -> bool {
        !matches!(self.written, PgSslMode::Disable | PgSslMode::Allow)
    }

    /// Fails if the root certificate file that verification will use cannot be read or holds
    /// no PEM certificate.
    pub(super) async fn check_root_cert(&self) -> Result<(), StoreError> {
        let Some(RootCert::File(path)) = &self.root_cert else {
            return Ok(());
        };
        if !self.verifies() {
            return Ok(());
        }
        let unreadable = |source| StoreError::RootCertUnreadable {
            path: path.clone(),
            source,
        };
        let file = tokio::fs::File::open(path).await.map_err(unreadable)?;
        let mut head = Vec::new();
        file.take(MAX_ROOT_CERT_BYTES)
            .read_to_end(&mut head)
            .await
            .map_err(unreadable)?;
        let pem = String::from_utf8_lossy(&head);
        if pem.contains("-----BEGIN CERTIFICATE-----") {
            Ok(())
        } else {
            Err(StoreError::RootCertNotPem { path: path.clone() })
        }
    }

    /// Whether `error`, from connecting with these settings, is a TLS failure: the server
    /// offers no TLS (`sqlx::Error::Tls`), or the handshake failed, which rustls reports
    /// through the socket as an `InvalidData` I/O error carrying its own error.
    pub(super) fn is_tls_failure(&self, error: &sqlx::Error) -> bool {
        match error {
            sqlx::Error::Tls(_) => true,
            sqlx::Error::Io(io) => {
                self.may_use_tls()
                    && io.kind() == std::io::ErrorKind::InvalidData
                    && io.get_ref().is_some()
            }
            _ => false,
        }
    }

    /// For messages: the mode, and the root certificate where it is used.
    pub(super) fn describe(&self) -> String {
        let mut text = format!("sslmode `{}`", mode_name(self.written));
        match &self.root_cert {
            Some(root_cert) if self.verifies() => {
                match root_cert {
                    RootCert::File(path) => {
                        text.push_str(&format!(", sslrootcert `{}`", path.display()));
                    }
                    RootCert::Inline => text.push_str(", sslrootcert inline"),
                }
                if matches!(self.written, PgSslMode::Require) {
                    text.push_str(", verified as `verify-ca`");
                }
            }
            _ => {}
        }
        text
    }
}

/// Installs aws-lc-rs as rustls' process-default crypto provider unless one is installed.
///
/// Only sqlx's `verify-ca` verifier reads the default (its handshakes use *ring*, named
/// explicitly). aws-lc-rs is the provider reqwest falls back to when no default is installed, so
/// installing it leaves the upstream HTTP client exactly as it was.
pub(super) fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Fails only if another thread installed one in the meantime, which serves as well.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

/// libpq's spelling of `mode`.
fn mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn settings(url: &str) -> TlsSettings {
        TlsSettings::of(url, &PgConnectOptions::from_str(url).unwrap())
    }

    #[test]
    fn require_with_a_root_certificate_verifies_like_verify_ca() {
        let tls = settings("postgres://u@db/jobs?sslmode=require&sslrootcert=/etc/ca.pem");
        assert!(matches!(tls.effective(), PgSslMode::VerifyCa));
        assert_eq!(
            tls.describe(),
            "sslmode `require`, sslrootcert `/etc/ca.pem`, verified as `verify-ca`"
        );
        let tls = settings("postgres://u@db/jobs?sslmode=require");
        assert!(matches!(tls.effective(), PgSslMode::Require));
        assert_eq!(tls.describe(), "sslmode `require`");
    }

    #[test]
    fn every_spelling_of_sslrootcert_is_read() {
        for name in ROOT_CERT_PARAMETERS {
            let tls = settings(&format!(
                "postgres://u@db/jobs?sslmode=verify-full&{name}=/etc/ca.pem"
            ));
            assert_eq!(
                tls.describe(),
                "sslmode `verify-full`, sslrootcert `/etc/ca.pem`",
                "{name}"
            );
        }
    }

    #[test]
    fn sslmode_is_case_insensitive_and_named_the_libpq_way() {
        let tls = settings("postgres://u@db/jobs?sslmode=Verify-CA");
        assert!(tls.verifies());
        assert_eq!(tls.describe(), "sslmode `verify-ca`");
    }
}
