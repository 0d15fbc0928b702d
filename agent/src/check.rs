//! The pre-build checks: [`Engine::check`] turns the device, the server's offer and the options
//! into a [`Check`] — the version table, warnings, problems, a verdict and the build request.
//!
//! It fetches `overview.json` from the server, the target's `profiles.json` from the upstream
//! the overview names, and the package indexes (`/json/v1/{path}/packages/{arch}-index.json`,
//! `/json/v1/{path}/targets/{target}/index.json`; `reference/router-side.md` §1.6), then applies
//! the rules of [`crate::plan`]. A missing index only warns: the server then checks the packages
//! itself during the build.
//!
//! Warnings and problems are [`Finding`]s: a message and, when there is a way out, a [`Hint`]
//! with a machine [`HintCode`] beside the command line's words. The CLI prints a finding as
//! `message`, a blank line and `hint: <cli>` (and `--json` carries that same text), while the
//! rpcd bridge answers LuCI with the message and the code, because LuCI has no flags.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use attendant_proto::api::{BuildRequest, Filesystem, ImageInfo};
use attendant_proto::index;
use attendant_proto::installed::PackageManager;
use attendant_proto::upstream::{self, Profiles};
use attendant_proto::version::Version;
use attendant_proto::wire;
use serde::{Serialize, Serializer};

use crate::client::{Client, MAX_JSON_LEN};
use crate::engine::{Engine, Error};
use crate::facts::Device;
use crate::plan::{self, AppliedChange, PackageRow, TargetVersion, VersionChange};

/// Largest init script accepted before the server's own limit is known.
pub const MAX_INIT_SCRIPT_LEN: usize = 256 * 1024;

/// The CLI's hint on a downgrade.
const FORCE_HINT: &str = "`--force` builds anyway";

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

/// The overall verdict of the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Nothing to do.
    UpToDate,
    /// An upgrade can be built.
    UpgradeAvailable,
    /// The checks found problems.
    Blocked,
}

/// The result of the pre-build checks: everything `check` shows and `upgrade` builds from.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Check {
    /// The device.
    pub device: Device,
    /// The server.
    pub server: String,
    /// The upstream mirror the profiles came from.
    pub upstream: String,
    /// The version chosen.
    pub target: TargetVersion,
    /// The target's current revision.
    pub version_code: String,
    /// The profile the board maps to.
    pub profile: String,
    /// The image that will be installed.
    pub image: Option<ImageInfo>,
    /// The server's package changes that were applied.
    pub package_changes: Vec<AppliedChange>,
    /// The version table.
    pub packages: Vec<PackageRow>,
    /// The new image's default packages (the target's and the profile's, after the profile's
    /// `-name` removals).
    pub defaults: BTreeSet<String>,
    /// Default packages the device does not have.
    pub missing_defaults: Vec<String>,
    /// Things to know that do not block.
    pub warnings: Vec<Finding>,
    /// Things that block the upgrade.
    pub problems: Vec<Finding>,
    /// The verdict.
    pub verdict: Verdict,
    /// The build request that would be sent.
    pub request: BuildRequest,
}

/// One warning or problem of the checks, kept apart from its hint so each front end words the
/// way out for its own users: the CLI names flags, LuCI has no flags.
///
/// `Display` (and `Serialize`, so `--json` is the same text) is the CLI's form:
/// `[--force: ]<message>[\n\nhint: <cli hint>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finding {
    /// What was found, without any option names.
    pub message: String,
    /// What the user can do about it.
    pub hint: Option<Hint>,
    /// Only a warning because `--force` overrides it (shown as `--force: <message>`).
    pub forced: bool,
}

impl Finding {
    /// A finding without a way out.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
            forced: false,
        }
    }

    /// A finding with a hint: `code`, worded `cli` on the command line.
    pub fn hinted(message: impl Into<String>, code: HintCode, cli: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: Some(Hint {
                code,
                cli: cli.into(),
            }),
            forced: false,
        }
    }

    /// A problem that `--force` turned into a warning.
    pub fn forced(message: impl Into<String>) -> Self {
        Self {
            forced: true,
            ..Self::new(message)
        }
    }

    /// A finding from an error's text `message\n\nhint: cli`, the hint coded `code`; a text
    /// without a hint paragraph keeps its whole text as the message.
    pub fn from_text(text: &str, code: Option<HintCode>) -> Self {
        match (split_hint(text), code) {
            ((message, Some(cli)), Some(code)) => Self::hinted(message, code, cli),
            ((message, _), _) => Self::new(message),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.forced {
            f.write_str("--force: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "{HINT_SEPARATOR}{}", hint.cli)?;
        }
        Ok(())
    }
}

impl Serialize for Finding {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The way out of a finding or an error: what kind of action ([`HintCode`]) and how the CLI
/// says it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Hint {
    /// The kind of action, for front ends that word it themselves.
    pub code: HintCode,
    /// The command line's words, naming the exact flag or command (what follows `hint: `).
    pub cli: String,
}

/// The kinds of way out the agent suggests; the wire name is [`HintCode::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HintCode {
    /// Build anyway despite downgrades (`--force`).
    Force,
    /// Leave a package out of the build (`--remove`).
    Remove,
    /// Add a missing default package, or ignore it on purpose (`--add`, `--ignored-defaults`).
    IgnoredDefaults,
    /// Pass the running image's init script again (`--init-script`).
    InitScript,
    /// Choose another root filesystem (`--fstype`).
    Fstype,
    /// Choose the version to upgrade to (`--version-to`).
    VersionTo,
    /// Look at the versions the server offers (`attendant versions`).
    Versions,
    /// The server does not build for this board; there is nothing to change.
    UnsupportedBoard,
    /// The server is busy or behind; try again later.
    TryLater,
    /// Install a CA bundle or name one (`--ca-file`).
    CaFile,
    /// Free space for the image, or put it elsewhere (`--image`).
    FreeSpace,
    /// Run the same step again; the download resumes.
    Resume,
    /// Delete the image and download it again.
    DownloadAgain,
    /// Sign the images, or stop requiring signatures (`require_signature`).
    RequireSignature,
    /// Fix the pre-install hook, or leave it out (`--pre-install`).
    PreInstall,
    /// sysupgrade's own checks failed; flash anyway only if sure (`--force-flash`).
    ForceFlash,
    /// Remove the damaged state file (`attendant status --clear`).
    ClearState,
}

impl HintCode {
    /// Every code, so front ends can hold a wording for each.
    pub const ALL: [HintCode; 17] = [
        Self::Force,
        Self::Remove,
        Self::IgnoredDefaults,
        Self::InitScript,
        Self::Fstype,
        Self::VersionTo,
        Self::Versions,
        Self::UnsupportedBoard,
        Self::TryLater,
        Self::CaFile,
        Self::FreeSpace,
        Self::Resume,
        Self::DownloadAgain,
        Self::RequireSignature,
        Self::PreInstall,
        Self::ForceFlash,
        Self::ClearState,
    ];

    /// The wire name, e.g. `ignored_defaults`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Force => "force",
            Self::Remove => "remove",
            Self::IgnoredDefaults => "ignored_defaults",
            Self::InitScript => "init_script",
            Self::Fstype => "fstype",
            Self::VersionTo => "version_to",
            Self::Versions => "versions",
            Self::UnsupportedBoard => "unsupported_board",
            Self::TryLater => "try_later",
            Self::CaFile => "ca_file",
            Self::FreeSpace => "free_space",
            Self::Resume => "resume",
            Self::DownloadAgain => "download_again",
            Self::RequireSignature => "require_signature",
            Self::PreInstall => "pre_install",
            Self::ForceFlash => "force_flash",
            Self::ClearState => "clear_state",
        }
    }
}

/// What separates a message from its hint in the CLI's texts (house style: a blank line, then
/// `hint: `).
pub const HINT_SEPARATOR: &str = "\n\nhint: ";

/// Splits a CLI text into the message and the hint's words after `hint: `.
pub fn split_hint(text: &str) -> (&str, Option<&str>) {
    match text.split_once(HINT_SEPARATOR) {
        Some((message, hint)) => (message, Some(hint)),
        None => (text, None),
    }
}

impl Engine {
    /// Runs every pre-build check and prepares the build request.
    pub fn check(&self, options: &PlanOptions) -> Result<Check, Error> {
        let device = self.device()?;
        let client = self.client()?;
        let overview = self.overview(&client)?;
        let target =
            plan::choose_version(&overview, &device.version, options.version_to.as_deref())?;
        let upstream = if overview.upstream_url.is_empty() {
            wire::DEFAULT_UPSTREAM_URL.to_owned()
        } else {
            overview.upstream_url.trim_end_matches('/').to_owned()
        };
        let profiles_url = format!(
            "{upstream}/{}/targets/{}/profiles.json",
            target.path, device.target
        );
        let profiles = fetch_profiles(&client, &profiles_url)?;
        let mut problems = Vec::new();
        let mut warnings = Vec::new();

        let resolved = profiles.resolve_profile(&device.board_name);
        let (profile_id, profile) = match &resolved {
            Ok(resolved) => (resolved.id.clone(), profiles.profiles.get(&resolved.id)),
            Err(error) => {
                problems.push(Finding::hinted(
                    format!("{error} `{}` in {}", device.target, target.version),
                    HintCode::UnsupportedBoard,
                    "the server does not build for this board",
                ));
                (device.profile(), None)
            }
        };

        let version_code = match &options.rev_code {
            RevCode::Latest => profiles.version_code.clone(),
            RevCode::None => String::new(),
            RevCode::Code(code) => code.clone(),
        };

        // Packages: installed, top-level after the server's changes, the build list.
        let installed: BTreeMap<String, String> = device
            .packages
            .iter()
            .map(|p| (p.name.clone(), p.version.clone()))
            .collect();
        let top_level: Vec<String> = device
            .packages
            .top_level()
            .map(|p| p.name.clone())
            .collect();
        let changes = overview
            .branches
            .values()
            .find(|b| b.name == target.branch)
            .map(|b| b.package_changes.clone())
            .unwrap_or_default();
        let (top_level_after, applied) = plan::apply_package_changes(
            &top_level,
            &changes,
            plan::revision_number(&profiles.version_code),
            &options.ignored_changes,
        );
        let defaults = plan::default_packages(
            &profiles.default_packages,
            profile
                .map(|p| p.device_packages.as_slice())
                .unwrap_or_default(),
        );
        let mut requested = plan::package_list(
            &top_level_after,
            &defaults,
            options.clean_slate,
            &options.remove,
            &options.add,
        );
        // A default the build requests is not missing: the target of an applied rename
        // (`opkg` -> `apk-mbedtls` on the way to 25.12) is installed under its old name. Nor is
        // one an installed package provides (`nftables` through `nftables-json` on 24.10).
        let missing_defaults = if options.clean_slate {
            Vec::new()
        } else {
            plan::missing_defaults(
                &defaults,
                &|name| {
                    device.packages.provider(name).is_some() || requested.iter().any(|r| r == name)
                },
                &options.ignored_defaults,
            )
        };
        // With `diff_packages` the server removes every default the request leaves out, so a
        // truncated or emptied package database (a full overlay can leave one) would build an
        // image without dropbear, netifd or the firewall: a router reachable only by serial.
        // Most defaults missing at once is that, not the user's choice.
        if !options.clean_slate
            && !defaults.is_empty()
            && missing_defaults.len() * 2 > defaults.len()
        {
            problems.push(Finding::new(format!(
                "{} of the {} default packages are not installed; the package database ({}) looks damaged, and an image built from it would lack them",
                missing_defaults.len(),
                defaults.len(),
                match device.package_manager {
                    PackageManager::Opkg => wire::OPKG_STATUS_PATH,
                    PackageManager::Apk => wire::APK_INSTALLED_PATH,
                }
            )));
        }
        for name in &missing_defaults {
            warnings.push(Finding::hinted(
                format!("default package `{name}` is not installed and will not be in the image"),
                HintCode::IgnoredDefaults,
                format!(
                    "add it with `--add {name}`, or silence this with `--ignored-defaults {name}`"
                ),
            ));
        }

        let available = self.package_index(&client, &target, &device, &profiles, &mut warnings)?;
        // A default no index lists is a virtual package (24.10's `nftables`, provided by
        // `nftables-json`): requested by that name it would block the check and then be missed
        // in the manifest. The installed package that provides it is requested instead; with no
        // provider it is left out, as owut re-adds only the defaults the index lists.
        if let Some(available) = &available {
            let resolved: BTreeSet<String> = requested
                .iter()
                .filter_map(|name| {
                    if available.contains_key(name) || !defaults.contains(name) {
                        return Some(name.clone());
                    }
                    device
                        .packages
                        .provider(name)
                        .map(|provider| provider.name.clone())
                        .filter(|provider| available.contains_key(provider))
                })
                .collect();
            requested = resolved.into_iter().collect();
        }
        let packages = match &available {
            Some(available) => {
                plan::version_table(&installed, &requested, available, device.package_manager)
            }
            None => Vec::new(),
        };
        for row in &packages {
            match row.change {
                VersionChange::Missing if row.requested => problems.push(Finding::hinted(
                    format!(
                        "package `{}` is not in the {} index for `{}`",
                        row.name, target.version, device.target
                    ),
                    HintCode::Remove,
                    format!("remove it with `--remove {}`", row.name),
                )),
                VersionChange::Downgrade if options.force => {
                    warnings.push(Finding::forced(format!(
                        "package `{}` goes down from `{}` to `{}`",
                        row.name,
                        row.installed.as_deref().unwrap_or_default(),
                        row.available.as_deref().unwrap_or_default()
                    )))
                }
                VersionChange::Downgrade => problems.push(Finding::hinted(
                    format!(
                        "package `{}` would go down from `{}` to `{}`",
                        row.name,
                        row.installed.as_deref().unwrap_or_default(),
                        row.available.as_deref().unwrap_or_default()
                    ),
                    HintCode::Force,
                    FORCE_HINT,
                )),
                _ => {}
            }
        }
        let older_revision = target.version == device.version
            && matches!(
                (plan::revision_number(&version_code), plan::revision_number(&device.revision)),
                (Some(offered), Some(installed)) if offered < installed
            );
        if is_firmware_downgrade(&device.version, &target.version) || older_revision {
            // Same version, older revision: a snapshot whose server lags behind the build that
            // is installed (owut's DOWNGRADE case).
            let text = if older_revision {
                format!(
                    "{} {version_code} is older than the installed {}; the server is behind",
                    target.version, device.revision
                )
            } else {
                format!(
                    "{} is older than the installed {}",
                    target.version, device.version
                )
            };
            if options.force {
                warnings.push(Finding::forced(text));
            } else {
                problems.push(Finding::hinted(text, HintCode::Force, FORCE_HINT));
            }
        }

        // Image and filesystem.
        let fstype = options
            .fstype
            .clone()
            .unwrap_or_else(|| device.rootfs_type.clone());
        let filesystem = Filesystem::from_wire(&fstype);
        if filesystem.is_none() {
            return Err(Error::Usage(format!(
                "filesystem `{fstype}` is not one the server builds; choose one of: {}",
                Filesystem::ALL.map(Filesystem::as_str).join(", ")
            )));
        }
        let image = match profile {
            Some(profile) => {
                match plan::choose_image(
                    &profile.images,
                    &profile_id,
                    &fstype,
                    &device.image_type(),
                ) {
                    Ok(image) => Some(image.clone()),
                    Err(error) => {
                        problems.push(Finding::from_text(&error.to_string(), error.hint_code()));
                        None
                    }
                }
            }
            None => None,
        };

        // Init script and rootfs size.
        if let Some(script) = &options.init_script
            && script.len() > overview.server.max_defaults_length
        {
            problems.push(Finding::new(format!(
                "the init script is {} bytes; the server accepts at most {}",
                script.len(),
                overview.server.max_defaults_length
            )));
        }
        if options.init_script.is_none() && device.rom_has_asu_defaults {
            warnings.push(Finding::hinted(
                "the running image carries an init script from an earlier build (`/rom/etc/uci-defaults/99-asu-defaults`); the new image will not",
                HintCode::InitScript,
                "pass it again with `--init-script FILE`",
            ));
        }
        if let Some(size) = options.rootfs_size {
            if size > overview.server.max_custom_rootfs_size_mb {
                problems.push(Finding::new(format!(
                    "root filesystem size {size} MB is more than the server's maximum of {} MB",
                    overview.server.max_custom_rootfs_size_mb
                )));
            } else if self.settings.keep_settings {
                warnings.push(Finding::new("changing the root filesystem size can wipe the configuration on some devices even when it is kept (owut#27)"));
            }
        }

        // The request.
        let mut request = BuildRequest::new(&target.version, &device.target, &profile_id);
        request.version_code = version_code.clone();
        request.diff_packages = true;
        request.filesystem = filesystem;
        request.rootfs_size_mb = options.rootfs_size;
        request.defaults = options.init_script.clone();
        request.client = Some(concat!("attendant/", env!("CARGO_PKG_VERSION")).to_owned());
        let versions: Option<BTreeMap<String, String>> = available.as_ref().and_then(|available| {
            requested
                .iter()
                .map(|name| Some((name.clone(), available.get(name)?.clone())))
                .collect()
        });
        match versions {
            Some(versions) => request.packages_versions = versions,
            None => request.packages = requested.clone(),
        }

        // A package the new index lacks changes nothing by itself: an installed dependency is
        // pulled in or not by what the build requests (counting it made an up-to-date router
        // report an upgrade on every check), and a requested one blocks or is a virtual default.
        let changed = packages.iter().any(|row| match row.change {
            VersionChange::Same | VersionChange::Indeterminate => false,
            VersionChange::Missing => false,
            _ => row.installed.is_some() || row.requested,
        });
        let same_set: BTreeSet<&String> = requested.iter().collect();
        let top_set: BTreeSet<&String> = top_level.iter().collect();
        let nothing_to_do = target.version == device.version
            && (version_code.is_empty() || version_code == device.revision)
            && !changed
            && same_set == top_set
            && options.init_script.is_none()
            && options.rootfs_size.is_none();
        let verdict = if !problems.is_empty() {
            Verdict::Blocked
        } else if nothing_to_do && !options.force {
            Verdict::UpToDate
        } else {
            Verdict::UpgradeAvailable
        };
        Ok(Check {
            server: client.server().to_owned(),
            upstream,
            target,
            version_code,
            profile: profile_id,
            image,
            package_changes: applied,
            packages,
            defaults,
            missing_defaults,
            warnings,
            problems,
            verdict,
            request,
            device,
        })
    }

    /// The target's package versions: the architecture index merged with the target index;
    /// `None` (with a warning) when the server has neither.
    fn package_index(
        &self,
        client: &Client,
        target: &TargetVersion,
        device: &Device,
        profiles: &Profiles,
        warnings: &mut Vec<Finding>,
    ) -> Result<Option<BTreeMap<String, String>>, Error> {
        let server = client.server();
        let urls = [
            format!(
                "{server}/json/v1/{}/packages/{}-index.json",
                target.path, profiles.arch_packages
            ),
            format!(
                "{server}/json/v1/{}/targets/{}/index.json",
                target.path, device.target
            ),
        ];
        let mut merged = BTreeMap::new();
        let mut found = false;
        for url in urls {
            let Some(bytes) = client.get_optional(&url, MAX_JSON_LEN)? else {
                continue;
            };
            let packages = parse_package_index(&bytes).map_err(|message| Error::Document {
                what: "package index",
                message: format!("`{url}`: {message}"),
            })?;
            found = true;
            merged.extend(packages);
        }
        if !found {
            warnings.push(Finding::new(format!(
                "the server publishes no package index for {} `{}`; package versions are not checked before the build",
                target.version, device.target
            )));
            return Ok(None);
        }
        Ok(Some(merged))
    }
}

fn fetch_profiles(client: &Client, url: &str) -> Result<Profiles, Error> {
    let bytes = client.get_bytes(url, MAX_JSON_LEN)?;
    upstream::parse_profiles(&bytes).map_err(|error| Error::Document {
        what: "profiles.json",
        message: format!("`{url}`: {error}"),
    })
}

/// The package versions of a server index. A target's `index.json` is
/// `{"architecture", "packages": {name: version}}`, but ASU answers
/// `/json/v1/<path>/packages/<arch>-index.json` with the flat `{name: version}` map
/// (`reference/asu-server.md` §2.6); both shapes are read, at most
/// [`index::MAX_INDEX_ENTRIES`] entries.
fn parse_package_index(bytes: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|error| format!("not JSON: {error}"))?;
    let Some(object) = value.as_object() else {
        return Err("expected a JSON object".to_owned());
    };
    if object
        .get("packages")
        .is_some_and(serde_json::Value::is_object)
    {
        return index::parse_index_json(bytes)
            .map(|parsed| parsed.index.packages)
            .map_err(|error| error.to_string());
    }
    if object.len() > index::MAX_INDEX_ENTRIES {
        return Err(format!("more than {} packages", index::MAX_INDEX_ENTRIES));
    }
    object
        .iter()
        .map(|(name, version)| match version.as_str() {
            Some(version) => Ok((name.clone(), version.to_owned())),
            None => Err(format!("the version of `{name}` is not a string")),
        })
        .collect()
}

/// True when `target` is an older release than `installed` (snapshots never count).
fn is_firmware_downgrade(installed: &str, target: &str) -> bool {
    match (Version::parse(installed), Version::parse(target)) {
        (Ok(installed), Ok(target)) => {
            !installed.is_snapshot() && !target.is_snapshot() && target < installed
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_flat_arch_index_and_the_target_index_shape() {
        let flat = parse_package_index(br#"{"tmux": "3.5a-r1", "luci": "25.031"}"#).unwrap();
        assert_eq!(flat["tmux"], "3.5a-r1");
        assert_eq!(flat.len(), 2);
        let wrapped = parse_package_index(
            br#"{"architecture": "x86_64", "packages": {"kernel": "6.6.116-r1"}}"#,
        )
        .unwrap();
        assert_eq!(wrapped["kernel"], "6.6.116-r1");
        assert_eq!(wrapped.len(), 1);
    }

    #[test]
    fn rejects_an_index_whose_versions_are_not_strings() {
        assert_eq!(
            parse_package_index(br#"{"tmux": 3}"#).unwrap_err(),
            "the version of `tmux` is not a string"
        );
        assert_eq!(
            parse_package_index(b"[]").unwrap_err(),
            "expected a JSON object"
        );
    }

    #[test]
    fn findings_print_the_cli_hint_and_serialize_as_that_text() {
        let finding = Finding::hinted(
            "package `luci` would go down from `2` to `1`",
            HintCode::Force,
            FORCE_HINT,
        );
        let text = "package `luci` would go down from `2` to `1`\n\nhint: `--force` builds anyway";
        assert_eq!(finding.to_string(), text);
        assert_eq!(serde_json::to_value(&finding).unwrap(), text);
        assert_eq!(Finding::from_text(text, Some(HintCode::Force)), finding);
        assert_eq!(
            Finding::forced("25.12.0 is older than the installed 25.12.2").to_string(),
            "--force: 25.12.0 is older than the installed 25.12.2"
        );
        assert_eq!(HintCode::IgnoredDefaults.as_str(), "ignored_defaults");
    }

    #[test]
    fn firmware_downgrades_compare_releases_only() {
        assert!(is_firmware_downgrade("24.10.5", "24.10.4"));
        assert!(is_firmware_downgrade("25.12.0", "24.10.6"));
        assert!(!is_firmware_downgrade("24.10.4", "25.12.2"));
        assert!(!is_firmware_downgrade("SNAPSHOT", "24.10.4"));
    }
}
