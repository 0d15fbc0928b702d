//! A release channel server's published tree, for the agent's and the rpcd plugin's tests:
//! a root key, a ucert delegation of the signing key, the signed `channels.json` and the
//! device's `index.json`, and pool images signed with the key the router trusts for images.
//!
//! The tree is a map of URL paths to bytes ([`Files`]); each test's own fake HTTP server
//! answers from it, beside whatever else that server fakes (a build API, `/api/v1/report`).
//! The layout follows what the router reads (`docs/channels-router.md`):
//! `/channels/channels.json`, `/channels/keys/<fingerprint>.ucert`,
//! `/channels/keys/revoked.ucert`, `/channels/<channel>/<device>/index.<serial>.json`, each
//! signed document beside its `.sig`, and images under `/channels/pool/`.
//!
//! ```no_run
//! use attendant_e2e::channel_tree::{ChannelTree, entry, image};
//!
//! let tree = ChannelTree::new();
//! let index = tree.index("stable", vec![image(6, "24.10.5", 7)], 1);
//! tree.publish(&[("stable", entry(&index))], 1);
//! // A fake server answers `GET path` with `tree.files().get(path)`.
//! ```

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fixture: a failure should stop the test at once"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use attendant_proto::channel::{
    ChannelEntry, ChannelStamp, ChannelsDoc, DeviceEntry, Freshness, ImageType, IndexDoc,
    IndexFile, IndexGlobal, IndexImage, VersionDetail, encode_channels, encode_index, encode_stamp,
};
use attendant_proto::usign::{Fingerprint, SecretKey};
use attendant_proto::{ucert, wire};
use sha2::{Digest, Sha256};

/// The device of the tree's indexes: a TP-Link Archer C7 v5 (`ath79/generic`).
pub const DEVICE: &str = "ath79/generic/tplink_archer-c7-v5";

/// The machine-id [`ChannelTree::trust`] gives a router; it seeds the router's phases.
pub const MACHINE_ID: &str = "0123456789abcdef0123456789abcdef";

/// A day in seconds.
pub const DAY: i64 = 86_400;

/// The published files by URL path, shared with the server that answers from them.
#[derive(Debug, Clone, Default)]
pub struct Files(Arc<Mutex<BTreeMap<String, Vec<u8>>>>);

impl Files {
    /// The file at URL path `path`, if published.
    pub fn get(&self, path: &str) -> Option<Vec<u8>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
            .cloned()
    }

    fn put(&self, path: &str, bytes: Vec<u8>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path.to_owned(), bytes);
    }
}

/// A channel server's tree: its files and the keys that sign them.
#[derive(Debug)]
pub struct ChannelTree {
    files: Files,
    root: SecretKey,
    signing: SecretKey,
}

impl Default for ChannelTree {
    fn default() -> Self {
        Self::new()
    }
}

impl ChannelTree {
    /// A tree with the root's delegation of the signing key (valid from a day ago for 30 days)
    /// and nothing else.
    pub fn new() -> Self {
        let tree = Self {
            files: Files::default(),
            root: key(1),
            signing: key(2),
        };
        tree.delegate(&tree.signing, now() - DAY, now() + 30 * DAY);
        tree
    }

    /// The files, for the server that publishes them.
    pub fn files(&self) -> Files {
        self.files.clone()
    }

    /// The key the metadata is signed with (delegated by the root).
    pub fn signing_key(&self) -> &SecretKey {
        &self.signing
    }

    /// Publishes `bytes` at `path` as they are.
    pub fn put(&self, path: &str, bytes: Vec<u8>) {
        self.files.put(path, bytes);
    }

    /// The file at `path`; panics when nothing is published there.
    pub fn get(&self, path: &str) -> Vec<u8> {
        self.files
            .get(path)
            .unwrap_or_else(|| panic!("nothing published at `{path}`"))
    }

    /// Publishes the root's delegation of `signing`, valid from `from` until `until`.
    pub fn delegate(&self, signing: &SecretKey, from: i64, until: i64) {
        let element = ucert::issue_auth(&self.root, &signing.public_key(), from, until).unwrap();
        self.put(
            &format!(
                "/channels/keys/{}.ucert",
                signing.public_key().fingerprint()
            ),
            element.to_bytes(),
        );
    }

    /// Publishes the root's revocation of the key `fingerprint`.
    pub fn revoke(&self, fingerprint: Fingerprint) {
        let element = ucert::issue_revoke(&self.root, fingerprint, now() - DAY);
        self.put("/channels/keys/revoked.ucert", element.to_bytes());
    }

    /// Publishes `bytes` at `path` with its `.sig` by `signer`.
    pub fn signed(&self, path: &str, bytes: Vec<u8>, signer: &SecretKey) {
        self.put(
            &format!("{path}.sig"),
            signer.sign(&bytes).to_file().into_bytes(),
        );
        self.put(path, bytes);
    }

    /// Publishes `channels.json` with these channels, fresh, signed by the signing key.
    pub fn publish(&self, channels: &[(&str, ChannelEntry)], serial: u64) {
        self.publish_with(channels, freshness(serial), &self.signing);
    }

    /// Publishes `channels.json` with `global` as its freshness, signed by `signer`.
    pub fn publish_with(
        &self,
        channels: &[(&str, ChannelEntry)],
        global: Freshness,
        signer: &SecretKey,
    ) {
        let doc = ChannelsDoc {
            global,
            channels: channels
                .iter()
                .map(|(name, entry)| ((*name).to_owned(), entry.clone()))
                .collect(),
        };
        self.signed("/channels/channels.json", encode_channels(&doc), signer);
    }

    /// Publishes the [`DEVICE`]'s index of `channel`; returns its URL path.
    pub fn index(&self, channel: &str, images: Vec<IndexImage>, serial: u64) -> String {
        let path = format!("/channels/{channel}/{DEVICE}/index.{serial}.json");
        let doc = IndexDoc {
            global: IndexGlobal {
                freshness: freshness(serial),
                channel: channel.to_owned(),
                device: DEVICE.to_owned(),
            },
            images,
        };
        self.signed(&path, encode_index(&doc), &self.signing);
        path
    }

    /// Build `build` (OpenWrt `openwrt`) with `firmware` as its image in the pool, signed by
    /// `image_key` (the key the router trusts for images).
    pub fn publish_image(
        &self,
        build: u64,
        openwrt: &str,
        firmware: &[u8],
        image_key: &SecretKey,
    ) -> IndexImage {
        let mut image = image(build, openwrt, 0);
        let checksum = hex::encode(Sha256::digest(firmware));
        let file = image.files.first_mut().expect("image() makes one file");
        file.path = format!("/channels/pool/00/{checksum}-{}", file.name);
        file.signature = format!("{}.sig", file.path);
        file.size = u64::try_from(firmware.len()).unwrap();
        file.checksum = checksum;
        self.put(&file.path, firmware.to_vec());
        self.put(
            &file.signature,
            image_key.sign(firmware).to_file().into_bytes(),
        );
        image
    }

    /// Makes the router under `root` trust this tree: the root key pinned in
    /// `/etc/attendant/keys/`, and [`MACHINE_ID`] as its `/etc/machine-id`.
    pub fn trust(&self, root: &Path) {
        let key = self.root.public_key();
        write(
            &wire::under_root(root, wire::CHANNEL_KEYS_DIR).join(key.fingerprint().to_string()),
            key.to_file().as_bytes(),
        );
        write(
            &wire::under_root(root, wire::SYSTEM_MACHINE_ID_PATH),
            format!("{MACHINE_ID}\n").as_bytes(),
        );
    }
}

/// Now, in unix seconds.
pub fn now() -> i64 {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    i64::try_from(seconds).unwrap()
}

/// A usign key made from `seed` alone, so every run signs alike.
pub fn key(seed: u8) -> SecretKey {
    SecretKey::generate([seed; 32], Fingerprint([seed; 8]), [seed; 16], None).unwrap()
}

/// Metadata generated a minute ago that expires in a week.
pub fn freshness(serial: u64) -> Freshness {
    Freshness {
        generated_at: now() - 60,
        expires: now() + 7 * DAY,
        serial,
    }
}

/// A channel with the [`DEVICE`] at `index`.
pub fn entry(index: &str) -> ChannelEntry {
    let mut entry = ChannelEntry::default();
    entry.devices.insert(
        DEVICE.to_owned(),
        DeviceEntry {
            index: index.to_owned(),
            redirect: None,
        },
    );
    entry
}

/// Build `version` (OpenWrt `openwrt`) of the [`DEVICE`] with one sysupgrade image of `mib`
/// MiB that is not in the pool (paths and scores only; [`ChannelTree::publish_image`] for one
/// that is).
pub fn image(version: u64, openwrt: &str, mib: u64) -> IndexImage {
    let checksum = format!("{version:064x}");
    let name =
        format!("openwrt-{openwrt}-ath79-generic-tplink_archer-c7-v5-squashfs-sysupgrade.bin");
    IndexImage {
        kind: ImageType::Full,
        version,
        description: format!("build {version}"),
        version_detail: VersionDetail::parse(&format!("openwrt={openwrt}")).unwrap(),
        minversion: None,
        phased_percentage: None,
        openwrt_version: openwrt.to_owned(),
        version_code: "r28959-29397011cc".to_owned(),
        target: "ath79/generic".to_owned(),
        profile: "tplink_archer-c7-v5".to_owned(),
        recipe: None,
        files: vec![IndexFile {
            order: 0,
            path: format!("/channels/pool/00/{checksum}-{name}"),
            signature: format!("/channels/pool/00/{checksum}-{name}.sig"),
            checksum,
            size: mib << 20,
            name,
            image_type: "sysupgrade".to_owned(),
            filesystem: "squashfs".to_owned(),
        }],
    }
}

/// Makes the router under `root` run `build` of `channel` (with the alias target `target`):
/// the `/etc/attendant/channel.json` its image carries.
pub fn stamp(root: &Path, channel: &str, target: Option<&str>, build: u64) {
    let stamp = ChannelStamp {
        channel: channel.to_owned(),
        channel_target: target.map(str::to_owned),
        device: DEVICE.to_owned(),
        build,
        version_detail: VersionDetail::parse("openwrt=24.10.4").unwrap(),
        server: "http://127.0.0.1".to_owned(),
    };
    write(
        &wire::under_root(root, wire::CHANNEL_STAMP_PATH),
        &encode_stamp(&stamp),
    );
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}
