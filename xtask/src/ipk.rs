//! Writes `.ipk` packages and the plain tarballs for apk-based systems.
//!
//! An `.ipk` is what OpenWrt's `scripts/ipkg-build` writes and opkg installs: a gzip-compressed
//! tar holding `./debian-binary` (`2.0\n`), `./data.tar.gz` (the files, relative to `/`, as
//! `./usr/bin/...`) and `./control.tar.gz` (`./control`, `./postinst`, `./postrm` and, when there
//! are any, `./conffiles`). Every member is owned by root (uid and gid 0), has a fixed mtime
//! ([`Mtime`]) and a gzip header without name or time, so the same inputs give the same bytes.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use tar::{EntryType, Header};

use crate::layout::{EntryKind, Package};

/// `debian-binary`: the package format version.
pub const DEBIAN_BINARY: &[u8] = b"2.0\n";

/// Longest member name written (the ustar/GNU `name` field; no long-name extensions are used).
pub const MAX_MEMBER_NAME: usize = 100;

/// The modification time of every member, seconds since the epoch (`SOURCE_DATE_EPOCH`, or 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mtime(pub u64);

/// Writing an archive failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// A member name does not fit [`MAX_MEMBER_NAME`].
    #[error("member name `{name}` is longer than {MAX_MEMBER_NAME} bytes")]
    NameTooLong {
        /// The name.
        name: String,
    },
    /// Writing or compressing failed.
    #[error("cannot write `{what}`")]
    Write {
        /// The archive being written.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The bytes of `package` as an `.ipk` for `architecture`.
pub fn ipk(package: &Package, architecture: &str, mtime: Mtime) -> Result<Vec<u8>, ArchiveError> {
    let mut control = Archive::new("control.tar.gz", mtime);
    control.dir("./")?;
    control.file("./control", package.control(architecture).as_bytes(), 0o644)?;
    if !package.conffiles.is_empty() {
        let conffiles: String = package
            .conffiles
            .iter()
            .map(|path| format!("{path}\n"))
            .collect();
        control.file("./conffiles", conffiles.as_bytes(), 0o644)?;
    }
    control.file("./postinst", package.postinst.as_bytes(), 0o755)?;
    control.file("./postrm", package.postrm.as_bytes(), 0o755)?;
    let control = control.finish()?;

    let mut data = Archive::new("data.tar.gz", mtime);
    data.dir("./")?;
    add_entries(&mut data, package, "./")?;
    let data = data.finish()?;

    let mut outer = Archive::new(&package.ipk_name(architecture), mtime);
    outer.file("./debian-binary", DEBIAN_BINARY, 0o644)?;
    outer.file("./data.tar.gz", &data, 0o644)?;
    outer.file("./control.tar.gz", &control, 0o644)?;
    outer.finish()
}

/// A `.tar.gz` with one top directory `top/` holding `root/` (every package's files, to copy onto
/// `/`), `install.sh`, `uninstall.sh` and `INSTALL`, for routers that use apk instead of opkg.
pub fn tarball(
    top: &str,
    packages: &[&Package],
    instructions: &str,
    mtime: Mtime,
) -> Result<Vec<u8>, ArchiveError> {
    let mut archive = Archive::new(&format!("{top}.tar.gz"), mtime);
    archive.dir(&format!("{top}/"))?;
    archive.file(&format!("{top}/INSTALL"), instructions.as_bytes(), 0o644)?;
    archive.file(
        &format!("{top}/install.sh"),
        install_script(packages).as_bytes(),
        0o755,
    )?;
    archive.file(
        &format!("{top}/uninstall.sh"),
        uninstall_script(packages).as_bytes(),
        0o755,
    )?;
    archive.dir(&format!("{top}/root/"))?;
    for package in packages {
        add_entries(&mut archive, package, &format!("{top}/root/"))?;
    }
    archive.finish()
}

/// Copies `root/` onto `/`, then runs each package's postinst (uci-defaults, rpcd reload, LuCI
/// cache) in order.
fn install_script(packages: &[&Package]) -> String {
    let mut script = String::from(
        "#!/bin/sh\n\
         # Installs Attendant without a package manager: copies root/ onto / and runs the\n\
         # packages' post-install steps. Run on the router from the unpacked directory.\n\
         set -e\n\
         cd \"$(dirname \"$0\")\"\n\
         for dependency in /etc/ssl/certs/ca-certificates.crt /etc/config/attendedsysupgrade; do\n\
         \t[ -e \"$dependency\" ] || echo \"warning: $dependency is missing (apk add ca-bundle attendedsysupgrade-common)\" >&2\n\
         done\n\
         cp -R root/. /\n",
    );
    for package in packages {
        script.push_str(&format!("# postinst of {}\n", package.name));
        script.push_str(&format!("(\n{}\n)\n", strip_shebang(package.postinst)));
    }
    script.push_str(
        "echo \"Attendant installed; log in to LuCI again to get the new permissions\"\n",
    );
    script
}

/// Removes every file the tarball installed, then runs each package's postrm.
fn uninstall_script(packages: &[&Package]) -> String {
    let mut script = String::from("#!/bin/sh\n# Removes the files install.sh copied.\n");
    for package in packages {
        for entry in &package.entries {
            if let EntryKind::File { .. } | EntryKind::Symlink { .. } = entry.kind {
                script.push_str(&format!("rm -f '/{}'\n", entry.path));
            }
        }
        script.push_str(&format!("(\n{}\n)\n", strip_shebang(package.postrm)));
    }
    script
}

fn strip_shebang(script: &str) -> &str {
    script
        .strip_prefix("#!/bin/sh\n")
        .unwrap_or(script)
        .trim_end()
}

fn add_entries(archive: &mut Archive, package: &Package, prefix: &str) -> Result<(), ArchiveError> {
    for entry in &package.entries {
        match &entry.kind {
            EntryKind::Dir => archive.dir(&format!("{prefix}{}/", entry.path))?,
            EntryKind::File { contents, mode } => {
                archive.file(&format!("{prefix}{}", entry.path), contents, *mode)?;
            }
            EntryKind::Symlink { target } => {
                archive.symlink(&format!("{prefix}{}", entry.path), target)?;
            }
        }
    }
    Ok(())
}

/// A tar being written into a gzip stream in memory.
struct Archive {
    what: String,
    mtime: Mtime,
    builder: tar::Builder<GzEncoder<Vec<u8>>>,
}

impl Archive {
    fn new(what: &str, mtime: Mtime) -> Self {
        // No file name and time 0 in the gzip header: the output depends only on the contents.
        let gzip = flate2::GzBuilder::new()
            .mtime(0)
            .write(Vec::new(), Compression::best());
        let mut builder = tar::Builder::new(gzip);
        builder.mode(tar::HeaderMode::Deterministic);
        Self {
            what: what.to_owned(),
            mtime,
            builder,
        }
    }

    fn dir(&mut self, name: &str) -> Result<(), ArchiveError> {
        let header = self.header(name, EntryType::Directory, 0o755, 0)?;
        self.append(&header, &[][..])
    }

    fn file(&mut self, name: &str, contents: &[u8], mode: u32) -> Result<(), ArchiveError> {
        let header = self.header(name, EntryType::Regular, mode, contents.len() as u64)?;
        self.append(&header, contents)
    }

    /// A symlink member: mode 0777, size 0, the target in the link-name field.
    fn symlink(&mut self, name: &str, target: &str) -> Result<(), ArchiveError> {
        let mut header = self.header(name, EntryType::Symlink, 0o777, 0)?;
        header
            .set_link_name(target)
            .map_err(|source| self.write_error(source))?;
        header.set_cksum();
        self.append(&header, &[][..])
    }

    fn header(
        &self,
        name: &str,
        kind: EntryType,
        mode: u32,
        size: u64,
    ) -> Result<Header, ArchiveError> {
        let mut header = Header::new_gnu();
        // The name is written as given: `set_path` would drop the leading `./` that
        // ipkg-build's members carry.
        let field = &mut header.as_old_mut().name;
        let slot = field
            .get_mut(..name.len())
            .ok_or_else(|| ArchiveError::NameTooLong {
                name: name.to_owned(),
            })?;
        slot.copy_from_slice(name.as_bytes());
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(self.mtime.0);
        header.set_size(size);
        header
            .set_username("root")
            .map_err(|source| self.write_error(source))?;
        header
            .set_groupname("root")
            .map_err(|source| self.write_error(source))?;
        header.set_cksum();
        Ok(header)
    }

    fn append(&mut self, header: &Header, contents: &[u8]) -> Result<(), ArchiveError> {
        let what = self.what.clone();
        self.builder
            .append(header, contents)
            .map_err(|source| ArchiveError::Write { what, source })
    }

    fn finish(self) -> Result<Vec<u8>, ArchiveError> {
        let what = self.what;
        let write_error = |source| ArchiveError::Write {
            what: what.clone(),
            source,
        };
        let gzip = self.builder.into_inner().map_err(write_error)?;
        let mut gzip_bytes = gzip.finish().map_err(write_error)?;
        gzip_bytes.flush().map_err(write_error)?;
        Ok(gzip_bytes)
    }

    fn write_error(&self, source: std::io::Error) -> ArchiveError {
        ArchiveError::Write {
            what: self.what.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::read::GzDecoder;

    use super::*;
    use crate::layout::Entry;

    fn package() -> Package {
        Package {
            name: "demo",
            version: "1.0-r1".into(),
            depends: vec!["libc"],
            section: "utils",
            description: "demo",
            source: "feeds/demo",
            postinst: "#!/bin/sh\nexit 0\n",
            postrm: "#!/bin/sh\nexit 0\n",
            conffiles: vec!["/etc/demo".into()],
            entries: vec![
                Entry {
                    path: "etc".into(),
                    kind: EntryKind::Dir,
                },
                Entry {
                    path: "etc/demo".into(),
                    kind: EntryKind::File {
                        contents: b"x\n".to_vec(),
                        mode: 0o644,
                    },
                },
            ],
        }
    }

    fn members(gz: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut archive = tar::Archive::new(GzDecoder::new(gz));
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let name = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
                let mode = entry.header().mode().unwrap();
                let mut contents = Vec::new();
                entry.read_to_end(&mut contents).unwrap();
                (name, mode, contents)
            })
            .collect()
    }

    #[test]
    fn writes_symlink_member_with_target_and_mode_0777() {
        let mut demo = package();
        demo.entries.push(Entry {
            path: "etc/link".into(),
            kind: EntryKind::Symlink {
                target: "demo".into(),
            },
        });
        let outer = members(&ipk(&demo, "all", Mtime(0)).unwrap());
        let data = outer
            .iter()
            .find(|member| member.0 == "./data.tar.gz")
            .unwrap();
        let mut archive = tar::Archive::new(GzDecoder::new(&data.2[..]));
        let link = archive
            .entries()
            .unwrap()
            .map(|entry| entry.unwrap().header().clone())
            .find(|header| header.path_bytes().as_ref() == b"./etc/link")
            .unwrap();
        assert_eq!(link.entry_type(), tar::EntryType::Symlink);
        assert_eq!(link.mode().unwrap(), 0o777);
        assert_eq!(link.size().unwrap(), 0);
        assert_eq!(link.link_name_bytes().as_deref(), Some(&b"demo"[..]));
    }

    #[test]
    fn same_input_gives_same_bytes() {
        let first = ipk(&package(), "all", Mtime(1_700_000_000)).unwrap();
        let second = ipk(&package(), "all", Mtime(1_700_000_000)).unwrap();
        assert_eq!(first, second);
        assert_ne!(first, ipk(&package(), "all", Mtime(1)).unwrap());
    }

    #[test]
    fn writes_conffiles_member_when_listed() {
        let outer = members(&ipk(&package(), "all", Mtime(0)).unwrap());
        let names: Vec<_> = outer.iter().map(|member| member.0.as_str()).collect();
        assert_eq!(
            names,
            ["./debian-binary", "./data.tar.gz", "./control.tar.gz"]
        );
        let control = members(&outer[2].2);
        let conffiles = control
            .iter()
            .find(|member| member.0 == "./conffiles")
            .unwrap();
        assert_eq!(conffiles.2, b"/etc/demo\n");
    }

    #[test]
    fn rejects_member_name_longer_than_the_field() {
        let mut long = package();
        long.entries = vec![Entry {
            path: "a".repeat(MAX_MEMBER_NAME),
            kind: EntryKind::File {
                contents: Vec::new(),
                mode: 0o644,
            },
        }];
        let error = ipk(&long, "all", Mtime(0)).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "member name `./{}` is longer than 100 bytes",
                "a".repeat(MAX_MEMBER_NAME)
            )
        );
    }

    #[test]
    fn tarball_uninstall_removes_every_file() {
        let package = package();
        let bytes = tarball("demo-1.0-x86_64", &[&package], "read me\n", Mtime(0)).unwrap();
        let all = members(&bytes);
        let uninstall = all
            .iter()
            .find(|member| member.0 == "demo-1.0-x86_64/uninstall.sh")
            .unwrap();
        assert_eq!(uninstall.1, 0o755);
        assert!(String::from_utf8_lossy(&uninstall.2).contains("rm -f '/etc/demo'\n"));
        assert!(
            all.iter()
                .any(|member| member.0 == "demo-1.0-x86_64/root/etc/demo")
        );
    }
}
