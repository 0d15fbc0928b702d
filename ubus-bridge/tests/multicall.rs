//! The multi-call binary as it is installed on a router: `<root>/usr/bin/attendant` and
//! `<root>/usr/libexec/rpcd/attendant`, both symlinks to `attendant-multicall` with the same file
//! name, so only the directory tells them apart (`src/multicall.rs`).

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test: a failure should panic with the value"
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const MULTICALL: &str = env!("CARGO_BIN_EXE_attendant-multicall");
const OPKG_STATUS: &[u8] = include_bytes!("../../proto/testdata/opkg/status-24.10-ath79");

/// A router root with the binary installed as the feed installs it.
struct Installed {
    dir: tempfile::TempDir,
}

impl Installed {
    /// `server` is the configured upgrade server.
    fn new(server: &str) -> Self {
        let installed = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        installed.write("tmp/sysinfo/board_name", "tplink,archer-c7-v5\n");
        installed.write("tmp/sysinfo/model", "TP-Link Archer C7 v5\n");
        installed.write(
            "usr/lib/os-release",
            "NAME=\"OpenWrt\"\nVERSION=\"24.10.4\"\nID=\"openwrt\"\nBUILD_ID=\"r28427-6df0e3d02a\"\n\
             OPENWRT_BOARD=\"ath79/generic\"\nOPENWRT_ARCH=\"mips_24kc\"\n\
             OPENWRT_RELEASE=\"OpenWrt 24.10.4 r28427-6df0e3d02a\"\n",
        );
        installed.write(
            "proc/mounts",
            "/dev/root /rom squashfs ro 0 0\noverlayfs:/overlay / overlay rw 0 0\n",
        );
        installed.write(
            "usr/lib/opkg/status",
            std::str::from_utf8(OPKG_STATUS).unwrap(),
        );
        installed.write(
            "etc/config/attendedsysupgrade",
            &format!("config server 'server'\n\toption url '{server}'\n"),
        );
        for link in ["usr/bin/attendant", "usr/libexec/rpcd/attendant"] {
            let path = installed.path().join(link);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(MULTICALL, path).unwrap();
        }
        installed
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, relative: &str, contents: &str) {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    fn agent(&self) -> PathBuf {
        self.path().join("usr/bin/attendant")
    }

    fn plugin(&self) -> PathBuf {
        self.path().join("usr/libexec/rpcd/attendant")
    }

    /// Runs `program args` with `stdin`, the root in `ATTENDANT_ROOT` (the plugin's way).
    fn run(&self, program: &Path, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(program)
            .args(args)
            .env("ATTENDANT_ROOT", self.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        child.wait_with_output().unwrap()
    }

    /// `/usr/libexec/rpcd/attendant call <method>` with `arguments` on stdin: the reply.
    fn call(&self, method: &str, arguments: &Value) -> Value {
        let output = self.run(&self.plugin(), &["call", method], &arguments.to_string());
        serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("{}", describe(&output)))
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

fn contract_signatures() -> Value {
    let contract: Value = serde_json::from_str(include_str!("../contract.json")).unwrap();
    contract["methods"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, method)| (name.clone(), method["signature"].clone()))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[test]
fn as_usr_bin_attendant_it_is_the_agent() {
    let installed = Installed::new("http://127.0.0.1:9");
    let version = installed.run(&installed.agent(), &["--version"], "");
    assert!(version.status.success(), "{}", describe(&version));
    assert_eq!(
        String::from_utf8_lossy(&version.stdout),
        format!("attendant {}\n", env!("CARGO_PKG_VERSION"))
    );

    let help = installed.run(&installed.agent(), &["--help"], "");
    assert!(help.status.success(), "{}", describe(&help));
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.starts_with("Usage: attendant "), "{text}");
    assert!(text.contains("\n  list "), "{text}");
}

#[test]
fn attendant_list_is_the_agents_list_not_the_plugins() {
    let installed = Installed::new("http://127.0.0.1:9");
    let root = installed.path().to_str().unwrap().to_owned();
    let output = installed.run(
        &installed.agent(),
        &["list", "--format", "config", "--root", &root],
        "",
    );
    assert!(output.status.success(), "{}", describe(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    let first = text.lines().next().unwrap_or_default();
    assert!(first.starts_with("CONFIG_PACKAGE_"), "{text}");
    assert!(first.ends_with("=y"), "{text}");
    assert!(!text.contains("config_get"), "{text}");

    // `call` is no agent command: the agent refuses it as a usage error.
    let call = installed.run(&installed.agent(), &["call", "info"], "{}");
    assert_eq!(call.status.code(), Some(2), "{}", describe(&call));
    assert!(call.stdout.is_empty(), "{}", describe(&call));
    assert!(
        String::from_utf8_lossy(&call.stderr).contains("Unrecognized argument: call"),
        "{}",
        describe(&call)
    );
}

#[test]
fn as_libexec_rpcd_attendant_it_is_the_plugin() {
    let installed = Installed::new("http://asu.lan");
    let list = installed.run(&installed.plugin(), &["list"], "");
    assert!(list.status.success(), "{}", describe(&list));
    let printed: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(printed, contract_signatures());

    let info = installed.call("info", &json!({"ubus_rpc_session": "0"}));
    assert_eq!(info["board_name"], "tplink,archer-c7-v5");
    assert_eq!(info["version"], "24.10.4");
    assert_eq!(info["server"], "http://asu.lan");
}

#[test]
fn a_job_started_through_the_plugin_path_runs_as_the_plugin() {
    // Nothing listens on port 9: the job fails at the server. Had the job process come up as
    // the agent (`attendant --root DIR __job ID`), it would have died of a usage error instead,
    // and `status` would say `job_died`.
    let installed = Installed::new("http://127.0.0.1:9");
    let started = installed.call("start", &json!({}));
    let job = started["job"].as_str().unwrap().to_owned();
    let began = Instant::now();
    let status = loop {
        let status = installed.call("status", &json!({ "job": job }));
        if status["state"] == "failed" {
            break status;
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "the job did not fail: {status:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["error"]["code"], "server", "{status:#}");
}
