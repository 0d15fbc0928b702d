//! What each package installs on the router: paths, contents, modes, control fields and scripts.
//!
//! The layout mirrors the feed's Makefiles (`openwrt-feed/`), so a package file and a package
//! built with the SDK install the same files:
//!
//! - `attendant`: the multi-call binary (agent and rpcd plugin in one, `ubus-bridge`'s
//!   `attendant-multicall`) at `/usr/bin/attendant`, and the plugin as the symlink
//!   `/usr/libexec/rpcd/attendant -> ../../bin/attendant` (rpcd runs every executable there, found
//!   with `stat`, which follows the link; the file name is the ubus object,
//!   <https://openwrt.org/docs/techref/rpcd>), everything under `ubus-bridge/root/` (the ACL in
//!   `/usr/share/rpcd/acl.d/`) and the feed's uci-defaults script as
//!   `/etc/uci-defaults/60-attendant`.
//! - `luci-app-attendant`: what luci.mk installs (<https://github.com/openwrt/luci/blob/master/luci.mk>):
//!   `luci/htdocs/` under `/www`, `luci/root/`
//!   under `/`.
//!
//! No package lists `/etc/config/attendedsysupgrade` as a conffile: attendedsysupgrade-common owns
//! it, and `attendant` only adds its own section through uci-defaults.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Largest file a package may contain (the binaries are about 2.5 MB; anything near this is a
/// wrong path, not a binary).
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Deepest directory nesting read from a source tree (`luci/htdocs`, `ubus-bridge/root`).
pub const MAX_TREE_DEPTH: usize = 16;

/// The package release appended to the version (`0.1.0-r1`), as `PKG_RELEASE` in the feed.
pub const PACKAGE_RELEASE: u32 = 1;

/// Where rpcd looks for exec plugins; the file name is the ubus object name.
pub const PLUGIN_PATH: &str = "usr/libexec/rpcd/attendant";

/// The multi-call binary: the agent's command line, and the plugin through [`PLUGIN_PATH`].
pub const AGENT_PATH: &str = "usr/bin/attendant";

/// The target of the [`PLUGIN_PATH`] symlink, relative to its directory (to [`AGENT_PATH`]).
pub const PLUGIN_LINK_TARGET: &str = "../../bin/attendant";

/// The cargo bin (crate `attendant-ubus`) installed as [`AGENT_PATH`].
pub const MULTICALL_BIN: &str = "attendant-multicall";

/// The feed's uci-defaults script, relative to the repository.
pub const UCI_DEFAULTS_SOURCE: &str = "openwrt-feed/utils/attendant/files/attendant.uci-defaults";

/// The feed's list of files sysupgrade keeps, relative to the repository.
pub const KEEP_SOURCE: &str = "openwrt-feed/utils/attendant/files/attendant.keep";

/// Where sysupgrade finds it (`KEEP_D_PATH` without the leading `/`).
pub const KEEP_PATH: &str = "lib/upgrade/keep.d/attendant";

/// The feed's init script that sends outcome reports at boot, relative to the repository.
pub const INIT_SOURCE: &str = "openwrt-feed/utils/attendant/files/attendant.init";

/// Where it is installed.
pub const INIT_PATH: &str = "etc/init.d/attendant";

/// Where the uci-defaults script is installed (after attendedsysupgrade-common's `50-…`).
pub const UCI_DEFAULTS_PATH: &str = "etc/uci-defaults/60-attendant";

const MAINTAINER: &str = "Attendant developers";
const LICENSE: &str = "GPL-2.0-only";
const URL: &str = "https://github.com/attendant-openwrt/attendant";

/// A router with static binaries for one CPU family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// x86_64 (OpenWrt's `x86/64` target).
    X86_64,
    /// 64-bit Arm, every OpenWrt aarch64 target.
    Aarch64,
}

impl Target {
    /// Every target, in output order.
    pub const ALL: [Target; 2] = [Target::X86_64, Target::Aarch64];

    /// The short name used on the command line and in tarball names.
    pub fn name(self) -> &'static str {
        match self {
            Target::X86_64 => "x86_64",
            Target::Aarch64 => "aarch64",
        }
    }

    /// The Rust target triple of the static build.
    pub fn rust_triple(self) -> &'static str {
        match self {
            Target::X86_64 => "x86_64-unknown-linux-musl",
            Target::Aarch64 => "aarch64-unknown-linux-musl",
        }
    }

    /// The ELF `e_machine` of the target's binaries.
    pub fn elf_machine(self) -> u16 {
        match self {
            Target::X86_64 => 62,
            Target::Aarch64 => 183,
        }
    }

    /// The opkg architecture names one package is written for. opkg compares them exactly with
    /// the router's `arch` lines, and a static binary runs on every aarch64 CPU, so the aarch64
    /// package is written once per architecture name OpenWrt's aarch64 targets use.
    pub fn opkg_architectures(self) -> &'static [&'static str] {
        match self {
            Target::X86_64 => &["x86_64"],
            Target::Aarch64 => &[
                "aarch64_generic",
                "aarch64_cortex-a53",
                "aarch64_cortex-a72",
                "aarch64_cortex-a76",
            ],
        }
    }

    /// Parses a command-line target name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|target| target.name() == name)
    }
}

/// The binary the `attendant` package installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    /// The multi-call binary (cargo bin [`MULTICALL_BIN`]): agent and rpcd plugin.
    pub multicall: PathBuf,
}

impl Binaries {
    /// The binary as cargo names it in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            multicall: dir.join(MULTICALL_BIN),
        }
    }
}

/// One file or directory of a package, relative to the router's `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The path without a leading `/` (`usr/bin/attendant`).
    pub path: String,
    /// A directory, or a file with its contents and mode.
    pub kind: EntryKind,
}

/// What an [`Entry`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory (mode 0755).
    Dir,
    /// A regular file.
    File {
        /// The bytes.
        contents: Vec<u8>,
        /// 0755 for programs and scripts, 0644 for data.
        mode: u32,
    },
    /// A symbolic link (mode 0777).
    Symlink {
        /// Where it points, relative to the link's directory.
        target: String,
    },
}

/// A package: its control fields, scripts and files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// `Package:`.
    pub name: &'static str,
    /// `Version:` (`0.1.0-r1`).
    pub version: String,
    /// `Depends:`, in order.
    pub depends: Vec<&'static str>,
    /// `Section:`.
    pub section: &'static str,
    /// `Description:` (one line).
    pub description: &'static str,
    /// `Source:`, the feed directory the package comes from.
    pub source: &'static str,
    /// The `postinst` script.
    pub postinst: &'static str,
    /// The `postrm` script.
    pub postrm: &'static str,
    /// Paths (with a leading `/`) opkg keeps when the user changed them.
    pub conffiles: Vec<String>,
    /// Files and directories, sorted by path, every parent directory before its children.
    pub entries: Vec<Entry>,
}

impl Package {
    /// The `control` file for `architecture`.
    pub fn control(&self, architecture: &str) -> String {
        let installed_size: u64 = self
            .entries
            .iter()
            .map(|entry| match &entry.kind {
                EntryKind::File { contents, .. } => contents.len() as u64,
                EntryKind::Dir | EntryKind::Symlink { .. } => 0,
            })
            .sum();
        let mut control = format!("Package: {}\nVersion: {}\n", self.name, self.version);
        if !self.depends.is_empty() {
            control.push_str(&format!("Depends: {}\n", self.depends.join(", ")));
        }
        control.push_str(&format!(
            "Source: {source}\nSourceName: {name}\nLicense: {LICENSE}\nSection: {section}\n\
             URL: {URL}\nMaintainer: {MAINTAINER}\nArchitecture: {architecture}\n\
             Installed-Size: {installed_size}\nDescription: {description}\n",
            source = self.source,
            name = self.name,
            section = self.section,
            description = self.description,
        ));
        control
    }

    /// The file name opkg packages use: `<name>_<version>_<architecture>.ipk`.
    pub fn ipk_name(&self, architecture: &str) -> String {
        format!("{}_{}_{}.ipk", self.name, self.version, architecture)
    }
}

/// Reading the package sources failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// A file or directory could not be read.
    #[error("cannot read `{path}`")]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file is larger than [`MAX_FILE_BYTES`].
    #[error("`{path}` is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge {
        /// The path.
        path: PathBuf,
    },
    /// A source tree is nested deeper than [`MAX_TREE_DEPTH`].
    #[error("`{path}` is nested deeper than {MAX_TREE_DEPTH} directories")]
    TooDeep {
        /// The directory.
        path: PathBuf,
    },
    /// A file name is not UTF-8.
    #[error("`{path}` has a file name that is not UTF-8")]
    NotUtf8 {
        /// The path.
        path: PathBuf,
    },
}

/// The `attendant` package: agent, rpcd plugin, ACL and uci-defaults.
pub fn attendant(repo: &Path, binaries: &Binaries) -> Result<Package, LayoutError> {
    let mut files = Files::default();
    files.add_file(&binaries.multicall, AGENT_PATH, Some(0o755))?;
    files.add_symlink(PLUGIN_PATH, PLUGIN_LINK_TARGET);
    files.add_tree(&repo.join("ubus-bridge/root"), "")?;
    files.add_file(
        &repo.join(UCI_DEFAULTS_SOURCE),
        UCI_DEFAULTS_PATH,
        Some(0o755),
    )?;
    files.add_file(&repo.join(KEEP_SOURCE), KEEP_PATH, Some(0o644))?;
    files.add_file(&repo.join(INIT_SOURCE), INIT_PATH, Some(0o755))?;
    Ok(Package {
        name: "attendant",
        version: package_version(),
        depends: vec!["ca-bundle", "attendedsysupgrade-common"],
        section: "utils",
        description: "Attended firmware upgrades: command line and rpcd plugin (ubus object attendant)",
        source: "feeds/attendant/utils/attendant",
        postinst: ATTENDANT_POSTINST,
        postrm: RPCD_POSTRM,
        conffiles: Vec::new(),
        entries: files.into_entries(),
    })
}

/// The `luci-app-attendant` package (architecture `all`).
pub fn luci_app(repo: &Path) -> Result<Package, LayoutError> {
    let mut files = Files::default();
    files.add_tree(&repo.join("luci/htdocs"), "www")?;
    files.add_tree(&repo.join("luci/root"), "")?;
    Ok(Package {
        name: "luci-app-attendant",
        version: package_version(),
        depends: vec!["luci-base", "attendant"],
        section: "luci",
        description: "LuCI support for attended firmware upgrades (Attendant)",
        source: "feeds/attendant/luci/luci-app-attendant",
        postinst: LUCI_POSTINST,
        postrm: LUCI_POSTINST,
        conffiles: Vec::new(),
        entries: files.into_entries(),
    })
}

/// `<workspace version>-r<release>`.
pub fn package_version() -> String {
    format!("{}-r{PACKAGE_RELEASE}", env!("CARGO_PKG_VERSION"))
}

/// Runs the uci-defaults script once (as OpenWrt's `default_postinst` does) and reloads rpcd so
/// the plugin and ACL take effect. Nothing runs when installing into an image root.
const ATTENDANT_POSTINST: &str = "#!/bin/sh
[ -n \"$IPKG_INSTROOT\" ] && exit 0
if [ -f /etc/uci-defaults/60-attendant ]; then
\t( . /etc/uci-defaults/60-attendant ) && rm -f /etc/uci-defaults/60-attendant
fi
[ -x /etc/init.d/rpcd ] && /etc/init.d/rpcd reload
exit 0
";

const RPCD_POSTRM: &str = "#!/bin/sh
[ -n \"$IPKG_INSTROOT\" ] && exit 0
[ -x /etc/init.d/rpcd ] && /etc/init.d/rpcd reload
exit 0
";

/// Drops LuCI's menu and module caches and reloads rpcd for the ACL, as luci.mk's postinst.
const LUCI_POSTINST: &str = "#!/bin/sh
[ -n \"$IPKG_INSTROOT\" ] && exit 0
rm -f /tmp/luci-indexcache /tmp/luci-indexcache.*
rm -rf /tmp/luci-modulecache/
[ -x /etc/init.d/rpcd ] && /etc/init.d/rpcd reload
exit 0
";

/// Files and symlinks collected by router path; directories are derived from them.
#[derive(Default)]
struct Files {
    files: BTreeMap<String, (Vec<u8>, u32)>,
    symlinks: BTreeMap<String, String>,
}

impl Files {
    /// Adds the symlink `path -> target`.
    fn add_symlink(&mut self, path: &str, target: &str) {
        self.symlinks.insert(path.to_owned(), target.to_owned());
    }

    /// Adds `source` as `path`; `mode` `None` takes 0755 or 0644 from the source's exec bit.
    fn add_file(
        &mut self,
        source: &Path,
        path: &str,
        mode: Option<u32>,
    ) -> Result<(), LayoutError> {
        let read_error = |source_error| LayoutError::Read {
            path: source.to_owned(),
            source: source_error,
        };
        let file = fs::File::open(source).map_err(read_error)?;
        let metadata = file.metadata().map_err(read_error)?;
        if metadata.len() > MAX_FILE_BYTES {
            return Err(LayoutError::TooLarge {
                path: source.to_owned(),
            });
        }
        let mut contents = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut contents)
            .map_err(read_error)?;
        if contents.len() as u64 > MAX_FILE_BYTES {
            return Err(LayoutError::TooLarge {
                path: source.to_owned(),
            });
        }
        let mode = mode.unwrap_or(if metadata.permissions().mode() & 0o111 != 0 {
            0o755
        } else {
            0o644
        });
        self.files.insert(path.to_owned(), (contents, mode));
        Ok(())
    }

    /// Adds every file under `dir` below the router path `prefix` (`""` for `/`).
    fn add_tree(&mut self, dir: &Path, prefix: &str) -> Result<(), LayoutError> {
        self.add_tree_at(dir, prefix, 0)
    }

    fn add_tree_at(&mut self, dir: &Path, prefix: &str, depth: usize) -> Result<(), LayoutError> {
        if depth > MAX_TREE_DEPTH {
            return Err(LayoutError::TooDeep {
                path: dir.to_owned(),
            });
        }
        let read_error = |source| LayoutError::Read {
            path: dir.to_owned(),
            source,
        };
        let mut children = Vec::new();
        for child in fs::read_dir(dir).map_err(read_error)? {
            children.push(child.map_err(read_error)?.path());
        }
        children.sort();
        for child in children {
            let name = child
                .file_name()
                .and_then(|name| name.to_str())
                .ok_or_else(|| LayoutError::NotUtf8 {
                    path: child.clone(),
                })?;
            let path = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}/{name}")
            };
            let metadata = fs::metadata(&child).map_err(|source| LayoutError::Read {
                path: child.clone(),
                source,
            })?;
            if metadata.is_dir() {
                self.add_tree_at(&child, &path, depth + 1)?;
            } else {
                self.add_file(&child, &path, None)?;
            }
        }
        Ok(())
    }

    /// Every file and every parent directory, sorted so that a directory precedes its contents.
    fn into_entries(self) -> Vec<Entry> {
        let mut entries: BTreeMap<String, EntryKind> = BTreeMap::new();
        let files = self
            .files
            .into_iter()
            .map(|(path, (contents, mode))| (path, EntryKind::File { contents, mode }));
        let symlinks = self
            .symlinks
            .into_iter()
            .map(|(path, target)| (path, EntryKind::Symlink { target }));
        for (path, kind) in files.chain(symlinks) {
            let mut parent = path.as_str();
            while let Some((dir, _)) = parent.rsplit_once('/') {
                entries.insert(dir.to_owned(), EntryKind::Dir);
                parent = dir;
            }
            entries.insert(path, kind);
        }
        entries
            .into_iter()
            .map(|(path, kind)| Entry { path, kind })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_path_is_the_path_the_bridge_names() {
        // The package layout is relative to the package root; the router sees it under `/`.
        assert_eq!(
            format!("/{PLUGIN_PATH}"),
            attendant_proto::wire::RPCD_PLUGIN_PATH
        );
    }

    #[test]
    fn the_keep_list_is_where_sysupgrade_reads_it_and_keeps_the_channel_state() {
        assert_eq!(format!("/{KEEP_PATH}"), attendant_proto::wire::KEEP_D_PATH);
        let list = std::fs::read_to_string(repo().join(KEEP_SOURCE)).unwrap();
        let kept: Vec<&str> = list.lines().filter(|l| !l.starts_with('#')).collect();
        for path in [
            attendant_proto::wire::CHANNEL_SERIAL_PATH,
            attendant_proto::wire::MACHINE_ID_PATH,
            attendant_proto::wire::PENDING_REPORTS_PATH,
        ] {
            assert!(kept.contains(&path), "{path} is not kept: {kept:?}");
        }
        // The new image's stamp must not be overwritten by the old one.
        assert!(
            !kept
                .iter()
                .any(|p| *p == "/etc/attendant/" || *p == attendant_proto::wire::CHANNEL_STAMP_PATH),
            "{kept:?}"
        );
    }

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn directories_precede_their_files() {
        let mut files = Files::default();
        files
            .files
            .insert("usr/bin/attendant".into(), (b"x".to_vec(), 0o755));
        files
            .files
            .insert("usr/bin-x/a".into(), (b"y".to_vec(), 0o644));
        let paths: Vec<_> = files
            .into_entries()
            .into_iter()
            .map(|entry| entry.path)
            .collect();
        assert_eq!(
            paths,
            [
                "usr",
                "usr/bin",
                "usr/bin-x",
                "usr/bin-x/a",
                "usr/bin/attendant"
            ]
        );
    }

    #[test]
    fn control_lists_fields_and_installed_size() {
        let package = luci_app(&repo()).unwrap();
        let control = package.control("all");
        assert!(control.starts_with("Package: luci-app-attendant\nVersion: 0.1.0-r1\n"));
        assert!(control.contains("\nDepends: luci-base, attendant\n"));
        assert!(control.contains("\nArchitecture: all\n"));
        let size: usize = package
            .entries
            .iter()
            .map(|entry| match &entry.kind {
                EntryKind::File { contents, .. } => contents.len(),
                EntryKind::Dir | EntryKind::Symlink { .. } => 0,
            })
            .sum();
        assert!(control.contains(&format!("\nInstalled-Size: {size}\n")));
    }

    #[test]
    fn reports_missing_binary_with_its_path() {
        let missing = Binaries::in_dir(Path::new("/nonexistent/attendant-dist"));
        let error = attendant(&repo(), &missing).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot read `/nonexistent/attendant-dist/attendant-multicall`"
        );
    }

    #[test]
    fn plugin_is_a_link_to_the_multicall_binary() {
        let binaries = Binaries::in_dir(Path::new(env!("CARGO_MANIFEST_DIR")));
        let mut files = Files::default();
        files
            .files
            .insert(AGENT_PATH.into(), (b"x".to_vec(), 0o755));
        files.add_symlink(PLUGIN_PATH, PLUGIN_LINK_TARGET);
        let entries = files.into_entries();
        let plugin = entries.iter().find(|entry| entry.path == PLUGIN_PATH);
        assert_eq!(
            plugin.map(|entry| &entry.kind),
            Some(&EntryKind::Symlink {
                target: "../../bin/attendant".into()
            })
        );
        assert!(entries.iter().any(|entry| entry.path == "usr/libexec/rpcd"));
        assert!(binaries.multicall.ends_with("attendant-multicall"));
    }

    #[test]
    fn aarch64_package_covers_common_architecture_names() {
        assert_eq!(Target::from_name("aarch64"), Some(Target::Aarch64));
        assert_eq!(Target::from_name("mips"), None);
        assert!(
            Target::Aarch64
                .opkg_architectures()
                .contains(&"aarch64_cortex-a53")
        );
        assert_eq!(Target::X86_64.opkg_architectures(), ["x86_64"]);
    }
}
