//! The rpcd exec plugin that exposes the Attendant agent as the ubus object `attendant`.
//!
//! rpcd runs every executable in `/usr/libexec/rpcd/` as `<plugin> list` to learn its methods,
//! and `<plugin> call <method>` with the arguments as JSON on stdin for each call; the reply is
//! the one JSON object the plugin prints (<https://openwrt.org/docs/techref/rpcd>). A call is
//! killed after 30 s, so the long steps run as one detached background job that callers poll:
//!
//! | method | does | access |
//! | --- | --- | --- |
//! | `info` | board, installed version, configured server, agent version, release channel and phase | read |
//! | `channels` | the release channels that have this router, with their newest builds | read |
//! | `packages` | `{"packages": {...}}` like `rpc-sys packagelist` | read |
//! | `check` | the pre-build checks: versions, package table, warnings, problems; with a release channel its offer ([`channel`]); `max_age` reuses a recent result, a failure too ([`check_cache`]) | read |
//! | `status` | the job: state, queue, build stage, download, verification, error | read |
//! | `config_get` | the settings in `/etc/config/attendedsysupgrade` | read |
//! | `start` | a job that builds (or, on a channel, takes the published image), downloads and verifies; one at a time | write |
//! | `cancel` | stops the job's processes | write |
//! | `install` | answers, then flashes the ready image (like `rpc-sys upgrade_start`) | write |
//! | `config_set` | changes the settings, the channel followed too (an atomic rewrite of the UCI file) | write |
//!
//! The contract (signatures, arguments, example replies, error codes) is `contract.json` beside
//! this crate; the tests hold the plugin to it. The work itself is the agent's [`attendant::Engine`];
//! this crate only translates: arguments into plan options ([`protocol`], [`check`]), engine
//! errors into replies ([`error::reply`], the one mapping), the agent's command-line hints into
//! words without flags ([`hint`]), progress into the job file ([`jobs`], [`worker`]).
//!
//! [`run`] is the whole program. It ships inside the agent's binary: the `attendant-multicall`
//! binary is installed as `/usr/bin/attendant` and runs the plugin when started as
//! `/usr/libexec/rpcd/attendant` (a symlink; [`multicall`] says why `argv[0]`'s directory
//! decides). The `attendant-ubus` binary is the plugin alone, for development and tests; see the
//! README for the sizes.
//!
//! ```no_run
//! use attendant_ubus::{Launcher, run};
//! let args = vec!["list".to_owned()];
//! let _ = run(&args, &Launcher::current());
//! ```
//!
//! It does not talk to ubus itself (rpcd does), and never runs a shell.
//!
//! | module | what it does |
//! | --- | --- |
//! | [`cli`] | the plugin's command line: `list`, `call` with its deadline, the job commands |
//! | [`context`] | the router root and the way to start a detached job, for every module |
//! | [`protocol`] | the request on stdin and its typed arguments |
//! | [`methods`] | the signatures `list` prints and the dispatch of `call` |
//! | [`device`] | `info` and `packages` |
//! | [`check`] | `check`, and call arguments into the agent's plan options |
//! | [`channel`] | the `channel` and `percentage` arguments, a channel's offer as `check` words it, the phase `info` shows |
//! | [`config`] | `config_get` and `config_set` |
//! | [`upgrade`] | `start`, `status`, `cancel`, `install` as seen from a call |
//! | [`jobs`] | the job file, its lock, its process |
//! | [`worker`] | the detached job: the agent's pipeline, its events turned into job states |
//! | [`error`] | every failure and the one mapping to a ubus reply |
//! | [`hint`] | the agent's hints worded without flags |
//! | [`logger`] | the job process's log on stderr |
//! | [`multicall`] | one binary for the agent and the plugin, chosen by `argv[0]` |
//!
//! Imports go one way: `cli` → `methods` → the method modules → `channel` → `jobs`, `protocol` → `error` →
//! `hint`, and everything takes [`Context`] from `context`, which imports nothing.

#![warn(clippy::print_stdout)]

pub mod channel;
pub mod check;
pub mod check_cache;
pub mod cli;
pub mod config;
pub mod context;
pub mod device;
pub mod error;
pub mod hint;
pub mod jobs;
pub mod logger;
pub mod methods;
pub mod multicall;
pub mod protocol;
pub mod upgrade;
pub mod worker;

pub use cli::run;
pub use context::{Context, Launcher};
pub use error::{BridgeError, ErrorCode};
