//! The `remote-channel` importer input between two real servers: one serves a published channel
//! over HTTP on `127.0.0.1`, the other imports it — checked under the remote's pinned root key,
//! the images downloaded, checked against the signed index and re-signed into the local pool.
//! A forged index, a replayed older tree, an expired delegation and expired metadata are each
//! refused with their cause, and nothing is added or published.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests stop at their first failure"
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use attendant_server::channels::apply::apply;
use attendant_server::channels::builds::{self, ImportOrder};
use attendant_server::channels::import::{ImportResult, import};
use attendant_server::channels::keys;
use attendant_server::channels::model::{BuildState, DeviceId, Recipe};
use attendant_server::channels::ops::{self, CreateOptions, NewBuild};
use attendant_server::config::Config;
use attendant_server::service::{Running, Service, spawn};
use serde_json::Value;

const DEVICE: &str = "x86/64/generic";
const YEAR: Duration = Duration::from_secs(365 * 86_400);

/// The channel keys of one server: an offline root, a signing key and its delegation.
struct ChannelKeys {
    root: PathBuf,
    signing: PathBuf,
    delegation: PathBuf,
}

fn channel_keys(dir: &Path) -> ChannelKeys {
    let root = dir.join("root.sec");
    keys::root_init(&root).unwrap();
    let signing = dir.join("signing.sec");
    let delegation = dir.join("signing.ucert");
    keys::delegate(&root, &signing, 0, 100 * YEAR, &delegation).unwrap();
    ChannelKeys {
        root,
        signing,
        delegation,
    }
}

/// The publishing server, over HTTP.
struct Remote {
    dir: tempfile::TempDir,
    keys: ChannelKeys,
    running: Running,
    base: String,
}

impl Remote {
    async fn start(metadata_expiry: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = channel_keys(dir.path());
        let image_key = dir.path().join("key-build");
        attendant_server::signing::generate_key_pair(&image_key, None).unwrap();
        let file = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {data:?}\nsigning_key = {image_key:?}\nworkers = 0\n\
             shutdown_timeout = \"5s\"\n\n[channels]\nsigning_key = {signing:?}\ndelegation = {delegation:?}\n\
             publish_interval = \"0s\"\nrefresh_margin = \"1s\"\n",
            data = dir.path().join("data"),
            signing = keys.signing,
            delegation = keys.delegation,
        );
        let mut config = Config::from_sources(&file, Path::new("remote.toml"), []).unwrap();
        // The configuration refuses a lifetime this short (routers' clocks drift); set behind
        // its back, it stands for a publisher that stopped re-signing long ago.
        config.channels.metadata_expiry = metadata_expiry;
        let running = spawn(config).await.unwrap();
        let state = &running.service.state;
        apply(state, "test", false, |tree| {
            ops::create(tree, "stable", &CreateOptions::default())
        })
        .await
        .unwrap();
        apply(state, "test", false, |tree| {
            ops::device_add(tree, "stable", &DEVICE.parse::<DeviceId>().unwrap())
        })
        .await
        .unwrap();
        Self {
            base: format!("http://{}", running.addr),
            dir,
            keys,
            running,
        }
    }

    /// Publishes a prebuilt build of `content`.
    async fn add_build(&self, version: &str, content: &str) {
        let file = self.dir.path().join(format!(
            "openwrt-{version}-x86-64-generic-ext4-combined.img.gz"
        ));
        std::fs::write(&file, content).unwrap();
        let service = &self.running.service;
        let order = ImportOrder {
            file,
            version: version.to_owned(),
            minversion: None,
            description: String::new(),
            name: None,
            origin: None,
        };
        builds::import(
            &service.state,
            service.workers.signing_key.as_deref(),
            "test",
            "stable",
            DEVICE,
            &order,
            false,
        )
        .await
        .unwrap();
    }

    /// Publishes the newest build's images again as a new build whose recipe carries `script` as
    /// its uci-defaults script (as a channel's recipe build would publish it).
    async fn add_build_with_defaults(&self, script: &str) {
        let state = &self.running.service.state;
        let channel = state
            .store
            .channels()
            .load_channel("stable")
            .await
            .unwrap()
            .unwrap();
        let newest = channel.devices[DEVICE].builds.last().unwrap().clone();
        let new = NewBuild {
            source: newest.source,
            state: BuildState::Ready,
            openwrt_version: newest.openwrt_version,
            version_code: newest.version_code,
            recipe: Recipe {
                add: vec!["tmux".to_owned()],
                defaults: Some(script.to_owned()),
                ..Recipe::default()
            },
            description: String::new(),
            version_detail: newest.version_detail,
            minversion: None,
            images: newest.images,
            embeds_stamp: false,
        };
        apply(state, "test", false, |tree| {
            ops::add_build(
                tree,
                "stable",
                DEVICE,
                new.clone(),
                attendant_server::state::now(),
            )
        })
        .await
        .unwrap();
    }

    /// Rewrites the device's current index with `edit` and signs it again with the remote's own
    /// signing key: what a publisher that serves other documents would publish.
    async fn re_signed_index(&self, edit: impl FnOnce(&mut Value)) {
        let index_file = self.index_file();
        let mut index: Value =
            serde_json::from_slice(&std::fs::read(&index_file).unwrap()).unwrap();
        edit(&mut index);
        let mut bytes = serde_json::to_vec(&index).unwrap();
        bytes.push(b'\n');
        let key =
            attendant_proto::usign::SecretKey::parse(&std::fs::read(&self.keys.signing).unwrap())
                .unwrap();
        let signature = key.sign(&bytes).to_file();
        std::fs::write(&index_file, &bytes).unwrap();
        let mut signature_file = index_file.into_os_string();
        signature_file.push(".sig");
        std::fs::write(signature_file, signature).unwrap();
        self.tampered().await;
    }

    fn tree(&self) -> PathBuf {
        self.running.service.state.config.channels_path()
    }

    /// Tells the remote server that files were changed behind its back: it serves the
    /// published metadata from memory, trusting that nothing but a publication changes it.
    async fn tampered(&self) {
        let state = &self.running.service.state;
        state.channel_cache.files.refresh(&self.tree()).await;
    }

    /// The file of the device's current index in the published tree.
    fn index_file(&self) -> PathBuf {
        let channels: Value =
            serde_json::from_slice(&std::fs::read(self.tree().join("channels.json")).unwrap())
                .unwrap();
        let path = channels["channels"]["stable"]["devices"][DEVICE]["index"]
            .as_str()
            .unwrap();
        self.tree().join(path.strip_prefix("/channels/").unwrap())
    }

    fn serial(&self) -> u64 {
        let channels: Value =
            serde_json::from_slice(&std::fs::read(self.tree().join("channels.json")).unwrap())
                .unwrap();
        channels["global"]["serial"].as_u64().unwrap()
    }

    async fn stop(self) {
        self.running.shutdown.cancel();
        let _ = self.running.task.await;
    }
}

/// The importing server (in process: the importer needs no HTTP of its own).
struct Local {
    _dir: tempfile::TempDir,
    service: Service,
}

impl Local {
    async fn open(remote: &Remote) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = channel_keys(dir.path());
        let image_key = dir.path().join("key-build");
        attendant_server::signing::generate_key_pair(&image_key, None).unwrap();
        let file = format!(
            r#"
data_dir = {data:?}
signing_key = {image_key:?}
workers = 0

[channels]
signing_key = {signing:?}
delegation = {delegation:?}
publish_interval = "0s"
import_timeout = "5s"

[[channels.auto]]
channel = "mirror"

[[channels.auto.inputs]]
name = "upstream-stable"
generator = "remote-channel"
url = "{base}/"
channel = "stable"
root_keys = [{root:?}]

[[channels.auto.inputs]]
name = "version"
generator = "version"
"#,
            data = dir.path().join("data"),
            signing = keys.signing,
            delegation = keys.delegation,
            base = remote.base,
            root = remote.keys.root.with_extension("sec.pub"),
        );
        let config = Config::from_sources(&file, Path::new("local.toml"), []).unwrap();
        let service = Service::open(config).await.unwrap();
        let state = &service.state;
        apply(state, "test", false, |tree| {
            ops::create(
                tree,
                "mirror",
                &CreateOptions {
                    auto: true,
                    ..CreateOptions::default()
                },
            )
        })
        .await
        .unwrap();
        apply(state, "test", false, |tree| {
            ops::device_add(tree, "mirror", &DEVICE.parse::<DeviceId>().unwrap())
        })
        .await
        .unwrap();
        Self { _dir: dir, service }
    }

    async fn import(&self) -> ImportResult {
        let key = self.service.workers.signing_key.as_deref();
        let report = import(&self.service.state, key, &[]).await.unwrap();
        assert!(!report.locked);
        assert_eq!(report.outcomes.len(), 1, "{report:?}");
        report.outcomes.into_iter().next().unwrap().result
    }

    /// A refusal's reason.
    async fn refused(&self) -> String {
        match self.import().await {
            ImportResult::Failed { reason } => reason,
            other => panic!("the import was not refused: {other:?}"),
        }
    }

    async fn builds(&self) -> Vec<(u64, String)> {
        let channel = self
            .service
            .state
            .store
            .channels()
            .load_channel("mirror")
            .await
            .unwrap()
            .unwrap();
        channel.devices[DEVICE]
            .builds
            .iter()
            .map(|build| (build.number, build.version_detail_text()))
            .collect()
    }

    fn tree(&self) -> PathBuf {
        self.service.state.config.channels_path()
    }

    fn published(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.tree().join("channels.json")).unwrap()).unwrap()
    }

    /// The published index of the mirror channel's device.
    fn index(&self) -> Value {
        let published = self.published();
        let index_path = published["channels"]["mirror"]["devices"][DEVICE]["index"]
            .as_str()
            .unwrap();
        serde_json::from_slice(
            &std::fs::read(
                self.tree()
                    .join(index_path.strip_prefix("/channels/").unwrap()),
            )
            .unwrap(),
        )
        .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_channel_is_imported_once_per_build_and_republished() {
    let remote = Remote::start(7 * 86_400 * Duration::from_secs(1)).await;
    remote.add_build("24.10.5", "remote image one").await;
    let local = Local::open(&remote).await;

    let ImportResult::Added {
        number,
        version_detail,
    } = local.import().await
    else {
        panic!("not added: {:?}", local.import().await);
    };
    assert_eq!(
        (number, version_detail.as_str()),
        (1, "upstream-stable=stable/1")
    );
    let serial = local.published()["global"]["serial"].as_u64().unwrap();
    let index = local.index();
    let image = &index["images"][0];
    assert_eq!(image["openwrt_version"], "24.10.5");
    let file = &image["files"][0];
    assert_eq!(
        file["name"],
        "openwrt-24.10.5-x86-64-generic-ext4-combined.img.gz"
    );
    assert_eq!(
        (file["image_type"].as_str(), file["filesystem"].as_str()),
        (Some("combined"), Some("ext4"))
    );
    // The bytes are the remote's, in the local pool, signed by the local image key.
    let pool_file = local.tree().join(
        file["path"]
            .as_str()
            .unwrap()
            .strip_prefix("/channels/")
            .unwrap(),
    );
    assert_eq!(std::fs::read(&pool_file).unwrap(), b"remote image one");
    let signature = std::fs::read(pool_file.with_extension("gz.sig")).unwrap();
    let local_key = attendant_proto::usign::PublicKey::parse(
        &std::fs::read(attendant_server::signing::public_path_of(
            local.service.state.config.signing_key.as_ref().unwrap(),
        ))
        .unwrap(),
    )
    .unwrap();
    let signature = attendant_proto::usign::Signature::parse(&signature).unwrap();
    local_key
        .verify(b"remote image one", &signature)
        .expect("the local server re-signed the image");

    // The download from the remote's pool counts there, as a download of its build 1.
    let remote_state = &remote.running.service.state;
    attendant_server::channels::downloads::flush(remote_state)
        .await
        .unwrap();
    let remote_device = remote_state
        .store
        .channels()
        .load_channel("stable")
        .await
        .unwrap()
        .unwrap()
        .devices
        .remove(DEVICE)
        .unwrap();
    let shown = attendant_server::channels::downloads::with_downloads(remote_state, &remote_device)
        .await
        .unwrap();
    assert_eq!(shown["builds"][0]["downloads"], 1, "{shown}");
    assert_eq!(shown["builds"][0]["images"][0]["downloads"], 1, "{shown}");

    // Idempotent: the same remote build is not imported twice, nothing is republished.
    assert_eq!(local.import().await, ImportResult::UpToDate);
    assert_eq!(local.builds().await.len(), 1);
    assert_eq!(local.published()["global"]["serial"], serial);

    // A new remote build: a new local build.
    remote.add_build("24.10.6", "remote image two").await;
    assert!(
        matches!(local.import().await, ImportResult::Added { number: 2, .. }),
        "{:?}",
        local.builds().await
    );
    assert_eq!(
        local.builds().await,
        [
            (1, "upstream-stable=stable/1".to_owned()),
            (2, "upstream-stable=stable/2".to_owned())
        ]
    );
    assert!(local.published()["global"]["serial"].as_u64().unwrap() > serial);

    // A recipe with a uci-defaults script: the script comes along, checked against its digest,
    // and the local index publishes it with the digest.
    let script = "#!/bin/sh\nuci set system.@system[0].hostname='mirror'\nuci commit system\n";
    remote.add_build_with_defaults(script).await;
    assert!(
        matches!(local.import().await, ImportResult::Added { number: 3, .. }),
        "{:?}",
        local.builds().await
    );
    let index = local.index();
    let recipe = &index["images"][2]["recipe"];
    assert_eq!(recipe["add"], serde_json::json!(["tmux"]));
    assert_eq!(recipe["defaults"], script);
    assert_eq!(
        recipe["defaults_sha256"],
        attendant_proto::channel::defaults_digest(script)
    );
    let builds = local.builds().await;

    // A script longer than this server takes for a recipe of its own is refused, not cut.
    let long = format!("#!/bin/sh\n{}\n", "#".repeat(20_480));
    remote.add_build_with_defaults(&long).await;
    let reason = local.refused().await;
    assert!(
        reason.contains(&format!(
            ".json`: the uci-defaults script of build 4 is {} bytes long, more than this \
             server's `max_defaults_length` (20480 bytes)",
            long.len()
        )),
        "{reason}"
    );
    assert_eq!(local.builds().await, builds, "nothing was added");

    // A validly signed index that names the script only by its digest (a publisher from before
    // scripts were published inline): refused, not imported without the script.
    remote
        .re_signed_index(|index| {
            let recipe = index["images"][3]["recipe"].as_object_mut().unwrap();
            recipe.remove("defaults").unwrap();
        })
        .await;
    let reason = local.refused().await;
    assert!(
        reason.contains(&format!(
            "the uci-defaults script of build 4 is given only by its SHA-256 `{}`: the index \
             does not carry the script",
            attendant_proto::channel::defaults_digest(&long)
        )),
        "{reason}"
    );
    assert_eq!(local.builds().await, builds, "nothing was added");
    remote.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_replayed_or_expired_remote_is_refused_and_nothing_is_published() {
    let remote = Remote::start(7 * 86_400 * Duration::from_secs(1)).await;
    remote.add_build("24.10.5", "remote image one").await;
    let local = Local::open(&remote).await;
    assert!(matches!(
        local.import().await,
        ImportResult::Added { number: 1, .. }
    ));
    let old_serial = remote.serial();
    let builds = local.builds().await;
    let published = local.published()["global"]["serial"].clone();
    let unchanged = |local_builds: Vec<(u64, String)>, serial: Value| {
        assert_eq!(local_builds, builds, "nothing was added");
        assert_eq!(serial, published, "nothing was published");
    };

    // A forged index: one byte of the new build's checksum changed, the signature kept.
    remote.add_build("24.10.6", "remote image two").await;
    let new_serial = remote.serial();
    assert!(new_serial > old_serial);
    let index_file = remote.index_file();
    let genuine = std::fs::read(&index_file).unwrap();
    let text = String::from_utf8(genuine.clone()).unwrap();
    let checksum_at = text.rfind("\"checksum\":\"").unwrap() + "\"checksum\":\"".len();
    let mut forged = genuine.clone();
    forged[checksum_at] = if forged[checksum_at] == b'0' {
        b'1'
    } else {
        b'0'
    };
    std::fs::write(&index_file, &forged).unwrap();
    remote.tampered().await;
    let reason = local.refused().await;
    assert!(
        reason.starts_with("input `upstream-stable`: `http://")
            && reason
                .contains(".json` is refused (bad-signature): the metadata signature by key `"),
        "{reason}"
    );
    unchanged(
        local.builds().await,
        local.published()["global"]["serial"].clone(),
    );
    std::fs::write(&index_file, &genuine).unwrap();
    remote.tampered().await;

    // A replayed older tree: the remote's `current` points at an earlier publication again.
    let current = remote.tree().join("current");
    let newest = std::fs::read_link(&current).unwrap();
    std::fs::remove_file(&current).unwrap();
    std::os::unix::fs::symlink(format!("meta/{old_serial}"), &current).unwrap();
    remote.tampered().await;
    let reason = local.refused().await;
    assert!(
        reason.ends_with(&format!(
            "/channels/channels.json` is refused (serial-rollback): the metadata has serial {old_serial}, lower than serial {new_serial} seen before"
        )),
        "{reason}"
    );
    unchanged(
        local.builds().await,
        local.published()["global"]["serial"].clone(),
    );
    std::fs::remove_file(&current).unwrap();
    std::os::unix::fs::symlink(&newest, &current).unwrap();
    remote.tampered().await;

    // An expired delegation: the root re-issued the signing key's certificate for a window
    // that has ended.
    let fingerprint =
        attendant_proto::usign::SecretKey::parse(&std::fs::read(&remote.keys.signing).unwrap())
            .unwrap()
            .fingerprint();
    let delegation = remote
        .tree()
        .join("keys")
        .join(keys::delegation_file_name(fingerprint));
    let genuine_delegation = std::fs::read(&delegation).unwrap();
    let expired = remote.dir.path().join("expired.ucert");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ten_days_ago = i64::try_from(now).unwrap() - 10 * 86_400;
    keys::delegate(
        &remote.keys.root,
        &remote.keys.signing,
        ten_days_ago,
        Duration::from_secs(86_400),
        &expired,
    )
    .unwrap();
    std::fs::copy(&expired, &delegation).unwrap();
    remote.tampered().await;
    let reason = local.refused().await;
    assert!(
        reason.contains(
            "is refused (delegation-expired): the delegation of the signing key expired at "
        ),
        "{reason}"
    );
    unchanged(
        local.builds().await,
        local.published()["global"]["serial"].clone(),
    );
    std::fs::write(&delegation, &genuine_delegation).unwrap();
    remote.tampered().await;

    // A root key the remote's chain does not lead to.
    let stranger = remote.dir.path().join("stranger.sec");
    keys::root_init(&stranger).unwrap();
    std::fs::copy(
        stranger.with_extension("sec.pub"),
        remote.keys.root.with_extension("sec.pub"),
    )
    .unwrap();
    let reason = local.refused().await;
    assert!(reason.contains("is refused (unknown-key)"), "{reason}");
    unchanged(
        local.builds().await,
        local.published()["global"]["serial"].clone(),
    );
    remote.stop().await;
}

/// Metadata past its `expires` (a remote that stopped re-signing) is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_metadata_past_its_expiry_is_refused() {
    let remote = Remote::start(Duration::from_secs(2)).await;
    remote.add_build("24.10.5", "remote image one").await;
    let local = Local::open(&remote).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let reason = loop {
        match local.import().await {
            ImportResult::Failed { reason } => break reason,
            _ if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!("still believed after 20 s: {other:?}"),
        }
    };
    assert!(
        reason.contains("is refused (expired): the metadata expired at "),
        "{reason}"
    );
    remote.stop().await;
}
