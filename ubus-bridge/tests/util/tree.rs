//! A channel server's published tree ([`attendant_e2e::channel_tree`], shared with the agent's
//! tests) served on loopback with `/api/v1/report` and nothing else: a server that publishes
//! channel files only, without a build API.

use std::io::BufReader;
use std::net::TcpListener;
use std::ops::Deref;
use std::thread;

use attendant_e2e::channel_tree::ChannelTree;
pub(crate) use attendant_e2e::channel_tree::{MACHINE_ID, entry};
use attendant_e2e::http_request::{self, Request};
use attendant_proto::channel::IndexImage;
use serde_json::json;

use super::{Router, respond, signing_key};

/// The published files and the server.
pub(crate) struct Tree {
    pub(crate) url: String,
    channel: ChannelTree,
}

impl Deref for Tree {
    type Target = ChannelTree;

    fn deref(&self) -> &ChannelTree {
        &self.channel
    }
}

impl Tree {
    /// Serves an empty tree with a delegation of the signing key.
    pub(crate) fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let channel = ChannelTree::new();
        let files = channel.files();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let served = files.clone();
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
                        _ => match served.get(&path) {
                            Some(bytes) => (200, bytes),
                            None => (404, json!({"detail": "not found"}).to_string().into()),
                        },
                    };
                    respond(&mut stream, status, &[], &body, method == "HEAD", None);
                });
            }
        });
        Self { url, channel }
    }

    /// Build `build` (OpenWrt `openwrt`) with `firmware` published in the pool, signed with the
    /// image key the router trusts.
    pub(crate) fn image(&self, build: u64, openwrt: &str, firmware: &[u8]) -> IndexImage {
        self.publish_image(build, openwrt, firmware, &signing_key())
    }

    /// A router of this server that trusts its root key, with a fixed machine-id.
    pub(crate) fn router(&self) -> Router {
        let router = Router::new(&self.url);
        self.trust(router.path());
        router
    }
}

/// The router runs `build` of `channel` (its image's `channel.json`).
pub(crate) fn stamp(router: &Router, channel: &str, build: u64) {
    attendant_e2e::channel_tree::stamp(router.path(), channel, None, build);
}
