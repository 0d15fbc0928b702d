// Included by `agent/build.rs` and `ubus-bridge/build.rs`; the why is in `agent/build.rs`.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

/// Discards the unwind tables and keeps the default layout for everything else (`INSERT`).
const DISCARD_UNWIND_TABLES: &str = "\
SECTIONS
{
  /DISCARD/ : { *(.eh_frame) *(.eh_frame_hdr) }
}
INSERT AFTER .text;
";

/// Passes lld a script that discards `.eh_frame` when building a musl binary with lld.
fn discard_unwind_tables() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=RUSTC_LINKER");
    if !musl_with_lld() {
        return Ok(());
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or("cargo did not set OUT_DIR")?);
    let script = out_dir.join("discard-unwind-tables.ld");
    fs::write(&script, DISCARD_UNWIND_TABLES)?;
    // lld reads a linker script given as an input file; with `INSERT` it augments the default
    // layout instead of replacing it.
    println!("cargo::rustc-link-arg-bins={}", script.display());
    Ok(())
}

/// Has lld fold functions whose machine code is identical into one (`--icf=all`) when it links
/// a musl binary.
fn fold_identical_code() {
    if musl_with_lld() {
        println!("cargo::rustc-link-arg-bins=--icf=all");
    }
}

/// Whether the binary is linked for musl by lld, the only pairing the link settings here are
/// made for.
fn musl_with_lld() -> bool {
    let musl = env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|target_env| target_env == "musl");
    // Cargo passes the configured linker (`target.<triple>.linker`) to build scripts.
    let lld = env::var_os("RUSTC_LINKER").is_some_and(|linker| is_lld(Path::new(&linker)));
    musl && lld
}

/// `rust-lld`, `ld.lld`, `lld`, … (not `ld`, `cc` or `gcc`).
fn is_lld(linker: &Path) -> bool {
    linker
        .file_name()
        .and_then(OsStr::to_str)
        .is_some_and(|name| name.contains("lld"))
}
