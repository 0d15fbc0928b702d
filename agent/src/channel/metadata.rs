//! Fetching channel metadata and believing it only after every check: `channels.json` and a
//! device's `index.json`, each with its detached usign `.sig`, verified under the delegation
//! chain from the root keys pinned in `/etc/attendant/keys/` (`attendant_proto::channel::trust`
//! does the checks; this module does the I/O around them).
//!
//! For each file: GET `<file>` and `<file>.sig`; the fingerprint in the `.sig` names the
//! delegation `keys/<fingerprint>.ucert`; `keys/revoked.ucert` is read when published; then
//! signature, format, expiry, serial and (for an index) channel and device. The highest serial
//! seen of each file is kept in `/etc/attendant/serial.json` (kept across sysupgrade), so an
//! older, correctly signed file is refused as a replay. A `.sig` that does not match its file is
//! fetched once more with the file: the server switches publications with one rename, and a
//! client can read the file of one publication and the signature of the next.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use attendant_proto::channel::trust::{self, TrustError};
use attendant_proto::channel::{
    ChannelFormatError, ChannelsDoc, Freshness, IndexDoc, MAX_CHANNELS_LEN, MAX_INDEX_LEN,
    parse_channels, parse_index,
};
use attendant_proto::usign::PublicKey;
use attendant_proto::wire;

use super::ChannelError;
use crate::atomic::write_atomic;
use crate::client::{Client, ClientError};

/// Where the server publishes the channel tree.
pub const CHANNELS_URL_ROOT: &str = "/channels";

/// Largest delegation or revocation list fetched (ucert reads at most 4095 bytes).
pub const MAX_UCERT_LEN: u64 = 4096;

/// Largest `.sig` fetched.
pub const MAX_SIGNATURE_LEN: u64 = 2048;

/// Largest pinned root key file read.
const MAX_ROOT_KEY_LEN: u64 = 4096;

/// Largest serial file read; it holds a line per channel server and file.
const MAX_SERIAL_FILE_LEN: u64 = 256 * 1024;

/// Most files remembered in the serial file; the oldest entries go first when it is full.
const MAX_SERIAL_ENTRIES: usize = 1024;

/// Verified channel metadata from one server.
#[derive(Debug)]
pub struct Metadata<'a> {
    client: &'a Client,
    roots: Vec<PublicKey>,
    serials: SerialFile,
    now: i64,
}

impl<'a> Metadata<'a> {
    /// Reads the pinned root keys under `root` and the serial file; fails when no key is pinned.
    pub fn open(client: &'a Client, root: &Path) -> Result<Self, ChannelError> {
        let roots = pinned_roots(root)?;
        let serials = SerialFile::load(wire::under_root(root, wire::CHANNEL_SERIAL_PATH))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Ok(Self {
            client,
            roots,
            serials,
            now,
        })
    }

    /// The verified `channels.json`.
    pub fn channels(&mut self) -> Result<ChannelsDoc, ChannelError> {
        let url = self
            .client
            .url(&format!("{CHANNELS_URL_ROOT}/channels.json"));
        let bytes = self.fetch_verified(&url, MAX_CHANNELS_LEN)?;
        let doc = parse_channels(&bytes).map_err(|source| format_error(&url, source))?;
        self.check_fresh(&url, "channels.json", &doc.global)?;
        Ok(doc)
    }

    /// The verified index at URL path `path` for `channel` and `device`.
    pub fn index(
        &mut self,
        path: &str,
        channel: &str,
        device: &str,
    ) -> Result<IndexDoc, ChannelError> {
        let url = self.client.url(path);
        let bytes = self.fetch_verified(&url, MAX_INDEX_LEN)?;
        let doc = parse_index(&bytes).map_err(|source| format_error(&url, source))?;
        self.check_fresh(&url, &format!("{channel} {device}"), &doc.global.freshness)?;
        trust::check_index_target(&doc.global, channel, device).map_err(|source| {
            ChannelError::Refused {
                url: url.clone(),
                source,
            }
        })?;
        Ok(doc)
    }

    /// Writes the serials seen back, when any grew.
    pub fn save(&self) -> Result<(), ChannelError> {
        self.serials.save()
    }

    fn check_fresh(
        &mut self,
        url: &str,
        file: &str,
        freshness: &Freshness,
    ) -> Result<(), ChannelError> {
        let key = format!("{} {file}", self.client.server());
        trust::check_freshness(freshness, self.now, self.serials.highest(&key)).map_err(
            |source| ChannelError::Refused {
                url: url.to_owned(),
                source,
            },
        )?;
        self.serials.saw(key, freshness.serial);
        Ok(())
    }

    fn fetch_verified(&self, url: &str, max: usize) -> Result<Vec<u8>, ChannelError> {
        match self.fetch_once(url, max) {
            Err(ChannelError::Refused {
                source: TrustError::BadSignature { .. },
                ..
            }) => {
                log::debug!("`{url}` and its signature disagree; fetching both again");
                self.fetch_once(url, max)
            }
            result => result,
        }
    }

    fn fetch_once(&self, url: &str, max: usize) -> Result<Vec<u8>, ChannelError> {
        let get = |url: &str, max: u64| {
            self.client
                .get_bytes(url, max)
                .map_err(|source| fetch_error(url, source))
        };
        let message = get(url, u64::try_from(max).unwrap_or(u64::MAX))?;
        let signature_url = format!("{url}.sig");
        let signature = get(&signature_url, MAX_SIGNATURE_LEN)?;
        let refused = |source| ChannelError::Refused {
            url: url.to_owned(),
            source,
        };
        let fingerprint = trust::signing_key_of(&signature).map_err(refused)?;
        let delegation_url = self
            .client
            .url(&format!("{CHANNELS_URL_ROOT}/keys/{fingerprint}.ucert"));
        let delegation = match get(&delegation_url, MAX_UCERT_LEN) {
            Err(ChannelError::NotPublished { .. }) => {
                return Err(ChannelError::NoDelegation {
                    url: url.to_owned(),
                    fingerprint: fingerprint.to_string(),
                });
            }
            result => result?,
        };
        let revocations_url = self
            .client
            .url(&format!("{CHANNELS_URL_ROOT}/keys/revoked.ucert"));
        let revocations = self
            .client
            .get_optional(&revocations_url, MAX_UCERT_LEN)
            .map_err(|source| fetch_error(&revocations_url, source))?;
        trust::verify_metadata(
            &message,
            &signature,
            &delegation,
            revocations.as_deref(),
            &self.roots,
            self.now,
        )
        .map_err(refused)?;
        Ok(message)
    }
}

/// The root keys pinned under `root`'s `/etc/attendant/keys/`.
fn pinned_roots(root: &Path) -> Result<Vec<PublicKey>, ChannelError> {
    let dir = wire::under_root(root, wire::CHANNEL_KEYS_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(ChannelError::NoRootKey { dir });
        }
        Err(source) => return Err(ChannelError::Io { path: dir, source }),
    };
    let mut roots = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let bytes = match crate::atomic::read_small(&path, MAX_ROOT_KEY_LEN) {
            Ok(bytes) => bytes,
            Err(error) => {
                log::debug!("ignoring `{}`: {error}", path.display());
                continue;
            }
        };
        match PublicKey::parse(&bytes) {
            Ok(key) => roots.push(key),
            Err(error) => log::warn!(
                "ignoring `{}`: not a usign public key: {error}",
                path.display()
            ),
        }
    }
    if roots.is_empty() {
        return Err(ChannelError::NoRootKey { dir });
    }
    Ok(roots)
}

fn fetch_error(url: &str, source: ClientError) -> ChannelError {
    match source {
        ClientError::NotFound { .. } => ChannelError::NotPublished {
            url: url.to_owned(),
        },
        source => ChannelError::Fetch { source },
    }
}

fn format_error(url: &str, source: ChannelFormatError) -> ChannelError {
    ChannelError::Format {
        url: url.to_owned(),
        source,
    }
}

/// `/etc/attendant/serial.json`: `{"<server> <file>": <highest serial>}`.
#[derive(Debug)]
struct SerialFile {
    path: PathBuf,
    serials: BTreeMap<String, u64>,
    changed: bool,
}

impl SerialFile {
    fn load(path: PathBuf) -> Result<Self, ChannelError> {
        let serials = match crate::atomic::read_small(&path, MAX_SERIAL_FILE_LEN) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|error| ChannelError::StateFile {
                    path: path.clone(),
                    message: error.to_string(),
                })?
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(ChannelError::Io { path, source }),
        };
        Ok(Self {
            path,
            serials,
            changed: false,
        })
    }

    fn highest(&self, key: &str) -> u64 {
        self.serials.get(key).copied().unwrap_or(0)
    }

    fn saw(&mut self, key: String, serial: u64) {
        if self.highest(&key) >= serial {
            return;
        }
        if self.serials.len() >= MAX_SERIAL_ENTRIES && !self.serials.contains_key(&key) {
            // Forget the entry with the lowest serial: the file that has not been seen longest.
            if let Some(oldest) = self
                .serials
                .iter()
                .min_by_key(|(_, serial)| **serial)
                .map(|(key, _)| key.clone())
            {
                self.serials.remove(&oldest);
            }
        }
        self.serials.insert(key, serial);
        self.changed = true;
    }

    fn save(&self) -> Result<(), ChannelError> {
        if !self.changed {
            return Ok(());
        }
        let write = |source| ChannelError::Write {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(write)?;
        }
        let mut bytes = serde_json::to_vec(&self.serials).unwrap_or_default();
        bytes.push(b'\n');
        write_atomic(&self.path, &bytes).map_err(write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serial_file_keeps_the_highest_serial_and_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/attendant/serial.json");
        let mut file = SerialFile::load(path.clone()).unwrap();
        assert_eq!(file.highest("s channels.json"), 0);
        file.saw("s channels.json".into(), 7);
        file.saw("s channels.json".into(), 5);
        file.save().unwrap();
        let file = SerialFile::load(path).unwrap();
        assert_eq!(file.highest("s channels.json"), 7);
    }

    #[test]
    fn a_damaged_serial_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serial.json");
        std::fs::write(&path, b"{not json").unwrap();
        let error = SerialFile::load(path.clone()).unwrap_err();
        assert!(
            error.to_string().contains(&path.display().to_string()),
            "{error}"
        );
    }

    #[test]
    fn a_full_serial_file_forgets_the_lowest_serial() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = SerialFile::load(dir.path().join("serial.json")).unwrap();
        for n in 0..MAX_SERIAL_ENTRIES as u64 {
            file.saw(format!("s {n}"), n + 1);
        }
        file.saw("s new".into(), 5000);
        assert_eq!(file.serials.len(), MAX_SERIAL_ENTRIES);
        assert_eq!(file.highest("s 0"), 0);
        assert_eq!(file.highest("s new"), 5000);
    }

    #[test]
    fn no_pinned_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            pinned_roots(dir.path()),
            Err(ChannelError::NoRootKey { .. })
        ));
    }
}
