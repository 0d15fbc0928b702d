//! Auto-halt and auto-advance: the server acts on a channel's outcome reports by itself, as
//! hawkBit's rollout error and success thresholds do
//! (<https://eclipse.dev/hawkbit/concepts/rollout-management/>).
//!
//! Each channel's settings ([`Rollout`]) say when: `halt_failure_rate` and `halt_min_reports`
//! (a latest build whose share of failed upgrades goes above the rate, once it has at least that
//! many reports, is phased to 0 %), and `advance` (a healthy latest build moves to the next of its
//! percentage steps after `min_successes` booted reports and `soak_seconds` at the current step).
//! Both act through [`apply`] like any operator — the same `phase` operation, an audit entry with
//! actor `auto-halt` or `auto-advance`, re-signed and published at once — and log it (a halt as a
//! warning) and count it in `/metrics` (`attendant_rollout_actions_total`).
//!
//! What counts is the reports of the current window: since the build's phased percentage last
//! changed (`channel_rollouts` records the percentage each latest build was seen at and since
//! when; a build seen for the first time counts from its creation). So a halt is reversible by
//! hand: an operator who phases a halted build up again (`channel phase`) starts a new window,
//! and the failures that caused the halt are not held against the build a second time. Each
//! advance step likewise has to prove itself with reports of its own.
//!
//! [`evaluate`] runs after every report ([`super::reports::receive`]) and [`evaluate_all`] on
//! `serve`'s schedule ([`super::schedule`]), so soak times end without a report arriving.
//! Aliases and redirects mirror another channel and are left alone; a build at 0 % is never
//! touched (pulled by hand or halted: a person decides what next).

use std::collections::BTreeMap;

use super::apply::{ChannelError, apply};
use super::model::{BuildState, Channel, Rollout};
use super::ops::{self, Change};
use crate::imagebuilder::error_chain;
use crate::metrics::RolloutAction;
use crate::state::AppState;
use crate::store::{RolloutStep, StoreError, UnixMillis};

/// Why an evaluation failed; nothing was changed by it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RolloutError {
    /// The store failed.
    #[error("the report store failed")]
    Store(#[from] StoreError),
    /// The phase change was refused or could not be committed.
    #[error("the rollout change failed")]
    Channel(#[from] ChannelError),
}

/// What an evaluation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acted {
    /// Halt or advance.
    pub action: RolloutAction,
    /// The channel.
    pub channel: String,
    /// The device.
    pub device: String,
    /// The build.
    pub build: u64,
    /// The phased percentage before.
    pub from: u8,
    /// The phased percentage after.
    pub to: u8,
    /// Why, for people.
    pub reason: String,
}

/// Evaluates the latest build of one device of one channel at time `now`.
pub async fn evaluate(
    state: &AppState,
    channel: &str,
    device: &str,
    now: UnixMillis,
) -> Result<Option<Acted>, RolloutError> {
    let Some(channel) = state.store.channels().load_channel(channel).await? else {
        return Ok(None);
    };
    evaluate_device(state, &channel, device, now).await
}

/// Evaluates every device of every channel with rollout settings; errors are logged and the
/// other devices still evaluated.
pub async fn evaluate_all(state: &AppState, now: UnixMillis) -> Vec<Acted> {
    let channels = match state.store.channels().snapshot().await {
        Ok(snapshot) => snapshot.channels,
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "cannot read the channels for rollout evaluation");
            return Vec::new();
        }
    };
    let mut acted = Vec::new();
    for channel in channels.values().filter(|channel| governed(channel)) {
        for device in channel.devices.keys() {
            match evaluate_device(state, channel, device, now).await {
                Ok(Some(action)) => acted.push(action),
                Ok(None) => {}
                Err(error) => {
                    tracing::error!(error = %error_chain(&error), channel = %channel.name, %device, "rollout evaluation failed");
                }
            }
        }
    }
    acted
}

/// Whether the server acts on this channel's reports.
fn governed(channel: &Channel) -> bool {
    !channel.settings.rollout.is_off() && channel.alias.is_none() && channel.redirect.is_none()
}

async fn evaluate_device(
    state: &AppState,
    channel: &Channel,
    device: &str,
    now: UnixMillis,
) -> Result<Option<Acted>, RolloutError> {
    if !governed(channel) {
        return Ok(None);
    }
    let Some(entry) = channel.devices.get(device) else {
        return Ok(None);
    };
    let Some(latest) = entry.latest() else {
        return Ok(None);
    };
    if entry.redirect.is_some() || !matches!(latest.state, BuildState::Ready) {
        return Ok(None);
    }
    let percentage = latest.phased_percentage;
    let since = window(
        state,
        &channel.name,
        device,
        latest.number,
        percentage,
        latest.created_at,
        now,
    )
    .await?;
    if percentage == 0 {
        return Ok(None);
    }
    let counts = state
        .store
        .report_counts(&channel.name, device, since)
        .await?
        .remove(&latest.number)
        .unwrap_or_default();
    let Some((action, to, reason)) =
        decide(&channel.settings.rollout, percentage, &counts, now - since)
    else {
        return Ok(None);
    };
    let acted = Acted {
        action,
        channel: channel.name.clone(),
        device: device.to_owned(),
        build: latest.number,
        from: percentage,
        to,
        reason,
    };
    act(state, &acted, now).await
}

/// What the settings call for, given the current window's counts and its age.
fn decide(
    rollout: &Rollout,
    percentage: u8,
    counts: &crate::store::ReportCounts,
    window_ms: i64,
) -> Option<(RolloutAction, u8, String)> {
    let rate = counts.failure_rate();
    if let Some(limit) = rollout.halt_failure_rate
        && counts.total() >= rollout.halt_min_reports.max(1)
        && rate > limit.get()
    {
        return Some((
            RolloutAction::Halt,
            0,
            format!(
                "failure rate {rate:.3} of {} reports ({} rolled back, {} failed before flashing) is above halt_failure_rate {}",
                counts.total(),
                counts.rolled_back,
                counts.failed_before_flash,
                limit.get()
            ),
        ));
    }
    let advance = rollout.advance.as_ref()?;
    let next = advance
        .steps
        .iter()
        .copied()
        .find(|step| *step > percentage)?;
    let healthy = rollout
        .halt_failure_rate
        .is_none_or(|limit| rate <= limit.get());
    let soak_ms = i64::try_from(advance.soak_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
    if healthy && counts.booted >= advance.min_successes && window_ms >= soak_ms {
        return Some((
            RolloutAction::Advance,
            next,
            format!(
                "{} booted of {} reports after {}s at {percentage}%",
                counts.booted,
                counts.total(),
                window_ms / 1000
            ),
        ));
    }
    None
}

/// The start of the build's current window; records the percentage when it changed.
async fn window(
    state: &AppState,
    channel: &str,
    device: &str,
    build: u64,
    percentage: u8,
    created_at: UnixMillis,
    now: UnixMillis,
) -> Result<UnixMillis, StoreError> {
    let store = &state.store;
    let since = match store.rollout_step(channel, device, build).await? {
        Some(step) if step.percentage == percentage => return Ok(step.since),
        // Changed since last seen, by an operator or another server's rollout.
        Some(_) => now,
        None => created_at.min(now),
    };
    store
        .set_rollout_step(channel, device, build, RolloutStep { percentage, since })
        .await?;
    Ok(since)
}

/// Commits the phase change as the rollout's actor, unless the tree moved on meanwhile.
async fn act(
    state: &AppState,
    acted: &Acted,
    now: UnixMillis,
) -> Result<Option<Acted>, RolloutError> {
    let actor = acted.action.as_str();
    let applied = apply(state, actor, false, |tree| {
        let current = tree
            .get(&acted.channel)
            .and_then(|channel| channel.devices.get(&acted.device))
            .and_then(|device| device.latest());
        // Another process (or an operator) changed the build since it was read: nothing to do,
        // the next evaluation sees the new state.
        if current.is_none_or(|build| {
            build.number != acted.build || build.phased_percentage != acted.from
        }) {
            return Ok(Change {
                operation: "phase",
                target: format!("{} {} {}", acted.channel, acted.device, acted.build),
                summary: Vec::new(),
                touched: BTreeMap::new(),
                rebuilds: Vec::new(),
            });
        }
        let mut change = ops::phase(
            tree,
            &acted.channel,
            &acted.device,
            acted.build,
            u64::from(acted.to),
        )?;
        change.summary.push(format!("{actor}: {}", acted.reason));
        Ok(change)
    })
    .await?;
    if !applied.committed {
        return Ok(None);
    }
    state
        .store
        .set_rollout_step(
            &acted.channel,
            &acted.device,
            acted.build,
            RolloutStep {
                percentage: acted.to,
                since: now,
            },
        )
        .await?;
    state.metrics.observe_rollout(acted.action);
    match acted.action {
        RolloutAction::Halt => tracing::warn!(
            channel = %acted.channel, device = %acted.device, build = acted.build,
            from = acted.from, reason = %acted.reason,
            "rollout halted: build phased to 0%; phase it up again by hand once fixed"
        ),
        RolloutAction::Advance => tracing::info!(
            channel = %acted.channel, device = %acted.device, build = acted.build,
            from = acted.from, to = acted.to, reason = %acted.reason,
            "rollout advanced"
        ),
    }
    Ok(Some(acted.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::model::{Advance, FailureRate};
    use crate::store::ReportCounts;

    fn policy() -> Rollout {
        Rollout {
            halt_failure_rate: FailureRate::new(0.2),
            halt_min_reports: 5,
            advance: Some(Advance {
                steps: vec![10, 50, 100],
                min_successes: 4,
                soak_seconds: 60,
            }),
        }
    }

    fn counts(booted: u64, failed: u64) -> ReportCounts {
        ReportCounts {
            booted,
            rolled_back: failed,
            failed_before_flash: 0,
        }
    }

    #[test]
    fn halts_only_above_the_rate_with_enough_reports() {
        // 2 of 4 failed, but 5 reports are needed.
        assert_eq!(decide(&policy(), 10, &counts(2, 2), 0), None);
        let (action, to, reason) = decide(&policy(), 10, &counts(3, 2), 0).unwrap();
        assert_eq!((action, to), (RolloutAction::Halt, 0));
        assert!(
            reason.contains("failure rate 0.400 of 5 reports"),
            "{reason}"
        );
        // Exactly at the rate is not above it.
        assert_eq!(decide(&policy(), 10, &counts(4, 1), 0), None);
    }

    #[test]
    fn advances_after_successes_and_soak_to_the_next_step() {
        let soaked = 60_000;
        assert_eq!(decide(&policy(), 10, &counts(4, 0), soaked - 1), None);
        assert_eq!(decide(&policy(), 10, &counts(3, 0), soaked), None);
        let (action, to, _) = decide(&policy(), 10, &counts(4, 0), soaked).unwrap();
        assert_eq!((action, to), (RolloutAction::Advance, 50));
        // A percentage set by hand between steps moves to the next step above it.
        let (_, to, _) = decide(&policy(), 20, &counts(4, 0), soaked).unwrap();
        assert_eq!(to, 50);
        assert_eq!(decide(&policy(), 100, &counts(40, 0), soaked), None);
    }

    #[test]
    fn an_unhealthy_build_below_min_reports_does_not_advance() {
        let mut rollout = policy();
        rollout.halt_min_reports = 100;
        assert_eq!(decide(&rollout, 10, &counts(4, 3), 60_000), None);
    }
}
