//! The README's first command, driven the way a newcomer runs it: `attendant-e2e demo` as a
//! real process in an empty directory (so the default `./data` is relative), then the `curl`
//! steps it prints — POST, poll, download — and the image's signature checked with
//! `signify-openbsd` against the key the demo serves; then the agent commands it prints, run as
//! printed, upgrade its two demo routers to the end (their stand-in `sysupgrade` records the
//! flash).

use std::process::Stdio;
use std::time::{Duration, Instant};

use attendant_e2e::mirror::{HELPER_ENV, helper_path};
use attendant_e2e::workspace;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn demo_from_an_empty_directory_builds_a_signed_image() {
    let helper = helper();
    // The demo prints the agent beside itself (`cargo build --bins` builds both).
    workspace::cargo_build(&workspace::AGENT_BUILD).expect("build the agent");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut demo = Command::new(env!("CARGO_BIN_EXE_attendant-e2e"))
        .args(["demo", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(dir.path())
        .env(HELPER_ENV, &helper)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // The banner names the signing key the curl steps download from /keys/.
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    // Generating the mirror takes most of it: tens of seconds on an idle 2-core machine.
    let banner = tokio::time::timeout(Duration::from_secs(300), lines.next_line())
        .await
        .expect("the demo prints its banner within five minutes")
        .unwrap()
        .expect("a banner line");
    let fingerprint = banner
        .split("signed by key ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no key in the banner: {banner}"))
        .to_owned();
    let (printed, mut instructions) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = printed.send(line);
        }
    });

    let client = reqwest::Client::new();
    let request = json!({"version": "24.10.5", "target": "x86/64", "profile": "generic",
                         "packages": ["tmux", "htop"]});
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        // POST until the server answers; repeated POSTs attach to the same job.
        if let Ok(response) = client
            .post(format!("{base}/api/v1/build"))
            .header("content-type", "application/json")
            .body(request.to_string())
            .send()
            .await
        {
            let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
            match body["status"].as_u64() {
                Some(200) => break body,
                Some(202) => {}
                _ => panic!("the demo build failed: {body:#}"),
            }
        }
        assert!(
            Instant::now() < deadline,
            "no finished build within a minute"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done["bin_dir"], done["request_hash"]);
    assert!(done["manifest"]["tmux"].is_string(), "{done:#}");

    let image = done["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|image| image["type"] == "combined-efi" && image["filesystem"] == "squashfs")
        .expect("a squashfs combined-efi image");
    let name = image["name"].as_str().unwrap();
    let url = format!("{base}/store/{}/{name}", done["bin_dir"].as_str().unwrap());
    let bytes = client
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let signature = client
        .get(format!("{url}.sig"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let key = client
        .get(format!("{base}/keys/{fingerprint}"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    std::fs::write(dir.path().join(name), &bytes).unwrap();
    std::fs::write(dir.path().join(format!("{name}.sig")), &signature).unwrap();
    std::fs::write(dir.path().join("demo.pub"), &key).unwrap();
    let verified = std::process::Command::new("signify-openbsd")
        .args([
            "-V",
            "-p",
            "demo.pub",
            "-x",
            &format!("{name}.sig"),
            "-m",
            name,
        ])
        .current_dir(dir.path())
        .output()
        .expect("signify-openbsd is installed (apt-get install signify-openbsd)");
    assert!(
        verified.status.success(),
        "signify-openbsd refused the demo image: {}",
        String::from_utf8_lossy(&verified.stderr)
    );
    // Clients fetch profiles.json from the upstream overview.json names: it must be a URL.
    let overview: Value = serde_json::from_slice(
        &client
            .get(format!("{base}/json/v1/overview.json"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let upstream = overview["upstream_url"].as_str().unwrap();
    let versions = client
        .get(format!("{upstream}/.versions.json"))
        .send()
        .await
        .unwrap();
    assert!(
        versions.status().is_success(),
        "{upstream} does not serve the mirror"
    );
    // The default data directory is relative to where the demo was started.
    assert!(dir.path().join("data/demo-upstream/mirror.json").is_file());

    // The agent commands, run exactly as printed (without a shell): both routers upgrade to the
    // end, and their stand-in sysupgrade is asked to check and then to flash the image.
    let mut commands = Vec::new();
    while commands.len() < 2 {
        let line = tokio::time::timeout(Duration::from_secs(10), instructions.recv())
            .await
            .expect("the demo prints two agent commands")
            .expect("the demo is still printing");
        if line.trim_start().starts_with("PATH=") {
            commands.push(line);
        }
    }
    for line in commands {
        let mut words = line.split_whitespace();
        let bin = words
            .next()
            .and_then(|word| word.strip_prefix("PATH=\""))
            .and_then(|word| word.strip_suffix(":$PATH\""))
            .unwrap_or_else(|| panic!("unexpected PATH in `{line}`"));
        let agent = words.next().unwrap();
        let args: Vec<&str> = words.collect();
        let root = std::path::Path::new(args.last().unwrap());
        let upgrade = tokio::task::spawn_blocking({
            let (agent, args, bin) = (
                agent.to_owned(),
                args.iter().map(|arg| (*arg).to_owned()).collect::<Vec<_>>(),
                bin.to_owned(),
            );
            move || {
                std::process::Command::new(agent)
                    .args(args)
                    .env("PATH", format!("{bin}:{}", std::env::var("PATH").unwrap()))
                    .env("NO_COLOR", "1")
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        assert!(
            upgrade.status.success(),
            "`{line}` failed:\n{}{}",
            String::from_utf8_lossy(&upgrade.stdout),
            String::from_utf8_lossy(&upgrade.stderr)
        );
        let image = root.join("tmp/firmware.bin");
        assert_eq!(
            attendant_e2e::sysupgrade::calls(root),
            [
                format!("--test {}", image.display()),
                image.display().to_string()
            ],
            "{line}"
        );
    }
    demo.kill().await.unwrap();
}

/// The ImageBuilder helper the demo copies into its mirror, built first if needed.
#[cfg(test)]
fn helper() -> std::path::PathBuf {
    if let Ok(path) = helper_path() {
        return path;
    }
    workspace::cargo_build(&["-p", "attendant-e2e", "--bin", "attendant-ib-helper"])
        .expect("build attendant-ib-helper");
    helper_path().unwrap()
}

/// A port nothing listens on right now.
#[cfg(test)]
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
