//! `attendant-server streams ...` driven as an operator and a mirroring site would: the real
//! binary over a published channel tree, and the stock simplestreams tools (`sstream-query`,
//! `sstream-mirror` from PyPI's `python-simplestreams`, installed by
//! `scripts/install-test-deps.sh`) reading what it publishes — checksums, usign signatures, GPG
//! signatures — and it reading what they write. Also: two streams sharing one data directory,
//! promotion with filters, clean-md then find/reap-orphans freeing exactly the unreferenced
//! files, sync publishing nothing when nothing changed, and an insert killed with SIGKILL at many
//! points leaving the old tree or the new one.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests stop at their first failure"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use attendant_proto::usign::{PublicKey, SecretKey, Signature};
use attendant_server::channels::model::{
    Build, BuildSource, BuildState, Channel, ChannelKind, ChannelSettings, Device, ImageFile,
    Recipe,
};
use attendant_server::channels::publish::{Changed, PublishOptions, pool_relative, publish};
use serde_json::Value;
use sha2::{Digest, Sha256};

const NOW: i64 = 1_796_557_500; // Sun Dec 06 11:45:00 UTC 2026
const C7: &str = "ath79/generic/tplink_archer-c7-v5";
const X86: &str = "x86/64/generic";
const C7_PRODUCT: &str = "org.openwrt.attendant:stable:ath79:generic:tplink_archer-c7-v5";
const X86_PRODUCT: &str = "org.openwrt.attendant:stable:x86:64:generic";

/// A published channel tree, a usign key, a configuration whose `[streams] dir` is
/// `<base>/daily` with `daily/data -> ../data` (the pool shared with `released/`).
struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
    key: SecretKey,
    public: PublicKey,
    serial: std::cell::Cell<u64>,
}

impl Env {
    fn new(extra_config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("key.sec");
        attendant_server::signing::generate_key_pair(&secret, Some("streams test key")).unwrap();
        let key = attendant_server::signing::load_secret_key(&secret).unwrap();
        let public =
            PublicKey::parse(&std::fs::read(dir.path().join("key.sec.pub")).unwrap()).unwrap();
        let base = dir.path().join("base");
        std::fs::create_dir_all(base.join("data")).unwrap();
        for stream in ["daily", "released"] {
            std::fs::create_dir_all(base.join(stream)).unwrap();
            std::os::unix::fs::symlink("../data", base.join(stream).join("data")).unwrap();
        }
        let config = dir.path().join("attendant.toml");
        let text = format!(
            "data_dir = {data:?}\nsigning_key = {secret:?}\n\n[channels]\ndir = {channels:?}\n\n\
             [streams]\ndir = {daily:?}\nname = \"daily\"\n{extra_config}",
            data = dir.path().join("data"),
            channels = dir.path().join("channels"),
            daily = base.join("daily"),
        );
        std::fs::write(&config, text).unwrap();
        let env = Self {
            dir,
            config,
            key,
            public,
            serial: std::cell::Cell::new(0),
        };
        env.publish_channels(&[(C7, &[1, 2]), (X86, &[1])]);
        env
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Publishes channel `stable` with these builds per device (the library's own publisher, as
    /// `serve` runs it).
    fn publish_channels(&self, devices: &[(&str, &[u64])]) {
        let out = self.path("channels");
        std::fs::create_dir_all(&out).unwrap();
        let devices: BTreeMap<String, Device> = devices
            .iter()
            .map(|(device, numbers)| {
                let builds: Vec<Build> = numbers
                    .iter()
                    .map(|number| build(&out, &self.key, device, *number))
                    .collect();
                let device_entry = Device {
                    last_build: builds.last().map_or(0, |build| build.number),
                    builds,
                    ..Device::default()
                };
                ((*device).to_owned(), device_entry)
            })
            .collect();
        let channel = Channel {
            name: "stable".to_owned(),
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
        };
        self.serial.set(self.serial.get() + 1);
        let options = PublishOptions::new(
            self.serial.get(),
            NOW,
            Duration::from_secs(7 * 86_400),
            Duration::from_secs(2 * 86_400),
        );
        publish(&[channel], &Changed::Unknown, &out, &self.key, &options).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_attendant-server"));
        command
            .arg("--config")
            .arg(&self.config)
            .arg("streams")
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("ATTENDANT_CONFIG")
            .env("RUST_LOG", "warn");
        command
    }

    /// Runs `streams <args>` in the temporary directory and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.command(args).output().unwrap();
        check(
            &output,
            &format!("attendant-server streams {}", args.join(" ")),
            self.dir.path(),
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn stderr_of(&self, args: &[&str]) -> (Option<i32>, String) {
        let output = self.command(args).output().unwrap();
        (
            output.status.code(),
            String::from_utf8(output.stderr).unwrap(),
        )
    }

    /// Every file under `relative`, sorted, as relative paths.
    fn files(&self, relative: &str) -> BTreeSet<String> {
        let root = self.path(relative);
        let mut files = BTreeSet::new();
        let mut pending = vec![root.clone()];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let entry = entry.unwrap();
                let kind = entry.file_type().unwrap();
                if kind.is_dir() {
                    pending.push(entry.path());
                } else if kind.is_file() {
                    let path = entry.path();
                    files.insert(path.strip_prefix(&root).unwrap().display().to_string());
                }
            }
        }
        files
    }

    /// The published stream in `dir` is whole: the index and every products file it names parse
    /// and verify with the usign key, and every item's file has its size and SHA-256. Returns
    /// `product/version` of every version.
    fn check_stream(&self, dir: &str) -> BTreeSet<String> {
        let v1 = self.path(dir).join("streams/v1");
        let index = verified_json(&v1.join("index.json"), &self.public);
        assert_eq!(index["format"], "index:1.0");
        let mut versions = BTreeSet::new();
        for entry in index["index"].as_object().unwrap().values() {
            let path = self.path(dir).join(entry["path"].as_str().unwrap());
            let products = verified_json(&path, &self.public);
            assert_eq!(products["format"], "products:1.0");
            for (product_name, product) in products["products"].as_object().unwrap() {
                for (version_name, version) in product["versions"].as_object().unwrap() {
                    versions.insert(format!("{product_name}/{version_name}"));
                    for item in version["items"].as_object().unwrap().values() {
                        let file = self.path(dir).join(item["path"].as_str().unwrap());
                        let bytes = std::fs::read(&file)
                            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                        assert_eq!(bytes.len() as u64, item["size"].as_u64().unwrap());
                        assert_eq!(hex::encode(Sha256::digest(&bytes)), item["sha256"]);
                    }
                }
            }
        }
        versions
    }
}

fn check(output: &Output, what: &str, cwd: &Path) {
    assert!(
        output.status.success(),
        "`{what}` in {} exited {}\nstdout:\n{}\nstderr:\n{}",
        cwd.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn verified_json(path: &Path, public: &PublicKey) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let signature = std::fs::read(format!("{}.sig", path.display())).unwrap();
    public
        .verify(&bytes, &Signature::parse(&signature).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap()
}

/// A Ready build whose one image is in the channel pool of `out`.
fn build(out: &Path, key: &SecretKey, device: &str, number: u64) -> Build {
    let profile = device.rsplit('/').next().unwrap();
    let content = format!("image of {device} build {number}\n").repeat(2000);
    let image = ImageFile {
        name: format!("openwrt-24.10.{number}-{profile}-squashfs-sysupgrade.bin"),
        image_type: "sysupgrade".to_owned(),
        filesystem: "squashfs".to_owned(),
        size: content.len() as u64,
        sha256: hex::encode(Sha256::digest(content.as_bytes())),
    };
    let path = out.join(pool_relative(&image));
    if !path.exists() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            format!("{}.sig", path.display()),
            key.sign(content.as_bytes()).to_file(),
        )
        .unwrap();
        std::fs::write(&path, &content).unwrap();
    }
    Build {
        number,
        state: BuildState::Ready,
        source: BuildSource::Imported {
            origin: "test".to_owned(),
        },
        openwrt_version: format!("24.10.{number}"),
        version_code: format!("r{number}-29397011cc"),
        recipe: Recipe::default(),
        description: format!("build {number}"),
        version_detail: vec![("openwrt".to_owned(), format!("24.10.{number}"))],
        minversion: None,
        phased_percentage: 100,
        images: vec![image],
        created_at: 0,
        embeds_stamp: false,
    }
}

/// The stock tool `name`: from `ATTENDANT_SSTREAM_DIR`, the virtual environment that
/// `scripts/install-test-deps.sh` makes under `target/`, or `PATH`.
fn sstream(name: &str) -> Command {
    let candidates = [
        std::env::var_os("ATTENDANT_SSTREAM_DIR").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/streams-venv/bin")),
    ];
    let program = candidates
        .into_iter()
        .flatten()
        .map(|dir| dir.join(name))
        .find(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from(name));
    let mut command = Command::new(&program);
    command.env("LANG", "C.UTF-8");
    command
}

fn run_stock(mut command: Command, cwd: &Path) -> String {
    let output = command.current_dir(cwd).output().unwrap_or_else(|e| {
        panic!("cannot run {command:?}: {e}; install it with scripts/install-test-deps.sh")
    });
    check(&output, &format!("{command:?}"), cwd);
    String::from_utf8(output.stdout).unwrap()
}

fn lines(text: &str) -> BTreeSet<String> {
    text.lines().map(str::to_owned).collect()
}

/// The query format both tools print identically.
const FORMAT: &str =
    "%(product_name)s %(version_name)s %(item_name)s %(ftype)s %(sha256)s %(size)s %(label)s";

#[test]
fn stock_tools_query_and_mirror_our_stream_and_we_read_theirs() {
    let env = Env::new("");
    // sync takes the latest build of each product, with only its file.
    let synced = env.ok(&["sync", "out1"]);
    assert_eq!(
        lines(&synced),
        lines(&format!("{C7_PRODUCT}/00000002\n{X86_PRODUCT}/00000001\n"))
    );
    assert_eq!(env.files("out1/data").len(), 2);
    env.ok(&["insert", "out1", "base/daily"]);
    let versions = env.check_stream("base/daily");
    assert_eq!(
        versions,
        lines(&format!("{C7_PRODUCT}/00000002\n{X86_PRODUCT}/00000001\n"))
    );

    // Nothing changed: sync writes no file and insert publishes nothing.
    let index = std::fs::read(env.path("base/daily/streams/v1/index.json")).unwrap();
    let (_, stderr) = env.stderr_of(&["sync", "out2"]);
    assert!(stderr.contains("nothing changed"), "{stderr}");
    assert!(env.files("out2/data").is_empty());
    let (_, stderr) = env.stderr_of(&["insert", "out2", "base/daily"]);
    assert!(stderr.contains("nothing changed"), "{stderr}");
    assert_eq!(
        std::fs::read(env.path("base/daily/streams/v1/index.json")).unwrap(),
        index
    );

    // Stock sstream-query reads exactly what our query reads, filters included.
    let daily_index = env.path("base/daily/streams/v1/index.json");
    let mut query = sstream("sstream-query");
    query
        .arg(format!("--output-format={FORMAT}"))
        .arg(&daily_index)
        .arg("target=ath79");
    let theirs = run_stock(query, env.dir.path());
    let ours = env.ok(&[
        "query",
        "base/daily/streams/v1/index.json",
        "target=ath79",
        "-o",
        FORMAT,
    ]);
    assert_eq!(lines(&theirs), lines(&ours));
    assert_eq!(lines(&ours).len(), 1, "{ours}");

    // A site mirrors it with sstream-mirror (checksums verified), and another site mirrors the
    // mirror; our query reads the result.
    let mut mirror = sstream("sstream-mirror");
    mirror.arg(&daily_index).arg(env.path("m1"));
    run_stock(mirror, env.dir.path());
    let mut mirror = sstream("sstream-mirror");
    mirror
        .arg(env.path("m1/streams/v1/index.json"))
        .arg(env.path("m2"))
        .arg("ftype=sysupgrade");
    run_stock(mirror, env.dir.path());
    let all = env.ok(&["query", "base/daily", "-o", FORMAT]);
    let mirrored = env.ok(&["query", "m2/streams/v1/index.json", "-o", FORMAT]);
    assert_eq!(lines(&mirrored), lines(&all));
    let json: Value = serde_json::from_str(&env.ok(&["query", "m2", "--json"])).unwrap();
    for item in json.as_array().unwrap() {
        let bytes = std::fs::read(env.dir.path().join(item["item_url"].as_str().unwrap())).unwrap();
        assert_eq!(hex::encode(Sha256::digest(&bytes)), item["sha256"]);
    }

    // sstream-mirror refuses a file that is not what the stream says.
    let victim = env
        .path("base/data")
        .join(env.files("base/data").into_iter().next().unwrap());
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&victim, bytes).unwrap();
    let output = sstream("sstream-mirror")
        .arg(&daily_index)
        .arg(env.path("m3"))
        .output()
        .unwrap();
    assert!(!output.status.success(), "a corrupted file was mirrored");

    // A new channel build is taken; `--rebuild` republishes an existing one under a new name.
    env.publish_channels(&[(C7, &[1, 2, 3]), (X86, &[1])]);
    assert_eq!(
        env.ok(&["sync", "out3"]).trim(),
        format!("{C7_PRODUCT}/00000003")
    );
    let rebuilt = env.ok(&[
        "sync",
        "out4",
        "--rebuild",
        "00000001:00000001.1",
        "--dry-run",
    ]);
    assert_eq!(rebuilt.trim(), format!("{X86_PRODUCT}/00000001.1"));
    let (code, stderr) = env.stderr_of(&["sync", "out4", "--rebuild", "7:8"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("no channel build has version `7`"),
        "{stderr}"
    );
}

#[test]
fn gpg_signed_stream_verifies_with_the_stock_tools() {
    let gpg_home = tempfile::tempdir().unwrap();
    let gpg = |args: &[&str]| {
        let output = Command::new("gpg")
            .arg("--homedir")
            .arg(gpg_home.path())
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(args)
            .output()
            .unwrap();
        check(&output, &format!("gpg {}", args.join(" ")), gpg_home.path());
        output.stdout
    };
    gpg(&[
        "--quick-gen-key",
        "streams test <streams@example.org>",
        "ed25519",
        "sign",
        "never",
    ]);
    let keyring = gpg_home.path().join("trusted.gpg");
    std::fs::write(&keyring, gpg(&["--export", "streams@example.org"])).unwrap();
    let env = Env::new(&format!(
        "gpg_key = \"streams@example.org\"\ngpg_home = {:?}\n",
        gpg_home.path()
    ));
    env.ok(&["sync", "out"]);
    env.ok(&["insert", "out", "base/daily"]);
    let v1 = env.path("base/daily/streams/v1");
    let products = "org.openwrt.attendant:daily";
    for name in ["index", products] {
        for suffix in [".json", ".json.sig", ".json.gpg", ".sjson"] {
            assert!(
                v1.join(format!("{name}{suffix}")).exists(),
                "{name}{suffix}"
            );
        }
    }
    // The mirror root defaults to `streams/v1/index.sjson`, verified with the keyring, and the
    // index names the signed products file.
    let mut query = sstream("sstream-query");
    query
        .arg(format!("--keyring={}", keyring.display()))
        .arg("--output-format=%(product_name)s %(version_name)s")
        .arg(env.path("base/daily"));
    assert_eq!(run_stock(query, env.dir.path()).lines().count(), 2);
    let mut mirror = sstream("sstream-mirror");
    mirror
        .arg(format!("--keyring={}", keyring.display()))
        .arg(env.path("base/daily"))
        .arg(env.path("gpg-mirror"));
    run_stock(mirror, env.dir.path());
    let index = std::fs::read_to_string(v1.join("index.sjson")).unwrap();
    assert!(
        index.contains(&format!("streams/v1/{products}.sjson")),
        "{index}"
    );
    let output = Command::new("gpgv")
        .arg(format!("--keyring={}", keyring.display()))
        .arg(v1.join(format!("{products}.json.gpg")))
        .arg(v1.join(format!("{products}.json")))
        .output()
        .unwrap();
    check(&output, "gpgv on the detached signature", &v1);

    // A tampered signed file is refused.
    let tampered = env.path("tampered");
    std::fs::create_dir_all(tampered.join("streams")).unwrap();
    std::os::unix::fs::symlink(env.path("base/data"), tampered.join("data")).unwrap();
    let copy = tampered.join("streams/v1");
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(&v1).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    let sjson = copy.join(format!("{products}.sjson"));
    let text = std::fs::read_to_string(&sjson)
        .unwrap()
        .replace("24.10.2", "24.10.9");
    std::fs::write(&sjson, text).unwrap();
    let output = sstream("sstream-query")
        .arg(format!("--keyring={}", keyring.display()))
        .arg(&tampered)
        .output()
        .unwrap();
    assert!(!output.status.success(), "a tampered stream was accepted");
}

#[test]
fn promote_clean_md_and_orphans_over_a_shared_pool() {
    let env = Env::new("");
    env.ok(&["sync", "out1"]);
    env.ok(&["insert", "out1", "base/daily"]);
    env.publish_channels(&[(C7, &[1, 2, 3]), (X86, &[1])]);
    env.ok(&["sync", "out2"]);
    env.ok(&["insert", "out2", "base/daily"]);
    assert_eq!(env.check_stream("base/daily").len(), 3);

    // Promote one version through a filter: only the x86 item, labelled, no bytes copied (the
    // pool is shared).
    let pool_before = env.files("base/data");
    let dry = env.ok(&[
        "promote",
        "--label",
        "rc",
        "base/daily/streams/v1/index.json",
        "base/released",
        "00000001",
        "target=x86",
        "--dry-run",
    ]);
    assert!(
        !env.path("base/released/streams").exists(),
        "a dry run published"
    );
    let promoted = env.ok(&[
        "promote",
        "--label",
        "rc",
        "base/daily/streams/v1/index.json",
        "base/released",
        "00000001",
        "target=x86",
    ]);
    assert_eq!(dry, promoted);
    assert_eq!(
        promoted.trim(),
        format!("org.openwrt.attendant:released {X86_PRODUCT}/00000001/squashfs-sysupgrade rc")
    );
    assert_eq!(env.files("base/data"), pool_before);
    assert_eq!(
        env.check_stream("base/released"),
        lines(&format!("{X86_PRODUCT}/00000001\n"))
    );
    let labels = env.ok(&["query", "base/released", "-o", "%(label)s %(content_id)s"]);
    assert_eq!(labels.trim(), "rc org.openwrt.attendant:released");

    // clean-md keeps the newest version per product, in the metadata only.
    let removed = env.ok(&["clean-md", "--max", "1", "base/daily"]);
    assert_eq!(
        removed.trim(),
        format!("remove org.openwrt.attendant:daily {C7_PRODUCT}/00000002")
    );
    assert_eq!(env.files("base/data"), pool_before);

    // find-orphans over both streams: exactly the dropped build's file and a stray file.
    std::fs::create_dir_all(env.path("base/data/zz")).unwrap();
    std::fs::write(env.path("base/data/zz/stray"), b"stray").unwrap();
    let indexes = [
        "base/daily/streams/v1/index.json",
        "base/released/streams/v1/index.json",
    ];
    let mut args = vec!["find-orphans", "orphans.json", "base/data"];
    args.extend(indexes);
    env.ok(&args);
    let orphans: BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(env.path("orphans.json")).unwrap()).unwrap();
    let expected_file = pool_before
        .iter()
        .find(|path| path.ends_with("24.10.2-tplink_archer-c7-v5-squashfs-sysupgrade.bin"))
        .unwrap()
        .clone();
    assert_eq!(
        orphans.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([expected_file.clone(), "zz/stray".to_owned()])
    );
    // A second run keeps the first-seen times.
    let before = std::fs::read(env.path("orphans.json")).unwrap();
    env.ok(&args);
    assert_eq!(std::fs::read(env.path("orphans.json")).unwrap(), before);

    // Within the grace period nothing goes; a dry run deletes nothing.
    env.ok(&["reap-orphans", "orphans.json", "base/data"]);
    assert_eq!(env.files("base/data").len(), pool_before.len() + 1);
    let dry = env.ok(&[
        "reap-orphans",
        "--older",
        "0",
        "--dry-run",
        "orphans.json",
        "base/data",
    ]);
    assert_eq!(dry.lines().count(), 2, "{dry}");
    assert_eq!(env.files("base/data").len(), pool_before.len() + 1);

    // A file a given index still references is never reaped, whatever the orphans file says.
    let mut forged = orphans.clone();
    let referenced = pool_before
        .iter()
        .find(|path| **path != expected_file)
        .unwrap();
    forged.insert(
        referenced.clone(),
        "Sun, 06 Dec 2026 11:45:00 +0000".to_owned(),
    );
    std::fs::write(
        env.path("orphans.json"),
        serde_json::to_vec(&forged).unwrap(),
    )
    .unwrap();
    let mut reap = vec!["reap-orphans", "--older", "0", "orphans.json", "base/data"];
    reap.extend(indexes);
    let output = env.command(&reap).output().unwrap();
    check(&output, "reap-orphans", env.dir.path());
    let reaped = String::from_utf8(output.stdout).unwrap();
    assert_eq!(reaped.lines().count(), 2, "{reaped}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    let freed = 5 + std::fs::metadata(env.path("channels/pool"))
        .map(|_| format!("image of {C7} build 2\n").len() * 2000)
        .unwrap();
    assert!(
        stderr.contains(&format!("freed 2 files, {freed} bytes")),
        "{stderr}"
    );
    assert_eq!(
        env.files("base/data"),
        pool_before
            .iter()
            .filter(|path| **path != expected_file)
            .cloned()
            .collect()
    );
    assert!(
        !env.path("base/data/zz").exists(),
        "the emptied directory stays"
    );
    assert_eq!(
        std::fs::read_to_string(env.path("orphans.json")).unwrap(),
        "{}\n"
    );
    env.check_stream("base/daily");
    env.check_stream("base/released");
}

#[test]
fn usage_errors_name_the_rule() {
    let env = Env::new("");
    let (code, stderr) = env.stderr_of(&["query", "base/daily", "release<3"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("filter `release<3` is not `key=value`"),
        "{stderr}"
    );
    let (code, stderr) = env.stderr_of(&["reap-orphans", "--older", "3y", "o.json", "base/data"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("age `3y` is not a sum of"), "{stderr}");
    std::fs::create_dir_all(env.path("nokey")).unwrap();
    let config = env.path("nokey/attendant.toml");
    std::fs::write(&config, format!("data_dir = {:?}\n", env.path("nokey"))).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_attendant-server"))
        .arg("--config")
        .arg(&config)
        .args(["streams", "clean-md", "--max", "1"])
        .arg(env.path("base/daily"))
        .env_remove("ATTENDANT_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("error: no key to sign the stream metadata with"),
        "{stderr}"
    );
    assert!(stderr.contains("--no-sign"), "{stderr}");
}

/// An insert killed with SIGKILL at many points leaves either the old stream or the new one,
/// each whole and verified.
#[test]
fn an_insert_killed_at_any_moment_leaves_the_old_or_the_new_tree() {
    let env = Env::new("");
    env.ok(&["sync", "out1"]);
    env.ok(&["insert", "out1", "base/daily"]);
    let old = env.check_stream("base/daily");
    env.publish_channels(&[(C7, &[1, 2, 3]), (X86, &[1])]);
    env.ok(&["sync", "out2"]);

    // How long an uninterrupted insert takes, on a copy.
    let probe = env.path("probe");
    std::fs::create_dir_all(&probe).unwrap();
    env.ok(&["insert", "out1", "probe"]);
    let started = Instant::now();
    env.ok(&["insert", "out2", "probe"]);
    let full = started.elapsed();
    let new = env.check_stream("probe");
    assert_ne!(old, new);

    let mut outcomes = BTreeSet::new();
    for step in 0..12u32 {
        let mut child = env
            .command(&["insert", "out2", "base/daily"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(full * step / 12);
        let _ = child.kill();
        child.wait().unwrap();
        let versions = env.check_stream("base/daily");
        assert!(
            versions == old || versions == new,
            "step {step}: {versions:?}"
        );
        outcomes.insert(versions == new);
        if versions == new {
            break;
        }
    }
    // Whatever the kills hit, a final run completes the insert.
    env.ok(&["insert", "out2", "base/daily"]);
    assert_eq!(env.check_stream("base/daily"), new);
    assert!(
        outcomes.contains(&false),
        "no kill landed before the switch"
    );
}
