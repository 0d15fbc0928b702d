//! The plugin run as rpcd runs it: `list`, and `call <method>` with JSON on stdin, against a
//! fake router root and a fake upgrade server. Every reply is held to `contract.json`.

mod util;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use util::*;

#[test]
fn list_prints_the_contract_signatures_at_once() {
    let router = Router::new("http://127.0.0.1:9");
    let started = Instant::now();
    let output = router.list();
    let took = started.elapsed();
    assert!(output.status.success(), "{output:?}");
    assert!(took < Duration::from_secs(2), "list took {took:?}");
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let contract = contract();
    let signatures: serde_json::Map<String, Value> = contract["methods"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, method)| (name.clone(), method["signature"].clone()))
        .collect();
    assert_eq!(printed, Value::Object(signatures));
    assert!(output.stdout.ends_with(b"}\n"));
}

#[test]
fn the_acl_grants_every_method_once_in_its_group() {
    let acl: Value =
        serde_json::from_str(include_str!("../root/usr/share/rpcd/acl.d/attendant.json")).unwrap();
    let contract = contract();
    let group = &acl[contract["acl"]["group"].as_str().unwrap()];
    for (name, method) in contract["methods"].as_object().unwrap() {
        let access = method["access"].as_str().unwrap();
        let granted = group[access]["ubus"]["attendant"].as_array().unwrap();
        assert!(granted.contains(&json!(name)), "{name} not in {access}");
        let other = if access == "read" { "write" } else { "read" };
        assert!(
            !group[other]["ubus"]["attendant"]
                .as_array()
                .unwrap()
                .contains(&json!(name))
        );
    }
}

#[test]
fn malformed_json_is_an_error_object() {
    let router = Router::new("http://127.0.0.1:9");
    let (output, took) = router.call_raw("info", b"{\"all\": tru");
    let reply = reply_of(&output, took, "info");
    assert_error_shape(&contract(), &reply, "invalid_json");
    let (output, took) = router.call_raw("packages", b"[true]");
    let reply = reply_of(&output, took, "packages");
    assert_eq!(
        reply["error"]["message"],
        "the request is not a JSON object: expected an object, got an array"
    );
}

#[test]
fn wrong_types_name_the_argument() {
    let router = Router::new("http://127.0.0.1:9");
    let contract = contract();
    let reply = router.call("packages", json!({"all": "yes"}));
    assert_error_shape(&contract, &reply, "invalid_argument");
    assert_eq!(reply["error"]["argument"], "all");
    let reply = router.call("start", json!({"rootfs_size": "big"}));
    assert_eq!(reply["error"]["argument"], "rootfs_size");
    assert_eq!(
        reply["error"]["message"],
        "argument `rootfs_size` must be an integer from 0 to 4294967295, got a string"
    );
    let reply = router.call("status", json!({"job": "../../etc"}));
    assert_eq!(reply["error"]["argument"], "job");
    let reply = router.call("install", json!({}));
    assert_eq!(reply["error"]["message"], "argument `job` is required");
    // Nothing was started by the refused `start`.
    assert_eq!(router.call("status", json!({})), json!({"state": "idle"}));
}

#[test]
fn unknown_methods_are_named() {
    let router = Router::new("http://127.0.0.1:9");
    let reply = router.call("reboot", json!({}));
    assert_error_shape(&contract(), &reply, "unknown_method");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("unknown method `reboot`"),
        "{reply}"
    );
}

#[test]
fn oversized_input_is_refused() {
    let router = Router::new("http://127.0.0.1:9");
    let mut input = b"{\"add\": [\"".to_vec();
    input.extend(std::iter::repeat_n(b'a', 200_000));
    input.extend(b"\"]}");
    let (output, took) = router.call_raw("check", &input);
    let reply = reply_of(&output, took, "check");
    assert_error_shape(&contract(), &reply, "input_too_large");
}

#[test]
fn info_reads_the_router_root() {
    let router = Router::new("http://asu.lan:8000");
    let reply = router.call("info", json!({}));
    assert_reply_shape(&contract(), "info", "ok", &reply);
    assert_eq!(reply["board_name"], BOARD);
    assert_eq!(reply["version"], "24.10.4");
    assert_eq!(reply["target"], "ath79/generic");
    assert_eq!(reply["rootfs_type"], "squashfs");
    assert_eq!(reply["package_manager"], "opkg");
    assert_eq!(reply["server"], "http://asu.lan:8000");
}

#[test]
fn packages_answers_like_rpc_sys_packagelist() {
    let router = Router::new("http://127.0.0.1:9");
    let status = include_bytes!("../../proto/testdata/opkg/status-24.10-ath79");
    let parsed = attendant_proto::opkg::parse(status).unwrap();
    let top = router.call("packages", json!({}));
    assert_reply_shape(&contract(), "packages", "ok", &top);
    assert_eq!(top, json!({"packages": parsed.packagelist(false)}));
    let all = router.call("packages", json!({"all": true}));
    assert_eq!(all, json!({"packages": parsed.packagelist(true)}));
    assert!(
        all["packages"].as_object().unwrap().len() > top["packages"].as_object().unwrap().len()
    );
}

#[test]
fn config_set_changes_only_the_given_keys_atomically() {
    let router = Router::new("http://asu.lan");
    let contract = contract();
    let before = router.call("config_get", json!({}));
    assert_reply_shape(&contract, "config_get", "ok", &before);
    assert_eq!(before["url"], "http://asu.lan");
    assert_eq!(before["advanced_mode"], true);
    assert_eq!(before["require_signature"], true);
    assert_eq!(before["upgrade_packages"], true);

    let after = router.call(
        "config_set",
        json!({"url": "https://asu.example.org/", "rebuilders": ["https://r1.example.org"], "auto_search": 1, "keep_settings": false, "rootfs_size": 300}),
    );
    assert_reply_shape(&contract, "config_set", "ok", &after);
    assert_eq!(after["url"], "https://asu.example.org");
    assert_eq!(after["rebuilders"], json!(["https://r1.example.org"]));
    assert_eq!(after["auto_search"], true);
    assert_eq!(after["keep_settings"], false);
    assert_eq!(after["rootfs_size"], 300);
    assert_eq!(after["advanced_mode"], true);
    assert_eq!(router.call("config_get", json!({})), after);
    let text = router.read("etc/config/attendedsysupgrade");
    assert!(
        text.contains("\tlist rebuilder 'https://r1.example.org'\n"),
        "{text}"
    );
    assert!(text.contains("\toption poll_interval '500'\n"), "{text}");
    let names: Vec<String> = std::fs::read_dir(router.path().join("etc/config"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["attendedsysupgrade"], "no temporary file is left");

    let refused = router.call(
        "config_set",
        json!({"url": "ftp://x", "advanced_mode": false}),
    );
    assert_error_shape(&contract, &refused, "invalid_argument");
    assert_eq!(router.call("config_get", json!({})), after);
}

#[test]
fn an_unreachable_server_fails_check_with_a_server_error() {
    let router = Router::new("http://127.0.0.1:9");
    let reply = router.call("check", json!({}));
    assert_error_shape(&contract(), &reply, "server");
}

#[test]
fn check_reports_the_package_table_and_problems() {
    let server = UpgradeServer::start(image());
    let router = Router::new(&server.url);
    router.write("usr/lib/opkg/status", &opkg_status_without("urngd"));
    let contract = contract();
    let reply = router.call("check", json!({}));
    assert_reply_shape(&contract, "check", "upgrade_available", &reply);
    assert_eq!(reply["verdict"], "upgrade_available");
    assert_eq!(reply["target"]["version"], "24.10.6");
    assert!(
        reply["offered"]
            .as_array()
            .unwrap()
            .contains(&json!("24.10.6"))
    );
    let luci = reply["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["name"] == "luci")
        .unwrap();
    assert_eq!(luci["change"], "upgrade");
    assert_eq!(reply["summary"]["upgrade"], 1);
    let urngd = &reply["warnings"][0];
    assert_eq!(
        urngd["message"], "default package `urngd` is not installed and will not be in the image",
        "{reply:#}"
    );
    assert_eq!(urngd["hint"]["code"], "ignored_defaults");
    assert_no_flags(&reply["warnings"]);

    let blocked = router.call("check", json!({"add": ["no-such-package"]}));
    assert_reply_shape(&contract, "check", "blocked", &blocked);
    assert_eq!(blocked["verdict"], "blocked");
    assert_eq!(
        blocked["problems"][0]["message"],
        "package `no-such-package` is not in the 24.10.6 index for `ath79/generic`",
        "{blocked:#}"
    );
    assert_eq!(blocked["problems"][0]["hint"]["code"], "remove");
    assert_no_flags(&blocked["problems"]);
    assert_eq!(*server.posts.lock().unwrap(), 0);
}

#[test]
fn check_asks_the_server_for_its_overview_once() {
    let server = UpgradeServer::start(image());
    let router = Router::new(&server.url);
    let reply = router.call("check", json!({}));
    assert_eq!(reply["verdict"], "upgrade_available", "{reply:#}");
    assert!(
        reply["offered"]
            .as_array()
            .unwrap()
            .contains(&json!("24.10.6"))
    );
    assert_eq!(server.gets("/json/v1/overview.json"), 1);
    assert_eq!(
        server.gets("/releases/24.10.6/targets/ath79/generic/profiles.json"),
        1
    );
}

#[test]
fn check_with_max_age_reuses_a_recent_result_of_the_same_check_only() {
    let server = UpgradeServer::start(image());
    let router = Router::new(&server.url);
    let contract = contract();
    let overviews = || server.gets("/json/v1/overview.json");

    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let fresh = router.call("check", json!({"max_age": 3600}));
    assert_reply_shape(&contract, "check", "upgrade_available", &fresh);
    assert_eq!(fresh["cached"], false, "nothing stored yet: {fresh:#}");
    let checked_at = fresh["checked_at"].as_u64().unwrap();
    assert!(
        checked_at >= before && checked_at <= before + 60,
        "{checked_at}"
    );
    assert_eq!(overviews(), 1);
    assert!(
        router
            .path()
            .join("var/run/attendant/check-cache.json")
            .is_file()
    );

    let reused = router.call("check", json!({"max_age": 3600}));
    assert_reply_shape(&contract, "check", "upgrade_available", &reused);
    assert_eq!(reused["cached"], true);
    assert_eq!(reused["checked_at"], checked_at);
    assert_eq!(reused["packages"], fresh["packages"]);
    assert_eq!(overviews(), 1, "a cached answer does not ask the server");

    // Without max_age (the Overview's button) the server is always asked.
    let asked = router.call("check", json!({}));
    assert_eq!(asked["cached"], false);
    assert_eq!(overviews(), 2);

    // Other arguments are another question; so is a changed configuration.
    let other = router.call(
        "check",
        json!({"max_age": 3600, "add": ["no-such-package"]}),
    );
    assert_reply_shape(&contract, "check", "blocked", &other);
    assert_eq!(other["cached"], false);
    assert_eq!(overviews(), 3);
    let uci = router.read("etc/config/attendedsysupgrade");
    router.write(
        "etc/config/attendedsysupgrade",
        uci.replace(
            "option poll_interval '500'",
            "option poll_interval '500'\n\tlist ignored_defaults 'urngd'",
        )
        .as_bytes(),
    );
    let reconfigured = router.call("check", json!({"max_age": 3600}));
    assert_eq!(reconfigured["cached"], false, "{reconfigured:#}");
    assert_eq!(overviews(), 4);

    // A damaged cache file is a miss, never an error.
    router.write("var/run/attendant/check-cache.json", b"{\"key\": ");
    let repaired = router.call("check", json!({"max_age": 3600}));
    assert_eq!(repaired["cached"], false, "{repaired:#}");
    let wrong = router.call("check", json!({"max_age": "an hour"}));
    assert_error_shape(&contract, &wrong, "invalid_argument");
    assert_eq!(wrong["error"]["argument"], "max_age");
}

/// Issue 13: the Status page asks `check` with `max_age` every 5 s; a failing server must not
/// be asked that often either.
#[test]
fn a_failed_check_is_cached_within_max_age() {
    let server = FailingServer::start();
    let router = Router::new(&server.url);
    let contract = contract();

    let failed = router.call("check", json!({"max_age": 3600}));
    assert_error_shape(&contract, &failed, "server");
    assert_eq!(failed["error"]["cached"], false, "{failed:#}");
    let checked_at = failed["error"]["checked_at"].as_u64().unwrap();
    let asked = server.requests();
    assert!(asked >= 1, "the first check asks the server");

    let reused = router.call("check", json!({"max_age": 3600}));
    assert_error_shape(&contract, &reused, "server");
    assert_eq!(reused["error"]["cached"], true, "{reused:#}");
    assert_eq!(reused["error"]["checked_at"], checked_at);
    assert_eq!(reused["error"]["message"], failed["error"]["message"]);
    assert_eq!(
        server.requests(),
        asked,
        "a cached failure does not ask the server"
    );

    // Without max_age the server is asked again.
    let again = router.call("check", json!({}));
    assert_error_shape(&contract, &again, "server");
    assert_eq!(again["error"]["cached"], false);
    assert!(server.requests() > asked);
}

#[test]
fn a_changed_init_script_or_keep_settings_is_a_new_check() {
    let server = UpgradeServer::start(image());
    let router = Router::new(&server.url);
    let overviews = || server.gets("/json/v1/overview.json");
    let uci = router.read("etc/config/attendedsysupgrade");
    router.write("etc/attendant-defaults.sh", b"echo one\n");
    router.write(
        "etc/config/attendedsysupgrade",
        uci.replace(
            "option poll_interval '500'",
            "option poll_interval '500'\n\toption init_script '/etc/attendant-defaults.sh'",
        )
        .as_bytes(),
    );
    let first = router.call("check", json!({"max_age": 3600}));
    assert_eq!(first["cached"], false, "{first:#}");
    assert_eq!(
        router.call("check", json!({"max_age": 3600}))["cached"],
        true
    );
    assert_eq!(overviews(), 1);

    // The same path, another script: another build.
    router.write("etc/attendant-defaults.sh", b"echo two\n");
    let edited = router.call("check", json!({"max_age": 3600}));
    assert_eq!(edited["cached"], false, "{edited:#}");
    assert_eq!(overviews(), 2);

    let uci = router.read("etc/config/attendedsysupgrade");
    router.write(
        "etc/config/attendedsysupgrade",
        uci.replace(
            "option poll_interval '500'",
            "option poll_interval '500'\n\toption keep_settings '0'",
        )
        .as_bytes(),
    );
    let discarding = router.call("check", json!({"max_age": 3600}));
    assert_eq!(discarding["cached"], false, "{discarding:#}");
    assert_eq!(overviews(), 3);
}

#[test]
fn an_unknown_version_is_a_usage_error_with_a_hint_but_no_flag() {
    let server = UpgradeServer::start(image());
    let router = Router::new(&server.url);
    let reply = router.call("check", json!({"version": "19.07.1"}));
    assert_error_shape(&contract(), &reply, "usage");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("version `19.07.1` is not offered by the server; offered: "),
        "{reply:#}"
    );
    assert_eq!(reply["error"]["hint"]["code"], "versions", "{reply:#}");
    assert_no_flags(&reply);
}

#[test]
fn a_full_job_goes_from_start_to_sysupgrade() {
    let server = UpgradeServer::start(image());
    let router = Router::new(&server.url);
    let contract = contract();
    let started = router.call("start", json!({"keep_settings": true}));
    assert_reply_shape(&contract, "start", "started", &started);
    let job = started["job"].as_str().unwrap().to_owned();

    let busy = router.call("start", json!({}));
    assert_reply_shape(&contract, "start", "busy", &busy);
    assert_eq!(busy["job"], job.as_str());
    assert_eq!(busy["busy"], true);

    let limit = Duration::from_secs(30);
    let queued = router.wait_for(limit, |s| {
        s["state"] == "queued" && s.get("queue_position").is_some()
    });
    assert_reply_shape(&contract, "status", "queued", &queued);
    assert_eq!(queued["queue_position"], 2);
    assert_eq!(queued["request_hash"], REQUEST_HASH);

    server.set_phase(phase::BUILDING);
    let building = router.wait_for(limit, |s| s["state"] == "building");
    assert_reply_shape(&contract, "status", "building", &building);
    assert_eq!(building["build_stage"], "building_image");
    // A call answers at once while the build runs (reply_of also bounds each call).
    let (output, took) = router.call_raw("status", format!("{{\"job\": \"{job}\"}}").as_bytes());
    reply_of(&output, took, "status");
    assert!(took < Duration::from_secs(2), "status took {took:?}");

    server.set_phase(phase::DOWNLOADING);
    let downloading = router.wait_for(limit, |s| {
        s["state"] == "downloading" && s.get("downloaded").is_some()
    });
    assert_reply_shape(&contract, "status", "downloading", &downloading);
    assert!(downloading["downloaded"].as_u64().unwrap() > 0);
    assert_eq!(downloading["total"].as_u64().unwrap(), image().len() as u64);
    let early = router.call("install", json!({"job": job}));
    assert_error_shape(&contract, &early, "not_ready");

    server.set_phase(phase::VERIFYING);
    let verifying = router.wait_for(limit, |s| s["state"] == "verifying");
    assert_reply_shape(&contract, "status", "verifying", &verifying);

    server.set_phase(phase::DONE);
    let ready = router.wait_for(limit, |s| s["state"] == "ready");
    assert_reply_shape(&contract, "status", "ready", &ready);
    assert_eq!(ready["verification"]["signed_by"], "abababababababab");
    assert_eq!(ready["image"], "/tmp/firmware.bin");
    assert!(router.sysupgrade_calls().is_empty());

    let installing = router.call("install", json!({"job": job, "keep_settings": false}));
    assert_reply_shape(&contract, "install", "installing", &installing);
    assert_eq!(
        installing["command"],
        json!(["sysupgrade", "-n", "/tmp/firmware.bin"])
    );
    // The reply came first: sysupgrade starts only after the delay.
    assert!(router.sysupgrade_calls().is_empty());
    let status = router.call("status", json!({"job": job}));
    assert_reply_shape(&contract, "status", "installing", &status);

    let rebooting = router.wait_for(limit, |s| s["state"] == "rebooting");
    assert_reply_shape(&contract, "status", "rebooting", &rebooting);
    let firmware = router.path().join("tmp/firmware.bin");
    assert_eq!(
        router.sysupgrade_calls(),
        [
            format!("--test -n {}", firmware.display()),
            format!("-n {}", firmware.display())
        ]
    );
    assert_eq!(*server.posts.lock().unwrap(), 1);
}

#[test]
fn cancel_stops_a_running_job() {
    let server = UpgradeServer::start(image());
    let router = Router::new(&server.url);
    let contract = contract();
    let job = router.call("start", json!({}))["job"]
        .as_str()
        .unwrap()
        .to_owned();
    server.set_phase(phase::BUILDING);
    router.wait_for(Duration::from_secs(30), |s| s["state"] == "building");
    let pid = router.job_pid();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());

    let cancelled = router.call("cancel", json!({"job": job}));
    assert_reply_shape(&contract, "cancel", "cancelled", &cancelled);
    assert_eq!(cancelled["cancelled"], true);
    assert!(!process_alive(pid), "the job process {pid} still runs");
    let status = router.call("status", json!({}));
    assert_reply_shape(&contract, "status", "cancelled", &status);
    assert_eq!(status["state"], "cancelled");

    let again = router.call("cancel", json!({}));
    assert_reply_shape(&contract, "cancel", "finished", &again);
    assert_eq!(again["cancelled"], false);
    let other = router.call("status", json!({"job": "ffffffffffffffff"}));
    assert_error_shape(&contract, &other, "no_job");
    // A new job may start after a cancelled one.
    let restarted = router.call("start", json!({}));
    assert_eq!(restarted["busy"], false);
    assert_ne!(restarted["job"], job.as_str());
    router.call("cancel", json!({}));
}

#[test]
fn a_killed_job_process_is_reported_as_failed() {
    let server = UpgradeServer::start(image());
    let router = Router::new(&server.url);
    router.call("start", json!({}));
    router.wait_for(Duration::from_secs(30), |s| s["state"] == "queued");
    let pid = router.job_pid();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let failed = router.wait_for(Duration::from_secs(10), |s| s["state"] == "failed");
    assert_reply_shape(&contract(), "status", "failed", &failed);
    assert_eq!(failed["error"]["code"], "job_died");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("the job's process {pid} ended without finishing")),
        "{failed:#}"
    );
    // Failed is final: the next start is not busy.
    assert_eq!(router.call("start", json!({}))["busy"], false);
    router.call("cancel", json!({}));
}

#[test]
fn a_blocked_job_fails_with_the_problems() {
    let server = UpgradeServer::start(image());
    let router = Router::new(&server.url);
    router.write("usr/lib/opkg/status", &opkg_status_without("urngd"));
    router.call("start", json!({"add": ["no-such-package"]}));
    let failed = router.wait_for(Duration::from_secs(30), |s| s["state"] == "failed");
    assert_reply_shape(&contract(), "status", "failed", &failed);
    assert_eq!(failed["error"]["code"], "blocked");
    assert!(
        failed["error"]["problems"].as_array().unwrap().len() == 1,
        "{failed:#}"
    );
    assert_eq!(failed["error"]["problems"][0]["hint"]["code"], "remove");
    assert_eq!(failed["warnings"][0]["hint"]["code"], "ignored_defaults");
    assert_no_flags(&failed);
    assert_eq!(*server.posts.lock().unwrap(), 0);
}

/// Asserts that no text in `value` names one of the agent's flags or a `hint:` paragraph:
/// LuCI users have no command line.
fn assert_no_flags(value: &Value) {
    let text = value.to_string();
    for flag in [
        "`--",
        "hint:",
        "--force",
        "--remove",
        "--ignored-defaults",
        "--add",
    ] {
        assert!(!text.contains(flag), "`{flag}` in {value:#}");
    }
}

fn process_alive(pid: u32) -> bool {
    // A zombie (killed, not yet reaped) counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

/// `random.Random("stable.7.<MACHINE_ID>").randint(0, 100)` in CPython: the router's phase for
/// build 7 of `stable`.
const PHASE_STABLE_7: u64 = 41;

#[test]
fn a_release_channel_through_the_plugin_config_check_start_install() {
    use util::tree::{MACHINE_ID, Tree, entry, stamp};

    let contract = contract();
    let tree = Tree::start();
    let firmware = image();
    let mut seven = tree.image(7, "24.10.5", &firmware);
    // Phased out by one: the router falls back to build 6.
    seven.phased_percentage = Some(u8::try_from(PHASE_STABLE_7 - 1).unwrap());
    let stable = tree.index(
        "stable",
        vec![tree.image(6, "24.10.5", &firmware), seven],
        3,
    );
    let beta = tree.index("beta", vec![tree.image(3, "23.05.5", &firmware)], 3);
    let mut old = entry(&stable);
    old.hidden = true;
    old.redirect = Some("stable".to_owned());
    tree.publish(
        &[
            ("beta", entry(&beta)),
            ("old", old),
            ("stable", entry(&stable)),
        ],
        3,
    );
    let router = tree.router();
    assert_eq!(
        u64::from(attendant::channel::phase::phase("stable", 7, MACHINE_ID)),
        PHASE_STABLE_7
    );

    // No channel yet: the build API's reply says so, `info` has none, `percentage` is refused.
    assert!(router.call("info", json!({})).get("channel").is_none());
    let refused = router.call("check", json!({"percentage": 5}));
    assert_error_shape(&contract, &refused, "invalid_argument");
    assert_eq!(refused["error"]["argument"], "percentage");

    // Choosing the channel: validated, written to UCI.
    let bad = router.call("config_set", json!({"channel": "../stable"}));
    assert_error_shape(&contract, &bad, "invalid_argument");
    assert_eq!(bad["error"]["argument"], "channel");
    let set = router.call("config_set", json!({"channel": "stable"}));
    assert_reply_shape(&contract, "config_set", "ok", &set);
    assert_eq!(set["channel"], "stable");
    assert!(
        router
            .read("etc/config/attendedsysupgrade")
            .contains("\toption channel 'stable'\n")
    );
    stamp(&router, "stable", 5);

    // The list: hidden channels only with `all`.
    let channels = router.call("channels", json!({}));
    assert_reply_shape(&contract, "channels", "ok", &channels);
    let names = |reply: &Value| -> Vec<String> {
        reply["channels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&channels), ["beta", "stable"]);
    assert_eq!(
        channels["current"],
        json!({"channel": "stable", "build": 5})
    );
    assert_eq!(channels["channels"][1]["latest"]["build"], 7);
    let all = router.call("channels", json!({"all": true}));
    assert_eq!(names(&all), ["beta", "old", "stable"]);

    // `info` now knows the newest build, so the phase for it.
    let info = router.call("info", json!({}));
    assert_reply_shape(&contract, "info", "ok", &info);
    assert_eq!(
        info["channel"],
        json!({"configured": "stable", "name": "stable", "build": 5, "channel_target": null, "phase": PHASE_STABLE_7})
    );

    // Phased out of 7: offered 6, and told when 7 comes.
    let check = router.call("check", json!({}));
    assert_reply_shape(&contract, "check", "channel", &check);
    assert_eq!(check["verdict"], "upgrade_available", "{check:#}");
    let channel = &check["channel"];
    assert_eq!(channel["name"], "stable");
    assert_eq!(channel["current_build"], 5);
    assert_eq!(channel["target_build"], 6);
    assert_eq!(channel["phase"], PHASE_STABLE_7);
    assert_eq!(channel["phased_percentage"], PHASE_STABLE_7 - 1);
    assert_eq!(channel["phased_in"], false);
    assert_eq!(channel["next_phase_at"], PHASE_STABLE_7);
    assert_eq!(channel["older_openwrt"], false);
    // The build it gets is 6; the build it waits for is 7, named apart.
    assert_eq!(channel["description"], "build 6");
    assert_eq!(
        channel["newest"],
        json!({"build": 7, "openwrt_version": "24.10.5", "description": "build 7"})
    );
    // This server has no build API to compare the router's packages with the recipe: the
    // published image is what exists, and the reply says why it could not tell more.
    assert_eq!(channel["prebuilt"], true);
    assert_eq!(channel["extra_packages"], json!([]));
    assert!(
        first_warning(&check)
            .starts_with("cannot compare this router's packages with the build's recipe: "),
        "{check:#}"
    );
    let forced = router.call("check", json!({"prebuilt": true}));
    assert_eq!(forced["channel"]["prebuilt"], true, "{forced:#}");
    assert_eq!(forced["warnings"], json!([]));
    // Best score first: 7 is the better path, but the router is not in its rollout yet.
    assert_eq!(channel["paths"][0]["builds"], json!([7]));
    assert_eq!(channel["paths"][1]["builds"], json!([6]));
    assert_eq!(check["target"]["version"], "24.10.5");
    assert!(check["image"]["name"].as_str().unwrap().contains("24.10.5"));

    // The override puts the router first in line.
    let first = router.call("check", json!({"percentage": 0}));
    assert_eq!(first["channel"]["target_build"], 7, "{first:#}");
    assert_eq!(first["channel"]["phased_in"], true);
    assert_eq!(first["channel"]["next_phase_at"], Value::Null);
    assert_eq!(first["channel"]["newest"]["build"], 7);
    assert_eq!(first["channel"]["description"], "build 7");

    // Switching to beta moves to an older OpenWrt: a full move, flagged.
    let switch = router.call("check", json!({"channel": "beta"}));
    assert_reply_shape(&contract, "check", "channel", &switch);
    assert_eq!(switch["channel"]["current_build"], 0);
    assert_eq!(switch["channel"]["target_build"], 3);
    assert_eq!(switch["channel"]["older_openwrt"], true);
    assert_eq!(switch["channel"]["openwrt_version"], "23.05.5");

    // The job takes build 6's published image, verified; install flashes it and records the
    // outcome report for the next boot. This server publishes channel files only (no build API
    // to compare the router's packages with the recipe), so the published image is asked for.
    let started = router.call("start", json!({"prebuilt": true}));
    assert_reply_shape(&contract, "start", "started", &started);
    let ready = router.wait_for(Duration::from_secs(30), |s| {
        !["checking", "downloading", "verifying"].contains(&s["state"].as_str().unwrap())
    });
    assert_reply_shape(&contract, "status", "ready", &ready);
    assert_eq!(ready["state"], "ready", "{ready:#}");
    assert_eq!(ready["version"], "24.10.5");
    assert_eq!(
        std::fs::read(router.path().join("tmp/firmware.bin")).unwrap(),
        firmware
    );
    let job = ready["job"].as_str().unwrap();
    router.call("install", json!({"job": job}));
    router.wait_for(Duration::from_secs(30), |s| s["state"] == "rebooting");
    assert_eq!(router.sysupgrade_calls().len(), 2);
    let reports: Value = serde_json::from_str(&router.read("etc/attendant/reports.json")).unwrap();
    assert_eq!(reports["reports"][0]["channel"], "stable");
    assert_eq!(reports["reports"][0]["from_build"], 5);
    assert_eq!(reports["reports"][0]["to_build"], 6);

    // Forged metadata: refused with its cause.
    let mut forged = tree.get("/channels/channels.json");
    forged.insert(1, b' ');
    tree.put("/channels/channels.json", forged);
    let refused = router.call("check", json!({}));
    assert_error_shape(&contract, &refused, "metadata");
    assert_eq!(refused["error"]["cause"], "bad-signature", "{refused:#}");

    // Clearing the channel: back to the build API.
    let cleared = router.call("config_set", json!({"channel": ""}));
    assert_eq!(cleared["channel"], "");
    assert!(
        !router
            .read("etc/config/attendedsysupgrade")
            .contains("channel")
    );
}

/// A router with packages the published image lacks: `check` answers what `start` will do, as
/// the agent's `check --channel` does — an image built for it, naming those packages — unless
/// `prebuilt` asks for the published image, or the recipe brings them.
#[test]
fn a_channel_check_names_the_packages_the_published_image_lacks() {
    use attendant_e2e::channel_tree::{self, ChannelTree, entry};

    let contract = contract();
    let tree = ChannelTree::new();
    // OpenWrt 24.10.6: the version the build API offers.
    let mut build = tree.publish_image(6, "24.10.6", &image(), &signing_key());
    let index = tree.index("stable", vec![build.clone()], 2);
    tree.publish(&[("stable", entry(&index))], 2);
    let router_of = |server: &UpgradeServer| {
        let router = Router::new(&server.url);
        tree.trust(router.path());
        channel_tree::stamp(router.path(), "stable", None, 5);
        router.call("config_set", json!({"channel": "stable"}));
        router
    };

    // A server that takes no uci-defaults script cannot build the image: `start` would fail,
    // and the check says so while still naming the packages.
    let refusing = UpgradeServer::with_channels(image(), tree.files(), false);
    let check = router_of(&refusing).call("check", json!({}));
    assert_reply_shape(&contract, "check", "channel", &check);
    assert_eq!(check["channel"]["prebuilt"], false, "{check:#}");
    assert_eq!(check["channel"]["extra_packages"], json!(EXTRA_PACKAGES));
    assert!(
        first_warning(&check).contains("does not accept the uci-defaults script"),
        "{check:#}"
    );

    let server = UpgradeServer::with_channels(image(), tree.files(), true);
    let router = router_of(&server);
    let check = router.call("check", json!({}));
    assert_reply_shape(&contract, "check", "channel", &check);
    assert_eq!(check["warnings"], json!([]), "{check:#}");
    let channel = &check["channel"];
    assert_eq!(channel["target_build"], 6);
    assert_eq!(channel["prebuilt"], false, "{check:#}");
    let extra: Vec<String> = serde_json::from_value(channel["extra_packages"].clone()).unwrap();
    assert_eq!(extra, EXTRA_PACKAGES, "{check:#}");

    // `prebuilt` takes the published image: nothing is compared.
    let forced = router.call("check", json!({"prebuilt": true}));
    assert_eq!(forced["channel"]["prebuilt"], true, "{forced:#}");
    assert_eq!(forced["channel"]["extra_packages"], json!([]));

    // With the router's packages in the recipe, the published image will do.
    build.recipe = Some(attendant_proto::channel::IndexRecipe {
        add: extra.clone(),
        ..Default::default()
    });
    let index = tree.index("stable", vec![build.clone()], 3);
    tree.publish(&[("stable", entry(&index))], 3);
    let check = router.call("check", json!({}));
    assert_eq!(check["channel"]["prebuilt"], true, "{check:#}");
    assert_eq!(check["channel"]["extra_packages"], json!([]));

    // A recipe without `htop`, on a router without it: the published image will do, and the
    // Status page's checks (`max_age`) reuse that answer...
    build.recipe = Some(attendant_proto::channel::IndexRecipe {
        add: extra.into_iter().filter(|name| name != "htop").collect(),
        ..Default::default()
    });
    let index = tree.index("stable", vec![build], 4);
    tree.publish(&[("stable", entry(&index))], 4);
    router.write("usr/lib/opkg/status", &opkg_status_without("htop"));
    let before = router.call("check", json!({"max_age": 3600}));
    assert_eq!(before["cached"], false, "{before:#}");
    assert_eq!(before["channel"]["prebuilt"], true, "{before:#}");
    let reused = router.call("check", json!({"max_age": 3600}));
    assert_eq!(reused["cached"], true, "{reused:#}");
    // ...until the user installs `htop`: the answer is now an image built for this router,
    // and a stored answer from before must not say otherwise.
    router.write("usr/lib/opkg/status", OPKG_STATUS);
    let installed = router.call("check", json!({"max_age": 3600}));
    assert_eq!(installed["cached"], false, "{installed:#}");
    assert_eq!(installed["channel"]["prebuilt"], false, "{installed:#}");
    assert_eq!(installed["channel"]["extra_packages"], json!(["htop"]));
    // Nothing was built for a check.
    assert_eq!(*server.posts.lock().unwrap(), 0);
}

/// The message of a `check` reply's first warning; `""` without one.
fn first_warning(reply: &Value) -> &str {
    reply
        .pointer("/warnings/0/message")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The router's packages beyond the profile's defaults (the opkg fixture's user-installed
/// ones); `nftables-json` provides the default `nftables`, so it is not among them.
const EXTRA_PACKAGES: [&str; 4] = ["busybox", "htop", "luci", "luci-app-attendedsysupgrade"];

/// A redirected channel, followed through `start` and `install`: the router's UCI
/// `option channel` becomes the channel it was sent on to.
#[test]
fn a_redirect_followed_through_install_changes_the_configured_channel() {
    use util::tree::{Tree, entry, stamp};

    let contract = contract();
    let tree = Tree::start();
    let firmware = image();
    let stable = tree.index("stable", vec![tree.image(8, "24.10.5", &firmware)], 4);
    let mut old = entry(&stable);
    old.hidden = true;
    old.redirect = Some("stable".to_owned());
    tree.publish(&[("old", old), ("stable", entry(&stable))], 4);
    let router = tree.router();
    router.call("config_set", json!({"channel": "old"}));
    stamp(&router, "old", 5);

    let check = router.call("check", json!({"prebuilt": true}));
    assert_reply_shape(&contract, "check", "channel", &check);
    assert_eq!(check["channel"]["name"], "stable", "{check:#}");
    assert_eq!(check["channel"]["redirect"], "stable");
    assert_eq!(check["channel"]["target_build"], 8);

    let started = router.call("start", json!({"prebuilt": true}));
    assert_reply_shape(&contract, "start", "started", &started);
    let ready = router.wait_for(Duration::from_secs(30), |s| {
        !["checking", "downloading", "verifying"].contains(&s["state"].as_str().unwrap())
    });
    assert_eq!(ready["state"], "ready", "{ready:#}");
    // Not before the flash: a job that never installs leaves the configuration alone.
    assert!(
        router
            .read("etc/config/attendedsysupgrade")
            .contains("\toption channel 'old'\n")
    );
    router.call("install", json!({"job": ready["job"]}));
    router.wait_for(Duration::from_secs(30), |s| s["state"] == "rebooting");
    assert_eq!(router.sysupgrade_calls().len(), 2);
    let config = router.read("etc/config/attendedsysupgrade");
    assert!(config.contains("\toption channel 'stable'\n"), "{config}");
    assert!(!config.contains("'old'"), "{config}");
    assert_eq!(router.call("config_get", json!({}))["channel"], "stable");
    let reports: Value = serde_json::from_str(&router.read("etc/attendant/reports.json")).unwrap();
    assert_eq!(reports["reports"][0]["channel"], "stable");
    assert_eq!(reports["reports"][0]["to_build"], 8);
}
