//! Outcome reports: after an upgrade to a channel build, the router tells the server how it went
//! (`POST /api/v1/report`), so the server can count successes and failures per build and halt a
//! phased rollout whose failure rate crosses the channel's threshold.
//!
//! The router identifies itself only by [`machine_token`]: the SHA-256 of a salt the server hands
//! out (`GET /api/v1/report`, [`ReportSalt`]) and the router's machine-id, so the server can tell
//! repeated reports of one router apart from reports of many without learning the machine-id.
//!
//! ```
//! use attendant_proto::channel::{ReportRequest, ReportResult, encode_report, machine_token, parse_report};
//!
//! let report = ReportRequest {
//!     channel: "stable".into(),
//!     device: "ath79/generic/tplink_archer-c7-v5".into(),
//!     from_build: 6,
//!     to_build: 7,
//!     result: ReportResult::Booted,
//!     cause: None,
//!     machine: machine_token("server-salt", "0123456789abcdef0123456789abcdef"),
//! };
//! let bytes = encode_report(&report);
//! assert_eq!(parse_report(&bytes).unwrap(), report);
//! ```

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::channels::{check, decode, encode};
use super::error::{ChannelFormatError, MetadataFile};
use super::field;

/// The API path both requests go to: `GET` answers a [`ReportSalt`], `POST` takes a
/// [`ReportRequest`].
pub const REPORT_API_PATH: &str = "/api/v1/report";

/// Largest report body read, in bytes.
pub const MAX_REPORT_LEN: usize = 4096;

/// Longest `cause`, in bytes.
pub const MAX_CAUSE_LEN: usize = 512;

/// Longest salt, in bytes.
pub const MAX_SALT_LEN: usize = 128;

/// How an upgrade went, as the router saw it once it was back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportResult {
    /// The router runs the build it flashed.
    Booted,
    /// The router flashed the build but runs an older one again (the bootloader or a user fell
    /// back, or the new firmware never came up).
    RolledBack,
    /// The upgrade stopped before flashing (download, verification, sysupgrade refused); `cause`
    /// says why.
    FailedBeforeFlash,
}

impl ReportResult {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Booted => "booted",
            Self::RolledBack => "rolled-back",
            Self::FailedBeforeFlash => "failed-before-flash",
        }
    }

    /// Whether the server counts this result as a failure of the build.
    pub fn is_failure(self) -> bool {
        !matches!(self, Self::Booted)
    }
}

/// One router's report of one upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRequest {
    /// The channel of the build the router upgraded to.
    pub channel: String,
    /// `target/subtarget/profile`.
    pub device: String,
    /// The build the router ran before (0: none, it was not on a channel build).
    pub from_build: u64,
    /// The build it upgraded to.
    pub to_build: u64,
    /// How it went.
    pub result: ReportResult,
    /// For a failure, why, in a line of text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// [`machine_token`] of the router: 64 lowercase hex digits.
    pub machine: String,
}

/// The server's answer to `GET /api/v1/report`: the salt routers hash their machine-id with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportSalt {
    /// Printable ASCII, at most [`MAX_SALT_LEN`] bytes.
    pub salt: String,
}

/// The report's bytes: compact JSON, a final newline.
pub fn encode_report(report: &ReportRequest) -> Vec<u8> {
    encode(report)
}

/// Read and check a report: names as in channel metadata, `to_build` ≥ 1, a printable one-line
/// `cause` of at most [`MAX_CAUSE_LEN`] bytes, `machine` a SHA-256 in hex.
pub fn parse_report(bytes: &[u8]) -> Result<ReportRequest, ChannelFormatError> {
    let file = MetadataFile::Report;
    let report: ReportRequest = decode(file, bytes, MAX_REPORT_LEN)?;
    check(
        file,
        || "channel".into(),
        &report.channel,
        field::channel_name(&report.channel),
    )?;
    check(
        file,
        || "device".into(),
        &report.device,
        field::device_name(&report.device),
    )?;
    check(
        file,
        || "to_build".into(),
        &report.to_build.to_string(),
        if report.to_build == 0 {
            Err("expected a build number of 1 or more")
        } else {
            Ok(())
        },
    )?;
    if let Some(cause) = &report.cause {
        check(file, || "cause".into(), cause, cause_rule(cause))?;
    }
    check(
        file,
        || "machine".into(),
        &report.machine,
        field::sha256(&report.machine),
    )?;
    Ok(report)
}

/// The salt answer's bytes.
pub fn encode_salt(salt: &ReportSalt) -> Vec<u8> {
    encode(salt)
}

/// Read the server's salt answer.
pub fn parse_salt(bytes: &[u8]) -> Result<ReportSalt, ChannelFormatError> {
    let file = MetadataFile::Report;
    let salt: ReportSalt = decode(file, bytes, MAX_SALT_LEN + 64)?;
    let ok = !salt.salt.is_empty()
        && salt.salt.len() <= MAX_SALT_LEN
        && salt.salt.bytes().all(|b| b.is_ascii_graphic());
    check(
        file,
        || "salt".into(),
        &salt.salt,
        if ok {
            Ok(())
        } else {
            Err("expected 1 to 128 printable ASCII characters without spaces")
        },
    )?;
    Ok(salt)
}

/// What a router sends instead of its machine-id: `sha256(salt ":" machine_id)` in lowercase hex.
pub fn machine_token(salt: &str, machine_id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt.as_bytes());
    hasher.update(b":");
    hasher.update(machine_id.trim().as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn cause_rule(cause: &str) -> Result<(), &'static str> {
    if cause.len() <= MAX_CAUSE_LEN && !cause.chars().any(char::is_control) {
        Ok(())
    } else {
        Err("expected one line of text without control characters, at most 512 bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> ReportRequest {
        ReportRequest {
            channel: "lab/canary".into(),
            device: "x86/64/generic".into(),
            from_build: 0,
            to_build: 3,
            result: ReportResult::FailedBeforeFlash,
            cause: Some("image checksum mismatch".into()),
            machine: machine_token("s", "m"),
        }
    }

    #[test]
    fn round_trip_and_wire_spelling() {
        let bytes = encode_report(&report());
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains(r#""result":"failed-before-flash""#), "{text}");
        assert_eq!(parse_report(&bytes).unwrap(), report());
        for result in [
            ReportResult::Booted,
            ReportResult::RolledBack,
            ReportResult::FailedBeforeFlash,
        ] {
            let json = serde_json::to_string(&result).unwrap();
            assert_eq!(json, format!("\"{}\"", result.as_str()));
        }
    }

    #[test]
    fn machine_token_is_salted_sha256() {
        // `printf 'salt:abc' | sha256sum`; the machine-id's trailing newline is not hashed.
        let expected = "3581c353fcf9b9ac030a9991798806c3416d6d5c71b14f2d6a0246bec768c208";
        assert_eq!(machine_token("salt", "abc\n"), expected);
        assert_ne!(machine_token("other", "abc"), expected);
    }

    #[test]
    fn refuses_bad_fields() {
        let mut bad = report();
        bad.to_build = 0;
        let err = parse_report(&encode_report(&bad)).unwrap_err();
        assert!(err.to_string().contains("to_build"), "{err}");

        let mut bad = report();
        bad.machine = "x".repeat(64);
        let err = parse_report(&encode_report(&bad)).unwrap_err();
        assert!(err.to_string().contains("machine"), "{err}");

        let mut bad = report();
        bad.cause = Some("two\nlines".into());
        let err = parse_report(&encode_report(&bad)).unwrap_err();
        assert!(err.to_string().contains("cause"), "{err}");

        let mut bad = report();
        bad.channel = "../x".into();
        assert!(parse_report(&encode_report(&bad)).is_err());

        let big = vec![b' '; MAX_REPORT_LEN + 1];
        assert!(matches!(
            parse_report(&big),
            Err(ChannelFormatError::TooLarge { .. })
        ));
        assert!(parse_report(br#"{"channel":"stable","result":"exploded"}"#).is_err());
    }

    #[test]
    fn salt_rules() {
        let salt = ReportSalt {
            salt: "abc123".into(),
        };
        assert_eq!(parse_salt(&encode_salt(&salt)).unwrap(), salt);
        assert!(parse_salt(br#"{"salt":""}"#).is_err());
        assert!(parse_salt(br#"{"salt":"a b"}"#).is_err());
    }
}
