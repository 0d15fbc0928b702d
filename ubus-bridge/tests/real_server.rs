//! A whole job through the plugin against the real server (issue 6, "Must show" 2): the
//! multi-call binary run as rpcd runs it (`<root>/usr/libexec/rpcd/attendant call <method>`),
//! `attendant-server` in-process building with the fixture mirror and its ImageBuilders, a fake
//! x86/64 router on 24.10.4 made from the fixture catalogue, and a recording `sysupgrade` first
//! on `PATH`.
//!
//! The real server is too quick to see every state, so two gating proxies hold it at the
//! boundaries, without changing a byte of what passes:
//!
//! - between the server and the mirror, the ImageBuilder downloads wait: a first build (posted
//!   by the test, for ath79) keeps the only worker busy so the plugin's build is `queued`; then
//!   the x86 ImageBuilder waits, so the build is `building` (stage `container_setup`);
//! - between the plugin and the server, the image is sent half and the rest waits
//!   (`downloading`), and the signature waits (`verifying`).
//!
//! Fixture-only facts (the profile, the versions) are used, so this test ignores
//! `ATTENDANT_TEST_UPSTREAM` (tests/README.md: a real upstream needs a real ImageBuilder).

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test: a failure should panic with the value"
)]

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use attendant_e2e::MirrorServer;
use attendant_e2e::catalog::Catalog;
use attendant_e2e::http_request::{self, Request};
use attendant_e2e::mirror::{DEFAULT_SEED, MirrorInfo};
use attendant_e2e::process;
use attendant_e2e::router::{RouterSpec, write_root};
use attendant_e2e::seed::Seed;
use attendant_e2e::workspace;
use attendant_server::config::Config;
use serde_json::{Value, json};

const MULTICALL: &str = env!("CARGO_BIN_EXE_attendant-multicall");
/// The fixture's x86 machine (`x86/64`, profile `generic`).
const X86_BOARD: &str = "qemu-standard-pc-q35-ich9-2009";
/// Longest wait for one state, and longest a gate holds a request.
const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn a_full_job_through_the_plugin_builds_on_the_real_server_and_flashes() {
    let mirror = workspace::fixture(DEFAULT_SEED).expect("generate the fixture mirror");
    let upstream = MirrorServer::start(&mirror.root).unwrap();
    let ib_ath79 = Gate::new();
    let ib_x86 = Gate::new();
    let upstream_proxy = Proxy::start(
        upstream.addr(),
        vec![
            Rule::hold_request(
                |path| path.contains("/openwrt-imagebuilder-24.10.4-ath79-generic."),
                &ib_ath79,
            ),
            Rule::hold_request(
                |path| path.contains("/openwrt-imagebuilder-24.10.5-x86-64."),
                &ib_x86,
            ),
        ],
    );
    let server = Server::start(&mirror, &upstream_proxy.url());
    let image = Gate::new();
    let signature = Gate::new();
    let server_proxy = Proxy::start(
        server.addr,
        vec![
            Rule::hold_half_body(
                |path| path.starts_with("/store/") && path.ends_with(".img.gz"),
                &image,
            ),
            Rule::hold_request(
                |path| path.starts_with("/store/") && path.ends_with(".img.gz.sig"),
                &signature,
            ),
        ],
    );
    let router = Router::new(&mirror, &server, &server_proxy.url());

    // Occupy the server's only worker with someone else's build.
    let (status, body) = post_build(
        server.addr,
        &json!({"version": "24.10.4", "target": "ath79/generic",
                "profile": "tplink_archer-c7-v5", "packages": ["tmux"]}),
    );
    assert!(status == 200 || status == 202, "{status} {body}");
    assert!(
        ib_ath79.wait_for_hit(LIMIT),
        "the first build did not reach the ImageBuilder download"
    );

    let started = router.call("start", &json!({"keep_settings": false}));
    assert_eq!(started["busy"], false, "{started:#}");
    let job = started["job"].as_str().unwrap().to_owned();

    let queued = router.wait_for(|s| s["state"] == "queued" && s.get("queue_position").is_some());
    // ASU counts the jobs waiting ahead (the running build is not one): next in line is 0.
    assert_eq!(queued["queue_position"], 0, "{queued:#}");
    assert_eq!(queued["version"], "24.10.5");
    let request_hash = queued["request_hash"].as_str().unwrap().to_owned();

    ib_ath79.open();
    let building = router.wait_for(|s| s["state"] == "building");
    assert_eq!(building["build_stage"], "container_setup", "{building:#}");
    assert!(ib_x86.wait_for_hit(LIMIT));
    // A call answers at once while the build runs.
    let began = Instant::now();
    router.call("status", &json!({ "job": job }));
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );

    ib_x86.open();
    let downloading = router.wait_for(|s| {
        s["state"] == "downloading" && s["downloaded"].as_u64().is_some_and(|bytes| bytes > 0)
    });
    let total = downloading["total"].as_u64().unwrap();
    assert!(
        downloading["downloaded"].as_u64().unwrap() < total,
        "{downloading:#}"
    );
    let early = router.call("install", &json!({ "job": job }));
    assert_eq!(early["error"]["code"], "not_ready", "{early:#}");

    image.open();
    let verifying = router.wait_for(|s| s["state"] == "verifying");
    assert_eq!(verifying["request_hash"], request_hash.as_str());

    signature.open();
    let ready = router.wait_for(|s| s["state"] == "ready");
    assert_eq!(
        ready["verification"]["signed_by"],
        server.fingerprint.as_str(),
        "{ready:#}"
    );
    assert_eq!(ready["image"], "/tmp/firmware.bin");
    let firmware = router.path().join("tmp/firmware.bin");
    assert_eq!(std::fs::metadata(&firmware).unwrap().len(), total);
    let record: Value = serde_json::from_slice(
        &std::fs::read(router.path().join("tmp/firmware.bin.build.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["response"]["version_number"], "24.10.5");
    assert_eq!(record["response"]["request_hash"], request_hash.as_str());
    let built = record["image"]["name"].as_str().unwrap();
    assert!(built.contains("-combined"), "{built}");
    assert!(router.sysupgrade_calls().is_empty());

    let installing = router.call("install", &json!({ "job": job, "keep_settings": false }));
    assert_eq!(installing["state"], "installing", "{installing:#}");
    assert_eq!(
        installing["command"],
        json!(["sysupgrade", "-n", "/tmp/firmware.bin"])
    );
    // The reply came first: sysupgrade starts only after the delay.
    assert!(router.sysupgrade_calls().is_empty());

    router.wait_for(|s| s["state"] == "rebooting");
    assert_eq!(
        router.sysupgrade_calls(),
        [
            format!("--test -n {}", firmware.display()),
            format!("-n {}", firmware.display())
        ]
    );
    assert_eq!(server_proxy.posts(), 1, "the plugin posted one build");
    server.stop();
}

/// `attendant-server` on `127.0.0.1:0` in this process, signing its images.
struct Server {
    addr: SocketAddr,
    /// The public key file the router trusts, and its fingerprint.
    public_key: String,
    fingerprint: String,
    runtime: tokio::runtime::Runtime,
    running: attendant_server::service::Running,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(mirror: &MirrorInfo, upstream_url: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.data_dir = dir.path().join("data");
        config.upstream_url = upstream_url.to_owned();
        config.trusted_keys = vec![mirror.public_key.clone()];
        // One worker: a build posted first keeps the plugin's build in the queue.
        config.workers = 1;
        config.job_lease = Duration::from_secs(5);
        config.job_timeout = Duration::from_secs(120);
        config.shutdown_timeout = Duration::from_secs(5);
        let secret = dir.path().join("key-build");
        let public = attendant_server::signing::generate_key_pair(&secret, None).unwrap();
        config.signing_key = Some(secret);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let running = runtime
            .block_on(attendant_server::service::spawn(config))
            .expect("start the server");
        Self {
            addr: running.addr,
            public_key: public.to_file(),
            fingerprint: public.fingerprint().to_string(),
            runtime,
            running,
            _dir: dir,
        }
    }

    fn stop(self) {
        self.running.shutdown.cancel();
        let _ = self.runtime.block_on(self.running.task);
    }
}

/// POSTs a build request straight to the server: its status and body.
fn post_build(addr: SocketAddr, request: &Value) -> (u16, String) {
    let body = request.to_string();
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /api/v1/build HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

/// A fake x86/64 router on 24.10.4 with the multi-call binary installed as the feed installs
/// it, and a recording `sysupgrade` in `<root>/bin`.
struct Router {
    dir: tempfile::TempDir,
}

impl Router {
    fn new(mirror: &MirrorInfo, server: &Server, server_url: &str) -> Self {
        let router = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        let mut spec = RouterSpec::new("24.10.4", "x86/64", "generic", X86_BOARD);
        spec.model = "QEMU Standard PC (Q35 + ICH9, 2009)".to_owned();
        spec.user_packages = vec!["tmux".to_owned(), "htop".to_owned()];
        write_root(router.path(), &Catalog::new(Seed(mirror.seed)), &spec).unwrap();
        router.write(
            "etc/config/attendedsysupgrade",
            &format!(
                "config server 'server'\n\toption url '{server_url}'\n\n\
                 config attendant 'attendant'\n\toption require_signature '1'\n\
                 \toption poll_interval '500'\n"
            ),
        );
        // The router trusts the server's image key, and the release key like every router.
        router.write(
            &format!("etc/opkg/keys/{}", server.fingerprint),
            &server.public_key,
        );
        router.write(
            &format!("etc/opkg/keys/{}", mirror.fingerprint),
            &std::fs::read_to_string(&mirror.public_key).unwrap(),
        );
        attendant_e2e::sysupgrade::install(router.path(), 0).unwrap();
        for link in ["usr/bin/attendant", "usr/libexec/rpcd/attendant"] {
            let path = router.path().join(link);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(MULTICALL, path).unwrap();
        }
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

    fn sysupgrade_calls(&self) -> Vec<String> {
        attendant_e2e::sysupgrade::calls(self.path())
    }

    fn plugin(&self) -> PathBuf {
        self.path().join("usr/libexec/rpcd/attendant")
    }

    /// `/usr/libexec/rpcd/attendant call <method>` with `arguments` on stdin, as rpcd runs it.
    fn call(&self, method: &str, arguments: &Value) -> Value {
        let mut request = arguments.clone();
        request["ubus_rpc_session"] = "00000000000000000000000000000000".into();
        let mut command = process::on_root(&self.plugin(), self.path());
        command
            .args(["call", method])
            .env("ATTENDANT_ROOT", self.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let began = Instant::now();
        let mut child = command.spawn().unwrap();
        let _ = child
            .stdin
            .take()
            .unwrap()
            .write_all(request.to_string().as_bytes());
        let output = child.wait_with_output().unwrap();
        let took = began.elapsed();
        match serde_json::from_slice::<Value>(&output.stdout) {
            Ok(reply) if reply.is_object() && took < Duration::from_secs(10) => reply,
            _ => panic!("call `{method}` took {took:?}\n{}", describe(&output)),
        }
    }

    /// Polls `status` until `want(reply)`; fails with every reply seen and the job log.
    fn wait_for(&self, want: impl Fn(&Value) -> bool) -> Value {
        let began = Instant::now();
        let mut seen = Vec::new();
        loop {
            let status = self.call("status", &json!({}));
            if want(&status) {
                return status;
            }
            let finished = ["failed", "cancelled", "up_to_date", "rebooting"]
                .contains(&status["state"].as_str().unwrap_or_default());
            if seen.last() != Some(&status) {
                seen.push(status);
            }
            assert!(
                !finished && began.elapsed() < LIMIT,
                "gave up waiting; statuses seen:\n{seen:#?}\n--- job log\n{}",
                std::fs::read_to_string(self.path().join("var/run/attendant/ubus-job.log"))
                    .unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

fn describe(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A gate the proxies hold requests at until the test opens it (or [`LIMIT`] passes).
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    open: bool,
    hits: usize,
}

impl Gate {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(GateState::default()),
            changed: Condvar::new(),
        })
    }

    /// Waits until the gate is open; counts the request.
    fn pass(&self) {
        let mut state = self.state.lock().unwrap();
        state.hits += 1;
        self.changed.notify_all();
        let _ = self
            .changed
            .wait_timeout_while(state, LIMIT, |state| !state.open)
            .unwrap();
    }

    fn open(&self) {
        self.state.lock().unwrap().open = true;
        self.changed.notify_all();
    }

    /// Whether a request reached the gate within `limit`.
    fn wait_for_hit(&self, limit: Duration) -> bool {
        let state = self.state.lock().unwrap();
        let (state, _) = self
            .changed
            .wait_timeout_while(state, limit, |state| state.hits == 0)
            .unwrap();
        state.hits > 0
    }
}

/// What a rule holds back.
#[derive(Clone, Copy)]
enum Hold {
    /// The request is not forwarded until the gate opens.
    Request,
    /// The response head and half the body are sent; the rest waits for the gate.
    HalfBody,
}

/// GET requests whose path matches are held at `gate`.
#[derive(Clone)]
struct Rule {
    matches: fn(&str) -> bool,
    hold: Hold,
    gate: Arc<Gate>,
}

impl Rule {
    fn hold_request(matches: fn(&str) -> bool, gate: &Arc<Gate>) -> Self {
        Self {
            matches,
            hold: Hold::Request,
            gate: Arc::clone(gate),
        }
    }

    fn hold_half_body(matches: fn(&str) -> bool, gate: &Arc<Gate>) -> Self {
        Self {
            matches,
            hold: Hold::HalfBody,
            gate: Arc::clone(gate),
        }
    }
}

/// An HTTP/1.1 forwarding proxy on `127.0.0.1:0` that passes every byte through, holding the
/// requests its rules name.
struct Proxy {
    addr: SocketAddr,
    posts: Arc<Mutex<usize>>,
}

impl Proxy {
    fn start(upstream: SocketAddr, rules: Vec<Rule>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let posts = Arc::new(Mutex::new(0));
        let counter = Arc::clone(&posts);
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let rules = rules.clone();
                let counter = Arc::clone(&counter);
                thread::spawn(move || {
                    let _ = forward(client, upstream, &rules, &counter);
                });
            }
        });
        Self { addr, posts }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Build requests posted through this proxy.
    fn posts(&self) -> usize {
        *self.posts.lock().unwrap()
    }
}

/// Forwards one request (with `Connection: close`) and its response.
fn forward(
    client: TcpStream,
    upstream: SocketAddr,
    rules: &[Rule],
    posts: &Mutex<usize>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let Some(Request {
        method,
        path,
        headers,
        body,
    }) = http_request::read(&mut reader)?
    else {
        return Ok(());
    };
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    for (name, value) in headers {
        if !name.eq_ignore_ascii_case("connection") {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    if method == "POST" && path == "/api/v1/build" {
        *posts.lock().unwrap() += 1;
    }
    let rule = rules
        .iter()
        .find(|rule| method == "GET" && (rule.matches)(&path));
    if let Some(Rule {
        hold: Hold::Request,
        gate,
        ..
    }) = rule
    {
        gate.pass();
    }

    let mut server = TcpStream::connect(upstream)?;
    server.write_all(head.as_bytes())?;
    server.write_all(&body)?;
    let mut answer = Vec::new();
    server.read_to_end(&mut answer)?;

    let mut client = client;
    match rule {
        Some(Rule {
            hold: Hold::HalfBody,
            gate,
            ..
        }) => {
            let body_start = answer
                .windows(4)
                .position(|window| window == b"\r\n\r\n")
                .map_or(0, |end| end + 4);
            let cut = body_start + (answer.len() - body_start) / 2;
            client.write_all(&answer[..cut])?;
            client.flush()?;
            gate.pass();
            client.write_all(&answer[cut..])?;
        }
        _ => client.write_all(&answer)?,
    }
    client.flush()?;
    client.shutdown(std::net::Shutdown::Both)
}
