//! [`ChannelStore`] on PostgreSQL: the same statements as on SQLite in PostgreSQL's dialect.
//! Every write checks the revision in its own `WHERE` (or `ON CONFLICT DO NOTHING` for a new
//! channel), so under READ COMMITTED a concurrent writer is caught by the row count: the second
//! `UPDATE` waits for the first one's row lock and then no longer matches.

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;
use sqlx::Row;
use sqlx::postgres::PgConnection;

use super::PostgresStore;
use crate::channels::model::Channel;
use crate::store::channel_store::{
    AuditEntry, AuditRecord, ChannelStore, ChannelWrite, MAX_AUDIT_PAGE, MAX_POOL_DOWNLOADS_QUERY,
    PendingBuild, PoolDownloads, SERIAL_KEY, Snapshot, TREE_REVISION_KEY, TreeChange,
    decode_channel, encode_channel, encode_device, pending_count, pending_of, signed, unsigned,
};
use crate::store::{ImageDownloads, StoreError, UnixMillis};

impl ChannelStore for PostgresStore {
    fn snapshot(&self) -> BoxFuture<'_, Result<Snapshot, StoreError>> {
        Box::pin(async move {
            // One read transaction, so channels and devices come from the same moment.
            let mut tx = self.pool.begin().await?;
            let read = read_snapshot(&mut tx).await;
            tx.rollback().await?;
            read
        })
    }

    fn load_channel<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Channel>, StoreError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let read = read_channel(&mut tx, name).await;
            tx.rollback().await?;
            read
        })
    }

    fn commit<'a>(
        &'a self,
        change: &'a TreeChange,
        audit: &'a AuditEntry,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let written = write_change(&mut tx, change, audit).await;
            match written {
                Ok(()) => Ok(tx.commit().await?),
                Err(error) => {
                    tx.rollback().await?;
                    Err(error)
                }
            }
        })
    }

    fn next_serial(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query(
                "INSERT INTO channel_state (key, value) VALUES ($1, 1)
                 ON CONFLICT (key) DO UPDATE SET value = channel_state.value + 1
                 RETURNING value",
            )
            .bind(SERIAL_KEY)
            .fetch_one(&self.pool)
            .await?;
            Ok(unsigned(row.try_get(0)?))
        })
    }

    fn current_serial(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT value FROM channel_state WHERE key = $1")
                .bind(SERIAL_KEY)
                .fetch_optional(&self.pool)
                .await?;
            Ok(row
                .map(|row| row.try_get(0))
                .transpose()?
                .map_or(0, unsigned))
        })
    }

    fn counter<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT value FROM channel_state WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
            Ok(row
                .map(|row| row.try_get(0))
                .transpose()?
                .map_or(0, unsigned))
        })
    }

    fn raise_counter<'a>(
        &'a self,
        key: &'a str,
        value: u64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query(
                "INSERT INTO channel_state (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = GREATEST(channel_state.value, excluded.value)
                 RETURNING value",
            )
            .bind(key)
            .bind(signed(value))
            .fetch_one(&self.pool)
            .await?;
            Ok(unsigned(row.try_get(0)?))
        })
    }

    fn add_pool_downloads<'a>(
        &'a self,
        downloads: &'a [ImageDownloads],
        now: UnixMillis,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            for download in downloads {
                sqlx::query(
                    "INSERT INTO channel_downloads (sha256, name, count, last_at)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (sha256, name) DO UPDATE
                       SET count = channel_downloads.count + excluded.count,
                           last_at = excluded.last_at",
                )
                .bind(&download.request_hash)
                .bind(&download.image)
                .bind(signed(download.count))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn pool_downloads<'a>(
        &'a self,
        sha256: &'a [String],
    ) -> BoxFuture<'a, Result<PoolDownloads, StoreError>> {
        Box::pin(async move {
            if sha256.is_empty() {
                return Ok(BTreeMap::new());
            }
            let rows = sqlx::query(
                "SELECT sha256, name, count FROM channel_downloads WHERE sha256 = ANY($1)",
            )
            .bind(sha256.get(..MAX_POOL_DOWNLOADS_QUERY).unwrap_or(sha256))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok((
                        (row.try_get(0)?, row.try_get(1)?),
                        unsigned(row.try_get(2)?),
                    ))
                })
                .collect()
        })
    }

    fn try_lock<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        ttl_ms: i64,
        now: UnixMillis,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let done = sqlx::query(
                "INSERT INTO channel_locks (name, holder, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,
                   expires_at = excluded.expires_at
                 WHERE channel_locks.expires_at <= $4 OR channel_locks.holder = excluded.holder",
            )
            .bind(name)
            .bind(holder)
            .bind(now.saturating_add(ttl_ms))
            .bind(now)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn unlock<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM channel_locks WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn pending_builds(&self) -> BoxFuture<'_, Result<Vec<PendingBuild>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT channel, device, doc FROM channel_devices WHERE pending > 0
                 ORDER BY channel, device",
            )
            .fetch_all(&self.pool)
            .await?;
            let mut pending = Vec::new();
            for row in rows {
                let (channel, device, doc): (String, String, String) =
                    (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
                pending.extend(pending_of(&channel, &device, &doc)?);
            }
            Ok(pending)
        })
    }

    fn audit_log(
        &self,
        after: i64,
        limit: u32,
    ) -> BoxFuture<'_, Result<Vec<AuditRecord>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT id, at_ms, actor, operation, target, before, after FROM channel_audit
                 WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .bind(after)
            .bind(i64::from(limit.min(MAX_AUDIT_PAGE)))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(AuditRecord {
                        id: row.try_get(0)?,
                        entry: AuditEntry {
                            at_ms: row.try_get(1)?,
                            actor: row.try_get(2)?,
                            operation: row.try_get(3)?,
                            target: row.try_get(4)?,
                            before: row.try_get(5)?,
                            after: row.try_get(6)?,
                        },
                    })
                })
                .collect()
        })
    }
}

async fn read_snapshot(conn: &mut PgConnection) -> Result<Snapshot, StoreError> {
    let channel_rows = sqlx::query("SELECT name, doc, revision FROM channels ORDER BY name")
        .fetch_all(&mut *conn)
        .await?;
    let device_rows =
        sqlx::query("SELECT channel, device, doc, revision FROM channel_devices ORDER BY channel")
            .fetch_all(&mut *conn)
            .await?;
    let mut devices: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut snapshot = Snapshot::default();
    for row in device_rows {
        let (channel, device, doc, revision): (String, String, String, i64) = (
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
        );
        snapshot
            .device_revisions
            .insert((channel.clone(), device.clone()), unsigned(revision));
        devices.entry(channel).or_default().push((device, doc));
    }
    for row in channel_rows {
        let (name, doc, revision): (String, String, i64) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        let channel = decode_channel(&name, &doc, devices.remove(&name).unwrap_or_default())?;
        snapshot.revisions.insert(name.clone(), unsigned(revision));
        snapshot.channels.insert(name, channel);
    }
    Ok(snapshot)
}

async fn read_channel(conn: &mut PgConnection, name: &str) -> Result<Option<Channel>, StoreError> {
    let Some(row) = sqlx::query("SELECT doc FROM channels WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let doc: String = row.try_get(0)?;
    let rows = sqlx::query("SELECT device, doc FROM channel_devices WHERE channel = $1")
        .bind(name)
        .fetch_all(&mut *conn)
        .await?;
    let devices = rows
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<Vec<(String, String)>, sqlx::Error>>()?;
    decode_channel(name, &doc, devices).map(Some)
}

async fn write_change(
    conn: &mut PgConnection,
    change: &TreeChange,
    audit: &AuditEntry,
) -> Result<(), StoreError> {
    for write in &change.writes {
        write_channel(conn, write).await?;
    }
    sqlx::query(
        "INSERT INTO channel_audit (at_ms, actor, operation, target, before, after)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(audit.at_ms)
    .bind(&audit.actor)
    .bind(&audit.operation)
    .bind(&audit.target)
    .bind(&audit.before)
    .bind(&audit.after)
    .execute(&mut *conn)
    .await?;
    // In the same transaction: a reader that sees the counter move sees the change.
    sqlx::query(
        "INSERT INTO channel_state (key, value) VALUES ($1, 1)
         ON CONFLICT (key) DO UPDATE SET value = channel_state.value + 1",
    )
    .bind(TREE_REVISION_KEY)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn write_channel(conn: &mut PgConnection, write: &ChannelWrite) -> Result<(), StoreError> {
    // Each statement checks the revision itself, so a concurrent writer is caught by the row
    // count and never by a read that could be stale.
    let rows = match (write.expected_revision, &write.after) {
        (None, None) => return Ok(()),
        (None, Some(channel)) => sqlx::query(
            "INSERT INTO channels (name, doc, revision) VALUES ($1, $2, 1)
                 ON CONFLICT (name) DO NOTHING",
        )
        .bind(&write.name)
        .bind(encode_channel(channel)?)
        .execute(&mut *conn)
        .await?
        .rows_affected(),
        (Some(revision), Some(channel)) => sqlx::query(
            "UPDATE channels SET doc = $2, revision = revision + 1
                 WHERE name = $1 AND revision = $3",
        )
        .bind(&write.name)
        .bind(encode_channel(channel)?)
        .bind(signed(revision))
        .execute(&mut *conn)
        .await?
        .rows_affected(),
        (Some(revision), None) => {
            sqlx::query("DELETE FROM channel_devices WHERE channel = $1")
                .bind(&write.name)
                .execute(&mut *conn)
                .await?;
            sqlx::query("DELETE FROM channels WHERE name = $1 AND revision = $2")
                .bind(&write.name)
                .bind(signed(revision))
                .execute(&mut *conn)
                .await?
                .rows_affected()
        }
    };
    if rows != 1 {
        return Err(StoreError::ChannelConflict {
            channel: write.name.clone(),
        });
    }
    let Some(channel) = &write.after else {
        return Ok(());
    };
    for gone in &write.removed_devices {
        sqlx::query("DELETE FROM channel_devices WHERE channel = $1 AND device = $2")
            .bind(&write.name)
            .bind(gone)
            .execute(&mut *conn)
            .await?;
    }
    for id in &write.changed_devices {
        let Some(device) = channel.devices.get(id) else {
            continue;
        };
        sqlx::query(
            "INSERT INTO channel_devices (channel, device, doc, revision, pending)
             VALUES ($1, $2, $3, 1, $4)
             ON CONFLICT (channel, device) DO UPDATE SET doc = excluded.doc,
               pending = excluded.pending, revision = channel_devices.revision + 1",
        )
        .bind(&write.name)
        .bind(id)
        .bind(encode_device(&write.name, device)?)
        .bind(pending_count(device))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
