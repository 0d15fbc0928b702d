//! Settings from UCI `/etc/config/attendedsysupgrade`, overridden by the command line.
//!
//! The file is shared with LuCI's attended-sysupgrade app and owut
//! (<https://github.com/openwrt/packages/tree/master/utils/attendedsysupgrade-common>,
//! <https://github.com/efahl/owut>):
//!
//! ```text
//! config server 'server'
//!     option url 'https://sysupgrade.openwrt.org'   # the first `server` section's url
//!
//! config owut 'owut'                  # owut's defaults; read so a user switching keeps them
//!     option poll_interval '5000'
//!
//! config attendant 'attendant'        # Attendant's own defaults; win over `owut`
//!     option keep_settings '1'
//!     option require_signature '1'
//!     option keys_dir '/etc/opkg/keys'
//!     list ignored_defaults 'kmod-usb3'
//!     option timeout '60'             # seconds a read may wait for the server
//!     option metadata_timeout '30'    # seconds a whole JSON answer may take
//!     option min_download_rate '1024' # bytes/s an image download must keep up (0: no floor)
//!     option min_download_rate_window '30'  # seconds the rate is averaged over
//!     option download_reserve '2048'  # KiB left free beside the image
//!     option channel 'stable'         # follow a release channel (absent: newest release)
//!     option report '1'               # report channel upgrades' outcomes (0: never)
//! ```
//!
//! Option names are owut's where they mean the same (the long option with `-` → `_`:
//! `fstype`, `rootfs_size`, `image`, `init_script`, `pre_install`, `poll_interval`, `add`,
//! `remove`, `ignored_defaults`, `ignored_changes`); list options may be a UCI `list` or one
//! string separated by commas or spaces. Attendant adds `keep_settings`, `require_signature`,
//! `keys_dir`, `ca_file`, `timeout`, `metadata_timeout`, `min_download_rate`,
//! `min_download_rate_window`, `download_reserve`, `channel` and `report`. Values given on the command line override
//! all of these.

use std::path::{Path, PathBuf};

use attendant_proto::uci::{self, Config, Section, UciError};
use attendant_proto::wire;

/// Default image path (owut's).
pub const DEFAULT_IMAGE_PATH: &str = wire::RPCD_FIRMWARE_PATH;

/// Default build-status poll interval, in milliseconds (owut's).
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 2000;

/// Shortest poll interval accepted, in milliseconds.
pub const MIN_POLL_INTERVAL_MS: u64 = 500;

/// Default time one read may wait for the server, in seconds.
pub const DEFAULT_TIMEOUT_S: u64 = 60;

/// Longest `timeout` accepted, in seconds: beyond an hour a stalled server is not worth waiting
/// for.
pub const MAX_TIMEOUT_S: u64 = 3600;

/// Default deadline for a whole metadata answer (overview, versions, package indexes, build
/// status), in seconds: the biggest document, a package index of a few MiB, takes a few seconds
/// on a slow link; a server dripping bytes is abandoned here instead of after minutes.
pub const DEFAULT_METADATA_TIMEOUT_S: u64 = 30;

/// Default floor of an image download's rate, in bytes per second (1 KiB/s): below it a 10 MiB
/// image would take hours.
pub const DEFAULT_MIN_DOWNLOAD_RATE: u64 = 1024;

/// Default window the download rate is measured over, in seconds: long enough for a link that
/// pauses, short enough that a dripping server is noticed within a minute.
pub const DEFAULT_MIN_DOWNLOAD_RATE_WINDOW_S: u64 = 30;

/// Default space left free beside a downloaded image, in KiB (2 MiB): on a router `/tmp` is RAM,
/// which sysupgrade and every running service still need.
pub const DEFAULT_DOWNLOAD_RESERVE_KIB: u64 = 2048;

/// Settings after reading the UCI file, before the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// The upgrade server's base URL, no trailing `/`.
    pub server: String,
    /// Extra servers that rebuild the same request to cross-check it.
    pub rebuilders: Vec<String>,
    /// Keep the configuration over the upgrade (no `sysupgrade -n`).
    pub keep_settings: bool,
    /// Refuse images without a valid signature.
    pub require_signature: bool,
    /// Directory of trusted usign keys, relative to the root.
    pub keys_dir: PathBuf,
    /// CA bundle, when not the default.
    pub ca_file: Option<PathBuf>,
    /// Where images are written.
    pub image: PathBuf,
    /// Build-status poll interval in milliseconds.
    pub poll_interval_ms: u64,
    /// How long one read may wait for the server, in seconds: a download that stalls longer is
    /// resumed with a new request.
    pub timeout_s: u64,
    /// How long a whole metadata answer may take, retries included, in seconds.
    pub metadata_timeout_s: u64,
    /// Slowest image download accepted, in bytes per second over
    /// [`min_download_rate_window_s`](Self::min_download_rate_window_s); 0 accepts any rate.
    pub min_download_rate: u64,
    /// The window of [`min_download_rate`](Self::min_download_rate), in seconds.
    pub min_download_rate_window_s: u64,
    /// Space an image download leaves free in its directory, in KiB.
    pub download_reserve_kib: u64,
    /// Root filesystem type to request.
    pub fstype: Option<String>,
    /// Root filesystem size in MB to request.
    pub rootfs_size: Option<u32>,
    /// uci-defaults script to embed.
    pub init_script: Option<PathBuf>,
    /// Hook run before sysupgrade.
    pub pre_install: Option<PathBuf>,
    /// Packages to add.
    pub add: Vec<String>,
    /// Packages to remove.
    pub remove: Vec<String>,
    /// Default packages removed on purpose.
    pub ignored_defaults: Vec<String>,
    /// `package_changes` entries to skip.
    pub ignored_changes: Vec<String>,
    /// The release channel followed (`option channel`); `None`: the newest release of the
    /// branch from the build API.
    pub channel: Option<String>,
    /// Send outcome reports after channel upgrades (`option report`, default on).
    pub report: bool,
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file could not be written.
    #[error("cannot write `{path}`: {source}")]
    Write {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid UCI.
    #[error("`{path}` {source}")]
    Uci {
        /// The path.
        path: PathBuf,
        /// The parser's error.
        source: UciError,
    },
    /// An option has a value of the wrong kind.
    #[error("`{path}`: option `{section}.{option}` is `{value}`, expected {expected}")]
    Value {
        /// The path.
        path: PathBuf,
        /// The section name or type.
        section: String,
        /// The option.
        option: &'static str,
        /// The value found.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            server: wire::DEFAULT_SERVER_URL.to_owned(),
            rebuilders: Vec::new(),
            keep_settings: true,
            require_signature: false,
            keys_dir: PathBuf::from(wire::OPKG_KEYS_DIR),
            ca_file: None,
            image: PathBuf::from(DEFAULT_IMAGE_PATH),
            poll_interval_ms: DEFAULT_POLL_INTERVAL_MS,
            timeout_s: DEFAULT_TIMEOUT_S,
            metadata_timeout_s: DEFAULT_METADATA_TIMEOUT_S,
            min_download_rate: DEFAULT_MIN_DOWNLOAD_RATE,
            min_download_rate_window_s: DEFAULT_MIN_DOWNLOAD_RATE_WINDOW_S,
            download_reserve_kib: DEFAULT_DOWNLOAD_RESERVE_KIB,
            fstype: None,
            rootfs_size: None,
            init_script: None,
            pre_install: None,
            add: Vec::new(),
            remove: Vec::new(),
            ignored_defaults: Vec::new(),
            ignored_changes: Vec::new(),
            channel: None,
            report: true,
        }
    }
}

impl Settings {
    /// Reads `/etc/config/attendedsysupgrade` under `root`; defaults when the file is absent.
    pub fn load(root: &Path) -> Result<Self, ConfigError> {
        let (path, config) = read(root)?;
        match config {
            Some(config) => Self::from_uci(&config, &path),
            None => {
                log::debug!("`{}` not found; using defaults", path.display());
                Ok(Self::default())
            }
        }
    }

    /// Settings from a parsed file; `path` is only used in error messages.
    pub fn from_uci(config: &Config, path: &Path) -> Result<Self, ConfigError> {
        let mut settings = Self::default();
        if let Some(server) = config.of_type(wire::UCI_SECTION_SERVER).next() {
            let invalid = |option: &'static str, value: &str| ConfigError::Value {
                path: path.to_owned(),
                section: server.name().unwrap_or(server.section_type()).to_owned(),
                option,
                value: value.to_owned(),
                expected: "a URL starting with `http://` or `https://`",
            };
            if let Some(url) = server.option(wire::UCI_OPTION_URL) {
                if !is_server_url(url) {
                    return Err(invalid("url", url));
                }
                settings.server = url.trim_end_matches('/').to_owned();
            }
            settings.rebuilders = split_list(server, wire::UCI_OPTION_REBUILDER);
            if let Some(bad) = settings.rebuilders.iter().find(|url| !is_server_url(url)) {
                return Err(invalid("rebuilder", bad));
            }
        }
        // owut's section first, then ours, so ours wins where both set an option.
        for section_type in [wire::UCI_SECTION_OWUT, wire::UCI_SECTION_ATTENDANT] {
            if let Some(section) = config.of_type(section_type).next() {
                settings.apply(section, path)?;
            }
        }
        Ok(settings)
    }

    fn apply(&mut self, section: &Section, path: &Path) -> Result<(), ConfigError> {
        let invalid =
            |option: &'static str, value: &str, expected: &'static str| ConfigError::Value {
                path: path.to_owned(),
                section: section.name().unwrap_or(section.section_type()).to_owned(),
                option,
                value: value.to_owned(),
                expected,
            };
        let flag = |option: &'static str| -> Result<Option<bool>, ConfigError> {
            match section.option(option) {
                None => Ok(None),
                Some(value) => section
                    .flag(option)
                    .map(Some)
                    .ok_or_else(|| invalid(option, value, "`1` or `0`")),
            }
        };
        if let Some(channel) = section.option("channel") {
            // An empty value is how LuCI and `config_set` clear the channel.
            self.channel = if channel.is_empty() {
                None
            } else {
                attendant_proto::channel::field::channel_name(channel)
                    .map_err(|rule| invalid("channel", channel, rule))?;
                Some(channel.to_owned())
            };
        }
        if let Some(report) = flag("report")? {
            self.report = report;
        }
        if let Some(keep) = flag("keep_settings")? {
            self.keep_settings = keep;
        }
        if let Some(require) = flag("require_signature")? {
            self.require_signature = require;
        }
        if let Some(dir) = section.option("keys_dir") {
            self.keys_dir = PathBuf::from(dir);
        }
        if let Some(file) = section.option("ca_file") {
            self.ca_file = Some(PathBuf::from(file));
        }
        if let Some(image) = section.option("image") {
            self.image = PathBuf::from(image);
        }
        if let Some(value) = section.option("poll_interval") {
            self.poll_interval_ms = value
                .parse()
                .ok()
                .filter(|ms| *ms >= MIN_POLL_INTERVAL_MS)
                .ok_or_else(|| invalid("poll_interval", value, "milliseconds, at least 500"))?;
        }
        let seconds = |option: &'static str| -> Result<Option<u64>, ConfigError> {
            match section.option(option) {
                None => Ok(None),
                Some(value) => value
                    .parse()
                    .ok()
                    .filter(|s| (1..=MAX_TIMEOUT_S).contains(s))
                    .map(Some)
                    .ok_or_else(|| invalid(option, value, "seconds, from 1 to 3600")),
            }
        };
        let number = |option: &'static str| -> Result<Option<u64>, ConfigError> {
            match section.option(option) {
                None => Ok(None),
                Some(value) => value
                    .parse()
                    .map(Some)
                    .map_err(|_| invalid(option, value, "a whole number, 0 or more")),
            }
        };
        if let Some(value) = seconds("timeout")? {
            self.timeout_s = value;
        }
        if let Some(value) = seconds("metadata_timeout")? {
            self.metadata_timeout_s = value;
        }
        if let Some(value) = seconds("min_download_rate_window")? {
            self.min_download_rate_window_s = value;
        }
        if let Some(value) = number("min_download_rate")? {
            self.min_download_rate = value;
        }
        if let Some(value) = number("download_reserve")? {
            self.download_reserve_kib = value;
        }
        if let Some(fstype) = section.option("fstype") {
            self.fstype = Some(fstype.to_owned());
        }
        if let Some(value) = section.option("rootfs_size") {
            self.rootfs_size = Some(
                value
                    .parse()
                    .ok()
                    .filter(|mb| *mb >= 1)
                    .ok_or_else(|| invalid("rootfs_size", value, "a size in MB, at least 1"))?,
            );
        }
        if let Some(script) = section.option("init_script") {
            self.init_script = Some(PathBuf::from(script));
        }
        if let Some(hook) = section.option("pre_install") {
            self.pre_install = Some(PathBuf::from(hook));
        }
        for (option, target) in [
            ("add", &mut self.add),
            ("remove", &mut self.remove),
            ("ignored_defaults", &mut self.ignored_defaults),
            ("ignored_changes", &mut self.ignored_changes),
        ] {
            if section.get(option).is_some() {
                *target = split_list(section, option);
            }
        }
        Ok(())
    }
}

/// The config file under `root` and its contents, `None` when there is none.
fn read(root: &Path) -> Result<(PathBuf, Option<Config>), ConfigError> {
    let path = wire::under_root(root, wire::UCI_CONFIG_PATH);
    // One byte over the limit, so the parser refuses an oversized file instead of a truncated
    // copy being read (and, by `set_channel`, written back).
    let limit = u64::try_from(uci::MAX_FILE_LEN)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let bytes = match crate::atomic::read_small(&path, limit) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok((path, None)),
        Err(source) => return Err(ConfigError::Io { path, source }),
    };
    match Config::parse(&bytes) {
        Ok(config) => Ok((path, Some(config))),
        Err(source) => Err(ConfigError::Uci { path, source }),
    }
}

/// Sets `option channel` in the `attendant` section of the config under `root` (the section
/// and the file are made when missing), keeping every other line's meaning: what a switch or a
/// followed redirect leaves behind so the next run plans from the new channel.
pub fn set_channel(root: &Path, channel: &str) -> Result<(), ConfigError> {
    let (path, config) = read(root)?;
    let config = config.unwrap_or_default();
    let edited = edit_section(&config, wire::UCI_SECTION_ATTENDANT, |section| {
        section.set("channel", channel)
    })
    .map_err(|source| ConfigError::Uci {
        path: path.clone(),
        source,
    })?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ConfigError::Write {
            path: dir.to_owned(),
            source,
        })?;
    }
    crate::atomic::write_atomic(&path, edited.to_text().as_bytes())
        .map_err(|source| ConfigError::Write { path, source })
}

/// A copy of `config` with the first section of `section_type` changed by `change` (a new
/// section named after the type is appended when there is none).
pub fn edit_section(
    config: &Config,
    section_type: &str,
    change: impl FnOnce(&mut Section) -> Result<(), UciError>,
) -> Result<Config, UciError> {
    let mut edited = match config.package() {
        Some(package) => Config::parse(format!("package {package}\n").as_bytes())?,
        None => Config::new(),
    };
    let mut change = Some(change);
    for section in config.sections() {
        let mut section = section.clone();
        if section.section_type() == section_type
            && let Some(change) = change.take()
        {
            change(&mut section)?;
        }
        edited.push(section)?;
    }
    if let Some(change) = change {
        let name = if config.named(section_type).is_some() {
            None
        } else {
            Some(section_type)
        };
        let mut section = Section::new(section_type, name)?;
        change(&mut section)?;
        edited.push(section)?;
    }
    Ok(edited)
}

/// Whether `url` can name an upgrade server: `http://` or `https://`, no spaces or control
/// characters.
pub fn is_server_url(url: &str) -> bool {
    (url.starts_with("http://") || url.starts_with("https://"))
        && !url.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// Splits a command-line or UCI package list: commas and whitespace separate names.
pub fn split_names<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    values
        .into_iter()
        .flat_map(|value| value.split([',', ' ', '\t', '\n']))
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `path`, a path on the router, under `root` (where the router's files are; `/` on a router).
/// A relative path stays as it is.
pub fn router_path(root: &Path, path: &Path) -> PathBuf {
    match path.strip_prefix("/") {
        Ok(relative) => root.join(relative),
        Err(_) => path.to_owned(),
    }
}

fn split_list(section: &Section, option: &str) -> Vec<String> {
    split_names(section.list(option))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> Result<Settings, ConfigError> {
        let config = Config::parse(text.as_bytes()).unwrap();
        Settings::from_uci(&config, Path::new("/etc/config/attendedsysupgrade"))
    }

    #[test]
    fn set_channel_keeps_the_rest_of_the_file() {
        let root = tempfile::tempdir().unwrap();
        // No file yet: the file and the section are made.
        set_channel(root.path(), "lab/canary").unwrap();
        let settings = Settings::load(root.path()).unwrap();
        assert_eq!(settings.channel.as_deref(), Some("lab/canary"));

        let path = wire::under_root(root.path(), wire::UCI_CONFIG_PATH);
        std::fs::write(
            &path,
            "config server 'server'\n\toption url 'https://example.org'\n\n\
             config attendant 'attendant'\n\toption channel 'old'\n\toption report '0'\n",
        )
        .unwrap();
        set_channel(root.path(), "stable").unwrap();
        let settings = Settings::load(root.path()).unwrap();
        assert_eq!(settings.channel.as_deref(), Some("stable"));
        assert_eq!(settings.server, "https://example.org");
        assert!(!settings.report);

        // A file the parser refuses is left as it is.
        std::fs::write(&path, "config attendant 'attendant\n").unwrap();
        let err = set_channel(root.path(), "stable").unwrap_err();
        assert!(matches!(err, ConfigError::Uci { .. }), "{err}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"config attendant 'attendant\n"
        );
    }

    #[test]
    fn defaults_without_a_file() {
        let root = tempfile::tempdir().unwrap();
        let settings = Settings::load(root.path()).unwrap();
        assert_eq!(settings.server, "https://sysupgrade.openwrt.org");
        assert!(settings.keep_settings);
        assert_eq!(settings.image, Path::new("/tmp/firmware.bin"));
        assert_eq!(settings.timeout_s, 60);
        assert_eq!(settings.metadata_timeout_s, 30);
        assert_eq!(settings.min_download_rate, 1024);
        assert_eq!(settings.min_download_rate_window_s, 30);
        assert_eq!(settings.download_reserve_kib, 2048);
    }

    #[test]
    fn reads_the_limits_against_slow_and_hostile_servers() {
        let s = settings(
            "config attendant 'attendant'\n\toption metadata_timeout 10\n\
             \toption min_download_rate 0\n\toption min_download_rate_window 60\n\
             \toption download_reserve 512\n",
        )
        .unwrap();
        assert_eq!(s.metadata_timeout_s, 10);
        assert_eq!(s.min_download_rate, 0);
        assert_eq!(s.min_download_rate_window_s, 60);
        assert_eq!(s.download_reserve_kib, 512);
    }

    #[test]
    fn reads_the_shared_server_url_without_trailing_slash() {
        let s = settings("config server 'server'\n\toption url 'http://asu.lan:8000/'\n\tlist rebuilder 'https://r1' \n").unwrap();
        assert_eq!(s.server, "http://asu.lan:8000");
        assert_eq!(s.rebuilders, ["https://r1"]);
    }

    #[test]
    fn attendant_section_overrides_owut_section() {
        let s = settings(
            "config owut 'owut'\n\toption poll_interval 5000\n\toption add 'htop, tcpdump'\n\
             config attendant 'attendant'\n\toption poll_interval 1000\n\tlist ignored_defaults a\n\
             \tlist ignored_defaults b\n\toption keep_settings 0\n\toption require_signature yes\n\
             \toption timeout 5\n",
        )
        .unwrap();
        assert_eq!(s.poll_interval_ms, 1000);
        assert_eq!(s.timeout_s, 5);
        assert_eq!(s.add, ["htop", "tcpdump"]);
        assert_eq!(s.ignored_defaults, ["a", "b"]);
        assert!(!s.keep_settings);
        assert!(s.require_signature);
    }

    #[test]
    fn rejects_bad_values_naming_the_option() {
        let error =
            settings("config attendant 'attendant'\n\toption keep_settings maybe\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "`/etc/config/attendedsysupgrade`: option `attendant.keep_settings` is `maybe`, expected `1` or `0`"
        );
        assert!(settings("config owut 'owut'\n\toption poll_interval 10\n").is_err());
        assert!(settings("config owut 'owut'\n\toption rootfs_size 0\n").is_err());
        for timeout in ["0", "3601", "1m"] {
            for option in ["timeout", "metadata_timeout", "min_download_rate_window"] {
                let text = format!("config attendant 'attendant'\n\toption {option} {timeout}\n");
                assert!(settings(&text).is_err(), "{option} {timeout}");
            }
        }
        let error =
            settings("config attendant 'attendant'\n\toption download_reserve 2M\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "`/etc/config/attendedsysupgrade`: option `attendant.download_reserve` is `2M`, \
             expected a whole number, 0 or more"
        );
        assert!(settings("config attendant 'attendant'\n\toption min_download_rate -1\n").is_err());
    }

    #[test]
    fn a_server_url_without_a_scheme_names_the_option() {
        let error = settings("config server 'server'\n\toption url 'asu.lan'\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "`/etc/config/attendedsysupgrade`: option `server.url` is `asu.lan`, expected a URL starting with `http://` or `https://`"
        );
        assert!(settings("config server 'server'\n\tlist rebuilder 'ftp://r'\n").is_err());
    }

    #[test]
    fn reports_uci_syntax_errors_with_the_path() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("etc/config");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("attendedsysupgrade"),
            "config server\n\toption url 'x\n",
        )
        .unwrap();
        let error = Settings::load(root.path()).unwrap_err();
        assert!(
            error.to_string().ends_with("line 2: unterminated ' quote"),
            "{error}"
        );
    }
}
