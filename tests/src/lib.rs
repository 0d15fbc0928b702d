//! End-to-end tests for Attendant, and the fixtures they run against: a faithful OpenWrt
//! downloads mirror and an ImageBuilder that behaves like the real one.
//!
//! The real ImageBuilder and downloads.openwrt.org cannot be reached from our machines, so
//! this crate makes stand-ins that behave like them, failures included:
//!
//! | module | what it does |
//! | --- | --- |
//! | [`catalog`] | the deterministic package universe: releases, targets, profiles, packages |
//! | [`channel_tree`] | a release channel server's signed tree (keys, `channels.json`, indexes, pool) |
//! | [`demo`] | `attendant-e2e demo`: the fixture mirror and a real `attendant-server`, one command |
//! | [`mirror`] | writes the downloads tree for a seed; [`mirror::shared_fixture`] caches it |
//! | [`imagebuilder`] | the ImageBuilder inside each archive: layout, resolution, images |
//! | [`mirror_server`] | serves a tree over HTTP on a loopback port, with fault injection |
//! | [`router`] | a fake router root (`--root`) with a release's packages, for the agent |
//! | [`reboot`] | sysupgrade and the reboot after it on such a root: the flashed image becomes the running firmware |
//! | [`http_request`] | reads one HTTP request, for the agent's and the plugin's fake servers |
//! | [`harness`] | unpacks an ImageBuilder and runs `make` in it for tests |
//! | [`process`] | runs the agent or the plugin on a fake router root, and reads what it printed |
//! | [`archive`], [`gzip`] | deterministic `.tar.xz`/`.tar.zst` archives and gzip streams |
//! | [`seed`] | values derived from the seed |
//! | [`sysupgrade`] | a recording `sysupgrade` stand-in for a fake router root |
//! | [`workspace`] | this workspace's binaries, built for and found by a running test |
//!
//! ```no_run
//! let mirror = attendant_e2e::mirror::shared_fixture(attendant_e2e::mirror::DEFAULT_SEED)?;
//! let server = attendant_e2e::mirror_server::MirrorServer::start(&mirror.root)?;
//! println!("upstream: {}", server.url());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What it deliberately does not do: fetch anything from the network, build real firmware, or
//! publish `.ipk`/`.apk` package files (see `README.md` for what is faithful and what is not).

#![warn(missing_docs)]

pub mod archive;
pub mod catalog;
pub mod channel_tree;
pub mod demo;
pub mod gzip;
pub mod harness;
pub mod http_request;
pub mod imagebuilder;
pub mod mirror;
pub mod mirror_server;
pub mod process;
pub mod process_dir;
pub mod reboot;
pub mod router;
pub mod seed;
pub mod sysupgrade;
pub mod workspace;

pub use mirror::{MirrorInfo, shared_fixture};
pub use mirror_server::MirrorServer;
