//! Findings and their ways out: a [`Finding`] is a warning or problem of the checks, a
//! [`Hint`] the way out of a finding or an error, coded by [`HintCode`] so each front end words
//! it for its own users (the CLI names flags, the rpcd bridge call arguments and settings).

use std::fmt;

use serde::{Serialize, Serializer};

/// One warning or problem of the checks, kept apart from its hint so each front end words the
/// way out for its own users: the CLI names flags, LuCI has no flags.
///
/// `Display` (and `Serialize`, so `--json` is the same text) is the CLI's form:
/// `[--force: ]<message>[\n\nhint: <cli hint>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finding {
    /// What was found, without any option names.
    pub message: String,
    /// What the user can do about it.
    pub hint: Option<Hint>,
    /// Only a warning because `--force` overrides it (shown as `--force: <message>`).
    pub forced: bool,
}

impl Finding {
    /// A finding without a way out.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
            forced: false,
        }
    }

    /// A finding with a hint: `code`, worded `cli` on the command line.
    pub fn hinted(message: impl Into<String>, code: HintCode, cli: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: Some(Hint::coded(code, cli)),
            forced: false,
        }
    }

    /// A problem that `--force` turned into a warning.
    pub fn forced(message: impl Into<String>) -> Self {
        Self {
            forced: true,
            ..Self::new(message)
        }
    }

    /// A finding from an error: its message and its way out.
    pub fn from_error(message: impl Into<String>, hint: Option<Hint>) -> Self {
        Self {
            message: message.into(),
            hint,
            forced: false,
        }
    }

    /// The finding without its hint, for front ends that word the way out themselves:
    /// `[--force: ]<message>`.
    pub fn without_hint(&self) -> String {
        if self.forced {
            format!("--force: {}", self.message)
        } else {
            self.message.clone()
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.without_hint())?;
        if let Some(hint) = &self.hint {
            write!(f, "{HINT_SEPARATOR}{}", hint.cli)?;
        }
        Ok(())
    }
}

impl Serialize for Finding {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The way out of a finding or an error: what kind of action ([`HintCode`]) and how the CLI
/// says it. Hints are data beside the message, never part of an error's `Display`: the CLI
/// prints `hint: <cli>` after a blank line, the rpcd bridge sends the code for LuCI to word.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Hint {
    /// The kind of action, for front ends that word it themselves; `None` for advice only the
    /// command line gives (sysupgrade's own words, a damaged file's likely cause).
    pub code: Option<HintCode>,
    /// The command line's words, naming the exact flag or command (what follows `hint: `).
    pub cli: String,
}

impl Hint {
    /// A hint of kind `code`, worded `cli` on the command line.
    pub fn coded(code: HintCode, cli: impl Into<String>) -> Self {
        Self {
            code: Some(code),
            cli: cli.into(),
        }
    }

    /// Advice for the command line only.
    pub fn uncoded(cli: impl Into<String>) -> Self {
        Self {
            code: None,
            cli: cli.into(),
        }
    }
}

/// The kinds of way out the agent suggests; the wire name is [`HintCode::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HintCode {
    /// Build anyway despite downgrades (`--force`).
    Force,
    /// Leave a package out of the build (`--remove`).
    Remove,
    /// Add a missing default package, or ignore it on purpose (`--add`, `--ignored-defaults`).
    IgnoredDefaults,
    /// Pass the running image's init script again (`--init-script`).
    InitScript,
    /// Choose another root filesystem (`--fstype`).
    Fstype,
    /// Choose the version to upgrade to (`--version-to`).
    VersionTo,
    /// Look at the versions the server offers (`attendant versions`).
    Versions,
    /// The server does not build for this board; there is nothing to change.
    UnsupportedBoard,
    /// The server is busy or behind; try again later.
    TryLater,
    /// Install a CA bundle or name one (`--ca-file`).
    CaFile,
    /// Free space for the image, or put it elsewhere (`--image`).
    FreeSpace,
    /// Run the same step again; the download resumes.
    Resume,
    /// Delete the image and download it again.
    DownloadAgain,
    /// Sign the images, or stop requiring signatures (`require_signature`).
    RequireSignature,
    /// Fix the pre-install hook, or leave it out (`--pre-install`).
    PreInstall,
    /// sysupgrade's own checks failed; flash anyway only if sure (`--force-flash`).
    ForceFlash,
    /// Remove the damaged state file (`attendant status --clear`).
    ClearState,
}

impl HintCode {
    /// Every code, so front ends can hold a wording for each.
    pub const ALL: [HintCode; 17] = [
        Self::Force,
        Self::Remove,
        Self::IgnoredDefaults,
        Self::InitScript,
        Self::Fstype,
        Self::VersionTo,
        Self::Versions,
        Self::UnsupportedBoard,
        Self::TryLater,
        Self::CaFile,
        Self::FreeSpace,
        Self::Resume,
        Self::DownloadAgain,
        Self::RequireSignature,
        Self::PreInstall,
        Self::ForceFlash,
        Self::ClearState,
    ];

    /// The wire name, e.g. `ignored_defaults`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Force => "force",
            Self::Remove => "remove",
            Self::IgnoredDefaults => "ignored_defaults",
            Self::InitScript => "init_script",
            Self::Fstype => "fstype",
            Self::VersionTo => "version_to",
            Self::Versions => "versions",
            Self::UnsupportedBoard => "unsupported_board",
            Self::TryLater => "try_later",
            Self::CaFile => "ca_file",
            Self::FreeSpace => "free_space",
            Self::Resume => "resume",
            Self::DownloadAgain => "download_again",
            Self::RequireSignature => "require_signature",
            Self::PreInstall => "pre_install",
            Self::ForceFlash => "force_flash",
            Self::ClearState => "clear_state",
        }
    }
}

/// What separates a message from its hint in the CLI's texts: a blank line, then `hint: `, so
/// the way out stands apart from the error it answers.
pub const HINT_SEPARATOR: &str = "\n\nhint: ";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_print_the_cli_hint_and_serialize_as_that_text() {
        let finding = Finding::hinted(
            "package `luci` would go down from `2` to `1`",
            HintCode::Force,
            "`--force` builds anyway",
        );
        let text = "package `luci` would go down from `2` to `1`\n\nhint: `--force` builds anyway";
        assert_eq!(finding.to_string(), text);
        assert_eq!(serde_json::to_value(&finding).unwrap(), text);
        assert_eq!(
            finding.without_hint(),
            "package `luci` would go down from `2` to `1`"
        );
        assert_eq!(
            Finding::forced("25.12.0 is older than the installed 25.12.2").to_string(),
            "--force: 25.12.0 is older than the installed 25.12.2"
        );
        assert_eq!(HintCode::IgnoredDefaults.as_str(), "ignored_defaults");
    }
}
