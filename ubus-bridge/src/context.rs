//! What every call and job works in: the router root and the way to start a detached job.
//!
//! A module of its own so that the methods, the job store and the workers can take a
//! [`Context`] without importing the command line that makes one.

use std::ffi::OsString;
use std::path::PathBuf;

/// How this program re-executes itself for a detached job: the program, the `argv[0]` it is
/// given, and the arguments that select the bridge.
///
/// `attendant-ubus` re-executes itself as it is. The multi-call binary ([`crate::multicall`])
/// picks the plugin by `argv[0]`, so it re-executes its own file with the `argv[0]` rpcd gave
/// it (`/usr/libexec/rpcd/attendant`), and the job process is the plugin again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launcher {
    /// The executable.
    pub program: PathBuf,
    /// The `argv[0]` to give it; `None` means `program` itself.
    pub arg0: Option<OsString>,
    /// Arguments put before the bridge's own.
    pub args: Vec<OsString>,
}

impl Launcher {
    /// This executable (`/proc/self/exe`), with no extra arguments.
    pub fn current() -> Self {
        Self {
            program: current_exe(),
            arg0: None,
            args: Vec::new(),
        }
    }

    /// This executable, started with `arg0` as its `argv[0]` (the multi-call binary).
    pub fn with_arg0(arg0: impl Into<OsString>) -> Self {
        Self {
            program: current_exe(),
            arg0: Some(arg0.into()),
            args: Vec::new(),
        }
    }
}

/// What the bridge needs for a call: the router root and how to start jobs.
#[derive(Debug, Clone)]
pub struct Context {
    /// The router's files are under this directory (`/` on a router).
    pub root: PathBuf,
    /// How to start a detached job.
    pub launcher: Launcher,
}

/// The running executable; the plugin's path if the kernel cannot say (it always can on Linux).
fn current_exe() -> PathBuf {
    std::env::current_exe()
        .unwrap_or_else(|_| PathBuf::from(attendant_proto::wire::RPCD_PLUGIN_PATH))
}
