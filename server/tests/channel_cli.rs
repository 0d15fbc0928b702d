//! `attendant-server channel ...` driven as an operator would: the real binary, a fresh data
//! directory and SQLite database per test, the fixture mirror and ImageBuilder as upstream.
//! Every operation and its refusals, exit codes (0 done, 1 refused, 2 usage), `--dry-run`,
//! `--json`, the audit log, and a real build whose image carries `/etc/attendant/channel.json`.

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test code: a panic is a failed test"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use attendant_e2e::mirror::{DEFAULT_SEED, MirrorInfo};
use attendant_e2e::workspace;
use attendant_server::store::{SqliteStore, Store};
use serde_json::Value;

const DEVICE: &str = "ath79/generic/tplink_archer-c7-v5";

/// A data directory, its configuration and the fixture mirror.
struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
    mirror: MirrorInfo,
}

fn mirror() -> MirrorInfo {
    workspace::fixture(DEFAULT_SEED).unwrap()
}

impl Env {
    fn new() -> Self {
        let mirror = mirror();
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key-build");
        let keygen = Command::new(env!("CARGO_BIN_EXE_attendant-server"))
            .args(["keygen", "-s"])
            .arg(&key)
            .env_remove("ATTENDANT_CONFIG")
            .output()
            .unwrap();
        assert!(keygen.status.success(), "{keygen:?}");
        let config = dir.path().join("attendant.toml");
        let text = format!(
            "data_dir = {data:?}\nupstream_url = {upstream:?}\ntrusted_keys = [{trusted:?}]\n\
             signing_key = {key:?}\nworkers = 1\njob_lease = \"2s\"\nallow_defaults = true\n\n\
             [channels]\npublic_url = \"https://upgrade.example.org\"\n",
            data = dir.path().join("data"),
            upstream = mirror.root,
            trusted = mirror.public_key,
        );
        std::fs::write(&config, text).unwrap();
        Self {
            dir,
            config,
            mirror,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_attendant-server"))
            .arg("--config")
            .arg(&self.config)
            .arg("channel")
            .args(args)
            .env_remove("ATTENDANT_CONFIG")
            .env("USER", "alice")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    }

    /// Runs and expects exit code `code`; returns stdout.
    fn expect(&self, code: i32, args: &[&str]) -> String {
        let output = self.run(args);
        assert_eq!(
            output.status.code(),
            Some(code),
            "`attendant-server channel {}` in {}\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            self.dir.path().display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        self.expect(0, args)
    }

    /// Runs, expects exit code 1, returns stderr.
    fn refused(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert_eq!(
            output.status.code(),
            Some(1),
            "`{}` was not refused\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stderr).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    fn image(&self, version: &str, profile: &str, kind: &str) -> PathBuf {
        self.mirror
            .target_dir(version, "ath79/generic")
            .join(format!(
                "openwrt-{version}-ath79-generic-{profile}-squashfs-{kind}.bin"
            ))
    }

    fn import(&self, channel: &str, version: &str) {
        let image = self.image(version, "tplink_archer-c7-v5", "sysupgrade");
        self.ok(&[
            "build",
            channel,
            DEVICE,
            "--file",
            image.to_str().unwrap(),
            "--version",
            version,
        ]);
    }

    fn builds(&self, channel: &str) -> Vec<u64> {
        let device = self.json(&["images", channel, DEVICE, "--json"]);
        device["builds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["number"].as_u64().unwrap())
            .collect()
    }

    async fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.dir.path().join("data/attendant.sqlite"))
            .await
            .unwrap()
    }

    fn pool(&self) -> PathBuf {
        self.dir.path().join("data/channels/pool")
    }
}

fn stable_with_device(env: &Env) {
    env.ok(&["create", "stable"]);
    env.ok(&["device", "add", "stable", DEVICE]);
}

#[test]
fn create_list_hide_show_remove() {
    let env = Env::new();
    let out = env.ok(&["create", "stable", "--fullcount", "3"]);
    assert_eq!(
        out,
        "create channel `stable` (manual, versionbase 1, fullcount 3)\n"
    );
    env.ok(&["device", "add", "stable", DEVICE]);
    env.ok(&["create", "lab/canary", "--like", "stable", "--auto"]);
    env.ok(&["hide", "lab/canary"]);
    assert_eq!(
        env.ok(&["list"]),
        "lab/canary\tauto\t1 devices\t(hidden)\nstable\tmanual\t1 devices\n"
    );
    let list = env.json(&["list", "--json"]);
    assert_eq!(list[0]["name"], "lab/canary");
    assert_eq!(list[0]["hidden"], true);
    assert_eq!(list[0]["fullcount"], 3);
    assert_eq!(list[0]["devices"][0], DEVICE);
    env.ok(&["show", "lab/canary"]);
    assert_eq!(env.json(&["list", "--json"])[0]["hidden"], false);
    env.ok(&["remove", "lab/canary"]);
    assert_eq!(env.ok(&["list"]), "stable\tmanual\t1 devices\n");
}

#[test]
fn refusals_exit_1_with_the_rule_and_usage_errors_exit_2() {
    let env = Env::new();
    assert_eq!(
        env.refused(&["create", "Stable"]),
        "error: channel name `Stable` is not allowed: it must start with `a-z` or `0-9`\n"
    );
    assert_eq!(
        env.refused(&["hide", "missing"]),
        "error: there is no channel `missing`\n\nhint: list the channels with \
         `attendant-server channel list`, or create it with `attendant-server channel create missing`\n"
    );
    env.ok(&["create", "stable"]);
    assert_eq!(
        env.refused(&["create", "stable"]),
        "error: channel `stable` exists already\n"
    );
    let usage = env.run(&["phase", "stable"]);
    assert_eq!(usage.status.code(), Some(2));
    let usage = env.run(&["frobnicate"]);
    assert_eq!(usage.status.code(), Some(2));
}

#[tokio::test]
async fn dry_run_commits_nothing_and_every_change_is_audited() {
    let env = Env::new();
    let planned = env.json(&["create", "stable", "--dry-run", "--json"]);
    assert_eq!(planned["operation"], "create");
    assert_eq!(planned["committed"], false);
    assert_eq!(planned["changes"]["stable"]["before"], Value::Null);
    assert_eq!(planned["changes"]["stable"]["after"]["name"], "stable");
    assert_eq!(env.ok(&["list"]), "");
    let store = env.store().await;
    assert!(store.channels().audit_log(0, 10).await.unwrap().is_empty());

    let done = env.json(&["create", "stable", "--json"]);
    assert_eq!(done["committed"], true);
    env.ok(&["hide", "stable"]);
    let log = store.channels().audit_log(0, 10).await.unwrap();
    let operations: Vec<&str> = log.iter().map(|r| r.entry.operation.as_str()).collect();
    assert_eq!(operations, ["create", "hide"]);
    assert_eq!(log[1].entry.actor, "cli:alice");
    let before: Value = serde_json::from_str(&log[1].entry.before).unwrap();
    let after: Value = serde_json::from_str(&log[1].entry.after).unwrap();
    assert_eq!(before["stable"]["hidden"], false);
    assert_eq!(after["stable"]["hidden"], true);
}

#[test]
fn device_ids_are_checked_and_board_names_resolve() {
    let env = Env::new();
    env.ok(&["create", "stable"]);
    let out = env.ok(&[
        "device",
        "add",
        "stable",
        "ath79/generic/tplink,archer-c7-v5",
    ]);
    assert_eq!(out, format!("add device `{DEVICE}` to channel `stable`\n"));
    assert_eq!(
        env.json(&["list", "--json"])[0]["devices"][0],
        DEVICE,
        "the board name resolved to the profile id"
    );
    let refused = env.refused(&["device", "add", "stable", "ath79/generic/no-such-router"]);
    assert!(
        refused.starts_with("error: device `ath79/generic/no-such-router` is unknown: OpenWrt "),
        "{refused}"
    );
    let refused = env.refused(&["device", "add", "stable", "ath79/generic"]);
    assert!(
        refused.contains("is not `target/subtarget/profile`"),
        "{refused}"
    );
    env.ok(&["device", "remove", "stable", DEVICE]);
    env.refused(&["device", "remove", "stable", DEVICE]);
}

#[test]
fn import_checks_the_image_against_the_device() {
    let env = Env::new();
    stable_with_device(&env);
    env.import("stable", "24.10.5");
    let device = env.json(&["images", "stable", DEVICE, "--json"]);
    let build = &device["builds"][0];
    assert_eq!(build["number"], 1);
    assert_eq!(build["state"]["state"], "ready");
    let image = &build["images"][0];
    assert_eq!(image["image_type"], "sysupgrade");
    assert_eq!(image["filesystem"], "squashfs");
    let sha256 = image["sha256"].as_str().unwrap();
    let name = image["name"].as_str().unwrap();
    let stored = env
        .pool()
        .join(&sha256[..2])
        .join(format!("{sha256}-{name}"));
    let original = env.image("24.10.5", "tplink_archer-c7-v5", "sysupgrade");
    assert_eq!(
        std::fs::read(&stored).unwrap(),
        std::fs::read(original).unwrap()
    );
    verify_signature(&env, &stored);

    let wrong = env.image("24.10.5", "tplink_archer-c7-v2", "sysupgrade");
    let refused = env.refused(&[
        "build",
        "stable",
        DEVICE,
        "--file",
        wrong.to_str().unwrap(),
        "--version",
        "24.10.5",
    ]);
    assert!(
        refused.contains(&format!("not for `{DEVICE}`")),
        "{refused}"
    );
    assert_eq!(env.builds("stable"), [1]);
}

/// The pool file's `.sig` verifies with signify against the server's key.
fn verify_signature(env: &Env, file: &Path) {
    let output = Command::new("signify-openbsd")
        .args(["-V", "-q", "-p"])
        .arg(env.dir.path().join("key-build.pub"))
        .arg("-x")
        .arg(format!("{}.sig", file.display()))
        .arg("-m")
        .arg(file)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn phase_tag_copy_and_remove_build() {
    let env = Env::new();
    stable_with_device(&env);
    env.ok(&["create", "testing", "--like", "stable"]);
    env.import("stable", "24.10.4");
    env.import("stable", "24.10.5");
    assert_eq!(env.ok(&["phase", "stable", DEVICE, "2"]), "100\n");
    env.ok(&["phase", "stable", DEVICE, "2", "25"]);
    assert_eq!(env.ok(&["phase", "stable", DEVICE, "2"]), "25\n");
    assert_eq!(
        env.json(&["phase", "stable", DEVICE, "2", "--json"])["phased_percentage"],
        25
    );
    let refused = env.refused(&["phase", "stable", DEVICE, "1", "50"]);
    assert!(
        refused.contains("is not the latest (the latest is 2)"),
        "{refused}"
    );
    let refused = env.refused(&["phase", "stable", DEVICE, "2", "101"]);
    assert!(refused.contains("out of range"), "{refused}");

    env.ok(&["tag", "stable", DEVICE, "2", "Q4"]);
    let device = env.json(&["images", "stable", DEVICE, "--json"]);
    let tagged = &device["builds"][2];
    assert_eq!(tagged["number"], 3);
    assert_eq!(tagged["phased_percentage"], 25);
    assert!(
        tagged["version_detail"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(["tag", "Q4"]))
    );
    env.refused(&["tag", "stable", DEVICE, "2", "Q5"]);
    env.refused(&["tag", "stable", DEVICE, "3", "bad,tag"]);

    // Promotion, then the same build again is "already latest".
    env.ok(&["copy", "stable", DEVICE, "3", "testing"]);
    assert_eq!(env.builds("testing"), [1]);
    let refused = env.refused(&["copy", "stable", DEVICE, "3", "testing"]);
    assert!(refused.contains("nothing to copy"), "{refused}");
    // Revert: build 1 comes back as the newest number.
    env.ok(&["copy", "stable", DEVICE, "1", "stable"]);
    assert_eq!(env.builds("stable"), [1, 2, 3, 4]);

    env.ok(&["remove-build", "stable", DEVICE, "2"]);
    assert_eq!(env.builds("stable"), [1, 3, 4]);
    env.refused(&["remove-build", "stable", DEVICE, "2"]);
    env.import("stable", "24.10.5");
    assert_eq!(
        env.builds("stable"),
        [1, 3, 4, 5],
        "numbers are never reused"
    );
}

#[test]
fn stepping_stone_and_fullcount() {
    let env = Env::new();
    env.ok(&["create", "stable", "--fullcount", "1"]);
    env.ok(&["device", "add", "stable", DEVICE]);
    env.import("stable", "24.10.4");
    let image = env.image("24.10.5", "tplink_archer-c7-v5", "sysupgrade");
    env.ok(&[
        "build",
        "stable",
        DEVICE,
        "--file",
        image.to_str().unwrap(),
        "--version",
        "24.10.5",
        "--minversion",
        "1",
    ]);
    // Build 1 is build 2's stepping stone: fullcount 1 keeps it, remove-build refuses it.
    assert_eq!(env.builds("stable"), [1, 2]);
    let refused = env.refused(&["remove-build", "stable", DEVICE, "1"]);
    assert!(
        refused.contains("is the stepping stone to build 2 (its minversion is 1)"),
        "{refused}"
    );
    env.import("stable", "24.10.5");
    assert_eq!(
        env.builds("stable"),
        [3],
        "a build without minversion frees the others"
    );
}

#[test]
fn rename_alias_and_redirect() {
    let env = Env::new();
    stable_with_device(&env);
    env.import("stable", "24.10.5");
    env.ok(&["alias", "daily", "stable"]);
    assert_eq!(env.builds("daily"), [1]);
    env.import("stable", "24.10.5");
    assert_eq!(env.builds("daily"), [1, 2], "the alias follows its target");
    let refused = env.refused(&["phase", "daily", DEVICE, "2", "10"]);
    assert!(refused.contains("is an alias of `stable`"), "{refused}");

    env.ok(&["rename", "stable", "release"]);
    let list = env.ok(&["list"]);
    assert_eq!(
        list,
        "daily\tmanual\t1 devices\talias of release\n\
         release\tmanual\t1 devices\n\
         stable\tmanual\t1 devices\tredirect to release\t(hidden)\n"
    );
    env.ok(&["create", "lab"]);
    env.ok(&["redirect", "lab", "release", "--device", DEVICE]);
    let device = env.json(&["images", "lab", DEVICE, "--json"]);
    assert_eq!(device["redirect"], "release");
    env.ok(&["redirect", "old", "release"]);
    assert!(
        env.ok(&["list"])
            .contains("old\tmanual\t1 devices\tredirect to release\t(hidden)")
    );
    let refused = env.refused(&["remove", "release"]);
    assert!(refused.contains("is still the target of"), "{refused}");
}

#[test]
fn build_waits_and_the_image_carries_its_stamp() {
    let env = Env::new();
    stable_with_device(&env);
    let output = env.run(&["build", "stable", DEVICE, "--version", "24.10.5"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("`stable` `{DEVICE}` build 1 is ready")),
        "{stderr}"
    );
    let device = env.json(&["images", "stable", DEVICE, "--json"]);
    let build = &device["builds"][0];
    assert_eq!(build["state"]["state"], "ready");
    assert_eq!(build["embeds_stamp"], true);
    assert!(!build["version_code"].as_str().unwrap().is_empty());
    let images = build["images"].as_array().unwrap();
    assert!(!images.is_empty());
    let sysupgrade = images
        .iter()
        .find(|image| image["image_type"] == "sysupgrade")
        .unwrap();
    let sha256 = sysupgrade["sha256"].as_str().unwrap();
    let stored = env
        .pool()
        .join(&sha256[..2])
        .join(format!("{sha256}-{}", sysupgrade["name"].as_str().unwrap()));
    verify_signature(&env, &stored);
    let bytes = std::fs::read(&stored).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("/etc/attendant/channel.json"), "{text}");
    let stamp = format!(
        r#"{{"channel":"stable","device":"{DEVICE}","build":1,"version_detail":"openwrt=24.10.5","server":"https://upgrade.example.org"}}"#
    );
    assert!(text.contains(&stamp), "{text}");

    // The alias's copy embeds its own stamp: it is rebuilt, and the CLI waits for it.
    let output = env.run(&["alias", "daily", "stable"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("`daily` `{DEVICE}` build 1 is ready")),
        "{stderr}"
    );
    let device = env.json(&["images", "daily", DEVICE, "--json"]);
    let image = &device["builds"][0]["images"][0];
    let sha256 = image["sha256"].as_str().unwrap();
    let stored = env
        .pool()
        .join(&sha256[..2])
        .join(format!("{sha256}-{}", image["name"].as_str().unwrap()));
    let text = String::from_utf8_lossy(&std::fs::read(&stored).unwrap()).into_owned();
    assert!(
        text.contains(r#"{"channel":"daily","channel_target":"stable","device":"#),
        "{text}"
    );

    // `--no-wait` returns at once with the build pending.
    env.ok(&[
        "build",
        "stable",
        DEVICE,
        "--version",
        "24.10.4",
        "--no-wait",
    ]);
    let device = env.json(&["images", "stable", DEVICE, "--json"]);
    assert_eq!(device["builds"][1]["state"]["state"], "pending");

    // Renamed while that build is queued: it lands under the new name, stamped with it (and
    // the alias's copy names the new target).
    let output = env.run(&["rename", "stable", "release"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("`release` `{DEVICE}` build 2 is ready")),
        "{stderr}"
    );
    let stamp_of = |channel: &str| {
        let device = env.json(&["images", channel, DEVICE, "--json"]);
        let build = &device["builds"][1];
        assert_eq!(build["number"], 2);
        assert_eq!(build["state"]["state"], "ready", "{build}");
        let image = &build["images"][0];
        let sha256 = image["sha256"].as_str().unwrap();
        let stored = env
            .pool()
            .join(&sha256[..2])
            .join(format!("{sha256}-{}", image["name"].as_str().unwrap()));
        String::from_utf8_lossy(&std::fs::read(&stored).unwrap()).into_owned()
    };
    let text = stamp_of("release");
    assert!(
        text.contains(&format!(
            r#"{{"channel":"release","device":"{DEVICE}","build":2,"#
        )),
        "{text}"
    );
    assert!(!text.contains(r#"{"channel":"stable""#), "{text}");
    let text = stamp_of("daily");
    assert!(
        text.contains(r#"{"channel":"daily","channel_target":"release","device":"#),
        "{text}"
    );
}

/// Operators racing on one device: every import commits (the loser of a revision check
/// retries on a fresh tree) and the numbers are distinct and gap-free.
#[test]
fn concurrent_commands_get_distinct_build_numbers() {
    let env = Env::new();
    stable_with_device(&env);
    let image = env.image("24.10.5", "tplink_archer-c7-v5", "sysupgrade");
    let children: Vec<_> = (0..5)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_attendant-server"))
                .arg("--config")
                .arg(&env.config)
                .args(["channel", "build", "stable", DEVICE, "--file"])
                .arg(&image)
                .args(["--version", "24.10.5"])
                .env_remove("ATTENDANT_CONFIG")
                .env("RUST_LOG", "warn")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{output:?}");
    }
    assert_eq!(env.builds("stable"), [1, 2, 3, 4, 5]);
}
