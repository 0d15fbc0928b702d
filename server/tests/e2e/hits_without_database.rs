//! Cache hits never wait for the database: two `serve` processes share one PostgreSQL
//! database (the way a public instance scales out), a build finishes on one of them, and then
//! the whole PostgreSQL cluster is stopped with `SIGSTOP`. Every query sent from then on waits,
//! so a request that is still answered at once did not send one. Status polls and re-posted
//! bodies of the finished build, `overview.json` and an unknown hash must keep being answered
//! by both processes; a new build request, which needs the store, must not be (the control that
//! shows the database really is unreachable); and after `SIGCONT` it is accepted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use attendant_server::config::DatabaseUrl;
use rustix::process::{Pid, Signal, kill_process};
use serde_json::{Value, json};

use crate::postgres::{ClusterOptions, TestDatabase};
use crate::support::Server;

/// How long a request that needs no database may take, with the database stopped.
const HIT_DEADLINE: Duration = Duration::from_secs(5);

/// The private cluster's processes, stopped until this is dropped.
struct Frozen(Vec<Pid>);

impl Frozen {
    /// Stops the postmaster whose socket directory `url` names, and all its children (the
    /// backends serving the connections the servers' pools hold).
    fn cluster(url: &str) -> Self {
        let socket_dir = url
            .split_once("?host=")
            .map(|(_, dir)| PathBuf::from(dir))
            .expect("a private test cluster's URL names its socket directory");
        let postmaster = postmaster_pid(&socket_dir.join("data"));
        let mut pids = vec![postmaster];
        pids.extend(children(postmaster));
        for &pid in &pids {
            kill_process(pid, Signal::STOP).expect("stop a PostgreSQL process");
        }
        Self(pids)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        for &pid in &self.0 {
            let _ = kill_process(pid, Signal::CONT);
        }
    }
}

/// The first line of `postmaster.pid`.
fn postmaster_pid(data: &Path) -> Pid {
    let text = std::fs::read_to_string(data.join("postmaster.pid"))
        .expect("read the test cluster's postmaster.pid");
    let pid: i32 = text
        .lines()
        .next()
        .and_then(|line| line.trim().parse().ok())
        .expect("postmaster.pid starts with the pid");
    Pid::from_raw(pid).expect("a positive pid")
}

/// Processes whose parent is `parent` (field 4 of `/proc/<pid>/stat`, after the command name
/// in parentheses, which may itself hold spaces).
fn children(parent: Pid) -> Vec<Pid> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|field| field.parse::<i32>().ok());
        if ppid == Some(parent.as_raw_nonzero().get()) {
            found.extend(Pid::from_raw(pid));
        }
    }
    found
}

async fn answer(server: &Server, request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request
        .timeout(HIT_DEADLINE)
        .send()
        .await
        .unwrap_or_else(|error| {
            panic!(
                "{}: no answer with the database stopped: {error}",
                server.base
            )
        });
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_hits_are_answered_with_the_database_stopped() {
    let database = TestDatabase::private(ClusterOptions::default()).await;
    let url = DatabaseUrl::try_from(database.url().to_owned()).unwrap();
    let store = tempfile::tempdir().unwrap();
    let shared = |workers: usize| {
        let url = url.clone();
        let store = store.path().to_owned();
        move |config: &mut attendant_server::config::Config| {
            config.database_url = Some(url);
            config.store_dir = Some(store);
            config.workers = workers;
        }
    };
    let builder = Server::start(shared(1)).await;
    let other = Server::start(shared(0)).await;

    let request = json!({
        "version": "24.10.5",
        "target": "x86/64",
        "profile": "generic",
        "packages": ["tmux"],
    });
    let (status, built) = builder.build(&request).await;
    assert_eq!(status, 200, "{built}");
    let hash = built["request_hash"].as_str().unwrap().to_owned();
    // The other process learns of the build the way a client's poll teaches it: from the store.
    let (status, _, _) = other.get(&format!("/api/v1/build/{hash}")).await;
    assert_eq!(status, 200);
    let (status, _, _) = other.post(&request).await;
    assert_eq!(status, 200);

    let frozen = Frozen::cluster(database.url());
    for server in [&builder, &other] {
        for round in 0..20 {
            let get = server
                .client
                .get(server.url(&format!("/api/v1/build/{hash}")));
            let (status, body) = answer(server, get).await;
            assert_eq!(
                (status, body["request_hash"].as_str()),
                (200, Some(hash.as_str())),
                "GET, round {round}"
            );
            let post = server
                .client
                .post(server.url("/api/v1/build"))
                .header("content-type", "application/json")
                .body(request.to_string());
            let (status, body) = answer(server, post).await;
            assert_eq!(
                (status, body["request_hash"].as_str()),
                (200, Some(hash.as_str())),
                "POST, round {round}"
            );
        }
        let (status, body) = answer(
            server,
            server.client.get(server.url("/json/v1/overview.json")),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }

    // The control: a request the caches cannot answer is not answered while the database is
    // stopped, so the hits above really were answered without it.
    let new_request = json!({
        "version": "24.10.5",
        "target": "x86/64",
        "profile": "generic",
        "packages": ["htop"],
    });
    let waiting = builder
        .client
        .post(builder.url("/api/v1/build"))
        .header("content-type", "application/json")
        .body(new_request.to_string())
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    match waiting {
        Err(error) => assert!(error.is_timeout(), "{error}"),
        Ok(response) => assert!(
            !response.status().is_success(),
            "a new build was accepted with the database stopped: {}",
            response.status()
        ),
    }

    drop(frozen);
    let (status, answer) = builder.build(&new_request).await;
    assert_eq!(status, 200, "after the database came back: {answer}");
    builder.stop().await;
    other.stop().await;
}
