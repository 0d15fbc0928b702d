//! The one path every channel mutation takes, from the CLI and the admin API alike: read a
//! snapshot, run the operation ([`super::ops`]), submit the image jobs its new builds need
//! ([`super::builds`]), commit with the audit entry, tell the [`Publisher`].
//!
//! A commit refused because another writer changed a touched channel meanwhile is retried
//! from a fresh snapshot (up to [`MAX_ATTEMPTS`] times), so two operators never overwrite each
//! other and an operation never acts on a stale tree. With `dry_run` the change is computed and
//! returned, and nothing is submitted, committed or published.

use std::collections::BTreeMap;

use super::jobs::{BuildsError, submit_rebuilds};
use super::model::Channel;
use super::ops::{Change, OpError, Tree};
use crate::state::{AppState, now};
pub use crate::state::{NoPublisher, Publisher, no_publisher};
use crate::store::StoreError;
use crate::store::channel_store::{AuditEntry, Snapshot, TreeChange};

/// Commits tried before giving up on a tree that keeps changing underneath.
pub const MAX_ATTEMPTS: u32 = 10;

/// Why a channel mutation did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// The operation broke a rule; nothing changed.
    #[error(transparent)]
    Refused(#[from] OpError),
    /// A build could not be made or imported.
    #[error(transparent)]
    Builds(#[from] BuildsError),
    /// The store failed.
    #[error("the channel store failed")]
    Store(#[from] StoreError),
    /// Other writers kept changing the same channels.
    #[error("the channels kept changing during {attempts} attempts; try again")]
    Busy {
        /// Attempts made.
        attempts: u32,
    },
}

impl ChannelError {
    /// Whether the operator's request was refused (exit code 1, HTTP 4xx), as opposed to the
    /// server failing.
    pub fn is_refusal(&self) -> bool {
        match self {
            Self::Refused(_) => true,
            Self::Builds(error) => error.is_refusal(),
            Self::Store(_) | Self::Busy { .. } => false,
        }
    }

    /// The way out, if there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Refused(error) => error.hint(),
            Self::Builds(error) => error.hint(),
            Self::Store(_) | Self::Busy { .. } => None,
        }
    }
}

/// A change and the touched channels as they were before it: what `--dry-run` and `--json`
/// print, and what the admin API answers.
///
/// JSON shape (one object):
///
/// ```json
/// {"operation": "phase", "target": "stable ath79/generic/tplink_archer-c7-v5 7",
///  "committed": true, "summary": ["phased percentage of ... 100 -> 25"],
///  "rebuilds": [{"channel": "daily", "device": "...", "number": 8}],
///  "changes": {"stable": {"before": {...channel...}, "after": {...channel... or null}}}}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Applied {
    /// The operation's name.
    pub operation: &'static str,
    /// What it was applied to.
    pub target: String,
    /// Whether it was committed (`false` for a dry run or a change that changes nothing).
    pub committed: bool,
    /// One line per effect.
    pub summary: Vec<String>,
    /// Builds whose images are being built for this change.
    pub rebuilds: Vec<super::ops::BuildRef>,
    /// Per touched channel, before and after (`null`: absent).
    pub changes: BTreeMap<String, BeforeAfter>,
}

/// One channel before and after a change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BeforeAfter {
    /// Before (`None`: it did not exist).
    pub before: Option<Channel>,
    /// After (`None`: removed).
    pub after: Option<Channel>,
}

impl BeforeAfter {
    /// Both sides, keeping of a channel that exists on both only the devices that differ: a
    /// change to one device of a 2,000-device channel shows (and audits) that device.
    fn trimmed(before: Option<&Channel>, after: Option<Channel>) -> Self {
        let (Some(before), Some(mut after)) = (before, after.clone()) else {
            return Self {
                before: before.cloned(),
                after,
            };
        };
        let devices = before
            .devices
            .iter()
            .filter(|(id, device)| after.devices.get(*id) != Some(*device))
            .map(|(id, device)| (id.clone(), device.clone()))
            .collect();
        after
            .devices
            .retain(|id, device| before.devices.get(id) != Some(&*device));
        let before = Channel {
            name: before.name.clone(),
            settings: before.settings.clone(),
            hidden: before.hidden,
            alias: before.alias.clone(),
            redirect: before.redirect.clone(),
            devices,
        };
        Self {
            before: Some(before),
            after: Some(after),
        }
    }
}

impl Applied {
    fn of(snapshot: &Snapshot, change: Change, committed: bool) -> Self {
        let changes = change
            .touched
            .into_iter()
            .map(|(name, after)| {
                let before = snapshot.channels.get(&name);
                (name, BeforeAfter::trimmed(before, after))
            })
            .collect();
        Self {
            operation: change.operation,
            target: change.target,
            committed,
            summary: change.summary,
            rebuilds: change.rebuilds,
            changes,
        }
    }
}

/// Runs `operation` against the current tree and, unless `dry_run`, commits its change as
/// `actor` and publishes.
pub async fn apply(
    state: &AppState,
    actor: &str,
    dry_run: bool,
    operation: impl Fn(&Tree) -> Result<Change, OpError>,
) -> Result<Applied, ChannelError> {
    let channels = state.store.channels();
    for _ in 0..MAX_ATTEMPTS {
        let snapshot = channels.snapshot().await?;
        let mut change = operation(&snapshot.channels)?;
        if dry_run || change.touched.is_empty() {
            return Ok(Applied::of(&snapshot, change, false));
        }
        submit_rebuilds(state, &mut change).await?;
        let write = TreeChange::from_snapshot(&snapshot, &change.touched);
        let applied = Applied::of(&snapshot, change.clone(), true);
        let audit = audit_entry(actor, &applied, now());
        match channels.commit(&write, &audit).await {
            Ok(()) => {
                state.channel_cache.tree.invalidate();
                if let Err(error) = state.publisher.publish(state, &change).await {
                    // The change is committed; the next publication (or `serve`'s schedule)
                    // renders it. Failing the command here would invite a second, different
                    // change.
                    tracing::error!(error = %error, operation = change.operation, "publication after a channel change failed");
                }
                return Ok(applied);
            }
            Err(StoreError::ChannelConflict { channel }) => {
                tracing::debug!(%channel, "channel changed meanwhile; retrying");
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(ChannelError::Busy {
        attempts: MAX_ATTEMPTS,
    })
}

/// The stored channel `name`, or [`OpError::NoChannel`]: what every read of one channel by the
/// CLI and the admin API starts with.
pub async fn existing_channel(state: &AppState, name: &str) -> Result<Channel, ChannelError> {
    state
        .store
        .channels()
        .load_channel(name)
        .await?
        .ok_or_else(|| {
            OpError::NoChannel {
                name: name.to_owned(),
            }
            .into()
        })
}

/// The audit entry of a committed change: the touched channels before and after, each with
/// only the devices that changed (as [`Applied::changes`]).
fn audit_entry(actor: &str, applied: &Applied, at_ms: i64) -> AuditEntry {
    let before: BTreeMap<&String, Option<&Channel>> = applied
        .changes
        .iter()
        .map(|(name, change)| (name, change.before.as_ref()))
        .collect();
    let after: BTreeMap<&String, Option<&Channel>> = applied
        .changes
        .iter()
        .map(|(name, change)| (name, change.after.as_ref()))
        .collect();
    AuditEntry {
        at_ms,
        actor: actor.to_owned(),
        operation: applied.operation.to_owned(),
        target: applied.target.clone(),
        before: serde_json::to_string(&before).unwrap_or_default(),
        after: serde_json::to_string(&after).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::model::{Device, test_build, test_channel};
    use crate::channels::ops;

    #[test]
    fn changes_show_only_the_devices_that_changed() {
        let mut stable = test_channel("stable");
        for n in 0..3 {
            stable.devices.insert(
                format!("t/s/p{n}"),
                Device {
                    builds: vec![test_build(1)],
                    last_build: 1,
                    ..Device::default()
                },
            );
        }
        let snapshot = Snapshot {
            channels: BTreeMap::from([("stable".to_owned(), stable)]),
            ..Snapshot::default()
        };
        let change = ops::phase(&snapshot.channels, "stable", "t/s/p1", 1, 10).unwrap();
        let applied = Applied::of(&snapshot, change, false);
        let stable = &applied.changes["stable"];
        let before = stable.before.as_ref().unwrap();
        let after = stable.after.as_ref().unwrap();
        assert_eq!(before.devices.keys().collect::<Vec<_>>(), ["t/s/p1"]);
        assert_eq!(after.devices.keys().collect::<Vec<_>>(), ["t/s/p1"]);
        assert_eq!(before.devices["t/s/p1"].builds[0].phased_percentage, 100);
        assert_eq!(after.devices["t/s/p1"].builds[0].phased_percentage, 10);
        let audit = audit_entry("cli:test", &applied, 5);
        assert!(!audit.after.contains("t/s/p0"), "{}", audit.after);
    }
}
