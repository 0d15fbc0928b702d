//! `attendant-server check-config` as an operator runs it before a restart: a usable
//! configuration is summarised and passes; every problem with the files it names is listed at
//! once; a key that breaks the rules stops loading with the key's name.

#![expect(clippy::unwrap_used, reason = "test helpers may unwrap")]

use std::path::Path;
use std::process::{Command, Output};

fn check_config(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_attendant-server"))
        .arg("check-config")
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("ATTENDANT_CONFIG")
        .output()
        .unwrap()
}

fn keygen(secret: &Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_attendant-server"))
        .args(["keygen", "-s"])
        .arg(secret)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn a_usable_configuration_is_summarised_and_passes() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = dir.path().join("mirror");
    std::fs::create_dir_all(&upstream).unwrap();
    std::fs::write(upstream.join(".versions.json"), "{}").unwrap();
    let key = dir.path().join("key-build");
    keygen(&key);
    let config = dir.path().join("attendant.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\nupstream_url = {upstream:?}\nsigning_key = {key:?}\n\
             database_url = \"postgres://attendant:s3cret@db.example:5432/attendant\"\n",
            data = dir.path().join("data"),
            upstream = upstream,
            key = key,
        ),
    )
    .unwrap();
    let output = check_config(&config, &[]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.ends_with("\nconfiguration OK\n"), "{stdout}");
    assert!(
        stdout.contains(&format!("{} (key ", key.display())),
        "{stdout}"
    );
    assert!(stdout.contains("PostgreSQL"), "{stdout}");
    assert!(
        !stdout.contains("s3cret"),
        "the password is never printed: {stdout}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "nothing is created: {stdout}"
    );

    let json = check_config(&config, &["--json"]);
    assert!(json.status.success());
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["problems"], serde_json::json!([]));
    assert_eq!(report["cors_allowed_origins"], serde_json::json!(["*"]));
}

#[test]
fn every_problem_with_the_named_files_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pub");
    std::fs::write(&garbage, "not a key\n").unwrap();
    let config = dir.path().join("attendant.toml");
    std::fs::write(
        &config,
        format!(
            "upstream_url = {upstream:?}\nsigning_key = {key:?}\ntrusted_keys = [{garbage:?}]\n",
            upstream = dir.path().join("no-such-mirror"),
            key = dir.path().join("no-such-key"),
            garbage = garbage,
        ),
    )
    .unwrap();
    let output = check_config(&config, &[]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("\n3 problem(s):\n"), "{stdout}");
    assert!(stdout.contains("  - signing_key: "), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "  - trusted_keys: trusted key `{}` is not a usign public key",
            garbage.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("  - upstream_url: ") && stdout.contains("is not a directory"),
        "{stdout}"
    );
}

#[test]
fn a_broken_rule_stops_loading_with_the_keys_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("attendant.toml");
    std::fs::write(&config, "job_lease = \"1s\"\n").unwrap();
    let output = check_config(&config, &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("job_lease"), "{stderr}");
}
