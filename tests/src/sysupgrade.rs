//! A recording `sysupgrade` for a fake router root (`--root`): a shell script at
//! `<root>/bin/sysupgrade` that appends its arguments to `<root>/sysupgrade.log`, so a test can
//! check what the agent or the ubus plugin asked to flash without flashing anything.
//!
//! The agent's, the plugin's and the end-to-end tests all put the same stand-in first on `PATH`;
//! keeping it here keeps its log format one thing.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Where the stand-in goes, relative to the root.
pub const SCRIPT: &str = "bin/sysupgrade";

/// Where it records its calls, relative to the root: one line of arguments per call.
pub const LOG: &str = "sysupgrade.log";

/// Writes the stand-in into `root`. Every call records its arguments; `sysupgrade --test` then
/// exits with `test_code` (printing `image check failed` unless it is 0), any other call with 0.
pub fn install(root: &Path, test_code: i32) -> io::Result<()> {
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> '{}'\nif [ \"$1\" = --test ]; then\n  [ {test_code} -ne 0 ] && echo 'image check failed' >&2\n  exit {test_code}\nfi\nexit 0\n",
        root.join(LOG).display()
    );
    let path = root.join(SCRIPT);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, script)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
}

/// The argument lines the stand-in in `root` was called with, oldest first (none if never called).
pub fn calls(root: &Path) -> Vec<String> {
    std::fs::read_to_string(root.join(LOG))
        .map(|text| text.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Forgets the calls recorded so far.
pub fn clear(root: &Path) {
    let _ = std::fs::remove_file(root.join(LOG));
}
