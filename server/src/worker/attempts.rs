//! Per-attempt work directories, and the sweep that removes those of dead attempts.
//!
//! Every attempt builds in `<work_dir>/<request_hash>-<attempt>-<nonce>/` (`BIN_DIR`, `FILES`),
//! next to a lock file `<same name>.lock` that the attempt holds locked (`flock`) from before the
//! directory exists until after it is gone. The kernel drops the lock when the process dies,
//! however it dies, so a directory whose lock can be taken belongs to a dead attempt: kill -9
//! of the server, a power cut. [`sweep`] (at worker start-up and with every reaper pass) kills
//! what is left of such an attempt's processes and deletes its directory.
//!
//! Its processes are found by their environment: every command of an attempt runs with
//! [`ATTEMPT_ENV`] set to the name of its work directory, which `make` and everything below it
//! inherit. The name ends in a random nonce: two servers on one host (tests, a second
//! `worker`) building the same request in the same attempt number never share it, so a sweep
//! never kills another server's live build. Normally nothing is left to kill: `make` gets
//! `SIGTERM` when the worker dies and passes it on to its children (see [`crate::process`]).

use std::fs::{self, File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use rustix::process::{Pid, Signal, kill_process};

/// The environment variable naming the attempt a build command belongs to.
pub const ATTEMPT_ENV: &str = "ATTENDANT_BUILD_ATTEMPT";

/// Suffix of an attempt's lock file.
const LOCK_SUFFIX: &str = ".lock";

/// Largest `/proc/<pid>/environ` read while looking for [`ATTEMPT_ENV`].
const MAX_ENVIRON_BYTES: u64 = 256 * 1024;

/// A live attempt's work directory; its lock is held while this value lives.
#[derive(Debug)]
pub(super) struct AttemptDir {
    path: PathBuf,
    lock_path: PathBuf,
    /// Held for the attempt's lifetime; closing it releases the lock.
    _lock: File,
}

impl AttemptDir {
    /// Creates `<root>/<name>/` with its lock taken first; `name` must be unique on the host.
    pub(super) fn create(root: &Path, name: &str) -> io::Result<Self> {
        fs::create_dir_all(root)?;
        let lock_path = root.join(format!("{name}{LOCK_SUFFIX}"));
        let lock = File::create_new(&lock_path)?;
        lock.try_lock().map_err(|error| match error {
            TryLockError::Error(error) => error,
            TryLockError::WouldBlock => io::Error::from(io::ErrorKind::WouldBlock),
        })?;
        let path = root.join(name);
        fs::create_dir(&path)?;
        Ok(Self {
            path,
            lock_path,
            _lock: lock,
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Deletes the directory, then the lock file (the lock is released when `self` drops).
    pub(super) async fn remove(self) {
        for result in [
            tokio::fs::remove_dir_all(&self.path).await,
            tokio::fs::remove_file(&self.lock_path).await,
        ] {
            if let Err(error) = result
                && error.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(path = %self.path.display(), error = %error, "cannot delete work directory");
            }
        }
    }
}

/// What [`sweep`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Dead attempts' directories deleted.
    pub directories: u64,
    /// Leftover processes of dead attempts killed.
    pub processes: u64,
}

/// Deletes the work directories of dead attempts under `root` and kills their leftover
/// processes. A missing `root` is empty.
pub fn sweep(root: &Path) -> io::Result<Swept> {
    let mut swept = Swept::default();
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(swept),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(dir_name) = name.strip_suffix(LOCK_SUFFIX) {
            // A lock without its directory: an attempt between its two steps, or one that
            // died after deleting its directory.
            if !root.join(dir_name).exists() && is_dead(&entry.path())? {
                remove_quietly(&entry.path());
            }
            continue;
        }
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let lock_path = root.join(format!("{name}{LOCK_SUFFIX}"));
        if !is_dead(&lock_path)? {
            continue;
        }
        swept.processes = swept.processes.saturating_add(kill_marked(name));
        fs::remove_dir_all(entry.path())?;
        remove_quietly(&lock_path);
        swept.directories = swept.directories.saturating_add(1);
    }
    Ok(swept)
}

/// Whether no live process holds the lock at `path` (a missing lock file counts as dead: the
/// directory predates its attempt's lock, which no live attempt's does).
fn is_dead(path: &Path) -> io::Result<bool> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(error) => return Err(error),
    };
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(error)) => Err(error),
    }
}

fn remove_quietly(path: &Path) {
    if let Err(error) = fs::remove_file(path)
        && error.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %error, "cannot delete a stale lock file");
    }
}

/// Sends `SIGKILL` to every process whose environment says it belongs to attempt `marker`;
/// returns how many. Processes of other users, whose environment we may not read, are not ours.
fn kill_marked(marker: &str) -> u64 {
    let wanted = format!("{ATTEMPT_ENV}={marker}");
    let Ok(processes) = fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed = 0u64;
    for process in processes.flatten() {
        let Some(pid) = process
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
            .and_then(Pid::from_raw)
        else {
            continue;
        };
        if !environ_has(&process.path().join("environ"), &wanted) {
            continue;
        }
        if kill_process(pid, Signal::KILL).is_ok() {
            tracing::warn!(
                pid = pid.as_raw_nonzero(),
                attempt = marker,
                "killed a dead attempt's process"
            );
            killed = killed.saturating_add(1);
        }
    }
    killed
}

fn environ_has(path: &Path, wanted: &str) -> bool {
    use std::io::Read;
    let Ok(file) = File::open(path) else {
        return false;
    };
    let mut environ = Vec::new();
    if file
        .take(MAX_ENVIRON_BYTES)
        .read_to_end(&mut environ)
        .is_err()
    {
        return false;
    }
    environ
        .split(|byte| *byte == 0)
        .any(|variable| variable == wanted.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_attempts_are_kept_and_dead_ones_swept() {
        let root = tempfile::tempdir().unwrap();
        let live = AttemptDir::create(root.path(), "aa-1-0001").unwrap();
        std::fs::write(live.path().join("image.bin"), "x").unwrap();
        let dead = AttemptDir::create(root.path(), "bb-2-0002").unwrap();
        let dead_path = dead.path().to_owned();
        // Dropping without `remove` is what a killed process leaves: directory and lock file,
        // the lock released.
        drop(dead);
        std::fs::create_dir(root.path().join("cc-1-0003")).unwrap();
        std::fs::File::create(root.path().join("dd-1-0004.lock")).unwrap();

        let swept = sweep(root.path()).unwrap();
        assert_eq!(swept.directories, 2);
        assert!(live.path().join("image.bin").exists());
        assert!(!dead_path.exists());
        let mut left: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["aa-1-0001", "aa-1-0001.lock"]);
        assert_eq!(
            sweep(&root.path().join("missing")).unwrap(),
            Swept::default()
        );
    }
}
