//! Download counts of channel builds: every whole-file `GET` of an image file under
//! `/channels/pool/` is counted, added up in memory ([`crate::stats::DownloadCounter`], as for
//! `/store/`) and written to the `channel_downloads` table every
//! [`DOWNLOAD_FLUSH_INTERVAL`], so a download never waits for the database.
//!
//! The pool is content-addressed (`pool/<aa>/<sha256>-<name>`), and a router fetches the file an
//! index names without saying which channel it follows, so the count belongs to the file. A
//! build's `downloads` is the sum over its files; a build whose images embed its stamp has files
//! of its own, so its count is exact, while an imported image shared by several builds (an
//! alias's mirror, a promotion) shows the downloads of all of them in each.
//!
//! `channel images NAME DEVICE --json` and `GET /api/v1/admin/channels/images` show the device
//! entry with `downloads` on every build and every image ([`with_downloads`]).

use serde_json::Value;

use crate::channels::model::Device;
use crate::channels::publish::{POOL, SIGNATURE_SUFFIX};
use crate::state::{AppState, now};
use crate::stats::DOWNLOAD_FLUSH_INTERVAL;
use crate::store::StoreError;
use crate::store::channel_store::{MAX_POOL_DOWNLOADS_QUERY, PoolDownloads};

/// Counts a whole-file download of `path` (relative to the channel tree) when it is a pool
/// image, and writes the counts in the background when they are due.
pub(crate) fn count(state: &AppState, path: &str) {
    let Some((sha256, name)) = pool_file(path) else {
        return;
    };
    let full = state.channel_downloads.count(&sha256, &name);
    if full || state.channel_downloads.due(DOWNLOAD_FLUSH_INTERVAL) {
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(error) = flush(&state).await {
                tracing::warn!(error = %error, "cannot write channel download counts");
            }
        });
    }
}

/// Writes the counted downloads now; on failure they stay counted for the next flush.
pub async fn flush(state: &AppState) -> Result<(), StoreError> {
    let batch = state.channel_downloads.drain();
    if batch.is_empty() {
        return Ok(());
    }
    let written = state
        .store
        .channels()
        .add_pool_downloads(&batch, now())
        .await;
    if written.is_err() {
        state.channel_downloads.restore(batch);
    }
    written
}

/// `device` as JSON, with `downloads` on each build (the sum over its images) and each image.
pub async fn with_downloads(state: &AppState, device: &Device) -> Result<Value, StoreError> {
    let mut value = serde_json::to_value(device).map_err(|source| StoreError::ChannelEncode {
        channel: String::new(),
        source,
    })?;
    add_downloads(state, device, &mut value).await?;
    Ok(value)
}

/// Adds the `downloads` fields to `value`, the JSON of `device` (as [`with_downloads`] does),
/// for callers that annotate the entry with more than downloads.
pub async fn add_downloads(
    state: &AppState,
    device: &Device,
    value: &mut Value,
) -> Result<(), StoreError> {
    let digests: Vec<String> = device
        .builds
        .iter()
        .flat_map(|build| build.images.iter().map(|image| image.sha256.clone()))
        .take(MAX_POOL_DOWNLOADS_QUERY)
        .collect();
    let counts = state.store.channels().pool_downloads(&digests).await?;
    annotate(value, device, &counts);
    Ok(())
}

fn annotate(value: &mut Value, device: &Device, counts: &PoolDownloads) {
    let Some(builds) = value.get_mut("builds").and_then(Value::as_array_mut) else {
        return;
    };
    for (build_value, build) in builds.iter_mut().zip(&device.builds) {
        let mut total: u64 = 0;
        if let Some(images) = build_value.get_mut("images").and_then(Value::as_array_mut) {
            for (image_value, image) in images.iter_mut().zip(&build.images) {
                let count = counts
                    .get(&(image.sha256.clone(), image.name.clone()))
                    .copied()
                    .unwrap_or(0);
                total = total.saturating_add(count);
                if let Some(object) = image_value.as_object_mut() {
                    object.insert("downloads".to_owned(), count.into());
                }
            }
        }
        if let Some(object) = build_value.as_object_mut() {
            object.insert("downloads".to_owned(), total.into());
        }
    }
}

/// `(sha256, name)` of `pool/<aa>/<sha256>-<name>`; `None` for signatures and anything else.
fn pool_file(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix(POOL)?.strip_prefix('/')?;
    let (prefix, file) = rest.split_once('/')?;
    let (sha256, name) = file.split_once('-')?;
    let is_digest = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
    let plain = !name.is_empty() && !name.contains('/') && !name.ends_with(SIGNATURE_SUFFIX);
    (is_digest && plain && sha256.get(..2) == Some(prefix))
        .then(|| (sha256.to_owned(), name.to_owned()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::channels::model::{ImageFile, test_build};

    #[test]
    fn only_pool_images_are_downloads() {
        let sha = format!("ab{}", "c".repeat(62));
        assert_eq!(
            pool_file(&format!("pool/ab/{sha}-openwrt-sysupgrade.bin")),
            Some((sha.clone(), "openwrt-sysupgrade.bin".to_owned()))
        );
        assert_eq!(
            pool_file(&format!("pool/ab/{sha}-openwrt-sysupgrade.bin.sig")),
            None
        );
        assert_eq!(pool_file(&format!("pool/cd/{sha}-x.bin")), None);
        assert_eq!(pool_file(&format!("pool/ab/{sha}-")), None);
        assert_eq!(pool_file("pool/ab/short-x.bin"), None);
        assert_eq!(pool_file("channels.json"), None);
        assert_eq!(pool_file(&format!("stable/pool/ab/{sha}-x.bin")), None);
    }

    #[test]
    fn a_build_counts_the_downloads_of_its_images() {
        let image = |name: &str, sha256: &str| ImageFile {
            name: name.to_owned(),
            image_type: "sysupgrade".to_owned(),
            filesystem: "squashfs".to_owned(),
            size: 1,
            sha256: sha256.to_owned(),
        };
        let mut first = test_build(1);
        first.images = vec![image("a.bin", "aa"), image("b.bin", "bb")];
        let mut second = test_build(2);
        second.images = vec![image("c.bin", "cc")];
        let device = Device {
            builds: vec![first, second],
            last_build: 2,
            ..Device::default()
        };
        let counts = BTreeMap::from([
            (("aa".to_owned(), "a.bin".to_owned()), 3),
            (("bb".to_owned(), "b.bin".to_owned()), 4),
        ]);
        let mut value = serde_json::to_value(&device).unwrap();
        annotate(&mut value, &device, &counts);
        assert_eq!(value["builds"][0]["downloads"], 7);
        assert_eq!(value["builds"][0]["images"][1]["downloads"], 4);
        assert_eq!(value["builds"][1]["downloads"], 0);
        assert_eq!(value["builds"][1]["images"][0]["downloads"], 0);
    }
}
