//! ASU's server-side package fixups: the edits the worker makes to a request's package list for
//! a release, target or profile before it builds (`apply_package_changes` in
//! <https://github.com/openwrt/asu/blob/main/asu/package_changes.py>).
//!
//! They make an old router's package list build on a newer release without the client knowing:
//! `auc` is gone from 24.10 and becomes `owut`; a 24.10 MediaTek build needs `fitblk`; 25.12
//! moved several switches to DSA drivers that the profile's old package list does not name; the
//! LuCI translations of the package manager were renamed from 24.10 on; English "translations"
//! never existed as packages. The rules are data ([`RULES`]), checked in ASU's order:
//!
//! | version | where | change |
//! | --- | --- | --- |
//! | `23.05*` | `mediatek/mt7622` | add `kmod-mt7622-firmware` |
//! | `23.05*` | listed `ath79/generic` Netgear, Buffalo, D-Link, TRENDnet profiles | add `kmod-switch-rtl8366s` (`buffalo_wzr-hp-g300nh-rb`: `kmod-switch-rtl8366rb`) |
//! | `24.10*` | any | `auc` → `owut` |
//! | `24.10*` | `tplink_archer-c6-v2` | add `ipq-wifi-tplink_archer-c6-v2` |
//! | `24.10*` | `mediatek/filogic`, `mt7622`, `mt7623` | add `fitblk` |
//! | `25.12*` | listed kirkwood and mvebu profiles | add `kmod-dsa-mv88e6xxx` |
//! | `25.12*` | `lantiq/xrx200`, `lantiq/xrx200_legacy` | add `kmod-dsa-gswip`, plus the listed profiles' PHY firmware |
//! | `25.12*` | listed bcm53xx, ipq40xx, qualcommax profiles | add `kmod-hci-uart` |
//! | `25.12*` | `ath79/mikrotik` | add `kmod-ag71xx-legacy` |
//! | `SNAPSHOT` | any | drop `kmod-nf-conntrack6`, `kmod-lib-crc32c` |
//! | `>= "24.10"` | any | `luci-i18n-opkg-<lang>` → `luci-i18n-package-manager-<lang>` |
//! | all | any | drop every `luci-i18n-*-en` |
//!
//! Versions match as ASU matches them: `24.10*` is a prefix (so `24.10-SNAPSHOT` too), `>=` is
//! Python's string comparison (so `SNAPSHOT` and `25.12.1` are at least `24.10`). An added
//! package goes to the end of the list unless it is already there; a rename keeps the position.
//! ASU keeps only the last word of a language code (`zh-cn` becomes `cn`); the whole code is kept
//! here, since `luci-i18n-package-manager-cn` does not exist.
//!
//! The request hash is computed from the request as sent, before any fixup, so the
//! fixups change what is built, never which build a request is.

use std::collections::BTreeSet;

/// One fixup rule: where it applies and what it does there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The versions it applies to.
    pub versions: Versions,
    /// `target/subtarget` it is limited to; `None` is every target.
    pub target: Option<&'static str>,
    /// Profile ids it is limited to; `None` is every profile.
    pub profiles: Option<&'static [&'static str]>,
    /// What it does, in order.
    pub actions: &'static [Action],
}

/// Which versions a [`Rule`] applies to, matched like ASU matches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Versions {
    /// Every version.
    All,
    /// Versions starting with this text (`version.startswith("24.10")`).
    Prefix(&'static str),
    /// Exactly this version (`SNAPSHOT`).
    Exactly(&'static str),
    /// Versions not below this one in Python's string order (`version >= "24.10"`).
    AtLeast(&'static str),
}

/// What a [`Rule`] does to the package list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Appends the package unless it is listed.
    Add(&'static str),
    /// Removes `from` if listed, then appends `to` unless it is listed.
    Replace {
        /// The package that no longer exists.
        from: &'static str,
        /// Its successor.
        to: &'static str,
    },
    /// Removes the package if listed.
    Remove(&'static str),
    /// Renames every package starting with `from` to `to` followed by the rest of its name.
    RenamePrefix {
        /// The old prefix, `luci-i18n-opkg-`.
        from: &'static str,
        /// The new prefix, `luci-i18n-package-manager-`.
        to: &'static str,
    },
    /// Removes every package that starts with `prefix` and ends with `suffix`.
    RemoveMatching {
        /// `luci-i18n-`.
        prefix: &'static str,
        /// `-en`.
        suffix: &'static str,
    },
}

/// One change a fixup made, for logs and for the manifest check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fixup {
    /// A package was added.
    Added(String),
    /// A package was removed.
    Removed(String),
    /// A package was renamed (or replaced by its successor).
    Renamed {
        /// The requested name.
        from: String,
        /// The name built instead.
        to: String,
    },
}

/// A package list after the fixups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fixed {
    /// The list to build: order kept, no duplicates.
    pub packages: Vec<String>,
    /// What changed, in the order it happened.
    pub changes: Vec<Fixup>,
}

impl Fixed {
    /// Whether `name` was requested but is not built under that name (removed or renamed).
    pub fn dropped(&self, name: &str) -> bool {
        self.changes.iter().any(|change| match change {
            Fixup::Removed(removed) => removed == name,
            Fixup::Renamed { from, .. } => from == name,
            Fixup::Added(_) => false,
        }) && !self.packages.iter().any(|package| package == name)
    }
}

/// Applies every rule of [`RULES`] that matches `version`, `target` (`ath79/generic`) and
/// `profile` (the resolved profile id) to `packages`.
pub fn apply_fixups(version: &str, target: &str, profile: &str, packages: &[String]) -> Fixed {
    let mut fixed = Fixed {
        packages: packages.to_vec(),
        changes: Vec::new(),
    };
    for rule in RULES
        .iter()
        .filter(|rule| rule.matches(version, target, profile))
    {
        for action in rule.actions {
            fixed.apply(*action);
        }
    }
    let mut seen = BTreeSet::new();
    fixed
        .packages
        .retain(|package| seen.insert(package.clone()));
    fixed
}

impl Rule {
    /// Whether the rule applies to this version, target and profile.
    pub fn matches(&self, version: &str, target: &str, profile: &str) -> bool {
        self.versions.matches(version)
            && self.target.is_none_or(|wanted| wanted == target)
            && self
                .profiles
                .is_none_or(|profiles| profiles.contains(&profile))
    }
}

impl Versions {
    /// Whether `version` is one of these versions.
    pub fn matches(self, version: &str) -> bool {
        match self {
            Versions::All => true,
            Versions::Prefix(prefix) => version.starts_with(prefix),
            Versions::Exactly(wanted) => version == wanted,
            Versions::AtLeast(lowest) => version >= lowest,
        }
    }
}

impl Fixed {
    fn apply(&mut self, action: Action) {
        match action {
            Action::Add(package) => self.add(package),
            Action::Replace { from, to } => {
                if self.remove(from) {
                    self.changes.pop();
                    self.changes.push(Fixup::Renamed {
                        from: from.to_owned(),
                        to: to.to_owned(),
                    });
                    if !self.packages.iter().any(|p| p == to) {
                        self.packages.push(to.to_owned());
                    }
                }
            }
            Action::Remove(package) => {
                self.remove(package);
            }
            Action::RenamePrefix { from, to } => {
                for package in &mut self.packages {
                    if let Some(rest) = package.strip_prefix(from) {
                        let renamed = format!("{to}{rest}");
                        self.changes.push(Fixup::Renamed {
                            from: std::mem::replace(package, renamed.clone()),
                            to: renamed,
                        });
                    }
                }
            }
            Action::RemoveMatching { prefix, suffix } => {
                let changes = &mut self.changes;
                self.packages.retain(|package| {
                    let matching = package.starts_with(prefix) && package.ends_with(suffix);
                    if matching {
                        changes.push(Fixup::Removed(package.clone()));
                    }
                    !matching
                });
            }
        }
    }

    fn add(&mut self, package: &str) {
        if !self.packages.iter().any(|p| p == package) {
            self.packages.push(package.to_owned());
            self.changes.push(Fixup::Added(package.to_owned()));
        }
    }

    /// Removes the first `package`; whether it was listed.
    fn remove(&mut self, package: &str) -> bool {
        let Some(index) = self.packages.iter().position(|p| p == package) else {
            return false;
        };
        self.packages.remove(index);
        self.changes.push(Fixup::Removed(package.to_owned()));
        true
    }
}

/// `ath79/generic` profiles of 23.05 whose switch needs `kmod-switch-rtl8366s`.
const RTL8366S_PROFILES: &[&str] = &[
    "buffalo_wzr-hp-g300nh-s",
    "dlink_dir-825-b1",
    "netgear_wndr3700",
    "netgear_wndr3700-v2",
    "netgear_wndr3800",
    "netgear_wndr3800ch",
    "netgear_wndrmac-v1",
    "netgear_wndrmac-v2",
    "trendnet_tew-673gru",
];

/// Profiles of 25.12 whose Marvell switch moved to the `mv88e6xxx` DSA driver, per target.
const MV88E6XXX_KIRKWOOD: &[&str] = &[
    "checkpoint_l-50",
    "endian_4i-edge-200",
    "linksys_e4200-v2",
    "linksys_ea3500",
    "linksys_ea4500",
];
const MV88E6XXX_CORTEXA9: &[&str] = &[
    "cznic_turris-omnia",
    "fortinet_fg-30e",
    "fortinet_fwf-30e",
    "fortinet_fg-50e",
    "fortinet_fg-51e",
    "fortinet_fg-52e",
    "fortinet_fwf-50e-2r",
    "fortinet_fwf-51e",
    "iij_sa-w2",
    "linksys_wrt1200ac",
    "linksys_wrt1900acs",
    "linksys_wrt1900ac-v1",
    "linksys_wrt1900ac-v2",
    "linksys_wrt3200acm",
    "linksys_wrt32x",
    "marvell_a370-rd",
];
const MV88E6XXX_CORTEXA53: &[&str] = &[
    "glinet_gl-mv1000",
    "globalscale_espressobin",
    "globalscale_espressobin-emmc",
    "globalscale_espressobin-ultra",
    "globalscale_espressobin-v7",
    "globalscale_espressobin-v7-emmc",
    "methode_udpu",
];
const MV88E6XXX_CORTEXA72: &[&str] = &[
    "checkpoint_v-80",
    "checkpoint_v-81",
    "globalscale_mochabin",
    "mikrotik_rb5009",
    "solidrun_clearfog-pro",
];

/// Lantiq xRX200 profiles of 25.12 with the 22F PHYs, and with the 11G PHYs.
const XRX200_PHY22F: &[&str] = &[
    "arcadyan_arv7519rw22",
    "arcadyan_vgv7510kw22-brn",
    "arcadyan_vgv7510kw22-nor",
    "avm_fritz7412",
    "avm_fritz7430",
    "buffalo_wbmr-300hpd",
];
const XRX200_PHY11G: &[&str] = &[
    "tplink_vr200",
    "tplink_vr200v",
    "arcadyan_vgv7519-brn",
    "arcadyan_vgv7519-nor",
    "arcadyan_vrv9510kwac23",
    "avm_fritz3370-rev2-hynix",
    "avm_fritz3370-rev2-micron",
    "avm_fritz3390",
    "avm_fritz3490",
    "avm_fritz3490-micron",
    "avm_fritz5490",
    "avm_fritz5490-micron",
    "avm_fritz7360sl",
    "avm_fritz7360-v2",
    "avm_fritz7362sl",
    "avm_fritz7490",
    "avm_fritz7490-micron",
    "bt_homehub-v5a",
    "lantiq_easy80920-nand",
    "lantiq_easy80920-nor",
    "zyxel_p-2812hnu-f1",
    "zyxel_p-2812hnu-f3",
];
const XRX200_LEGACY_PHY22F: &[&str] = &["alphanetworks_asl56026", "netgear_dm200"];
const XRX200_LEGACY_PHY11G: &[&str] = &["tplink_tdw8970", "tplink_tdw8980", "arcadyan_vg3503j"];

const PHY22F_FIRMWARE: &[Action] = &[
    Action::Add("xrx200-rev1.1-phy22f-firmware"),
    Action::Add("xrx200-rev1.2-phy22f-firmware"),
];
const PHY11G_FIRMWARE: &[Action] = &[
    Action::Add("xrx200-rev1.1-phy11g-firmware"),
    Action::Add("xrx200-rev1.2-phy11g-firmware"),
];
const MV88E6XXX: &[Action] = &[Action::Add("kmod-dsa-mv88e6xxx")];
const HCI_UART: &[Action] = &[Action::Add("kmod-hci-uart")];
const FITBLK: &[Action] = &[Action::Add("fitblk")];
const GSWIP: &[Action] = &[Action::Add("kmod-dsa-gswip")];

const fn rule(
    versions: Versions,
    target: Option<&'static str>,
    profiles: Option<&'static [&'static str]>,
    actions: &'static [Action],
) -> Rule {
    Rule {
        versions,
        target,
        profiles,
        actions,
    }
}

/// Every fixup, in the order ASU applies them.
pub const RULES: &[Rule] = &[
    // 23.05
    rule(
        Versions::Prefix("23.05"),
        Some("mediatek/mt7622"),
        None,
        &[Action::Add("kmod-mt7622-firmware")],
    ),
    rule(
        Versions::Prefix("23.05"),
        Some("ath79/generic"),
        Some(RTL8366S_PROFILES),
        &[Action::Add("kmod-switch-rtl8366s")],
    ),
    rule(
        Versions::Prefix("23.05"),
        Some("ath79/generic"),
        Some(&["buffalo_wzr-hp-g300nh-rb"]),
        &[Action::Add("kmod-switch-rtl8366rb")],
    ),
    // 24.10
    rule(
        Versions::Prefix("24.10"),
        None,
        None,
        &[Action::Replace {
            from: "auc",
            to: "owut",
        }],
    ),
    rule(
        Versions::Prefix("24.10"),
        None,
        Some(&["tplink_archer-c6-v2"]),
        &[Action::Add("ipq-wifi-tplink_archer-c6-v2")],
    ),
    rule(
        Versions::Prefix("24.10"),
        Some("mediatek/filogic"),
        None,
        FITBLK,
    ),
    rule(
        Versions::Prefix("24.10"),
        Some("mediatek/mt7622"),
        None,
        FITBLK,
    ),
    rule(
        Versions::Prefix("24.10"),
        Some("mediatek/mt7623"),
        None,
        FITBLK,
    ),
    // 25.12
    rule(
        Versions::Prefix("25.12"),
        Some("kirkwood/generic"),
        Some(MV88E6XXX_KIRKWOOD),
        MV88E6XXX,
    ),
    rule(
        Versions::Prefix("25.12"),
        Some("mvebu/cortexa9"),
        Some(MV88E6XXX_CORTEXA9),
        MV88E6XXX,
    ),
    rule(
        Versions::Prefix("25.12"),
        Some("mvebu/cortexa53"),
        Some(MV88E6XXX_CORTEXA53),
        MV88E6XXX,
    ),
    rule(
        Versions::Prefix("25.12"),
        Some("mvebu/cortexa72"),
        Some(MV88E6XXX_CORTEXA72),
        MV88E6XXX,
    ),
    rule(
        Versions::Prefix("25.12"),
        Some("lantiq/xrx200"),
        None,
        GSWIP,
    ),
    rule(
        Versions::Prefix("25.12"),
        Some("lantiq/xrx200"),
        Some(XRX200_PHY22F),
        PHY22F_FIRMWARE,
    ),
    rule(
        Versions::Prefix("25.12"),
        Some("lantiq/xrx200"),
        Some(XRX200_PHY11G),
        PHY11G_FIRMWARE,
    ),
    rule(
        Versions::Prefix("25.12"),
        Some("lantiq/xrx200_legacy"),
        None,
        GSWIP,
    ),
    rule(
        Versions::Prefix("25.12"),
        Some("lantiq/xrx200_legacy"),
        Some(XRX200_LEGACY_PHY22F),
        PHY22F_FIRMWARE,
    ),
    rule(
        Versions::Prefix("25.12"),
        Some("lantiq/xrx200_legacy"),
        Some(XRX200_LEGACY_PHY11G),
        PHY11G_FIRMWARE,
    ),
    rule(
        Versions::Prefix("25.12"),
        Some("bcm53xx/generic"),
        Some(&["meraki_mr32"]),
        HCI_UART,
    ),
    rule(
        Versions::Prefix("25.12"),
        Some("ipq40xx/generic"),
        Some(&["linksys_whw03", "linksys_whw03v2"]),
        HCI_UART,
    ),
    rule(
        Versions::Prefix("25.12"),
        Some("qualcommax/ipq807x"),
        Some(&["linksys_mx4200v1", "linksys_mx8500", "zyxel_nbg7815"]),
        HCI_UART,
    ),
    rule(
        Versions::Prefix("25.12"),
        Some("ath79/mikrotik"),
        None,
        &[Action::Add("kmod-ag71xx-legacy")],
    ),
    // SNAPSHOT
    rule(
        Versions::Exactly("SNAPSHOT"),
        None,
        None,
        &[
            Action::Remove("kmod-nf-conntrack6"),
            Action::Remove("kmod-lib-crc32c"),
        ],
    ),
    // Every version from 24.10 on, and every version.
    rule(
        Versions::AtLeast("24.10"),
        None,
        None,
        &[Action::RenamePrefix {
            from: "luci-i18n-opkg-",
            to: "luci-i18n-package-manager-",
        }],
    ),
    rule(
        Versions::All,
        None,
        None,
        &[Action::RemoveMatching {
            prefix: "luci-i18n-",
            suffix: "-en",
        }],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn fix(version: &str, target: &str, profile: &str, packages: &[&str]) -> Fixed {
        let packages: Vec<String> = packages.iter().map(|p| (*p).to_owned()).collect();
        apply_fixups(version, target, profile, &packages)
    }

    #[test]
    fn replaces_auc_with_owut_on_24_10_only() {
        let fixed = fix("24.10.5", "x86/64", "generic", &["auc", "tmux"]);
        assert_eq!(fixed.packages, ["tmux", "owut"]);
        assert_eq!(
            fixed.changes,
            [Fixup::Renamed {
                from: "auc".into(),
                to: "owut".into()
            }]
        );
        assert!(fixed.dropped("auc"));
        assert!(!fixed.dropped("tmux"));
        let branch_snapshot = fix("24.10-SNAPSHOT", "x86/64", "generic", &["auc"]);
        assert_eq!(branch_snapshot.packages, ["owut"]);
        let untouched = fix("23.05.5", "x86/64", "generic", &["auc"]);
        assert_eq!(untouched.packages, ["auc"]);
        assert!(untouched.changes.is_empty());
    }

    #[test]
    fn owut_already_requested_is_not_added_twice() {
        let fixed = fix("24.10.5", "x86/64", "generic", &["owut", "auc"]);
        assert_eq!(fixed.packages, ["owut"]);
    }

    #[test]
    fn adds_target_and_profile_specific_packages_once() {
        assert_eq!(
            fix("24.10.5", "mediatek/filogic", "openwrt_one", &["tmux"]).packages,
            ["tmux", "fitblk"]
        );
        assert_eq!(
            fix("24.10.5", "mediatek/filogic", "openwrt_one", &["fitblk"]).changes,
            []
        );
        assert_eq!(
            fix("23.05.5", "ath79/generic", "netgear_wndr3800", &[]).packages,
            ["kmod-switch-rtl8366s"]
        );
        assert_eq!(
            fix("23.05.5", "ath79/generic", "buffalo_wzr-hp-g300nh-rb", &[]).packages,
            ["kmod-switch-rtl8366rb"]
        );
        assert!(
            fix("23.05.5", "ath79/generic", "tplink_archer-c7-v5", &[])
                .packages
                .is_empty()
        );
        assert_eq!(
            fix("25.12.1", "lantiq/xrx200", "avm_fritz7490", &[]).packages,
            [
                "kmod-dsa-gswip",
                "xrx200-rev1.1-phy11g-firmware",
                "xrx200-rev1.2-phy11g-firmware"
            ]
        );
        assert_eq!(
            fix(
                "25.12.1",
                "ath79/mikrotik",
                "mikrotik_routerboard-493g",
                &[]
            )
            .packages,
            ["kmod-ag71xx-legacy"]
        );
    }

    #[test]
    fn snapshot_drops_modules_that_no_longer_exist() {
        let list = ["kmod-nf-conntrack6", "tmux", "kmod-lib-crc32c"];
        assert_eq!(
            fix("SNAPSHOT", "x86/64", "generic", &list).packages,
            ["tmux"]
        );
        assert_eq!(
            fix("24.10-SNAPSHOT", "x86/64", "generic", &list).packages,
            list
        );
    }

    #[test]
    fn renames_package_manager_translations_from_24_10_on() {
        let list = ["luci-i18n-opkg-de", "luci-i18n-opkg-zh-cn"];
        let renamed = [
            "luci-i18n-package-manager-de",
            "luci-i18n-package-manager-zh-cn",
        ];
        assert_eq!(fix("24.10.0", "x86/64", "generic", &list).packages, renamed);
        assert_eq!(
            fix("SNAPSHOT", "x86/64", "generic", &list).packages,
            renamed
        );
        assert_eq!(fix("25.12.1", "x86/64", "generic", &list).packages, renamed);
        assert_eq!(fix("23.05.5", "x86/64", "generic", &list).packages, list);
    }

    #[test]
    fn drops_english_translations_everywhere() {
        let fixed = fix(
            "23.05.5",
            "x86/64",
            "generic",
            &["luci-i18n-base-en", "luci-i18n-base-de", "luci-en"],
        );
        assert_eq!(fixed.packages, ["luci-i18n-base-de", "luci-en"]);
        assert_eq!(fixed.changes, [Fixup::Removed("luci-i18n-base-en".into())]);
    }

    #[test]
    fn a_rename_onto_a_listed_name_leaves_no_duplicate() {
        let fixed = fix(
            "24.10.5",
            "x86/64",
            "generic",
            &["luci-i18n-package-manager-de", "luci-i18n-opkg-de"],
        );
        assert_eq!(fixed.packages, ["luci-i18n-package-manager-de"]);
    }

    #[test]
    fn version_rules_match_like_asu() {
        assert!(Versions::AtLeast("24.10").matches("SNAPSHOT"));
        assert!(Versions::AtLeast("24.10").matches("24.10-SNAPSHOT"));
        assert!(!Versions::AtLeast("24.10").matches("23.05-SNAPSHOT"));
        assert!(Versions::Prefix("24.10").matches("24.10.0-rc1"));
        assert!(!Versions::Exactly("SNAPSHOT").matches("24.10-SNAPSHOT"));
    }
}
