//! The `[store]` table: where built images are kept — the local `store_dir` (the default) or an
//! S3-compatible object store (AWS S3, Cloudflare R2, MinIO, Ceph RGW, Garage).
//!
//! ```toml
//! [store]
//! backend = "s3"
//! bucket = "attendant-images"
//! endpoint = "https://s3.example.net"     # omit for AWS S3
//! region = "eu-central-1"
//! prefix = "store/"                        # keys are `<prefix><request_hash>/<file>`
//! credentials_file = "/etc/attendant/s3.toml"
//! public_url = "https://cdn.example.net/store"   # `/store/` answers 302 there
//! ```
//!
//! The credentials never sit in this file: they come from the environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optionally `AWS_SESSION_TOKEN`) or from
//! `credentials_file`, a small TOML file of its own (`access_key_id`, `secret_access_key`) that
//! can be readable by the server's user alone. Nothing prints them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Longest `prefix`, in bytes.
const MAX_PREFIX_LEN: usize = 256;

/// Which backend keeps the built images.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum StoreBackend {
    /// A directory on local disk (`store_dir`).
    #[default]
    Local,
    /// An S3-compatible object store.
    S3,
}

/// The `[store]` table (file only; see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct StoreConfig {
    /// `local` (default) or `s3`.
    pub backend: StoreBackend,
    /// The bucket (`s3` only).
    pub bucket: String,
    /// Base URL of an S3-compatible service other than AWS (R2, MinIO, Ceph RGW, Garage);
    /// empty: AWS S3 of `region`. Buckets are addressed path-style under it.
    pub endpoint: String,
    /// The region (default `us-east-1`; most other services accept any value).
    pub region: String,
    /// Prepended to every key: `<prefix><request_hash>/<file>` (default empty, the bucket's
    /// top level). Plain names separated by `/`, ending with `/`.
    pub prefix: String,
    /// TOML file with `access_key_id` and `secret_access_key` (default: none, the
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` environment variables).
    pub credentials_file: Option<PathBuf>,
    /// Base URL of the bucket's public face (a CDN): `/store/<request_hash>/<file>` then
    /// answers `302 Found` to `<public_url>/<request_hash>/<file>` (the prefix is the CDN's
    /// business) instead of streaming from the bucket (default: none, stream).
    pub public_url: String,
    /// Allow a plain `http://` endpoint (default: false, `https://` only). For a store on the
    /// same host or in tests; credentials then cross the wire unencrypted.
    pub allow_http: bool,
}

impl StoreConfig {
    /// The region to sign requests for.
    pub fn region_or_default(&self) -> &str {
        if self.region.is_empty() {
            "us-east-1"
        } else {
            &self.region
        }
    }

    /// The prefix as `/`-separated plain names (empty for the top level).
    pub fn prefix_components(&self) -> Vec<&str> {
        self.prefix
            .split('/')
            .filter(|part| !part.is_empty())
            .collect()
    }

    /// One line for `check-config`: the backend and where it points, never a credential.
    pub fn describe(&self, store_dir: &std::path::Path) -> String {
        match self.backend {
            StoreBackend::Local => format!("local directory {}", store_dir.display()),
            StoreBackend::S3 => {
                let endpoint = if self.endpoint.is_empty() {
                    format!("AWS {}", self.region_or_default())
                } else {
                    self.endpoint.clone()
                };
                let credentials = match &self.credentials_file {
                    Some(path) => format!("credentials from {}", path.display()),
                    None => "credentials from the environment".to_owned(),
                };
                let serving = if self.public_url.is_empty() {
                    "streamed from the bucket".to_owned()
                } else {
                    format!("302 to {}", self.public_url)
                };
                format!(
                    "s3 bucket `{}` prefix `{}` at {endpoint}, {credentials}, {serving} (staging in {})",
                    self.bucket,
                    self.prefix,
                    store_dir.display()
                )
            }
        }
    }

    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let rule = |key: &'static str, rule: String| Err(ConfigError::Rule { key, rule });
        if self.backend == StoreBackend::Local {
            let set = [
                ("store.bucket", !self.bucket.is_empty()),
                ("store.endpoint", !self.endpoint.is_empty()),
                ("store.prefix", !self.prefix.is_empty()),
                ("store.credentials_file", self.credentials_file.is_some()),
                ("store.public_url", !self.public_url.is_empty()),
            ];
            if let Some((key, _)) = set.iter().find(|(_, set)| *set) {
                return rule(
                    key,
                    "is set, but `store.backend` is `local`; set `backend = \"s3\"` to use an object store, or remove the key".to_owned(),
                );
            }
            return Ok(());
        }
        if !valid_bucket(&self.bucket) {
            return rule(
                "store.bucket",
                format!(
                    "is `{}`; expected an S3 bucket name: 3 to 63 lowercase letters, digits, `.` and `-`, starting and ending with a letter or digit",
                    excerpt(&self.bucket)
                ),
            );
        }
        if !self.endpoint.is_empty() {
            check_url("store.endpoint", &self.endpoint, self.allow_http)?;
        }
        if !self.public_url.is_empty() {
            check_url("store.public_url", &self.public_url, true)?;
        }
        let plain =
            |part: &str| !part.starts_with('.') && !part.contains(['\\', '\0', '%', '?', '#', '*']);
        let well_formed = self.prefix.len() <= MAX_PREFIX_LEN
            && (self.prefix.is_empty()
                || (self.prefix.ends_with('/')
                    && !self.prefix.starts_with('/')
                    && self
                        .prefix
                        .trim_end_matches('/')
                        .split('/')
                        .all(|part| !part.is_empty() && plain(part))));
        if !well_formed {
            return rule(
                "store.prefix",
                format!(
                    "is `{}`; expected plain names separated by `/` and ending with `/` (like `store/`), at most {MAX_PREFIX_LEN} bytes, or empty",
                    excerpt(&self.prefix)
                ),
            );
        }
        Ok(())
    }
}

/// AWS's bucket naming rules (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html>),
/// which the other services follow.
fn valid_bucket(name: &str) -> bool {
    let edge =
        |byte: Option<&u8>| byte.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && edge(name.as_bytes().first())
        && edge(name.as_bytes().last())
        && !name.contains("..")
}

fn check_url(key: &'static str, url: &str, allow_http: bool) -> Result<(), ConfigError> {
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(rest) = url.strip_prefix("http://") {
        if !allow_http {
            return Err(ConfigError::Rule {
                key,
                rule: format!(
                    "is `{}`, a plain `http://` URL; use `https://`, or set `store.allow_http = true` for a store on this host",
                    excerpt(url)
                ),
            });
        }
        rest
    } else {
        ""
    };
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.contains('@') || url.contains(['?', '#', ' ']) || url.len() > 512 {
        return Err(ConfigError::Rule {
            key,
            rule: format!(
                "is `{}`; expected `https://host[:port][/path]` without user, query or fragment",
                excerpt(url)
            ),
        });
    }
    Ok(())
}

fn excerpt(text: &str) -> String {
    text.chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(bucket: &str) -> StoreConfig {
        StoreConfig {
            backend: StoreBackend::S3,
            bucket: bucket.to_owned(),
            ..StoreConfig::default()
        }
    }

    fn rule_of(config: &StoreConfig) -> String {
        config.check().unwrap_err().to_string()
    }

    #[test]
    fn accepts_a_complete_s3_table() {
        let config = StoreConfig {
            endpoint: "http://127.0.0.1:9000".to_owned(),
            allow_http: true,
            prefix: "attendant/store/".to_owned(),
            public_url: "https://cdn.example.net/store".to_owned(),
            ..s3("attendant-images")
        };
        config.check().unwrap();
        assert_eq!(config.prefix_components(), ["attendant", "store"]);
        assert_eq!(config.region_or_default(), "us-east-1");
        StoreConfig::default().check().unwrap();
    }

    #[test]
    fn rejects_bad_s3_settings_naming_the_key() {
        assert_eq!(
            rule_of(&s3("Bad_Bucket")),
            "invalid configuration: `store.bucket` is `Bad_Bucket`; expected an S3 bucket name: 3 to 63 lowercase letters, digits, `.` and `-`, starting and ending with a letter or digit"
        );
        assert!(rule_of(&s3("")).contains("`store.bucket`"));
        let plain_http = StoreConfig {
            endpoint: "http://minio:9000".to_owned(),
            ..s3("images")
        };
        assert!(rule_of(&plain_http).contains("set `store.allow_http = true`"));
        for prefix in ["store", "/store/", "a/../b/", "a//b/", ".hidden/"] {
            let config = StoreConfig {
                prefix: prefix.to_owned(),
                ..s3("images")
            };
            assert!(rule_of(&config).contains("`store.prefix`"), "{prefix}");
        }
        let with_user = StoreConfig {
            public_url: "https://user:pw@cdn.example.net".to_owned(),
            ..s3("images")
        };
        assert!(rule_of(&with_user).contains("`store.public_url`"));
        let local_with_bucket = StoreConfig {
            bucket: "images".to_owned(),
            ..StoreConfig::default()
        };
        assert!(rule_of(&local_with_bucket).contains("`store.backend` is `local`"));
    }
}
