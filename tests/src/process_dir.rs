//! [`ProcessDir`]: a scratch directory for what a whole test process shares (a server started
//! once per test binary and kept in a `static`).
//!
//! A `static` is never dropped, so a `tempfile::TempDir` held in one is never removed: every
//! run of such a test binary used to leave its server's data directory (hundreds of MiB of
//! ImageBuilders and images) in `/tmp`. A process directory is named after its process,
//! `<temp>/attendant-<name>-<pid>`, and the next one made with the same name removes those of
//! processes that are gone, so at most the running processes' directories remain.

use std::path::{Path, PathBuf};

/// A directory that lives as long as the test process (see the module docs).
#[derive(Debug)]
pub struct ProcessDir {
    path: PathBuf,
}

impl ProcessDir {
    /// Removes the `attendant-<name>-<pid>` directories of processes that no longer run, then
    /// makes this process's one (empty).
    ///
    /// # Errors
    ///
    /// When the directory cannot be made.
    pub fn new(name: &str) -> std::io::Result<Self> {
        let temp = std::env::temp_dir();
        let prefix = format!("attendant-{name}-");
        for entry in std::fs::read_dir(&temp)?.flatten() {
            let file_name = entry.file_name();
            let Some(pid) = file_name
                .to_str()
                .and_then(|file_name| file_name.strip_prefix(&prefix))
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if !Path::new("/proc").join(pid.to_string()).exists() {
                // Another process may be sweeping the same directory: losing the race is fine.
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let path = temp.join(format!("{prefix}{}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::create_dir_all(&path)?;
        Ok(Self { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
