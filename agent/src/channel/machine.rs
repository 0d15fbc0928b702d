//! The router's machine-id: `/etc/machine-id` where the system has one, else one generated once
//! into `/etc/attendant/machine-id` (kept across sysupgrade). It seeds the router's phase in
//! phased rollouts and, hashed with the server's salt, tells the server's report counts one
//! router from many; it leaves the router in no other form.

use std::path::Path;

use attendant_proto::wire;
use ring::rand::{SecureRandom, SystemRandom};

use super::ChannelError;
use crate::atomic::write_atomic;

/// Longest machine-id read; systemd's are 32 hex digits.
const MAX_MACHINE_ID_LEN: u64 = 128;

/// The machine-id of the router under `root`, made and saved on first use.
pub fn machine_id(root: &Path) -> Result<String, ChannelError> {
    for path in [wire::SYSTEM_MACHINE_ID_PATH, wire::MACHINE_ID_PATH] {
        let path = wire::under_root(root, path);
        match crate::atomic::read_small(&path, MAX_MACHINE_ID_LEN) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes).trim().to_owned();
                if is_machine_id(&text) {
                    return Ok(text);
                }
                log::warn!("ignoring `{}`: not a machine-id", path.display());
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ChannelError::Io { path, source }),
        }
    }
    let path = wire::under_root(root, wire::MACHINE_ID_PATH);
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ChannelError::Write {
            path: path.clone(),
            source: std::io::Error::other("no random numbers from the system"),
        })?;
    let id = crate::download::hex(&bytes);
    let write = |source| ChannelError::Write {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(write)?;
    }
    write_atomic(&path, format!("{id}\n").as_bytes()).map_err(write)?;
    log::info!(
        "made a machine-id for phased rollouts in `{}`",
        path.display()
    );
    Ok(id)
}

/// Printable, without spaces, 1 to 64 characters: systemd's 32 hex digits and other systems' ids.
fn is_machine_id(text: &str) -> bool {
    (1..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_id_wins_else_one_is_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let made = machine_id(dir.path()).unwrap();
        assert_eq!(made.len(), 32);
        assert_eq!(machine_id(dir.path()).unwrap(), made);
        let system = dir.path().join("etc/machine-id");
        std::fs::write(&system, "0123456789abcdef0123456789abcdef\n").unwrap();
        assert_eq!(
            machine_id(dir.path()).unwrap(),
            "0123456789abcdef0123456789abcdef"
        );
    }

    #[test]
    fn an_empty_system_id_is_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/machine-id"), "\n").unwrap();
        assert_eq!(machine_id(dir.path()).unwrap().len(), 32);
    }
}
