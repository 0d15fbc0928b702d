//! The router side of Attendant: device facts, the server client, the upgrade engine and the CLI.
//!
//! The binary `attendant` is a thin wrapper over [`cli::parse`] and [`cli::run`]; the rpcd bridge
//! (`attendant-ubus`) drives the same [`Engine`] as a library, getting progress as
//! [`Event`]s instead of terminal output.
//!
//! | module | what it does |
//! | --- | --- |
//! | [`facts`] | device facts from the router's files (`ubus` as fallback) |
//! | [`config`] | settings from `/etc/config/attendedsysupgrade` |
//! | [`options`] | the one merge of flags or call arguments over the settings: [`PlanOptions`] |
//! | [`client`] | the HTTP client: TLS, proxies, retries, typed server errors |
//! | [`plan`] | version choice, package changes, version table, image choice |
//! | [`channel`] | release channels: verified metadata, where the router stands, upgrade paths, phases |
//! | [`check`] | the pre-build checks (the downgrade decision among them) and the build request |
//! | [`engine`] | the [`Engine`]: every step, and [`Engine::fetch`], the upgrade pipeline |
//! | [`build`] | build request and status polling |
//! | [`download`] | resumable streaming download with SHA-256 |
//! | [`verify`] | SHA-256, usign signature, fwtool trailer, compatibility, manifest |
//! | [`prebuilt`] | a channel build's published image: download and verification |
//! | [`report`] | outcome reports of channel upgrades: recorded before flashing, sent at boot |
//! | [`install`] | pre-install hook, `sysupgrade --test`, sysupgrade |
//! | [`state`] | the resumable state file |
//! | [`atomic`] | the one atomic file writer of the router side, and the bounded reader of small files |
//! | [`error`] | every failure, its exit status and its hint |
//! | [`hint`] | findings and hints: a way out coded for LuCI, worded for the shell |
//! | [`exit`], [`output`], [`cli`] | exit codes, printing, the command line |
//!
//! The modules import one way, so none needs another that needs it back: `cli` → `engine` →
//! `check` → `plan` → `hint`; `error` gathers the error types of the step modules (`client`,
//! `build`, `download`, `verify`, ...) and is used by `options`, `check` and `engine` above them.

pub mod atomic;
pub mod build;
pub mod channel;
pub mod check;
pub mod cli;
pub mod client;
pub mod config;
pub mod download;
pub mod engine;
pub mod error;
pub mod exit;
pub mod facts;
pub mod hint;
pub mod install;
pub mod options;
pub mod output;
pub mod plan;
pub mod prebuilt;
pub mod report;
pub mod state;
pub mod verify;

pub use check::{Check, Verdict};
pub use cli::{Args, parse, run};
pub use engine::{Engine, Event, FlashOptions, Step};
pub use error::Error;
pub use exit::ExitStatus;
pub use options::{PlanArgs, PlanOptions, RevCode};
