//! The pre-build checks: [`Engine::check`](crate::Engine::check) turns the device, the server's offer and the options
//! into a [`Check`] — the version table, warnings, problems, a verdict and the build request.
//!
//! It fetches `overview.json` from the server, the target's `profiles.json` from the upstream
//! the overview names, and the package indexes (`/json/v1/{path}/packages/{arch}-index.json`,
//! `/json/v1/{path}/targets/{target}/index.json`, the paths owut reads), then applies the rules
//! of [`crate::plan`]. A missing index only warns: the server then checks the packages
//! itself during the build.
//!
//! Each check is a function of its own, in the order they run; `run` chains them. Warnings
//! and problems are [`Finding`]s: a message and, when there is a way out, a
//! [`Hint`](crate::hint::Hint) with a machine [`HintCode`] beside the command line's words. The CLI prints a finding as
//! `message`, a blank line and `hint: <cli>` (and `--json` carries that same text), while the
//! rpcd bridge answers LuCI with the message and the code, because LuCI has no flags.

use std::collections::{BTreeMap, BTreeSet};

use attendant_proto::api::{BuildRequest, Filesystem, ImageInfo, Overview};
use attendant_proto::index;
use attendant_proto::installed::PackageManager;
use attendant_proto::upstream::{self, Profile, Profiles};
use attendant_proto::version::Version;
use attendant_proto::wire;
use serde::Serialize;

use crate::client::{Client, MAX_JSON_LEN};
use crate::error::Error;
use crate::facts::Device;
use crate::hint::{Finding, HintCode};
use crate::options::{PlanOptions, RevCode};
use crate::plan::{self, AppliedChange, PackageRow, TargetVersion, VersionChange};

/// The CLI's hint on a downgrade.
const FORCE_HINT: &str = "`--force` builds anyway";

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

/// Runs every pre-build check for `device` against the server's `overview` and prepares the
/// build request; `keep_settings` is whether the configuration is kept over the upgrade.
pub(crate) fn run(
    device: Device,
    client: &Client,
    overview: &Overview,
    keep_settings: bool,
    options: &PlanOptions,
) -> Result<Check, Error> {
    let target = plan::choose_version(
        overview,
        &device.version,
        options.version_to.as_deref(),
        &device.target,
    )?;
    let upstream = if overview.upstream_url.is_empty() {
        wire::DEFAULT_UPSTREAM_URL.to_owned()
    } else {
        overview.upstream_url.trim_end_matches('/').to_owned()
    };
    let profiles_url = format!(
        "{upstream}/{}/targets/{}/profiles.json",
        target.path, device.target
    );
    let profiles = fetch_profiles(client, &profiles_url)?;
    let mut findings = Findings::default();
    let (profile_id, profile) = resolve_profile(&profiles, &device, &target, &mut findings);
    let version_code = match &options.rev_code {
        RevCode::Latest => profiles.version_code.clone(),
        RevCode::None => String::new(),
        RevCode::Code(code) => code.clone(),
    };
    let context = Context {
        device: &device,
        target: &target,
        options,
    };
    let mut selection = select_packages(&context, overview, &profiles, profile, &mut findings);
    let available = package_index(client, &target, &device, &profiles, &mut findings.warnings)?;
    let packages = match &available {
        Some(available) => {
            selection.requested = requested_providers(&device, &selection, available);
            plan::version_table(
                &selection.installed,
                &selection.requested,
                available,
                device.package_manager,
            )
        }
        None => Vec::new(),
    };
    check_package_versions(&context, &packages, &mut findings);
    check_firmware_version(&context, &version_code, &mut findings);
    let (filesystem, image) = choose_image(&context, profile, &profile_id, &mut findings)?;
    check_request_limits(&context, overview, keep_settings, &mut findings);

    let mut request = BuildRequest::new(&target.version, &device.target, &profile_id);
    request.version_code = version_code.clone();
    request.diff_packages = true;
    request.filesystem = Some(filesystem);
    request.rootfs_size_mb = options.rootfs_size;
    request.defaults = options.init_script.clone();
    request.client = Some(concat!("attendant/", env!("CARGO_PKG_VERSION")).to_owned());
    let versions: Option<BTreeMap<String, String>> = available.as_ref().and_then(|available| {
        selection
            .requested
            .iter()
            .map(|name| Some((name.clone(), available.get(name)?.clone())))
            .collect()
    });
    match versions {
        Some(versions) => request.packages_versions = versions,
        None => request.packages = selection.requested.clone(),
    }
    let verdict = verdict(&context, &version_code, &selection, &packages, &findings);
    Ok(Check {
        server: client.server().to_owned(),
        upstream,
        version_code,
        profile: profile_id,
        image,
        package_changes: selection.applied,
        packages,
        defaults: selection.defaults,
        missing_defaults: selection.missing_defaults,
        warnings: findings.warnings,
        problems: findings.problems,
        verdict,
        request,
        target,
        device,
    })
}

/// What every check reads: the device, the version chosen and the options.
struct Context<'a> {
    device: &'a Device,
    target: &'a TargetVersion,
    options: &'a PlanOptions,
}

/// The warnings and problems found so far.
#[derive(Default)]
struct Findings {
    warnings: Vec<Finding>,
    problems: Vec<Finding>,
}

/// The packages of the new image, before the index is consulted.
struct Selection {
    /// Installed packages and their versions.
    installed: BTreeMap<String, String>,
    /// The installed top-level packages, before the server's changes.
    top_level: Vec<String>,
    /// The server's package changes that were applied.
    applied: Vec<AppliedChange>,
    /// The new image's default packages.
    defaults: BTreeSet<String>,
    /// What the build requests.
    requested: Vec<String>,
    /// Default packages the device does not have.
    missing_defaults: Vec<String>,
}

/// The profile the board maps to; a board the server does not build for is a problem, and the
/// board's own name is used for the request.
fn resolve_profile<'a>(
    profiles: &'a Profiles,
    device: &Device,
    target: &TargetVersion,
    findings: &mut Findings,
) -> (String, Option<&'a Profile>) {
    match profiles.resolve_profile(&device.board_name) {
        Ok(resolved) => {
            let profile = profiles.profiles.get(&resolved.id);
            (resolved.id, profile)
        }
        Err(error) => {
            findings.problems.push(Finding::hinted(
                format!("{error} `{}` in {}", device.target, target.version),
                HintCode::UnsupportedBoard,
                "the server does not build for this board",
            ));
            (device.profile(), None)
        }
    }
}

/// The installed packages, top-level after the server's changes, the defaults and the build
/// list; warns about missing defaults.
fn select_packages(
    context: &Context<'_>,
    overview: &Overview,
    profiles: &Profiles,
    profile: Option<&Profile>,
    findings: &mut Findings,
) -> Selection {
    let Context {
        device,
        target,
        options,
    } = context;
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
    let requested = plan::package_list(
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
            &|name| device.packages.provider(name).is_some() || requested.iter().any(|r| r == name),
            &options.ignored_defaults,
        )
    };
    check_missing_defaults(context, &defaults, &missing_defaults, findings);
    Selection {
        installed,
        top_level,
        applied,
        defaults,
        requested,
        missing_defaults,
    }
}

/// One warning per missing default; most of them missing at once is a damaged database.
fn check_missing_defaults(
    context: &Context<'_>,
    defaults: &BTreeSet<String>,
    missing_defaults: &[String],
    findings: &mut Findings,
) {
    // With `diff_packages` the server removes every default the request leaves out, so a
    // truncated or emptied package database (a full overlay can leave one) would build an
    // image without dropbear, netifd or the firewall: a router reachable only by serial.
    // Most defaults missing at once is that, not the user's choice.
    if !context.options.clean_slate
        && !defaults.is_empty()
        && missing_defaults.len() * 2 > defaults.len()
    {
        findings.problems.push(Finding::new(format!(
            "{} of the {} default packages are not installed; the package database ({}) looks damaged, and an image built from it would lack them",
            missing_defaults.len(),
            defaults.len(),
            match context.device.package_manager {
                PackageManager::Opkg => wire::OPKG_STATUS_PATH,
                PackageManager::Apk => wire::APK_INSTALLED_PATH,
            }
        )));
    }
    for name in missing_defaults {
        findings.warnings.push(Finding::hinted(
            format!("default package `{name}` is not installed and will not be in the image"),
            HintCode::IgnoredDefaults,
            format!("add it with `--add {name}`, or silence this with `--ignored-defaults {name}`"),
        ));
    }
}

/// The build list with virtual defaults replaced by their installed providers.
///
/// A default no index lists is a virtual package (24.10's `nftables`, provided by
/// `nftables-json`): requested by that name it would block the check and then be missed in the
/// manifest. The installed package that provides it is requested instead; with no provider it
/// is left out, as owut re-adds only the defaults the index lists.
fn requested_providers(
    device: &Device,
    selection: &Selection,
    available: &BTreeMap<String, String>,
) -> Vec<String> {
    let resolved: BTreeSet<String> = selection
        .requested
        .iter()
        .filter_map(|name| {
            if available.contains_key(name) || !selection.defaults.contains(name) {
                return Some(name.clone());
            }
            device
                .packages
                .provider(name)
                .map(|provider| provider.name.clone())
                .filter(|provider| available.contains_key(provider))
        })
        .collect();
    resolved.into_iter().collect()
}

/// Requested packages the index lacks, and package downgrades (warnings with `--force`).
fn check_package_versions(context: &Context<'_>, packages: &[PackageRow], findings: &mut Findings) {
    for row in packages {
        let installed = row.installed.as_deref().unwrap_or_default();
        let available = row.available.as_deref().unwrap_or_default();
        match row.change {
            VersionChange::Missing if row.requested => findings.problems.push(Finding::hinted(
                format!(
                    "package `{}` is not in the {} index for `{}`",
                    row.name, context.target.version, context.device.target
                ),
                HintCode::Remove,
                format!("remove it with `--remove {}`", row.name),
            )),
            VersionChange::Downgrade if context.options.force => {
                findings.warnings.push(Finding::forced(format!(
                    "package `{}` goes down from `{installed}` to `{available}`",
                    row.name
                )))
            }
            VersionChange::Downgrade => findings.problems.push(Finding::hinted(
                format!(
                    "package `{}` would go down from `{installed}` to `{available}`",
                    row.name
                ),
                HintCode::Force,
                FORCE_HINT,
            )),
            _ => {}
        }
    }
}

/// A firmware downgrade: an older release, or the same version at an older revision.
fn check_firmware_version(context: &Context<'_>, version_code: &str, findings: &mut Findings) {
    let Context {
        device,
        target,
        options,
    } = context;
    let older_revision = target.version == device.version
        && matches!(
            (plan::revision_number(version_code), plan::revision_number(&device.revision)),
            (Some(offered), Some(installed)) if offered < installed
        );
    if !is_firmware_downgrade(&device.version, &target.version) && !older_revision {
        return;
    }
    // Same version, older revision: a snapshot whose server lags behind the build that is
    // installed (owut's DOWNGRADE case).
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
        findings.warnings.push(Finding::forced(text));
    } else {
        findings
            .problems
            .push(Finding::hinted(text, HintCode::Force, FORCE_HINT));
    }
}

/// The filesystem to request and the image that will be installed; a filesystem the server
/// does not build is a usage error, a profile without a fitting image a problem.
fn choose_image(
    context: &Context<'_>,
    profile: Option<&Profile>,
    profile_id: &str,
    findings: &mut Findings,
) -> Result<(Filesystem, Option<ImageInfo>), Error> {
    let device = context.device;
    let fstype = context
        .options
        .fstype
        .clone()
        .unwrap_or_else(|| device.rootfs_type.clone());
    let Some(filesystem) = Filesystem::from_wire(&fstype) else {
        return Err(Error::Usage(format!(
            "filesystem `{fstype}` is not one the server builds; choose one of: {}",
            Filesystem::ALL.map(Filesystem::as_str).join(", ")
        )));
    };
    let Some(profile) = profile else {
        return Ok((filesystem, None));
    };
    match plan::choose_image(&profile.images, profile_id, &fstype, &device.image_type()) {
        Ok(image) => Ok((filesystem, Some(image.clone()))),
        Err(error) => {
            findings
                .problems
                .push(Finding::from_error(error.to_string(), error.hint()));
            Ok((filesystem, None))
        }
    }
}

/// The init script and the root filesystem size against the server's limits.
fn check_request_limits(
    context: &Context<'_>,
    overview: &Overview,
    keep_settings: bool,
    findings: &mut Findings,
) {
    let options = context.options;
    let script = options.init_script.as_deref().filter(|s| !s.is_empty());
    // ASU refuses a non-empty `defaults` with a 400 unless it allows them, and says so in
    // overview.json: refuse here, before anything is built, rather than at the server.
    if script.is_some() && overview.server.allow_defaults == Some(false) {
        findings.problems.push(Finding::hinted(
            "the server does not accept init scripts (`allow_defaults` is off in its overview.json)".to_owned(),
            HintCode::InitScript,
            "build without `--init-script`, or use a server that accepts them",
        ));
    }
    if let Some(script) = script
        && script.len() > overview.server.max_defaults_length
    {
        findings.problems.push(Finding::new(format!(
            "the init script is {} bytes; the server accepts at most {}",
            script.len(),
            overview.server.max_defaults_length
        )));
    }
    if options.init_script.is_none() && context.device.rom_has_asu_defaults {
        findings.warnings.push(Finding::hinted(
            format!(
                "the running image carries an init script from an earlier build (`/rom{}/{}`); the new image will not",
                wire::UCI_DEFAULTS_DIR,
                wire::ASU_DEFAULTS_NAME
            ),
            HintCode::InitScript,
            "pass it again with `--init-script FILE`",
        ));
    }
    if let Some(size) = options.rootfs_size {
        if size > overview.server.max_custom_rootfs_size_mb {
            findings.problems.push(Finding::new(format!(
                "root filesystem size {size} MB is more than the server's maximum of {} MB",
                overview.server.max_custom_rootfs_size_mb
            )));
        } else if keep_settings {
            findings.warnings.push(Finding::new("changing the root filesystem size can wipe the configuration on some devices even when it is kept (owut#27)"));
        }
    }
}

/// Blocked with any problem; up to date when the build would change nothing (unless `--force`).
fn verdict(
    context: &Context<'_>,
    version_code: &str,
    selection: &Selection,
    packages: &[PackageRow],
    findings: &Findings,
) -> Verdict {
    let Context {
        device,
        target,
        options,
    } = context;
    // A package the new index lacks changes nothing by itself: an installed dependency is
    // pulled in or not by what the build requests (counting it made an up-to-date router
    // report an upgrade on every check), and a requested one blocks or is a virtual default.
    let changed = packages.iter().any(|row| match row.change {
        VersionChange::Same | VersionChange::Indeterminate => false,
        VersionChange::Missing => false,
        _ => row.installed.is_some() || row.requested,
    });
    let same_set: BTreeSet<&String> = selection.requested.iter().collect();
    let top_set: BTreeSet<&String> = selection.top_level.iter().collect();
    let nothing_to_do = target.version == device.version
        && (version_code.is_empty() || version_code == device.revision)
        && !changed
        && same_set == top_set
        && options.init_script.is_none()
        && options.rootfs_size.is_none();
    if !findings.problems.is_empty() {
        Verdict::Blocked
    } else if nothing_to_do && !options.force {
        Verdict::UpToDate
    } else {
        Verdict::UpgradeAvailable
    }
}

/// The target's package versions: the architecture index merged with the target index;
/// `None` (with a warning) when the server has neither.
fn package_index(
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
        let (packages, skipped) =
            parse_package_index(&bytes).map_err(|message| Error::Document {
                what: "package index",
                message: format!("`{url}`: {message}"),
            })?;
        if !skipped.is_empty() {
            warnings.push(Finding::new(format!(
                "`{url}` has entries without a version string, skipped: {}",
                skipped.join(", ")
            )));
        }
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

fn fetch_profiles(client: &Client, url: &str) -> Result<Profiles, Error> {
    let bytes = client.get_bytes(url, MAX_JSON_LEN)?;
    upstream::parse_profiles(&bytes).map_err(|error| Error::Document {
        what: "profiles.json",
        message: format!("`{url}`: {error}"),
    })
}

/// A server index's package versions, and the names of the entries skipped because their
/// version is not a string.
type PackageVersions = (BTreeMap<String, String>, Vec<String>);

/// The package versions of a server index. A target's `index.json` is
/// `{"architecture", "packages": {name: version}}`, but ASU answers
/// `/json/v1/<path>/packages/<arch>-index.json` with the flat `{name: version}` map
/// (`asu/routers/api.py` in <https://github.com/openwrt/asu>); both shapes are read, at most
/// [`index::MAX_INDEX_ENTRIES`] entries. In the flat map an entry whose version is not a string
/// is skipped and named, not fatal: ASU writes `"null": null` for an empty feed `Packages` file,
/// and one bad entry must not hide every other package's version.
fn parse_package_index(bytes: &[u8]) -> Result<PackageVersions, String> {
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
            .map(|parsed| (parsed.index.packages, Vec::new()))
            .map_err(|error| error.to_string());
    }
    if object.len() > index::MAX_INDEX_ENTRIES {
        return Err(format!("more than {} packages", index::MAX_INDEX_ENTRIES));
    }
    let mut versions = BTreeMap::new();
    let mut skipped = Vec::new();
    for (name, version) in object {
        match version.as_str() {
            Some(version) => {
                versions.insert(name.clone(), version.to_owned());
            }
            None => skipped.push(name.clone()),
        }
    }
    Ok((versions, skipped))
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
        let (flat, skipped) =
            parse_package_index(br#"{"tmux": "3.5a-r1", "luci": "25.031"}"#).unwrap();
        assert_eq!(flat["tmux"], "3.5a-r1");
        assert_eq!(flat.len(), 2);
        assert!(skipped.is_empty());
        let (wrapped, _) = parse_package_index(
            br#"{"architecture": "x86_64", "packages": {"kernel": "6.6.116-r1"}}"#,
        )
        .unwrap();
        assert_eq!(wrapped["kernel"], "6.6.116-r1");
        assert_eq!(wrapped.len(), 1);
    }

    #[test]
    fn skips_and_names_entries_whose_versions_are_not_strings() {
        // ASU's index of an empty feed `Packages` file.
        let (versions, skipped) =
            parse_package_index(br#"{"null": null, "tmux": 3, "htop": "3.4.1-r1"}"#).unwrap();
        assert_eq!(versions.len(), 1);
        assert_eq!(versions["htop"], "3.4.1-r1");
        assert_eq!(skipped, ["null", "tmux"]);
    }

    #[test]
    fn rejects_an_index_that_is_not_an_object() {
        assert_eq!(
            parse_package_index(b"[]").unwrap_err(),
            "expected a JSON object"
        );
    }

    #[test]
    fn firmware_downgrades_compare_releases_only() {
        assert!(is_firmware_downgrade("24.10.5", "24.10.4"));
        assert!(is_firmware_downgrade("25.12.0", "24.10.6"));
        assert!(!is_firmware_downgrade("24.10.4", "25.12.2"));
        assert!(!is_firmware_downgrade("SNAPSHOT", "24.10.4"));
    }
}
