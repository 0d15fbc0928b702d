//! Server configuration: a TOML file, `ATTENDANT_*` environment overrides, and defaults.
//!
//! Precedence, highest first: environment variables, the TOML file, the defaults below (the same
//! order as ASU's pydantic settings, <https://github.com/openwrt/asu/blob/main/asu/config.py>). Every top-level key `foo_bar` of the
//! file can be overridden by `ATTENDANT_FOO_BAR`; the value is read as a TOML value when it parses
//! as one (`4`, `true`, `["a", "b"]`) and as a plain string otherwise (`0.0.0.0:8000`, `7d`).
//! Durations are written the humantime way (`30m`, `24h`, `7d`).
//!
//! The job store is the SQLite file `database` unless `database_url` names a PostgreSQL
//! database (`postgres://user:password@host:5432/attendant`); then API nodes (`serve`) and
//! workers (`worker`) on several hosts share it, together with a shared `store_dir`. TLS to
//! PostgreSQL is set in the URL with libpq's parameters: `sslmode` (`disable`, `prefer` (the
//! default), `require`, `verify-ca`, `verify-full`) and `sslrootcert` (a PEM file of CA
//! certificates trusted besides the system's), e.g.
//! `postgres://attendant@db.example/attendant?sslmode=verify-full&sslrootcert=/etc/attendant/db-ca.crt`.
//!
//! The ASU settings that apply keep ASU's names and defaults: `allow_defaults`,
//! `max_custom_rootfs_size_mb`, `max_defaults_length`, `max_pending_jobs`, `build_ttl`,
//! `build_ttl_unversioned`, `build_defaults_ttl`, `build_failure_ttl`, `job_timeout`,
//! `repository_allow_list`, `upstream_url` and `branches` (with ASU's `package_changes` table).
//!
//! The file passes 800 lines with its tests: every setting sits next to its default, its
//! documentation and ASU's default tables, so that the defaults, the docs and `--help` cannot
//! drift apart; the loader itself is short.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod store;

pub use store::{StoreBackend, StoreConfig};

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "ATTENDANT_";

/// Environment variable naming the configuration file (default: none, defaults only).
pub const CONFIG_ENV: &str = "ATTENDANT_CONFIG";

/// The environment variable sqlx reads when `database_url` names no `sslrootcert` (libpq's
/// name; <https://www.postgresql.org/docs/current/libpq-envars.html>).
pub const PG_ROOT_CERT_ENV: &str = "PGSSLROOTCERT";

/// Largest configuration file read, in bytes.
pub const MAX_CONFIG_FILE_LEN: u64 = 1024 * 1024;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file `{path}`")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_CONFIG_FILE_LEN`].
    #[error("configuration file `{path}` is larger than {MAX_CONFIG_FILE_LEN} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The file is not valid TOML.
    #[error("configuration file `{path}` is not valid TOML")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        #[source]
        source: toml::de::Error,
    },
    /// A key has a value of the wrong type, or is unknown.
    #[error("invalid configuration")]
    Invalid(#[source] toml::de::Error),
    /// A value is well-formed but not usable.
    #[error("invalid configuration: `{key}` {rule}")]
    Rule {
        /// The key.
        key: &'static str,
        /// What is wrong.
        rule: String,
    },
}

/// Why a `database_url` was refused. The messages never repeat the URL: it may hold a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DatabaseUrlError {
    /// The value is empty.
    #[error(
        "`database_url` is empty; expected `postgres://user@host/database`, or no `database_url` at all for the SQLite file `database`"
    )]
    Empty,
    /// The value has no `scheme://`.
    #[error("`database_url` is not a URL; expected `postgres://user@host/database`")]
    NotAUrl,
    /// The scheme is not PostgreSQL's.
    #[error(
        "`database_url` has the unsupported scheme `{scheme}`; expected `postgres://` or `postgresql://` (for SQLite, leave `database_url` unset and set `database` to the file)"
    )]
    UnsupportedScheme {
        /// The scheme found.
        scheme: String,
    },
}

/// A PostgreSQL connection URL (`postgres://` or `postgresql://`). Its `Debug` form hides the
/// password, so logging the configuration cannot leak it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL as written, password included: for connecting, not for messages.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with the password (in the user part or a `password=` parameter) replaced by
    /// `***`.
    pub fn redacted(&self) -> String {
        let (scheme, rest) = self.0.split_once("://").unwrap_or(("", &self.0));
        let (before_query, query) = match rest.split_once('?') {
            Some((before, query)) => (before, Some(query)),
            None => (rest, None),
        };
        let (authority, path) = match before_query.find('/') {
            Some(at) => before_query.split_at(at),
            None => (before_query, ""),
        };
        let authority = match authority.rsplit_once('@') {
            Some((user_info, host)) => match user_info.split_once(':') {
                Some((user, _password)) => format!("{user}:***@{host}"),
                None => authority.to_owned(),
            },
            None => authority.to_owned(),
        };
        let mut redacted = format!("{scheme}://{authority}{path}");
        if let Some(query) = query {
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            redacted.push('?');
            redacted.push_str(&pairs.join("&"));
        }
        redacted
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DatabaseUrl")
            .field(&self.redacted())
            .finish()
    }
}

impl TryFrom<String> for DatabaseUrl {
    type Error = DatabaseUrlError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value.trim().is_empty() {
            return Err(DatabaseUrlError::Empty);
        }
        let Some((scheme, _)) = value.split_once("://") else {
            return Err(DatabaseUrlError::NotAUrl);
        };
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return Err(DatabaseUrlError::NotAUrl);
        }
        if scheme.eq_ignore_ascii_case("postgres") || scheme.eq_ignore_ascii_case("postgresql") {
            Ok(Self(value))
        } else {
            Err(DatabaseUrlError::UnsupportedScheme {
                scheme: scheme.to_owned(),
            })
        }
    }
}

impl From<DatabaseUrl> for String {
    fn from(url: DatabaseUrl) -> Self {
        url.0
    }
}

/// Where the ImageBuilders and metadata come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamLocation {
    /// An HTTP(S) mirror of downloads.openwrt.org (base URL without a trailing slash).
    Http(String),
    /// A local directory laid out like downloads.openwrt.org (tests, the demo, air-gapped hosts).
    Directory(PathBuf),
}

/// One release branch (an entry of ASU's `branches` setting).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BranchConfig {
    /// Download path, `releases/{version}` or `snapshots`.
    pub path: String,
    /// Whether the branch is offered at all.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Whether this is the snapshot branch.
    #[serde(default)]
    pub snapshot: bool,
    /// Revision where the branch left master (release branches only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_off_rev: Option<u64>,
    /// Package renames and removals published for upgrade clients (`package_changes` of
    /// `overview.json`).
    #[serde(default)]
    pub package_changes: Vec<PackageChange>,
}

/// A package rename (`source` + `target`), addition (`source` only) or removal (`target` only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageChange {
    /// The package as it was called before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The package as it is called from `revision` on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Revision number of the change.
    pub revision: u64,
    /// Whether clients must apply the change.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mandatory: bool,
}

/// Size limits on requests (each has its own error naming the limit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Limits {
    /// Largest `POST /api/v1/build` body in bytes (413 above it).
    pub max_body_bytes: usize,
    /// Most entries in `packages` or `packages_versions`.
    pub max_packages: usize,
    /// Longest identifier string (version, profile, package name...) in characters.
    pub max_string_length: usize,
    /// Most entries in `repositories` and `repository_keys`.
    pub max_repositories: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 256 * 1024,
            max_packages: 1024,
            max_string_length: 256,
            max_repositories: 16,
        }
    }
}

/// A bearer token of the admin API (`[[admin_tokens]]`): its name (recorded in the audit log as
/// who did what) and the SHA-256 of the token, so the configuration holds no secret. Make one
/// with `head -c 32 /dev/urandom | base64` and `printf %s TOKEN | sha256sum`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AdminToken {
    /// Who holds the token, e.g. `release-bot`.
    pub name: String,
    /// SHA-256 of the token, 64 lowercase hex characters.
    pub sha256: String,
}

impl AdminToken {
    /// A token entry (for tests and programs that build a configuration).
    pub fn new(name: impl Into<String>, sha256: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            sha256: sha256.into(),
        }
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminToken")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The whole configuration. Every field has a default; see the module docs for the sources.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Directory holding the database, the store and the ImageBuilder cache unless those are set.
    pub data_dir: PathBuf,
    /// SQLite database file (default `<data_dir>/attendant.sqlite`); unused with `database_url`.
    pub database: Option<PathBuf>,
    /// PostgreSQL database shared by API nodes and workers on several hosts
    /// (`postgres://user:password@host:5432/attendant`; default: none, the SQLite `database`).
    /// TLS: `?sslmode=verify-full&sslrootcert=/path/ca.crt` (libpq's parameters; `sslmode`
    /// defaults to `prefer`, encrypted only if the server offers it, unverified).
    pub database_url: Option<DatabaseUrl>,
    /// Built images, served at `/store/` (default `<data_dir>/store`); with `[store] backend =
    /// "s3"` only the staging area of uploads and downloads.
    pub store_dir: Option<PathBuf>,
    /// Unpacked ImageBuilders (default `<data_dir>/imagebuilders`).
    pub imagebuilder_dir: Option<PathBuf>,
    /// Private per-job work directories (default `<data_dir>/work`).
    pub work_dir: Option<PathBuf>,
    /// Base URL of the OpenWrt downloads mirror, or a local directory laid out the same way.
    pub upstream_url: String,
    /// Number of in-process build workers `serve` starts (0: none, run `worker` elsewhere).
    pub workers: usize,
    /// Contact shown in `overview.json`.
    pub contact: String,
    /// Whether requests may carry a first-boot `defaults` script.
    pub allow_defaults: bool,
    /// Largest `rootfs_size_mb` accepted.
    pub max_custom_rootfs_size_mb: u64,
    /// Longest `defaults` script in characters.
    pub max_defaults_length: usize,
    /// Queued jobs above which new builds are refused with 529.
    pub max_pending_jobs: u64,
    /// Lifetime of a result built with `packages_versions`.
    #[serde(with = "humantime_serde")]
    pub build_ttl: Duration,
    /// Lifetime of other results.
    #[serde(with = "humantime_serde")]
    pub build_ttl_unversioned: Duration,
    /// Lifetime of a result built with a `defaults` script.
    #[serde(with = "humantime_serde")]
    pub build_defaults_ttl: Duration,
    /// Lifetime of a cached build failure.
    #[serde(with = "humantime_serde")]
    pub build_failure_ttl: Duration,
    /// Wall-clock limit of one ImageBuilder command.
    #[serde(with = "humantime_serde")]
    pub job_timeout: Duration,
    /// How long a claimed job stays leased without a heartbeat before another worker may take it.
    #[serde(with = "humantime_serde")]
    pub job_lease: Duration,
    /// Attempts after which a job that keeps failing for infrastructure reasons fails for good.
    pub max_attempts: u32,
    /// Wait before the first retry of a job that failed for infrastructure reasons (upstream
    /// unreachable, a full disk, a mirror caught mid-sync); doubled per attempt up to 5 minutes.
    #[serde(with = "humantime_serde")]
    pub retry_backoff: Duration,
    /// Lifetime of cached upstream `.versions.json` (other metadata is immutable per version).
    #[serde(with = "humantime_serde")]
    pub metadata_ttl: Duration,
    /// Age after which a store directory without a job is deleted.
    #[serde(with = "humantime_serde")]
    pub orphan_grace: Duration,
    /// Interval of the garbage collector inside `serve`.
    #[serde(with = "humantime_serde")]
    pub gc_interval: Duration,
    /// Time in-flight requests and jobs get to finish on shutdown.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Time a client has to send a request head (request line and headers) whole, counted from
    /// when the server waits for one; also ends keep-alive connections with no next request.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A connection on which no byte moved either way for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Open HTTP connections at most; more are answered `503` with `Retry-After` and closed.
    /// Keep it well below the process's file descriptor limit (`ulimit -n`).
    pub max_connections: usize,
    /// Disk budget of the unpacked ImageBuilder cache in bytes (least recently used evicted).
    pub imagebuilder_cache_bytes: u64,
    /// Largest ImageBuilder archive downloaded, in bytes.
    pub download_limit_bytes: u64,
    /// Most bytes of stdout and of stderr kept per ImageBuilder command.
    pub output_cap_bytes: usize,
    /// usign public key files trusted to sign upstream `sha256sums`.
    pub trusted_keys: Vec<PathBuf>,
    /// usign secret key used to sign built images (none: images are not signed).
    pub signing_key: Option<PathBuf>,
    /// Also append each installable image's signature as a ucert chain in an fwtool signature
    /// block, as ASU does, so that sysupgrade's own signature check finds it; `sha256` and
    /// `sha256_unsigned` then name the image before the block, and `<image>.sig` is kept.
    /// Needs `signing_key` (default: false, the image is left as built).
    pub signature_trailer: bool,
    /// ucert file of the certificates leading from a key routers trust to `signing_key` (ASU's
    /// `key-build.ucert`; `attendant-server keys delegate` writes one), put before the
    /// signature in every trailer (default: none, the trailer holds only the signature, which
    /// routers check against `signing_key`'s public key in `/etc/opkg/keys`).
    pub signing_certificate: Option<PathBuf>,
    /// URL prefixes extra package repositories must match (empty: none allowed): scheme, host
    /// and port exactly, the path by whole segments, and nothing a reader could take two ways
    /// (user info, `..`, encoded dots or slashes; see `attendant_proto::api::repository`).
    pub repository_allow_list: Vec<String>,
    /// Web origins whose pages may call the API from the browser (the firmware selector,
    /// luci-app-attendedsysupgrade in a router's web page): `["*"]` (the default) allows any,
    /// `[]` sends no CORS headers, else `scheme://host[:port]` entries.
    pub cors_allowed_origins: Vec<String>,
    /// Release branches offered.
    pub branches: BTreeMap<String, BranchConfig>,
    /// Request size limits.
    pub limits: Limits,
    /// Release channels: the published tree, the publisher's keys, publication, importer,
    /// mirror push (table `[channels]`, file only).
    pub channels: ChannelsConfig,
    /// simplestreams publication of the channel builds (table `[streams]`, file only).
    pub streams: StreamsConfig,
    /// Where built images are kept: `store_dir` or an S3-compatible object store (table
    /// `[store]`, file only).
    pub store: StoreConfig,
    /// Bearer tokens of the admin API under `/api/v1/admin/` (none: the admin API answers 401
    /// to everyone).
    pub admin_tokens: Vec<AdminToken>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            data_dir: PathBuf::from("./data"),
            database: None,
            database_url: None,
            store_dir: None,
            imagebuilder_dir: None,
            work_dir: None,
            upstream_url: "https://downloads.openwrt.org".to_owned(),
            workers: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            contact: String::new(),
            allow_defaults: false,
            max_custom_rootfs_size_mb: 1024,
            max_defaults_length: 20480,
            max_pending_jobs: 200,
            build_ttl: Duration::from_secs(7 * 24 * 3600),
            build_ttl_unversioned: Duration::from_secs(24 * 3600),
            build_defaults_ttl: Duration::from_secs(30 * 60),
            build_failure_ttl: Duration::from_secs(3600),
            job_timeout: Duration::from_secs(600),
            job_lease: Duration::from_secs(60),
            max_attempts: 5,
            retry_backoff: Duration::from_secs(5),
            metadata_ttl: Duration::from_secs(300),
            orphan_grace: Duration::from_secs(3600),
            gc_interval: Duration::from_secs(300),
            shutdown_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 512,
            imagebuilder_cache_bytes: 20 * 1024 * 1024 * 1024,
            download_limit_bytes: 2 * 1024 * 1024 * 1024,
            output_cap_bytes: 1024 * 1024,
            trusted_keys: Vec::new(),
            signing_key: None,
            signature_trailer: false,
            signing_certificate: None,
            repository_allow_list: Vec::new(),
            cors_allowed_origins: vec!["*".to_owned()],
            branches: default_branches(),
            limits: Limits::default(),
            channels: ChannelsConfig::default(),
            streams: StreamsConfig::default(),
            store: StoreConfig::default(),
            admin_tokens: Vec::new(),
        }
    }
}

impl Config {
    /// Loads the configuration: `path` (if any), then `ATTENDANT_*` variables from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let text = match path {
            Some(path) => read_limited(path)?,
            None => String::new(),
        };
        Self::from_sources(&text, path.unwrap_or(Path::new("")), env)
    }

    /// Parses TOML `text` (named `origin` in errors) and applies `ATTENDANT_*` overrides.
    pub fn from_sources(
        text: &str,
        origin: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|source| ConfigError::Syntax {
                path: origin.to_owned(),
                source,
            })?;
        for (name, value) in env {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            if !OVERRIDABLE_KEYS.contains(&key.as_str()) {
                continue;
            }
            table.insert(key, env_value(&value));
        }
        let config: Config = table.try_into().map_err(ConfigError::Invalid)?;
        config.check()?;
        Ok(config)
    }

    /// The SQLite database file (used when `database_url` is unset).
    pub fn database_path(&self) -> PathBuf {
        self.database
            .clone()
            .unwrap_or_else(|| self.data_dir.join("attendant.sqlite"))
    }

    /// The store root (`/store/` on the wire).
    pub fn store_path(&self) -> PathBuf {
        self.store_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("store"))
    }

    /// The ImageBuilder cache root.
    pub fn imagebuilder_path(&self) -> PathBuf {
        self.imagebuilder_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("imagebuilders"))
    }

    /// The root of the private per-job work directories.
    pub fn work_path(&self) -> PathBuf {
        self.work_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("work"))
    }

    /// The published channel tree (`/channels/` on the wire).
    pub fn channels_path(&self) -> PathBuf {
        self.channels
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("channels"))
    }

    /// The simplestreams mirror root that `serve` refreshes: `streams.dir` or `<data_dir>/streams`.
    pub fn streams_path(&self) -> PathBuf {
        self.streams
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("streams"))
    }

    /// The `server` written into channel images: `channels.public_url`, or `http://<listen>`.
    pub fn public_url(&self) -> String {
        if self.channels.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.channels.public_url.trim_end_matches('/').to_owned()
        }
    }

    /// Where the upstream lives: `http(s)://` URLs are mirrors, anything else a directory
    /// (`file://` prefix optional).
    pub fn upstream(&self) -> UpstreamLocation {
        let url = self.upstream_url.trim_end_matches('/');
        if url.starts_with("http://") || url.starts_with("https://") {
            UpstreamLocation::Http(url.to_owned())
        } else {
            let path = url.strip_prefix("file://").unwrap_or(url);
            UpstreamLocation::Directory(PathBuf::from(path))
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.job_lease < Duration::from_secs(2) {
            return Err(ConfigError::Rule {
                key: "job_lease",
                rule: "must be at least `2s` so that heartbeats can renew it".to_owned(),
            });
        }
        if self.max_attempts == 0 {
            return Err(ConfigError::Rule {
                key: "max_attempts",
                rule: "must be at least 1".to_owned(),
            });
        }
        for (key, value) in [
            ("header_read_timeout", self.header_read_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Rule {
                    key,
                    rule: "must be longer than `0s`".to_owned(),
                });
            }
        }
        if self.max_connections == 0 {
            return Err(ConfigError::Rule {
                key: "max_connections",
                rule: "must be at least 1".to_owned(),
            });
        }
        if self.database.is_some() && self.database_url.is_some() {
            return Err(ConfigError::Rule {
                key: "database",
                rule: "names the SQLite file, but `database_url` selects PostgreSQL; set only one of them".to_owned(),
            });
        }
        if self.signature_trailer && self.signing_key.is_none() {
            return Err(ConfigError::Rule {
                key: "signature_trailer",
                rule: "is on, but no `signing_key` is set to sign the images with".to_owned(),
            });
        }
        if self.signing_certificate.is_some() && !self.signature_trailer {
            return Err(ConfigError::Rule {
                key: "signing_certificate",
                rule: "is set, but `signature_trailer` is off; the certificates go only into \
                       signature trailers"
                    .to_owned(),
            });
        }
        if self.channels.signing_key.is_some() != self.channels.delegation.is_some() {
            return Err(ConfigError::Rule {
                key: "channels",
                rule: "sets one of `signing_key` and `delegation`; the publisher needs both, the \
                       key and the root's certificate for it (`attendant-server keys delegate`)"
                    .to_owned(),
            });
        }
        if self.channels.metadata_expiry < Duration::from_secs(3600) {
            return Err(ConfigError::Rule {
                key: "channels.metadata_expiry",
                rule: "must be at least `1h`, so that routers with a drifting clock still accept \
                       fresh metadata"
                    .to_owned(),
            });
        }
        if self.upstream_url.is_empty() {
            return Err(ConfigError::Rule {
                key: "upstream_url",
                rule: "must name a mirror URL or a directory".to_owned(),
            });
        }
        if let Err((entry, error)) =
            attendant_proto::api::AllowList::parse(&self.repository_allow_list)
        {
            return Err(ConfigError::Rule {
                key: "repository_allow_list",
                rule: format!("has the entry `{entry}`: {error}"),
            });
        }
        for origin in &self.cors_allowed_origins {
            check_origin(origin).map_err(|error| ConfigError::Rule {
                key: "cors_allowed_origins",
                rule: error.to_string(),
            })?;
        }
        if !self.channels.public_url.is_empty()
            && let Err(rule) =
                attendant_proto::channel::field::server_url(&self.channels.public_url)
        {
            return Err(ConfigError::Rule {
                key: "channels.public_url",
                rule: format!(
                    "is `{}`; {rule}",
                    self.channels
                        .public_url
                        .chars()
                        .take(100)
                        .collect::<String>()
                ),
            });
        }
        self.channels.check()?;
        self.streams.check()?;
        self.store.check()?;
        let mut names = std::collections::BTreeSet::new();
        for token in &self.admin_tokens {
            if token.name.is_empty() || token.name.len() > 64 || !names.insert(&token.name) {
                return Err(ConfigError::Rule {
                    key: "admin_tokens",
                    rule: format!(
                        "has the name `{}` empty, longer than 64 bytes or twice; every token needs its own name",
                        token.name
                    ),
                });
            }
            let hex = token.sha256.len() == 64
                && token
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hex {
                return Err(ConfigError::Rule {
                    key: "admin_tokens",
                    rule: format!(
                        "token `{}` has a `sha256` that is not 64 lowercase hex characters; expected the output of `printf %s TOKEN | sha256sum`",
                        token.name
                    ),
                });
            }
        }
        for (name, branch) in &self.branches {
            if branch.path != "snapshots" && !branch.path.contains("{version}") {
                return Err(ConfigError::Rule {
                    key: "branches",
                    rule: format!(
                        "branch `{name}` has path `{}`; expected `snapshots` or a path with `{{version}}`",
                        branch.path
                    ),
                });
            }
        }
        Ok(())
    }
}

/// simplestreams publication (`[streams]`): the channel builds as a stream that stock
/// simplestreams tools (`sstream-mirror`, `sstream-query`) mirror and query; `docs/streams.md` is
/// the operator's guide.
///
/// ```toml
/// [streams]
/// publish = true                       # serve refreshes the stream after each channel publication
/// dir = "/srv/attendant/streams/daily" # the mirror root (default <data_dir>/streams)
/// name = "daily"                       # content id org.openwrt.attendant:daily
/// gpg_key = "streams@example.org"      # also sign with GPG (.sjson, .json.gpg)
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct StreamsConfig {
    /// Whether `serve` refreshes the stream after each channel publication (default: false;
    /// `streams sync` and `streams insert` work either way).
    pub publish: bool,
    /// The stream's mirror root: `streams/v1/…` and `data/…` (default `<data_dir>/streams`).
    pub dir: Option<PathBuf>,
    /// The stream's name: content id `<vendor>:<name>` and the items' `label` (default `daily`).
    pub name: String,
    /// Reverse-domain prefix of content ids and product names (default `org.openwrt.attendant`).
    pub vendor: String,
    /// The channels published (default: every channel that is neither hidden nor a redirect).
    pub channels: Vec<String>,
    /// usign secret key for the `.json.sig` files (default: `[channels] signing_key`, else the
    /// top-level `signing_key`).
    pub signing_key: Option<PathBuf>,
    /// GPG key (id, fingerprint or user id) that also signs `.sjson` and `.json.gpg`, as stock
    /// simplestreams clients verify them (default: none).
    pub gpg_key: Option<String>,
    /// GPG home of `gpg_key` (default: `$GNUPGHOME`, else `$HOME/.gnupg`).
    pub gpg_home: Option<PathBuf>,
}

impl Default for StreamsConfig {
    fn default() -> Self {
        Self {
            publish: false,
            dir: None,
            name: "daily".to_owned(),
            vendor: "org.openwrt.attendant".to_owned(),
            channels: Vec::new(),
            signing_key: None,
            gpg_key: None,
            gpg_home: None,
        }
    }
}

impl StreamsConfig {
    fn check(&self) -> Result<(), ConfigError> {
        let token = |text: &str| {
            !text.is_empty()
                && text.len() <= 64
                && text
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_'))
        };
        if !token(&self.name) {
            return Err(ConfigError::Rule {
                key: "streams.name",
                rule: "must be 1 to 64 of `A-Z a-z 0-9 . - _`".to_owned(),
            });
        }
        if !token(&self.vendor) {
            return Err(ConfigError::Rule {
                key: "streams.vendor",
                rule: "must be 1 to 64 of `A-Z a-z 0-9 . - _`, e.g. `org.openwrt.attendant`"
                    .to_owned(),
            });
        }
        Ok(())
    }
}

/// Release channels (`[channels]`): where the signed tree is published, the publisher's keys,
/// how long metadata stays valid, what `serve` does on its own, and the automatic channels'
/// inputs. `docs/channels.md` is the operator's guide; `docs/channels-trust.md` has the chain of
/// trust and `attendant-server keys --help` the commands that make the key files.
///
/// ```toml
/// [channels]
/// public_url = "https://upgrade.example.org"
/// signing_key = "/etc/attendant/channel-signing.sec"
/// delegation = "/etc/attendant/channel-signing.ucert"
/// revocations = "/etc/attendant/revoked.ucert"
/// metadata_expiry = "7d"
///
/// [[channels.auto]]
/// channel = "stable"
///
/// [[channels.auto.inputs]]          # follow another server's `stable`, checked under its root key
/// name = "upstream-stable"
/// generator = "remote-channel"
/// url = "https://upgrade.example.org"
/// channel = "stable"
/// root_keys = ["/etc/attendant/upgrade.example.org-root.pub"]
///
/// [[channels.auto.inputs]]
/// name = "version"
/// generator = "version"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ChannelsConfig {
    /// The published tree: `channels.json`, the per-device indexes and the image `pool/`
    /// (default `<data_dir>/channels`), served at `/channels/`.
    pub dir: Option<PathBuf>,
    /// The public base URL of this server, written as `server` into the
    /// `/etc/attendant/channel.json` of every channel image, e.g. `https://upgrade.example.org`
    /// (default: empty, `http://<listen>`).
    pub public_url: String,
    /// usign secret key that signs channel metadata (default: none, channels are not published).
    /// Not the top-level `signing_key`, which signs images; the two may be the same file, but a
    /// metadata key that rotates with its delegation is best kept apart.
    pub signing_key: Option<PathBuf>,
    /// ucert file in which the offline root key certifies `signing_key` (`keys delegate`);
    /// required with `signing_key`, published as `/channels/keys/<fingerprint>.ucert`.
    pub delegation: Option<PathBuf>,
    /// ucert revocation list by the root key (`keys revoke`), published as
    /// `/channels/keys/revoked.ucert` (default: none).
    pub revocations: Option<PathBuf>,
    /// How long published metadata stays valid; `serve` re-signs before it runs out, and never
    /// past the delegation's end.
    #[serde(with = "humantime_serde")]
    pub metadata_expiry: Duration,
    /// Metadata expiring within this is signed afresh (`serve` re-publishes in time; default:
    /// two sevenths of `metadata_expiry`, 2 days of 7).
    #[serde(default, with = "humantime_serde::option")]
    pub refresh_margin: Option<Duration>,
    /// How often `serve` settles finished channel builds and publishes changes (0: never).
    #[serde(with = "humantime_serde")]
    pub publish_interval: Duration,
    /// Age after which metadata no published tree references is removed.
    #[serde(with = "humantime_serde")]
    pub orphan_grace: Duration,
    /// `serve` warns when the signing key's delegation ends within this.
    #[serde(with = "humantime_serde")]
    pub delegation_warning: Duration,
    /// How often `serve` runs the importer for the automatic channels (0: never; `channel
    /// import` runs it by hand).
    #[serde(with = "humantime_serde")]
    pub import_interval: Duration,
    /// Time limit of one importer input's network requests.
    #[serde(with = "humantime_serde")]
    pub import_timeout: Duration,
    /// Largest prebuilt image an importer input downloads, in bytes.
    pub import_max_bytes: u64,
    /// Commands run after each publication, e.g. to push the tree to mirrors.
    pub mirror_push: Vec<MirrorPush>,
    /// The automatic channels and their inputs, in order (`[[channels.auto]]`).
    pub auto: Vec<AutoChannel>,
    /// Whether routers may send outcome reports (`/api/v1/report`; `false`: it answers 404 and
    /// auto-halt and auto-advance have nothing to go on).
    pub reports: bool,
    /// Reports kept per channel build: a router new to a build that has this many is not
    /// counted (its answer is still `202`), which bounds the database however many reports
    /// arrive.
    pub max_reports_per_build: u64,
}

impl Default for ChannelsConfig {
    fn default() -> Self {
        Self {
            dir: None,
            public_url: String::new(),
            signing_key: None,
            delegation: None,
            revocations: None,
            metadata_expiry: Duration::from_secs(7 * 24 * 3600),
            refresh_margin: None,
            publish_interval: Duration::from_secs(30),
            orphan_grace: Duration::from_secs(86_400),
            delegation_warning: Duration::from_secs(30 * 86_400),
            import_interval: Duration::ZERO,
            import_timeout: Duration::from_secs(60),
            import_max_bytes: 1 << 30,
            mirror_push: Vec::new(),
            auto: Vec::new(),
            reports: true,
            max_reports_per_build: 100_000,
        }
    }
}

impl ChannelsConfig {
    /// `refresh_margin`, or its default.
    pub fn refresh_margin(&self) -> Duration {
        self.refresh_margin.unwrap_or(self.metadata_expiry * 2 / 7)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.refresh_margin() >= self.metadata_expiry {
            return Err(ConfigError::Rule {
                key: "channels.refresh_margin",
                rule: "must be shorter than `channels.metadata_expiry`, or every publication would re-sign everything".to_owned(),
            });
        }
        for push in &self.mirror_push {
            if push.argv.first().is_none_or(String::is_empty) {
                return Err(ConfigError::Rule {
                    key: "channels.mirror_push",
                    rule: "has an entry whose `argv` names no program".to_owned(),
                });
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for auto in &self.auto {
            if !seen.insert(auto.channel.as_str()) {
                return Err(ConfigError::Rule {
                    key: "channels.auto",
                    rule: format!("lists channel `{}` twice", auto.channel),
                });
            }
            let version = auto
                .inputs
                .iter()
                .any(|input| matches!(input.generator, Generator::Version));
            if !version {
                return Err(ConfigError::Rule {
                    key: "channels.auto",
                    rule: format!(
                        "channel `{}` has no `version` input; every channel image carries {}",
                        auto.channel,
                        attendant_proto::wire::CHANNEL_STAMP_PATH
                    ),
                });
            }
            let unpinned = auto.inputs.iter().find(|input| {
                matches!(&input.generator, Generator::RemoteChannel { root_keys, .. } if root_keys.is_empty())
            });
            if let Some(input) = unpinned {
                return Err(ConfigError::Rule {
                    key: "channels.auto",
                    rule: format!(
                        "channel `{}` input `{}` pins no `root_keys`; a remote channel is believed only under its root key",
                        auto.channel, input.name
                    ),
                });
            }
            let mut names = std::collections::BTreeSet::new();
            for input in &auto.inputs {
                if input.name.is_empty() || !names.insert(input.name.as_str()) {
                    return Err(ConfigError::Rule {
                        key: "channels.auto",
                        rule: format!(
                            "channel `{}` has an input without a name or two inputs named `{}`",
                            auto.channel, input.name
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

/// A command run after each publication (`[[channels.mirror_push]]`): a program and its
/// arguments, started directly, never through a shell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MirrorPush {
    /// The program and its arguments, e.g. `["rsync", "-a", "--delay-updates", "/srv/channels/", "mirror:/srv/channels/"]`.
    pub argv: Vec<String>,
    /// Killed after this long.
    #[serde(default = "default_push_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_push_timeout() -> Duration {
    Duration::from_secs(300)
}

/// An automatic channel (`[[channels.auto]]`): the importer builds a new build for each of its
/// devices whenever one of its inputs changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AutoChannel {
    /// The channel (it must exist and be of kind `auto`).
    pub channel: String,
    /// The inputs in order (`[[channels.auto.inputs]]`).
    pub inputs: Vec<ImportInput>,
}

/// One input of an automatic channel. (No `deny_unknown_fields` here: serde cannot combine it
/// with `flatten`; the generator's own fields deny unknown ones.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImportInput {
    /// The input's name; `name,DEVICE` applies it to that device only and takes the place of an
    /// input `name` for it.
    pub name: String,
    /// The generator and its arguments.
    #[serde(flatten)]
    pub generator: Generator,
}

/// The generators of the importer (`generator = "..."`); `docs/channels.md` describes each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "generator", rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Generator {
    /// The newest release of an OpenWrt branch on the upstream mirror.
    Upstream {
        /// `stable`, `oldstable`, `SNAPSHOT`, or a branch such as `24.10`.
        track: String,
    },
    /// What the channel adds to the stock image.
    Recipe {
        /// Packages added.
        #[serde(default)]
        add: Vec<String>,
        /// Packages removed.
        #[serde(default)]
        remove: Vec<String>,
        /// A uci-defaults script file embedded in the image.
        #[serde(default)]
        defaults: Option<PathBuf>,
        /// Root filesystem size in MB.
        #[serde(default)]
        rootfs_size_mb: Option<u32>,
    },
    /// A prebuilt image downloaded from a URL.
    Http {
        /// The image.
        url: String,
        /// A URL whose one-line body names the image's current version (checked before
        /// downloading anything).
        #[serde(default)]
        monitor: Option<String>,
        /// The image's expected SHA-256.
        #[serde(default)]
        sha256: Option<String>,
        /// `sysupgrade`, `factory`, ... (default `sysupgrade`).
        #[serde(default)]
        image_type: Option<String>,
        /// `squashfs`, `ext4`, ... (default `squashfs`).
        #[serde(default)]
        filesystem: Option<String>,
    },
    /// The latest build of another channel of this server (promotion).
    Channel {
        /// The source channel.
        channel: String,
    },
    /// The latest build of a channel published by another Attendant server: its `channels.json`
    /// and the device's index are believed only when their signatures chain to one of
    /// `root_keys` (delegation window, revocations), they have not expired and their serial has
    /// not gone back; the images are downloaded and checked against the signed index.
    RemoteChannel {
        /// The other server's base URL; its tree is under `<url>/channels/`.
        url: String,
        /// The channel there.
        channel: String,
        /// usign public key files of the other server's offline root key (what its routers
        /// pin); at least one.
        root_keys: Vec<PathBuf>,
    },
    /// The embedded `/etc/attendant/channel.json`; required.
    Version,
}

/// Top-level keys that `ATTENDANT_*` variables may set (tables like `branches` only via the file).
const OVERRIDABLE_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database",
    "database_url",
    "store_dir",
    "imagebuilder_dir",
    "work_dir",
    "upstream_url",
    "workers",
    "contact",
    "allow_defaults",
    "max_custom_rootfs_size_mb",
    "max_defaults_length",
    "max_pending_jobs",
    "build_ttl",
    "build_ttl_unversioned",
    "build_defaults_ttl",
    "build_failure_ttl",
    "job_timeout",
    "job_lease",
    "max_attempts",
    "retry_backoff",
    "metadata_ttl",
    "orphan_grace",
    "gc_interval",
    "shutdown_timeout",
    "header_read_timeout",
    "idle_timeout",
    "max_connections",
    "imagebuilder_cache_bytes",
    "download_limit_bytes",
    "output_cap_bytes",
    "trusted_keys",
    "signing_key",
    "signature_trailer",
    "signing_certificate",
    "repository_allow_list",
    "cors_allowed_origins",
];

fn env_value(raw: &str) -> toml::Value {
    // A value is taken as TOML when it is one (`4`, `true`, `["a"]`); `0.0.0.0:8000`, `7d` and
    // paths are not, and stay strings.
    let wrapped = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&wrapped) {
        Ok(mut table) => table
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

fn read_limited(path: &Path) -> Result<String, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(read_error)?;
    if metadata.len() > MAX_CONFIG_FILE_LEN {
        return Err(ConfigError::TooLarge {
            path: path.to_owned(),
        });
    }
    std::fs::read_to_string(path).map_err(read_error)
}

fn default_true() -> bool {
    true
}

/// ASU's package change table (<https://github.com/openwrt/asu/blob/main/asu/package_changes.py>), in revision order.
fn package_changes() -> Vec<PackageChange> {
    let change = |source: Option<&str>, target: Option<&str>, revision, mandatory| PackageChange {
        source: source.map(str::to_owned),
        target: target.map(str::to_owned),
        revision,
        mandatory,
    };
    vec![
        change(Some("firewall"), Some("firewall4"), 18611, false),
        change(Some("kmod-nft-nat6"), None, 20282, true),
        change(
            Some("libustream-wolfssl"),
            Some("libustream-mbedtls"),
            21994,
            false,
        ),
        change(Some("px5g-wolfssl"), Some("px5g-mbedtls"), 21994, false),
        change(
            Some("wpad-basic-wolfssl"),
            Some("wpad-basic-mbedtls"),
            21994,
            false,
        ),
        change(Some("luci-app-diag-core"), None, 25984, true),
        change(Some("auc"), Some("owut"), 26792, false),
        change(
            Some("luci-app-opkg"),
            Some("luci-app-package-manager"),
            27897,
            false,
        ),
        change(Some("opkg"), Some("apk-mbedtls"), 28056, false),
    ]
}

/// ASU's default branches (<https://github.com/openwrt/asu/blob/main/asu/config.py>): each release branch gets the package changes
/// up to its branch-off revision, SNAPSHOT gets all of them.
fn default_branches() -> BTreeMap<String, BranchConfig> {
    let all = package_changes();
    let release = |branch_off_rev: u64| BranchConfig {
        path: "releases/{version}".to_owned(),
        enabled: true,
        snapshot: false,
        branch_off_rev: Some(branch_off_rev),
        package_changes: all
            .iter()
            .filter(|change| change.revision <= branch_off_rev)
            .cloned()
            .collect(),
    };
    let mut branches = BTreeMap::new();
    branches.insert(
        "SNAPSHOT".to_owned(),
        BranchConfig {
            path: "snapshots".to_owned(),
            enabled: true,
            snapshot: true,
            branch_off_rev: None,
            package_changes: all.clone(),
        },
    );
    for (name, rev) in [
        ("25.12", 32295),
        ("24.10", 27990),
        ("23.05", 23069),
        ("22.03", 19160),
        ("21.02", 15812),
    ] {
        branches.insert(name.to_owned(), release(rev));
    }
    branches
}

/// `serde(with)` helpers for humantime durations (`30m`, `7d`).
mod humantime_serde {
    /// The same for an optional duration.
    pub(super) mod option {
        use std::time::Duration;

        use serde::{Deserializer, Serializer};

        pub(in crate::config) fn serialize<S: Serializer>(
            value: &Option<Duration>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(value) => super::serialize(value, serializer),
                None => serializer.serialize_none(),
            }
        }

        pub(in crate::config) fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Duration>, D::Error> {
            super::deserialize(deserializer).map(Some)
        }
    }

    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*value).to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(|error| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration like `30m`, `24h` or `7d` ({error})"
            ))
        })
    }
}

/// Why a configured origin cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{origin}` is not an origin: expected `*` or `scheme://host[:port]` without a path")]
pub struct InvalidOrigin {
    /// The configured text.
    pub origin: String,
}

/// Checks one configured origin: `*`, or `http(s)://host[:port]` (what browsers send in
/// `Origin`: no path, no trailing slash, no user info).
///
/// ```
/// use attendant_server::config::check_origin;
/// assert!(check_origin("*").is_ok());
/// assert!(check_origin("https://firmware-selector.openwrt.org").is_ok());
/// assert!(check_origin("http://192.168.1.1:8080").is_ok());
/// assert!(check_origin("https://example.org/").is_err());
/// ```
pub fn check_origin(origin: &str) -> Result<(), InvalidOrigin> {
    let invalid = || InvalidOrigin {
        origin: origin.to_owned(),
    };
    if origin == "*" {
        return Ok(());
    }
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(invalid)?;
    let host_ok = !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if host_ok { Ok(()) } else { Err(invalid()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_match_the_issue_and_asu() {
        let config = Config::from_sources("", Path::new(""), []).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(
            config.database_path(),
            PathBuf::from("./data/attendant.sqlite")
        );
        assert_eq!(config.store_path(), PathBuf::from("./data/store"));
        assert_eq!(
            config.upstream(),
            UpstreamLocation::Http("https://downloads.openwrt.org".to_owned())
        );
        assert!(config.workers >= 1);
        assert_eq!(config.build_ttl, Duration::from_secs(7 * 86400));
        assert_eq!(config.build_ttl_unversioned, Duration::from_secs(86400));
        assert_eq!(config.build_defaults_ttl, Duration::from_secs(1800));
        assert_eq!(config.build_failure_ttl, Duration::from_secs(3600));
        assert_eq!(config.job_timeout, Duration::from_secs(600));
        assert_eq!(config.max_pending_jobs, 200);
        assert!(!config.allow_defaults);
        assert_eq!(config.branches.len(), 6);
        assert_eq!(config.cors_allowed_origins, ["*"]);
    }

    #[test]
    fn cors_origins_are_checked_when_loaded() {
        let config = Config::from_sources(
            r#"cors_allowed_origins = ["https://firmware-selector.openwrt.org", "http://[fd00::1]:8080"]"#,
            Path::new("x.toml"),
            [],
        )
        .unwrap();
        assert_eq!(config.cors_allowed_origins.len(), 2);
        for bad in [
            "https://example.org/",
            "example.org",
            "https://a b",
            "https://",
        ] {
            let text = format!("cors_allowed_origins = [{bad:?}]");
            let error = Config::from_sources(&text, Path::new("x.toml"), []).unwrap_err();
            assert!(
                error.to_string().contains("cors_allowed_origins"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn release_branches_get_changes_up_to_their_branch_off() {
        let config = Config::default();
        let changes = &config.branches["24.10"].package_changes;
        assert_eq!(
            changes.last().unwrap().source.as_deref(),
            Some("luci-app-opkg")
        );
        assert!(changes.iter().all(|change| change.revision <= 27990));
        assert_eq!(config.branches["SNAPSHOT"].package_changes.len(), 9);
        assert!(config.branches["21.02"].package_changes.is_empty());
    }

    #[test]
    fn environment_overrides_the_file() {
        let file = "workers = 2\nallow_defaults = false\nbuild_ttl = \"1h\"\n";
        let config = Config::from_sources(
            file,
            Path::new("a.toml"),
            env(&[
                ("ATTENDANT_WORKERS", "7"),
                ("ATTENDANT_ALLOW_DEFAULTS", "true"),
                ("ATTENDANT_LISTEN", "0.0.0.0:9000"),
                ("ATTENDANT_BUILD_TTL", "2d"),
                (
                    "ATTENDANT_REPOSITORY_ALLOW_LIST",
                    "[\"https://feed.example/\"]",
                ),
                ("ATTENDANT_UNKNOWN_THING", "x"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(config.workers, 7);
        assert!(config.allow_defaults);
        assert_eq!(config.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(config.build_ttl, Duration::from_secs(2 * 86400));
        assert_eq!(config.repository_allow_list, ["https://feed.example/"]);
    }

    #[test]
    fn directory_upstream_is_recognised() {
        let config =
            Config::from_sources("upstream_url = \"file:///srv/mirror/\"", Path::new(""), [])
                .unwrap();
        assert_eq!(
            config.upstream(),
            UpstreamLocation::Directory(PathBuf::from("/srv/mirror"))
        );
    }

    #[test]
    fn rejects_unknown_keys_and_bad_durations() {
        let error = Config::from_sources("wrokers = 3", Path::new(""), []).unwrap_err();
        assert!(
            error.to_string().starts_with("invalid configuration"),
            "{error}"
        );
        let error = Config::from_sources("job_timeout = \"soon\"", Path::new(""), []).unwrap_err();
        let chain = format!("{error}: {}", std::error::Error::source(&error).unwrap());
        assert!(chain.contains("`soon` is not a duration"), "{chain}");
    }

    #[test]
    fn reads_channels_and_admin_tokens() {
        let hash = "ab".repeat(32);
        let text = format!(
            "[channels]\ndir = \"/srv/channels\"\npublic_url = \"https://up.example.org/\"\n\n[[admin_tokens]]\nname = \"ops\"\nsha256 = \"{hash}\"\n"
        );
        let config = Config::from_sources(&text, Path::new("t.toml"), env(&[])).unwrap();
        assert_eq!(config.channels_path(), PathBuf::from("/srv/channels"));
        assert_eq!(config.public_url(), "https://up.example.org");
        assert_eq!(config.admin_tokens, vec![AdminToken::new("ops", hash)]);
        assert!(
            !format!("{config:?}").contains("abab"),
            "token hashes stay out of logs"
        );
        let bad = "[[admin_tokens]]\nname = \"ops\"\nsha256 = \"ABC\"\n";
        let error = Config::from_sources(bad, Path::new("t.toml"), env(&[])).unwrap_err();
        assert!(error.to_string().contains("`admin_tokens`"), "{error}");
        let bad = "[channels]\npublic_url = \"upgrade.example.org\"\n";
        let error = Config::from_sources(bad, Path::new("t.toml"), env(&[])).unwrap_err();
        assert!(
            error.to_string().contains("`channels.public_url`"),
            "{error}"
        );
        let default = Config::default();
        assert_eq!(default.channels_path(), PathBuf::from("./data/channels"));
        assert_eq!(default.public_url(), "http://127.0.0.1:8000");
    }

    #[test]
    fn rejects_branch_path_without_version() {
        let file = "[branches.\"99.01\"]\npath = \"releases/99.01\"\n";
        let error = Config::from_sources(file, Path::new(""), []).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid configuration: `branches` branch `99.01` has path `releases/99.01`; expected `snapshots` or a path with `{version}`"
        );
    }

    #[test]
    fn postgres_url_selects_postgres_and_hides_its_password() {
        for scheme in ["postgres", "postgresql", "PostgreSQL"] {
            let url = format!("{scheme}://attendant:s3cret@db.example:5432/attendant");
            let config = Config::from_sources(
                "",
                Path::new(""),
                env(&[("ATTENDANT_DATABASE_URL", url.as_str())]),
            )
            .unwrap();
            let parsed = config.database_url.as_ref().unwrap();
            assert_eq!(parsed.expose(), url);
            assert_eq!(
                parsed.redacted(),
                format!("{scheme}://attendant:***@db.example:5432/attendant")
            );
            assert!(!format!("{config:?}").contains("s3cret"));
        }
        let url = DatabaseUrl::try_from(
            "postgres://u@h/d?sslmode=disable&password=s3cret&host=/run/pg".to_owned(),
        )
        .unwrap();
        assert_eq!(
            url.redacted(),
            "postgres://u@h/d?sslmode=disable&password=***&host=/run/pg"
        );
    }

    #[test]
    fn no_database_url_keeps_the_sqlite_file() {
        let config =
            Config::from_sources("database = \"/srv/jobs.sqlite\"", Path::new(""), []).unwrap();
        assert_eq!(config.database_url, None);
        assert_eq!(config.database_path(), PathBuf::from("/srv/jobs.sqlite"));
    }

    #[test]
    fn rejects_other_database_schemes_without_printing_the_url() {
        let file = "database_url = \"mysql://root:s3cret@db/attendant\"";
        let error = Config::from_sources(file, Path::new("a.toml"), []).unwrap_err();
        let chain = format!("{error}: {}", std::error::Error::source(&error).unwrap());
        assert!(
            chain.contains(
                "has the unsupported scheme `mysql`; expected `postgres://` or `postgresql://`"
            ),
            "{chain}"
        );
        assert!(!chain.contains("s3cret"), "{chain}");
        for (value, rule) in [
            ("", "is empty"),
            ("db.example:5432", "is not a URL"),
            ("sqlite://jobs.sqlite", "unsupported scheme `sqlite`"),
        ] {
            let error =
                Config::from_sources("", Path::new(""), env(&[("ATTENDANT_DATABASE_URL", value)]))
                    .unwrap_err();
            let chain = format!("{error}: {}", std::error::Error::source(&error).unwrap());
            assert!(chain.contains(rule), "{value}: {chain}");
        }
    }

    #[test]
    fn channel_settings_have_defaults_and_auto_channels_parse() {
        let config = Config::from_sources("", Path::new(""), []).unwrap();
        assert_eq!(config.channels_path(), PathBuf::from("./data/channels"));
        assert_eq!(
            config.channels.metadata_expiry,
            Duration::from_secs(7 * 86_400)
        );
        let file = r#"
[channels]
dir = "/srv/channels"
import_interval = "1h"

[[channels.mirror_push]]
argv = ["rsync", "-a", "/srv/channels/", "mirror:/srv/channels/"]
timeout = "2m"

[[channels.auto]]
channel = "stable"

[[channels.auto.inputs]]
name = "openwrt"
generator = "upstream"
track = "stable"

[[channels.auto.inputs]]
name = "image,x86/64/generic"
generator = "http"
url = "https://example.org/x86.img.gz"
monitor = "https://example.org/x86.version"

[[channels.auto.inputs]]
name = "version"
generator = "version"
"#;
        let config = Config::from_sources(file, Path::new(""), []).unwrap();
        assert_eq!(config.channels_path(), PathBuf::from("/srv/channels"));
        assert_eq!(
            config.channels.mirror_push[0].timeout,
            Duration::from_secs(120)
        );
        let auto = &config.channels.auto[0];
        assert_eq!(auto.channel, "stable");
        assert_eq!(
            auto.inputs[0].generator,
            Generator::Upstream {
                track: "stable".to_owned()
            }
        );
        assert!(matches!(auto.inputs[1].generator, Generator::Http { .. }));
    }

    #[test]
    fn rejects_an_auto_channel_without_version_input() {
        let file = "[[channels.auto]]\nchannel = \"stable\"\n[[channels.auto.inputs]]\nname = \"openwrt\"\ngenerator = \"upstream\"\ntrack = \"stable\"\n";
        let error = Config::from_sources(file, Path::new(""), []).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid configuration: `channels.auto` channel `stable` has no `version` input; every channel image carries /etc/attendant/channel.json"
        );
        let file = "[[channels.auto]]\nchannel = \"stable\"\n[[channels.auto.inputs]]\nname = \"openwrt\"\ngenerator = \"upstream\"\ntrack = \"stable\"\nbranch = \"x\"\n";
        let error = Config::from_sources(file, Path::new(""), []).unwrap_err();
        let chain = format!("{error}: {}", std::error::Error::source(&error).unwrap());
        assert!(chain.contains("unknown field `branch`"), "{chain}");
        let file = "[channels]\nmetadata_expiry = \"1d\"\nrefresh_margin = \"2d\"\n";
        let error = Config::from_sources(file, Path::new(""), []).unwrap_err();
        assert!(
            error.to_string().contains("must be shorter than"),
            "{error}"
        );
    }

    #[test]
    fn a_remote_channel_input_needs_a_pinned_root_key() {
        let input = |keys: &str| {
            format!(
                "[[channels.auto]]\nchannel = \"stable\"\n[[channels.auto.inputs]]\nname = \"upstream-stable\"\n\
                 generator = \"remote-channel\"\nurl = \"https://upgrade.example.org\"\nchannel = \"stable\"\n\
                 root_keys = [{keys}]\n[[channels.auto.inputs]]\nname = \"version\"\ngenerator = \"version\"\n"
            )
        };
        let config = Config::from_sources(
            &input("\"/etc/attendant/remote-root.pub\""),
            Path::new(""),
            [],
        )
        .unwrap();
        assert_eq!(
            config.channels.auto[0].inputs[0].generator,
            Generator::RemoteChannel {
                url: "https://upgrade.example.org".to_owned(),
                channel: "stable".to_owned(),
                root_keys: vec![PathBuf::from("/etc/attendant/remote-root.pub")],
            }
        );
        let error = Config::from_sources(&input(""), Path::new(""), []).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid configuration: `channels.auto` channel `stable` input `upstream-stable` pins no `root_keys`; a remote channel is believed only under its root key"
        );
    }

    #[test]
    fn rejects_database_file_together_with_database_url() {
        let file = "database = \"jobs.sqlite\"\ndatabase_url = \"postgres://db/attendant\"\n";
        let error = Config::from_sources(file, Path::new(""), []).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid configuration: `database` names the SQLite file, but `database_url` selects PostgreSQL; set only one of them"
        );
    }

    #[test]
    fn channels_table_reads_keys_and_needs_both_files() {
        let file = "[channels]\nsigning_key = \"s.sec\"\ndelegation = \"s.ucert\"\nmetadata_expiry = \"2d\"\n";
        let config = Config::from_sources(file, Path::new(""), []).unwrap();
        assert_eq!(config.channels.signing_key, Some(PathBuf::from("s.sec")));
        assert_eq!(config.channels.delegation, Some(PathBuf::from("s.ucert")));
        assert_eq!(config.channels.revocations, None);
        assert_eq!(
            config.channels.metadata_expiry,
            Duration::from_secs(2 * 86_400)
        );
        assert_eq!(
            Config::default().channels.metadata_expiry,
            Duration::from_secs(7 * 86_400)
        );
        let error =
            Config::from_sources("[channels]\nsigning_key = \"s.sec\"\n", Path::new(""), [])
                .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("`channels` sets one of `signing_key` and `delegation`"),
            "{error}"
        );
        let error =
            Config::from_sources("[channels]\nmetadata_expiry = \"10m\"\n", Path::new(""), [])
                .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("`channels.metadata_expiry` must be at least `1h`"),
            "{error}"
        );
    }
}
