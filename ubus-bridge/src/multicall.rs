//! The router's one binary: the agent's command line as `attendant`, the rpcd plugin as
//! `/usr/libexec/rpcd/attendant`.
//!
//! The feed installs the `attendant-multicall` binary as `/usr/bin/attendant` and the symlink
//! `/usr/libexec/rpcd/attendant -> /usr/bin/attendant`; the plugin then costs about 45 KB of xz
//! instead of a second copy of the engine (README: "One binary or two").
//!
//! Which program runs is decided by [`personality`], from `argv[0]` alone: the plugin when the
//! directory part of `argv[0]` ends in a directory named `rpcd`, the agent otherwise. rpcd runs
//! every plugin by its full path, `/usr/libexec/rpcd/<name> list` and
//! `/usr/libexec/rpcd/<name> call <method>` (rpcd's `plugin.c`, <https://github.com/openwrt/rpcd/blob/master/plugin.c>,
//! passes the path it built from the directory as `argv[0]`, and finds plugins with `stat`, which
//! follows the symlink), so the rule sees the plugin directory on every rpcd invocation. Two
//! other rules were rejected:
//!
//! - the file name: both names are `attendant` (the ubus object is named after the file);
//! - `argv[1]` being `list` or `call`: the agent has a `list` subcommand (`attendant list`
//!   prints the installed packages), so `attendant list` would answer with method signatures.
//!
//! There is no `attendant rpcd ...` form either: the agent owns `attendant`'s arguments and its
//! `--help`, and a hidden subcommand would be one more thing that can shadow it. The plugin is
//! run by hand the way rpcd runs it: `/usr/libexec/rpcd/attendant call info < /dev/null`.
//! Detached jobs re-execute this file with the same `argv[0]` ([`Launcher::with_arg0`]), so
//! they are the plugin too.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::cli;
use crate::context::Launcher;

/// The name of the directory rpcd runs exec plugins from (`/usr/libexec/rpcd`).
pub const PLUGIN_DIRECTORY_NAME: &str = "rpcd";

/// The program a multi-call invocation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personality {
    /// The agent's command line (`attendant check`, `attendant list`, ...).
    Agent,
    /// The rpcd exec plugin (`<plugin> list`, `<plugin> call <method>`).
    Plugin,
}

/// Which program `argv[0]` asks for: [`Personality::Plugin`] when its parent directory is named
/// [`PLUGIN_DIRECTORY_NAME`], else [`Personality::Agent`].
pub fn personality(program: &OsStr) -> Personality {
    let parent = Path::new(program).parent().and_then(Path::file_name);
    if parent == Some(OsStr::new(PLUGIN_DIRECTORY_NAME)) {
        Personality::Plugin
    } else {
        Personality::Agent
    }
}

/// Runs the multi-call binary with its whole command line, `argv[0]` included.
pub fn run(args: Vec<OsString>) -> ExitCode {
    let program = args
        .first()
        .cloned()
        .unwrap_or_else(|| OsString::from("attendant"));
    let args = match utf8_arguments(args) {
        Ok(args) => args,
        Err(argument) => {
            let _ = writeln!(
                std::io::stderr(),
                "attendant: argument `{}` is not valid UTF-8",
                argument.to_string_lossy()
            );
            return ExitCode::from(2);
        }
    };
    match personality(&program) {
        Personality::Plugin => cli::run(
            args.get(1..).unwrap_or_default(),
            &Launcher::with_arg0(program),
        ),
        Personality::Agent => match attendant::parse(&args) {
            Ok(parsed) => attendant::run(parsed),
            Err(code) => code,
        },
    }
}

/// The arguments as strings, or the first one that is not UTF-8.
fn utf8_arguments(args: Vec<OsString>) -> Result<Vec<String>, OsString> {
    args.into_iter().map(OsString::into_string).collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStringExt;

    use super::*;

    #[test]
    fn the_rpcd_plugin_path_is_the_plugin() {
        for program in [
            "/usr/libexec/rpcd/attendant",
            "/tmp/root/usr/libexec/rpcd/attendant",
            "rpcd/attendant",
            "/usr/libexec/rpcd/other-name",
        ] {
            assert_eq!(
                personality(OsStr::new(program)),
                Personality::Plugin,
                "{program}"
            );
        }
    }

    #[test]
    fn every_other_path_is_the_agent() {
        for program in [
            "attendant",
            "/usr/bin/attendant",
            "./attendant",
            "/usr/libexec/rpcd",
            "/usr/libexec/rpcd/",
            "/usr/libexec/rpcd-old/attendant",
            "/usr/libexec/rpcd/sub/attendant",
            "",
        ] {
            assert_eq!(
                personality(OsStr::new(program)),
                Personality::Agent,
                "{program}"
            );
        }
    }

    #[test]
    fn a_non_utf8_argument_is_named() {
        let args = vec![
            OsString::from("attendant"),
            OsString::from_vec(vec![b'a', 0xff]),
        ];
        assert_eq!(
            utf8_arguments(args).unwrap_err().to_string_lossy(),
            "a\u{fffd}"
        );
    }
}
