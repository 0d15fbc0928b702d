//! A fake router root built from the fixture catalogue, for driving the agent with `--root`.
//!
//! [`write_root`] lays out the files the agent reads on a router (`agent/src/facts.rs`; on a
//! real router rpcd's `system board` reads the same, <https://openwrt.org/docs/techref/ubus>):
//! `/tmp/sysinfo/board_name` and `model`,
//! `/usr/lib/os-release`, `/proc/mounts`, `/sys/firmware/efi` on EFI machines,
//! `/etc/config/system` with a `compat_version`, and the package database — opkg's
//! `/usr/lib/opkg/status` for 24.10 releases, apk's `/lib/apk/db/installed` and
//! `/etc/apk/world` for 25.12 and snapshots. The installed set is what the fixture ImageBuilder
//! of that release installs for the profile's default packages plus the user's packages
//! ([`installed_packages`]), so versions, ABI names and dependencies match the mirror exactly.
//! Top-level packages are the ones the ImageBuilder was asked for (without `kernel`), including
//! the package that answered a name through `Provides` (`nftables-json` for the default
//! `nftables`): opkg marks it user-installed, as the captured 24.10 status in
//! `proto/testdata/opkg` shows. Their dependencies are marked auto-installed. The databases
//! carry every package's `Provides` (opkg `Provides:`, apk `p:name=version`), and apk's world
//! lists the names as requested (`nftables`, `libgcc`), as `apk add` writes them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use attendant_proto::wire;

use crate::catalog::{Catalog, PackageManager, Release, Target};
use crate::imagebuilder::{self as ib, resolve};
use crate::mirror::build_packages;

/// What kind of router to fake.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouterSpec {
    /// The installed release, e.g. `24.10.4`.
    pub version: String,
    /// `board/subtarget`, e.g. `x86/64`.
    pub target: String,
    /// The profile whose default packages are installed, e.g. `generic`.
    pub profile: String,
    /// `/tmp/sysinfo/board_name`, e.g. `tplink,archer-c7-v5`.
    pub board_name: String,
    /// `/tmp/sysinfo/model`.
    pub model: String,
    /// Packages the user installed on top of the defaults.
    pub user_packages: Vec<String>,
    /// The root filesystem type `/proc/mounts` reports for `/rom` (or `/`): `squashfs`, `ext4`.
    pub rootfs_type: String,
    /// Whether `/sys/firmware/efi` exists.
    pub efi: bool,
    /// `system.@system[0].compat_version`; `None` leaves it unset (sysupgrade reads `1.0`).
    pub compat_version: Option<String>,
}

impl RouterSpec {
    /// A squashfs router without EFI and without user packages.
    pub fn new(version: &str, target: &str, profile: &str, board_name: &str) -> Self {
        Self {
            version: version.to_owned(),
            target: target.to_owned(),
            profile: profile.to_owned(),
            board_name: board_name.to_owned(),
            model: board_name.to_owned(),
            user_packages: Vec::new(),
            rootfs_type: "squashfs".to_owned(),
            efi: false,
            compat_version: None,
        }
    }
}

/// One installed package of the fake router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledPackage {
    /// Name in the database, with the ABI suffix (`libubox20240329`).
    pub package: String,
    /// Name without the ABI suffix (`libubox`).
    pub name: String,
    /// Version.
    pub version: String,
    /// `ABIVersion`, if any.
    pub abi_version: Option<String>,
    /// `Architecture`.
    pub architecture: String,
    /// `Depends`, as published.
    pub depends: Vec<String>,
    /// `Provides`, as published (the base name first for ABI-versioned packages).
    pub provides: Vec<String>,
    /// Installed on request, by its name or a name it provides (not `Auto-Installed`).
    pub top_level: bool,
}

/// Why a fake router could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// The release is not in the catalogue.
    #[error("release `{0}` is not in the fixture catalogue")]
    UnknownRelease(String),
    /// The target is not in the catalogue.
    #[error("target `{0}` is not in the fixture catalogue")]
    UnknownTarget(String),
    /// The profile is not a profile of the target.
    #[error("profile `{profile}` is not a profile of `{target}`")]
    UnknownProfile {
        /// The target.
        target: String,
        /// The profile.
        profile: String,
    },
    /// The fixture ImageBuilder would not install the package set.
    #[error("the {version} ImageBuilder cannot install the packages: {stderr}")]
    Unresolvable {
        /// The release.
        version: String,
        /// What the package manager printed.
        stderr: String,
    },
    /// A file could not be written.
    #[error("cannot write `{path}`: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The packages the fixture ImageBuilder of `spec.version` installs for the profile's defaults
/// plus `spec.user_packages`, in installation order.
pub fn installed_packages(
    catalog: &Catalog,
    spec: &RouterSpec,
) -> Result<Vec<InstalledPackage>, RouterError> {
    let (release, target) = release_and_target(catalog, spec)?;
    let profile = target
        .profile(&spec.profile)
        .ok_or_else(|| RouterError::UnknownProfile {
            target: spec.target.clone(),
            profile: spec.profile.clone(),
        })?;
    let packages = catalog.packages(release, target);
    let list = ib::packages_list(packages.iter(), release.package_manager);
    let entries =
        attendant_proto::index::parse_packages_detailed(list.as_bytes()).map_err(|error| {
            RouterError::Unresolvable {
                version: release.version.clone(),
                stderr: error.to_string(),
            }
        })?;
    let index = resolve::Index::new(entries, BTreeMap::new());
    let requested = build_packages(
        &catalog.default_packages(release, target),
        &profile.device_packages,
        &spec.user_packages,
    );
    let report = resolve::resolve(&index, &requested, release.package_manager);
    if report.exit_code != 0 {
        return Err(RouterError::Unresolvable {
            version: release.version.clone(),
            stderr: report.stderr,
        });
    }
    let by_name: BTreeMap<&str, &crate::catalog::Package> =
        packages.iter().map(|p| (p.name.as_str(), p)).collect();
    let mut installed: Vec<InstalledPackage> = report
        .installed
        .iter()
        .map(|installed| {
            let published = by_name.get(installed.package.as_str());
            InstalledPackage {
                package: installed.package.clone(),
                name: installed.name.clone(),
                version: installed.version.clone(),
                abi_version: published.and_then(|p| p.abi_version.clone()),
                architecture: published
                    .map_or_else(|| target.arch_packages.clone(), |p| p.architecture.clone()),
                depends: published.map(|p| p.depends.clone()).unwrap_or_default(),
                provides: published.map(|p| p.provides.clone()).unwrap_or_default(),
                top_level: false,
            }
        })
        .collect();
    // Each requested name marks the package that answered it: itself, else its provider.
    for name in requested_names(&requested) {
        let answered = installed
            .iter()
            .position(|p| p.name == name || p.package == name)
            .or_else(|| installed.iter().position(|p| p.provides.contains(&name)));
        if let Some(package) = answered.and_then(|index| installed.get_mut(index)) {
            package.top_level = true;
        }
    }
    Ok(installed)
}

/// The names in `/etc/apk/world` of a router built from `spec`: the image's defaults, the
/// profile's packages and the user's, as the ImageBuilder asked for them (removals and `kernel`
/// left out), sorted.
pub fn world_names(catalog: &Catalog, spec: &RouterSpec) -> Result<Vec<String>, RouterError> {
    let (release, target) = release_and_target(catalog, spec)?;
    let profile = target
        .profile(&spec.profile)
        .ok_or_else(|| RouterError::UnknownProfile {
            target: spec.target.clone(),
            profile: spec.profile.clone(),
        })?;
    let requested = build_packages(
        &catalog.default_packages(release, target),
        &profile.device_packages,
        &spec.user_packages,
    );
    Ok(requested_names(&requested))
}

fn requested_names(requested: &[String]) -> Vec<String> {
    let mut names: Vec<String> = requested
        .iter()
        .filter(|name| !name.starts_with('-') && *name != "kernel")
        .cloned()
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Writes the router's files under `dir`; returns the installed packages.
pub fn write_root(
    dir: &Path,
    catalog: &Catalog,
    spec: &RouterSpec,
) -> Result<Vec<InstalledPackage>, RouterError> {
    let (release, target) = release_and_target(catalog, spec)?;
    let installed = installed_packages(catalog, spec)?;
    write(
        dir,
        wire::SYSINFO_BOARD_NAME_PATH,
        &format!("{}\n", spec.board_name),
    )?;
    write(dir, wire::SYSINFO_MODEL_PATH, &format!("{}\n", spec.model))?;
    write(dir, wire::OS_RELEASE_PATH, &os_release(release, target))?;
    let mounts = format!(
        "/dev/root /rom {} ro,relatime 0 0\noverlayfs:/overlay / overlay rw,noatime 0 0\n",
        spec.rootfs_type
    );
    write(dir, wire::PROC_MOUNTS_PATH, &mounts)?;
    if spec.efi {
        create_dir(&wire::under_root(dir, wire::EFI_FIRMWARE_PATH))?;
    }
    if let Some(compat) = &spec.compat_version {
        write(
            dir,
            wire::UCI_SYSTEM_CONFIG_PATH,
            &format!(
                "config system\n\toption hostname 'OpenWrt'\n\toption compat_version '{compat}'\n"
            ),
        )?;
    }
    match release.package_manager {
        PackageManager::Opkg => write(dir, wire::OPKG_STATUS_PATH, &opkg_status(&installed))?,
        PackageManager::Apk => {
            write(dir, wire::APK_INSTALLED_PATH, &apk_installed(&installed))?;
            write(
                dir,
                wire::APK_WORLD_PATH,
                &apk_world(&world_names(catalog, spec)?),
            )?;
        }
    }
    create_dir(&wire::under_root(dir, wire::TMP_DIR))?;
    Ok(installed)
}

/// opkg's `/usr/lib/opkg/status` for `packages`.
pub fn opkg_status(packages: &[InstalledPackage]) -> String {
    let mut out = String::new();
    for package in packages {
        let _ = writeln!(out, "Package: {}", package.package);
        if let Some(abi) = &package.abi_version {
            let _ = writeln!(out, "ABIVersion: {abi}");
        }
        let _ = writeln!(out, "Version: {}", package.version);
        if !package.depends.is_empty() {
            let _ = writeln!(out, "Depends: {}", package.depends.join(", "));
        }
        if !package.provides.is_empty() {
            let _ = writeln!(out, "Provides: {}", package.provides.join(", "));
        }
        let _ = writeln!(out, "Status: install ok installed");
        let _ = writeln!(out, "Architecture: {}", package.architecture);
        let _ = writeln!(out, "Installed-Time: 1761004800");
        if !package.top_level {
            let _ = writeln!(out, "Auto-Installed: yes");
        }
        out.push('\n');
    }
    out
}

/// apk's `/lib/apk/db/installed` for `packages`.
pub fn apk_installed(packages: &[InstalledPackage]) -> String {
    let mut out = String::new();
    for package in packages {
        let _ = writeln!(out, "P:{}", package.package);
        let _ = writeln!(out, "V:{}", package.version);
        let _ = writeln!(out, "A:{}", package.architecture);
        if !package.provides.is_empty() {
            let provides: Vec<String> = package
                .provides
                .iter()
                .map(|provided| format!("{provided}={}", package.version))
                .collect();
            let _ = writeln!(out, "p:{}", provides.join(" "));
        }
        if let Some(abi) = &package.abi_version {
            let _ = writeln!(out, "g:openwrt:abiversion={abi}");
        }
        out.push('\n');
    }
    out
}

/// apk's `/etc/apk/world`: the requested names ([`world_names`]), one per line.
pub fn apk_world(names: &[String]) -> String {
    names.iter().map(|name| format!("{name}\n")).collect()
}

fn release_and_target<'a>(
    catalog: &'a Catalog,
    spec: &RouterSpec,
) -> Result<(&'a Release, &'a Target), RouterError> {
    let release = catalog
        .release(&spec.version)
        .ok_or_else(|| RouterError::UnknownRelease(spec.version.clone()))?;
    let target = catalog
        .target(&spec.target)
        .ok_or_else(|| RouterError::UnknownTarget(spec.target.clone()))?;
    Ok((release, target))
}

/// `/usr/lib/os-release` as OpenWrt writes it.
fn os_release(release: &Release, target: &Target) -> String {
    format!(
        "NAME=\"OpenWrt\"\nVERSION=\"{version}\"\nID=\"openwrt\"\nID_LIKE=\"lede openwrt\"\n\
         PRETTY_NAME=\"OpenWrt {version}\"\nVERSION_ID=\"{version_id}\"\n\
         BUILD_ID=\"{revision}\"\nOPENWRT_BOARD=\"{board}\"\nOPENWRT_ARCH=\"{arch}\"\n\
         OPENWRT_TAINTS=\"\"\nOPENWRT_DEVICE_MANUFACTURER=\"OpenWrt\"\n\
         OPENWRT_RELEASE=\"OpenWrt {version} {revision}\"\n",
        version = release.version,
        version_id = release.version.to_lowercase(),
        revision = release.revision,
        board = target.name(),
        arch = target.arch_packages,
    )
}

fn write(dir: &Path, absolute: &str, contents: &str) -> Result<(), RouterError> {
    let path = wire::under_root(dir, absolute);
    if let Some(parent) = path.parent() {
        create_dir(parent)?;
    }
    std::fs::write(&path, contents).map_err(|source| RouterError::Io { path, source })
}

fn create_dir(path: &Path) -> Result<(), RouterError> {
    std::fs::create_dir_all(path).map_err(|source| RouterError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::Seed;

    #[test]
    fn marks_requested_packages_top_level_and_dependencies_auto_installed() {
        let catalog = Catalog::new(Seed(1));
        let mut spec = RouterSpec::new("24.10.4", "x86/64", "generic", "qemu-standard-pc");
        spec.user_packages = vec!["tmux".to_owned()];
        let installed = installed_packages(&catalog, &spec).unwrap();
        let find = |name: &str| installed.iter().find(|p| p.name == name).unwrap();
        assert!(find("tmux").top_level);
        assert!(find("dropbear").top_level);
        assert!(!find("kernel").top_level);
        assert!(!find("libncurses").top_level);
        let status = opkg_status(&installed);
        let parsed = attendant_proto::opkg::parse(status.as_bytes()).unwrap();
        let top = parsed.packagelist(false);
        assert!(
            top.contains_key("tmux") && !top.contains_key("libncurses"),
            "{top:?}"
        );
    }

    #[test]
    fn refuses_a_package_the_release_does_not_have() {
        let catalog = Catalog::new(Seed(1));
        let mut spec = RouterSpec::new("24.10.4", "x86/64", "generic", "qemu-standard-pc");
        spec.user_packages = vec!["apk-mbedtls".to_owned()];
        let error = installed_packages(&catalog, &spec).unwrap_err();
        assert!(error.to_string().contains("apk-mbedtls"), "{error}");
    }

    #[test]
    fn the_provider_of_a_default_is_top_level_and_says_what_it_provides() {
        // OpenWrt's default `nftables` is installed as `nftables-json`, which opkg records as
        // user-installed with `Provides: nftables` (proto/testdata/opkg/status-24.10-ath79).
        let catalog = Catalog::new(Seed(1));
        let spec = RouterSpec::new(
            "24.10.4",
            "ath79/generic",
            "tplink_archer-c7-v5",
            "tplink,archer-c7-v5",
        );
        let installed = installed_packages(&catalog, &spec).unwrap();
        let nftables = installed
            .iter()
            .find(|p| p.name == "nftables-json")
            .unwrap();
        assert!(nftables.top_level);
        let status = attendant_proto::opkg::parse(opkg_status(&installed).as_bytes()).unwrap();
        assert_eq!(
            status.provider("nftables").map(|p| p.name.as_str()),
            Some("nftables-json")
        );
        assert!(status.get("nftables-json").unwrap().top_level);
        assert!(!status.get("libnftnl").unwrap().top_level);
    }

    #[test]
    fn apk_world_lists_the_requested_names() {
        let catalog = Catalog::new(Seed(1));
        let spec = RouterSpec::new("25.12.1", "x86/64", "generic", "qemu-standard-pc");
        let installed = installed_packages(&catalog, &spec).unwrap();
        let world = apk_world(&world_names(&catalog, &spec).unwrap());
        assert!(world.lines().any(|line| line == "nftables"), "{world}");
        assert!(world.lines().any(|line| line == "libgcc"), "{world}");
        assert!(!world.lines().any(|line| line == "kernel"), "{world}");
        let parsed =
            attendant_proto::apk::parse(apk_installed(&installed).as_bytes(), world.as_bytes())
                .unwrap();
        assert!(parsed.provider("nftables").is_some());
        assert!(parsed.get("libgcc").unwrap().top_level);
        assert_eq!(parsed.get("libgcc").unwrap().package, "libgcc1");
    }
}
