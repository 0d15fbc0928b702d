//! The fixture ImageBuilder: a directory shaped like OpenWrt's
//! `openwrt-imagebuilder-<version>-<target>-<subtarget>.Linux-x86_64/`, driven by GNU make.
//!
//! The top-level `Makefile` has the real targets (`info`, `manifest`, `image`, `clean`, `help`),
//! the same variables (`PROFILE`, `PACKAGES` with `-pkg` removals, `FILES`, `BIN_DIR`,
//! `EXTRA_IMAGE_NAME`, `ROOTFS_PARTSIZE`, `ROOTFS_FILESYSTEM`, `STRIP_ABI`,
//! `SOURCE_DATE_EPOCH`) and the same recursion, so `make info` is printed by make itself from
//! `.profiles.mk` and failures end in make's own `make[N]: *** [...] Error N` lines
//! (what ASU's worker reads, <https://github.com/openwrt/asu/blob/main/asu/build.py>). Where the real one runs opkg/apk and the image
//! recipes, this one runs
//! `staging_dir/host/bin/attendant-ib-helper` (the `attendant-ib-helper` binary of this crate),
//! which reads the data files written here:
//!
//! - `.attendant-imagebuilder.json`: [`ImagebuilderMeta`], the release, target and profiles;
//! - `dl/openwrt_<feed>`: the package lists opkg/apk would have downloaded, in opkg `Packages`
//!   format (also for apk-era ImageBuilders, whose real lists are binary `packages.adb`);
//! - `repositories.conf` (opkg) or `repositories` (apk): which of those lists are used. An opkg
//!   line for any other feed (an extra repository of a build request) is downloaded over HTTP
//!   as opkg does, its `Packages.sig` checked against `keys/<fingerprint>` under
//!   `option check_signature`, with opkg's own messages when that fails.
//!
//! Submodules: [`resolve`] (opkg/apk dependency resolution and their error texts), [`image`]
//! (images, manifest, `profiles.json`, `sha256sums`), [`helper`] (the helper's command line),
//! [`fetch`] (the HTTP download of an extra feed's list).

pub mod fetch;
pub mod helper;
pub mod image;
pub mod resolve;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, Feed, Kernel, Package, PackageManager, Release, Target};

/// Name of the metadata file at the top of the ImageBuilder.
pub const META_FILE: &str = ".attendant-imagebuilder.json";
/// Where the helper sits inside the ImageBuilder.
pub const HELPER_PATH: &str = "staging_dir/host/bin/attendant-ib-helper";
/// The upstream the ImageBuilder's repository lines point at (as in the real archives).
pub const UPSTREAM: &str = "https://downloads.openwrt.org";

/// What the helper knows about its ImageBuilder (`.attendant-imagebuilder.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagebuilderMeta {
    /// `24.10.4`, `SNAPSHOT`.
    pub version: String,
    /// `r29087-0123456789`.
    pub revision: String,
    /// Default `SOURCE_DATE_EPOCH`.
    pub source_date_epoch: u64,
    /// opkg or apk.
    pub package_manager: PackageManager,
    /// The kernel.
    pub kernel: Kernel,
    /// Whether `profiles.json` carries `linux_kernel`.
    pub linux_kernel_in_profiles: bool,
    /// Whether `ROOTFS_FILESYSTEM` is honoured.
    pub rootfs_filesystem_option: bool,
    /// The version part of image names (`24.10.4-`, empty for `SNAPSHOT`).
    pub image_name_version: String,
    /// `DEFAULT_PACKAGES`.
    pub default_packages: Vec<String>,
    /// Target, with its profiles.
    pub target: Target,
    /// Files of packages that clash with their variants (opkg's file clash check).
    pub package_files: BTreeMap<String, Vec<String>>,
}

impl ImagebuilderMeta {
    /// The metadata for `release` and `target`.
    pub fn new(
        catalog: &Catalog,
        release: &Release,
        target: &Target,
        packages: &[Package],
    ) -> Self {
        Self {
            version: release.version.clone(),
            revision: release.revision.clone(),
            source_date_epoch: release.source_date_epoch,
            package_manager: release.package_manager,
            kernel: release.kernel.clone(),
            linux_kernel_in_profiles: release.linux_kernel_in_profiles,
            rootfs_filesystem_option: release.rootfs_filesystem_option,
            image_name_version: release.image_name_version(),
            default_packages: catalog.default_packages(release, target),
            target: target.clone(),
            package_files: packages
                .iter()
                .filter(|p| !p.files.is_empty())
                .map(|p| (p.name.clone(), p.files.clone()))
                .collect(),
        }
    }

    /// `openwrt-imagebuilder-24.10.4-ath79-generic.Linux-x86_64`.
    pub fn dir_name(&self) -> String {
        dir_name(&self.version, &self.target)
    }
}

/// `openwrt-imagebuilder-<version>-<board>-<subtarget>.Linux-x86_64` (snapshots use
/// `openwrt-imagebuilder-<board>-<subtarget>...`, branch snapshots the lowercased version).
pub fn dir_name(version: &str, target: &Target) -> String {
    let version = match version {
        "SNAPSHOT" => String::new(),
        other => format!("{}-", other.to_lowercase()),
    };
    format!(
        "openwrt-imagebuilder-{version}{}-{}.Linux-x86_64",
        target.board, target.subtarget
    )
}

/// One file of the ImageBuilder tree: relative path, contents, executable bit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    /// Path below the ImageBuilder's top directory.
    pub path: String,
    /// Contents.
    pub contents: Vec<u8>,
    /// Whether the file is executable (mode 0755 instead of 0644).
    pub executable: bool,
}

/// Every file of the ImageBuilder for `meta` except the helper binary, sorted by path.
pub fn tree(
    meta: &ImagebuilderMeta,
    packages: &[Package],
) -> Result<Vec<TreeFile>, serde_json::Error> {
    let text = |path: &str, contents: String| TreeFile {
        path: path.to_owned(),
        contents: contents.into_bytes(),
        executable: false,
    };
    let mut files = vec![
        text("Makefile", MAKEFILE.to_owned()),
        text(".config", dot_config(meta)),
        text("include/version.mk", version_mk(meta)),
        text("include/target.mk", target_mk(meta)),
        text(".profiles.mk", profiles_mk(meta)),
        TreeFile {
            path: META_FILE.to_owned(),
            contents: serde_json::to_vec_pretty(meta)?,
            executable: false,
        },
        text("packages/.keep", String::new()),
        text("keys/.keep", String::new()),
    ];
    match meta.package_manager {
        PackageManager::Opkg => files.push(text("repositories.conf", repositories_conf(meta))),
        PackageManager::Apk => files.push(text("repositories", repositories_apk(meta))),
    }
    for feed in Feed::ALL {
        let list = packages_list(
            packages.iter().filter(|p| p.feed == feed),
            meta.package_manager,
        );
        files.push(text(&format!("dl/{}", feed.repository_name()), list));
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// An opkg `Packages` file for `packages` (also the fixture's list format for apk).
pub fn packages_list<'a>(
    packages: impl Iterator<Item = &'a Package>,
    manager: PackageManager,
) -> String {
    let mut out = String::new();
    for package in packages {
        let _ = writeln!(out, "Package: {}", package.name);
        let _ = writeln!(out, "Version: {}", package.version);
        if !package.depends.is_empty() {
            let _ = writeln!(out, "Depends: {}", package.depends.join(", "));
        }
        if !package.provides.is_empty() {
            let _ = writeln!(out, "Provides: {}", package.provides.join(", "));
        }
        if !package.conflicts.is_empty() {
            let _ = writeln!(out, "Conflicts: {}", package.conflicts.join(", "));
        }
        let _ = writeln!(out, "License: GPL-2.0");
        let _ = writeln!(out, "Section: {}", package.section);
        if let Some(abi) = &package.abi_version {
            let _ = writeln!(out, "ABIVersion: {abi}");
        }
        let _ = writeln!(out, "Architecture: {}", package.architecture);
        let _ = writeln!(out, "Installed-Size: {}", package.installed_size);
        let _ = writeln!(out, "Filename: {}", package.filename(manager));
        let _ = writeln!(out, "Size: {}", package.size);
        let _ = writeln!(out, "SHA256sum: {}", package.sha256);
        let _ = writeln!(
            out,
            "Description:  {} (Attendant fixture package)",
            package.base_name
        );
        out.push('\n');
    }
    out
}

/// The URL of a feed of this ImageBuilder's release (`Packages` directory, or the apk
/// `packages.adb` file).
pub fn feed_url(meta: &ImagebuilderMeta, release_path: &str, feed: Feed) -> String {
    let target = &meta.target;
    let base = match feed.arch_dir() {
        Some(dir) => format!(
            "{UPSTREAM}/{release_path}/packages/{}/{dir}",
            target.arch_packages
        ),
        None if feed == Feed::Kmods => format!(
            "{UPSTREAM}/{release_path}/targets/{}/{}/kmods/{}",
            target.board,
            target.subtarget,
            meta.kernel.kmods_dir()
        ),
        None => format!(
            "{UPSTREAM}/{release_path}/targets/{}/{}/packages",
            target.board, target.subtarget
        ),
    };
    match meta.package_manager {
        PackageManager::Opkg => base,
        PackageManager::Apk => format!("{base}/packages.adb"),
    }
}

/// The mirror directory of a release version (`releases/24.10.4`, `snapshots`).
pub fn release_path(version: &str) -> String {
    if version == "SNAPSHOT" {
        "snapshots".to_owned()
    } else {
        format!("releases/{version}")
    }
}

fn repositories_conf(meta: &ImagebuilderMeta) -> String {
    let path = release_path(&meta.version);
    let mut out = String::from(
        "## Place your custom repositories here, they must match the architecture and version.\n\
         # src/gz %n https://downloads.openwrt.org/releases/%v\n\
         # src custom file:///usr/src/openwrt/bin/ramips/packages\n\n",
    );
    for feed in Feed::ALL {
        let _ = writeln!(
            out,
            "src/gz {} {}",
            feed.repository_name(),
            feed_url(meta, &path, feed)
        );
    }
    out.push_str("\n## This is the local package repository, do not remove!\nsrc imagebuilder file:packages\n\noption check_signature\n");
    out
}

fn repositories_apk(meta: &ImagebuilderMeta) -> String {
    let path = release_path(&meta.version);
    let mut out = String::new();
    for feed in Feed::ALL {
        let _ = writeln!(out, "{}", feed_url(meta, &path, feed));
    }
    out
}

fn dot_config(meta: &ImagebuilderMeta) -> String {
    let target = &meta.target;
    let mut out = String::new();
    let _ = writeln!(out, "CONFIG_TARGET_{}=y", target.board);
    let _ = writeln!(out, "CONFIG_TARGET_{}_{}=y", target.board, target.subtarget);
    for fs in &target.filesystems {
        let name = if fs == "ext4" { "EXT4FS" } else { "SQUASHFS" };
        let _ = writeln!(out, "CONFIG_TARGET_ROOTFS_{name}=y");
    }
    if let Some(size) = target.rootfs_partsize_mb {
        let _ = writeln!(out, "CONFIG_TARGET_ROOTFS_PARTSIZE={size}");
    }
    if meta.package_manager == PackageManager::Apk {
        out.push_str("CONFIG_USE_APK=y\n");
    }
    out.push_str("CONFIG_JSON_OVERVIEW_IMAGE_INFO=y\n");
    let _ = writeln!(out, "CONFIG_VERSION_DIST=\"OpenWrt\"");
    let _ = writeln!(out, "CONFIG_VERSION_NUMBER=\"{}\"", meta.version);
    let _ = writeln!(out, "CONFIG_VERSION_CODE=\"{}\"", meta.revision);
    out
}

fn version_mk(meta: &ImagebuilderMeta) -> String {
    format!(
        "VERSION_DIST:=OpenWrt\nVERSION_NUMBER:={}\nVERSION_CODE:={}\nREVISION:=$(VERSION_CODE)\nSOURCE_DATE_EPOCH?={}\n",
        meta.version, meta.revision, meta.source_date_epoch
    )
}

fn target_mk(meta: &ImagebuilderMeta) -> String {
    let target = &meta.target;
    format!(
        "BOARD:={}\nSUBTARGET:={}\nARCH:={}\nARCH_PACKAGES:={}\nDEFAULT_PACKAGES:={}\n",
        target.board,
        target.subtarget,
        target.arch,
        target.arch_packages,
        meta.default_packages.join(" ")
    )
}

fn profiles_mk(meta: &ImagebuilderMeta) -> String {
    let profiles = &meta.target.profiles;
    let names: Vec<String> = profiles
        .iter()
        .map(|p| format!("DEVICE_{}", p.id))
        .collect();
    let mut out = format!("PROFILE_NAMES = {}\n", names.join(" "));
    for profile in profiles {
        let var = format!("DEVICE_{}", profile.id);
        let metadata = u8::from(profile.images.iter().any(|i| i.metadata));
        let _ = writeln!(out, "{var}_NAME:={}", profile.title.text());
        let _ = writeln!(out, "{var}_PACKAGES:={}", profile.device_packages.join(" "));
        let _ = writeln!(out, "{var}_HAS_IMAGE_METADATA:={metadata}");
        if !profile.supported_devices.is_empty() {
            let _ = writeln!(
                out,
                "{var}_SUPPORTED_DEVICES:={}",
                profile.supported_devices.join(" ")
            );
        }
    }
    out
}

/// The ImageBuilder's top-level Makefile (see the module docs).
const MAKEFILE: &str = r#"# Makefile of the Attendant fixture ImageBuilder.
#
# Shaped like OpenWrt's target/imagebuilder/files/Makefile: the same targets, variables and
# recursion, so the output and the failures look the same to a caller such as ASU. Package
# installation and the image recipes run in staging_dir/host/bin/attendant-ib-helper, which
# reads .attendant-imagebuilder.json, the repositories file and the package lists in dl/.

TOPDIR:=${CURDIR}
LC_ALL:=C
LANG:=C
export TOPDIR LC_ALL LANG
all: help

export PATH:=$(TOPDIR)/staging_dir/host/bin:$(PATH)

include $(TOPDIR)/.config
include $(TOPDIR)/include/version.mk
include $(TOPDIR)/include/target.mk
-include $(TOPDIR)/.profiles.mk

export REVISION
export SOURCE_DATE_EPOCH

HELPER:=$(TOPDIR)/staging_dir/host/bin/attendant-ib-helper
BIN_DIR?=$(TOPDIR)/bin/targets/$(BOARD)/$(SUBTARGET)

help: FORCE
	echo 'Available Commands:'
	echo '	help:	This help text'
	echo '	info:	Show a list of available target profiles'
	echo '	clean:	Remove images and temporary build files'
	echo '	image:	Build an image (PROFILE, PACKAGES, FILES, BIN_DIR, EXTRA_IMAGE_NAME,'
	echo '		ROOTFS_PARTSIZE, ROOTFS_FILESYSTEM)'
	echo '	manifest: Show all package that will be installed into the image (PROFILE,'
	echo '		PACKAGES, STRIP_ABI=1)'

# The profile list of `make info`: id, title, packages, metadata flag, supported devices.
USER_PROFILE ?= $(firstword $(PROFILE_NAMES))
PROFILE_LIST = $(foreach p,$(PROFILE_NAMES), \
	echo '$(patsubst DEVICE_%,%,$(p)):'; \
	$(if $($(p)_NAME),echo '    $(subst ','"'"',$($(p)_NAME))'; ) \
	echo '    Packages: $($(p)_PACKAGES)'; \
	echo '    hasImageMetadata: $($(p)_HAS_IMAGE_METADATA)'; \
	$(if $($(p)_SUPPORTED_DEVICES),echo '    SupportedDevices: $($(p)_SUPPORTED_DEVICES)';) )

_call_info: FORCE
	echo 'Current Target: "$(BOARD)/$(SUBTARGET)"'
	echo 'Current Architecture: "$(ARCH)"'
	echo 'Current Revision: "$(REVISION)"'
	echo 'Default Packages: $(DEFAULT_PACKAGES)'
	echo 'Available Profiles:'
	echo; $(PROFILE_LIST)

# Default and profile packages (sorted, plus the kernel), then the user's packages in front;
# each "-name" removes "name" and itself from the list.
removals = $(filter -%,$(1)) $(patsubst -%,%,$(filter -%,$(1)))
BASE_PACKAGES:=$(sort $(DEFAULT_PACKAGES) $($(USER_PROFILE)_PACKAGES) kernel)
BASE_PACKAGES:=$(filter-out $(call removals,$(BASE_PACKAGES)),$(BASE_PACKAGES))
BUILD_PACKAGES:=$(USER_PACKAGES) $(BASE_PACKAGES)
BUILD_PACKAGES:=$(filter-out $(call removals,$(BUILD_PACKAGES)),$(BUILD_PACKAGES))
PACKAGES:=

package_install: FORCE
	@echo
	@echo Installing packages...
	$(HELPER) install TOPDIR="$(TOPDIR)" PACKAGES="$(BUILD_PACKAGES)"

_call_manifest: FORCE
	$(MAKE) package_install >/dev/null
	$(HELPER) manifest TOPDIR="$(TOPDIR)" PACKAGES="$(BUILD_PACKAGES)" STRIP_ABI="$(STRIP_ABI)"

_call_image: FORCE
	echo 'Building images for $(BOARD)$(if $($(USER_PROFILE)_NAME), - $($(USER_PROFILE)_NAME))'
	echo 'Packages: $(BUILD_PACKAGES)'
	echo
	mkdir -p "$(BIN_DIR)"
	$(MAKE) package_install
	$(MAKE) -s build_image

build_image: FORCE
	@echo
	@echo Building images...
	$(HELPER) image TOPDIR="$(TOPDIR)" PROFILE="$(USER_PROFILE)" PACKAGES="$(BUILD_PACKAGES)" \
		BIN_DIR="$(BIN_DIR)" FILES="$(USER_FILES)" EXTRA_IMAGE_NAME="$(EXTRA_IMAGE_NAME)" \
		ROOTFS_PARTSIZE="$(CONFIG_TARGET_ROOTFS_PARTSIZE)" ROOTFS_FILESYSTEM="$(ROOTFS_FILESYSTEM)" \
		SOURCE_DATE_EPOCH="$(SOURCE_DATE_EPOCH)"

clean:
	rm -rf $(TOPDIR)/tmp $(TOPDIR)/build_dir $(BIN_DIR)

info:
	(unset PROFILE FILES PACKAGES MAKEFLAGS; $(MAKE) -s _call_info)

PROFILE_FILTER = $(filter DEVICE_$(PROFILE) $(PROFILE),$(PROFILE_NAMES))

_check_profile: FORCE
ifneq ($(PROFILE),)
  ifeq ($(PROFILE_FILTER),)
	@echo 'Profile "$(PROFILE)" does not exist!'
	@echo 'Use "make info" to get a list of available profile names.'
	@exit 1
  endif
endif

image:
	$(MAKE) -s _check_profile
	(unset PROFILE FILES PACKAGES MAKEFLAGS; \
	$(MAKE) -s _call_image \
		$(if $(PROFILE),USER_PROFILE="$(PROFILE_FILTER)") \
		$(if $(FILES),USER_FILES="$(FILES)") \
		$(if $(PACKAGES),USER_PACKAGES="$(PACKAGES)") \
		$(if $(BIN_DIR),BIN_DIR="$(BIN_DIR)") \
		$(if $(ROOTFS_PARTSIZE),CONFIG_TARGET_ROOTFS_PARTSIZE="$(ROOTFS_PARTSIZE)"))

manifest: FORCE
	$(MAKE) -s _check_profile
	(unset PROFILE FILES PACKAGES MAKEFLAGS; \
	$(MAKE) -s _call_manifest \
		$(if $(PROFILE),USER_PROFILE="$(PROFILE_FILTER)") \
		$(if $(PACKAGES),USER_PACKAGES="$(PACKAGES)"))

FORCE: ;

.SILENT: help info image manifest
.PHONY: FORCE help info image manifest clean package_install build_image
"#;
