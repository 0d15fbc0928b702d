//! The plan options: what a front end was given ([`PlanArgs`]: the CLI's flags, the rpcd
//! bridge's call arguments) over the defaults in `/etc/config/attendedsysupgrade`, merged into
//! the [`PlanOptions`] the checks plan from.
//!
//! [`PlanOptions::merge`] is the one merge both front ends use, so the same settings plan the
//! same upgrade from a shell and from LuCI:
//!
//! - a list that was given replaces the configured one; both are split at commas and spaces
//!   (`--add "htop,tcpdump"`, `list add 'htop tcpdump'`);
//! - a single value that was given wins over the configured one;
//! - the init script named on the command line is read as given (`-` is stdin), while the one
//!   named by the configuration is a file on the router and is read under the router root, as
//!   every other path in that file is.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::config::{self, Settings};
use crate::error::Error;
use crate::plan;

/// Largest init script accepted before the server's own limit is known.
pub const MAX_INIT_SCRIPT_LEN: usize = 256 * 1024;

/// What `check` and friends plan, given on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlanOptions {
    /// `--version-to`: a version or a branch name.
    pub version_to: Option<String>,
    /// `--rev-code`.
    pub rev_code: RevCode,
    /// `--add`.
    pub add: Vec<String>,
    /// `--remove`.
    pub remove: Vec<String>,
    /// `--clean-slate`.
    pub clean_slate: bool,
    /// `--ignored-defaults`.
    pub ignored_defaults: Vec<String>,
    /// `--ignored-changes`.
    pub ignored_changes: Vec<String>,
    /// `--init-script`, already read.
    pub init_script: Option<String>,
    /// `--fstype`.
    pub fstype: Option<String>,
    /// `--rootfs-size` in MB.
    pub rootfs_size: Option<u32>,
    /// `--force`: build despite downgrades or no changes.
    pub force: bool,
}

/// `--rev-code`: which `version_code` to request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RevCode {
    /// The target's current revision (from `profiles.json`).
    #[default]
    Latest,
    /// `none`: send an empty code, switching off the server's revision check.
    None,
    /// A specific `rNNNNN-hash`.
    Code(String),
}

/// What a front end was given for a plan, before the configuration's defaults: every field
/// left empty (`None`, `[]`, `false`) takes the configured value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlanArgs {
    /// A version or a branch name.
    pub version_to: Option<String>,
    /// `rNNNNN-hash` or `none`.
    pub rev_code: Option<String>,
    /// Packages to add; items may hold several names separated by commas or spaces.
    pub add: Vec<String>,
    /// Packages to remove, split like `add`.
    pub remove: Vec<String>,
    /// Build from the default packages only.
    pub clean_slate: bool,
    /// Default packages removed on purpose, split like `add`.
    pub ignored_defaults: Vec<String>,
    /// `package_changes` entries to skip, split like `add`.
    pub ignored_changes: Vec<String>,
    /// A uci-defaults script to read as given, `-` for stdin.
    pub init_script: Option<PathBuf>,
    /// Root filesystem type.
    pub fstype: Option<String>,
    /// Root filesystem size in MB.
    pub rootfs_size: Option<u32>,
    /// Build despite downgrades or no changes.
    pub force: bool,
}

impl PlanOptions {
    /// `args` over `settings` (the configuration of the router whose files are under `root`),
    /// with every value checked.
    pub fn merge(settings: &Settings, root: &Path, args: PlanArgs) -> Result<Self, Error> {
        let list = |given: &[String], configured: &[String]| {
            if given.is_empty() {
                configured.to_vec()
            } else {
                config::split_names(given.iter().map(String::as_str))
            }
        };
        let rev_code = match args.rev_code.as_deref() {
            None => RevCode::Latest,
            Some("none") => RevCode::None,
            Some(code) if plan::is_version_code(code) => RevCode::Code(code.to_owned()),
            Some(code) => {
                return Err(Error::Usage(format!(
                    "revision `{code}` is not of the form `rNNNNN-hash` or `none`"
                )));
            }
        };
        let init_script = match (&args.init_script, &settings.init_script) {
            (Some(given), _) => Some(read_init_script(given)?),
            (None, Some(configured)) => {
                Some(read_init_script(&config::router_path(root, configured))?)
            }
            (None, None) => None,
        };
        let options = Self {
            version_to: args.version_to,
            rev_code,
            add: list(&args.add, &settings.add),
            remove: list(&args.remove, &settings.remove),
            clean_slate: args.clean_slate,
            ignored_defaults: list(&args.ignored_defaults, &settings.ignored_defaults),
            ignored_changes: list(&args.ignored_changes, &settings.ignored_changes),
            init_script,
            fstype: args.fstype.or_else(|| settings.fstype.clone()),
            rootfs_size: args.rootfs_size.or(settings.rootfs_size),
            force: args.force,
        };
        if options.rootfs_size == Some(0) {
            return Err(Error::Usage(
                "`--rootfs-size` must be at least 1 MB".to_owned(),
            ));
        }
        Ok(options)
    }
}

/// Reads a uci-defaults script (`-`: stdin): UTF-8, at most [`MAX_INIT_SCRIPT_LEN`] bytes.
pub fn read_init_script(path: &Path) -> Result<String, Error> {
    let limit = u64::try_from(MAX_INIT_SCRIPT_LEN).unwrap_or(u64::MAX);
    let mut bytes = Vec::new();
    let result = if path == Path::new("-") {
        std::io::stdin()
            .lock()
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(limit.saturating_add(1)).read_to_end(&mut bytes))
    };
    result.map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    if bytes.len() > MAX_INIT_SCRIPT_LEN {
        return Err(Error::Usage(format!(
            "the init script `{}` is larger than {MAX_INIT_SCRIPT_LEN} bytes",
            path.display(),
        )));
    }
    String::from_utf8(bytes).map_err(|_| {
        Error::Usage(format!(
            "the init script `{}` is not UTF-8 text",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::ExitStatus;

    fn merge(settings: &Settings, args: PlanArgs) -> Result<PlanOptions, Error> {
        PlanOptions::merge(settings, Path::new("/"), args)
    }

    fn rev_code(code: &str) -> PlanArgs {
        PlanArgs {
            rev_code: Some(code.to_owned()),
            ..PlanArgs::default()
        }
    }

    #[test]
    fn rev_code_accepts_none_and_version_codes_only() {
        let settings = Settings::default();
        assert_eq!(
            merge(&settings, rev_code("none")).unwrap().rev_code,
            RevCode::None
        );
        assert_eq!(
            merge(&settings, rev_code("r28959-29397011cc"))
                .unwrap()
                .rev_code,
            RevCode::Code("r28959-29397011cc".into())
        );
        let error = merge(&settings, rev_code("latest")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "revision `latest` is not of the form `rNNNNN-hash` or `none`"
        );
        assert_eq!(error.exit_status(), ExitStatus::Usage);
    }

    #[test]
    fn given_lists_replace_the_config_lists() {
        let settings = Settings {
            add: vec!["htop".into()],
            ..Settings::default()
        };
        assert_eq!(merge(&settings, PlanArgs::default()).unwrap().add, ["htop"]);
        let given = PlanArgs {
            add: vec!["tcpdump,luci-app-sqm".to_owned(), "iperf3".to_owned()],
            remove: vec!["a b".to_owned()],
            ..PlanArgs::default()
        };
        let options = merge(&settings, given).unwrap();
        assert_eq!(options.add, ["tcpdump", "luci-app-sqm", "iperf3"]);
        assert_eq!(options.remove, ["a", "b"]);
    }

    #[test]
    fn init_script_is_read_and_size_checked() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("defaults.sh");
        std::fs::write(&script, "uci set system.@system[0].hostname=router\n").unwrap();
        let given = |path: &Path| PlanArgs {
            init_script: Some(path.to_owned()),
            ..PlanArgs::default()
        };
        let options = merge(&Settings::default(), given(&script)).unwrap();
        assert_eq!(
            options.init_script.as_deref(),
            Some("uci set system.@system[0].hostname=router\n")
        );
        std::fs::write(&script, vec![b'#'; MAX_INIT_SCRIPT_LEN + 1]).unwrap();
        assert!(matches!(
            merge(&Settings::default(), given(&script)),
            Err(Error::Usage(_))
        ));
    }

    #[test]
    fn the_configured_init_script_is_read_under_the_router_root() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/defaults.sh"), "echo router\n").unwrap();
        let settings = Settings {
            init_script: Some("/etc/defaults.sh".into()),
            ..Settings::default()
        };
        let options = PlanOptions::merge(&settings, root.path(), PlanArgs::default()).unwrap();
        assert_eq!(options.init_script.as_deref(), Some("echo router\n"));
    }

    #[test]
    fn a_zero_rootfs_size_is_refused() {
        let args = PlanArgs {
            rootfs_size: Some(0),
            ..PlanArgs::default()
        };
        assert!(matches!(
            merge(&Settings::default(), args),
            Err(Error::Usage(_))
        ));
    }
}
