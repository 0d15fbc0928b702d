//! Fetching a channel build's published image: the next build on the winning upgrade path,
//! downloaded from the server's channel pool (size and SHA-256 from the signed index, the usign
//! `.sig` beside the file), then checked as every image is (SHA-256, signature against the
//! trusted keys, fwtool trailer and compatibility) before `install` may flash it.
//!
//! A path with several hops flashes its first build now; after the reboot `attendant upgrade`
//! plans again from the build the router then runs and goes on. The state file records the
//! image like any other download (its SHA-256 stands in for the request hash), so an
//! interrupted download resumes.

use std::path::Path;
use std::time::Duration;

use attendant_proto::channel::IndexImage;

use crate::atomic::write_atomic;
use crate::channel::{ChannelError, ChannelPlan, image_file};
use crate::download::{self, DownloadLimits};
use crate::engine::{Engine, Event, FlashOptions, MAX_SIGNATURE_FILE_LEN, signature_path};
use crate::error::Error;
use crate::facts::Device;
use crate::state::{Stage, State};
use crate::verify::{self, Expectations, Verification, VerifyError};

/// Downloads and verifies the first build of `plan`'s winning path into `path`; `None` when the
/// plan has nothing to do.
pub fn fetch(
    engine: &Engine,
    plan: &ChannelPlan,
    device: &Device,
    path: &Path,
    flash: &FlashOptions,
    on_event: &mut dyn FnMut(&Event),
) -> Result<Option<(IndexImage, Verification)>, Error> {
    let Some(hop) = plan.next_hop() else {
        return Ok(None);
    };
    let Some(file) = image_file(hop, device) else {
        return Err(ChannelError::no_image(&plan.name, hop.version, device).into());
    };
    engine.lock()?;
    let client = engine.client()?;
    let url = client.url(&file.path);
    let state_file = engine.state_file();
    let same_image = state_file.load()?.is_some_and(|s| {
        s.image_url.as_deref() == Some(url.as_str()) && s.image_path.as_deref() == Some(path)
    });
    if !same_image {
        download::remove(path)?;
        download::remove(&signature_path(path))?;
    }
    let mut state = State::new(
        client.server(),
        &file.checksum,
        &file.checksum,
        &hop.openwrt_version,
    );
    state.stage = Stage::Downloading;
    state.image_url = Some(url.clone());
    state.image_path = Some(path.to_owned());
    state.image_sha256 = Some(file.checksum.clone());
    state_file.save(&state)?;
    on_event(&Event::Note {
        message: format!(
            "downloading build {} of channel `{}` from `{url}` to `{}`",
            hop.version,
            plan.name,
            path.display()
        ),
    });
    let settings = engine.settings();
    let limits = DownloadLimits {
        stated_len: Some(file.size),
        reserve: settings.download_reserve_kib.saturating_mul(1024),
        min_rate: settings.min_download_rate,
        rate_window: Duration::from_secs(settings.min_download_rate_window_s),
        ..DownloadLimits::new()
    };
    let downloaded = download::download(&client, &url, path, &limits, &mut |bytes, total| {
        on_event(&Event::Download { bytes, total });
    })?;
    state.downloaded_bytes = downloaded.len;
    state.total_bytes = Some(downloaded.len);
    state.stage = Stage::Downloaded;
    state.touch();
    state_file.save(&state)?;

    let signature_url = client.url(&file.signature);
    let signature = client.get_optional(&signature_url, MAX_SIGNATURE_FILE_LEN)?;
    if let Some(bytes) = &signature {
        let sig_path = signature_path(path);
        write_atomic(&sig_path, bytes).map_err(|source| Error::Write {
            path: sig_path.clone(),
            source,
        })?;
    }
    let keyring = engine.keyring()?;
    let revoked = engine.revocations()?;
    let compat = device.compat();
    let expectations = Expectations {
        sha256: Some(file.checksum.as_str()),
        // The signed index names the file as published, signature block and all.
        sha256_unsigned: None,
        signature: signature.as_deref(),
        keyring: &keyring,
        revoked: &revoked,
        now: crate::engine::unix_now(),
        // Channel images are always signed by the server: an unsigned one is not the
        // published image.
        require_signature: true,
        device: &compat,
        keep_settings: flash.keep_settings,
        force_flash: flash.force_flash,
    };
    let verification = match verify::verify_image(path, &expectations) {
        Err(error @ VerifyError::Sha256Mismatch { .. }) => {
            download::remove(path)?;
            download::remove(&signature_path(path))?;
            return Err(error.into());
        }
        result => result?,
    };
    state.verified_sha256 = Some(verification.sha256.clone());
    state.stage = Stage::Verified;
    state.touch();
    state_file.save(&state)?;
    Ok(Some((hop.clone(), verification)))
}
