//! The resumable state of an unfinished upgrade: `/var/run/attendant/state.json`.
//!
//! `upgrade` writes this file after each step, so a dropped SSH session or a killed LuCI page
//! picks up where it stopped: the same request hash is polled instead of posting again, a partial
//! download continues with a `Range` request, and a verified image is not verified again unless
//! it changed. The file is written to a temporary file in the same directory and renamed over the
//! old one, so a crash never leaves half a state file.
//!
//! The format is JSON, documented by [`State`]; unknown fields are ignored and a file from a
//! different format version is treated as absent.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::hint::{Hint, HintCode};

/// Where the state file lives.
pub const STATE_PATH: &str = attendant_proto::wire::STATE_PATH;

/// Largest state file read.
pub const MAX_STATE_LEN: u64 = 1024 * 1024;

/// The format version written to [`State::format`].
pub const STATE_FORMAT: u32 = 1;

/// Where an upgrade got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The build request was accepted; the build is queued or running.
    Building,
    /// The build finished; the image is being downloaded.
    Downloading,
    /// The image is on disk, not yet verified.
    Downloaded,
    /// The image passed every check.
    Verified,
    /// sysupgrade was started.
    Installing,
}

/// The state file's contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// [`STATE_FORMAT`].
    pub format: u32,
    /// The stage reached.
    pub stage: Stage,
    /// The server the build was requested from.
    pub server: String,
    /// The server's request hash.
    pub request_hash: String,
    /// SHA-256 of the build request body we sent (hex), to tell whether a new run asks for the
    /// same thing.
    pub request_sha256: String,
    /// The version requested.
    pub version: String,
    /// Where the image is (being) written.
    pub image_path: Option<PathBuf>,
    /// The image's URL.
    pub image_url: Option<String>,
    /// The SHA-256 the server promised for the image.
    pub image_sha256: Option<String>,
    /// Bytes of the image on disk.
    pub downloaded_bytes: u64,
    /// The image's size, when known.
    pub total_bytes: Option<u64>,
    /// The verification result, once verified: the SHA-256 of the file that passed.
    pub verified_sha256: Option<String>,
    /// Seconds since the Unix epoch of the last update.
    pub updated_at: u64,
}

/// Why the state file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Reading, writing or renaming failed.
    #[error("cannot {action} the state file `{path}`: {source}")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_STATE_LEN`].
    #[error("the state file `{path}` is larger than {MAX_STATE_LEN} bytes")]
    TooLarge {
        /// The path.
        path: PathBuf,
    },
    /// The file is not a state file.
    #[error("the state file `{path}` is not valid: {message}")]
    Invalid {
        /// The path.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
}

impl StateError {
    /// The way out, if there is one.
    pub fn hint(&self) -> Option<Hint> {
        match self {
            Self::TooLarge { .. } | Self::Invalid { .. } => Some(Hint::coded(
                HintCode::ClearState,
                "remove it with `attendant status --clear`",
            )),
            _ => None,
        }
    }
}

/// The state file under a root directory.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// The state file for the router whose files are under `root` (`/` on the router).
    pub fn new(root: &Path) -> Self {
        Self {
            path: attendant_proto::wire::under_root(root, STATE_PATH),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved state; `None` when there is none or it has another format version.
    pub fn load(&self) -> Result<Option<State>, StateError> {
        let metadata = match fs::metadata(&self.path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(self.io("read", source)),
        };
        if metadata.len() > MAX_STATE_LEN {
            return Err(StateError::TooLarge {
                path: self.path.clone(),
            });
        }
        let bytes = fs::read(&self.path).map_err(|source| self.io("read", source))?;
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|error| StateError::Invalid {
                path: self.path.clone(),
                message: error.to_string(),
            })?;
        if value.get("format").and_then(serde_json::Value::as_u64) != Some(u64::from(STATE_FORMAT))
        {
            log::info!(
                "ignoring `{}`: written by another version",
                self.path.display()
            );
            return Ok(None);
        }
        serde_json::from_value(value)
            .map(Some)
            .map_err(|error| StateError::Invalid {
                path: self.path.clone(),
                message: error.to_string(),
            })
    }

    /// Saves `state`: write a temporary file beside it, then rename it into place.
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(|source| StateError::Io {
            action: "create the directory of",
            path: self.path.clone(),
            source,
        })?;
        let mut bytes = serde_json::to_vec_pretty(state).map_err(|error| StateError::Invalid {
            path: self.path.clone(),
            message: error.to_string(),
        })?;
        bytes.push(b'\n');
        write_atomic(&self.path, &bytes).map_err(|source| self.io("write", source))
    }

    /// Removes the state file; no error when there is none.
    pub fn clear(&self) -> Result<(), StateError> {
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(self.io("remove", source)),
        }
    }

    fn io(&self, action: &'static str, source: std::io::Error) -> StateError {
        StateError::Io {
            action,
            path: self.path.clone(),
            source,
        }
    }
}

impl State {
    /// A fresh state for a build request just accepted.
    pub fn new(server: &str, request_hash: &str, request_sha256: &str, version: &str) -> Self {
        Self {
            format: STATE_FORMAT,
            stage: Stage::Building,
            server: server.to_owned(),
            request_hash: request_hash.to_owned(),
            request_sha256: request_sha256.to_owned(),
            version: version.to_owned(),
            image_path: None,
            image_url: None,
            image_sha256: None,
            downloaded_bytes: 0,
            total_bytes: None,
            verified_sha256: None,
            updated_at: now(),
        }
    }

    /// Marks the state as changed now.
    pub fn touch(&mut self) {
        self.updated_at = now();
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_file() {
        let root = tempfile::tempdir().unwrap();
        let file = StateFile::new(root.path());
        assert_eq!(file.load().unwrap(), None);
        let mut state = State::new("http://s", "abc", "def", "24.10.5");
        state.stage = Stage::Downloading;
        state.downloaded_bytes = 1234;
        state.image_path = Some(root.path().join("tmp/firmware.bin"));
        file.save(&state).unwrap();
        assert_eq!(file.load().unwrap(), Some(state.clone()));
        let names: Vec<_> = fs::read_dir(file.path().parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state.json"], "no temporary file is left");
        state.stage = Stage::Verified;
        file.save(&state).unwrap();
        assert_eq!(file.load().unwrap().unwrap().stage, Stage::Verified);
        file.clear().unwrap();
        file.clear().unwrap();
        assert_eq!(file.load().unwrap(), None);
    }

    #[test]
    fn ignores_another_format_and_rejects_garbage() {
        let root = tempfile::tempdir().unwrap();
        let file = StateFile::new(root.path());
        fs::create_dir_all(file.path().parent().unwrap()).unwrap();
        fs::write(file.path(), br#"{"format": 99, "stage": "x"}"#).unwrap();
        assert_eq!(file.load().unwrap(), None);
        fs::write(file.path(), b"not json").unwrap();
        let error = file.load().unwrap_err();
        assert!(error.to_string().starts_with("the state file `"), "{error}");
    }
}
