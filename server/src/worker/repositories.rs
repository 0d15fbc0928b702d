//! A build request's extra package repositories (`repositories`, `repository_keys`,
//! `repositories_mode`), written into the ImageBuilder the way ASU writes them into its build
//! container (<https://github.com/openwrt/asu>, `asu/build.py` and `asu/repositories.py`):
//!
//! - the repositories file is `repositories` when the ImageBuilder has one (apk, OpenWrt 25.12
//!   and later), else `repositories.conf` (opkg); in `append` mode its lines are kept, in
//!   `replace` mode (the default) they are dropped; then one line per extra repository, sorted
//!   by name: the bare URL for apk, `src/gz <name> <url>` for opkg, and for opkg the lines
//!   `src imagebuilder file:packages` (the ImageBuilder's own packages) and
//!   `option check_signature` are added when missing, so a feed is only used when its
//!   `Packages.sig` verifies;
//! - each key goes into the ImageBuilder's `keys/` directory, where opkg (through `usign -V -P
//!   keys/`) and apk (`--keys-dir keys/`) look: a usign public key (its base64 line, or the
//!   whole two-line key file) as `keys/<fingerprint>` with the comment `untrusted comment:
//!   <fingerprint>`, which is the name usign looks a signature's key up by; a PEM key (apk) as
//!   `keys/custom-<n>.pem`, `n` its position in `repository_keys`.
//!
//! Names and URLs only reach files, never a command line or a shell. The worker checks them
//! once more (the submit path already did): a name must match ASU's `^[\w.-]+$`, so it cannot
//! add a line or a field, and a URL must still be admitted by the allow-list, which may have
//! changed since the request was queued.
//!
//! **One tree, many builds.** Builds share one unpacked ImageBuilder (serialised by the build
//! lock), whereas ASU starts each build in a fresh container. So before every build — with extra
//! repositories or without — [`prepare`] puts the tree back the way it was unpacked: the first
//! time it saves the pristine repositories file into `.attendant-repositories/`, and it records
//! the names of the key files it adds before adding them. A build that crashed half-way is thus
//! undone by the next one, and no request's feeds or keys leak into another request's build.
//!
//! **A repository that cannot be used.** The ImageBuilder runs `opkg update` with its errors
//! ignored (`package_reload` in OpenWrt's `target/imagebuilder/files/Makefile`), so a dead feed
//! shows up later as a package opkg "cannot install". [`unusable_repositories`] finds opkg's
//! own lines for the request's feeds in the failed command's output, so the failure can name
//! the repository instead of only the package.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use attendant_proto::api::{AllowList, BuildRequest, RepositoriesMode};
use attendant_proto::excerpt::{MAX_VALUE_CHARS, excerpt};
use attendant_proto::usign::PublicKey;

use crate::atomic::{Existing, write_atomic};

/// Where the pristine repositories file and the list of added key files live, inside the
/// unpacked ImageBuilder.
pub(super) const STATE_DIR: &str = ".attendant-repositories";
/// The opkg repositories file.
const OPKG_FILE: &str = "repositories.conf";
/// The apk repositories file; its presence tells an apk ImageBuilder (as ASU tells them).
const APK_FILE: &str = "repositories";
/// Inside [`STATE_DIR`]: the key files the last build added, one name per line.
const ADDED_KEYS: &str = "added-keys";
/// Largest repositories file (or list of added keys) read, in bytes (real repositories files
/// are under 1 KiB).
const MAX_REPOSITORIES_FILE_BYTES: u64 = 64 * 1024;
/// The line that keeps the ImageBuilder's own `packages/` directory in an opkg file.
const LOCAL_PACKAGES_LINE: &str = "src imagebuilder file:packages";
/// The line that makes opkg check every feed's `Packages.sig`.
const CHECK_SIGNATURE_LINE: &str = "option check_signature";
/// What `opkg update` prints for a feed whose list it could not download
/// (`libopkg/opkg_cmd.c`, <https://git.openwrt.org/?p=project/opkg-lede.git>).
const OPKG_DOWNLOAD_FAILED: &str = "*** Failed to download the package list from ";

/// Why a request's repositories cannot be written; the request's fault, never retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum RepositoryRefusal {
    /// A name that could add a line or a field to the repositories file.
    #[error("repository name `{name}` is not a name of letters, digits, `_`, `.` and `-`")]
    Name {
        /// The name, shortened.
        name: String,
    },
    /// A URL the allow-list does not admit (any more).
    #[error("repository `{url}` is not allowed: {reason}")]
    NotAllowed {
        /// The URL, shortened.
        url: String,
        /// The rule it broke.
        reason: attendant_proto::api::RepositoryError,
    },
    /// A key that is neither a usign public key nor a PEM public key.
    #[error(
        "repository key {position} is neither a usign public key (`RW...`) nor a PEM public key (`-----BEGIN PUBLIC KEY-----`)"
    )]
    Key {
        /// Its position in `repository_keys`, from 1.
        position: usize,
    },
}

/// What a request adds to the ImageBuilder: checked names and URLs, and the key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Extra {
    mode: RepositoriesMode,
    repositories: BTreeMap<String, String>,
    keys: Vec<KeyFile>,
}

/// One file for `keys/`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyFile {
    name: String,
    contents: String,
}

impl Extra {
    /// The request's repositories and keys, checked; `None` when it has none (the ImageBuilder
    /// is used as unpacked). Keys without repositories change nothing, as in ASU, where they
    /// only matter to the feeds of `repositories`.
    pub(super) fn from_request(
        request: &BuildRequest,
        allow_list: &AllowList,
    ) -> Result<Option<Self>, RepositoryRefusal> {
        if request.repositories.is_empty() {
            return Ok(None);
        }
        let name_ok = |name: &str| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
        };
        for (name, url) in &request.repositories {
            if !name_ok(name) {
                return Err(RepositoryRefusal::Name {
                    name: excerpt(name, MAX_VALUE_CHARS),
                });
            }
            allow_list
                .admit(url)
                .map_err(|reason| RepositoryRefusal::NotAllowed {
                    url: excerpt(url, MAX_VALUE_CHARS),
                    reason,
                })?;
        }
        let keys = request
            .repository_keys
            .iter()
            .enumerate()
            .map(|(index, key)| key_file(index, key))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Self {
            mode: request.repositories_mode,
            repositories: request.repositories.clone(),
            keys,
        }))
    }
}

/// Puts the ImageBuilder at `topdir` back as it was unpacked, then writes `extra` into it.
/// Runs under the build lock; blocking (small files only).
pub(super) fn prepare(topdir: &Path, extra: Option<&Extra>) -> io::Result<()> {
    let state = topdir.join(STATE_DIR);
    fs::create_dir_all(&state).map_err(|error| at(&state, "create", error))?;
    let file_name = if topdir.join(APK_FILE).is_file() {
        APK_FILE
    } else {
        OPKG_FILE
    };
    let live = topdir.join(file_name);
    let saved = state.join(file_name);
    if extra.is_none() && !live.exists() && !saved.exists() {
        // An ImageBuilder without a repositories file (none that OpenWrt publishes) builds as
        // before as long as nothing is to be added to it.
        return Ok(());
    }
    let pristine = match read_small(&saved) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            // First use of this tree: what is there now is what was unpacked.
            let text = read_small(&live)?;
            write_atomic(&saved, text.as_bytes(), Existing::Replace, false)
                .map_err(|error| at(&saved, "write", error))?;
            text
        }
        Err(error) => return Err(error),
    };
    let keys = topdir.join("keys");
    let added = state.join(ADDED_KEYS);
    match read_small(&added) {
        Ok(list) => {
            for name in list.lines().filter(|name| plain_name(name)) {
                match fs::remove_file(keys.join(name)) {
                    Ok(()) => {}
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => return Err(at(&keys.join(name), "remove", error)),
                }
            }
            fs::remove_file(&added).map_err(|error| at(&added, "remove", error))?;
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let wanted = match extra {
        None => pristine,
        Some(extra) => {
            fs::create_dir_all(&keys).map_err(|error| at(&keys, "create", error))?;
            // A key already in the tree (the release key, or the same key twice) is kept as it
            // is: it is not ours to replace, nor to remove afterwards.
            let new: Vec<&KeyFile> = extra
                .keys
                .iter()
                .filter(|key| !keys.join(&key.name).exists())
                .collect();
            let mut list = String::new();
            for key in &new {
                list.push_str(&key.name);
                list.push('\n');
            }
            // Recorded before the keys are written, so a crash in between still removes them.
            write_atomic(&added, list.as_bytes(), Existing::Replace, false)
                .map_err(|error| at(&added, "write", error))?;
            for key in new {
                let path = keys.join(&key.name);
                if let Err(error) =
                    write_atomic(&path, key.contents.as_bytes(), Existing::Keep, false)
                    && error.kind() != io::ErrorKind::AlreadyExists
                {
                    return Err(at(&path, "write", error));
                }
            }
            let base = match extra.mode {
                RepositoriesMode::Append => pristine.as_str(),
                RepositoriesMode::Replace => "",
            };
            merge(base, &extra.repositories, file_name == APK_FILE)
        }
    };
    if read_small(&live).ok().as_deref() != Some(wanted.as_str()) {
        write_atomic(&live, wanted.as_bytes(), Existing::Replace, false)
            .map_err(|error| at(&live, "write", error))?;
    }
    Ok(())
}

/// The repositories file with `extra` added to `base`'s non-blank lines (ASU's
/// `merge_repositories`).
pub(super) fn merge(base: &str, extra: &BTreeMap<String, String>, apk: bool) -> String {
    let mut lines: Vec<String> = base
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_owned)
        .collect();
    for (name, url) in extra {
        lines.push(if apk {
            url.clone()
        } else {
            format!("src/gz {name} {url}")
        });
    }
    if !apk {
        for required in [LOCAL_PACKAGES_LINE, CHECK_SIGNATURE_LINE] {
            if !lines.iter().any(|line| line.contains(required)) {
                lines.push(required.to_owned());
            }
        }
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// The request's repositories whose package list opkg could not download or verify, as
/// `(name, url)`, from the output of a failed `make manifest` or `make image`.
pub(super) fn unusable_repositories<'a>(extra: &'a Extra, output: &str) -> Vec<(&'a str, &'a str)> {
    let lines: Vec<&str> = output.lines().map(str::trim).collect();
    extra
        .repositories
        .iter()
        .filter(|(_, url)| {
            let base = url.trim_end_matches('/');
            let lists = [format!("{base}/Packages.gz"), format!("{base}/Packages")];
            let signature = format!("{base}/Packages.sig");
            lines.iter().enumerate().any(|(at, line)| {
                let failed_list = line
                    .strip_prefix(OPKG_DOWNLOAD_FAILED)
                    .is_some_and(|rest| lists.iter().any(|list| list == rest));
                // opkg prints the signature verdict right after downloading `Packages.sig`.
                let bad_signature = line.strip_prefix("Downloading ") == Some(signature.as_str())
                    && lines.get(at.saturating_add(1)).is_some_and(|next| {
                        *next == "Signature check failed."
                            || *next == "Signature file download failed."
                    });
                failed_list || bad_signature
            })
        })
        .map(|(name, url)| (name.as_str(), url.as_str()))
        .collect()
}

fn key_file(index: usize, key: &str) -> Result<KeyFile, RepositoryRefusal> {
    let position = index.saturating_add(1);
    let refused = || RepositoryRefusal::Key { position };
    let trimmed = key.trim();
    if trimmed.starts_with("-----BEGIN ") {
        let well_formed = trimmed.ends_with("-----")
            && trimmed.contains("\n-----END ")
            && trimmed
                .chars()
                .all(|c| c == '\n' || c == '\r' || !c.is_control());
        if !well_formed {
            return Err(refused());
        }
        return Ok(KeyFile {
            name: format!("custom-{index}.pem"),
            contents: format!("{trimmed}\n"),
        });
    }
    // ASU takes the base64 line alone; the whole key file (comment line first) is what
    // `usign -G` and `signify` write, so it is accepted too.
    let file = if trimmed.contains('\n') {
        trimmed.to_owned()
    } else {
        format!("untrusted comment: repository key\n{trimmed}\n")
    };
    let parsed = PublicKey::parse(file.as_bytes()).map_err(|_| refused())?;
    let fingerprint = parsed.fingerprint().to_string();
    let parsed = parsed.with_comment(&fingerprint).map_err(|_| refused())?;
    Ok(KeyFile {
        name: fingerprint,
        contents: parsed.to_file(),
    })
}

/// A name [`prepare`] may remove from `keys/`: what it writes, never a path.
fn plain_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\'])
}

fn read_small(path: &Path) -> io::Result<String> {
    let length = fs::metadata(path)
        .map_err(|error| at(path, "read", error))?
        .len();
    if length > MAX_REPOSITORIES_FILE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "`{}` is larger than {MAX_REPOSITORIES_FILE_BYTES} bytes",
                path.display()
            ),
        ));
    }
    fs::read_to_string(path).map_err(|error| at(path, "read", error))
}

/// `error` with the path and what we were doing, keeping its kind.
fn at(path: &Path, doing: &str, error: io::Error) -> io::Error {
    io::Error::new(
        error.kind(),
        format!("cannot {doing} `{}`: {error}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use attendant_proto::usign::{Fingerprint, SecretKey};

    use super::*;

    const FEED: &str = "https://feed.example.org/openwrt/24.10/mips_24kc/extra";

    fn public_key(seed: u8) -> PublicKey {
        SecretKey::generate([seed; 32], Fingerprint([seed; 8]), [0; 16], None)
            .unwrap()
            .public_key()
    }

    /// The base64 line of a key file, what ASU's `repository_keys` carry.
    fn key_line(key: &PublicKey) -> String {
        key.to_file().lines().nth(1).unwrap().to_owned()
    }

    fn request(repositories: &[(&str, &str)], keys: &[String]) -> BuildRequest {
        let mut request = BuildRequest::new("24.10.5", "ath79/generic", "tplink_archer-c7-v5");
        for (name, url) in repositories {
            request
                .repositories
                .insert((*name).to_owned(), (*url).to_owned());
        }
        request.repository_keys = keys.to_vec();
        request
    }

    fn allow_list() -> AllowList {
        AllowList::parse(&["https://feed.example.org/openwrt"]).unwrap()
    }

    #[test]
    fn opkg_append_keeps_the_feeds_and_adds_the_required_lines_once() {
        let base = "src/gz openwrt_core https://downloads.openwrt.org/x\n\n\
                    src imagebuilder file:packages\noption check_signature\n";
        let extra = BTreeMap::from([
            ("zeta".to_owned(), "https://z.example/".to_owned()),
            ("alpha".to_owned(), "https://a.example/".to_owned()),
        ]);
        assert_eq!(
            merge(base, &extra, false),
            "src/gz openwrt_core https://downloads.openwrt.org/x\n\
             src imagebuilder file:packages\noption check_signature\n\
             src/gz alpha https://a.example/\nsrc/gz zeta https://z.example/\n"
        );
    }

    #[test]
    fn opkg_replace_keeps_only_the_extra_feeds_and_the_local_packages() {
        let extra = BTreeMap::from([("extra".to_owned(), FEED.to_owned())]);
        assert_eq!(
            merge("", &extra, false),
            format!(
                "src/gz extra {FEED}\nsrc imagebuilder file:packages\noption check_signature\n"
            )
        );
    }

    #[test]
    fn apk_lines_are_bare_urls() {
        let extra = BTreeMap::from([("extra".to_owned(), format!("{FEED}/packages.adb"))]);
        assert_eq!(
            merge(
                "https://downloads.openwrt.org/a/packages.adb\n",
                &extra,
                true
            ),
            format!("https://downloads.openwrt.org/a/packages.adb\n{FEED}/packages.adb\n")
        );
        assert_eq!(merge("", &extra, true), format!("{FEED}/packages.adb\n"));
    }

    #[test]
    fn usign_keys_are_named_by_fingerprint_with_asus_comment() {
        let key = public_key(7);
        let file = key_file(0, &key_line(&key)).unwrap();
        assert_eq!(file.name, "0707070707070707");
        assert_eq!(
            file.contents,
            format!("untrusted comment: 0707070707070707\n{}\n", key_line(&key))
        );
        // The whole key file as `usign -G` writes it gives the same file.
        assert_eq!(key_file(0, &key.to_file()).unwrap(), file);
    }

    #[test]
    fn pem_keys_are_numbered_by_position() {
        let pem = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----";
        let file = key_file(2, pem).unwrap();
        assert_eq!(file.name, "custom-2.pem");
        assert_eq!(file.contents, format!("{pem}\n"));
    }

    #[test]
    fn a_key_that_is_neither_is_refused_with_its_position() {
        let refused = Extra::from_request(
            &request(&[("extra", FEED)], &["not a key".to_owned()]),
            &allow_list(),
        )
        .unwrap_err();
        assert_eq!(refused, RepositoryRefusal::Key { position: 1 });
        assert_eq!(
            refused.to_string(),
            "repository key 1 is neither a usign public key (`RW...`) nor a PEM public key (`-----BEGIN PUBLIC KEY-----`)"
        );
    }

    #[test]
    fn names_that_could_add_a_line_and_urls_outside_the_allow_list_are_refused() {
        let refused = Extra::from_request(&request(&[("a\nsrc/gz b", FEED)], &[]), &allow_list())
            .unwrap_err();
        assert!(
            matches!(refused, RepositoryRefusal::Name { .. }),
            "{refused}"
        );
        let refused = Extra::from_request(
            &request(&[("extra", "https://evil.example/openwrt")], &[]),
            &allow_list(),
        )
        .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "repository `https://evil.example/openwrt` is not allowed: the URL is not under any entry of the server's repository allow-list"
        );
        assert_eq!(
            Extra::from_request(&request(&[], &[]), &allow_list()),
            Ok(None)
        );
    }

    fn imagebuilder(apk: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let (name, text) = if apk {
            (APK_FILE, "https://downloads.openwrt.org/a/packages.adb\n")
        } else {
            (
                OPKG_FILE,
                "src/gz openwrt_core https://downloads.openwrt.org/x\nsrc imagebuilder file:packages\noption check_signature\n",
            )
        };
        fs::write(dir.path().join(name), text).unwrap();
        fs::create_dir(dir.path().join("keys")).unwrap();
        fs::write(dir.path().join("keys/release"), "release key\n").unwrap();
        dir
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir.join("keys"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_next_build_gets_the_tree_as_unpacked() {
        let ib = imagebuilder(false);
        let pristine = fs::read_to_string(ib.path().join(OPKG_FILE)).unwrap();
        let key = public_key(9);
        let pem = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----".to_owned();
        let extra = Extra::from_request(
            &request(&[("extra", FEED)], &[key_line(&key), pem]),
            &allow_list(),
        )
        .unwrap()
        .unwrap();
        prepare(ib.path(), Some(&extra)).unwrap();
        assert_eq!(
            fs::read_to_string(ib.path().join(OPKG_FILE)).unwrap(),
            format!(
                "src/gz extra {FEED}\nsrc imagebuilder file:packages\noption check_signature\n"
            )
        );
        assert_eq!(
            listing(ib.path()),
            ["0909090909090909", "custom-1.pem", "release"]
        );
        // The build crashes here; the next one, without repositories, finds the tree clean.
        prepare(ib.path(), None).unwrap();
        assert_eq!(
            fs::read_to_string(ib.path().join(OPKG_FILE)).unwrap(),
            pristine
        );
        assert_eq!(listing(ib.path()), ["release"]);
    }

    #[test]
    fn append_builds_on_the_pristine_file_and_a_key_already_there_is_kept() {
        let ib = imagebuilder(true);
        let key = public_key(3);
        // The same key as one the ImageBuilder ships: neither replaced nor removed afterwards.
        fs::write(ib.path().join("keys/0303030303030303"), "shipped\n").unwrap();
        let mut append = request(&[("extra", FEED)], &[key_line(&key)]);
        append.repositories_mode = RepositoriesMode::Append;
        let extra = Extra::from_request(&append, &allow_list())
            .unwrap()
            .unwrap();
        prepare(ib.path(), Some(&extra)).unwrap();
        prepare(ib.path(), Some(&extra)).unwrap();
        assert_eq!(
            fs::read_to_string(ib.path().join(APK_FILE)).unwrap(),
            format!("https://downloads.openwrt.org/a/packages.adb\n{FEED}\n"),
            "appended once, to the file as unpacked"
        );
        prepare(ib.path(), None).unwrap();
        assert_eq!(
            fs::read_to_string(ib.path().join("keys/0303030303030303")).unwrap(),
            "shipped\n"
        );
    }

    #[test]
    fn a_tree_without_a_repositories_file_is_left_alone_unless_feeds_are_added() {
        let ib = tempfile::tempdir().unwrap();
        prepare(ib.path(), None).unwrap();
        assert!(!ib.path().join(OPKG_FILE).exists());
        let extra = Extra::from_request(&request(&[("extra", FEED)], &[]), &allow_list())
            .unwrap()
            .unwrap();
        let error = prepare(ib.path(), Some(&extra)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
        assert!(error.to_string().contains("repositories.conf"), "{error}");
    }

    #[test]
    fn opkgs_lines_name_the_feed_that_could_not_be_used() {
        let extra = Extra::from_request(
            &request(
                &[
                    ("extra", FEED),
                    ("other", "https://feed.example.org/openwrt/other"),
                ],
                &[],
            ),
            &allow_list(),
        )
        .unwrap()
        .unwrap();
        let download = format!(
            "Downloading {FEED}/Packages.gz\n*** Failed to download the package list from {FEED}/Packages.gz\n\n"
        );
        assert_eq!(unusable_repositories(&extra, &download), [("extra", FEED)]);
        let signature = "Downloading https://feed.example.org/openwrt/other/Packages.gz\n\
             Updated list of available packages in /builder/dl/other\n\
             Downloading https://feed.example.org/openwrt/other/Packages.sig\n\
             Signature check failed.\nRemove wrong Signature file.\n";
        assert_eq!(
            unusable_repositories(&extra, signature),
            [("other", "https://feed.example.org/openwrt/other")]
        );
        let passed = signature.replace("Signature check failed.", "Signature check passed.");
        assert!(unusable_repositories(&extra, &passed).is_empty());
    }
}
