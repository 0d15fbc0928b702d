//! Formats shared by every part of Attendant.
//!
//! `attendant-proto` turns bytes into values and values into bytes, and nothing else: it does no
//! filesystem, network, clock or process I/O, so the agent on the router, the rpcd bridge and the
//! server all parse the same way, and every parser can be fuzzed.
//!
//! | module | what it reads or writes |
//! | --- | --- |
//! | [`usign`] | usign/signify public keys, secret keys and signatures; Ed25519 signing and verification |
//! | [`fwtool`] | the fwtool metadata/signature trailer at the end of a sysupgrade image, and sysupgrade's compatibility decision |
//! | [`opkg`], [`apk`], [`installed`] | the router's package databases and the user-installed (top-level) set |
//! | [`version`] | OpenWrt release ordering and opkg/apk package version comparison |
//! | [`api`] | the Attended SysUpgrade (ASU) HTTP API v1: build request, response, overview |
//! | [`upstream`], [`index`] | downloads.openwrt.org metadata: `.versions.json`, `.targets.json`, `profiles.json`, package indexes |
//! | [`uci`] | UCI configuration files (`/etc/config/*`), read and written without the `uci` tool |
//! | [`board`] | device facts: `ubus call system board`, os-release, `/tmp/sysinfo`, `board.json` |
//! | [`channel`] | release channels: `channels.json`, per-device `index.json`, the embedded `channel.json`, and the router's trust checks |
//! | [`ucert`] | OpenWrt ucert chains (libubox blobs): key delegation, revocation, the signature trailer of ASU images |
//! | [`timestamp`] | Unix seconds and the UTC date text of channel metadata (`Sun Dec 06 11:45:00 UTC 2026`) |
//! | [`wire`] | router-side names: file paths, UCI names, environment variables, and [`wire::under_root`] |
//! | [`excerpt`] | short, printable excerpts of untrusted text for error messages |
//!
//! Two private modules serve the parsers: `json` (size-limited JSON decoding with typed errors)
//! and `stanza` (the line reader under opkg's and apk's databases and the `Packages` index).
//!
//! Every parser returns its module's typed error and never panics, whatever the input. Every
//! input has a documented size limit.
//!
//! What this crate deliberately does not do: read files, talk HTTP, look at the clock or spawn
//! processes. The callers (`attendant`, `attendant-ubus`, `attendant-server`) do that and hand
//! the bytes in.

#![warn(missing_docs, clippy::print_stdout, clippy::print_stderr)]

pub mod api;
pub mod apk;
pub mod board;
pub mod channel;
pub mod excerpt;
pub mod fwtool;
pub mod index;
pub mod installed;
pub mod opkg;
pub mod timestamp;
pub mod ucert;
pub mod uci;
pub mod upstream;
pub mod usign;
pub mod version;
pub mod wire;

mod json;
mod stanza;
