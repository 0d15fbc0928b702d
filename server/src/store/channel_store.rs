//! Persistence of the channel tree: [`ChannelStore`], implemented by both job stores
//! ([`crate::store::SqliteStore`], [`crate::store::PostgresStore`]) on their own database.
//!
//! Tables (`migrations/*/0002_channels.sql`): `channels` (a channel without its devices, JSON of
//! [`ChannelDoc`]), `channel_devices` (one row per device, JSON of [`Device`]), `channel_audit`,
//! `channel_state` (the publication serial) and `channel_locks`.
//!
//! Concurrency is optimistic: [`ChannelStore::snapshot`] returns every channel with the
//! revision it was read at; an operation computes the changed channels from it
//! ([`crate::channels::ops`]), and [`ChannelStore::commit`] writes them in one transaction that first
//! checks each channel's revision. If another writer committed in between, nothing is written
//! and [`StoreError::ChannelConflict`] tells the caller to reload and run the operation again
//! (two operators, or the CLI and `serve`'s settle, never overwrite each other's change). A
//! failed transaction is rolled back explicitly before its connection returns to the pool.
//!
//! Locks ([`ChannelStore::try_lock`]) are leases in the database, so they hold across processes
//! and hosts: a holder that dies loses the lock when its lease expires.

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::{ImageDownloads, StoreError, UnixMillis};
use crate::channels::model::{BuildState, Channel, ChannelSettings, Device};

/// The channel tree with the revision each channel was read at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Every channel, by name.
    pub channels: BTreeMap<String, Channel>,
    /// Each channel's revision (grows with every commit touching the channel or its devices).
    pub revisions: BTreeMap<String, u64>,
    /// Each device's revision, by channel and device id (grows when that device changes).
    pub device_revisions: BTreeMap<(String, String), u64>,
}

/// One channel to write (or delete) in a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelWrite {
    /// The channel's name.
    pub name: String,
    /// The revision the change was computed from; `None`: the channel must not exist yet.
    pub expected_revision: Option<u64>,
    /// The channel after the change; `None` deletes it.
    pub after: Option<Channel>,
    /// Devices of `after` to write: new or changed since the expected revision. Only these rows
    /// are rewritten, so a change to one device of a 2,000-device channel writes one row.
    pub changed_devices: Vec<String>,
    /// Devices to delete.
    pub removed_devices: Vec<String>,
}

/// What one operation changes: the channels it touched, checked against their revisions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeChange {
    /// The writes, applied in order.
    pub writes: Vec<ChannelWrite>,
}

impl TreeChange {
    /// The writes of `touched` (name → channel after the change, `None` = removed), each
    /// expecting the revision `snapshot` holds for it.
    /// Devices are compared with the snapshot's, and only those that differ are written; the
    /// channel's revision check makes that safe (any other change of the channel's devices
    /// moved its revision on).
    pub fn from_snapshot(snapshot: &Snapshot, touched: &BTreeMap<String, Option<Channel>>) -> Self {
        Self {
            writes: touched
                .iter()
                .map(|(name, after)| {
                    let before = snapshot.channels.get(name);
                    let (changed_devices, removed_devices) = match (before, after) {
                        (Some(before), Some(after)) => (
                            after
                                .devices
                                .iter()
                                .filter(|(id, device)| before.devices.get(*id) != Some(*device))
                                .map(|(id, _)| id.clone())
                                .collect(),
                            before
                                .devices
                                .keys()
                                .filter(|id| !after.devices.contains_key(*id))
                                .cloned()
                                .collect(),
                        ),
                        (None, Some(after)) => {
                            (after.devices.keys().cloned().collect(), Vec::new())
                        }
                        (_, None) => (Vec::new(), Vec::new()),
                    };
                    ChannelWrite {
                        name: name.clone(),
                        expected_revision: snapshot.revisions.get(name).copied(),
                        after: after.clone(),
                        changed_devices,
                        removed_devices,
                    }
                })
                .collect(),
        }
    }
}

/// One audit log entry: when, who, what, and the touched channels before and after (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When, Unix milliseconds.
    pub at_ms: UnixMillis,
    /// Who: `cli:<user>` or the admin token's name.
    pub actor: String,
    /// The operation, e.g. `phase`.
    pub operation: String,
    /// What it was applied to, e.g. `stable ath79/generic/tplink_archer-c7-v5 7`.
    pub target: String,
    /// The touched channels before (JSON object name → channel or `null`).
    pub before: String,
    /// The touched channels after.
    pub after: String,
}

/// An audit entry as stored, with its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Grows with every entry.
    pub id: i64,
    /// The entry.
    #[serde(flatten)]
    pub entry: AuditEntry,
}

/// A build waiting for its image job, for `settle`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingBuild {
    /// The channel.
    pub channel: String,
    /// The device id.
    pub device: String,
    /// The build number.
    pub number: u64,
    /// The image job's request hash.
    pub request_hash: String,
}

/// A channel as stored in its `channels` row: everything but the devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelDoc {
    /// Server-side settings.
    pub settings: ChannelSettings,
    /// Hidden flag.
    pub hidden: bool,
    /// Alias target.
    pub alias: Option<String>,
    /// Redirect target.
    pub redirect: Option<String>,
}

/// The `channel_state` key of the publication serial.
pub const SERIAL_KEY: &str = "serial";

/// The `channel_state` counter raised by every [`ChannelStore::commit`], in the same
/// transaction: it moves whenever the tree changed, whichever process changed it, so a reader
/// can tell cheaply whether a tree it holds is still current (read it with
/// [`ChannelStore::counter`]).
pub const TREE_REVISION_KEY: &str = "tree_revision";

/// Download counts of pool files by (SHA-256, file name).
pub type PoolDownloads = BTreeMap<(String, String), u64>;

/// Most digests one [`ChannelStore::pool_downloads`] call looks up (more are ignored).
pub const MAX_POOL_DOWNLOADS_QUERY: usize = 4096;

/// Most audit entries returned by one [`ChannelStore::audit_log`] call.
pub const MAX_AUDIT_PAGE: u32 = 1000;

/// Persistence of the channel tree. Both job stores implement it; reach it through
/// [`crate::store::Store::channels`].
pub trait ChannelStore: Send + Sync {
    /// Every channel with its revision.
    fn snapshot(&self) -> BoxFuture<'_, Result<Snapshot, StoreError>>;

    /// One channel, if it exists.
    fn load_channel<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Channel>, StoreError>>;

    /// Writes `change` and `audit` in one transaction; [`StoreError::ChannelConflict`] (nothing
    /// written) when a channel's revision is no longer the expected one.
    fn commit<'a>(
        &'a self,
        change: &'a TreeChange,
        audit: &'a AuditEntry,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Increments the publication serial and returns the new value (1 the first time).
    fn next_serial(&self) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// The last serial [`ChannelStore::next_serial`] returned (0: none yet).
    fn current_serial(&self) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// The counter `key` of `channel_state` (0: never set), e.g. the highest serial seen of a
    /// remote channel tree (see [`ChannelStore::raise_counter`]).
    fn counter<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, StoreError>>;

    /// Raises the counter `key` to `value` unless it is higher already; returns what it holds
    /// afterwards. The importer keeps each remote's highest serial here, so a remote tree
    /// replayed from an older publication is refused even after a restart.
    fn raise_counter<'a>(
        &'a self,
        key: &'a str,
        value: u64,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;

    /// Adds whole-file downloads of pool files (`request_hash` holds the file's SHA-256,
    /// `image` its name), in one transaction.
    fn add_pool_downloads<'a>(
        &'a self,
        downloads: &'a [ImageDownloads],
        now: UnixMillis,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The download counts of the pool files with these SHA-256 digests, by (SHA-256, name);
    /// files never downloaded are absent. At most [`MAX_POOL_DOWNLOADS_QUERY`] digests.
    fn pool_downloads<'a>(
        &'a self,
        sha256: &'a [String],
    ) -> BoxFuture<'a, Result<PoolDownloads, StoreError>>;

    /// Takes the lock `name` for `holder` until `now + ttl` if it is free, expired, or already
    /// `holder`'s (which renews it); `false` when someone else holds it.
    fn try_lock<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        ttl_ms: i64,
        now: UnixMillis,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Releases the lock `name` if `holder` holds it; `false` if it did not.
    fn unlock<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Builds waiting for their image job, in channel, device and number order.
    fn pending_builds(&self) -> BoxFuture<'_, Result<Vec<PendingBuild>, StoreError>>;

    /// Up to `limit` (at most [`MAX_AUDIT_PAGE`]) audit entries with an id above `after`,
    /// oldest first.
    fn audit_log(
        &self,
        after: i64,
        limit: u32,
    ) -> BoxFuture<'_, Result<Vec<AuditRecord>, StoreError>>;
}

impl dyn ChannelStore + '_ {
    /// Every channel, by name order (the tree publication renders).
    pub async fn load_tree(&self) -> Result<Vec<Channel>, StoreError> {
        Ok(self.snapshot().await?.channels.into_values().collect())
    }
}

/// The `channels.doc` column of `channel`.
pub(crate) fn encode_channel(channel: &Channel) -> Result<String, StoreError> {
    let doc = ChannelDoc {
        settings: channel.settings.clone(),
        hidden: channel.hidden,
        alias: channel.alias.clone(),
        redirect: channel.redirect.clone(),
    };
    serde_json::to_string(&doc).map_err(|source| StoreError::ChannelEncode {
        channel: channel.name.clone(),
        source,
    })
}

/// The `channel_devices.doc` column of a device of `channel`.
pub(crate) fn encode_device(channel: &str, device: &Device) -> Result<String, StoreError> {
    serde_json::to_string(device).map_err(|source| StoreError::ChannelEncode {
        channel: channel.to_owned(),
        source,
    })
}

/// Builds of `device` waiting for a job (the `pending` column).
pub(crate) fn pending_count(device: &Device) -> i64 {
    let count = device
        .builds
        .iter()
        .filter(|build| matches!(build.state, BuildState::Pending { .. }))
        .count();
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// A channel from its row and its device rows.
pub(crate) fn decode_channel(
    name: &str,
    doc: &str,
    devices: impl IntoIterator<Item = (String, String)>,
) -> Result<Channel, StoreError> {
    let doc: ChannelDoc = serde_json::from_str(doc).map_err(|_| StoreError::ChannelCorrupt {
        channel: name.to_owned(),
        device: None,
    })?;
    let mut channel = Channel {
        name: name.to_owned(),
        settings: doc.settings,
        hidden: doc.hidden,
        alias: doc.alias,
        redirect: doc.redirect,
        devices: BTreeMap::new(),
    };
    for (id, text) in devices {
        let device: Device =
            serde_json::from_str(&text).map_err(|_| StoreError::ChannelCorrupt {
                channel: name.to_owned(),
                device: Some(id.clone()),
            })?;
        channel.devices.insert(id, device);
    }
    Ok(channel)
}

/// The pending builds of a stored device.
pub(crate) fn pending_of(
    channel: &str,
    device_id: &str,
    doc: &str,
) -> Result<Vec<PendingBuild>, StoreError> {
    let device: Device = serde_json::from_str(doc).map_err(|_| StoreError::ChannelCorrupt {
        channel: channel.to_owned(),
        device: Some(device_id.to_owned()),
    })?;
    Ok(device
        .builds
        .into_iter()
        .filter_map(|build| match build.state {
            BuildState::Pending { request_hash } => Some(PendingBuild {
                channel: channel.to_owned(),
                device: device_id.to_owned(),
                number: build.number,
                request_hash,
            }),
            BuildState::Ready | BuildState::Failed { .. } => None,
        })
        .collect())
}

/// A stored revision or counter (never negative) as `u64`.
pub(crate) fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A revision as the databases store it.
pub(crate) fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
