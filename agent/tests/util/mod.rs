//! Test harness: a fake router root, a tiny HTTP server standing in for the upgrade server,
//! and a recording `sysupgrade` stand-in on `PATH`.

#![expect(dead_code, reason = "not every test uses every helper")]
#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a test harness: a failure should panic with the value"
)]

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use attendant_e2e::http_request;
use attendant_proto::fwtool::{self, Metadata};
use attendant_proto::usign::{Fingerprint, SecretKey};

pub(crate) const BOARD: &str = "tplink,archer-c7-v5";
pub(crate) const PROFILE: &str = "tplink_archer-c7-v5";
pub(crate) const REQUEST_HASH: &str =
    "fd6e90748a0d8cd0cc1988dc98bb10bf0b164c0ead988a9fe98173367516b63d";
pub(crate) const IMAGE_NAME: &str =
    "openwrt-24.10.6-ath79-generic-tplink_archer-c7-v5-squashfs-sysupgrade.bin";

/// One request the server saw.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) range: Option<String>,
    pub(crate) body: Vec<u8>,
}

/// A response; `cut_after` closes the connection after that many body bytes; `stall_after`
/// sends that many, holds the connection silent for the duration, then sends the rest; `drip`
/// sends the body that many bytes at a time with a pause after each (a hostile or dying
/// server); `without_length` leaves out `Content-Length`, so only closing the connection ends
/// the body.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    pub(crate) cut_after: Option<usize>,
    pub(crate) stall_after: Option<(usize, Duration)>,
    pub(crate) drip: Option<(usize, Duration)>,
    pub(crate) without_length: bool,
}

impl Reply {
    pub(crate) fn json(status: u16, body: &serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(body).unwrap(),
            cut_after: None,
            stall_after: None,
            drip: None,
            without_length: false,
        }
    }

    pub(crate) fn bytes(status: u16, body: Vec<u8>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body,
            cut_after: None,
            stall_after: None,
            drip: None,
            without_length: false,
        }
    }
}

type Handler = dyn Fn(&Seen, usize) -> Reply + Send + Sync;

/// The fake server: a thread answering one request per connection.
pub(crate) struct Server {
    pub(crate) url: String,
    pub(crate) seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    pub(crate) fn start(handler: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = seen.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let handler = handler.clone();
                let log = log.clone();
                thread::spawn(move || serve(stream, &*handler, &log));
            }
        });
        Self { url, seen }
    }

    pub(crate) fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The `Range` header of each image request, in order (`None`: the whole file).
    pub(crate) fn image_ranges(&self) -> Vec<Option<String>> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with(".bin"))
            .map(|r| r.range)
            .collect()
    }
}

fn serve(stream: TcpStream, handler: &Handler, log: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let Ok(Some(request)) = http_request::read(&mut reader) else {
        return;
    };
    let method = request.method.clone();
    let seen = Seen {
        range: request.header("range").map(str::to_owned),
        method: request.method,
        path: request.path,
        body: request.body,
    };
    let index = {
        let mut log = log.lock().unwrap();
        log.push(seen.clone());
        log.len() - 1
    };
    let reply = handler(&seen, index);
    let mut stream = stream;
    let reason = match reply.status {
        200 => "OK",
        202 => "Accepted",
        206 => "Partial Content",
        404 => "Not Found",
        _ => "Status",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nConnection: close\r\n",
        reply.status
    );
    if !reply.without_length {
        head.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
    }
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    if method != "HEAD" {
        let body = match reply.cut_after {
            Some(cut) => &reply.body[..cut.min(reply.body.len())],
            None => &reply.body[..],
        };
        if let Some((bytes, pause)) = reply.drip {
            for piece in body.chunks(bytes.max(1)) {
                if stream
                    .write_all(piece)
                    .and_then(|()| stream.flush())
                    .is_err()
                {
                    // The client gave up: the point of the test.
                    return;
                }
                thread::sleep(pause);
            }
        } else if let Some((at, pause)) = reply.stall_after {
            let (first, rest) = body.split_at(at.min(body.len()));
            let _ = stream.write_all(first);
            let _ = stream.flush();
            thread::sleep(pause);
            let _ = stream.write_all(rest);
        } else {
            let _ = stream.write_all(body);
        }
    }
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// A byte-range reply for a `Range: bytes=N-` request, or the whole file.
pub(crate) fn ranged(seen: &Seen, file: &[u8]) -> Reply {
    match seen
        .range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
    {
        Some(start) => {
            let start: usize = start.parse().unwrap();
            let mut reply = Reply::bytes(206, file[start..].to_vec());
            reply.headers.push((
                "Content-Range".into(),
                format!("bytes {start}-{}/{}", file.len() - 1, file.len()),
            ));
            reply
        }
        None => Reply::bytes(200, file.to_vec()),
    }
}

/// The signing key the test server uses, and its key file for the router.
pub(crate) fn signing_key() -> SecretKey {
    SecretKey::generate([5; 32], Fingerprint([0xab; 8]), [1; 16], None).unwrap()
}

/// A sysupgrade image with an fwtool metadata block.
pub(crate) fn image(devices: &[&str], compat: &str) -> Vec<u8> {
    let mut image: Vec<u8> = (0..300_000_u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let list: Vec<String> = devices.iter().map(|d| (*d).to_owned()).collect();
    let metadata = Metadata {
        supported_devices: Some(list.clone()),
        new_supported_devices: (compat != "1.0").then_some(list),
        compat_version: Some(compat.to_owned()),
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

/// The opkg status fixture's packages: name → version.
pub(crate) fn installed() -> BTreeMap<String, String> {
    attendant_proto::opkg::parse(include_bytes!(
        "../../../proto/testdata/opkg/status-24.10-ath79"
    ))
    .unwrap()
    .packagelist(true)
}

pub(crate) fn top_level() -> BTreeMap<String, String> {
    attendant_proto::opkg::parse(include_bytes!(
        "../../../proto/testdata/opkg/status-24.10-ath79"
    ))
    .unwrap()
    .packagelist(false)
}

/// A router root: 24.10.4 on a TP-Link Archer C7 v5 with the opkg fixture.
pub(crate) struct Router {
    pub(crate) dir: tempfile::TempDir,
}

impl Router {
    pub(crate) fn new(server: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let router = Self { dir };
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
        router.write(
            "usr/lib/opkg/status",
            include_bytes!("../../../proto/testdata/opkg/status-24.10-ath79"),
        );
        router.write(
            "etc/config/attendedsysupgrade",
            format!("config server 'server'\n\toption url '{server}'\n\nconfig attendant 'attendant'\n\toption require_signature '1'\n\toption poll_interval '500'\n").as_bytes(),
        );
        let key = signing_key().public_key();
        router.write(
            &format!("etc/opkg/keys/{}", key.fingerprint()),
            key.to_file().as_bytes(),
        );
        std::fs::create_dir_all(router.path().join("tmp")).unwrap();
        router.sysupgrade(0);
        router
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Rewrites `/etc/config/attendedsysupgrade` with `extra` lines (`\toption name 'value'\n`)
    /// added to the `attendant` section.
    pub(crate) fn configure(&self, server: &str, extra: &str) {
        self.write(
            "etc/config/attendedsysupgrade",
            format!(
                "config server 'server'\n\toption url '{server}'\n\nconfig attendant 'attendant'\n\
                 \toption require_signature '1'\n\toption poll_interval '500'\n{extra}"
            )
            .as_bytes(),
        );
    }

    pub(crate) fn write(&self, path: &str, contents: &[u8]) {
        let path = self.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    /// Puts a recording `sysupgrade` in `<root>/bin` that exits with `code` on `--test`.
    pub(crate) fn sysupgrade(&self, test_code: i32) {
        attendant_e2e::sysupgrade::install(self.path(), test_code).unwrap();
    }

    /// The argument lines sysupgrade was called with.
    pub(crate) fn sysupgrade_calls(&self) -> Vec<String> {
        attendant_e2e::sysupgrade::calls(self.path())
    }

    /// Runs the agent with `--root` and the stand-in first on `PATH`.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        let path = format!(
            "{}:{}",
            self.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new(env!("CARGO_BIN_EXE_attendant"));
        command
            .args(args)
            .arg("--root")
            .arg(self.path())
            .env("PATH", path)
            .env("NO_COLOR", "1");
        for name in [
            "http_proxy",
            "https_proxy",
            "all_proxy",
            "ALL_PROXY",
            "HTTPS_PROXY",
        ] {
            command.env_remove(name);
        }
        command.output().unwrap()
    }
}

impl Router {
    /// Runs the agent as [`Router::run`] does, but stops it after `limit`: a test of a deadline
    /// must fail, not hang, when the deadline is not kept. Returns the output and how long the
    /// run took; a stopped run has no exit code.
    pub(crate) fn run_for_at_most(&self, args: &[&str], limit: Duration) -> (Output, Duration) {
        let path = format!(
            "{}:{}",
            self.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let started = std::time::Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_attendant"))
            .args(args)
            .arg("--root")
            .arg(self.path())
            .env("PATH", path)
            .env("NO_COLOR", "1")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("all_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("HTTPS_PROXY")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > limit {
                let _ = child.kill();
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let output = child.wait_with_output().unwrap();
        (output, started.elapsed())
    }
}

/// What the fake upgrade server serves for one build.
#[derive(Clone)]
pub(crate) struct Offer {
    pub(crate) image: Vec<u8>,
    /// The overview's `allow_defaults` (default: false, as sysupgrade.openwrt.org).
    pub(crate) allow_defaults: bool,
    /// The SHA-256 the build response promises (default: the image's).
    pub promised_sha256: Option<String>,
    /// The signature file served at `<image>.sig`; `None` serves 404.
    pub(crate) signature: Option<String>,
    /// Package index versions: installed versions with `upgraded` bumped.
    pub(crate) index: BTreeMap<String, String>,
    /// Cut the first image download after this many bytes.
    pub(crate) cut_first_download: Option<usize>,
    /// Answer the first image download with 404 (the store lost it).
    pub(crate) lose_first_download: bool,
    /// Stall the first image download after this many bytes for this long.
    pub(crate) stall_first_download: Option<(usize, Duration)>,
    /// Send the first image download this many bytes at a time, pausing after each.
    pub(crate) drip_first_download: Option<(usize, Duration)>,
    /// The `size` the build response states for the image (default: none, as ASU).
    pub(crate) stated_size: Option<u64>,
    /// Serve the image without `Content-Length`.
    pub(crate) download_without_length: bool,
}

impl Offer {
    pub(crate) fn new(image: Vec<u8>) -> Self {
        let signature = Some(signing_key().sign(&image).to_file());
        let mut index = installed();
        index.insert("luci".into(), "25.074.50000~b2c3d4e".into());
        Self {
            image,
            allow_defaults: false,
            promised_sha256: None,
            signature,
            index,
            cut_first_download: None,
            lose_first_download: false,
            stall_first_download: None,
            drip_first_download: None,
            stated_size: None,
            download_without_length: false,
        }
    }

    /// The build response for `request` (the manifest holds every requested package).
    fn response(&self, request: &serde_json::Value, server: &str) -> serde_json::Value {
        let mut response: serde_json::Value = serde_json::from_slice(include_bytes!(
            "../../../proto/testdata/asu/build-200-24.10.6-ath79-tplink_archer-c7-v5.json"
        ))
        .unwrap();
        let sha = self
            .promised_sha256
            .clone()
            .unwrap_or_else(|| sha256(&self.image));
        response["images"] = serde_json::json!([
            {"filesystem": "squashfs", "name": IMAGE_NAME, "sha256": sha, "sha256_unsigned": sha, "type": "sysupgrade"}
        ]);
        if let Some(size) = self.stated_size {
            response["images"][0]["size"] = size.into();
        }
        let mut manifest = serde_json::Map::new();
        if let Some(versions) = request["packages_versions"].as_object() {
            for (name, version) in versions {
                manifest.insert(name.clone(), version.clone());
            }
        }
        response["manifest"] = manifest.into();
        response["request"] = request.clone();
        let _ = server;
        response
    }
}

/// Starts a server that offers 24.10.6 and builds `offer` after one queued poll.
pub(crate) fn upgrade_server(offer: Offer) -> Server {
    let url_cell: Arc<Mutex<String>> = Arc::new(Mutex::new(String::new()));
    let handler = upgrade_handler(offer, url_cell.clone());
    let server = Server::start(move |seen, n| handler(seen, n));
    *url_cell.lock().unwrap() = server.url.clone();
    server
}

/// The build API of [`upgrade_server`], for a server that serves more (`url`: the server's
/// own URL, set once it listens).
pub(crate) fn upgrade_handler(
    offer: Offer,
    url_cell: Arc<Mutex<String>>,
) -> impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static {
    let offer = Arc::new(offer);
    let cut_done = Arc::new(Mutex::new(false));
    let request: Arc<Mutex<serde_json::Value>> = Arc::new(Mutex::new(serde_json::Value::Null));
    move |seen, _| {
        let url = url_cell.lock().unwrap().clone();
        let path = seen.path.as_str();
        match (seen.method.as_str(), path) {
            ("GET", "/json/v1/overview.json") => {
                let mut overview: serde_json::Value = serde_json::from_slice(include_bytes!(
                    "../../../proto/testdata/asu/overview.json"
                ))
                .unwrap();
                overview["upstream_url"] = url.clone().into();
                if offer.allow_defaults {
                    overview["server"]["allow_defaults"] = true.into();
                }
                // As on sysupgrade.openwrt.org: an old branch snapshot that builds no target.
                overview["branches"]["21.02"] = serde_json::json!({
                    "path": "releases/{version}", "enabled": true, "snapshot": true,
                    "path_packages": "DEPRECATED", "versions": ["21.02-SNAPSHOT"],
                    "name": "21.02", "targets": {}
                });
                Reply::json(200, &overview)
            }
            ("GET", "/releases/24.10.6/targets/ath79/generic/profiles.json") => Reply::bytes(
                200,
                include_bytes!(
                    "../../../proto/testdata/upstream/profiles-24.10.6-ath79-generic.json"
                )
                .to_vec(),
            ),
            // ASU answers the architecture index as a flat `{name: version}` map, with
            // `"null": null` when one of the feeds has an empty `Packages` file.
            ("GET", "/json/v1/releases/24.10.6/packages/mips_24kc-index.json") => {
                let mut index = serde_json::json!(offer.index);
                index["null"] = serde_json::Value::Null;
                Reply::json(200, &index)
            }
            ("POST", "/api/v1/build") => {
                *request.lock().unwrap() = serde_json::from_slice(&seen.body).unwrap();
                let mut reply = Reply::json(
                    202,
                    &serde_json::json!({"status": 202, "detail": "queued", "request_hash": REQUEST_HASH, "queue_position": 1, "imagebuilder_status": "queued"}),
                );
                reply.headers.push(("X-Queue-Position".into(), "1".into()));
                reply
                    .headers
                    .push(("X-Imagebuilder-Status".into(), "queued".into()));
                reply
            }
            ("HEAD", p) if p == format!("/api/v1/build/{REQUEST_HASH}") => {
                Reply::bytes(200, Vec::new())
            }
            ("GET", p) if p == format!("/api/v1/build/{REQUEST_HASH}") => {
                let request = request.lock().unwrap().clone();
                Reply::json(200, &offer.response(&request, &url))
            }
            ("GET", p) if p == format!("/store/{REQUEST_HASH}/{IMAGE_NAME}") => {
                let mut reply = ranged(seen, &offer.image);
                reply.without_length = offer.download_without_length;
                let mut done = cut_done.lock().unwrap();
                if offer.lose_first_download && !*done {
                    *done = true;
                    return Reply::json(404, &serde_json::json!({"detail": "Not Found"}));
                }
                if let Some(cut) = offer.cut_first_download
                    && !*done
                {
                    *done = true;
                    reply.cut_after = Some(cut);
                }
                if let Some(stall) = offer.stall_first_download
                    && !*done
                {
                    *done = true;
                    reply.stall_after = Some(stall);
                }
                if let Some(drip) = offer.drip_first_download
                    && !*done
                {
                    *done = true;
                    reply.drip = Some(drip);
                }
                reply
            }
            ("GET", p) if p == format!("/store/{REQUEST_HASH}/{IMAGE_NAME}.sig") => {
                match &offer.signature {
                    Some(sig) => Reply::bytes(200, sig.as_bytes().to_vec()),
                    None => Reply::json(404, &serde_json::json!({"detail": "Not Found"})),
                }
            }
            _ => Reply::json(404, &serde_json::json!({"detail": "Not Found"})),
        }
    }
}

/// Asserts the exit code, printing everything on failure.
pub(crate) fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asserts that the agent's stderr names `text`, showing all of it when not.
pub(crate) fn assert_stderr_has(output: &Output, text: &str) {
    let stderr = stderr(output);
    assert!(stderr.contains(text), "{stderr}");
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub(crate) fn root_file(router: &Router, path: &str) -> PathBuf {
    router.path().join(path)
}
