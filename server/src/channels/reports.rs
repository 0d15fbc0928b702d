//! Outcome reports: routers tell the server how each upgrade to a channel build went, and the
//! server counts them per channel, device and build.
//!
//! The wire format is `attendant_proto::channel::report`: `GET /api/v1/report` hands out the
//! salt ([`salt`]), `POST /api/v1/report` takes a report ([`receive`]). This is the "report
//! function" the original attended-sysupgrade design planned
//! (<https://github.com/openwrt/asu>, never built there), with hawkBit's rollout thresholds
//! (<https://eclipse.dev/hawkbit/concepts/rollout-management/>) acting on the counts
//! ([`super::rollout`]).
//!
//! What is kept: channel, device, the builds from and to, the result, a failure's one-line cause,
//! the time, and the router's salted machine token — nothing that names a router or its owner.
//! The salt is made once per server (the database's `report_salt`), so the same router sends the
//! same token every time and its retries replace its earlier report instead of adding to it.
//!
//! Bounds: a report body is at most 4 KiB (`MAX_REPORT_LEN`); reports are accepted only for a
//! build the tree has (a made-up channel, device or build is a 404 and writes nothing); and each
//! build keeps at most `channels.max_reports_per_build` routers. A flood of reports with fresh
//! tokens therefore fills at most that many rows per existing build, and is answered 202 all the
//! same (a router that got 429 would only retry): counted no further, visible in
//! `attendant_reports_capped_total`. There is no rate limit per address; a proxy in front of the
//! server is the place for one.

use std::collections::BTreeMap;

use attendant_proto::channel::{ChannelFormatError, ReportRequest, ReportSalt, parse_report};

use super::model::Device;
use super::rollout;
use crate::state::{AppState, now};
use crate::store::{Recorded, ReportCounts, StoreError, StoredReport};

/// Why a report or the salt was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// `channels.reports` is off.
    #[error("outcome reports are disabled on this server")]
    Disabled,
    /// The body is not a report (the field and rule are named).
    #[error("malformed report")]
    Malformed(#[from] ChannelFormatError),
    /// The report is about a build this server does not have.
    #[error("channel `{channel}` has no build {build} for device `{device}`")]
    UnknownBuild {
        /// The channel.
        channel: String,
        /// The device.
        device: String,
        /// The build.
        build: u64,
    },
    /// No salt could be made.
    #[error("the operating system's random source failed")]
    Random,
    /// The store failed.
    #[error("the report store failed")]
    Store(#[from] StoreError),
}

/// The salt routers hash their machine-id with; made and stored the first time it is asked for.
pub async fn salt(state: &AppState) -> Result<ReportSalt, ReportError> {
    if !state.config.channels.reports {
        return Err(ReportError::Disabled);
    }
    let mut random = [0u8; 16];
    // Without OS randomness the salt would be guessable, and a guessable salt lets anyone who
    // knows a machine-id recognise its token; refuse rather than store a weak one.
    getrandom::fill(&mut random).map_err(|_| ReportError::Random)?;
    let salt = state.store.report_salt(&hex::encode(random)).await?;
    Ok(ReportSalt { salt })
}

/// Takes a report's body: checks it, stores it (replacing the router's earlier report of the
/// same upgrade), then lets [`rollout`] act on the new counts.
pub async fn receive(state: &AppState, body: &[u8]) -> Result<Recorded, ReportError> {
    if !state.config.channels.reports {
        return Err(ReportError::Disabled);
    }
    let report = parse_report(body)?;
    let known = state
        .store
        .channels()
        .load_channel(&report.channel)
        .await?
        .and_then(|channel| channel.devices.get(&report.device).cloned())
        .is_some_and(|device| device.build(report.to_build).is_some());
    if !known {
        return Err(ReportError::UnknownBuild {
            channel: report.channel,
            device: report.device,
            build: report.to_build,
        });
    }
    let at = now();
    let recorded = record(state, &report, at).await?;
    // The report is stored whatever the rollout does next; a failure there is the server's to
    // log, not the router's to retry. Evaluated at the report's own time, so a window that opens
    // now (the percentage changed since the last evaluation) includes this report.
    if let Err(error) = rollout::evaluate(state, &report.channel, &report.device, at).await {
        tracing::error!(error = %crate::imagebuilder::error_chain(&error), channel = %report.channel, device = %report.device, "rollout evaluation after a report failed");
    }
    Ok(recorded)
}

/// Report counts of every build of `device` in `channel` (all reports ever kept).
pub async fn counts(
    state: &AppState,
    channel: &str,
    device: &str,
) -> Result<BTreeMap<u64, ReportCounts>, StoreError> {
    state.store.report_counts(channel, device, 0).await
}

/// Deletes the reports of builds the tree no longer has (removed or expired by `fullcount`:
/// every number below a device's oldest build), so reports do not outlive their builds. Errors
/// are logged; returns how many reports went.
pub async fn prune(state: &AppState) -> u64 {
    let tree = match state.store.channels().load_tree().await {
        Ok(tree) => tree,
        Err(error) => {
            tracing::warn!(error = %crate::imagebuilder::error_chain(&error), "cannot read the channels to prune reports");
            return 0;
        }
    };
    let mut pruned = 0;
    for channel in &tree {
        for (id, device) in &channel.devices {
            let oldest = device
                .builds
                .iter()
                .map(|build| build.number)
                .min()
                .unwrap_or_else(|| device.last_build.saturating_add(1));
            match state.store.prune_reports(&channel.name, id, oldest).await {
                Ok(count) => pruned += count,
                Err(error) => {
                    tracing::warn!(error = %crate::imagebuilder::error_chain(&error), channel = %channel.name, device = %id, "pruning reports failed");
                }
            }
        }
    }
    pruned
}

/// A device entry as `channel images --json` and the admin API show it: the stored entry with
/// `"reports"` beside each build.
pub fn device_with_reports(
    device: &Device,
    counts: &BTreeMap<u64, ReportCounts>,
) -> serde_json::Value {
    let mut value = serde_json::to_value(device).unwrap_or_default();
    if let Some(builds) = value
        .get_mut("builds")
        .and_then(serde_json::Value::as_array_mut)
    {
        for (build, entry) in device.builds.iter().zip(builds) {
            let reports = counts.get(&build.number).copied().unwrap_or_default();
            if let Some(object) = entry.as_object_mut() {
                object.insert(
                    "reports".to_owned(),
                    serde_json::to_value(reports).unwrap_or_default(),
                );
            }
        }
    }
    value
}

async fn record(state: &AppState, report: &ReportRequest, at: i64) -> Result<Recorded, StoreError> {
    let stored = StoredReport {
        channel: report.channel.clone(),
        device: report.device.clone(),
        from_build: report.from_build,
        to_build: report.to_build,
        result: report.result,
        cause: report.cause.clone(),
        machine: report.machine.clone(),
        at,
    };
    let recorded = state
        .store
        .record_report(&stored, state.config.channels.max_reports_per_build)
        .await?;
    state
        .metrics
        .observe_report(report.result, recorded != Recorded::Capped);
    if recorded == Recorded::Capped {
        tracing::debug!(channel = %report.channel, device = %report.device, build = report.to_build, "report over the build's cap not counted");
    }
    Ok(recorded)
}
