//! Outcome reports of channel upgrades: recorded on the router before flashing, resolved and
//! sent once it is back.
//!
//! Before sysupgrade flashes a channel build, the agent records a pending report (channel,
//! device, from build, to build) in `/etc/attendant/reports.json`, which sysupgrade keeps. At
//! boot the package's init script runs `attendant report`, which resolves each pending report
//! against the running image's `channel.json` — the build it flashed runs: `booted`; anything
//! else: `rolled-back` — fetches the server's salt (`GET /api/v1/report`) and sends each report
//! (`POST /api/v1/report`) with the router's machine-id hashed with that salt, nothing else. An
//! upgrade that stopped before flashing (download, verification, `sysupgrade --test`) is
//! recorded as `failed-before-flash` with its cause and sent the same way.
//!
//! A report the server did not take (unreachable, 429, 5xx) stays in the file and waits
//! (1 minute after the first failure, doubling up to a day); the init script tries a few times
//! in the background. A report the server refuses for good (400, 404: unknown build, or reports
//! switched off) is dropped. `option report '0'` records and sends nothing. At most
//! [`MAX_PENDING`] reports are kept; the oldest go first.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use attendant_proto::channel::{
    MAX_CAUSE_LEN, REPORT_API_PATH, ReportRequest, ReportResult, encode_report, machine_token,
    parse_salt,
};
use attendant_proto::wire;
use serde::{Deserialize, Serialize};

use crate::atomic::{read_small, write_atomic};
use crate::channel::{ChannelError, machine, running_stamp};
use crate::client::{Client, ClientError, MAX_ERROR_LEN};

/// Most reports kept waiting.
pub const MAX_PENDING: usize = 32;

/// Largest report file read.
const MAX_REPORTS_FILE_LEN: u64 = 64 * 1024;

/// The first wait after a failed delivery, in seconds; it doubles up to [`MAX_BACKOFF_S`].
const FIRST_BACKOFF_S: u64 = 60;

/// The longest wait between two deliveries of one report, in seconds.
const MAX_BACKOFF_S: u64 = 86_400;

/// One report waiting on the router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingReport {
    /// The channel of the build flashed.
    pub channel: String,
    /// `target/subtarget/profile`.
    pub device: String,
    /// The build the router ran (0: none).
    pub from_build: u64,
    /// The build flashed, or tried.
    pub to_build: u64,
    /// `None` until the router is back from flashing; set for a failure before flashing.
    #[serde(default)]
    pub result: Option<ReportResult>,
    /// Why it failed.
    #[serde(default)]
    pub cause: Option<String>,
    /// Failed deliveries so far.
    #[serde(default)]
    pub attempts: u32,
    /// Not before this time (Unix seconds).
    #[serde(default)]
    pub not_before: u64,
}

/// What [`deliver`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// Reports the server took.
    pub delivered: Vec<PendingReport>,
    /// Reports dropped: refused for good by the server.
    pub dropped: Vec<PendingReport>,
    /// Reports still waiting.
    pub waiting: Vec<PendingReport>,
}

/// Records `report` (a flash about to happen, or a failure before it).
pub fn record(root: &Path, report: PendingReport) -> Result<(), ChannelError> {
    let mut file = ReportsFile::load(root)?;
    // A new attempt at the same build replaces the earlier record of it.
    file.reports
        .retain(|r| !(r.channel == report.channel && r.to_build == report.to_build));
    file.reports.push(report);
    while file.reports.len() > MAX_PENDING {
        file.reports.remove(0);
    }
    file.save()
}

/// A failure before flashing, with its cause cut to what the server takes.
pub fn failure(
    channel: &str,
    device: &str,
    from_build: u64,
    to_build: u64,
    cause: &str,
) -> PendingReport {
    let line = cause.lines().next().unwrap_or_default();
    let mut cut = String::new();
    for ch in line.chars().filter(|c| !c.is_control()) {
        if cut.len() + ch.len_utf8() > MAX_CAUSE_LEN {
            break;
        }
        cut.push(ch);
    }
    PendingReport {
        channel: channel.to_owned(),
        device: device.to_owned(),
        from_build,
        to_build,
        result: Some(ReportResult::FailedBeforeFlash),
        cause: Some(cut),
        attempts: 0,
        not_before: 0,
    }
}

/// Resolves the pending reports against the running image and sends those that are due.
pub fn deliver(client: &Client, root: &Path) -> Result<Delivery, ChannelError> {
    let mut file = ReportsFile::load(root)?;
    let mut delivery = Delivery::default();
    if file.reports.is_empty() {
        return Ok(delivery);
    }
    let stamp = running_stamp(root)?;
    for report in &mut file.reports {
        if report.result.is_none() {
            let booted = stamp
                .as_ref()
                .is_some_and(|s| s.channel == report.channel && s.build == report.to_build);
            report.result = Some(if booted {
                ReportResult::Booted
            } else {
                ReportResult::RolledBack
            });
        }
    }
    let now = now();
    let (due, later): (Vec<_>, Vec<_>) = file
        .reports
        .drain(..)
        .partition(|report| report.not_before <= now);
    delivery.waiting = later;
    if !due.is_empty() {
        match salt(client) {
            Ok(Some(salt)) => {
                let token = machine_token(&salt, &machine::machine_id(root)?);
                for report in due {
                    match send(client, &report, &token) {
                        Ok(()) => delivery.delivered.push(report),
                        Err(error) if is_final(&error) => {
                            log::warn!("the server refused a report; dropping it: {error}");
                            delivery.dropped.push(report);
                        }
                        Err(error) => {
                            log::warn!("a report was not delivered; trying later: {error}");
                            delivery.waiting.push(backed_off(report, now));
                        }
                    }
                }
            }
            Ok(None) => {
                log::info!("the server takes no reports; dropping them");
                delivery.dropped.extend(due);
            }
            Err(error) => {
                log::warn!("cannot reach the server for reports; trying later: {error}");
                delivery
                    .waiting
                    .extend(due.into_iter().map(|r| backed_off(r, now)));
            }
        }
    }
    file.reports.clone_from(&delivery.waiting);
    file.save()?;
    Ok(delivery)
}

/// The server's salt; `None` when it takes no reports (404).
fn salt(client: &Client) -> Result<Option<String>, ClientError> {
    let url = client.url(REPORT_API_PATH);
    let Some(bytes) = client.get_optional(&url, MAX_ERROR_LEN)? else {
        return Ok(None);
    };
    parse_salt(&bytes)
        .map(|salt| Some(salt.salt))
        .map_err(|error| ClientError::BadJson {
            url,
            message: error.to_string(),
        })
}

fn send(client: &Client, report: &PendingReport, token: &str) -> Result<(), ClientError> {
    let request = ReportRequest {
        channel: report.channel.clone(),
        device: report.device.clone(),
        from_build: report.from_build,
        to_build: report.to_build,
        result: report.result.unwrap_or(ReportResult::RolledBack),
        cause: report.cause.clone(),
        machine: token.to_owned(),
    };
    client.post_json(REPORT_API_PATH, &encode_report(&request))?;
    Ok(())
}

/// Refusals that sending again will not change.
fn is_final(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::BadRequest { .. } | ClientError::NotFound { .. }
    )
}

fn backed_off(mut report: PendingReport, now: u64) -> PendingReport {
    let wait = FIRST_BACKOFF_S
        .checked_shl(report.attempts)
        .unwrap_or(MAX_BACKOFF_S)
        .min(MAX_BACKOFF_S);
    report.attempts = report.attempts.saturating_add(1);
    report.not_before = now.saturating_add(wait);
    report
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `/etc/attendant/reports.json`: `{"reports": [...]}`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ReportsFile {
    #[serde(skip)]
    path: PathBuf,
    reports: Vec<PendingReport>,
}

impl ReportsFile {
    fn load(root: &Path) -> Result<Self, ChannelError> {
        let path = wire::under_root(root, wire::PENDING_REPORTS_PATH);
        let mut file: Self = match read_small(&path, MAX_REPORTS_FILE_LEN) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|error| ChannelError::StateFile {
                    path: path.clone(),
                    message: error.to_string(),
                })?
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Self::default(),
            Err(source) => return Err(ChannelError::Io { path, source }),
        };
        file.path = path;
        Ok(file)
    }

    fn save(&self) -> Result<(), ChannelError> {
        let write = |source| ChannelError::Write {
            path: self.path.clone(),
            source,
        };
        if self.reports.is_empty() {
            return match std::fs::remove_file(&self.path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(write(error)),
                _ => Ok(()),
            };
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(write)?;
        }
        let mut bytes = serde_json::to_vec(self).unwrap_or_default();
        bytes.push(b'\n');
        write_atomic(&self.path, &bytes).map_err(write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_minute_to_a_day() {
        let report = failure("stable", "x86/64/generic", 1, 2, "boom");
        let waits: Vec<u64> = (0..20)
            .scan(report, |report, _| {
                *report = backed_off(report.clone(), 1000);
                Some(report.not_before - 1000)
            })
            .collect();
        assert_eq!(&waits[..4], [60, 120, 240, 480]);
        assert_eq!(waits[19], MAX_BACKOFF_S);
    }

    #[test]
    fn a_cause_is_one_printable_line_within_the_limit() {
        let report = failure(
            "stable",
            "d/e/f",
            1,
            2,
            &format!("{}\nsecond", "é".repeat(400)),
        );
        let cause = report.cause.unwrap();
        assert!(cause.len() <= MAX_CAUSE_LEN);
        assert!(!cause.contains('\n'));
    }

    #[test]
    fn records_replace_the_same_build_and_keep_at_most_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        for build in 0..40 {
            record(dir.path(), failure("stable", "d/e/f", 0, build, "x")).unwrap();
        }
        record(dir.path(), failure("stable", "d/e/f", 0, 39, "again")).unwrap();
        let file = ReportsFile::load(dir.path()).unwrap();
        assert_eq!(file.reports.len(), MAX_PENDING);
        assert_eq!(file.reports.last().unwrap().cause.as_deref(), Some("again"));
        assert_eq!(file.reports.first().unwrap().to_build, 40 - 32);
    }
}
