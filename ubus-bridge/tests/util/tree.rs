//! A channel server's published tree on loopback: root key → ucert delegation → signing key →
//! `channels.json` and the device's `index.json`, each with its `.sig`, the pool images signed
//! with the key the router trusts for images, and `/api/v1/report`.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

use attendant_e2e::http_request::{self, Request};
use attendant_proto::channel::{
    ChannelEntry, ChannelStamp, ChannelsDoc, DeviceEntry, Freshness, ImageType, IndexDoc,
    IndexFile, IndexGlobal, IndexImage, VersionDetail, encode_channels, encode_index, encode_stamp,
};
use attendant_proto::ucert;
use attendant_proto::usign::{Fingerprint, SecretKey};
use serde_json::json;

use super::{Router, respond, sha256, signing_key};

/// The router's device name in the tree.
pub(crate) const DEVICE: &str = "ath79/generic/tplink_archer-c7-v5";

/// The router's machine-id, which seeds its phases.
pub(crate) const MACHINE_ID: &str = "0123456789abcdef0123456789abcdef";

const DAY: i64 = 86_400;

/// The published files by URL path, and the server.
pub(crate) struct Tree {
    pub(crate) url: String,
    files: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    root: SecretKey,
    signing: SecretKey,
}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn key(seed: u8) -> SecretKey {
    SecretKey::generate([seed; 32], Fingerprint([seed; 8]), [seed; 16], None).unwrap()
}

impl Tree {
    /// Serves an empty tree with a delegation of the signing key.
    pub(crate) fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let files: Arc<Mutex<BTreeMap<String, Vec<u8>>>> = Arc::default();
        let served = files.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let served = served.clone();
                thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let Ok(Some(Request { method, path, .. })) = http_request::read(&mut reader)
                    else {
                        return;
                    };
                    let (status, body) = match (method.as_str(), path.as_str()) {
                        ("GET", "/api/v1/report") => (200, json!({"salt": "s"}).to_string().into()),
                        ("POST", "/api/v1/report") => {
                            (202, json!({"status": "accepted"}).to_string().into())
                        }
                        _ => match served.lock().unwrap().get(&path) {
                            Some(bytes) => (200, bytes.clone()),
                            None => (404, json!({"detail": "not found"}).to_string().into()),
                        },
                    };
                    respond(&mut stream, status, &[], &body, method == "HEAD", None);
                });
            }
        });
        let tree = Self {
            url,
            files,
            root: key(1),
            signing: key(2),
        };
        let element = ucert::issue_auth(
            &tree.root,
            &tree.signing.public_key(),
            now() - DAY,
            now() + 30 * DAY,
        )
        .unwrap();
        tree.put(
            &format!(
                "/channels/keys/{}.ucert",
                tree.signing.public_key().fingerprint()
            ),
            element.to_bytes(),
        );
        tree
    }

    pub(crate) fn put(&self, path: &str, bytes: Vec<u8>) {
        self.files.lock().unwrap().insert(path.to_owned(), bytes);
    }

    pub(crate) fn get(&self, path: &str) -> Vec<u8> {
        self.files.lock().unwrap()[path].clone()
    }

    fn signed(&self, path: &str, bytes: Vec<u8>) {
        self.put(
            &format!("{path}.sig"),
            self.signing.sign(&bytes).to_file().into_bytes(),
        );
        self.put(path, bytes);
    }

    /// Publishes `channels.json` with these channels.
    pub(crate) fn publish(&self, channels: &[(&str, ChannelEntry)], serial: u64) {
        let doc = ChannelsDoc {
            global: freshness(serial),
            channels: channels
                .iter()
                .map(|(name, entry)| ((*name).to_owned(), entry.clone()))
                .collect(),
        };
        self.signed("/channels/channels.json", encode_channels(&doc));
    }

    /// Publishes the router's index of `channel`; returns its URL path.
    pub(crate) fn index(&self, channel: &str, images: Vec<IndexImage>, serial: u64) -> String {
        let path = format!("/channels/{channel}/{DEVICE}/index.{serial}.json");
        let doc = IndexDoc {
            global: IndexGlobal {
                freshness: freshness(serial),
                channel: channel.to_owned(),
                device: DEVICE.to_owned(),
            },
            images,
        };
        self.signed(&path, encode_index(&doc));
        path
    }

    /// Build `build` (OpenWrt `openwrt`) with `firmware` published in the pool, signed with the
    /// image key the router trusts.
    pub(crate) fn image(&self, build: u64, openwrt: &str, firmware: &[u8]) -> IndexImage {
        let name =
            format!("openwrt-{openwrt}-ath79-generic-tplink_archer-c7-v5-squashfs-sysupgrade.bin");
        let checksum = sha256(firmware);
        let path = format!("/channels/pool/{build}/{checksum}-{name}");
        self.put(&path, firmware.to_vec());
        self.put(
            &format!("{path}.sig"),
            signing_key().sign(firmware).to_file().into_bytes(),
        );
        IndexImage {
            kind: ImageType::Full,
            version: build,
            description: format!("build {build}"),
            version_detail: VersionDetail::parse(&format!("openwrt={openwrt}")).unwrap(),
            minversion: None,
            phased_percentage: None,
            openwrt_version: openwrt.to_owned(),
            version_code: format!("r{build}-0123456789"),
            target: "ath79/generic".to_owned(),
            profile: "tplink_archer-c7-v5".to_owned(),
            recipe: None,
            files: vec![IndexFile {
                order: 0,
                signature: format!("{path}.sig"),
                path,
                checksum,
                size: u64::try_from(firmware.len()).unwrap(),
                name,
                image_type: "sysupgrade".to_owned(),
                filesystem: "squashfs".to_owned(),
            }],
        }
    }

    /// A router of this server that trusts its root key, with a fixed machine-id.
    pub(crate) fn router(&self) -> Router {
        let router = Router::new(&self.url);
        let root = self.root.public_key();
        router.write(
            &format!("etc/attendant/keys/{}", root.fingerprint()),
            root.to_file().as_bytes(),
        );
        router.write("etc/machine-id", format!("{MACHINE_ID}\n").as_bytes());
        router
    }
}

fn freshness(serial: u64) -> Freshness {
    Freshness {
        generated_at: now() - 60,
        expires: now() + 7 * DAY,
        serial,
    }
}

/// A channel with the router's device at `index`.
pub(crate) fn entry(index: &str) -> ChannelEntry {
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

/// The router runs `build` of `channel` (its image's `channel.json`).
pub(crate) fn stamp(router: &Router, channel: &str, build: u64) {
    let stamp = ChannelStamp {
        channel: channel.to_owned(),
        channel_target: None,
        device: DEVICE.to_owned(),
        build,
        version_detail: VersionDetail::parse("openwrt=24.10.4").unwrap(),
        server: "http://127.0.0.1".to_owned(),
    };
    router.write("etc/attendant/channel.json", &encode_stamp(&stamp));
}
