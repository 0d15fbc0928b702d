//! Release channels end to end (issue 16): the real `attendant` agent on fake router roots
//! against the real server's published, signed channel tree, set up with the operator's own
//! commands — `attendant-server keys root-init` and `keys delegate` for the offline root and
//! the delegated signing key, `keygen` for the image key, then `channel create`, `device add`,
//! `build` (ImageBuilder builds that embed `/etc/attendant/channel.json`, and `--file` imports
//! of the fixture mirror's images), `phase`, `remove-build`, `alias`, `redirect` and `rollout`.
//! Each router pins the root's public key in `/etc/attendant/keys/` and trusts the image key in
//! `/etc/opkg/keys/`.
//!
//! Covered: the normal path (check, upgrade, the published image flashed after its SHA-256 and
//! `.sig` were checked, the reboot, the report counted by the server); a `minversion` stepping
//! stone flashed one hop per reboot; phased in, phased out with the fallback to the older
//! build, the `--percentage` override, a pulled build and "no upgrade", with the router's
//! phase computed by python3; an alias re-targeted (a full move) and a redirect (the router's
//! UCI `option channel` follows it); expired, forged, replayed (rolled-back serial) and
//! revoked-key metadata refused with exit code 7 and the check's name; the published image for a
//! router without extras and an image built for a router with a package beyond the recipe,
//! stamped by its uci-defaults script; failure reports from three routers halting a rollout,
//! after which the re-signed index no longer offers the build; a second `serve` that publishes
//! only hourly answering a publication of the operator's CLI within a second.
//!
//! One `attendant-server serve` (in this process, SQLite) with the fixture mirror as upstream
//! serves every test; the operator's commands run as separate processes on the same database
//! and publish themselves, and `serve` notices each publication within a second. Each test owns
//! its channels (`stable` is shared read-only, built once), so the tests run in parallel. The
//! "reboot" after sysupgrade is `attendant_e2e::reboot`: the flashed image's release and
//! embedded files become the running firmware.
//!
//! Fixture-only facts (the fixture ImageBuilder's image description, the catalogue's releases)
//! are used throughout, so these tests ignore `ATTENDANT_TEST_UPSTREAM` (tests/README.md).

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test harness: a failure should panic with the value"
)]

use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use attendant_e2e::MirrorServer;
use attendant_e2e::catalog::Catalog;
use attendant_e2e::http_request;
use attendant_e2e::mirror::{DEFAULT_SEED, MirrorInfo};
use attendant_e2e::process::{self, assert_exit, last_json, stderr, stdout};
use attendant_e2e::process_dir::ProcessDir;
use attendant_e2e::reboot::{self, Booted};
use attendant_e2e::router::{RouterSpec, write_root};
use attendant_e2e::seed::Seed;
use attendant_e2e::workspace;
use attendant_proto::channel::{encode_channels, parse_channels};
use attendant_proto::usign::{PublicKey, SecretKey, Signature};
use attendant_server::channels::cache::REVALIDATE_EVERY;
use attendant_server::config::Config;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Exit codes of `attendant` (agent/src/exit.rs).
const UPGRADE_AVAILABLE: i32 = 3;
const METADATA: i32 = 7;

const DEVICE: &str = "ath79/generic/tplink_archer-c7-v5";
const BOARD: &str = "tplink,archer-c7-v5";
const DAY: i64 = 86_400;
/// The longest a test waits for the server to act on its own (a publication, an auto-halt).
const SETTLE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// The normal path, prebuilt and attended.

#[test]
fn a_stock_router_takes_the_published_image_reboots_into_it_and_reports() {
    let stable = stable_build();
    let mut router = Router::new(None, "11111111111111111111111111111111", &[]);

    let (code, check) = router.check(&["--channel", "stable"]);
    assert_eq!(code, UPGRADE_AVAILABLE, "{check}");
    assert_eq!(check["name"], "stable");
    assert_eq!(check["current_build"], 0);
    assert_eq!(check["target"]["build"], 1, "{check}");
    assert_eq!(check["target"]["openwrt_version"], "24.10.5");
    // No package beyond the defaults: the published image will do.
    assert_eq!(check["target"]["prebuilt"], true, "{check}");
    assert_eq!(check["target"]["extra_packages"], serde_json::json!([]));

    let upgrade = router.run(&["upgrade", "--channel", "stable", "--json"]);
    assert_exit(&upgrade, 0);
    let data = &last_json(&upgrade)["data"];
    assert_eq!(
        (data["channel"].as_str(), data["build"].as_u64()),
        (Some("stable"), Some(1))
    );
    let firmware = router.firmware();
    assert_eq!(
        router.sysupgrade_calls(),
        [
            format!("--test {}", firmware.display()),
            firmware.display().to_string()
        ]
    );
    // Exactly the published file, whose `.sig` the image key made.
    let flashed = std::fs::read(&firmware).unwrap();
    assert_eq!(sha256(&flashed), stable.sha256);
    assert_eq!(flashed, std::fs::read(&stable.pool_file).unwrap());
    let signature = std::fs::read(format!("{}.sig", stable.pool_file.display())).unwrap();
    shared()
        .image_key
        .verify(&flashed, &Signature::parse(&signature).unwrap())
        .expect("the pool file's .sig verifies under the image key");
    // The switch from no channel is remembered in UCI.
    assert!(
        router.uci().contains("option channel 'stable'"),
        "{}",
        router.uci()
    );

    let booted = router.boot_flashed();
    assert_eq!(booted.image.version, "24.10.5");
    let stamp = router.stamp().expect("the image carries channel.json");
    assert_eq!(
        (stamp["channel"].as_str(), stamp["build"].as_u64()),
        (Some("stable"), Some(1))
    );
    assert_eq!(stamp["device"], DEVICE);
    let (code, check) = router.check(&[]);
    assert_eq!(code, 0, "up to date after the reboot: {check}");
    assert_eq!(check["current_build"], 1);

    let report = router.run(&["report", "--json"]);
    assert_exit(&report, 0);
    let delivered = &last_json(&report)["data"]["delivered"];
    assert_eq!(delivered.as_array().map(Vec::len), Some(1), "{delivered}");
    assert_eq!(delivered[0]["result"], "booted");
    // This is the only test that reports on `stable`.
    let build = operator_images("stable")["builds"][0].clone();
    assert_eq!(build["reports"]["booted"], 1, "{build}");
    assert_eq!(build["reports"]["rolled_back"], 0, "{build}");
}

#[test]
fn a_package_beyond_the_recipe_gets_an_image_built_with_the_channel_stamp() {
    let stable = stable_build();
    let mut router = Router::new(
        Some("stable"),
        "22222222222222222222222222222222",
        &["tmux"],
    );

    let (code, check) = router.check(&[]);
    assert_eq!(code, UPGRADE_AVAILABLE, "{check}");
    assert_eq!(check["target"]["prebuilt"], false, "{check}");
    assert_eq!(
        check["target"]["extra_packages"],
        serde_json::json!(["tmux"])
    );

    let upgrade = router.run(&["upgrade", "--json"]);
    assert_exit(&upgrade, 0);
    let flashed = std::fs::read(router.firmware()).unwrap();
    assert_ne!(sha256(&flashed), stable.sha256, "not the published image");
    let record = router.build_record();
    assert_eq!(record["response"]["version_number"], "24.10.5");
    assert!(
        record["response"]["manifest"].get("tmux").is_some(),
        "`tmux` is not in the built image: {}",
        record["response"]["manifest"]
    );

    let booted = router.boot_flashed();
    assert!(
        booted.defaults_ignored.is_empty(),
        "{:?}",
        booted.defaults_ignored
    );
    let stamp = router
        .stamp()
        .expect("the uci-defaults script wrote channel.json");
    assert_eq!(
        (stamp["channel"].as_str(), stamp["build"].as_u64()),
        (Some("stable"), Some(1))
    );
    let (code, check) = router.check(&[]);
    assert_eq!(code, 0, "up to date after the reboot: {check}");
}

// ---------------------------------------------------------------------------------------------
// Paths and phases.

#[test]
fn a_minversion_stepping_stone_is_flashed_first_and_the_next_hop_after_the_reboot() {
    let operator = shared();
    operator.channel(&["create", "hops"]);
    operator.channel(&["device", "add", "hops", DEVICE]);
    operator.channel(&["build", "hops", DEVICE, "--version", "24.10.4"]);
    operator.channel(&[
        "build",
        "hops",
        DEVICE,
        "--version",
        "24.10.5",
        "--minversion",
        "1",
    ]);
    let mut router = Router::new(Some("hops"), "33333333333333333333333333333333", &[]);
    router.wait_for_build("hops", 2);

    let (code, check) = router.check(&[]);
    assert_eq!(code, UPGRADE_AVAILABLE, "{check}");
    // Two hops beat one hop that stops a build short.
    assert_eq!(
        paths(&check),
        [(vec![1, 2], 200), (vec![1], 100 + 9001)],
        "{check}"
    );
    assert_eq!(check["target"]["build"], 2);

    let upgrade = router.run(&["upgrade", "--json"]);
    assert_exit(&upgrade, 0);
    assert_eq!(
        last_json(&upgrade)["data"]["build"],
        1,
        "the stepping stone first"
    );
    let booted = router.boot_flashed();
    assert_eq!(booted.image.version, "24.10.4");
    assert_eq!(router.stamp().unwrap()["build"], 1);

    let (code, check) = router.check(&[]);
    assert_eq!(code, UPGRADE_AVAILABLE, "{check}");
    assert_eq!(check["current_build"], 1);
    assert_eq!(paths(&check), [(vec![2], 100)], "{check}");
    router.clear_sysupgrade_log();
    let upgrade = router.run(&["upgrade", "--json"]);
    assert_exit(&upgrade, 0);
    assert_eq!(last_json(&upgrade)["data"]["build"], 2);
    let booted = router.boot_flashed();
    assert_eq!(booted.image.version, "24.10.5");
    assert_eq!(router.stamp().unwrap()["build"], 2);
    let (code, check) = router.check(&[]);
    assert_eq!(code, 0, "{check}");
}

#[test]
fn phased_in_phased_out_the_override_a_pulled_build_and_no_upgrade() {
    const MACHINE: &str = "c0ffee00c0ffee00c0ffee00c0ffee00";
    let operator = shared();
    operator.channel(&["create", "phased"]);
    operator.channel(&["device", "add", "phased", DEVICE]);
    operator.import("phased", "24.10.4");
    operator.import("phased", "24.10.5");
    let phase = python_phase("phased", 2, MACHINE);
    assert!(
        (2..=99).contains(&phase),
        "the test needs a phase in 2..=99, not {phase}"
    );
    let router = Router::new(Some("phased"), MACHINE, &[]);
    let set_phase = |percent: u64| {
        operator.channel(&["phase", "phased", DEVICE, "2", &percent.to_string()]);
        router.wait_for_phase("phased", percent);
    };

    set_phase(phase);
    let (code, check) = router.check(&[]);
    assert_eq!(code, UPGRADE_AVAILABLE, "{check}");
    assert_eq!(
        check["rollout"]["phase"].as_u64(),
        Some(phase),
        "python and the agent agree"
    );
    assert_eq!(check["rollout"]["phased_in"], true, "{check}");
    assert_eq!(check["target"]["build"], 2);

    set_phase(phase - 1);
    let (code, check) = router.check(&[]);
    assert_eq!(code, UPGRADE_AVAILABLE, "{check}");
    assert_eq!(check["rollout"]["phased_in"], false, "{check}");
    assert_eq!(
        check["target"]["build"], 1,
        "phased out falls back to the older build"
    );
    let (_, check) = router.check(&["--percentage", "0"]);
    assert_eq!(
        check["target"]["build"], 2,
        "the override puts the router first: {check}"
    );

    set_phase(0);
    let (code, check) = router.check(&["--percentage", "0"]);
    assert_eq!(code, UPGRADE_AVAILABLE, "{check}");
    assert_eq!(
        check["target"]["build"], 1,
        "a pulled build is offered to nobody: {check}"
    );
    // The pulled build flashed by nobody: an upgrade now takes build 1.
    let upgrade = router.run(&["upgrade", "--json", "--percentage", "0"]);
    assert_exit(&upgrade, 0);
    assert_eq!(last_json(&upgrade)["data"]["build"], 1);

    operator.channel(&["remove-build", "phased", DEVICE, "1"]);
    router.wait_for(
        |index| index["images"].as_array().is_some_and(|i| i.len() == 1),
        "phased",
    );
    let (code, check) = router.check(&[]);
    assert_eq!(code, 0, "only a pulled build left: no upgrade: {check}");
    assert!(check["target"].is_null(), "{check}");
}

// ---------------------------------------------------------------------------------------------
// Aliases and redirects.

#[test]
fn an_alias_retarget_is_a_full_move_and_a_redirect_moves_the_configured_channel() {
    let stable = stable_build();
    let operator = shared();
    operator.channel(&["alias", "daily", "stable"]);
    let mut router = Router::new(Some("daily"), "44444444444444444444444444444444", &[]);
    router.wait_for_build("daily", 1);
    let upgrade = router.run(&["upgrade", "--json"]);
    assert_exit(&upgrade, 0);
    router.boot_flashed();
    let stamp = router.stamp().unwrap();
    assert_eq!(stamp["channel"], "daily");
    assert_eq!(stamp["channel_target"], "stable");

    // The alias now mirrors `gamma`: whatever its build numbers, the router moves.
    operator.channel(&["create", "gamma"]);
    operator.channel(&["device", "add", "gamma", DEVICE]);
    operator.import("gamma", "24.10.5");
    operator.channel(&["alias", "daily", "gamma"]);
    let gamma = sysupgrade_image(&operator_images("gamma")["builds"][0]);
    router.wait_for(
        |index| {
            index["images"]
                .as_array()
                .and_then(|i| i.last())
                .is_some_and(|b| b["files"][0]["checksum"].as_str() == Some(gamma.as_str()))
        },
        "daily",
    );
    let (code, check) = router.check(&[]);
    assert_eq!(code, UPGRADE_AVAILABLE, "{check}");
    assert_eq!(check["full_move"]["reason"], "alias_retarget", "{check}");
    router.clear_sysupgrade_log();
    let upgrade = router.run(&["upgrade", "--json"]);
    assert_exit(&upgrade, 0);
    assert_eq!(sha256(&std::fs::read(router.firmware()).unwrap()), gamma);

    // A router on a retired channel is sent on, and follows.
    operator.channel(&["redirect", "old", "stable"]);
    let mut router = Router::new(Some("old"), "55555555555555555555555555555555", &[]);
    router.wait_for_channel("old");
    let (code, check) = router.check(&[]);
    assert_eq!(code, UPGRADE_AVAILABLE, "{check}");
    assert_eq!(check["name"], "stable");
    assert_eq!(check["redirected_from"], "old");
    let upgrade = router.run(&["upgrade", "--json"]);
    assert_exit(&upgrade, 0);
    assert_eq!(
        sha256(&std::fs::read(router.firmware()).unwrap()),
        stable.sha256
    );
    assert!(
        router.uci().contains("option channel 'stable'"),
        "{}",
        router.uci()
    );
    router.boot_flashed();
    assert_eq!(router.stamp().unwrap()["channel"], "stable");
    let (code, check) = router.check(&[]);
    assert_eq!(code, 0, "{check}");
}

// ---------------------------------------------------------------------------------------------
// Metadata refused.

#[test]
fn expired_forged_replayed_and_revoked_metadata_is_refused_with_exit_code_7() {
    stable_build();
    let operator = shared();
    let proxy = Proxy::start(operator.addr);
    let router = Router::with_server(
        Some("stable"),
        "66666666666666666666666666666666",
        &[],
        &proxy.url,
    );
    let (code, check) = router.check(&[]);
    assert_eq!(code, UPGRADE_AVAILABLE, "{check}");
    let seen = proxy.last_bodies();

    // A publication the router sees, then the older one replayed.
    operator.channel(&["create", "replay-probe"]);
    let serial = |bytes: &[u8]| parse_channels(bytes).unwrap().global.serial;
    let old = serial(&seen["/channels/channels.json"]);
    wait_until("a newer publication", || {
        router.check(&[]).0 == UPGRADE_AVAILABLE
            && serial(&proxy.last_bodies()["/channels/channels.json"]) > old
    });
    let replay: BTreeMap<String, Vec<u8>> =
        ["/channels/channels.json", "/channels/channels.json.sig"]
            .iter()
            .map(|p| ((*p).to_owned(), seen[*p].clone()))
            .collect();
    proxy.set(Fault::Serve(replay));
    refused(
        &router,
        "serial-rollback",
        &format!("serial {old}, lower than serial"),
    );

    proxy.set(Fault::Expire);
    refused(&router, "expired", "the metadata expired at");

    proxy.set(Fault::Flip("/channels/channels.json"));
    refused(&router, "bad-signature", "does not match the file");

    // The operator revokes the signing key; this proxy publishes the list.
    let list = operator.dir.path().join("revoked.ucert");
    operator.command(&[
        "keys",
        "revoke",
        "--root",
        operator.dir.path().join("root.sec").to_str().unwrap(),
        &operator.signing_fingerprint,
        "-o",
        list.to_str().unwrap(),
    ]);
    let revoked = BTreeMap::from([(
        "/channels/keys/revoked.ucert".to_owned(),
        std::fs::read(&list).unwrap(),
    )]);
    proxy.set(Fault::Serve(revoked));
    refused(&router, "revoked", "has been revoked");

    // Through the honest server again, the router upgrades.
    proxy.set(Fault::None);
    let (code, _) = router.check(&[]);
    assert_eq!(code, UPGRADE_AVAILABLE);
}

/// `upgrade` through the current fault ends with exit code 7, `text` (the words of the trust
/// check `check`) and the check's name on a `cause:` line (with `--json`, in the result's
/// `cause`), and nothing is flashed.
fn refused(router: &Router, check: &str, text: &str) {
    let output = router.run(&["upgrade"]);
    assert_exit(&output, METADATA);
    let err = stderr(&output);
    assert!(err.contains(text), "{check}: expected `{text}` in:\n{err}");
    assert!(
        err.lines().any(|line| line == format!("cause: {check}")),
        "expected `cause: {check}` in:\n{err}"
    );
    let json = router.run(&["upgrade", "--json"]);
    assert_exit(&json, METADATA);
    assert_eq!(last_json(&json)["cause"], check, "{json:?}");
    assert!(
        router.sysupgrade_calls().is_empty(),
        "{check}: {:?}",
        router.sysupgrade_calls()
    );
}

// ---------------------------------------------------------------------------------------------
// A running `serve` and the operator's CLI.

/// The operator's CLI publishes a change itself (another process, the same database and
/// directory), and a running `serve` answers the new `channels.json` within
/// [`REVALIDATE_EVERY`] of the command's return, without a restart. This `serve` publishes on
/// its own only once an hour, so only its view of the published files can make it see the
/// CLI's publication.
#[test]
fn a_running_serve_answers_a_publication_by_the_cli_within_a_second() {
    let operator = shared();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("attendant.toml");
    let key = |name: &str| operator.dir.path().join(name).display().to_string();
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\nupstream_url = {upstream:?}\ntrusted_keys = [{trusted:?}]\n\
             workers = 0\n\n[channels]\npublic_url = \"https://upgrade.example.org\"\n\
             signing_key = {signing:?}\ndelegation = {delegation:?}\npublish_interval = \"1h\"\n",
            data = dir.path().join("data").display().to_string(),
            upstream = operator.upstream.url(),
            trusted = operator.mirror.public_key,
            signing = key("signing.sec"),
            delegation = key("signing.ucert"),
        ),
    )
    .unwrap();
    let channel = |args: &[&str]| {
        let config = config.to_str().unwrap();
        operator.command(&[&["--config", config, "channel"][..], args].concat())
    };
    channel(&["create", "first"]);
    let on_disk = std::fs::read(dir.path().join("data/channels/channels.json")).unwrap();
    let published_by_cli = parse_channels(&on_disk).unwrap().global.serial;
    let mut loaded = Config::load(Some(&config), []).unwrap();
    loaded.listen = "127.0.0.1:0".parse().unwrap();
    let addr = operator
        .runtime
        .block_on(attendant_server::service::spawn(loaded))
        .expect("start the server")
        .addr;
    let serial = || {
        get(addr, "/channels/channels.json")
            .and_then(|bytes| parse_channels(&bytes).ok())
            .map(|doc| doc.global.serial)
    };
    // `serve` publishes once when it starts (it has not published anything itself yet) and
    // then serves that at once; its own next round is an hour away.
    wait_until("the first publication of `serve`", || {
        serial().is_some_and(|serial| serial > published_by_cli)
    });
    let before = serial().unwrap();

    channel(&["create", "second"]);
    let returned = Instant::now();
    let seen = loop {
        if let Some(now) = serial().filter(|now| *now > before) {
            break now;
        }
        assert!(
            returned.elapsed() < REVALIDATE_EVERY + SLACK,
            "`serve` still answers serial {before} {:?} after the CLI published",
            returned.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!(
        "serve answered serial {seen} (was {before}) {:?} after the CLI returned",
        returned.elapsed()
    );
}

/// What a loaded CI machine adds to [`REVALIDATE_EVERY`]: a request or two and the scheduler.
const SLACK: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------------
// Reports steer the rollout.

#[test]
fn failure_reports_from_three_routers_halt_the_rollout_and_the_build_is_no_longer_offered() {
    let operator = shared();
    operator.channel(&["create", "canary"]);
    operator.channel(&["device", "add", "canary", DEVICE]);
    operator.import("canary", "24.10.5");
    operator.channel(&[
        "rollout",
        "canary",
        "--halt-failure-rate",
        "0.5",
        "--halt-min-reports",
        "3",
    ]);
    let routers: Vec<Router> = (1..=3)
        .map(|n| Router::new(Some("canary"), &format!("{n:0>32}"), &[]))
        .collect();
    routers[0].wait_for_build("canary", 1);
    for router in &routers {
        let upgrade = router.run(&["upgrade", "--json"]);
        assert_exit(&upgrade, 0);
        // The new firmware did not come up; the router runs the old one again.
        reboot::boot_unchanged(router.path()).unwrap();
        let report = router.run(&["report", "--json"]);
        assert_exit(&report, 0);
        let delivered = &last_json(&report)["data"]["delivered"];
        assert_eq!(delivered[0]["result"], "rolled-back", "{delivered}");
    }
    let build = operator_images("canary")["builds"][0].clone();
    assert_eq!(build["reports"]["rolled_back"], 3, "{build}");
    assert_eq!(build["reports"]["failure_rate"], 1.0, "{build}");

    // The server phased the build to 0 by itself and published it.
    let newcomer = Router::new(Some("canary"), "99999999999999999999999999999999", &[]);
    newcomer.wait_for_phase("canary", 0);
    let (code, check) = newcomer.check(&["--percentage", "0"]);
    assert_eq!(code, 0, "the halted build is offered to nobody: {check}");
    assert!(check["target"].is_null(), "{check}");
    assert_eq!(
        operator_images("canary")["builds"][0]["phased_percentage"],
        0
    );
}

// ---------------------------------------------------------------------------------------------
// Harness: the operator, the server, routers, a faulty proxy.

/// Everything shared by the tests of this binary: the operator's directory (keys,
/// configuration, data) and the running server.
struct Shared {
    mirror: MirrorInfo,
    agent: PathBuf,
    server: PathBuf,
    /// A process directory: `SHARED` is never dropped, so a `TempDir` here would never go.
    dir: ProcessDir,
    config: PathBuf,
    addr: SocketAddr,
    url: String,
    root_fingerprint: String,
    root_public: String,
    signing_fingerprint: String,
    image_fingerprint: String,
    image_public: String,
    image_key: PublicKey,
    stable: OnceLock<StableBuild>,
    runtime: tokio::runtime::Runtime,
    upstream: MirrorServer,
}

/// `stable`'s build 1: 24.10.5 from the ImageBuilder, with its stamp.
struct StableBuild {
    sha256: String,
    pool_file: PathBuf,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let mirror = workspace::fixture(DEFAULT_SEED).unwrap();
        let agent = workspace::agent().unwrap();
        let server = workspace::binary(&workspace::SERVER_BUILD, "attendant-server").unwrap();
        let dir = ProcessDir::new("agent-channels-operator").unwrap();
        let run = |args: &[&str]| operator_command(&server, dir.path(), args);
        let root_fingerprint = run(&["keys", "root-init", "-s", "root.sec"]).trim().to_owned();
        let signing_fingerprint = run(&[
            "keys", "delegate", "--root", "root.sec", "--signing", "signing.sec", "--valid-for",
            "30d", "-o", "signing.ucert",
        ])
        .trim()
        .to_owned();
        let image_fingerprint = run(&["keygen", "-s", "key-build"]).trim().to_owned();
        let image_public = std::fs::read_to_string(dir.path().join("key-build.pub")).unwrap();
        let image_key = PublicKey::parse(image_public.as_bytes()).unwrap();
        assert_eq!(image_key.fingerprint().to_string(), image_fingerprint);

        let upstream = MirrorServer::start(&mirror.root).unwrap();
        let config = dir.path().join("attendant.toml");
        let path = |name: &str| dir.path().join(name).display().to_string();
        std::fs::write(
            &config,
            format!(
                "data_dir = {data:?}\nupstream_url = {upstream:?}\ntrusted_keys = [{trusted:?}]\n\
                 signing_key = {key:?}\nworkers = 2\njob_lease = \"5s\"\nallow_defaults = true\n\n\
                 [channels]\npublic_url = \"https://upgrade.example.org\"\n\
                 signing_key = {signing:?}\ndelegation = {delegation:?}\npublish_interval = \"1s\"\n",
                data = path("data"),
                upstream = upstream.url(),
                trusted = mirror.public_key,
                key = path("key-build"),
                signing = path("signing.sec"),
                delegation = path("signing.ucert"),
            ),
        )
        .unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut loaded = Config::load(Some(&config), []).unwrap();
        loaded.listen = "127.0.0.1:0".parse().unwrap();
        loaded.shutdown_timeout = Duration::from_secs(5);
        let running = runtime
            .block_on(attendant_server::service::spawn(loaded))
            .expect("start the server");
        let addr = running.addr;
        // `serve` runs on the shared runtime until the test process exits.
        drop(running);
        Shared {
            root_public: std::fs::read_to_string(dir.path().join("root.sec.pub")).unwrap(),
            mirror,
            agent,
            server,
            config,
            addr,
            url: format!("http://{addr}"),
            root_fingerprint,
            signing_fingerprint,
            image_fingerprint,
            image_public,
            image_key,
            stable: OnceLock::new(),
            runtime,
            upstream,
            dir,
        }
    })
}

impl Shared {
    /// `attendant-server ARGS` in the operator's directory; returns stdout.
    fn command(&self, args: &[&str]) -> String {
        operator_command(&self.server, self.dir.path(), args)
    }

    /// `attendant-server --config attendant.toml channel ARGS`.
    fn channel(&self, args: &[&str]) -> String {
        let config = self.config.to_str().unwrap();
        self.command(&[&["--config", config, "channel"][..], args].concat())
    }

    /// Imports the fixture mirror's sysupgrade image of `version` as the next build.
    fn import(&self, channel: &str, version: &str) {
        let image = self
            .mirror
            .target_dir(version, "ath79/generic")
            .join(format!(
                "openwrt-{version}-ath79-generic-tplink_archer-c7-v5-squashfs-sysupgrade.bin"
            ));
        self.channel(&[
            "build",
            channel,
            DEVICE,
            "--file",
            image.to_str().unwrap(),
            "--version",
            version,
        ]);
    }
}

/// `stable` with build 1 built by the ImageBuilder, made once for every test that uses it.
fn stable_build() -> &'static StableBuild {
    let shared = shared();
    shared.stable.get_or_init(|| {
        shared.channel(&["create", "stable"]);
        shared.channel(&["device", "add", "stable", DEVICE]);
        shared.channel(&["build", "stable", DEVICE, "--version", "24.10.5"]);
        let build = &operator_images("stable")["builds"][0];
        assert_eq!(build["embeds_stamp"], true, "{build}");
        let sha256 = sysupgrade_image(build);
        let name = build["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["image_type"] == "sysupgrade")
            .unwrap()["name"]
            .as_str()
            .unwrap()
            .to_owned();
        let pool_file = shared
            .dir
            .path()
            .join("data/channels/pool")
            .join(&sha256[..2])
            .join(format!("{sha256}-{name}"));
        assert!(pool_file.is_file(), "{}", pool_file.display());
        let stable = StableBuild { sha256, pool_file };
        Router::new(Some("stable"), "00000000000000000000000000000000", &[])
            .wait_for_build("stable", 1);
        stable
    })
}

/// `channel images CHANNEL DEVICE --json`.
fn operator_images(channel: &str) -> Value {
    serde_json::from_str(&shared().channel(&["images", channel, DEVICE, "--json"])).unwrap()
}

/// The SHA-256 of a build's sysupgrade image, from `channel images --json`.
fn sysupgrade_image(build: &Value) -> String {
    build["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["image_type"] == "sysupgrade")
        .unwrap_or_else(|| panic!("no sysupgrade image: {build}"))["sha256"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn operator_command(server: &Path, dir: &Path, args: &[&str]) -> String {
    let output = Command::new(server)
        .args(args)
        .current_dir(dir)
        .env_remove("ATTENDANT_CONFIG")
        .env("USER", "e2e")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "`attendant-server {}` exited with {:?}\n--- stdout\n{}\n--- stderr\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A fake Archer C7 v5 on 24.10.4 with a recording `sysupgrade`, trusting the channel root
/// key and the server's image key.
struct Router {
    dir: tempfile::TempDir,
    spec: RouterSpec,
    server: String,
}

impl Router {
    fn new(channel: Option<&str>, machine_id: &str, user: &[&str]) -> Self {
        Self::with_server(channel, machine_id, user, &shared().url)
    }

    fn with_server(channel: Option<&str>, machine_id: &str, user: &[&str], server: &str) -> Self {
        let shared = shared();
        let dir = tempfile::tempdir().unwrap();
        let mut spec = RouterSpec::new("24.10.4", "ath79/generic", "tplink_archer-c7-v5", BOARD);
        spec.model = "TP-Link Archer C7 v5".to_owned();
        spec.user_packages = user.iter().map(|s| (*s).to_owned()).collect();
        write_root(dir.path(), &catalog(), &spec).unwrap();
        let router = Self {
            dir,
            spec,
            server: server.to_owned(),
        };
        let channel = channel.map_or(String::new(), |c| format!("\toption channel '{c}'\n"));
        router.write(
            "etc/config/attendedsysupgrade",
            &format!(
                "config server 'server'\n\toption url '{server}'\n\n\
                 config attendant 'attendant'\n\toption require_signature '1'\n\
                 \toption poll_interval '500'\n{channel}"
            ),
        );
        router.write(
            &format!("etc/attendant/keys/{}", shared.root_fingerprint),
            &shared.root_public,
        );
        router.write(
            &format!("etc/opkg/keys/{}", shared.image_fingerprint),
            &shared.image_public,
        );
        router.write(
            &format!("etc/opkg/keys/{}", shared.mirror.fingerprint),
            &std::fs::read_to_string(&shared.mirror.public_key).unwrap(),
        );
        router.write("etc/machine-id", &format!("{machine_id}\n"));
        attendant_e2e::sysupgrade::install(router.path(), 0).unwrap();
        router
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, relative: &str, contents: &str) {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        process::on_root(&shared().agent, self.path())
            .args(args)
            .arg("--root")
            .arg(self.path())
            .arg("--server")
            .arg(&self.server)
            .output()
            .unwrap()
    }

    /// `check --json ARGS`: the exit code and the result's `data`.
    fn check(&self, args: &[&str]) -> (i32, Value) {
        let output = self.run(&[&["check", "--json"][..], args].concat());
        let code = output.status.code().unwrap();
        let Some(line) = stdout(&output).lines().last().map(str::to_owned) else {
            panic!("no JSON from check (exit {code}):\n{}", stderr(&output));
        };
        let result: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{e}: {line}\n--- stderr\n{}", stderr(&output)));
        (code, result["data"].clone())
    }

    fn firmware(&self) -> PathBuf {
        self.path().join("tmp/firmware.bin")
    }

    fn build_record(&self) -> Value {
        serde_json::from_slice(
            &std::fs::read(self.path().join("tmp/firmware.bin.build.json")).unwrap(),
        )
        .unwrap()
    }

    fn sysupgrade_calls(&self) -> Vec<String> {
        attendant_e2e::sysupgrade::calls(self.path())
    }

    fn clear_sysupgrade_log(&self) {
        attendant_e2e::sysupgrade::clear(self.path());
    }

    fn uci(&self) -> String {
        std::fs::read_to_string(self.path().join("etc/config/attendedsysupgrade")).unwrap()
    }

    /// The running firmware's `/etc/attendant/channel.json`.
    fn stamp(&self) -> Option<Value> {
        let bytes = std::fs::read(self.path().join("etc/attendant/channel.json")).ok()?;
        Some(serde_json::from_slice(&bytes).unwrap())
    }

    /// Reboots into the image sysupgrade flashed last; clears the sysupgrade log.
    fn boot_flashed(&mut self) -> Booted {
        let booted = reboot::boot_flashed(self.path(), &catalog(), &self.spec).unwrap();
        self.spec = booted.spec.clone();
        self.clear_sysupgrade_log();
        booted
    }

    /// Waits until the server publishes `channel` with this device.
    fn wait_for_channel(&self, channel: &str) {
        self.wait_for(|_| true, channel);
    }

    /// Waits until `channel`'s index for the device, as served, satisfies `ready`.
    fn wait_for(&self, ready: impl Fn(&Value) -> bool, channel: &str) {
        wait_until(&format!("the published index of `{channel}`"), || {
            published_index(channel).is_some_and(|index| ready(&index))
        });
    }

    fn wait_for_build(&self, channel: &str, build: u64) {
        self.wait_for(
            |index| {
                index["images"]
                    .as_array()
                    .and_then(|i| i.last())
                    .is_some_and(|b| b["version"] == build)
            },
            channel,
        );
    }

    fn wait_for_phase(&self, channel: &str, percent: u64) {
        self.wait_for(
            |index| {
                let latest = index["images"].as_array().and_then(|i| i.last()).cloned();
                latest.is_some_and(|b| b["phased-percentage"].as_u64().unwrap_or(100) == percent)
            },
            channel,
        );
    }
}

/// The device's index of `channel` as the server serves it now (unchecked: the agent checks).
fn published_index(channel: &str) -> Option<Value> {
    let channels: Value =
        serde_json::from_slice(&get(shared().addr, "/channels/channels.json")?).ok()?;
    let path = channels["channels"][channel]["devices"][DEVICE]["index"]
        .as_str()?
        .to_owned();
    serde_json::from_slice(&get(shared().addr, &path)?).ok()
}

/// Polls `done` until it holds, for at most [`SETTLE`].
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < SETTLE, "waited {SETTLE:?} for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn catalog() -> Catalog {
    Catalog::new(Seed(DEFAULT_SEED))
}

fn paths(check: &Value) -> Vec<(Vec<u64>, u64)> {
    check["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let builds = p["builds"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_u64().unwrap());
            (builds.collect(), p["score"].as_u64().unwrap())
        })
        .collect()
}

/// CPython's phase for build `build` of `channel`: the reference the agent must match.
fn python_phase(channel: &str, build: u64, machine_id: &str) -> u64 {
    let output = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import random; print(random.Random('{channel}.{build}.{machine_id}').randint(0, 100))"
        ))
        .output()
        .expect("python3 computes the phase");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// What the proxy does to the traffic.
#[derive(Debug, Clone)]
enum Fault {
    None,
    /// Answer these paths with these bodies (a replayed publication, an injected file).
    Serve(BTreeMap<String, Vec<u8>>),
    /// Flip one byte of this file.
    Flip(&'static str),
    /// `channels.json` expired a day ago, correctly signed by the operator's signing key (a
    /// mirror serving a file past its `expires`, which `serve` never lets happen on its own).
    Expire,
}

/// An HTTP proxy in front of the server, one request per connection, that applies a
/// [`Fault`] and keeps the last body of every path it passed on.
struct Proxy {
    url: String,
    state: Arc<ProxyState>,
}

struct ProxyState {
    upstream: SocketAddr,
    fault: Mutex<Fault>,
    bodies: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(ProxyState {
            upstream,
            fault: Mutex::new(Fault::None),
            bodies: Mutex::default(),
        });
        let served = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let state = served.clone();
                std::thread::spawn(move || {
                    let _ = forward(stream, &state);
                });
            }
        });
        Self { url, state }
    }

    fn set(&self, fault: Fault) {
        *self.state.fault.lock().unwrap() = fault;
    }

    fn last_bodies(&self) -> BTreeMap<String, Vec<u8>> {
        self.state.bodies.lock().unwrap().clone()
    }
}

fn forward(client: TcpStream, state: &ProxyState) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let Some(request) = http_request::read(&mut reader)? else {
        return Ok(());
    };
    let fault = state.fault.lock().unwrap().clone();
    let path = request.path.clone();
    let (status, content_type, body) = match &fault {
        Fault::Serve(files) if files.contains_key(&path) => (
            "200 OK".to_owned(),
            "application/octet-stream".to_owned(),
            files[&path].clone(),
        ),
        _ => {
            let (status, content_type, mut body) = exchange(state.upstream, &request)?;
            if status.starts_with("200") {
                state
                    .bodies
                    .lock()
                    .unwrap()
                    .insert(path.clone(), body.clone());
                match &fault {
                    Fault::Flip(file) if path == *file => {
                        let at = body.len() / 2;
                        body[at] ^= 0x01;
                    }
                    Fault::Expire if path == "/channels/channels.json" => body = expired(&body),
                    Fault::Expire if path == "/channels/channels.json.sig" => {
                        let (_, _, file) = exchange(
                            state.upstream,
                            &http_request::Request {
                                method: "GET".to_owned(),
                                path: "/channels/channels.json".to_owned(),
                                headers: Vec::new(),
                                body: Vec::new(),
                            },
                        )?;
                        let secret = shared().dir.path().join("signing.sec");
                        let key = SecretKey::parse(&std::fs::read(secret).unwrap()).unwrap();
                        body = key.sign(&expired(&file)).to_file().into_bytes();
                    }
                    _ => {}
                }
            }
            (status, content_type, body)
        }
    };
    let mut client = client;
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    client.write_all(head.as_bytes())?;
    if request.method != "HEAD" {
        client.write_all(&body)?;
    }
    client.flush()?;
    client.shutdown(std::net::Shutdown::Both)
}

/// `channels.json` with the same serial, generated 8 days and expired 1 day ago.
fn expired(file: &[u8]) -> Vec<u8> {
    let mut doc = parse_channels(file).unwrap();
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    // Whole days, so the file and its `.sig`, made by two requests, agree.
    let today = now - now % DAY;
    doc.global.generated_at = today - 8 * DAY;
    doc.global.expires = today - DAY;
    encode_channels(&doc)
}

/// One request to `upstream` as HTTP/1.0, so the answer is not chunked: status, content type,
/// body.
fn exchange(
    upstream: SocketAddr,
    request: &http_request::Request,
) -> std::io::Result<(String, String, Vec<u8>)> {
    let mut stream = TcpStream::connect(upstream)?;
    let mut head = format!(
        "{} {} HTTP/1.0\r\nHost: {upstream}\r\n",
        request.method, request.path
    );
    for (name, value) in &request.headers {
        if !["host", "connection", "content-length"].contains(&name.to_ascii_lowercase().as_str()) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", request.body.len()));
    stream.write_all(head.as_bytes())?;
    stream.write_all(&request.body)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response head");
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let status = head
        .lines()
        .next()
        .unwrap_or_default()
        .split_once(' ')
        .map_or_else(String::new, |(_, status)| status.to_owned());
    let content_type = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map_or_else(
            || "application/octet-stream".to_owned(),
            |(_, v)| v.trim().to_owned(),
        );
    Ok((status, content_type, answer[split + 4..].to_vec()))
}

/// GETs `path` from `addr`; the body of a 200 answer.
fn get(addr: SocketAddr, path: &str) -> Option<Vec<u8>> {
    let request = http_request::Request {
        method: "GET".to_owned(),
        path: path.to_owned(),
        headers: Vec::new(),
        body: Vec::new(),
    };
    let (status, _, body) = exchange(addr, &request).ok()?;
    status.starts_with("200").then_some(body)
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
