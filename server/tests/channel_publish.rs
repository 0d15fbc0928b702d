//! Channel publication: the published tree as a router and a mirror see it — signatures checked
//! with `signify-openbsd`, freshness fields, the index rules (phased percentage, redirects,
//! aliases), only changed files rewritten, reaping after the grace period, and a publisher killed
//! with SIGKILL at many points that never leaves a tree a router would reject.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests stop at their first failure"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use attendant_proto::usign::{PublicKey, SecretKey, Signature};
use attendant_server::channels::model::{
    Build, BuildSource, BuildState, Channel, ChannelKind, ChannelSettings, Device, ImageFile,
    Recipe,
};
use attendant_server::channels::publish::{
    Changed, PublishOptions, PublishReport, pool_relative, publish, reap,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

#[path = "streams/sstream.rs"]
mod sstream;

const DAY: Duration = Duration::from_secs(86_400);
const NOW: i64 = 1_796_557_500; // Sun Dec 06 11:45:00 UTC 2026

struct Fixture {
    _dir: tempfile::TempDir,
    out: PathBuf,
    key: SecretKey,
    public: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("key.sec");
        attendant_server::signing::generate_key_pair(&secret, Some("channel test key")).unwrap();
        let key = attendant_server::signing::load_secret_key(&secret).unwrap();
        let out = dir.path().join("www");
        std::fs::create_dir(&out).unwrap();
        Self {
            public: dir.path().join("key.sec.pub"),
            out,
            key,
            _dir: dir,
        }
    }

    fn publish(&self, tree: &[Channel], changed: &Changed, serial: u64, now: i64) -> PublishReport {
        publish(tree, changed, &self.out, &self.key, &options(serial, now)).unwrap()
    }

    fn json(&self, url: &str) -> Value {
        serde_json::from_slice(&std::fs::read(self.file(url)).unwrap()).unwrap()
    }

    fn file(&self, url: &str) -> PathBuf {
        self.out.join(url.strip_prefix("/channels/").unwrap())
    }

    fn index_of(&self, channel: &str, device: &str) -> Value {
        let channels = self.json("/channels/channels.json");
        let url = channels["channels"][channel]["devices"][device]["index"]
            .as_str()
            .unwrap()
            .to_owned();
        self.json(&url)
    }
}

fn options(serial: u64, now: i64) -> PublishOptions {
    PublishOptions::new(serial, now, 7 * DAY, 2 * DAY)
}

/// A Ready build whose one image is put into the pool of `out` (with its signature).
fn build(out: &Path, key: &SecretKey, device: &str, number: u64, phased: u8) -> Build {
    let profile = device.rsplit('/').next().unwrap();
    let name = format!("openwrt-24.10.5-{profile}-squashfs-sysupgrade-{number}.bin");
    let content = format!("image of {device} build {number}");
    let image = ImageFile {
        name,
        image_type: "sysupgrade".to_owned(),
        filesystem: "squashfs".to_owned(),
        size: content.len() as u64,
        sha256: hex::encode(Sha256::digest(content.as_bytes())),
    };
    // As the pool does it: content-addressed, so an existing file is left alone; a new one is
    // written under a temporary name and renamed, the signature first.
    let path = out.join(pool_relative(&image));
    if !path.exists() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let signature = key.sign(content.as_bytes()).to_file();
        for (target, bytes) in [
            (format!("{}.sig", path.display()), signature.as_bytes()),
            (path.display().to_string(), content.as_bytes()),
        ] {
            let temporary = format!("{target}.partial");
            std::fs::write(&temporary, bytes).unwrap();
            std::fs::rename(&temporary, &target).unwrap();
        }
    }
    Build {
        number,
        state: BuildState::Ready,
        source: BuildSource::Imported {
            origin: "test".to_owned(),
        },
        openwrt_version: "24.10.5".to_owned(),
        version_code: "r28959-29397011cc".to_owned(),
        recipe: Recipe {
            add: vec!["luci".to_owned()],
            ..Recipe::default()
        },
        description: format!("build {number}"),
        version_detail: vec![
            ("openwrt".to_owned(), "24.10.5".to_owned()),
            ("recipe".to_owned(), number.to_string()),
        ],
        minversion: None,
        phased_percentage: phased,
        images: vec![image],
        created_at: 0,
        embeds_stamp: false,
    }
}

fn channel(name: &str, devices: BTreeMap<String, Device>) -> Channel {
    Channel {
        name: name.to_owned(),
        settings: ChannelSettings {
            kind: ChannelKind::Manual,
            versionbase: 1,
            fullcount: 0,
            rollout: Default::default(),
        },
        hidden: false,
        alias: None,
        redirect: None,
        devices,
    }
}

const C7: &str = "ath79/generic/tplink_archer-c7-v5";
const X86: &str = "x86/64/generic";

fn device(builds: Vec<Build>) -> Device {
    Device {
        last_build: builds.last().map_or(0, |build| build.number),
        builds,
        ..Device::default()
    }
}

/// `signify-openbsd -V` on a file and its `.sig`. signify opens files with `O_NOFOLLOW`, so the
/// links at the top of the tree are resolved first (a mirror fetching over HTTP never sees them).
fn signify_verify(public: &Path, file: &Path) {
    let signature = std::fs::canonicalize(format!("{}.sig", file.display())).unwrap();
    let file = std::fs::canonicalize(file).unwrap();
    let output = Command::new("signify-openbsd")
        .arg("-V")
        .arg("-q")
        .arg("-p")
        .arg(public)
        .arg("-x")
        .arg(&signature)
        .arg("-m")
        .arg(&file)
        .output()
        .expect("signify-openbsd runs (Debian package signify-openbsd)");
    assert!(
        output.status.success(),
        "signify-openbsd -V refused {}: {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn published_tree_verifies_with_signify_and_carries_freshness() {
    let fixture = Fixture::new();
    let out = &fixture.out;
    let key = &fixture.key;
    let stable = channel(
        "stable",
        BTreeMap::from([
            (
                C7.to_owned(),
                device(vec![
                    build(out, key, C7, 1, 100),
                    build(out, key, C7, 2, 100),
                ]),
            ),
            (X86.to_owned(), device(vec![build(out, key, X86, 1, 100)])),
        ]),
    );
    let report = fixture.publish(&[stable], &Changed::Unknown, 12, NOW);
    assert_eq!(report.written.len(), 2);

    signify_verify(&fixture.public, &out.join("channels.json"));
    let channels = fixture.json("/channels/channels.json");
    assert_eq!(
        channels["global"],
        serde_json::json!({
            "generated_at": "Sun Dec 06 11:45:00 UTC 2026",
            "expires": "Sun Dec 13 11:45:00 UTC 2026",
            "serial": 12
        })
    );
    let entry = &channels["channels"]["stable"]["devices"][C7];
    let index_url = entry["index"].as_str().unwrap();
    assert_eq!(
        index_url,
        "/channels/stable/ath79/generic/tplink_archer-c7-v5/index.12.json"
    );
    signify_verify(&fixture.public, &fixture.file(index_url));
    let index = fixture.json(index_url);
    assert_eq!(index["global"]["channel"], "stable");
    assert_eq!(index["global"]["device"], C7);
    assert_eq!(index["global"]["serial"], 12);
    let images = index["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    assert_eq!(images[1]["type"], "full");
    assert_eq!(images[1]["version"], 2);
    assert_eq!(images[1]["version_detail"], "openwrt=24.10.5,recipe=2");
    assert_eq!(images[1]["target"], "ath79/generic");
    assert_eq!(images[1]["profile"], "tplink_archer-c7-v5");
    assert_eq!(images[1]["recipe"], serde_json::json!({"add": ["luci"]}));
    for image in images {
        assert!(image.get("phased-percentage").is_none(), "100 % is omitted");
        for file in image["files"].as_array().unwrap() {
            let path = fixture.file(file["path"].as_str().unwrap());
            assert_eq!(
                file["signature"].as_str().unwrap(),
                format!("{}.sig", file["path"].as_str().unwrap())
            );
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(file["checksum"], hex::encode(Sha256::digest(&bytes)));
            assert_eq!(file["size"], bytes.len());
            signify_verify(&fixture.public, &path);
        }
    }
}

#[test]
fn serial_and_expiry_move_and_only_changed_indexes_are_rewritten() {
    let fixture = Fixture::new();
    let out = &fixture.out;
    let key = &fixture.key;
    let mut stable = channel(
        "stable",
        BTreeMap::from([
            (C7.to_owned(), device(vec![build(out, key, C7, 1, 100)])),
            (X86.to_owned(), device(vec![build(out, key, X86, 1, 100)])),
        ]),
    );
    fixture.publish(std::slice::from_ref(&stable), &Changed::Unknown, 1, NOW);
    let first_x86 =
        fixture.json("/channels/channels.json")["channels"]["stable"]["devices"][X86]["index"]
            .clone();

    // One device gets a build: only its index is written, the other is kept byte for byte.
    stable
        .devices
        .get_mut(C7)
        .unwrap()
        .builds
        .push(build(out, key, C7, 2, 50));
    let report = fixture.publish(
        std::slice::from_ref(&stable),
        &Changed::Unknown,
        2,
        NOW + 3600,
    );
    assert_eq!(
        report.written,
        ["/channels/stable/ath79/generic/tplink_archer-c7-v5/index.2.json"]
    );
    assert_eq!(report.kept, 1);
    let channels = fixture.json("/channels/channels.json");
    assert_eq!(channels["global"]["serial"], 2);
    assert_eq!(
        channels["global"]["generated_at"],
        "Sun Dec 06 12:45:00 UTC 2026"
    );
    // channels.json never outlives an index it references: the kept one expires first.
    assert_eq!(
        channels["global"]["expires"],
        "Sun Dec 13 11:45:00 UTC 2026"
    );
    assert_eq!(
        channels["channels"]["stable"]["devices"][X86]["index"],
        first_x86
    );
    let c7 = fixture.index_of("stable", C7);
    assert_eq!(c7["global"]["serial"], 2);
    assert_eq!(c7["global"]["expires"], "Sun Dec 13 12:45:00 UTC 2026");

    // Nothing changed, named changes only: nothing is rewritten, only channels.json.
    let report = fixture.publish(
        std::slice::from_ref(&stable),
        &Changed::Devices(BTreeSet::new()),
        3,
        NOW + 7200,
    );
    assert!(report.written.is_empty(), "{report:?}");
    assert_eq!(
        fixture.json("/channels/channels.json")["global"]["serial"],
        3
    );

    // Six days later the unchanged index is within the refresh margin: rewritten.
    let report = fixture.publish(
        std::slice::from_ref(&stable),
        &Changed::Unknown,
        4,
        NOW + 6 * 86_400,
    );
    assert_eq!(report.written.len(), 2, "{report:?}");
    let x86 = fixture.index_of("stable", X86);
    assert_eq!(x86["global"]["expires"], "Sat Dec 19 11:45:00 UTC 2026");

    // An older serial never replaces a newer tree.
    let error = publish(
        std::slice::from_ref(&stable),
        &Changed::Resign,
        &fixture.out,
        &fixture.key,
        &options(4, NOW + 7 * 86_400),
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "publication 4 is not newer than the current one (4)"
    );
}

#[test]
fn phased_percentage_only_on_the_latest_and_zero_pulls_it() {
    let fixture = Fixture::new();
    let out = &fixture.out;
    let key = &fixture.key;
    let mut failed = build(out, key, C7, 4, 100);
    failed.state = BuildState::Failed {
        reason: "make image failed".to_owned(),
    };
    let mut pending = build(out, key, C7, 5, 100);
    pending.state = BuildState::Pending {
        request_hash: "ab".repeat(32),
    };
    let stable = channel(
        "stable",
        BTreeMap::from([(
            C7.to_owned(),
            device(vec![
                build(out, key, C7, 2, 30),
                build(out, key, C7, 3, 0),
                failed,
                pending,
            ]),
        )]),
    );
    fixture.publish(&[stable], &Changed::Unknown, 1, NOW);
    let index = fixture.index_of("stable", C7);
    let images = index["images"].as_array().unwrap();
    let versions: Vec<_> = images
        .iter()
        .map(|image| image["version"].clone())
        .collect();
    assert_eq!(versions, [2, 3], "only Ready builds are published");
    assert!(images[0].get("phased-percentage").is_none());
    assert_eq!(images[1]["phased-percentage"], 0);
}

#[test]
fn aliases_redirects_and_per_device_redirects() {
    let fixture = Fixture::new();
    let out = &fixture.out;
    let key = &fixture.key;
    let stable = channel(
        "stable",
        BTreeMap::from([
            (C7.to_owned(), device(vec![build(out, key, C7, 1, 100)])),
            (X86.to_owned(), device(vec![build(out, key, X86, 1, 100)])),
        ]),
    );
    let testing = channel(
        "testing",
        BTreeMap::from([(C7.to_owned(), device(vec![build(out, key, C7, 7, 100)]))]),
    );
    let mut daily = testing.clone();
    daily.name = "daily".to_owned();
    daily.alias = Some("testing".to_owned());
    let mut old = channel("old", BTreeMap::new());
    old.redirect = Some("stable".to_owned());
    let mut canary = channel(
        "lab/canary",
        BTreeMap::from([(
            X86.to_owned(),
            Device {
                redirect: Some("stable".to_owned()),
                ..Device::default()
            },
        )]),
    );
    canary
        .devices
        .insert(C7.to_owned(), device(vec![build(out, key, C7, 1, 100)]));
    let tree = [stable, testing, daily, old, canary];
    let report = fixture.publish(&tree, &Changed::Unknown, 1, NOW);
    assert!(report.warnings.is_empty(), "{report:?}");

    let channels = fixture.json("/channels/channels.json")["channels"].clone();
    assert_eq!(channels["daily"]["alias"], "testing");
    assert_eq!(
        channels["daily"]["devices"][C7]["index"],
        "/channels/daily/ath79/generic/tplink_archer-c7-v5/index.1.json"
    );
    assert_eq!(channels["old"]["hidden"], true);
    assert_eq!(channels["old"]["redirect"], "stable");
    assert_eq!(channels["old"]["devices"], channels["stable"]["devices"]);
    assert_eq!(
        channels["lab/canary"]["devices"][X86],
        serde_json::json!({
            "index": "/channels/stable/x86/64/generic/index.1.json",
            "redirect": "stable"
        })
    );
    assert!(
        out.join("lab/canary/ath79/generic/tplink_archer-c7-v5/index.1.json")
            .is_file()
    );
    assert!(
        !out.join("old").exists(),
        "a redirect has no files of its own"
    );

    // Re-targeting the alias: its own index is rewritten with the new target's builds.
    let mut tree = tree.to_vec();
    tree[2].alias = Some("stable".to_owned());
    tree[2].devices = tree[0].devices.clone();
    fixture.publish(&tree, &Changed::Unknown, 2, NOW);
    let channels = fixture.json("/channels/channels.json")["channels"].clone();
    assert_eq!(channels["daily"]["alias"], "stable");
    let daily = fixture.index_of("daily", C7);
    assert_eq!(daily["images"][0]["version"], 1);
    assert_eq!(daily["global"]["channel"], "daily");

    // A redirect to a device the target lacks is left out and reported.
    tree[4].devices.get_mut(X86).unwrap().redirect = Some("testing".to_owned());
    let report = fixture.publish(&tree, &Changed::Unknown, 3, NOW);
    assert_eq!(
        report.warnings,
        ["lab/canary x86/64/generic redirects to `testing`, which has no such device"]
    );
}

#[test]
fn names_that_are_not_paths_are_refused() {
    let fixture = Fixture::new();
    for (name, rule) in [
        ("pool", "its first part names a file of the published tree"),
        ("a/../b", "no `..`"),
        ("Stable", "expected a channel name: lowercase letters"),
    ] {
        let error = publish(
            &[channel(name, BTreeMap::new())],
            &Changed::Unknown,
            &fixture.out,
            &fixture.key,
            &options(1, NOW),
        )
        .unwrap_err();
        assert!(error.to_string().contains(rule), "{name}: {error}");
    }
    assert!(!fixture.out.join("channels.json").exists());
}

#[test]
fn an_index_naming_a_missing_pool_file_is_not_published() {
    let fixture = Fixture::new();
    let mut missing = build(&fixture.out, &fixture.key, C7, 1, 100);
    missing.images[0].sha256 = "0".repeat(64);
    let stable = channel(
        "stable",
        BTreeMap::from([(C7.to_owned(), device(vec![missing]))]),
    );
    let error = publish(
        &[stable],
        &Changed::Unknown,
        &fixture.out,
        &fixture.key,
        &options(1, NOW),
    )
    .unwrap_err();
    assert!(
        error.to_string().starts_with("cannot find the pool file"),
        "{error}"
    );
    assert!(!fixture.out.join("channels.json").exists());
}

#[test]
fn reap_keeps_what_a_recent_reader_needs_and_removes_the_rest_after_the_grace() {
    let fixture = Fixture::new();
    let out = &fixture.out;
    let key = &fixture.key;
    let mut stable = channel(
        "stable",
        BTreeMap::from([(C7.to_owned(), device(vec![build(out, key, C7, 1, 100)]))]),
    );
    fixture.publish(std::slice::from_ref(&stable), &Changed::Unknown, 1, NOW);
    stable.devices.get_mut(C7).unwrap().builds = vec![build(out, key, C7, 2, 100)];
    fixture.publish(std::slice::from_ref(&stable), &Changed::Unknown, 2, NOW);
    let old_index = out.join("stable/ath79/generic/tplink_archer-c7-v5/index.1.json");

    // Within the grace period the old publication and its index stay.
    let report = reap(out, Duration::from_secs(3600), SystemTime::now()).unwrap();
    assert!(report.removed.is_empty(), "{report:?}");
    assert!(old_index.is_file());
    assert_eq!(report.referenced_pool.len(), 2, "{report:?}");

    // After it, both go; the current tree is untouched and what it references is reported.
    let later = SystemTime::now() + Duration::from_secs(7200);
    let report = reap(out, Duration::from_secs(3600), later).unwrap();
    assert_eq!(
        report.removed,
        [
            "meta/1",
            "stable/ath79/generic/tplink_archer-c7-v5/index.1.json",
            "stable/ath79/generic/tplink_archer-c7-v5/index.1.json.sig",
        ]
    );
    assert!(!old_index.exists());
    let current = fixture.index_of("stable", C7);
    assert_eq!(current["images"][0]["version"], 2);
    let expected = pool_relative(&stable.devices[C7].builds[0].images[0]);
    assert_eq!(report.referenced_pool, BTreeSet::from([expected]));
}

/// Checks what a router checks: every `channels.json` → index → pool file reference resolves,
/// every signature verifies, every checksum matches. Returns the serial.
fn check_consistent(out: &Path, public: &PublicKey) -> Option<u64> {
    let verify = |path: &Path| -> Vec<u8> {
        let bytes =
            std::fs::read(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let signature = std::fs::read(format!("{}.sig", path.display()))
            .unwrap_or_else(|error| panic!("{}.sig: {error}", path.display()));
        let signature = Signature::parse(&signature).unwrap();
        public
            .verify(&bytes, &signature)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        bytes
    };
    let top = out.join("channels.json");
    if !top.exists() {
        return None;
    }
    let channels: Value = serde_json::from_slice(&verify(&top)).unwrap();
    for channel in channels["channels"].as_object().unwrap().values() {
        for entry in channel["devices"].as_object().unwrap().values() {
            let url = entry["index"].as_str().unwrap();
            let index: Value =
                serde_json::from_slice(&verify(&out.join(url.strip_prefix("/channels/").unwrap())))
                    .unwrap();
            for image in index["images"].as_array().unwrap() {
                for file in image["files"].as_array().unwrap() {
                    let path = out.join(
                        file["path"]
                            .as_str()
                            .unwrap()
                            .strip_prefix("/channels/")
                            .unwrap(),
                    );
                    let bytes = verify(&path);
                    assert_eq!(file["checksum"], hex::encode(Sha256::digest(&bytes)));
                }
            }
        }
    }
    channels["global"]["serial"].as_u64()
}

/// The child side of the kill test: publishes forever into `ATTENDANT_TEST_PUBLISH_OUT`, each
/// time with another build on one of many devices.
#[test]
fn publisher_child() {
    let Ok(out) = std::env::var("ATTENDANT_TEST_PUBLISH_OUT") else {
        return;
    };
    let out = PathBuf::from(out);
    let key = attendant_server::signing::load_secret_key(Path::new(
        &std::env::var("ATTENDANT_TEST_PUBLISH_KEY").unwrap(),
    ))
    .unwrap();
    let start: u64 = std::env::var("ATTENDANT_TEST_PUBLISH_SERIAL")
        .unwrap()
        .parse()
        .unwrap();
    let devices: Vec<String> = (0..40).map(|n| format!("x86/64/profile-{n}")).collect();
    let mut stable = channel(
        "stable",
        devices
            .iter()
            .map(|name| (name.clone(), device(vec![build(&out, &key, name, 1, 100)])))
            .collect(),
    );
    let mut testing = stable.clone();
    testing.name = "testing".to_owned();
    for serial in start.. {
        let name = &devices[(serial % 40) as usize];
        let builds = &mut stable.devices.get_mut(name).unwrap().builds;
        let number = builds.last().unwrap().number + 1;
        builds.push(build(&out, &key, name, number, (serial % 101) as u8));
        testing.hidden = serial % 2 == 0;
        let changed = if serial % 7 == 0 {
            Changed::Resign
        } else {
            Changed::Unknown
        };
        publish(
            &[stable.clone(), testing.clone()],
            &changed,
            &out,
            &key,
            &options(serial, NOW + serial as i64),
        )
        .unwrap();
        println!("published {serial}");
        if serial % 5 == 0 {
            reap(&out, Duration::ZERO, SystemTime::now()).unwrap();
        }
    }
}

#[test]
fn a_publisher_killed_at_any_moment_leaves_a_consistent_tree() {
    let fixture = Fixture::new();
    let secret = fixture.public.with_extension("");
    let public = PublicKey::parse(&std::fs::read(&fixture.public).unwrap()).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut serial = 1;
    let mut published = 0;
    for round in 0..25u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "publisher_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("ATTENDANT_TEST_PUBLISH_OUT", &fixture.out)
            .env("ATTENDANT_TEST_PUBLISH_KEY", &secret)
            .env("ATTENDANT_TEST_PUBLISH_SERIAL", serial.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Let it publish one to three times, then kill it a varying moment into the next
        // publication: while it renders, writes indexes, writes channels.json or switches.
        let mut lines =
            std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
        let needed = 1 + round % 3;
        let mut seen = 0;
        while seen < needed {
            let line = lines
                .next()
                .expect("the publisher publishes before it is killed")
                .unwrap();
            if line.starts_with("published ") {
                seen += 1;
            }
        }
        std::thread::sleep(Duration::from_millis((round * 7) % 40));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "the publisher was killed, not finished");
        if let Some(current) = check_consistent(&fixture.out, &public) {
            assert!(current + 1 >= serial, "serial never goes back");
            published += current + 1 - serial;
            serial = current + 1;
        }
    }
    assert!(
        published >= 25,
        "every round published ({published} publications)"
    );
}

/// Applies an operation to the stored tree and commits it, as the CLI does.
async fn apply(
    store: &dyn attendant_server::store::Store,
    operation: impl FnOnce(
        &attendant_server::channels::ops::Tree,
    ) -> Result<
        attendant_server::channels::ops::Change,
        attendant_server::channels::ops::OpError,
    >,
) {
    use attendant_server::store::channel_store::{AuditEntry, TreeChange};
    let snapshot = store.channels().snapshot().await.unwrap();
    let change = operation(&snapshot.channels).unwrap();
    let audit = AuditEntry {
        at_ms: 0,
        actor: "test".to_owned(),
        operation: change.operation.to_owned(),
        target: change.target.clone(),
        before: String::new(),
        after: String::new(),
    };
    store
        .channels()
        .commit(
            &TreeChange::from_snapshot(&snapshot, &change.touched),
            &audit,
        )
        .await
        .unwrap();
}

async fn wait_for_serial(client: &reqwest::Client, base: &str, above: u64) -> (Value, Vec<u8>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let response = client
            .get(format!("{base}/channels/channels.json"))
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            let bytes = response.bytes().await.unwrap().to_vec();
            let doc: Value = serde_json::from_slice(&bytes).unwrap();
            if doc["global"]["serial"].as_u64().unwrap() > above {
                return (doc, bytes);
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not publish past serial {above}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_publishes_changes_and_serves_the_tree() {
    use attendant_server::channels::model::DeviceId;
    use attendant_server::channels::ops::{self, CreateOptions, NewBuild};

    let fixture = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let mut config = attendant_server::config::Config::default();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.data_dir = dir.path().join("data");
    config.upstream_url = dir.path().join("no-upstream").display().to_string();
    config.workers = 0;
    // The chain of trust a router checks: an offline root delegates the metadata signing key.
    let root = dir.path().join("root.sec");
    let root_public = attendant_server::channels::keys::root_init(&root).unwrap();
    let metadata_key = fixture.public.with_extension("");
    let delegation = dir.path().join("signing.ucert");
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    attendant_server::channels::keys::delegate(
        &root,
        &metadata_key,
        unix_now - 60,
        Duration::from_secs(30 * 86_400),
        &delegation,
    )
    .unwrap();
    config.signing_key = Some(metadata_key.clone());
    config.channels.signing_key = Some(metadata_key);
    config.channels.delegation = Some(delegation);
    config.channels.publish_interval = Duration::from_millis(100);
    // `[streams] publish`: every channel publication also refreshes the simplestreams mirror.
    let streams_dir = dir.path().join("streams");
    config.streams.publish = true;
    config.streams.dir = Some(streams_dir.clone());
    let tree_dir = config.channels_path();
    std::fs::create_dir_all(&tree_dir).unwrap();
    let running = attendant_server::service::spawn(config).await.unwrap();
    let store = running.service.state.store.clone();
    let base = format!("http://{}", running.addr);
    let client = reqwest::Client::new();

    let first = build(&tree_dir, &fixture.key, C7, 1, 100);
    apply(&*store, |tree| {
        ops::create(tree, "stable", &CreateOptions::default())
    })
    .await;
    apply(&*store, |tree| {
        ops::device_add(tree, "stable", &C7.parse::<DeviceId>().unwrap())
    })
    .await;
    apply(&*store, |tree| {
        ops::add_build(
            tree,
            "stable",
            C7,
            NewBuild {
                source: first.source.clone(),
                state: BuildState::Ready,
                openwrt_version: first.openwrt_version.clone(),
                version_code: first.version_code.clone(),
                recipe: first.recipe.clone(),
                description: first.description.clone(),
                version_detail: first.version_detail.clone(),
                minversion: None,
                images: first.images.clone(),
                embeds_stamp: false,
            },
            NOW,
        )
    })
    .await;

    // The entry point over HTTP, its signature checked with signify on the bytes served. The
    // publisher may run between the three changes above: wait for the publication whose device
    // index holds the build.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (channels, bytes, index) = loop {
        let (doc, bytes) = wait_for_serial(&client, &base, 0).await;
        if let Some(index_url) = doc["channels"]["stable"]["devices"][C7]["index"].as_str() {
            let index = client
                .get(format!("{base}{index_url}"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            let index: Value = serde_json::from_slice(&index).unwrap();
            if index["images"]
                .as_array()
                .is_some_and(|images| !images.is_empty())
            {
                break (doc, bytes, index);
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not publish the build"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let signature = client
        .get(format!("{base}/channels/channels.json.sig"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        signature.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    let downloaded = dir.path().join("downloaded.json");
    std::fs::write(&downloaded, &bytes).unwrap();
    std::fs::write(
        dir.path().join("downloaded.json.sig"),
        signature.bytes().await.unwrap(),
    )
    .unwrap();
    signify_verify(&fixture.public, &downloaded);
    // And as a router checks it: the delegation from /channels/keys/, the pinned root, freshness.
    let signature_bytes = std::fs::read(dir.path().join("downloaded.json.sig")).unwrap();
    let fingerprint = attendant_proto::channel::trust::signing_key_of(&signature_bytes).unwrap();
    let delegation_bytes = client
        .get(format!("{base}/channels/keys/{fingerprint}.ucert"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    attendant_proto::channel::trust::verify_metadata(
        &bytes,
        &signature_bytes,
        &delegation_bytes,
        None,
        std::slice::from_ref(&root_public),
        unix_now,
    )
    .unwrap();
    let parsed = attendant_proto::channel::parse_channels(&bytes).unwrap();
    attendant_proto::channel::trust::check_freshness(&parsed.global, unix_now, 0).unwrap();

    // The stream refreshed after the publication: signed with the channel key, and what a stock
    // `sstream-query` reads, a stock `sstream-mirror` copies with checksums verified.
    let stream_index = streams_dir.join("streams/v1/index.json");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !stream_index.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not publish the stream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let trust = attendant_server::streams::verify::Trust {
        keyring: None,
        usign: Some(PublicKey::parse(&std::fs::read(&fixture.public).unwrap()).unwrap()),
    };
    // The first refresh may publish the stream before the build's images are in it; wait for
    // the publication that holds the product's version.
    let stream = loop {
        let stream = attendant_server::streams::verify::read(&streams_dir, &trust)
            .await
            .unwrap();
        if stream
            .products
            .first()
            .is_some_and(|products| !products.products.is_empty())
        {
            break stream;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not publish the product in the stream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(stream.products.len(), 1);
    let mut query = sstream::sstream("sstream-query");
    query
        .arg("--output-format=%(product_name)s %(version_name)s %(ftype)s %(sha256)s")
        .arg(&stream_index);
    assert_eq!(
        sstream::run_stock(query, dir.path()).trim(),
        format!(
            "org.openwrt.attendant:stable:ath79:generic:tplink_archer-c7-v5 00000001 sysupgrade {}",
            first.images[0].sha256
        )
    );
    let mut mirror = sstream::sstream("sstream-mirror");
    mirror.arg(&stream_index).arg(dir.path().join("mirror"));
    sstream::run_stock(mirror, dir.path());
    let item = &stream.products[0]
        .products
        .values()
        .next()
        .unwrap()
        .versions["00000001"];
    let path = item.items.values().next().unwrap().path().unwrap();
    let mirrored = std::fs::read(dir.path().join("mirror").join(path)).unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&mirrored)),
        first.images[0].sha256
    );

    // Validators and caching.
    let response = client
        .get(format!("{base}/channels/channels.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "public, max-age=60");
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.headers().contains_key("last-modified"));
    let etag = response.headers()["etag"].clone();
    let not_modified = client
        .get(format!("{base}/channels/channels.json"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);

    // The index (fetched above) and a pool file: immutable, HEAD and Range as on /store/.
    let file_url = index["images"][0]["files"][0]["path"].as_str().unwrap();
    let head = client
        .head(format!("{base}{file_url}"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        index["images"][0]["files"][0]["size"].to_string()
    );
    let range = client
        .get(format!("{base}{file_url}"))
        .header("range", "bytes=0-4")
        .send()
        .await
        .unwrap();
    assert_eq!(range.status(), 206);
    assert_eq!(range.bytes().await.unwrap().as_ref(), b"image");
    for bad in [
        "/channels/../data/attendant.sqlite",
        "/channels/meta",
        "/channels/pool/%2e%2e/x",
    ] {
        let response = client.get(format!("{base}{bad}")).send().await.unwrap();
        assert_eq!(response.status(), 404, "{bad}");
    }

    // A change in the store is published within a round or two, with a higher serial.
    let serial = channels["global"]["serial"].as_u64().unwrap();
    apply(&*store, |tree| ops::phase(tree, "stable", C7, 1, 0)).await;
    let (_, _) = wait_for_serial(&client, &base, serial).await;
    let channels: Value =
        serde_json::from_slice(&std::fs::read(tree_dir.join("channels.json")).unwrap()).unwrap();
    let url = channels["channels"]["stable"]["devices"][C7]["index"]
        .as_str()
        .unwrap();
    let index: Value = serde_json::from_slice(
        &std::fs::read(tree_dir.join(url.strip_prefix("/channels/").unwrap())).unwrap(),
    )
    .unwrap();
    assert_eq!(index["images"][0]["phased-percentage"], 0);

    // Nothing changed: no new publication.
    let serial = channels["global"]["serial"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let now: Value =
        serde_json::from_slice(&std::fs::read(tree_dir.join("channels.json")).unwrap()).unwrap();
    assert_eq!(now["global"]["serial"], serial);

    // The metadata files come from memory with the same validators, HEAD and Range as a file
    // on disk.
    let entry = format!("{base}/channels/channels.json");
    let whole = client.get(&entry).send().await.unwrap();
    let etag = whole.headers()["etag"].clone();
    let whole = whole.bytes().await.unwrap();
    assert_eq!(
        whole.as_ref(),
        std::fs::read(tree_dir.join("channels.json")).unwrap()
    );
    let head = client.head(&entry).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["etag"], etag);
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        whole.len().to_string()
    );
    let range = client
        .get(&entry)
        .header("range", "bytes=1-3")
        .send()
        .await
        .unwrap();
    assert_eq!(range.status(), 206);
    assert_eq!(
        range.headers()["content-range"].to_str().unwrap(),
        format!("bytes 1-3/{}", whole.len())
    );
    assert_eq!(range.bytes().await.unwrap().as_ref(), &whole[1..=3]);
    let beyond = client
        .get(&entry)
        .header("range", format!("bytes={}-", whole.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 416);
    let index_response = client.get(format!("{base}{url}")).send().await.unwrap();
    assert_eq!(
        index_response.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let index_etag = index_response.headers()["etag"].clone();
    let not_modified = client
        .get(format!("{base}{url}"))
        .header("if-none-match", index_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);

    // Pool images are streamed from disk, whole, and never through a link.
    let pool_file = tree_dir.join(file_url.strip_prefix("/channels/").unwrap());
    let image = client
        .get(format!("{base}{file_url}"))
        .send()
        .await
        .unwrap();
    assert_eq!(image.status(), 200);
    assert_eq!(
        image.bytes().await.unwrap().as_ref(),
        std::fs::read(&pool_file).unwrap()
    );
    std::os::unix::fs::symlink(&pool_file, pool_file.with_file_name("linked.bin")).unwrap();
    let linked = file_url.rsplit_once('/').unwrap().0.to_owned() + "/linked.bin";
    let response = client.get(format!("{base}{linked}")).send().await.unwrap();
    assert_eq!(response.status(), 404, "a link in the pool is not followed");

    // Another process (or host) sharing the tree publishes: this server serves it within the
    // revalidation interval, with no request to the database or hint from that publisher.
    let external = serial + 1000;
    let tree: Vec<Channel> = store
        .channels()
        .snapshot()
        .await
        .unwrap()
        .channels
        .into_values()
        .collect();
    publish(
        &tree,
        &Changed::Unknown,
        &tree_dir,
        &fixture.key,
        &options(external, unix_now),
    )
    .unwrap();
    let switched = std::time::Instant::now();
    let (doc, _) = wait_for_serial(&client, &base, external - 1).await;
    assert_eq!(doc["global"]["serial"], external);
    assert!(
        switched.elapsed() < attendant_server::channels::cache::REVALIDATE_EVERY * 3,
        "the external publication was served after {:?}",
        switched.elapsed()
    );
    let signature = client
        .get(format!("{base}/channels/channels.json.sig"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        signature.as_ref(),
        std::fs::read(tree_dir.join(format!("meta/{external}/channels.json.sig"))).unwrap(),
        "the signature of the same publication"
    );

    running.shutdown.cancel();
    running.task.await.unwrap().unwrap();
}

#[test]
fn fullcount_expiry_keeps_a_stepping_stone_in_the_published_index() {
    use attendant_server::channels::model::DeviceId;
    use attendant_server::channels::ops::{self, CreateOptions, NewBuild, Tree};

    let fixture = Fixture::new();
    let mut tree = Tree::new();
    let run = |tree: &mut Tree, change: ops::Change| {
        for (name, after) in change.touched {
            match after {
                Some(channel) => tree.insert(name, channel),
                None => tree.remove(&name),
            };
        }
    };
    let options = CreateOptions {
        fullcount: Some(2),
        ..CreateOptions::default()
    };
    let change = ops::create(&tree, "stable", &options).unwrap();
    run(&mut tree, change);
    let change = ops::device_add(&tree, "stable", &C7.parse::<DeviceId>().unwrap()).unwrap();
    run(&mut tree, change);
    for (number, minversion) in [(1, None), (2, None), (3, Some(2)), (4, Some(3))] {
        let made = build(&fixture.out, &fixture.key, C7, number, 100);
        let new = NewBuild {
            source: made.source,
            state: BuildState::Ready,
            openwrt_version: made.openwrt_version,
            version_code: made.version_code,
            recipe: made.recipe,
            description: made.description,
            version_detail: made.version_detail,
            minversion,
            images: made.images,
            embeds_stamp: false,
        };
        let change = ops::add_build(&tree, "stable", C7, new, NOW).unwrap();
        run(&mut tree, change);
    }
    let channels: Vec<Channel> = tree.into_values().collect();
    fixture.publish(&channels, &Changed::Unknown, 1, NOW);
    let index = fixture.index_of("stable", C7);
    let versions: Vec<_> = index["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|image| image["version"].as_u64().unwrap())
        .collect();
    // Build 1 expired; 2 stays beyond the count of 2 because 3 (minversion 2) needs it, and 3
    // because 4 (minversion 3) does.
    assert_eq!(versions, [2, 3, 4]);
    assert_eq!(index["images"][2]["minversion"], 3);
}
