//! What sysupgrade and the reboot after it do to a fake router root ([`crate::router`]), so a
//! test can follow a router through several upgrades: the recording `sysupgrade`
//! ([`crate::sysupgrade`]) only logs what it was asked to flash, and [`boot_flashed`] then makes
//! that image the running firmware.
//!
//! Modelled on sysupgrade with settings kept (<https://openwrt.org/docs/techref/sysupgrade>):
//!
//! - the new image replaces the system: release files, package database and board facts are
//!   written for the image's release (`write_root` with the router's own packages, which is
//!   what an image built for the router or a channel's image for a router without extras
//!   holds);
//! - `/etc/config` and the files the packages list in `/lib/upgrade/keep.d` survive; in this
//!   model everything else under `/etc` does too, except `/etc/attendant/channel.json`, which
//!   belongs to the image (each image brings its own or none);
//! - the image's embedded files (`FILES`) are laid over the root;
//! - `/tmp` and `/var/run` are tmpfs and start empty;
//! - at first boot the uci-defaults scripts run once and are deleted. This model runs no shell
//!   script on the host: of a script it applies only the here-document that writes
//!   `/etc/attendant/channel.json` (the shape the agent's attended builds use,
//!   `agent/src/channel/attended.rs`), and it says so in [`Booted::defaults_ignored`].
//!
//! [`boot_unchanged`] is the other outcome: the new firmware did not come up and the router
//! runs the old one again (a rollback, or a failed flash), with `/tmp` emptied.

use std::path::{Path, PathBuf};

use attendant_proto::wire;

use crate::catalog::Catalog;
use crate::imagebuilder::image::{ContentsError, ImageContents, read_contents};
use crate::router::{RouterError, RouterSpec, write_root};

/// What the router runs after [`boot_flashed`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Booted {
    /// The flashed image's contents.
    pub image: ImageContents,
    /// The router as it now is (the spec with the image's release).
    pub spec: RouterSpec,
    /// uci-defaults scripts whose lines other than the stamp's here-document were not run.
    pub defaults_ignored: Vec<String>,
}

/// Why a reboot could not be modelled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RebootError {
    /// The recording `sysupgrade` flashed nothing.
    #[error("sysupgrade was never asked to flash an image")]
    NothingFlashed,
    /// The flashed file could not be read.
    #[error("cannot read the flashed image `{path}`: {source}")]
    Read {
        /// The image.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The flashed file is not an image of the fixture ImageBuilder.
    #[error("the flashed image `{path}`: {source}")]
    Contents {
        /// The image.
        path: PathBuf,
        /// What was wrong.
        #[source]
        source: ContentsError,
    },
    /// The image was built for another profile.
    #[error("the flashed image is for profile `{found}`, the router is `{expected}`")]
    WrongProfile {
        /// The router's profile.
        expected: String,
        /// The image's.
        found: String,
    },
    /// The new root could not be written.
    #[error(transparent)]
    Router(#[from] RouterError),
    /// A file of the root could not be changed.
    #[error("cannot change `{path}`: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Boots `root` into the image the recording `sysupgrade` flashed last (see the module docs);
/// `spec` is the router before the upgrade.
pub fn boot_flashed(
    root: &Path,
    catalog: &Catalog,
    spec: &RouterSpec,
) -> Result<Booted, RebootError> {
    let flashed = crate::sysupgrade::calls(root)
        .into_iter()
        .rev()
        .find(|call| !call.starts_with("--test"))
        .and_then(|call| call.split_whitespace().last().map(PathBuf::from))
        .ok_or(RebootError::NothingFlashed)?;
    let bytes = std::fs::read(&flashed).map_err(|source| RebootError::Read {
        path: flashed.clone(),
        source,
    })?;
    let image = read_contents(&bytes).map_err(|source| RebootError::Contents {
        path: flashed.clone(),
        source,
    })?;
    if image.profile != spec.profile {
        return Err(RebootError::WrongProfile {
            expected: spec.profile.clone(),
            found: image.profile.clone(),
        });
    }
    let mut spec = spec.clone();
    spec.version.clone_from(&image.version);
    remove(&wire::under_root(root, wire::CHANNEL_STAMP_PATH))?;
    empty_volatile(root)?;
    write_root(root, catalog, &spec)?;
    for (path, contents) in &image.files {
        write(&wire::under_root(root, path), contents)?;
    }
    let defaults_ignored = first_boot(root)?;
    Ok(Booted {
        image,
        spec,
        defaults_ignored,
    })
}

/// The new firmware did not come up: the router runs its old firmware again, `/tmp` and
/// `/var/run` emptied.
pub fn boot_unchanged(root: &Path) -> Result<(), RebootError> {
    let board = std::fs::read(wire::under_root(root, wire::SYSINFO_BOARD_NAME_PATH));
    let model = std::fs::read(wire::under_root(root, wire::SYSINFO_MODEL_PATH));
    empty_volatile(root)?;
    // The board facts in /tmp/sysinfo are written again at every boot.
    for (path, bytes) in [
        (wire::SYSINFO_BOARD_NAME_PATH, board),
        (wire::SYSINFO_MODEL_PATH, model),
    ] {
        if let Ok(bytes) = bytes {
            write(&wire::under_root(root, path), &bytes)?;
        }
    }
    Ok(())
}

/// Runs `/etc/uci-defaults` as far as this model does: the stamp's here-document of each
/// script is written, then the script is deleted. Returns the scripts that held more.
fn first_boot(root: &Path) -> Result<Vec<String>, RebootError> {
    let dir = wire::under_root(root, wire::UCI_DEFAULTS_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut scripts: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
    scripts.sort();
    let mut ignored = Vec::new();
    for script in scripts {
        let text = std::fs::read_to_string(&script).map_err(|source| RebootError::Io {
            path: script.clone(),
            source,
        })?;
        let (stamp, rest) = stamp_heredoc(&text);
        if let Some(stamp) = stamp {
            let mut bytes = stamp.into_bytes();
            bytes.push(b'\n');
            write(&wire::under_root(root, wire::CHANNEL_STAMP_PATH), &bytes)?;
        }
        if rest.lines().any(|line| !line.trim().is_empty()) {
            ignored.push(script.display().to_string());
        }
        remove(&script)?;
    }
    Ok(ignored)
}

/// The body of a `cat > /etc/attendant/channel.json <<'END'` here-document in `script`, and
/// the script's other lines (without the `mkdir -p` of the stamp's directory).
fn stamp_heredoc(script: &str) -> (Option<String>, String) {
    let opener = format!("cat > {} <<'", wire::CHANNEL_STAMP_PATH);
    let stamp_dir = wire::CHANNEL_STAMP_PATH
        .rsplit_once('/')
        .map_or("/", |(dir, _)| dir);
    let mut lines = script.lines();
    let mut rest = String::new();
    let mut stamp = None;
    while let Some(line) = lines.next() {
        if let Some(end) = line
            .strip_prefix(&opener)
            .and_then(|t| t.strip_suffix('\''))
        {
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != end).collect();
            stamp = Some(body.join("\n"));
        } else if line != format!("mkdir -p {stamp_dir}") {
            rest.push_str(line);
            rest.push('\n');
        }
    }
    (stamp, rest)
}

fn empty_volatile(root: &Path) -> Result<(), RebootError> {
    for dir in [wire::TMP_DIR, "/var/run"] {
        let path = wire::under_root(root, dir);
        match std::fs::remove_dir_all(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(RebootError::Io { path, source }),
        }
        std::fs::create_dir_all(&path).map_err(|source| RebootError::Io { path, source })?;
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), RebootError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| RebootError::Io {
            path: parent.to_owned(),
            source,
        })?;
    }
    std::fs::write(path, bytes).map_err(|source| RebootError::Io {
        path: path.to_owned(),
        source,
    })
}

fn remove(path: &Path) -> Result<(), RebootError> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(RebootError::Io {
            path: path.to_owned(),
            source: error,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stamp_heredoc_is_found_and_other_lines_are_kept() {
        let script = "mkdir -p /etc/attendant\ncat > /etc/attendant/channel.json <<'ATTENDANT_CHANNEL_JSON'\n{\"channel\":\"stable\"}\nATTENDANT_CHANNEL_JSON\nuci set system.@system[0].hostname=x\n";
        let (stamp, rest) = stamp_heredoc(script);
        assert_eq!(stamp.as_deref(), Some("{\"channel\":\"stable\"}"));
        assert_eq!(rest, "uci set system.@system[0].hostname=x\n");
        let (stamp, rest) = stamp_heredoc("exit 0\n");
        assert_eq!(stamp, None);
        assert_eq!(rest, "exit 0\n");
    }
}
