//! `attendant-server gc --dry-run` as an operator runs it: it prints what a pass would delete and
//! deletes nothing; `gc` then deletes exactly that.

#![expect(clippy::unwrap_used, reason = "test helpers may unwrap")]

use std::path::Path;
use std::process::{Command, Output};

fn gc(data_dir: &Path, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_attendant-server"))
        .arg("gc")
        .args(args)
        .env_remove("ATTENDANT_CONFIG")
        .env("ATTENDANT_DATA_DIR", data_dir)
        .env("ATTENDANT_ORPHAN_GRACE", "0s")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "gc {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn dry_run_prints_what_gc_deletes_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = data.join("store");
    let orphan = store.join("ab".repeat(32));
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join("image.bin"), "x").unwrap();
    let foreign = store.join("not-ours");
    std::fs::create_dir_all(&foreign).unwrap();

    let output = gc(&data, &["--dry-run"]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        stdout,
        format!(
            "would delete unreferenced `{}`\n0 expired results, 1 unreferenced store entries\n",
            orphan.display()
        )
    );
    assert!(
        orphan.join("image.bin").is_file(),
        "a dry run deletes nothing"
    );

    let output = gc(&data, &[]);
    assert!(output.stdout.is_empty(), "{:?}", output.stdout);
    assert!(!orphan.exists());
    assert!(foreign.is_dir(), "entries that are not ours stay");
}
