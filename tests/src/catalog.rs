//! The fixture's package universe: releases, targets, device profiles and packages.
//!
//! The structure is fixed (the same releases, targets, profiles and package names for every
//! seed); the seed varies the git hashes in revisions and package versions, the kernel
//! vermagic and everything derived from them. Facts follow downloads.openwrt.org and the
//! ImageBuilder (<https://downloads.openwrt.org>, <https://openwrt.org/docs/guide-user/additional-software/imagebuilder>):
//!
//! - releases `24.10.4`, `24.10.5` and `24.10-SNAPSHOT` use opkg, `25.12.1` and `SNAPSHOT` apk;
//! - targets `x86/64`, `ath79/generic` and `mediatek/filogic`, each with realistic profiles;
//! - packages carry ABI versions named the way OpenWrt's `FormatABISuffix` names them
//!   (`libubox20240329`, and `libpython3-3.11` with a `-` after a name ending in a digit),
//!   dependencies, provides, conflicts and realistic installed sizes;
//! - renames follow the real releases and the branches' `package_changes`: `auc` left the
//!   packages feed before 24.10 branched (r26792 < 27990, so neither fixture release has it;
//!   ASU builds a request for it with `owut`), `luci-app-opkg` was renamed to
//!   `luci-app-package-manager` before 24.10 too (r27897, luci#7751: "there is no luci-app-opkg
//!   in 24.10"), which keeps the old name as a `Provides`; `opkg` gives way to `apk-mbedtls` in
//!   25.12 and `px5g-wolfssl` is dropped there.
//!
//! The package table is a text table (one row per package) because a table of ~130 packages
//! reads far better as text than as Rust struct literals; the unit test `package_table_is_well_formed`
//! checks every row.
//!
//! The file stays one although it is about 1,300 lines: some 400 of them are data (the release
//! table, the three targets' profiles, the package table) and 180 the tests that check those
//! tables against each other; the rest are the types the data fills in and the queries the
//! mirror writer, the ImageBuilder stand-in and the router root ask. A new fact (a package
//! field, a profile attribute) changes a type, its rows and its check together, which is easiest
//! to review in one place.

use serde::{Deserialize, Serialize};

use crate::seed::Seed;

/// The package manager of a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageManager {
    /// opkg (`.ipk`, `Packages` indexes), up to 24.10.
    Opkg,
    /// apk-tools 3 (`.apk`, `packages.adb`), 25.12 and snapshots.
    Apk,
}

/// The package-version generation of a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Era {
    /// 24.10 branch versions.
    V2410,
    /// 25.12 branch (and main) versions.
    V2512,
}

/// The kernel of a release, as `profiles.json` `linux_kernel` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kernel {
    /// Kernel version, e.g. `6.6.110`.
    pub version: String,
    /// Package release, e.g. `1`.
    pub release: String,
    /// 32 hex digits identifying the kernel configuration.
    pub vermagic: String,
}

impl Kernel {
    /// The `kmods/` directory name, `<version>-<release>-<vermagic>`.
    pub fn kmods_dir(&self) -> String {
        format!("{}-{}-{}", self.version, self.release, self.vermagic)
    }
}

/// One release (or snapshot) on the mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// `24.10.4`, `SNAPSHOT`, `24.10-SNAPSHOT`.
    pub version: String,
    /// Directory under the mirror root: `releases/24.10.4`, `snapshots`.
    pub path: String,
    /// Revision, `r28427-6df0e3d02a`.
    pub revision: String,
    /// Reproducible-build timestamp of the release.
    pub source_date_epoch: u64,
    /// opkg or apk.
    pub package_manager: PackageManager,
    /// Which package versions it carries.
    pub era: Era,
    /// The kernel.
    pub kernel: Kernel,
    /// Whether its ImageBuilder honours `ROOTFS_FILESYSTEM` (openwrt PR 23425; older ones
    /// ignore it).
    pub rootfs_filesystem_option: bool,
    /// Whether `profiles.json` carries `linux_kernel`.
    pub linux_kernel_in_profiles: bool,
}

impl Release {
    /// Whether this is a snapshot (`SNAPSHOT` or `<branch>-SNAPSHOT`).
    pub fn is_snapshot(&self) -> bool {
        self.version.ends_with("SNAPSHOT")
    }

    /// The git hash part of the revision (`6df0e3d02a`).
    pub fn revision_hash(&self) -> &str {
        self.revision.rsplit('-').next().unwrap_or("")
    }

    /// The version part of image names (`IMG_PREFIX_VERNUM` + `IMG_PREFIX_VERCODE`): releases
    /// put their version (`24.10.4-`), branch snapshots their lowercased version and revision
    /// (`24.10-snapshot-r29300-0a1b2c3d4e-`), `SNAPSHOT` nothing.
    pub fn image_name_version(&self) -> String {
        if self.version == "SNAPSHOT" {
            String::new()
        } else if self.is_snapshot() {
            format!("{}-{}-", self.version.to_lowercase(), self.revision)
        } else {
            format!("{}-", self.version)
        }
    }
}

/// One image a profile produces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSpec {
    /// `type` in `profiles.json`: `sysupgrade`, `factory`, `combined`, `kernel`, ...
    pub kind: String,
    /// File name suffix after `<prefix>-<filesystem>-`, e.g. `sysupgrade.bin`.
    pub suffix: String,
    /// A fixed filesystem (`initramfs`); `None` means one image per rootfs filesystem.
    pub fixed_filesystem: Option<String>,
    /// Whether the image carries an fwtool metadata trailer.
    pub metadata: bool,
    /// Whether the image is a gzip stream (`.img.gz`).
    pub gzip: bool,
    /// Whether the flash size limit (`check-size`) applies to it.
    pub size_checked: bool,
}

/// A device title: vendor/model/variant, or a single free-form title.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Title {
    /// `{"vendor", "model", "variant"?}`.
    Device {
        /// Vendor, `TP-Link`.
        vendor: String,
        /// Model, `Archer C7`.
        model: String,
        /// Variant, `v5`.
        #[serde(skip_serializing_if = "Option::is_none")]
        variant: Option<String>,
    },
    /// `{"title"}`.
    Free {
        /// The title, `Generic x86/64`.
        title: String,
    },
}

impl Title {
    /// The one-line title `make info` prints.
    pub fn text(&self) -> String {
        match self {
            Self::Device {
                vendor,
                model,
                variant: Some(variant),
            } => format!("{vendor} {model} {variant}"),
            Self::Device { vendor, model, .. } => format!("{vendor} {model}"),
            Self::Free { title } => title.clone(),
        }
    }
}

/// A device profile of a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Profile id, `tplink_archer-c7-v5`.
    pub id: String,
    /// Device title.
    pub title: Title,
    /// Profile packages (`-pkg` removes a default package).
    pub device_packages: Vec<String>,
    /// Board names the images install on.
    pub supported_devices: Vec<String>,
    /// Flash size limit of the sysupgrade/factory images, KiB (`IMAGE_SIZE`).
    pub image_size_kib: Option<u64>,
    /// `DEVICE_COMPAT_VERSION`, when not `1.0`.
    pub compat_version: Option<String>,
    /// `DEVICE_COMPAT_MESSAGE`.
    pub compat_message: Option<String>,
    /// The images it produces.
    pub images: Vec<ImageSpec>,
}

/// A target/subtarget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// `ath79`.
    pub board: String,
    /// `generic`.
    pub subtarget: String,
    /// Package architecture, `mips_24kc`.
    pub arch_packages: String,
    /// Kernel architecture (`make info` `Current Architecture`), `mips`.
    pub arch: String,
    /// Root filesystems built, `squashfs`, `ext4`.
    pub filesystems: Vec<String>,
    /// Size of the kernel part of an image, KiB (for the size check).
    pub kernel_kib: u64,
    /// Default rootfs partition size in MiB (`CONFIG_TARGET_ROOTFS_PARTSIZE`), x86 only.
    pub rootfs_partsize_mb: Option<u64>,
    /// Packages the target adds to the default set.
    pub extra_default_packages: Vec<String>,
    /// Device profiles.
    pub profiles: Vec<Profile>,
}

impl Target {
    /// `ath79/generic`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.board, self.subtarget)
    }

    /// The profile with this id.
    pub fn profile(&self, id: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.id == id)
    }
}

/// Where a package is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Feed {
    /// `targets/<t>/<s>/packages/`: base-files, kernel, libc, firmware.
    Core,
    /// `targets/<t>/<s>/kmods/<kernel>/`.
    Kmods,
    /// `packages/<arch>/base/`.
    Base,
    /// `packages/<arch>/luci/`.
    Luci,
    /// `packages/<arch>/packages/`.
    Packages,
    /// `packages/<arch>/routing/`.
    Routing,
    /// `packages/<arch>/telephony/`.
    Telephony,
}

impl Feed {
    /// Every feed, in `repositories.conf` order.
    pub const ALL: [Feed; 7] = [
        Feed::Core,
        Feed::Base,
        Feed::Kmods,
        Feed::Luci,
        Feed::Packages,
        Feed::Routing,
        Feed::Telephony,
    ];

    /// The feed name in `repositories.conf` (`openwrt_core`) and `dl/`.
    pub fn repository_name(self) -> &'static str {
        match self {
            Feed::Core => "openwrt_core",
            Feed::Kmods => "openwrt_kmods",
            Feed::Base => "openwrt_base",
            Feed::Luci => "openwrt_luci",
            Feed::Packages => "openwrt_packages",
            Feed::Routing => "openwrt_routing",
            Feed::Telephony => "openwrt_telephony",
        }
    }

    /// The feed's directory below `packages/<arch>/` for arch feeds.
    pub fn arch_dir(self) -> Option<&'static str> {
        match self {
            Feed::Base => Some("base"),
            Feed::Luci => Some("luci"),
            Feed::Packages => Some("packages"),
            Feed::Routing => Some("routing"),
            Feed::Telephony => Some("telephony"),
            Feed::Core | Feed::Kmods => None,
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "core" => Feed::Core,
            "kmods" => Feed::Kmods,
            "base" => Feed::Base,
            "luci" => Feed::Luci,
            "packages" => Feed::Packages,
            "routing" => Feed::Routing,
            "telephony" => Feed::Telephony,
            _ => return None,
        })
    }
}

/// One package of one release and target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// Name as published, with the ABI suffix (`libubox20240329`).
    pub name: String,
    /// Name without the ABI suffix (`libubox`).
    pub base_name: String,
    /// `ABIVersion`.
    pub abi_version: Option<String>,
    /// Version.
    pub version: String,
    /// `all` or the package architecture.
    pub architecture: String,
    /// `Depends`, as published (ABI names, `kernel (=...)`).
    pub depends: Vec<String>,
    /// `Provides`.
    pub provides: Vec<String>,
    /// `Conflicts`.
    pub conflicts: Vec<String>,
    /// Files shared with variants (dnsmasq/dnsmasq-full), for opkg's file clash check.
    pub files: Vec<String>,
    /// `Installed-Size`, bytes.
    pub installed_size: u64,
    /// `Size` (the `.ipk`/`.apk`), bytes.
    pub size: u64,
    /// `SHA256sum` of the package file.
    pub sha256: String,
    /// Where it is published.
    pub feed: Feed,
    /// `Section`.
    pub section: String,
}

impl Package {
    /// The package file name (`libubox20240329_2024.03.29~eb9bcb64-r1_mips_24kc.ipk`, or
    /// `libubox20240329-2024.03.29~eb9bcb64-r1.apk`).
    pub fn filename(&self, manager: PackageManager) -> String {
        match manager {
            PackageManager::Opkg => {
                format!("{}_{}_{}.ipk", self.name, self.version, self.architecture)
            }
            PackageManager::Apk => format!("{}-{}.apk", self.name, self.version),
        }
    }
}

/// The whole fixture universe for one seed.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// The seed.
    pub seed: Seed,
    /// Every release, newest first.
    pub releases: Vec<Release>,
    /// Every target (the same for every release).
    pub targets: Vec<Target>,
}

impl Catalog {
    /// The catalogue for `seed`.
    pub fn new(seed: Seed) -> Self {
        Self {
            seed,
            releases: releases(seed),
            targets: targets(),
        }
    }

    /// The release with this version.
    pub fn release(&self, version: &str) -> Option<&Release> {
        self.releases.iter().find(|r| r.version == version)
    }

    /// The target `board/subtarget`.
    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name() == name)
    }

    /// `.versions.json`.
    pub fn versions_json(&self) -> serde_json::Value {
        serde_json::json!({
            "oldstable_version": "24.10.5",
            "stable_version": "25.12.1",
            "upcoming_version": "",
            "versions_list": ["25.12.1", "24.10.5", "24.10.4"],
        })
    }

    /// `DEFAULT_PACKAGES` of the ImageBuilder for `release` and `target`, in `make info` order.
    pub fn default_packages(&self, release: &Release, target: &Target) -> Vec<String> {
        let mut packages: Vec<String> = [
            "base-files",
            "ca-bundle",
            "dropbear",
            "fstools",
            "libc",
            "libgcc",
            "libustream-mbedtls",
            "logd",
            "mtd",
            "netifd",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        packages.push(
            match release.package_manager {
                PackageManager::Opkg => "opkg",
                PackageManager::Apk => "apk-mbedtls",
            }
            .to_owned(),
        );
        for name in [
            "uci",
            "uclient-fetch",
            "urandom-seed",
            "urngd",
            "dnsmasq",
            "firewall4",
            "nftables",
            "kmod-nft-offload",
            "odhcp6c",
            "odhcpd-ipv6only",
            "ppp",
            "ppp-mod-pppoe",
            "procd-ujail",
        ] {
            packages.push(name.to_owned());
        }
        packages.extend(target.extra_default_packages.iter().cloned());
        if release.version != "SNAPSHOT" {
            // Release builds (and branch snapshots) enable LuCI, so their ImageBuilder's
            // default set includes it; main-branch snapshots do not.
            packages.push("luci".to_owned());
        }
        packages
    }

    /// Every package of `release` for `target`, from every feed, sorted by name.
    pub fn packages(&self, release: &Release, target: &Target) -> Vec<Package> {
        let rows = table();
        let mut packages = Vec::new();
        for row in &rows {
            if let Some(package) = self.package(release, target, row, &rows) {
                packages.push(package);
            }
        }
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        packages
    }

    fn package(
        &self,
        release: &Release,
        target: &Target,
        row: &Row,
        rows: &[Row],
    ) -> Option<Package> {
        if !row.only.is_empty() && !row.only.split(' ').any(|b| b == target.board) {
            return None;
        }
        let version = self.expand_version(release, row, row.version(release.era)?);
        let abi_version = row
            .abi(release.era)
            .map(|abi| format_abi_suffix(row.name, abi));
        let name = format!("{}{}", row.name, abi_version.as_deref().unwrap_or(""));
        let mut depends = Vec::new();
        if row.feed == Feed::Kmods {
            depends.push(format!("kernel (={})", kernel_package_version(release)));
        }
        for dep in row.depends(release.era) {
            // Depends name the ABI-versioned package, like the real indexes do.
            let published = rows
                .iter()
                .find(|r| r.name == dep)
                .and_then(|r| r.abi(release.era))
                .map_or_else(
                    || dep.to_owned(),
                    |abi| format!("{dep}{}", format_abi_suffix(dep, abi)),
                );
            depends.push(published);
        }
        let mut provides: Vec<String> = split(row.provides);
        if abi_version.is_some() {
            provides.insert(0, row.name.to_owned());
        }
        let architecture = if row.arch_all {
            "all".to_owned()
        } else {
            target.arch_packages.clone()
        };
        let installed_size = row.kib.saturating_mul(1024);
        let label = format!("{}/{}/{}", release.version, target.name(), name);
        Some(Package {
            base_name: row.name.to_owned(),
            abi_version,
            version,
            architecture,
            depends,
            provides,
            conflicts: split(row.conflicts),
            files: split(row.files),
            installed_size,
            size: installed_size.saturating_mul(2) / 5 + self.seed.below(&label, 4096),
            sha256: self.seed.hex(&format!("sha256 {label}"), 64),
            feed: row.feed,
            section: section(row),
            name,
        })
    }

    fn expand_version(&self, release: &Release, row: &Row, template: &str) -> String {
        let git = self
            .seed
            .hex(&format!("git {} {:?}", row.name, release.era), 8);
        template
            .replace("$KVER", &release.kernel.version)
            .replace("$KPKG", &kernel_package_version(release))
            .replace("$REV", release.revision_hash())
            .replace('@', &git)
    }
}

/// OpenWrt's `FormatABISuffix` (`include/feeds.mk`): the suffix an ABI-versioned package's name
/// carries, which is also what its `ABIVersion:` field and `openwrt:abiversion=` tag record. A
/// name ending in a digit gets a `-` first (`libpython3` + `3.11` → `libpython3-3.11`); kernel
/// modules never get one.
fn format_abi_suffix(name: &str, abi_version: &str) -> String {
    if name.starts_with("kmod-") || abi_version.is_empty() {
        String::new()
    } else if name.ends_with(|c: char| c.is_ascii_digit()) {
        format!("-{abi_version}")
    } else {
        abi_version.to_owned()
    }
}

/// The `kernel` package version: `6.6.110~<vermagic>-r1`.
fn kernel_package_version(release: &Release) -> String {
    format!(
        "{}~{}-r{}",
        release.kernel.version, release.kernel.vermagic, release.kernel.release
    )
}

fn section(row: &Row) -> String {
    match row.feed {
        Feed::Kmods => "kernel",
        Feed::Luci => "luci",
        Feed::Core if row.name.contains("firmware") => "firmware",
        _ if row.name.starts_with("lib") => "libs",
        _ => "base",
    }
    .to_owned()
}

fn split(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

fn releases(seed: Seed) -> Vec<Release> {
    // (version, path, revision number, source_date_epoch, manager, era, kernel, release)
    let rows = [
        (
            "SNAPSHOT",
            "snapshots",
            32841,
            1_767_139_200,
            PackageManager::Apk,
            Era::V2512,
            "6.12.63",
        ),
        (
            "25.12.1",
            "releases/25.12.1",
            32422,
            1_766_102_400,
            PackageManager::Apk,
            Era::V2512,
            "6.12.58",
        ),
        (
            "24.10-SNAPSHOT",
            "releases/24.10-SNAPSHOT",
            29302,
            1_766_707_200,
            PackageManager::Opkg,
            Era::V2410,
            "6.6.119",
        ),
        (
            "24.10.5",
            "releases/24.10.5",
            29237,
            1_765_238_400,
            PackageManager::Opkg,
            Era::V2410,
            "6.6.116",
        ),
        (
            "24.10.4",
            "releases/24.10.4",
            29087,
            1_761_004_800,
            PackageManager::Opkg,
            Era::V2410,
            "6.6.110",
        ),
    ];
    rows.iter()
        .map(
            |&(version, path, number, epoch, manager, era, kernel)| Release {
                version: version.to_owned(),
                path: path.to_owned(),
                revision: format!("r{number}-{}", seed.hex(&format!("revision {version}"), 10)),
                source_date_epoch: epoch,
                package_manager: manager,
                era,
                kernel: Kernel {
                    version: kernel.to_owned(),
                    release: "1".to_owned(),
                    vermagic: seed.hex(&format!("vermagic {version}"), 32),
                },
                rootfs_filesystem_option: era == Era::V2512,
                linux_kernel_in_profiles: era == Era::V2512,
            },
        )
        .collect()
}

fn image(
    kind: &str,
    suffix: &str,
    fixed: Option<&str>,
    metadata: bool,
    size_checked: bool,
) -> ImageSpec {
    ImageSpec {
        kind: kind.to_owned(),
        suffix: suffix.to_owned(),
        fixed_filesystem: fixed.map(str::to_owned),
        metadata,
        gzip: suffix.ends_with(".gz"),
        size_checked,
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "a flat constructor keeps the profile table readable"
)]
fn profile(
    id: &str,
    title: Title,
    device_packages: &str,
    supported_devices: &str,
    image_size_kib: Option<u64>,
    compat: Option<(&str, &str)>,
    images: Vec<ImageSpec>,
    _note: &str,
) -> Profile {
    Profile {
        id: id.to_owned(),
        title,
        device_packages: split(device_packages),
        supported_devices: split(supported_devices),
        image_size_kib,
        compat_version: compat.map(|(v, _)| v.to_owned()),
        compat_message: compat.map(|(_, m)| m.to_owned()),
        images,
    }
}

fn device(vendor: &str, model: &str, variant: Option<&str>) -> Title {
    Title::Device {
        vendor: vendor.to_owned(),
        model: model.to_owned(),
        variant: variant.map(str::to_owned),
    }
}

/// Every target of the fixture, in the order the mirror lists them.
fn targets() -> Vec<Target> {
    vec![ath79_generic(), mediatek_filogic(), x86_64()]
}

fn ath79_generic() -> Target {
    let ath79_images = || {
        vec![
            image("sysupgrade", "sysupgrade.bin", None, true, true),
            image("factory", "factory.bin", None, true, true),
            image("kernel", "kernel.bin", Some("initramfs"), false, false),
        ]
    };
    Target {
        board: "ath79".to_owned(),
        subtarget: "generic".to_owned(),
        arch_packages: "mips_24kc".to_owned(),
        arch: "mips".to_owned(),
        filesystems: vec!["squashfs".to_owned()],
        kernel_kib: 2304,
        rootfs_partsize_mb: None,
        extra_default_packages: split(
            "kmod-gpio-button-hotplug swconfig kmod-ath9k wpad-basic-mbedtls uboot-envtools",
        ),
        profiles: vec![
            profile(
                "tplink_archer-c7-v2",
                device("TP-Link", "Archer C7", Some("v2")),
                "kmod-ath10k-ct ath10k-firmware-qca988x-ct",
                "tplink,archer-c7-v2 archer-c7-v2",
                Some(15872),
                None,
                ath79_images(),
                "",
            ),
            profile(
                "tplink_archer-c7-v5",
                device("TP-Link", "Archer C7", Some("v5")),
                "kmod-ath10k-ct ath10k-firmware-qca988x-ct",
                "tplink,archer-c7-v5",
                Some(15104),
                None,
                ath79_images(),
                "",
            ),
            profile(
                "tplink_tl-wr902ac-v1",
                device("TP-Link", "TL-WR902AC", Some("v1")),
                "kmod-ath10k-ct ath10k-firmware-qca9887-ct -swconfig -uboot-envtools",
                "tplink,tl-wr902ac-v1",
                Some(7360),
                None,
                ath79_images(),
                "small flash",
            ),
            profile(
                "ubnt_unifiac-lite",
                device("Ubiquiti", "UniFi AC Lite", None),
                "kmod-ath10k-ct ath10k-firmware-qca988x-ct -swconfig",
                "ubnt,unifiac-lite",
                Some(15744),
                Some((
                    "2.0",
                    "Partition layout has changed; sysupgrade from an older release cannot keep the configuration.",
                )),
                vec![
                    image("sysupgrade", "sysupgrade.bin", None, true, true),
                    image("kernel", "kernel.bin", Some("initramfs"), false, false),
                ],
                "compat_version 2.0",
            ),
        ],
    }
}

fn mediatek_filogic() -> Target {
    Target {
        board: "mediatek".to_owned(),
        subtarget: "filogic".to_owned(),
        arch_packages: "aarch64_cortex-a53".to_owned(),
        arch: "aarch64".to_owned(),
        filesystems: vec!["squashfs".to_owned()],
        kernel_kib: 5120,
        rootfs_partsize_mb: None,
        extra_default_packages: split(
            "kmod-gpio-button-hotplug kmod-leds-gpio wpad-basic-mbedtls uboot-envtools fitblk",
        ),
        profiles: vec![
            profile(
                "bananapi_bpi-r4",
                device("Bananapi", "BPI-R4", None),
                "kmod-mt7996-firmware kmod-usb3 e2fsprogs f2fsck mkf2fs",
                "bananapi,bpi-r4",
                None,
                None,
                vec![
                    image("sysupgrade", "sysupgrade.itb", None, true, false),
                    image("sdcard", "sdcard.img.gz", None, true, false),
                ],
                "",
            ),
            profile(
                "glinet_gl-mt6000",
                device("GL.iNet", "GL-MT6000", None),
                "e2fsprogs f2fsck mkf2fs kmod-usb3 kmod-mt7915e kmod-mt7986-firmware mt7986-wo-firmware",
                "glinet,gl-mt6000",
                None,
                None,
                vec![
                    image("sysupgrade", "sysupgrade.bin", None, true, false),
                    image("kernel", "kernel.bin", Some("initramfs"), false, false),
                ],
                "",
            ),
            profile(
                "openwrt_one",
                device("OpenWrt", "One", None),
                "kmod-mt7915e kmod-mt7981-firmware mt7981-wo-firmware kmod-rtc-pcf8563 kmod-usb3 kmod-nvme",
                "openwrt,one",
                None,
                None,
                vec![
                    image("sysupgrade", "sysupgrade.itb", None, true, false),
                    image("factory", "factory.ubi", None, false, false),
                ],
                "",
            ),
        ],
    }
}

fn x86_64() -> Target {
    Target {
        board: "x86".to_owned(),
        subtarget: "64".to_owned(),
        arch_packages: "x86_64".to_owned(),
        arch: "x86_64".to_owned(),
        filesystems: vec!["ext4".to_owned(), "squashfs".to_owned()],
        kernel_kib: 6144,
        rootfs_partsize_mb: Some(104),
        extra_default_packages: split(
            "kmod-button-hotplug kmod-e1000e kmod-igc kmod-r8169 partx-utils mkf2fs e2fsprogs grub2-bios-setup",
        ),
        profiles: vec![profile(
            "generic",
            Title::Free {
                title: "Generic x86/64".to_owned(),
            },
            "kmod-e1000 kmod-igb kmod-ixgbe kmod-fs-vfat",
            "",
            None,
            None,
            // x86 profiles list no supported devices (the board name comes from DMI), so a
            // metadata trailer could only say "no device is supported" and sysupgrade's
            // fwtool_check_image would refuse every x86 router; the images go without one
            // and sysupgrade falls back to platform_check_image.
            vec![
                image("combined", "combined.img.gz", None, false, false),
                image("combined-efi", "combined-efi.img.gz", None, false, false),
                image("rootfs", "rootfs.img.gz", None, false, false),
            ],
            "",
        )],
    }
}

/// One row of the package table.
#[derive(Debug, Clone)]
struct Row {
    name: &'static str,
    feed: Feed,
    abi24: &'static str,
    abi25: &'static str,
    version24: &'static str,
    version25: &'static str,
    kib: u64,
    arch_all: bool,
    only: &'static str,
    depends: &'static str,
    provides: &'static str,
    conflicts: &'static str,
    files: &'static str,
}

impl Row {
    fn version(&self, era: Era) -> Option<&'static str> {
        let version = match era {
            Era::V2410 => self.version24,
            Era::V2512 => self.version25,
        };
        (!version.is_empty() && version != "-").then_some(version)
    }

    fn abi(&self, era: Era) -> Option<&'static str> {
        let abi = match era {
            Era::V2410 => self.abi24,
            Era::V2512 => self.abi25,
        };
        (!abi.is_empty()).then_some(abi)
    }

    /// Dependencies for `era`: `24:x` and `25:x` apply to one era only.
    fn depends(&self, era: Era) -> impl Iterator<Item = &'static str> {
        self.depends.split_whitespace().filter_map(move |dep| {
            match (dep.strip_prefix("24:"), dep.strip_prefix("25:")) {
                (Some(name), _) => (era == Era::V2410).then_some(name),
                (_, Some(name)) => (era == Era::V2512).then_some(name),
                _ => Some(dep),
            }
        })
    }
}

fn table() -> Vec<Row> {
    PACKAGE_TABLE
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(parse_row)
        .collect()
}

fn parse_row(line: &'static str) -> Option<Row> {
    let columns: Vec<&'static str> = line.split('|').map(str::trim).collect();
    let [
        name,
        feed,
        abi24,
        abi25,
        version24,
        version25,
        kib,
        arch,
        only,
        depends,
        provides,
        conflicts,
        files,
    ] = columns.as_slice()
    else {
        return None;
    };
    Some(Row {
        name,
        feed: Feed::parse(feed)?,
        abi24,
        abi25,
        version24,
        version25,
        kib: kib.parse().ok()?,
        arch_all: *arch == "all",
        only,
        depends,
        provides,
        conflicts,
        files,
    })
}

/// `name | feed | abi 24.10 | abi 25.12 | version 24.10 | version 25.12 | installed KiB | all? |
/// only on boards | depends | provides | conflicts | shared files`.
///
/// A `-` version means "not in that release". In versions `@` is a seeded git hash, `$REV` the
/// revision hash, `$KVER` the kernel version, `$KPKG` the kernel package version. In depends,
/// `24:` and `25:` limit an entry to one era.
const PACKAGE_TABLE: &str = r"
# core: targets/<t>/<s>/packages
base-files | core | | | 1647~$REV | 1679~$REV | 60 | | | libc netifd jsonfilter 24:usign | | |
kernel | core | | | $KPKG | $KPKG | 0 | | | | | |
libc | core | | | 1.2.5-r4 | 1.2.5-r5 | 600 | | | | | |
libgcc | core | 1 | 1 | 13.3.0-r4 | 14.3.0-r4 | 80 | | | libc | | |
ath10k-firmware-qca988x-ct | core | | | 20241017.1-r1 | 20250411.1-r1 | 260 | | ath79 | | | |
ath10k-firmware-qca9887-ct | core | | | 20241017.1-r1 | 20250411.1-r1 | 220 | | ath79 | | | |
mt7986-wo-firmware | core | | | 20241110-r1 | 20250807-r1 | 210 | | mediatek | | | |
mt7981-wo-firmware | core | | | 20241110-r1 | 20250807-r1 | 160 | | mediatek | | | |
grub2-bios-setup | core | | | 2.12-r1 | 2.12-r3 | 310 | | x86 | libc | | |
# kmods: targets/<t>/<s>/kmods/<kernel>/
kmod-nf-conntrack | kmods | | | $KVER-r1 | $KVER-r1 | 120 | | | | | |
kmod-nf-reject | kmods | | | $KVER-r1 | $KVER-r1 | 20 | | | | | |
kmod-nfnetlink | kmods | | | $KVER-r1 | $KVER-r1 | 20 | | | | | |
kmod-nf-nat | kmods | | | $KVER-r1 | $KVER-r1 | 40 | | | kmod-nf-conntrack | | |
kmod-nf-flow | kmods | | | $KVER-r1 | $KVER-r1 | 30 | | | kmod-nf-conntrack | | |
kmod-nft-core | kmods | | | $KVER-r1 | $KVER-r1 | 260 | | | kmod-nf-reject kmod-nfnetlink kmod-nf-conntrack | | |
kmod-nft-fib | kmods | | | $KVER-r1 | $KVER-r1 | 20 | | | kmod-nft-core | | |
kmod-nft-nat | kmods | | | $KVER-r1 | $KVER-r1 | 30 | | | kmod-nft-core kmod-nf-nat | | |
kmod-nft-offload | kmods | | | $KVER-r1 | $KVER-r1 | 20 | | | kmod-nft-nat kmod-nf-flow | | |
kmod-ppp | kmods | | | $KVER-r1 | $KVER-r1 | 60 | | | | | |
kmod-pppoe | kmods | | | $KVER-r1 | $KVER-r1 | 30 | | | kmod-ppp | | |
kmod-gpio-button-hotplug | kmods | | | $KVER-r6 | $KVER-r6 | 15 | | ath79 mediatek | | | |
kmod-button-hotplug | kmods | | | $KVER-r4 | $KVER-r4 | 15 | | x86 | | | |
kmod-cfg80211 | kmods | | | $KVER.6.12.6-r1 | $KVER.6.16-r1 | 520 | | ath79 mediatek | | | |
kmod-mac80211 | kmods | | | $KVER.6.12.6-r1 | $KVER.6.16-r1 | 820 | | ath79 mediatek | kmod-cfg80211 | | |
kmod-ath | kmods | | | $KVER.6.12.6-r1 | $KVER.6.16-r1 | 110 | | ath79 | kmod-mac80211 | | |
kmod-ath9k | kmods | | | $KVER.6.12.6-r1 | $KVER.6.16-r1 | 480 | | ath79 | kmod-ath | | |
kmod-ath10k-ct | kmods | | | $KVER.2024.05.24~@-r1 | $KVER.2025.06.30~@-r1 | 1040 | | ath79 | kmod-ath | | |
kmod-mt7915e | kmods | | | $KVER.2024.10.11~@-r1 | $KVER.2025.09.15~@-r1 | 410 | | mediatek | kmod-mac80211 | | |
kmod-mt7986-firmware | kmods | | | $KVER.2024.10.11~@-r1 | $KVER.2025.09.15~@-r1 | 520 | | mediatek | | | |
kmod-mt7981-firmware | kmods | | | $KVER.2024.10.11~@-r1 | $KVER.2025.09.15~@-r1 | 410 | | mediatek | | | |
kmod-mt7996-firmware | kmods | | | $KVER.2024.10.11~@-r1 | $KVER.2025.09.15~@-r1 | 900 | | mediatek | | | |
kmod-usb-core | kmods | | | $KVER-r1 | $KVER-r1 | 150 | | | | | |
kmod-usb3 | kmods | | | $KVER-r1 | $KVER-r1 | 200 | | | kmod-usb-core | | |
kmod-leds-gpio | kmods | | | $KVER-r1 | $KVER-r1 | 10 | | | | | |
kmod-nvme | kmods | | | $KVER-r1 | $KVER-r1 | 80 | | mediatek x86 | | | |
kmod-rtc-pcf8563 | kmods | | | $KVER-r1 | $KVER-r1 | 10 | | mediatek | | | |
kmod-e1000 | kmods | | | $KVER-r1 | $KVER-r1 | 150 | | x86 | | | |
kmod-e1000e | kmods | | | $KVER-r1 | $KVER-r1 | 280 | | x86 | | | |
kmod-igb | kmods | | | $KVER-r1 | $KVER-r1 | 240 | | x86 | | | |
kmod-igc | kmods | | | $KVER-r1 | $KVER-r1 | 150 | | x86 | | | |
kmod-ixgbe | kmods | | | $KVER-r1 | $KVER-r1 | 400 | | x86 | | | |
kmod-r8169 | kmods | | | $KVER-r1 | $KVER-r1 | 130 | | x86 | | | |
kmod-fs-vfat | kmods | | | $KVER-r1 | $KVER-r1 | 60 | | | | | |
kmod-udptunnel4 | kmods | | | $KVER-r1 | $KVER-r1 | 10 | | | | | |
kmod-wireguard | kmods | | | $KVER-r1 | $KVER-r1 | 100 | | | kmod-udptunnel4 | | |
kmod-sched-cake | kmods | | | $KVER-r1 | $KVER-r1 | 40 | | | | | |
kmod-ifb | kmods | | | $KVER-r1 | $KVER-r1 | 10 | | | | | |
kmod-zram | kmods | | | $KVER-r1 | $KVER-r1 | 40 | | | | | |
# base: packages/<arch>/base
busybox | base | | | 1.36.1-r2 | 1.37.0-r6 | 380 | | | libc | | |
dropbear | base | | | 2024.86-r1 | 2025.88-r1 | 120 | | | libc | | |
dnsmasq | base | | | 2.90-r4 | 2.91-r1 | 170 | | | libc libubus | | | /usr/sbin/dnsmasq /etc/init.d/dnsmasq
dnsmasq-full | base | | | 2.90-r4 | 2.91-r1 | 260 | | | libc libubus libnettle kmod-nft-core | dnsmasq | | /usr/sbin/dnsmasq /etc/init.d/dnsmasq
firewall4 | base | | | 2024.12.18~@-r1 | 2025.11.20~@-r1 | 70 | all | | kmod-nft-core kmod-nft-fib kmod-nft-nat kmod-nft-offload nftables-json ucode ucode-mod-fs ucode-mod-ubus ucode-mod-uci | uci-firewall | |
nftables-json | base | | | 1.1.1-r1 | 1.1.3-r1 | 300 | | | libc libnftnl libmnl libjansson | nftables | |
libnftnl | base | 11 | 11 | 1.2.8-r1 | 1.3.0-r1 | 90 | | | libc libmnl | | |
libmnl | base | 0 | 0 | 1.0.5-r1 | 1.0.5-r1 | 20 | | | libc | | |
libjansson | base | 4 | 4 | 2.14-r3 | 2.14.1-r1 | 50 | | | libc | | |
odhcpd-ipv6only | base | | | 2024.05.08~@-r1 | 2025.10.02~@-r1 | 90 | | | libc libubox libuci libubus libnl-tiny | odhcpd | |
odhcp6c | base | | | 2024.09.25~@-r1 | 2025.10.21~@-r1 | 40 | | | libc libubox | | |
uci | base | | | 2025.01.20~@-r1 | 2025.10.01~@-r1 | 10 | | | libc libuci | | |
libuci | base | 20250120 | 20250120 | 2025.01.20~@-r1 | 2025.10.01~@-r1 | 40 | | | libc libubox | | |
ubus | base | | | 2025.01.02~@-r1 | 2025.10.17~@-r1 | 10 | | | libc libubus libblobmsg-json ubusd | | |
ubusd | base | | | 2025.01.02~@-r1 | 2025.10.17~@-r1 | 30 | | | libc libubox libblobmsg-json | | |
libubus | base | 20250102 | 20250102 | 2025.01.02~@-r1 | 2025.10.17~@-r1 | 20 | | | libc libubox | | |
libubox | base | 20240329 | 20250719 | 2024.03.29~@-r1 | 2025.07.19~@-r1 | 50 | | | libc | | |
libblobmsg-json | base | 20240329 | 20250719 | 2024.03.29~@-r1 | 2025.07.19~@-r1 | 10 | | | libc libjson-c libubox | | |
libjson-c | base | 5 | 5 | 0.18-r1 | 0.18-r1 | 50 | | | libc | | |
jshn | base | | | 2024.03.29~@-r1 | 2025.07.19~@-r1 | 10 | | | libc libjson-c libubox libblobmsg-json | | |
jsonfilter | base | | | 2024.01.23~@-r1 | 2025.04.18~@-r1 | 10 | | | libc libubox libjson-c | | |
procd | base | | | 2024.12.22~@-r1 | 2025.10.24~@-r1 | 140 | | | libc ubusd ubus libubox libubus libblobmsg-json libjson-c | | |
procd-ujail | base | | | 2024.12.22~@-r1 | 2025.10.24~@-r1 | 60 | | | libc libubox libubus libblobmsg-json libjson-c procd | | |
procd-seccomp | base | | | 2024.12.22~@-r1 | 2025.10.24~@-r1 | 30 | | | libc libubox libblobmsg-json | | |
netifd | base | | | 2024.12.17~@-r1 | 2025.10.20~@-r1 | 240 | | | libc libuci libnl-tiny libubus ubus ubusd jshn libubox procd | | |
libnl-tiny | base | 1 | 1 | 2023.12.05~@-r1 | 2025.03.19~@-r1 | 30 | | | libc | | |
logd | base | | | 2024.12.22~@-r1 | 2025.10.24~@-r1 | 30 | | | libc libubox libubus libblobmsg-json | | |
ubox | base | | | 2024.12.22~@-r1 | 2025.10.24~@-r1 | 60 | | | libc libubox ubusd ubus libubus libuci | | |
fstools | base | | | 2024.12.22~@-r1 | 2025.10.24~@-r1 | 70 | | | libc ubox libubox libubus libblobmsg-json | | |
mtd | base | | | 26 | 26 | 40 | | | libc libubox | | |
fwtool | base | | | 2019.11.12~@-r2 | 2019.11.12~@-r2 | 10 | | | libc | | |
usign | base | | | 2020.05.23~@-r1 | 2025.07.09~@-r1 | 20 | | | libc libubox | | |
opkg | base | | | 2024.10.16~@-r1 | - | 140 | | | libc libubox uclient-fetch usign | | |
apk-mbedtls | base | | | - | 3.0.1-r2 | 350 | | | libc libmbedtls | apk | |
ca-bundle | base | | | 20240203-r1 | 20250419-r1 | 230 | all | | | | |
uclient-fetch | base | | | 2024.10.22~@-r1 | 2025.10.03~@-r1 | 10 | | | libc libuclient | | |
libuclient | base | 20201210 | 20201210 | 2024.10.22~@-r1 | 2025.10.03~@-r1 | 20 | | | libc libubox | | |
libustream-mbedtls | base | 20201210 | 20201210 | 2024.07.28~@-r1 | 2025.10.02~@-r1 | 20 | | | libc libubox libmbedtls | | |
libmbedtls | base | 21 | 21 | 3.6.4-r1 | 3.6.5-r1 | 500 | | | libc | | |
libnettle | base | 8 | 8 | 3.10.1-r1 | 3.10.2-r1 | 300 | | | libc | | |
urandom-seed | base | | | 3 | 3 | 5 | | | libc | | |
urngd | base | | | 2023.11.01~@-r1 | 2025.06.20~@-r1 | 10 | | | libc libubox | | |
ppp | base | | | 2.5.1-r1 | 2.5.2-r1 | 300 | | | libc kmod-ppp | | |
ppp-mod-pppoe | base | | | 2.5.1-r1 | 2.5.2-r1 | 40 | | | libc kmod-pppoe ppp | | |
hostapd-common | base | | | 2024.09.15~@-r2 | 2025.08.26~@-r1 | 30 | | | libc | | |
wpad-basic-mbedtls | base | | | 2024.09.15~@-r2 | 2025.08.26~@-r1 | 750 | | | libc hostapd-common libubus libucode libnl-tiny libmbedtls | wpad wpad-basic | wpad-mbedtls wpad-openssl |
wpad-mbedtls | base | | | 2024.09.15~@-r2 | 2025.08.26~@-r1 | 1100 | | | libc hostapd-common libubus libucode libnl-tiny libmbedtls | wpad | wpad-basic-mbedtls wpad-openssl |
wpad-openssl | base | | | 2024.09.15~@-r2 | 2025.08.26~@-r1 | 1100 | | | libc hostapd-common libubus libucode libnl-tiny libopenssl | wpad | wpad-basic-mbedtls wpad-mbedtls |
libopenssl | base | 3 | 3 | 3.0.18-r1 | 3.5.4-r1 | 3100 | | | libc | | |
openssl-util | base | | | 3.0.18-r1 | 3.5.4-r1 | 620 | | | libc libopenssl | | |
iw | base | | | 6.9-r1 | 6.17-r1 | 120 | | | libc libnl-tiny | | |
iwinfo | base | | | 2024.10.20~@-r1 | 2025.09.05~@-r1 | 20 | | | libc libiwinfo | | |
libiwinfo | base | 20230701 | 20230701 | 2024.10.20~@-r1 | 2025.09.05~@-r1 | 60 | | | libc libnl-tiny libuci libubus | | |
wireless-regdb | base | | | 2025.02.20-r1 | 2025.10.07-r1 | 10 | all | | | | |
ucode | base | | | 2025.07.18~@-r1 | 2025.10.17~@-r1 | 10 | | | libc libucode | | |
libucode | base | 20230711 | 20230711 | 2025.07.18~@-r1 | 2025.10.17~@-r1 | 200 | | | libc libjson-c | | |
ucode-mod-fs | base | | | 2025.07.18~@-r1 | 2025.10.17~@-r1 | 20 | | | libc libucode | | |
ucode-mod-ubus | base | | | 2025.07.18~@-r1 | 2025.10.17~@-r1 | 30 | | | libc libucode libubus libblobmsg-json | | |
ucode-mod-uci | base | | | 2025.07.18~@-r1 | 2025.10.17~@-r1 | 20 | | | libc libucode libuci | | |
ucode-mod-math | base | | | 2025.07.18~@-r1 | 2025.10.17~@-r1 | 10 | | | libc libucode | | |
rpcd | base | | | 2024.09.17~@-r1 | 2025.10.24~@-r1 | 70 | | | libc libubus libubox libuci libblobmsg-json libjson-c | | |
rpcd-mod-file | base | | | 2024.09.17~@-r1 | 2025.10.24~@-r1 | 20 | | | libc rpcd libubus libubox | | |
rpcd-mod-iwinfo | base | | | 2024.09.17~@-r1 | 2025.10.24~@-r1 | 20 | | | libc rpcd libiwinfo | | |
rpcd-mod-ucode | base | | | 2024.09.17~@-r1 | 2025.10.24~@-r1 | 20 | | | libc rpcd libucode | | |
rpcd-mod-rrdns | base | | | 20170710 | 20170710 | 10 | | | libc rpcd | | |
rpcd-mod-rpcsys | base | | | 2024.09.17~@-r1 | 2025.10.24~@-r1 | 20 | | | libc rpcd libubus | | |
uhttpd | base | | | 2024.10.03~@-r1 | 2025.10.03~@-r1 | 60 | | | libc libubox libblobmsg-json | | |
uhttpd-mod-ubus | base | | | 2024.10.03~@-r1 | 2025.10.03~@-r1 | 20 | | | libc uhttpd libubus libblobmsg-json | | |
cgi-io | base | | | 2022.08.10~@-r1 | 2025.06.12~@-r1 | 10 | | | libc libubox libubus | | |
px5g-mbedtls | base | | | 10 | 11 | 10 | | | libc libmbedtls | px5g | |
px5g-wolfssl | base | | | 9 | - | 10 | | | libc libwolfssl | px5g | |
libwolfssl | base | 5.7.6.e624513f | | 5.7.6-r1 | - | 900 | | | libc | | |
owut | base | | | 2025.03.20~@-r1 | 2025.10.20~@-r1 | 60 | all | | ucode ucode-mod-fs ucode-mod-uci ucode-mod-ubus rpcd-mod-file rpcd-mod-ucode attendedsysupgrade-common | | |
attendedsysupgrade-common | base | | | 11 | 12 | 5 | all | | | | |
e2fsprogs | base | | | 1.47.0-r2 | 1.47.3-r1 | 400 | | | libc libext2fs | | |
libext2fs | base | 2 | 2 | 1.47.0-r2 | 1.47.3-r1 | 500 | | | libc | | |
f2fsck | base | | | 1.16.0-r3 | 1.16.0-r4 | 200 | | | libc libf2fs | | |
mkf2fs | base | | | 1.16.0-r3 | 1.16.0-r4 | 60 | | | libc libf2fs | | |
libf2fs | base | 6 | 6 | 1.16.0-r3 | 1.16.0-r4 | 80 | | | libc | | |
partx-utils | base | | | 2.40.2-r1 | 2.41.2-r1 | 60 | | | libc | | |
uboot-envtools | base | | | 2024.07-r1 | 2025.10-r1 | 30 | | ath79 mediatek | libc | | |
swconfig | base | | | 12 | 12 | 30 | | ath79 | libc libuci libnl-tiny | | |
fitblk | base | | | 1 | 1 | 5 | all | mediatek | | | |
# luci: packages/<arch>/luci
luci | luci | | | 25.031.45123~@ | 25.330.71005~@ | 5 | all | | luci-light luci-app-package-manager | | |
luci-light | luci | | | 25.031.45123~@ | 25.330.71005~@ | 5 | all | | luci-base luci-mod-admin-full luci-theme-bootstrap luci-app-firewall rpcd-mod-rrdns uhttpd uhttpd-mod-ubus luci-proto-ipv6 luci-proto-ppp | | |
luci-base | luci | | | 25.031.45123~@ | 25.330.71005~@ | 820 | | | libc ucode ucode-mod-fs ucode-mod-uci ucode-mod-ubus ucode-mod-math rpcd rpcd-mod-file rpcd-mod-luci rpcd-mod-ucode cgi-io luci-lib-base | | |
rpcd-mod-luci | luci | | | 20240305 | 20250909 | 30 | | | libc rpcd libubus libuci libiwinfo | | |
luci-lib-base | luci | | | 25.031.45123~@ | 25.330.71005~@ | 80 | all | | | | |
luci-mod-admin-full | luci | | | 25.031.45123~@ | 25.330.71005~@ | 5 | all | | luci-base luci-mod-status luci-mod-system luci-mod-network | | |
luci-mod-status | luci | | | 25.031.45123~@ | 25.330.71005~@ | 110 | all | | luci-base | | |
luci-mod-system | luci | | | 25.031.45123~@ | 25.330.71005~@ | 90 | all | | luci-base | | |
luci-mod-network | luci | | | 25.031.45123~@ | 25.330.71005~@ | 160 | all | | luci-base | | |
luci-theme-bootstrap | luci | | | 25.031.45123~@ | 25.330.71005~@ | 150 | all | | luci-base | | |
luci-app-firewall | luci | | | 25.031.45123~@ | 25.330.71005~@ | 80 | all | | luci-base firewall4 | | |
luci-app-package-manager | luci | | | 25.031.45123~@ | 25.330.71005~@ | 70 | all | | luci-base | luci-app-opkg | |
luci-proto-ipv6 | luci | | | 25.031.45123~@ | 25.330.71005~@ | 20 | all | | luci-base | | |
luci-proto-ppp | luci | | | 25.031.45123~@ | 25.330.71005~@ | 20 | all | | luci-base | | |
luci-ssl | luci | | | 25.031.45123~@ | 25.330.71005~@ | 5 | all | | luci libustream-mbedtls px5g-mbedtls | | |
luci-app-attendedsysupgrade | luci | | | 25.031.45123~@ | 25.330.71005~@ | 40 | all | | luci-base rpcd-mod-rpcsys attendedsysupgrade-common | | |
luci-i18n-base-de | luci | | | 25.031.45123~@ | 25.330.71005~@ | 90 | all | | luci-base | | |
luci-i18n-firewall-de | luci | | | 25.031.45123~@ | 25.330.71005~@ | 10 | all | | luci-app-firewall | | |
luci-app-sqm | luci | | | 25.031.45123~@ | 25.330.71005~@ | 30 | all | | luci-base sqm-scripts | | |
luci-proto-wireguard | luci | | | 25.031.45123~@ | 25.330.71005~@ | 20 | all | | luci-base wireguard-tools | | |
# packages: packages/<arch>/packages
tmux | packages | | | 3.5a-r1 | 3.5a-r2 | 600 | | | libc libncurses libevent2-core | | |
libncurses | packages | 6 | 6 | 6.4-r2 | 6.5-r1 | 250 | | | libc terminfo | | |
terminfo | packages | | | 6.4-r2 | 6.5-r1 | 30 | all | | | | |
libevent2-core | packages | 7 | 7 | 2.1.12-r2 | 2.1.12-r3 | 200 | | | libc | | |
curl | packages | | | 8.12.1-r1 | 8.16.0-r1 | 200 | | | libc libcurl | | |
libcurl | packages | 4 | 4 | 8.12.1-r1 | 8.16.0-r1 | 500 | | | libc libmbedtls | | |
tcpdump | packages | | | 4.99.5-r1 | 4.99.5-r2 | 900 | | | libc libpcap | | |
libpcap | packages | 1 | 1 | 1.10.5-r1 | 1.10.5-r2 | 300 | | | libc | | |
htop | packages | | | 3.3.0-r1 | 3.4.1-r1 | 200 | | | libc libncurses | | |
nano | packages | | | 8.3-r1 | 8.6-r1 | 150 | | | libc libncurses | | |
python3-light | packages | | | 3.11.14-r1 | 3.13.9-r1 | 2100 | | | libc libpython3 | | |
libpython3 | packages | 3.11 | 3.13 | 3.11.14-r1 | 3.13.9-r1 | 3600 | | | libc | | |
sqm-scripts | packages | | | 1.6.0-r1 | 1.7.0-r1 | 50 | all | | tc-tiny kmod-sched-cake kmod-ifb | | |
tc-tiny | packages | | | 6.11.0-r1 | 6.17.0-r1 | 300 | | | libc libmnl | | |
wireguard-tools | packages | | | 1.0.20210914-r4 | 1.0.20250521-r1 | 80 | | | libc kmod-wireguard | | |
adblock | packages | | | 4.3.4-r1 | 4.4.4-r1 | 100 | all | | jshn jsonfilter | | |
zram-swap | packages | | | 1.2-r1 | 1.2-r2 | 10 | all | | kmod-zram | | |
# routing and telephony
babeld | routing | | | 1.13.1-r1 | 1.13.1-r2 | 80 | | | libc libubox libubus | | |
baresip | telephony | | | 3.20.0-r1 | 4.1.0-r1 | 300 | | | libc | | |
";

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn package_table_is_well_formed() {
        let lines = PACKAGE_TABLE
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .count();
        assert_eq!(
            table().len(),
            lines,
            "a row of the package table does not parse"
        );
    }

    #[test]
    fn every_dependency_and_default_package_exists() {
        let catalog = Catalog::new(Seed(1));
        for release in &catalog.releases {
            for target in &catalog.targets {
                let packages = catalog.packages(release, target);
                let mut names: BTreeSet<&str> = BTreeSet::new();
                for package in &packages {
                    names.insert(&package.name);
                    names.extend(package.provides.iter().map(String::as_str));
                }
                for package in &packages {
                    for dep in &package.depends {
                        let dep = dep.split(' ').next().unwrap();
                        assert!(
                            names.contains(dep),
                            "{} {}: {} needs {dep}",
                            release.version,
                            target.name(),
                            package.name
                        );
                    }
                }
                let profile_packages = target
                    .profiles
                    .iter()
                    .flat_map(|p| p.device_packages.iter());
                for name in catalog
                    .default_packages(release, target)
                    .iter()
                    .chain(profile_packages)
                {
                    let name = name.trim_start_matches('-');
                    assert!(
                        names.contains(name),
                        "{} {}: default {name} missing",
                        release.version,
                        target.name()
                    );
                }
            }
        }
    }

    #[test]
    fn renames_and_drops_differ_between_releases() {
        let catalog = Catalog::new(Seed(1));
        let target = catalog.target("ath79/generic").unwrap();
        let names = |version: &str| -> BTreeSet<String> {
            let release = catalog.release(version).unwrap();
            catalog
                .packages(release, target)
                .into_iter()
                .map(|p| p.base_name)
                .collect()
        };
        let old = names("24.10.5");
        let new = names("25.12.1");
        assert!(old.contains("opkg") && !new.contains("opkg"));
        assert!(!old.contains("apk-mbedtls") && new.contains("apk-mbedtls"));
        assert!(old.contains("px5g-wolfssl") && !new.contains("px5g-wolfssl"));
    }

    #[test]
    fn renames_older_than_the_24_10_branch_are_done_in_24_10() {
        // 24.10 branched at r27990: `auc` (gone at r26792) and `luci-app-opkg` (renamed at
        // r27897) are in its `package_changes`, so no 24.10 release may ship them.
        let catalog = Catalog::new(Seed(1));
        let target = catalog.target("ath79/generic").unwrap();
        for release in &catalog.releases {
            let packages = catalog.packages(release, target);
            let has = |name: &str| packages.iter().any(|p| p.base_name == name);
            assert!(!has("auc") && has("owut"), "{}", release.version);
            assert!(
                !has("luci-app-opkg") && has("luci-app-package-manager"),
                "{}",
                release.version
            );
            let manager = packages
                .iter()
                .find(|p| p.name == "luci-app-package-manager")
                .unwrap();
            assert_eq!(manager.provides, ["luci-app-opkg"]);
        }
    }

    #[test]
    fn a_name_ending_in_a_digit_takes_a_dash_before_its_abi_version() {
        let catalog = Catalog::new(Seed(1));
        let release = catalog.release("24.10.4").unwrap();
        let target = catalog.target("x86/64").unwrap();
        let packages = catalog.packages(release, target);
        let python = packages
            .iter()
            .find(|p| p.base_name == "libpython3")
            .unwrap();
        assert_eq!(python.name, "libpython3-3.11");
        assert_eq!(python.abi_version.as_deref(), Some("-3.11"));
        let light = packages.iter().find(|p| p.name == "python3-light").unwrap();
        assert!(light.depends.contains(&"libpython3-3.11".to_owned()));
        let json = packages
            .iter()
            .find(|p| p.base_name == "libjson-c")
            .unwrap();
        assert_eq!(json.name, "libjson-c5");
    }

    #[test]
    fn abi_packages_publish_their_suffix_and_provide_the_base_name() {
        let catalog = Catalog::new(Seed(1));
        let release = catalog.release("24.10.4").unwrap();
        let target = catalog.target("x86/64").unwrap();
        let packages = catalog.packages(release, target);
        let libubox = packages.iter().find(|p| p.base_name == "libubox").unwrap();
        assert_eq!(libubox.name, "libubox20240329");
        assert_eq!(
            libubox.provides.first().map(String::as_str),
            Some("libubox")
        );
        let uci = packages.iter().find(|p| p.name == "uci").unwrap();
        assert!(uci.depends.contains(&"libuci20250120".to_owned()));
    }

    #[test]
    fn image_names_follow_the_release_kind() {
        let catalog = Catalog::new(Seed(3));
        assert_eq!(
            catalog.release("24.10.4").unwrap().image_name_version(),
            "24.10.4-"
        );
        assert_eq!(
            catalog.release("SNAPSHOT").unwrap().image_name_version(),
            ""
        );
        let branch = catalog.release("24.10-SNAPSHOT").unwrap();
        assert!(
            branch
                .image_name_version()
                .starts_with("24.10-snapshot-r29302-")
        );
    }

    #[test]
    fn seed_changes_revisions_but_not_structure() {
        let a = Catalog::new(Seed(1));
        let b = Catalog::new(Seed(2));
        let versions = |c: &Catalog| {
            c.releases
                .iter()
                .map(|r| r.version.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(versions(&a), versions(&b));
        assert_ne!(a.releases[0].revision, b.releases[0].revision);
        assert!(a.releases[0].revision.starts_with("r32841-"));
    }
}
