//! The pre-build checks: [`Engine::check`] turns the device, the server's offer and the options
//! into a [`Check`] — the version table, warnings, problems, a verdict and the build request.
//!
//! It fetches `overview.json` from the server, the target's `profiles.json` from the upstream
//! the overview names, and the package indexes (`/json/v1/{path}/packages/{arch}-index.json`,
//! `/json/v1/{path}/targets/{target}/index.json`; `reference/router-side.md` §1.6), then applies
//! the rules of [`crate::plan`]. A missing index only warns: the server then checks the packages
//! itself during the build.

use std::collections::{BTreeMap, BTreeSet};

use attendant_proto::api::{BuildRequest, Filesystem, ImageInfo};
use attendant_proto::index;
use attendant_proto::upstream::{self, Profiles};
use attendant_proto::version::Version;
use attendant_proto::wire;
use serde::Serialize;

use crate::client::{Client, MAX_JSON_LEN};
use crate::engine::{Engine, Error};
use crate::facts::Device;
use crate::plan::{self, AppliedChange, PackageRow, TargetVersion, VersionChange};

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
    /// Default packages the device does not have.
    pub missing_defaults: Vec<String>,
    /// Things to know that do not block.
    pub warnings: Vec<String>,
    /// Things that block the upgrade.
    pub problems: Vec<String>,
    /// The verdict.
    pub verdict: Verdict,
    /// The build request that would be sent.
    pub request: BuildRequest,
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
                problems.push(format!(
                    "{error} `{}` in {}\n\nhint: the server does not build for this board",
                    device.target, target.version
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
        let requested = plan::package_list(
            &top_level_after,
            &defaults,
            options.clean_slate,
            &options.remove,
            &options.add,
        );
        let missing_defaults = if options.clean_slate {
            Vec::new()
        } else {
            plan::missing_defaults(
                &defaults,
                &|name| device.packages.contains(name),
                &options.ignored_defaults,
            )
        };
        for name in &missing_defaults {
            warnings.push(format!("default package `{name}` is not installed and will not be in the image\n\nhint: add it with `--add {name}`, or silence this with `--ignored-defaults {name}`"));
        }

        let available = self.package_index(&client, &target, &device, &profiles, &mut warnings)?;
        let packages = match &available {
            Some(available) => {
                plan::version_table(&installed, &requested, available, device.package_manager)
            }
            None => Vec::new(),
        };
        for row in &packages {
            match row.change {
                VersionChange::Missing if row.requested => problems.push(format!(
                    "package `{}` is not in the {} index for `{}`\n\nhint: remove it with `--remove {}`",
                    row.name, target.version, device.target, row.name
                )),
                VersionChange::Downgrade if options.force => warnings.push(format!(
                    "--force: package `{}` goes down from `{}` to `{}`",
                    row.name,
                    row.installed.as_deref().unwrap_or_default(),
                    row.available.as_deref().unwrap_or_default()
                )),
                VersionChange::Downgrade => problems.push(format!(
                    "package `{}` would go down from `{}` to `{}`\n\nhint: `--force` builds anyway",
                    row.name,
                    row.installed.as_deref().unwrap_or_default(),
                    row.available.as_deref().unwrap_or_default()
                )),
                _ => {}
            }
        }
        if is_firmware_downgrade(&device.version, &target.version) {
            let text = format!(
                "{} is older than the installed {}",
                target.version, device.version
            );
            if options.force {
                warnings.push(format!("--force: {text}"));
            } else {
                problems.push(format!("{text}\n\nhint: `--force` builds anyway"));
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
                        problems.push(error.to_string());
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
            problems.push(format!(
                "the init script is {} bytes; the server accepts at most {}",
                script.len(),
                overview.server.max_defaults_length
            ));
        }
        if options.init_script.is_none() && device.rom_has_asu_defaults {
            warnings.push("the running image carries an init script from an earlier build (`/rom/etc/uci-defaults/99-asu-defaults`); the new image will not\n\nhint: pass it again with `--init-script FILE`".to_owned());
        }
        if let Some(size) = options.rootfs_size {
            if size > overview.server.max_custom_rootfs_size_mb {
                problems.push(format!(
                    "root filesystem size {size} MB is more than the server's maximum of {} MB",
                    overview.server.max_custom_rootfs_size_mb
                ));
            } else if self.settings.keep_settings {
                warnings.push("changing the root filesystem size can wipe the configuration on some devices even when it is kept (owut#27)".to_owned());
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

        let changed = packages.iter().any(|row| {
            !matches!(
                row.change,
                VersionChange::Same | VersionChange::Indeterminate
            ) && (row.installed.is_some() || row.requested)
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
        warnings: &mut Vec<String>,
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
            warnings.push(format!(
                "the server publishes no package index for {} `{}`; package versions are not checked before the build",
                target.version, device.target
            ));
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
    fn firmware_downgrades_compare_releases_only() {
        assert!(is_firmware_downgrade("24.10.5", "24.10.4"));
        assert!(is_firmware_downgrade("25.12.0", "24.10.6"));
        assert!(!is_firmware_downgrade("24.10.4", "25.12.2"));
        assert!(!is_firmware_downgrade("SNAPSHOT", "24.10.4"));
    }
}
