//! Faults of the server's own machine (issue 20): a full disk is the server's trouble, never the
//! request's, so it is retried with back-off and never cached as a build failure.

use std::time::{Duration, Instant};

use attendant_server::state::now;
use attendant_server::store::{Job, JobState};
use serde_json::{Value, json};

use crate::small_disk::SmallDisk;
use crate::support::{Server, config};

fn x86(packages: &[&str]) -> Value {
    json!({"version": "24.10.5", "target": "x86/64", "profile": "generic", "packages": packages})
}

/// Waits until the job went back to the queue after a failed attempt; returns it.
async fn until_retried(server: &Server, hash: &str) -> Job {
    let store = server.running.service.workers.store.clone();
    let started = Instant::now();
    loop {
        let job = store
            .job(&hash.parse().unwrap(), now())
            .await
            .unwrap()
            .unwrap();
        assert_ne!(
            job.state,
            JobState::Failed,
            "a full disk was cached: {job:?}"
        );
        assert_ne!(
            job.state,
            JobState::Succeeded,
            "built on a full disk: {job:?}"
        );
        if job.state == JobState::Queued && job.last_error.is_some() {
            return job;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no retry recorded: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Issue 20, item 1: with `data_dir` on a full filesystem, neither the ImageBuilder download and
/// unpacking nor `make image` caches a failure; the job waits in the queue with the reason in
/// its status, and builds once space is freed.
#[tokio::test]
async fn issue_20_full_disk_is_retried_and_builds_once_space_is_freed() {
    let Some(disk) = SmallDisk::mount(256 * 1024 * 1024) else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let mirror = crate::support::mirror();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), &mirror);
    config.data_dir = disk.path().join("data");
    // The queue itself stays writable: what is tested here is the build's disk (the store's
    // own full disk is `store::tests::sqlite_commit_on_a_full_disk_*`).
    config.database = Some(dir.path().join("jobs.sqlite"));
    config.retry_backoff = Duration::from_millis(200);
    config.max_attempts = 1000;
    let server = Server::start_with(dir, mirror, config).await;

    // The ImageBuilder cannot be downloaded and unpacked.
    let filler = disk.fill();
    let (status, _, queued) = server.post(&x86(&["htop"])).await;
    assert_eq!(status, 202, "{queued}");
    let hash = queued["request_hash"].as_str().unwrap().to_owned();
    let job = until_retried(&server, &hash).await;
    let last_error = job.last_error.unwrap();
    assert!(
        last_error.contains("No space left on device"),
        "{last_error}"
    );
    let (status, _, body) = server.get(&format!("/api/v1/build/{hash}")).await;
    assert_eq!(status, 202, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("queued: attempt ") && detail.contains("No space left on device"),
        "{detail}"
    );
    std::fs::remove_file(&filler).unwrap();
    let (status, done) = server.wait(&hash).await;
    assert_eq!(status, 200, "{done}");

    // `make image` runs out of space in an ImageBuilder already unpacked.
    let filler = disk.fill();
    let (status, _, queued) = server.post(&x86(&["curl"])).await;
    assert_eq!(status, 202, "{queued}");
    let hash = queued["request_hash"].as_str().unwrap().to_owned();
    let job = until_retried(&server, &hash).await;
    let last_error = job.last_error.unwrap();
    assert!(
        last_error.contains("No space left on device"),
        "{last_error}"
    );
    std::fs::remove_file(&filler).unwrap();
    let (status, done) = server.wait(&hash).await;
    assert_eq!(status, 200, "{done}");
    server.stop().await;
}

/// Issue 20, item 4: `/store/` serves regular files under the store root only; no symbolic
/// link is followed, whether it is the file itself or a directory on the way.
#[tokio::test]
async fn issue_20_store_follows_no_symbolic_link() {
    let server = Server::start(|config| config.workers = 0).await;
    let store = server.store_dir();
    let hash = "ab".repeat(32);
    let job = store.join(&hash);
    std::fs::create_dir_all(&job).unwrap();
    std::fs::write(job.join("image.bin"), "image").unwrap();
    let secret_dir = server.dir.path().join("outside");
    std::fs::create_dir_all(&secret_dir).unwrap();
    std::fs::write(secret_dir.join("secret"), "secret").unwrap();
    std::os::unix::fs::symlink(secret_dir.join("secret"), job.join("passwd")).unwrap();
    std::os::unix::fs::symlink("image.bin", job.join("alias.bin")).unwrap();
    std::os::unix::fs::symlink(&secret_dir, store.join("escape")).unwrap();
    std::os::unix::fs::symlink(&job, store.join("inside")).unwrap();

    let fetch = |path: String| {
        let client = server.client.clone();
        let url = server.url(&path);
        async move {
            let response = client.get(url).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(
        fetch(format!("/store/{hash}/image.bin")).await,
        (200, "image".to_owned())
    );
    for path in [
        format!("/store/{hash}/passwd"),
        format!("/store/{hash}/alias.bin"),
        "/store/escape/secret".to_owned(),
        "/store/inside/image.bin".to_owned(),
        format!("/store/{hash}"),
    ] {
        let (status, body) = fetch(path.clone()).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.contains("secret"), "{path}: {body}");
    }
    server.stop().await;
}

/// Reads until the server closes the connection (or `patience` runs out: `None`); returns what
/// arrived and when the connection ended.
async fn read_until_closed(
    stream: &mut tokio::net::TcpStream,
    patience: Duration,
) -> Option<(Vec<u8>, Instant)> {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let read = tokio::time::timeout(patience, async {
        let mut buffer = [0u8; 64 * 1024];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    read.ok().map(|closed| (received, closed))
}

async fn connect(server: &Server) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(server.running.addr)
        .await
        .unwrap()
}

/// Issue 20, item 3: a request head that never completes (slowloris) and a keep-alive
/// connection with no next request are both closed after `header_read_timeout`.
#[tokio::test]
async fn issue_20_half_sent_header_and_idle_keep_alive_are_closed() {
    use tokio::io::AsyncWriteExt;
    let server = Server::start(|config| {
        config.workers = 0;
        config.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let mut slow = connect(&server).await;
    let started = Instant::now();
    slow.write_all(b"GET /api/v1/stats HTTP/1.1\r\nHost: attendant\r\nX-Slow: ")
        .await
        .unwrap();
    let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(10))
        .await
        .expect("a half-sent header still holds its connection after 10 s");
    let after = closed - started;
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(5),
        "closed after {after:?}"
    );

    let mut idle = connect(&server).await;
    idle.write_all(b"GET /api/v1/stats HTTP/1.1\r\nHost: attendant\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let (answer, closed) = read_until_closed(&mut idle, Duration::from_secs(10))
        .await
        .expect("an idle keep-alive connection is still open after 10 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(closed - started < Duration::from_secs(5));
    server.stop().await;
}

/// Issue 20, item 3: a client that stops reading a download holds its connection no longer
/// than `idle_timeout`.
#[tokio::test]
async fn issue_20_stalled_download_is_closed_after_the_idle_timeout() {
    use tokio::io::AsyncWriteExt;
    let server = Server::start(|config| {
        config.workers = 0;
        config.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let size = 64 * 1024 * 1024;
    let job = server.store_dir().join("ab".repeat(32));
    std::fs::create_dir_all(&job).unwrap();
    std::fs::write(job.join("image.bin"), vec![7u8; size]).unwrap();
    let mut stalled = connect(&server).await;
    let request = format!(
        "GET /store/{}/image.bin HTTP/1.1\r\nHost: attendant\r\n\r\n",
        "ab".repeat(32)
    );
    stalled.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (received, _) = read_until_closed(&mut stalled, Duration::from_secs(10))
        .await
        .expect("a stalled download still holds its connection");
    assert!(
        received.len() < size,
        "the whole file arrived after the stall ({} bytes)",
        received.len()
    );
    server.stop().await;
}

/// Issue 20, item 3: connections beyond `max_connections` are answered 503 with `Retry-After`
/// and closed; once one closes, new connections are served again.
#[tokio::test]
async fn issue_20_connections_beyond_the_cap_get_503() {
    use tokio::io::AsyncWriteExt;
    let server = Server::start(|config| {
        config.workers = 0;
        config.max_connections = 2;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = connect(&server).await;
        stream
            .write_all(b"GET /api/v1/stats HTTP/1.1\r\n")
            .await
            .unwrap();
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = connect(&server).await;
    extra
        .write_all(b"GET /api/v1/stats HTTP/1.1\r\nHost: attendant\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = read_until_closed(&mut extra, Duration::from_secs(5))
        .await
        .expect("the connection beyond the cap was not closed");
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(answer.starts_with("http/1.1 503 "), "{answer}");
    assert!(answer.contains("\r\nretry-after: "), "{answer}");
    let (status, _, body) = {
        drop(held.pop());
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.get("/api/v1/stats").await
    };
    assert_eq!(status, 200, "{body}");
    server.stop().await;
}

/// The processes whose environment names a build attempt of `request_hash`.
fn attempt_processes(request_hash: &str) -> Vec<(u32, String)> {
    let wanted = format!("{}={request_hash}-", attendant_server::worker::ATTEMPT_ENV);
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|byte| *byte == 0)
            .any(|variable| variable.starts_with(wanted.as_bytes()))
        {
            let command = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            found.push((pid, String::from_utf8_lossy(&command).replace('\0', " ")));
        }
    }
    found
}

/// A real `attendant-server serve` process, killed with `SIGKILL` when dropped (also when the
/// test fails half-way, so that no server outlives it).
struct ServeProcess(std::process::Child);

impl ServeProcess {
    fn start(config_path: &std::path::Path) -> Self {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_attendant-server"))
            .args(["serve", "--config"])
            .arg(config_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Self(child)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn status_of(client: &reqwest::Client, base: &str, hash: &str) -> (u16, String) {
    match client
        .get(format!("{base}/api/v1/build/{hash}"))
        .send()
        .await
    {
        Ok(response) => {
            let status = response.status().as_u16();
            let stage = response
                .headers()
                .get("x-imagebuilder-status")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            (status, stage)
        }
        Err(_) => (0, String::new()),
    }
}

/// Issue 20, item 6: after kill -9 of the server mid-build, its `make` and everything `make`
/// started stop, and the next start deletes the dead attempt's work directory (and builds the
/// job again).
#[tokio::test]
async fn issue_20_killed_server_leaves_no_build_running_and_its_work_is_swept() {
    let mirror = crate::support::mirror();
    let dir = tempfile::tempdir().unwrap();
    let port = crate::fixture::free_port();
    let data = dir.path().join("data");
    let config_path = dir.path().join("attendant.toml");
    std::fs::write(
        &config_path,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = {data:?}\nupstream_url = {:?}\n\
             trusted_keys = [{:?}]\nworkers = 1\njob_lease = \"2s\"\n",
            mirror.root.display().to_string(),
            mirror.public_key.display().to_string(),
            data = data.display().to_string(),
        ),
    )
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let server = ServeProcess::start(&config_path);

    // A first build unpacks the ImageBuilder; then its `make image` is made to hang.
    let post = |packages: Value| {
        let client = client.clone();
        let url = format!("{base}/api/v1/build");
        async move {
            let started = Instant::now();
            loop {
                let sent = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(x86_value(&packages).to_string())
                    .send()
                    .await;
                if let Ok(response) = sent {
                    let body: Value =
                        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
                    return body["request_hash"].as_str().unwrap().to_owned();
                }
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "server did not start"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let first = post(json!(["htop"])).await;
    let started = Instant::now();
    while status_of(&client, &base, &first).await.0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "first build did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let makefile =
        find_file(&data.join("imagebuilders"), "Makefile").expect("unpacked ImageBuilder");
    let hang = makefile.with_file_name(".profiles.mk");
    let original = std::fs::read_to_string(&hang).ok();
    let mut hanging = original.clone().unwrap_or_default();
    hanging.push_str("\nbuild_image: attendant_test_hang\nattendant_test_hang:\n\tsleep 300\n");
    std::fs::write(&hang, hanging).unwrap();

    let second = post(json!(["curl"])).await;
    let started = Instant::now();
    let processes = loop {
        let running = attempt_processes(&second);
        if running
            .iter()
            .any(|(_, command)| command.starts_with("sleep 300"))
        {
            break running;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the build never hung: {running:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let work = data.join("work");
    let attempt_dirs = || -> Vec<String> {
        std::fs::read_dir(&work)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .filter(|name| name.starts_with(&second) && !name.ends_with(".lock"))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(attempt_dirs().len(), 1);

    drop(server);
    let started = Instant::now();
    loop {
        let left = attempt_processes(&second);
        if left.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still running 10 s after kill -9 of the server: {left:?} (were {processes:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        attempt_dirs().len(),
        1,
        "the dead attempt's directory is still there"
    );

    match original {
        Some(original) => std::fs::write(&hang, original).unwrap(),
        None => std::fs::remove_file(&hang).unwrap(),
    }
    let restarted = ServeProcess::start(&config_path);
    let started = Instant::now();
    loop {
        let (status, _) = status_of(&client, &base, &second).await;
        if status == 200 && attempt_dirs().is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "after the restart: status {status}, work {:?}",
            attempt_dirs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(restarted);
}

fn x86_value(packages: &Value) -> Value {
    json!({"version": "24.10.5", "target": "x86/64", "profile": "generic", "packages": packages})
}

fn find_file(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|file| file == name) && path.is_file() {
            return Some(path);
        }
        if entry.file_type().ok()?.is_dir()
            && let Some(found) = find_file(&path, name)
        {
            return Some(found);
        }
    }
    None
}
