//! Builds every package from stand-in binaries (`--binaries-from`), unpacks it, and checks each
//! member, control field, mode and path against what the agent, the rpcd plugin and the LuCI app
//! expect on the router.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers fail loudly on unexpected package contents"
)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::read::GzDecoder;

use common::{Installed, Installs, check_runtime, repo};

const MTIME: u64 = 1_700_000_000;
/// A stand-in aarch64 multi-call binary: an ELF header (AArch64, no program headers, so no
/// loader) and a marker. `dist` reads the header to refuse binaries for the wrong machine.
fn multicall() -> Vec<u8> {
    let mut bytes = vec![0u8; 64];
    bytes[..4].copy_from_slice(b"\x7fELF");
    bytes[4] = 2; // 64-bit
    bytes[5] = 1; // little-endian
    bytes[18..20].copy_from_slice(&183u16.to_le_bytes());
    bytes.extend_from_slice(b"stand-in multi-call binary\n");
    bytes
}

struct Member {
    name: String,
    mode: u32,
    kind: tar::EntryType,
    contents: Vec<u8>,
    link: Option<String>,
}

impl Member {
    /// The member as an installed file or symlink.
    fn installed(&self) -> Installed {
        if self.kind == tar::EntryType::Symlink {
            assert!(self.contents.is_empty(), "{}", self.name);
            assert_eq!(self.mode, 0o777, "{}", self.name);
            Installed::symlink(self.link.as_deref().unwrap())
        } else {
            assert_eq!(self.kind, tar::EntryType::Regular, "{}", self.name);
            Installed::file(self.contents.clone(), self.mode)
        }
    }
}

/// Every member of a tar.gz, checking the owner and mtime of each.
fn unpack(gz: &[u8]) -> Vec<Member> {
    let mut archive = tar::Archive::new(GzDecoder::new(gz));
    let mut members = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        let name = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        assert_eq!(
            (header.uid().unwrap(), header.gid().unwrap()),
            (0, 0),
            "owner of {name}"
        );
        assert_eq!(header.username().unwrap(), Some("root"), "{name}");
        assert_eq!(header.mtime().unwrap(), MTIME, "{name}");
        let link = header
            .link_name_bytes()
            .map(|link| String::from_utf8(link.into_owned()).unwrap());
        let mut contents = Vec::new();
        entry.read_to_end(&mut contents).unwrap();
        members.push(Member {
            name,
            mode: header.mode().unwrap(),
            kind: header.entry_type(),
            contents,
            link,
        });
    }
    members
}

fn dist(out: &Path, binaries: &Path) -> Vec<PathBuf> {
    fs::write(binaries.join("attendant-multicall"), multicall()).unwrap();
    xtask::dist(&xtask::DistOptions {
        repo: repo(),
        binaries_from: Some(binaries.to_owned()),
        targets: vec![xtask::Target::Aarch64],
        out: Some(out.to_owned()),
        mtime: xtask::Mtime(MTIME),
    })
    .unwrap()
}

struct Ipk {
    control: BTreeMap<String, String>,
    scripts: BTreeMap<String, (u32, String)>,
    data: Vec<Member>,
    data_bytes: Vec<u8>,
}

fn open_ipk(path: &Path) -> Ipk {
    let outer = unpack(&fs::read(path).unwrap());
    let names: Vec<_> = outer.iter().map(|member| member.name.as_str()).collect();
    assert_eq!(
        names,
        ["./debian-binary", "./data.tar.gz", "./control.tar.gz"],
        "{}",
        path.display()
    );
    assert!(
        outer
            .iter()
            .all(|member| member.mode == 0o644 && member.kind == tar::EntryType::Regular)
    );
    assert_eq!(outer[0].contents, b"2.0\n");

    let control_members = unpack(&outer[2].contents);
    let mut control = BTreeMap::new();
    let mut scripts = BTreeMap::new();
    for member in &control_members {
        match member.name.as_str() {
            "./" => assert_eq!(
                (member.kind, member.mode),
                (tar::EntryType::Directory, 0o755)
            ),
            "./control" => {
                assert_eq!(member.mode, 0o644);
                for line in String::from_utf8(member.contents.clone()).unwrap().lines() {
                    let (field, value) = line
                        .split_once(": ")
                        .unwrap_or_else(|| panic!("bad control line `{line}`"));
                    assert!(
                        control.insert(field.to_owned(), value.to_owned()).is_none(),
                        "{field} twice"
                    );
                }
            }
            "./postinst" | "./postrm" => {
                assert!(member.contents.starts_with(b"#!/bin/sh\n"));
                scripts.insert(
                    member.name.clone(),
                    (
                        member.mode,
                        String::from_utf8(member.contents.clone()).unwrap(),
                    ),
                );
            }
            other => panic!("unexpected control member `{other}` in {}", path.display()),
        }
    }
    Ipk {
        control,
        scripts,
        data: unpack(&outer[1].contents),
        data_bytes: outer[1].contents.clone(),
    }
}

/// The data members as router paths; checks `./` prefixes, directory modes and parents.
fn installs(data: &[Member]) -> Installs {
    assert_eq!(data.first().map(|member| member.name.as_str()), Some("./"));
    let mut installs = Installs::new();
    let mut dirs = vec!["".to_owned()];
    for member in &data[1..] {
        let path = member
            .name
            .strip_prefix('.')
            .unwrap_or_else(|| panic!("`{}` lacks `./`", member.name));
        if member.kind == tar::EntryType::Directory {
            assert_eq!(member.mode, 0o755, "{path}");
            dirs.push(path.trim_end_matches('/').to_owned());
        } else {
            let parent = &path[..path.rfind('/').unwrap()];
            assert!(
                dirs.iter().any(|dir| dir == parent),
                "`{path}` comes before its directory"
            );
            installs.insert(path.to_owned(), member.installed());
        }
    }
    installs
}

fn check_control(ipk: &Ipk, name: &str, architecture: &str, depends: &str, section: &str) {
    let control = &ipk.control;
    let version = format!("{}-r1", env!("CARGO_PKG_VERSION"));
    for (field, value) in [
        ("Package", name),
        ("Version", &version),
        ("Depends", depends),
        ("SourceName", name),
        ("License", "GPL-2.0-only"),
        ("Section", section),
        ("Architecture", architecture),
    ] {
        assert_eq!(
            control.get(field).map(String::as_str),
            Some(value),
            "{field} of {name}"
        );
    }
    for field in ["Source", "Maintainer", "Description", "Installed-Size"] {
        assert!(
            control.get(field).is_some_and(|value| !value.is_empty()),
            "{field} of {name}"
        );
    }
    let size: usize = ipk.data.iter().map(|member| member.contents.len()).sum();
    assert_eq!(
        control["Installed-Size"],
        size.to_string(),
        "Installed-Size of {name}"
    );
    for script in ["./postinst", "./postrm"] {
        let (mode, text) = &ipk.scripts[script];
        assert_eq!(*mode, 0o755, "{script} of {name}");
        assert!(
            text.contains("[ -n \"$IPKG_INSTROOT\" ] && exit 0"),
            "{script} of {name} runs in an image root"
        );
        assert!(
            text.contains("/etc/init.d/rpcd reload"),
            "{script} of {name} does not reload rpcd"
        );
    }
}

/// Every file under `dir` as (path relative to `dir`, bytes).
fn tree(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Vec<u8>>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = format!("{prefix}/{}", path.file_name().unwrap().to_str().unwrap());
        if path.is_dir() {
            tree(&path, &name, out);
        } else {
            out.insert(name, fs::read(&path).unwrap());
        }
    }
}

#[test]
fn packages_install_what_the_router_needs() {
    let out = tempfile::tempdir().unwrap();
    let binaries = tempfile::tempdir().unwrap();
    let written = dist(out.path(), binaries.path());
    let version = format!("{}-r1", env!("CARGO_PKG_VERSION"));
    let names: Vec<_> = written
        .iter()
        .map(|path| path.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            format!("luci-app-attendant_{version}_all.ipk"),
            format!("attendant_{version}_aarch64_generic.ipk"),
            format!("attendant_{version}_aarch64_cortex-a53.ipk"),
            format!("attendant_{version}_aarch64_cortex-a72.ipk"),
            format!("attendant_{version}_aarch64_cortex-a76.ipk"),
            format!("attendant-{version}-aarch64.tar.gz"),
        ]
    );

    let luci = open_ipk(&written[0]);
    check_control(
        &luci,
        "luci-app-attendant",
        "all",
        "luci-base, attendant",
        "luci",
    );
    assert!(
        luci.scripts["./postinst"]
            .1
            .contains("rm -rf /tmp/luci-modulecache/")
    );
    let luci_installs = installs(&luci.data);
    // Exactly luci.mk's mapping: htdocs/ under /www, root/ under /, byte for byte.
    let mut expected = BTreeMap::new();
    tree(&repo().join("luci/htdocs"), "/www", &mut expected);
    tree(&repo().join("luci/root"), "", &mut expected);
    let got: BTreeMap<_, _> = luci_installs
        .iter()
        .map(|(path, file)| (path.clone(), file.contents.clone()))
        .collect();
    assert_eq!(got, expected);

    let attendant = open_ipk(&written[1]);
    check_control(
        &attendant,
        "attendant",
        "aarch64_generic",
        "ca-bundle, attendedsysupgrade-common",
        "utils",
    );
    let postinst = &attendant.scripts["./postinst"].1;
    assert!(
        postinst.contains(
            "( . /etc/uci-defaults/60-attendant ) && rm -f /etc/uci-defaults/60-attendant"
        )
    );
    let attendant_installs = installs(&attendant.data);
    // One binary: the multi-call binary as the agent, the plugin a link to it.
    assert_eq!(
        attendant_installs["/usr/bin/attendant"],
        Installed::file(multicall(), 0o755)
    );
    assert_eq!(
        attendant_installs["/usr/libexec/rpcd/attendant"],
        Installed::symlink("../../bin/attendant")
    );
    assert_eq!(
        attendant_installs["/usr/share/rpcd/acl.d/attendant.json"].contents,
        fs::read(repo().join("ubus-bridge/root/usr/share/rpcd/acl.d/attendant.json")).unwrap()
    );
    assert_eq!(
        attendant_installs["/etc/uci-defaults/60-attendant"].contents,
        fs::read(repo().join("openwrt-feed/utils/attendant/files/attendant.uci-defaults")).unwrap()
    );
    assert_eq!(
        attendant_installs["/etc/init.d/attendant"],
        Installed::file(
            fs::read(repo().join("openwrt-feed/utils/attendant/files/attendant.init")).unwrap(),
            0o755
        )
    );
    assert_eq!(
        attendant_installs["/lib/upgrade/keep.d/attendant"].contents,
        fs::read(repo().join("openwrt-feed/utils/attendant/files/attendant.keep")).unwrap()
    );
    assert_eq!(
        attendant_installs.len(),
        6,
        "{:?}",
        attendant_installs.keys()
    );

    // The aarch64 architecture names carry the same files.
    for other in &written[2..5] {
        let ipk = open_ipk(other);
        let architecture = ipk.control["Architecture"].clone();
        assert!(
            other
                .to_str()
                .unwrap()
                .ends_with(&format!("_{architecture}.ipk"))
        );
        assert_eq!(ipk.data_bytes, attendant.data_bytes);
    }

    // Both packages together give the router everything the code expects.
    let mut both = attendant_installs.clone();
    for (path, file) in &luci_installs {
        assert!(
            both.insert(path.clone(), file.clone()).is_none(),
            "`{path}` is in both packages"
        );
    }
    check_runtime(&both);

    // The tarball holds the same files under root/, with its scripts.
    let top = format!("attendant-{version}-aarch64/");
    let tarball = unpack(&fs::read(&written[5]).unwrap());
    assert!(tarball.iter().all(|member| member.name.starts_with(&top)));
    let mut rooted = Installs::new();
    for member in &tarball {
        let name = &member.name[top.len()..];
        match name {
            "" | "root/" => assert_eq!(member.mode, 0o755),
            "INSTALL" => assert!(
                String::from_utf8_lossy(&member.contents)
                    .contains("apk add ca-bundle attendedsysupgrade-common")
            ),
            "install.sh" | "uninstall.sh" => assert_eq!(member.mode, 0o755),
            _ if member.kind == tar::EntryType::Directory => assert!(name.starts_with("root/")),
            _ => {
                let path = name
                    .strip_prefix("root")
                    .unwrap_or_else(|| panic!("unexpected `{name}`"));
                rooted.insert(path.to_owned(), member.installed());
            }
        }
    }
    assert_eq!(
        rooted.iter().collect::<Vec<_>>(),
        both.iter().collect::<Vec<_>>()
    );
    assert_eq!(
        rooted["/usr/libexec/rpcd/attendant"],
        Installed::symlink("../../bin/attendant")
    );
    let install = tarball
        .iter()
        .find(|member| member.name.ends_with("/install.sh"))
        .unwrap();
    let install = String::from_utf8_lossy(&install.contents);
    assert!(install.contains("cp -R root/. /"));
    assert!(install.contains("/etc/uci-defaults/60-attendant"));
}

#[test]
fn same_inputs_give_same_packages() {
    let binaries = tempfile::tempdir().unwrap();
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let first_files = dist(first.path(), binaries.path());
    let second_files = dist(second.path(), binaries.path());
    for (a, b) in first_files.iter().zip(&second_files) {
        assert_eq!(
            fs::read(a).unwrap(),
            fs::read(b).unwrap(),
            "{}",
            a.display()
        );
    }
}

#[test]
fn command_line_packages_binaries_from_a_directory() {
    let binaries = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    // A real x86_64 program stands in for the multi-call binary: xtask itself.
    fs::copy(
        env!("CARGO_BIN_EXE_xtask"),
        binaries.path().join("attendant-multicall"),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["dist", "--target", "x86_64", "--binaries-from"])
        .arg(binaries.path())
        .arg("--out")
        .arg(out.path())
        .env("SOURCE_DATE_EPOCH", MTIME.to_string())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let version = format!("{}-r1", env!("CARGO_PKG_VERSION"));
    let expected = format!("{}/attendant_{version}_x86_64.ipk", out.path().display());
    assert!(stdout.lines().any(|line| line == expected), "{stdout}");
    let ipk = open_ipk(Path::new(&expected));
    assert_eq!(ipk.control["Architecture"], "x86_64");

    let missing = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "dist",
            "--target",
            "x86_64",
            "--binaries-from",
            "/nonexistent/bin",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr),
        "error: `/nonexistent/bin/attendant-multicall` cannot go into the x86_64 packages: cannot \
         read it: No such file or directory (os error 2)\n"
    );
}

#[test]
fn a_binary_for_another_machine_is_refused_before_anything_is_written() {
    let binaries = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    fs::write(binaries.path().join("attendant-multicall"), multicall()).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["dist", "--target", "x86_64", "--binaries-from"])
        .arg(binaries.path())
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("cannot go into the x86_64 packages")
            && stderr.contains("ELF machine 183, not 62 (x86_64-unknown-linux-musl)"),
        "{stderr}"
    );
    assert_eq!(
        fs::read_dir(out.path()).unwrap().count(),
        0,
        "nothing written"
    );
}
