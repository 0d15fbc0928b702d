//! The feed's Makefiles: every file they install exists in the repository, they install what the
//! code expects at run time, and they agree with the packages `xtask dist` writes.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers fail loudly on unexpected package contents"
)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use common::{Installed, Installs, check_runtime, read, repo};

const ATTENDANT: &str = "openwrt-feed/utils/attendant";
const LUCI_APP: &str = "openwrt-feed/luci/luci-app-attendant";

/// The value of `NAME:=value` in a Makefile (continuation lines joined).
fn variable(makefile: &str, name: &str) -> String {
    let joined = makefile.replace("\\\n\t", "");
    let prefix = format!("{name}:=");
    let line = joined
        .lines()
        .map(str::trim_start)
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {name}"));
    line[prefix.len()..].trim().to_owned()
}

/// The lines of `define NAME` … `endef`.
fn define<'a>(makefile: &'a str, name: &str) -> Vec<&'a str> {
    let start = makefile
        .find(&format!("define {name}\n"))
        .unwrap_or_else(|| panic!("no define {name}"));
    let body = &makefile[start..];
    body.lines()
        .skip(1)
        .take_while(|line| *line != "endef")
        .collect()
}

/// The cargo `[[bin]]` names of a crate.
fn cargo_bins(krate: &str) -> Vec<String> {
    let manifest = read(&repo().join(krate).join("Cargo.toml"));
    let mut bins = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines() {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(name) = line.strip_prefix("name = ") {
            bins.push(name.trim_matches('"').to_owned());
        }
    }
    bins
}

/// What `Package/attendant/install` installs, with the source files resolved in the repository.
fn attendant_installs() -> Installs {
    let repo = repo();
    let makefile = read(&repo.join(ATTENDANT).join("Makefile"));
    let sources = variable(&makefile, "ATTENDANT_SOURCES");
    let compiled: Vec<&str> = define(&makefile, "Build/Compile")
        .iter()
        .filter_map(|line| line.trim().strip_prefix("$(call Build/Compile/Cargo,"))
        .map(|rest| rest.trim_end_matches(')'))
        .collect();
    // (crate, `--bin NAME` if the build is limited to one binary)
    let compiled: Vec<(&str, Option<&str>)> = compiled
        .iter()
        .map(|call| match call.split_once(',') {
            Some((krate, args)) => {
                let bin = args
                    .strip_prefix("--bin ")
                    .unwrap_or_else(|| panic!("unexpected cargo arguments `{args}`"));
                (krate, Some(bin))
            }
            None => (*call, None),
        })
        .collect();
    let mut installs = Installs::new();
    for line in define(&makefile, "Package/attendant/install") {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["$(LN)", target, link] = words[..] {
            let link = link
                .strip_prefix("$(1)")
                .unwrap_or_else(|| panic!("`{line}` links outside $(1)"));
            installs.insert(link.to_owned(), Installed::symlink(target));
            continue;
        }
        let mode = match words.first() {
            Some(&"$(INSTALL_BIN)") => 0o755,
            Some(&"$(INSTALL_DATA)") => 0o644,
            _ => continue,
        };
        let [_, source, destination] = words[..] else {
            panic!("unexpected install line `{line}`")
        };
        if source.contains('*') {
            continue; // optional trusted keys from files/keys/
        }
        let destination = destination
            .strip_prefix("$(1)")
            .unwrap_or_else(|| panic!("`{line}` installs outside $(1)"));
        let contents = if let Some(bin) = source.strip_prefix("$(PKG_INSTALL_DIR)/bin/") {
            assert!(
                compiled.iter().any(|(krate, only)| {
                    only.is_none_or(|only| only == bin)
                        && cargo_bins(krate).iter().any(|name| name == bin)
                }),
                "`{bin}` is not a [[bin]] built by Build/Compile ({compiled:?})"
            );
            Vec::new()
        } else if let Some(path) = source.strip_prefix("$(PKG_BUILD_DIR)/") {
            let top = path.split('/').next().unwrap();
            assert!(
                sources.split(' ').any(|source| source == top),
                "`{top}` is not copied by Build/Prepare"
            );
            fs::read(repo.join(path)).unwrap_or_else(|error| panic!("{path}: {error}"))
        } else if let Some(path) = source.strip_prefix("./") {
            fs::read(repo.join(ATTENDANT).join(path))
                .unwrap_or_else(|error| panic!("{path}: {error}"))
        } else {
            panic!("unknown source `{source}`");
        };
        installs.insert(destination.to_owned(), Installed::file(contents, mode));
    }
    installs
}

/// What luci.mk installs from the package directory: htdocs/ under /www, root/ under /.
fn luci_installs() -> Installs {
    fn walk(dir: &Path, prefix: &str, installs: &mut Installs) {
        for entry in fs::read_dir(dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        {
            let path = entry.unwrap().path();
            let name = format!("{prefix}/{}", path.file_name().unwrap().to_str().unwrap());
            if path.is_dir() {
                walk(&path, &name, installs);
            } else {
                installs.insert(name, Installed::file(fs::read(&path).unwrap(), 0o644));
            }
        }
    }
    let dir = repo().join(LUCI_APP);
    let mut installs = Installs::new();
    walk(&dir.join("htdocs"), "/www", &mut installs);
    walk(&dir.join("root"), "", &mut installs);
    installs
}

#[test]
fn makefiles_install_what_the_router_needs() {
    let mut both = attendant_installs();
    both.extend(luci_installs());
    check_runtime(&both);
}

#[test]
fn makefiles_and_dist_install_the_same_files() {
    let binaries = tempfile::tempdir().unwrap();
    fs::write(
        binaries.path().join("attendant-multicall"),
        b"agent and plugin",
    )
    .unwrap();
    let packages = [
        (
            xtask::layout::attendant(&repo(), &xtask::Binaries::in_dir(binaries.path())).unwrap(),
            attendant_installs(),
        ),
        (xtask::layout::luci_app(&repo()).unwrap(), luci_installs()),
    ];
    for (package, from_makefile) in packages {
        let from_dist: BTreeMap<String, (u32, Option<String>)> = package
            .entries
            .iter()
            .filter_map(|entry| match &entry.kind {
                xtask::layout::EntryKind::File { mode, .. } => {
                    Some((format!("/{}", entry.path), (*mode, None)))
                }
                xtask::layout::EntryKind::Symlink { target } => {
                    Some((format!("/{}", entry.path), (0o777, Some(target.clone()))))
                }
                xtask::layout::EntryKind::Dir => None,
            })
            .collect();
        let from_makefile: BTreeMap<String, (u32, Option<String>)> = from_makefile
            .into_iter()
            .map(|(path, file)| (path, (file.mode, file.link)))
            .collect();
        assert_eq!(from_dist, from_makefile, "{}", package.name);
    }
}

#[test]
fn attendant_makefile_builds_the_size_profile() {
    let makefile = read(&repo().join(ATTENDANT).join("Makefile"));
    assert_eq!(
        variable(&makefile, "PKG_VERSION"),
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(
        variable(&makefile, "PKG_RELEASE"),
        xtask::layout::PACKAGE_RELEASE.to_string()
    );
    let include = makefile
        .find("include $(TOPDIR)/feeds/packages/lang/rust/rust-package.mk")
        .unwrap();
    let profile = makefile.find("CARGO_PKG_PROFILE:=openwrt").unwrap();
    assert!(
        profile > include,
        "CARGO_PKG_PROFILE must come after the rust-package.mk include"
    );
    let depends = variable(&makefile, "DEPENDS");
    assert_eq!(
        depends,
        "$(RUST_ARCH_DEPENDS) +ca-bundle +attendedsysupgrade-common"
    );

    // OpenWrt's CARGO_PROFILE_RELEASE_* cannot reach fields the `openwrt` profile sets itself.
    let manifest = read(&repo().join("Cargo.toml"));
    let section = &manifest[manifest.find("[profile.openwrt]").unwrap()..];
    let section = &section[..section[1..]
        .find("\n[")
        .map_or(section.len(), |end| end + 1)];
    for field in [
        "opt-level = \"z\"",
        "lto = true",
        "codegen-units = 1",
        "panic = \"abort\"",
        "overflow-checks = false",
        "debug = false",
    ] {
        assert!(section.contains(field), "[profile.openwrt] lacks `{field}`");
    }

    // Build/Prepare copies the root manifest, the lock file and every workspace member.
    let sources = variable(&makefile, "ATTENDANT_SOURCES");
    let members = manifest
        .lines()
        .find_map(|line| line.strip_prefix("members = "))
        .unwrap();
    for member in members
        .trim_matches(['[', ']'])
        .split(", ")
        .map(|member| member.trim_matches('"'))
    {
        assert!(
            sources.split(' ').any(|source| source == member),
            "Build/Prepare does not copy member `{member}`"
        );
    }
    for file in ["Cargo.toml", "Cargo.lock"] {
        assert!(
            sources.split(' ').any(|source| source == file),
            "Build/Prepare does not copy `{file}`"
        );
    }
}

#[test]
fn luci_feed_package_matches_the_app() {
    let feed = read(&repo().join(LUCI_APP).join("Makefile"));
    let app = read(&repo().join("luci/Makefile"));
    for name in [
        "LUCI_TITLE",
        "LUCI_DESCRIPTION",
        "LUCI_DEPENDS",
        "LUCI_PKGARCH",
        "PKG_LICENSE",
    ] {
        assert_eq!(variable(&feed, name), variable(&app, name), "{name}");
    }
    assert_eq!(variable(&feed, "PKG_VERSION"), env!("CARGO_PKG_VERSION"));
    assert!(feed.contains("\ninclude $(TOPDIR)/feeds/luci/luci.mk\n"));
    for dir in ["htdocs", "root", "po"] {
        let link = repo().join(LUCI_APP).join(dir);
        let target =
            fs::read_link(&link).unwrap_or_else(|error| panic!("{}: {error}", link.display()));
        assert_eq!(
            target,
            Path::new("../../../luci").join(dir),
            "{dir} must be a relative link into luci/"
        );
        assert!(link.is_dir(), "{} does not resolve", link.display());
    }
}
