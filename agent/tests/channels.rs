//! Release channels through the command line: a signed channel tree (root key → ucert
//! delegation → signing key → `channels.json`, `index.json`) served over loopback HTTP, and the
//! agent's `channels` and `check --channel` against it — paths and scores, phases checked with
//! python3, fallbacks, aliases, redirects, and every refusal of the metadata with exit code 7.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests stop at their first failure"
)]

mod util;

use std::ops::Deref;
use std::process::Command;
use std::sync::{Arc, Mutex};

use attendant_e2e::channel_tree::{
    ChannelTree, DAY, DEVICE, MACHINE_ID, entry, freshness, image, key, now,
};
use attendant_proto::channel::{IndexDoc, IndexGlobal, IndexImage, encode_index};
use util::{Reply, Router, Server, assert_exit, stdout};

const SALT: &str = "test-salt";

/// A channel server's published tree, served over loopback.
struct Tree {
    channel: ChannelTree,
    server: Server,
}

impl Deref for Tree {
    type Target = ChannelTree;

    fn deref(&self) -> &ChannelTree {
        &self.channel
    }
}

impl Tree {
    fn new() -> Self {
        Self::serving(None)
    }

    /// A tree served beside the fake build API of `util::upgrade_server` building `offer`.
    fn serving(offer: Option<util::Offer>) -> Self {
        let channel = ChannelTree::new();
        let served = channel.files();
        let url_cell: Arc<Mutex<String>> = Arc::default();
        let build_api = offer.map(|offer| util::upgrade_handler(offer, url_cell.clone()));
        let server = Server::start(move |seen, n| {
            if seen.path == "/api/v1/report" {
                return if seen.method == "GET" {
                    Reply::json(200, &serde_json::json!({"salt": SALT}))
                } else {
                    Reply::json(202, &serde_json::json!({"status": "accepted"}))
                };
            }
            match (served.get(&seen.path), &build_api) {
                (Some(bytes), _) => Reply::bytes(200, bytes),
                (None, Some(build_api)) => build_api(seen, n),
                (None, None) => Reply::json(404, &serde_json::json!({"detail": "not found"})),
            }
        });
        *url_cell.lock().unwrap() = server.url.clone();
        Self { channel, server }
    }

    /// A router following `channel`, trusting the root key, with a fixed machine-id.
    fn router(&self, channel: &str) -> Router {
        let router = Router::new(&self.server.url);
        router.configure(&self.server.url, &format!("\toption channel '{channel}'\n"));
        self.trust(router.path());
        router
    }
}

/// The router runs `build` of `channel` (its image's `channel.json`).
fn stamp(router: &Router, channel: &str, target: Option<&str>, build: u64) {
    attendant_e2e::channel_tree::stamp(router.path(), channel, target, build);
}

fn python_phase(channel: &str, build: u64) -> u64 {
    let output = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import random; print(random.Random('{channel}.{build}.{MACHINE_ID}').randint(0, 100))"
        ))
        .output()
        .expect("python3 checks the phase");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn check_json(router: &Router, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["check", "--json"];
    all.extend_from_slice(args);
    let output = router.run(&all);
    let last = stdout(&output)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    let result: serde_json::Value =
        serde_json::from_str(&last).unwrap_or_else(|e| panic!("{e}: {output:?}"));
    (output.status.code().unwrap(), result)
}

fn paths(data: &serde_json::Value) -> Vec<(Vec<u64>, u64)> {
    data["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["builds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|b| b.as_u64().unwrap())
                    .collect(),
                p["score"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_stock_router_moves_to_the_newest_build_and_dry_run_shows_the_scores() {
    let tree = Tree::new();
    let index = tree.index(
        "stable",
        vec![image(5, "24.10.4", 6), image(6, "24.10.5", 7)],
        3,
    );
    tree.publish(&[("stable", entry(&index))], 3);
    let router = tree.router("stable");
    let (code, result) = check_json(&router, &[]);
    assert_eq!(code, 3, "{result}");
    let data = &result["data"];
    assert_eq!(data["current_build"], 0);
    assert_eq!(data["full_move"]["reason"], "no_stamp");
    assert_eq!(paths(data), [(vec![6], 101), (vec![5], 100 + 9001)]);
    assert_eq!(data["target"]["build"], 6);
    assert_eq!(data["target"]["prebuilt"], true);
    assert_eq!(data["target"]["older_openwrt"], false);
    assert_eq!(
        data["rollout"]["phase"].as_u64().unwrap(),
        python_phase("stable", 6)
    );

    let output = router.run(&["check", "--dry-run"]);
    assert_exit(&output, 3);
    let text = stdout(&output);
    assert!(text.contains("* path 6"), "{text}");
    assert!(text.contains("score    101"), "{text}");
    assert!(text.contains("Target phase:"), "{text}");
}

#[test]
fn minversion_leads_through_a_stepping_stone() {
    let tree = Tree::new();
    let mut newest = image(7, "24.10.5", 5);
    newest.minversion = Some(5);
    let index = tree.index(
        "stable",
        vec![image(3, "24.10.4", 5), image(5, "24.10.4", 5), newest],
        4,
    );
    tree.publish(&[("stable", entry(&index))], 4);
    let router = tree.router("stable");
    stamp(&router, "stable", None, 3);
    let (code, result) = check_json(&router, &[]);
    assert_eq!(code, 3, "{result}");
    assert_eq!(
        paths(&result["data"]),
        [(vec![5, 7], 205), (vec![5], 100 + 2 * 9001)]
    );
    assert_eq!(result["data"]["target"]["build"], 7);
}

#[test]
fn phased_in_out_fallback_and_the_percentage_override() {
    let phase = python_phase("stable", 7);
    let tree = Tree::new();
    let publish = |percentage: u8, serial: u64| {
        let mut newest = image(7, "24.10.5", 5);
        newest.phased_percentage = Some(percentage);
        let index = tree.index("stable", vec![image(6, "24.10.4", 5), newest], serial);
        tree.publish(&[("stable", entry(&index))], serial);
    };
    let router = tree.router("stable");
    stamp(&router, "stable", None, 5);

    // Exactly at the router's phase: in.
    publish(u8::try_from(phase.max(1)).unwrap(), 10);
    let (_, result) = check_json(&router, &[]);
    assert_eq!(result["data"]["rollout"]["phase"].as_u64().unwrap(), phase);
    if phase >= 1 {
        assert_eq!(result["data"]["target"]["build"], 7, "{result}");
    }

    // One below: out, back to build 6.
    if phase >= 2 {
        publish(u8::try_from(phase - 1).unwrap(), 11);
        let (code, result) = check_json(&router, &[]);
        assert_eq!(code, 3);
        assert_eq!(result["data"]["rollout"]["phased_in"], false);
        assert_eq!(result["data"]["target"]["build"], 6, "{result}");
        // The override puts the router first in line.
        let (_, result) = check_json(&router, &["--percentage", "0"]);
        assert_eq!(result["data"]["target"]["build"], 7, "{result}");
    }

    // Pulled: nobody gets 7, not even with the override.
    publish(0, 12);
    let (_, result) = check_json(&router, &["--percentage", "0"]);
    assert_eq!(result["data"]["target"]["build"], 6, "{result}");

    // Phased out with no older path: no upgrade.
    stamp(&router, "stable", None, 6);
    let (code, result) = check_json(&router, &[]);
    assert_eq!(code, 0, "{result}");
    assert!(result["data"]["target"].is_null());
}

#[test]
fn an_alias_retarget_and_a_redirect_are_full_moves() {
    let tree = Tree::new();
    let stable = tree.index("stable", vec![image(8, "24.10.5", 5)], 5);
    let daily = tree.index(
        "daily",
        vec![image(3, "24.10.5", 5), image(4, "24.10.5", 5)],
        5,
    );
    let mut daily_entry = entry(&daily);
    daily_entry.alias = Some("stable".into());
    let mut old = entry(&stable);
    old.hidden = true;
    old.redirect = Some("stable".into());
    tree.publish(
        &[
            ("daily", daily_entry),
            ("old", old),
            ("stable", entry(&stable)),
        ],
        5,
    );

    // The running build followed `testing`; the alias now follows `stable`.
    let router = tree.router("daily");
    stamp(&router, "daily", Some("testing"), 4);
    let (code, result) = check_json(&router, &[]);
    assert_eq!(code, 3, "{result}");
    assert_eq!(result["data"]["full_move"]["reason"], "alias_retarget");
    assert_eq!(result["data"]["target"]["build"], 4);

    // A router on the retired channel is sent on to `stable`.
    let router = tree.router("old");
    stamp(&router, "old", None, 9);
    let (code, result) = check_json(&router, &[]);
    assert_eq!(code, 3, "{result}");
    assert_eq!(result["data"]["name"], "stable");
    assert_eq!(result["data"]["redirected_from"], "old");
    assert_eq!(result["data"]["target"]["build"], 8);

    // `channels` hides the retired channel unless asked.
    let output = router.run(&["channels", "--json"]);
    assert_exit(&output, 0);
    let last: serde_json::Value =
        serde_json::from_str(stdout(&output).lines().last().unwrap()).unwrap();
    let names: Vec<&str> = last["data"]["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["daily", "stable"]);
    let output = router.run(&["channels", "--all"]);
    assert_exit(&output, 0);
    assert!(
        stdout(&output).contains("old (configured) (hidden) (redirects to: stable): build 8"),
        "{output:?}"
    );
}

/// Runs `check` and returns the exit code and the error line, after checking that the refusal
/// names its check `cause` on a line of its own and, with `--json`, in the result's `cause`
/// with the same exit code.
fn refusal(router: &Router, cause: &str) -> (i32, String) {
    let output = router.run(&["check"]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let code = output.status.code().unwrap();
    assert!(
        stderr.lines().any(|line| line == format!("cause: {cause}")),
        "expected `cause: {cause}` in:\n{stderr}"
    );
    let (json_code, result) = check_json(router, &[]);
    let field = |name: &str| result.get(name).cloned().unwrap_or_default();
    assert_eq!(field("cause"), cause, "{result}");
    assert_eq!(field("exit_code"), code, "{result}");
    assert_eq!(json_code, code, "{result}");
    (code, stderr)
}

#[test]
fn bad_metadata_is_refused_with_its_cause_and_exit_code_7() {
    let tree = Tree::new();
    let index = tree.index("stable", vec![image(6, "24.10.5", 5)], 20);
    tree.publish(&[("stable", entry(&index))], 20);
    let router = tree.router("stable");
    let output = router.run(&["check"]);
    let (code, stderr) = (
        output.status.code().unwrap(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert_eq!(code, 3, "{stderr}");

    // Replayed: an older serial after 20 was seen.
    tree.publish(&[("stable", entry(&index))], 19);
    let (code, stderr) = refusal(&router, "serial-rollback");
    assert_eq!(code, 7, "{stderr}");
    assert!(
        stderr.contains("serial 19, lower than serial 20"),
        "{stderr}"
    );

    // Expired.
    let mut stale = freshness(21);
    stale.generated_at = now() - 10 * DAY;
    stale.expires = now() - DAY;
    tree.publish_with(&[("stable", entry(&index))], stale, tree.signing_key());
    let (code, stderr) = refusal(&router, "expired");
    assert_eq!(code, 7, "{stderr}");
    assert!(stderr.contains("the metadata expired at"), "{stderr}");

    // Forged: signed by a key the root never delegated.
    let forger = key(9);
    tree.publish_with(&[("stable", entry(&index))], freshness(22), &forger);
    let (code, stderr) = refusal(&router, "no-delegation");
    assert_eq!(code, 7, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "no delegation for the signing key `{}`",
            forger.public_key().fingerprint()
        )),
        "{stderr}"
    );

    // Tampered after signing.
    tree.publish(&[("stable", entry(&index))], 23);
    let mut bytes = tree.get("/channels/channels.json");
    let at = bytes.iter().position(|b| *b == b'2').unwrap();
    bytes[at] = b'3';
    tree.put("/channels/channels.json", bytes);
    let (code, stderr) = refusal(&router, "bad-signature");
    assert_eq!(code, 7, "{stderr}");
    assert!(stderr.contains("does not match the file"), "{stderr}");

    // Revoked signing key.
    tree.publish(&[("stable", entry(&index))], 24);
    tree.revoke(tree.signing_key().public_key().fingerprint());
    let (code, stderr) = refusal(&router, "revoked");
    assert_eq!(code, 7, "{stderr}");
    assert!(stderr.contains("has been revoked"), "{stderr}");
}

#[test]
fn an_index_of_another_device_is_refused() {
    let tree = Tree::new();
    // A correctly signed index of another device, offered as this one's.
    let path = format!("/channels/stable/{DEVICE}/index.1.json");
    let doc = IndexDoc {
        global: IndexGlobal {
            freshness: freshness(1),
            channel: "stable".into(),
            device: "ath79/generic/tplink_archer-c6-v2".into(),
        },
        images: Vec::new(),
    };
    tree.signed(&path, encode_index(&doc), tree.signing_key());
    tree.publish(&[("stable", entry(&path))], 1);
    let (code, stderr) = refusal(&tree.router("stable"), "wrong-device");
    assert_eq!(code, 7, "{stderr}");
    assert!(stderr.contains("the index is for"), "{stderr}");
}

#[test]
fn a_router_without_a_pinned_root_key_believes_nothing() {
    let tree = Tree::new();
    let index = tree.index("stable", vec![image(6, "24.10.5", 5)], 1);
    tree.publish(&[("stable", entry(&index))], 1);
    let router = tree.router("stable");
    std::fs::remove_dir_all(router.path().join("etc/attendant/keys")).unwrap();
    let (code, stderr) = refusal(&router, "no-root-key");
    assert_eq!(code, 7, "{stderr}");
    assert!(stderr.contains("no channel root key is pinned"), "{stderr}");
}

/// Publishes `bytes` as the image of `build` in the pool, signed with the image key the router
/// trusts, and returns the index image.
fn published_image(tree: &Tree, build: u64, bytes: &[u8]) -> IndexImage {
    tree.publish_image(build, "24.10.5", bytes, &util::signing_key())
}

#[test]
fn upgrade_flashes_the_published_image_of_the_next_hop_after_verifying_it() {
    let tree = Tree::new();
    let firmware = util::image(&[util::BOARD], "1.0");
    let mut newest = published_image(&tree, 7, &firmware);
    newest.minversion = Some(6);
    let stone = published_image(&tree, 6, &firmware);
    let index = tree.index("stable", vec![stone, newest], 2);
    tree.publish(&[("stable", entry(&index))], 2);
    let router = tree.router("stable");
    stamp(&router, "stable", None, 5);

    // This server publishes channel files only: the packages cannot be compared.
    let output = router.run(&["upgrade", "--json"]);
    assert_exit(&output, 5);
    assert!(router.sysupgrade_calls().is_empty());
    let output = router.run(&["upgrade", "--prebuilt", "--json"]);
    assert_exit(&output, 0);
    let last: serde_json::Value =
        serde_json::from_str(stdout(&output).lines().last().unwrap()).unwrap();
    // The path is 6 then 7: build 6 is flashed first.
    assert_eq!(last["data"]["build"], 6, "{last}");
    assert_eq!(last["data"]["channel"], "stable");
    let path = router.path().join("tmp/firmware.bin");
    assert_eq!(std::fs::read(&path).unwrap(), firmware);
    assert_eq!(
        router.sysupgrade_calls(),
        [
            format!("--test {}", path.display()),
            path.display().to_string()
        ]
    );

    // Back from the reboot into build 6: the report says so, with the salted machine-id only.
    stamp(&router, "stable", None, 6);
    let output = router.run(&["report", "--json"]);
    assert_exit(&output, 0);
    let posted: Vec<serde_json::Value> = tree
        .server
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/api/v1/report")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(
        posted,
        [serde_json::json!({
            "channel": "stable",
            "device": DEVICE,
            "from_build": 5,
            "to_build": 6,
            "result": "booted",
            "machine": attendant_proto::channel::machine_token(SALT, MACHINE_ID),
        })]
    );
    assert!(!router.path().join("etc/attendant/reports.json").exists());

    // A pool file that is not what the index says is never flashed.
    let other = tree.router("stable");
    stamp(&other, "stable", None, 6);
    let mut broken = firmware.clone();
    broken.push(0);
    let index_doc = tree.get(&index);
    let doc: serde_json::Value = serde_json::from_slice(&index_doc).unwrap();
    let pool = doc["images"][1]["files"][0]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    tree.put(&pool, broken);
    let output = other.run(&["upgrade", "--prebuilt"]);
    assert_ne!(output.status.code(), Some(0), "{output:?}");
    assert!(other.sysupgrade_calls().is_empty());
    // The failure is recorded for the server, with its cause.
    let reports: serde_json::Value = serde_json::from_slice(
        &std::fs::read(other.path().join("etc/attendant/reports.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(reports["reports"][0]["result"], "failed-before-flash");
    assert_eq!(reports["reports"][0]["to_build"], 7);
    assert!(
        reports["reports"][0]["cause"].as_str().unwrap().len() > 10,
        "{reports}"
    );
}

/// A channel tree beside a build API that builds `firmware`, with build 6 (OpenWrt 24.10.6,
/// which that API offers) published, and a router at build 5 following the channel.
fn attended_setup(firmware: &[u8], allow_defaults: bool) -> (Tree, Router, IndexImage) {
    let mut offer = util::Offer::new(firmware.to_vec());
    offer.allow_defaults = allow_defaults;
    let tree = Tree::serving(Some(offer));
    let mut build = published_image(&tree, 6, b"the published image");
    build.openwrt_version = "24.10.6".to_owned();
    let index = tree.index("stable", vec![build.clone()], 2);
    tree.publish(&[("stable", entry(&index))], 2);
    let router = tree.router("stable");
    stamp(&router, "stable", None, 5);
    (tree, router, build)
}

/// A router with packages the recipe lacks gets an image built for it, stamped with the
/// build's `channel.json` by a uci-defaults script; once the recipe adds them, the published
/// image is flashed.
#[test]
fn packages_beyond_the_recipe_take_an_attended_build() {
    let firmware = util::image(&[util::BOARD], "1.0");

    // A server that refuses uci-defaults scripts cannot build it, and says so.
    let (_refusing, router, _) = attended_setup(&firmware, false);
    let output = router.run(&["upgrade"]);
    assert_exit(&output, 4);
    util::assert_stderr_has(&output, "does not accept the uci-defaults script");
    assert!(router.sysupgrade_calls().is_empty());

    let (tree, router, mut build) = attended_setup(&firmware, true);
    let output = router.run(&["check", "--json"]);
    assert_exit(&output, 3);
    assert!(
        !util::stderr(&output).contains("cannot compare"),
        "{output:?}"
    );
    let result: serde_json::Value =
        serde_json::from_str(stdout(&output).lines().last().unwrap()).unwrap();
    let data = &result["data"];
    assert_eq!(data["target"]["prebuilt"], false, "{data}");
    let extra: Vec<String> =
        serde_json::from_value(data["target"]["extra_packages"].clone()).unwrap();
    // `nftables-json` provides the default `nftables`: not an extra.
    assert_eq!(
        extra,
        ["busybox", "htop", "luci", "luci-app-attendedsysupgrade"],
        "{data}"
    );

    let output = router.run(&["upgrade", "--json"]);
    assert_exit(&output, 0);
    let last: serde_json::Value =
        serde_json::from_str(stdout(&output).lines().last().unwrap()).unwrap();
    assert_eq!(last["data"]["build"], 6, "{last}");
    let path = router.path().join("tmp/firmware.bin");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        firmware,
        "the built image is flashed"
    );
    let posted = tree
        .server
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path == "/api/v1/build")
        .expect("a build was requested");
    let request: serde_json::Value = serde_json::from_slice(&posted.body).unwrap();
    assert_eq!(request["version"], "24.10.6");
    let packages = request["packages_versions"].as_object().unwrap();
    assert!(extra.iter().all(|p| packages.contains_key(p)), "{request}");
    // The script writes the stamp the server would have embedded.
    let script = request["defaults"].as_str().unwrap();
    let json = script.lines().nth(2).unwrap();
    let written = attendant_proto::channel::parse_stamp(json.as_bytes()).unwrap();
    assert_eq!((written.channel.as_str(), written.build), ("stable", 6));
    assert_eq!(written.device, DEVICE);

    // With the router's packages in the recipe, the published image will do.
    build.recipe = Some(attendant_proto::channel::IndexRecipe {
        add: extra,
        ..Default::default()
    });
    let index = tree.index("stable", vec![build], 3);
    tree.publish(&[("stable", entry(&index))], 3);
    let (code, result) = check_json(&router, &[]);
    assert_eq!(code, 3, "{result}");
    let data = &result["data"];
    assert_eq!(data["target"]["prebuilt"], true, "{data}");
    assert_eq!(data["target"]["extra_packages"], serde_json::json!([]));
}
