//! Test harness: a fake router root, the plugin run as rpcd runs it, a fake upgrade server whose
//! build, download and signature wait for the test to let them go, and a recording `sysupgrade`.

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test harness: a failure should panic with the value"
)]

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use attendant_e2e::channel_tree::Files;
use attendant_e2e::http_request::{self, Request};
use attendant_proto::fwtool::{self, Metadata};
use attendant_proto::usign::{Fingerprint, SecretKey};
use serde_json::{Value, json};

pub(crate) mod tree;

pub(crate) const BOARD: &str = "tplink,archer-c7-v5";
pub(crate) const REQUEST_HASH: &str =
    "fd6e90748a0d8cd0cc1988dc98bb10bf0b164c0ead988a9fe98173367516b63d";
pub(crate) const IMAGE_NAME: &str =
    "openwrt-24.10.6-ath79-generic-tplink_archer-c7-v5-squashfs-sysupgrade.bin";
/// The router's opkg status as installed: the defaults and the user's packages.
pub(crate) const OPKG_STATUS: &[u8] =
    include_bytes!("../../../proto/testdata/opkg/status-24.10-ath79");

/// The router's opkg status without the default package `name`, as if the user removed it.
pub(crate) fn opkg_status_without(name: &str) -> Vec<u8> {
    let status = String::from_utf8_lossy(OPKG_STATUS);
    let header = format!("Package: {name}\n");
    let kept: Vec<&str> = status
        .split("\n\n")
        .filter(|stanza| !stanza.starts_with(&header))
        .collect();
    kept.join("\n\n").into_bytes()
}

/// The contract file.
pub(crate) fn contract() -> Value {
    serde_json::from_str(include_str!("../../contract.json")).unwrap()
}

/// A router root: 24.10.4 on a TP-Link Archer C7 v5 with the opkg fixture.
pub(crate) struct Router {
    pub(crate) dir: tempfile::TempDir,
}

impl Router {
    pub(crate) fn new(server: &str) -> Self {
        let router = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        router.write("tmp/sysinfo/board_name", format!("{BOARD}\n").as_bytes());
        router.write("tmp/sysinfo/model", b"TP-Link Archer C7 v5\n");
        router.write(
            "usr/lib/os-release",
            b"NAME=\"OpenWrt\"\nVERSION=\"24.10.4\"\nID=\"openwrt\"\nBUILD_ID=\"r28427-6df0e3d02a\"\n\
              OPENWRT_BOARD=\"ath79/generic\"\nOPENWRT_ARCH=\"mips_24kc\"\n\
              OPENWRT_RELEASE=\"OpenWrt 24.10.4 r28427-6df0e3d02a\"\n",
        );
        router.write(
            "proc/mounts",
            b"/dev/root /rom squashfs ro 0 0\noverlayfs:/overlay / overlay rw 0 0\n",
        );
        router.write("usr/lib/opkg/status", OPKG_STATUS);
        router.write(
            "etc/config/attendedsysupgrade",
            format!(
                "config server 'server'\n\toption url '{server}'\n\nconfig client 'client'\n\toption advanced_mode '1'\n\n\
                 config attendant 'attendant'\n\toption require_signature '1'\n\toption poll_interval '500'\n"
            )
            .as_bytes(),
        );
        let key = signing_key().public_key();
        router.write(
            &format!("etc/opkg/keys/{}", key.fingerprint()),
            key.to_file().as_bytes(),
        );
        attendant_e2e::sysupgrade::install(router.path(), 0).unwrap();
        router
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn write(&self, path: &str, contents: &[u8]) {
        let path = self.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    pub(crate) fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.path().join(path)).unwrap()
    }

    /// The argument lines sysupgrade was called with.
    pub(crate) fn sysupgrade_calls(&self) -> Vec<String> {
        attendant_e2e::sysupgrade::calls(self.path())
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = attendant_e2e::process::on_root(
            Path::new(env!("CARGO_BIN_EXE_attendant-ubus")),
            self.path(),
        );
        command
            .args(args)
            .env("ATTENDANT_ROOT", self.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// `<plugin> list`, as rpcd runs it (stdin on /dev/null).
    pub(crate) fn list(&self) -> Output {
        let mut command = self.command(&["list"]);
        command.stdin(Stdio::null());
        command.output().unwrap()
    }

    /// `<plugin> call <method>` with `input` on stdin; returns the reply and how long it took.
    pub(crate) fn call_raw(&self, method: &str, input: &[u8]) -> (Output, Duration) {
        let started = Instant::now();
        let mut child = self.command(&["call", method]).spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        // Written from a thread: a plugin that stops reading must not block the test.
        let writer = thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let output = child.wait_with_output().unwrap();
        let _ = writer.join();
        (output, started.elapsed())
    }

    /// A call with JSON arguments; asserts one JSON object on stdout within 10 s.
    pub(crate) fn call(&self, method: &str, arguments: Value) -> Value {
        let mut request = arguments;
        request["ubus_rpc_session"] = "00000000000000000000000000000000".into();
        let (output, took) = self.call_raw(method, request.to_string().as_bytes());
        reply_of(&output, took, method)
    }

    /// The job file's pid.
    pub(crate) fn job_pid(&self) -> u32 {
        let job: Value =
            serde_json::from_str(&self.read("var/run/attendant/ubus-job.json")).unwrap();
        u32::try_from(job["pid"].as_u64().unwrap()).unwrap()
    }

    /// Polls `status` until `want(reply)`; panics with every state seen after `limit`.
    pub(crate) fn wait_for(&self, limit: Duration, want: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        let mut seen = Vec::new();
        loop {
            let status = self.call("status", json!({}));
            if want(&status) {
                return status;
            }
            seen.push(status);
            assert!(
                started.elapsed() < limit,
                "gave up waiting; statuses seen:\n{seen:#?}\n--- job log\n{}",
                std::fs::read_to_string(self.path().join("var/run/attendant/ubus-job.log"))
                    .unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Parses a plugin's reply, printing everything on failure.
pub(crate) fn reply_of(output: &Output, took: Duration, method: &str) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let parsed: Result<Value, _> = serde_json::from_str(&stdout);
    match parsed {
        Ok(value) if value.is_object() && took < Duration::from_secs(10) => value,
        _ => panic!(
            "call `{method}` took {took:?}, status {:?}\n--- stdout\n{stdout}\n--- stderr\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// Asserts that `actual` has `example`'s shape: the same keys (those in `optional` may be
/// missing from `actual`) with the same JSON types, recursively; arrays compare their items with
/// the example's first item. A value may be null where its dotted path (array indexes left
/// out) ends with one of `nullable`.
pub(crate) fn assert_shape(
    actual: &Value,
    example: &Value,
    optional: &[&str],
    nullable: &[&str],
    at: &str,
) {
    if actual.is_null() && is_nullable(at, nullable) {
        return;
    }
    match (actual, example) {
        // A map (`packages`): names are data; every value has the example's first value's shape.
        (Value::Object(actual), Value::Object(example))
            if MAPS.iter().any(|map| at.ends_with(&format!(".{map}"))) =>
        {
            if let Some(first) = example.values().next() {
                for (key, value) in actual {
                    assert_shape(value, first, optional, nullable, &format!("{at}[{key}]"));
                }
            }
        }
        // A job's error: any of the contract's error keys.
        (Value::Object(_), Value::Object(_))
            if at.ends_with(".error") && !at.contains("/error") =>
        {
            assert_error_object(actual, at);
        }
        (Value::Object(actual), Value::Object(example)) => {
            for (key, value) in actual {
                let expected = example
                    .get(key)
                    .unwrap_or_else(|| panic!("{at}: key `{key}` is not in the contract"));
                assert_shape(value, expected, optional, nullable, &format!("{at}.{key}"));
            }
            for key in example.keys() {
                assert!(
                    actual.contains_key(key) || optional.contains(&key.as_str()),
                    "{at}: key `{key}` is missing from the reply"
                );
            }
        }
        (Value::Array(actual), Value::Array(example)) => {
            if let Some(first) = example.first() {
                for (i, item) in actual.iter().enumerate() {
                    assert_shape(item, first, optional, nullable, &format!("{at}[{i}]"));
                }
            }
        }
        (Value::String(_), Value::String(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Null, Value::Null) => {}
        (Value::Number(a), Value::Number(e)) => {
            assert_eq!(a.is_f64(), e.is_f64(), "{at}: integer vs float");
        }
        _ => panic!("{at}: reply has {actual}, contract has {example}"),
    }
}

/// Whether the value at `at` (`method/reply.key[0].key`) may be null.
fn is_nullable(at: &str, nullable: &[&str]) -> bool {
    let mut path = String::new();
    let mut in_index = false;
    for ch in at.chars() {
        match ch {
            '[' => in_index = true,
            ']' => in_index = false,
            _ if !in_index => path.push(ch),
            _ => {}
        }
    }
    nullable
        .iter()
        .any(|key| path.ends_with(&format!(".{key}")))
}

/// Objects whose keys are data, not names: `contract.json`'s `protocol.maps`.
const MAPS: [&str; 1] = ["packages"];

/// The contract's reply example `name` of `method`, and the method's optional keys.
pub(crate) fn example(contract: &Value, method: &str, name: &str) -> (Value, Vec<String>) {
    let entry = &contract["methods"][method];
    let optional = entry["optional"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    let example = entry["replies"][name].clone();
    assert!(example.is_object(), "no reply `{name}` for `{method}`");
    (example, optional)
}

pub(crate) fn assert_reply_shape(contract: &Value, method: &str, name: &str, reply: &Value) {
    let (example, optional) = example(contract, method, name);
    let optional: Vec<&str> = optional.iter().map(String::as_str).collect();
    let nullable: Vec<&str> = contract["methods"][method]["nullable"]
        .as_array()
        .map(|keys| keys.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_shape(
        reply,
        &example,
        &optional,
        &nullable,
        &format!("{method}/{name}"),
    );
}

/// Asserts an error object has `code`, `message` and otherwise only keys of the contract's
/// `error.all_keys`, each of its type, and a known code.
fn assert_error_object(error: &Value, at: &str) {
    let contract = contract();
    let all = &contract["error"]["all_keys"];
    let optional: Vec<&str> = all
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "code" && *k != "message")
        .collect();
    assert_shape(error, all, &optional, &[], &format!("{at}/error"));
    let code = error["code"].as_str().unwrap();
    assert!(
        contract["error"]["codes"].get(code).is_some(),
        "{at}: unknown code {code}"
    );
}

pub(crate) fn assert_error_shape(contract: &Value, reply: &Value, code: &str) {
    let object = reply.as_object().unwrap();
    assert_eq!(
        object.len(),
        1,
        "an error reply has only `error`: {reply:#}"
    );
    assert_error_object(&reply["error"], "reply");
    for key in contract["error"]["shape"]["error"]
        .as_object()
        .unwrap()
        .keys()
    {
        assert!(reply["error"].get(key).is_some(), "reply/error: no `{key}`");
    }
    assert_eq!(reply["error"]["code"], code, "{reply:#}");
    assert!(contract["error"]["codes"].get(code).is_some(), "{code}");
}

/// The signing key of the fake server.
pub(crate) fn signing_key() -> SecretKey {
    SecretKey::generate([5; 32], Fingerprint([0xab; 8]), [1; 16], None).unwrap()
}

/// A sysupgrade image for the board with an fwtool metadata block.
pub(crate) fn image() -> Vec<u8> {
    let mut image: Vec<u8> = (0..400_000_u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let metadata = Metadata {
        supported_devices: Some(vec![BOARD.to_owned()]),
        compat_version: Some("1.0".to_owned()),
        ..Metadata::default()
    };
    fwtool::append_metadata(&mut image, &metadata).unwrap();
    image
}

pub(crate) fn sha256(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The steps the fake server holds until the test moves on.
pub(crate) mod phase {
    /// Build status answers `202` queued, position 2.
    pub(crate) const QUEUED: u8 = 0;
    /// Build status answers `202` building.
    pub(crate) const BUILDING: u8 = 1;
    /// The build is done; the image download sends half and waits.
    pub(crate) const DOWNLOADING: u8 = 2;
    /// The download finishes; the signature waits.
    pub(crate) const VERIFYING: u8 = 3;
    /// The signature is served.
    pub(crate) const DONE: u8 = 4;
}

/// The fake upgrade server.
pub(crate) struct UpgradeServer {
    pub(crate) url: String,
    pub(crate) phase: Arc<AtomicU8>,
    pub(crate) posts: Arc<Mutex<u32>>,
    /// `METHOD path` of every request, in order.
    pub(crate) seen: Arc<Mutex<Vec<String>>>,
}

impl UpgradeServer {
    /// Offers 24.10.6 and builds `image` step by step as [`phase`] advances.
    pub(crate) fn start(image: Vec<u8>) -> Self {
        Self::serving(image, None, false)
    }

    /// [`UpgradeServer::start`] that also publishes a channel tree's `files`, as a server
    /// with release channels beside its build API does, and takes uci-defaults scripts when
    /// `allow_defaults` (an image built from a channel build's recipe carries one).
    pub(crate) fn with_channels(image: Vec<u8>, files: Files, allow_defaults: bool) -> Self {
        Self::serving(image, Some(files), allow_defaults)
    }

    fn serving(image: Vec<u8>, channels: Option<Files>, allow_defaults: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let phase = Arc::new(AtomicU8::new(phase::QUEUED));
        let posts = Arc::new(Mutex::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(Shared {
            url: url.clone(),
            image,
            phase: phase.clone(),
            posts: posts.clone(),
            seen: seen.clone(),
            request: Mutex::new(Value::Null),
            channels,
            allow_defaults,
        });
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let state = state.clone();
                thread::spawn(move || serve(stream, &state));
            }
        });
        Self {
            url,
            phase,
            posts,
            seen,
        }
    }

    pub(crate) fn set_phase(&self, phase: u8) {
        self.phase.store(phase, Ordering::SeqCst);
    }

    /// How many `GET path` requests the server answered.
    pub(crate) fn gets(&self, path: &str) -> usize {
        let wanted = format!("GET {path}");
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|seen| **seen == wanted)
            .count()
    }
}

pub(crate) struct Shared {
    url: String,
    image: Vec<u8>,
    phase: Arc<AtomicU8>,
    posts: Arc<Mutex<u32>>,
    seen: Arc<Mutex<Vec<String>>>,
    request: Mutex<Value>,
    channels: Option<Files>,
    allow_defaults: bool,
}

impl Shared {
    fn phase(&self) -> u8 {
        self.phase.load(Ordering::SeqCst)
    }

    fn wait_for(&self, phase: u8) {
        let started = Instant::now();
        while self.phase() < phase && started.elapsed() < Duration::from_secs(60) {
            thread::sleep(Duration::from_millis(20));
        }
    }
}

fn serve(stream: TcpStream, state: &Shared) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let Ok(Some(Request {
        method, path, body, ..
    })) = http_request::read(&mut reader)
    else {
        return;
    };
    state.seen.lock().unwrap().push(format!("{method} {path}"));
    let mut stream = stream;
    let build = format!("/api/v1/build/{REQUEST_HASH}");
    let store = format!("/store/{REQUEST_HASH}/{IMAGE_NAME}");
    let head_only = method == "HEAD";
    let json_reply =
        |stream: &mut TcpStream, status: u16, extra: &[(&str, String)], body: &Value| {
            let bytes = serde_json::to_vec(body).unwrap();
            respond(stream, status, extra, &bytes, head_only, None);
        };
    match (method.as_str(), path.as_str()) {
        ("GET", "/json/v1/overview.json") => {
            let mut overview: Value =
                serde_json::from_slice(include_bytes!("../../../proto/testdata/asu/overview.json"))
                    .unwrap();
            overview["upstream_url"] = state.url.clone().into();
            if state.allow_defaults {
                overview["server"]["allow_defaults"] = true.into();
            }
            json_reply(&mut stream, 200, &[], &overview);
        }
        ("GET", "/releases/24.10.6/targets/ath79/generic/profiles.json") => respond(
            &mut stream,
            200,
            &[],
            include_bytes!("../../../proto/testdata/upstream/profiles-24.10.6-ath79-generic.json"),
            false,
            None,
        ),
        ("GET", "/json/v1/releases/24.10.6/packages/mips_24kc-index.json") => {
            let mut index = attendant_proto::opkg::parse(OPKG_STATUS)
                .unwrap()
                .packagelist(true);
            index.insert("luci".into(), "25.074.50000~b2c3d4e".into());
            json_reply(
                &mut stream,
                200,
                &[],
                &json!({"architecture": "mips_24kc", "packages": index}),
            );
        }
        ("POST", "/api/v1/build") => {
            *state.request.lock().unwrap() = serde_json::from_slice(&body).unwrap();
            *state.posts.lock().unwrap() += 1;
            json_reply(
                &mut stream,
                202,
                &[
                    ("X-Queue-Position", "2".into()),
                    ("X-Imagebuilder-Status", "queued".into()),
                ],
                &json!({"status": 202, "detail": "queued", "request_hash": REQUEST_HASH, "queue_position": 2, "imagebuilder_status": "queued"}),
            );
        }
        (_, p) if p == build => match state.phase() {
            phase::QUEUED => json_reply(
                &mut stream,
                202,
                &[
                    ("X-Queue-Position", "2".into()),
                    ("X-Imagebuilder-Status", "queued".into()),
                ],
                &json!({"status": 202, "detail": "queued", "request_hash": REQUEST_HASH, "queue_position": 2}),
            ),
            phase::BUILDING => json_reply(
                &mut stream,
                202,
                &[("X-Imagebuilder-Status", "building_image".into())],
                &json!({"status": 202, "detail": "started", "request_hash": REQUEST_HASH, "imagebuilder_status": "building_image"}),
            ),
            _ => {
                let request = state.request.lock().unwrap().clone();
                json_reply(
                    &mut stream,
                    200,
                    &[],
                    &build_response(&state.image, &request),
                );
            }
        },
        ("GET", p) if p == store => {
            let half = state.image.len() / 2;
            let gate = (half, state);
            respond(&mut stream, 200, &[], &state.image, false, Some(gate));
        }
        ("GET", p) if p == format!("{store}.sig") => {
            state.wait_for(phase::DONE);
            let signature = signing_key().sign(&state.image).to_file();
            respond(&mut stream, 200, &[], signature.as_bytes(), false, None);
        }
        (_, p) => match state.channels.as_ref().and_then(|files| files.get(p)) {
            Some(bytes) => respond(&mut stream, 200, &[], &bytes, head_only, None),
            None => json_reply(&mut stream, 404, &[], &json!({"detail": "Not Found"})),
        },
    }
}

/// An upgrade server that is up but fails: every request gets `500` with an ASU-shaped body.
pub(crate) struct FailingServer {
    pub(crate) url: String,
    requests: Arc<Mutex<usize>>,
}

impl FailingServer {
    pub(crate) fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(0));
        let counted = requests.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                if let Ok(Some(Request { method, .. })) = http_request::read(&mut reader) {
                    *counted.lock().unwrap() += 1;
                    let body = serde_json::to_vec(
                        &json!({"detail": "Internal Server Error", "status": 500}),
                    )
                    .unwrap();
                    respond(&mut stream, 500, &[], &body, method == "HEAD", None);
                }
            }
        });
        Self { url, requests }
    }

    /// How many requests the server answered.
    pub(crate) fn requests(&self) -> usize {
        *self.requests.lock().unwrap()
    }
}

/// Writes a response; with `gate`, sends that many body bytes, waits for the verifying phase,
/// then sends the rest.
pub(crate) fn respond(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
    head_only: bool,
    gate: Option<(usize, &Shared)>,
) {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    if !head_only {
        match gate {
            Some((cut, state)) => {
                let _ = stream.write_all(&body[..cut]);
                let _ = stream.flush();
                state.wait_for(phase::VERIFYING);
                let _ = stream.write_all(&body[cut..]);
            }
            None => {
                let _ = stream.write_all(body);
            }
        }
    }
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

fn build_response(image: &[u8], request: &Value) -> Value {
    let mut response: Value = serde_json::from_slice(include_bytes!(
        "../../../proto/testdata/asu/build-200-24.10.6-ath79-tplink_archer-c7-v5.json"
    ))
    .unwrap();
    let sha = sha256(image);
    response["images"] = json!([
        {"filesystem": "squashfs", "name": IMAGE_NAME, "sha256": sha, "sha256_unsigned": sha, "type": "sysupgrade"}
    ]);
    let mut manifest = serde_json::Map::new();
    if let Some(versions) = request["packages_versions"].as_object() {
        for (name, version) in versions {
            manifest.insert(name.clone(), version.clone());
        }
    }
    response["manifest"] = manifest.into();
    response["request"] = request.clone();
    response
}
