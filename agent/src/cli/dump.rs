//! `attendant dump`: every device fact and setting as one JSON document.
//!
//! JSON `data` (and the text output): `{"device": {...}, "settings": {...}, "packages":
//! {"all": {name: version}, "top_level": {name: version}}}`; the `packages` shape is
//! `rpc-sys packagelist`'s.

use serde_json::json;

use crate::cli::{Outcome, command, settings, to_data};
use crate::engine::Engine;
use crate::exit::ExitStatus;
use crate::output::Output;

command! {
    /// Print every device fact, setting and installed package as JSON.
    #[argh(
        subcommand,
        name = "dump",
        example = "attendant dump",
        example = "attendant dump --root /mnt/router-image",
        note = "Reads only local files; nothing is sent to the server."
    )]
    pub(crate) struct DumpCommand {}
    groups: [common]
}

pub(super) fn run(cmd: DumpCommand, out: &mut Output) -> Outcome {
    let settings = settings(&cmd.root, None, None)?;
    let engine = Engine::new(&cmd.root, settings);
    let device = engine.device()?;
    let s = engine.settings();
    let data = json!({
        "device": to_data(&device),
        "settings": {
            "server": s.server,
            "rebuilders": s.rebuilders,
            "keep_settings": s.keep_settings,
            "require_signature": s.require_signature,
            "keys_dir": s.keys_dir,
            "image": s.image,
            "poll_interval": s.poll_interval_ms,
            "timeout": s.timeout_s,
            "metadata_timeout": s.metadata_timeout_s,
            "min_download_rate": s.min_download_rate,
            "min_download_rate_window": s.min_download_rate_window_s,
            "download_reserve": s.download_reserve_kib,
        },
        "packages": {
            "all": device.packages.packagelist(true),
            "top_level": device.packages.packagelist(false),
        },
    });
    if !out.is_json() {
        out.data(&serde_json::to_string_pretty(&data).unwrap_or_default())?;
    }
    Ok((ExitStatus::Success, data))
}
