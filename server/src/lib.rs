//! The Attendant image-on-demand server, wire-compatible with OpenWrt's Attended SysUpgrade API
//! (ASU, <https://github.com/openwrt/asu>): owut, auc, luci-app-attendedsysupgrade and the
//! firmware selector work against it unchanged.
//!
//! A request travels `http` → [`build`] (validate, hash, de-duplicate, enqueue) → [`store`]
//! (the `jobs` table: queue and result cache) → [`worker`] (claim, ImageBuilder, sign, publish)
//! → [`artifacts`] (served at `/store/`); [`view`] renders a job as the client sees it.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`cli`] | the `attendant-server` command line, one file per subcommand |
//! | [`config`] | the settings (TOML file, `ATTENDANT_*` variables, ASU's names and defaults) |
//! | [`service`] | start-up glue: store, metadata, ImageBuilder cache and keys, then serve |
//! | [`state`] | [`state::AppState`], what every handler gets |
//! | [`http`] | the routes, one module per endpoint group, and the one error → response table |
//! | [`build`] | `POST /api/v1/build` and the status poll, without HTTP: checks, request hash, submit |
//! | [`view`] | a job as a `200`/`202`/`500` response, and the cache of finished responses |
//! | [`document`] | a response body encoded once: entity tag, `Last-Modified`, gzip and Brotli |
//! | [`known_hashes`] | which request hashes the store holds, so unknown ones cost no query |
//! | [`request_memo`] | build request bodies already validated and hashed, so a repeated one skips both |
//! | [`store`] | the job queue and result cache behind [`store::Store`]: SQLite and PostgreSQL |
//! | [`worker`] | build workers: claim, lease heartbeat, the ImageBuilder steps, retry or fail |
//! | [`imagebuilder`] | ImageBuilders downloaded, verified, unpacked and cached (LRU eviction) |
//! | [`process`] | child processes (`make`) without a shell, with timeout and bounded output |
//! | [`signing`] | usign keys and image signatures |
//! | [`artifacts`] | the store of built images, one directory (or S3 key prefix) per request hash: local or S3-compatible |
//! | [`gc`] | garbage collection of expired results and unreferenced store entries |
//! | [`channels`] | release channels: the tree, its operations, store, builds, image pool |
//! | [`streams`] | the channel builds as simplestreams, managed with MAAS's verbs |
//! | [`stats`] | build statistics (ASU's endpoints) and download counts, kept in the store's database |
//! | [`metrics`] | this process's counters in Prometheus' text format (`/metrics`) |
//! | [`metadata`] | upstream metadata (`.versions.json`, `profiles.json`, indexes), cached |
//! | `atomic` | the one writer of files that must survive a crash whole |
//!
//! The wire types (requests, responses, the request hash, build stages) are
//! `attendant_proto::api`'s; this crate owns HTTP, the database and child processes. The
//! offline demo lives in the fixture crate (`attendant-e2e demo`), so this binary carries no
//! fixture code. `server/README.md` says where each behaviour lives.

#![warn(clippy::print_stdout)]

pub mod artifacts;
mod atomic;
pub mod build;
pub mod channels;
pub mod cli;
pub mod config;
pub mod document;
pub mod gc;
pub mod http;
pub mod imagebuilder;
pub mod known_hashes;
pub mod metadata;
pub mod metrics;
pub mod process;
pub mod request_memo;
pub mod service;
pub mod signing;
pub mod state;
pub mod stats;
pub mod store;
pub mod streams;
pub mod view;
pub mod worker;
