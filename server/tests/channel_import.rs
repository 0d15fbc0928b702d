//! The importer of automatic channels against the fixture mirror (`upstream`) and a fixture
//! HTTP server (`http` with a monitor URL): a new build only when an input changed, nothing when
//! an input fails, one build when two importers start at once, and each import published.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests stop at their first failure"
)]

use std::path::Path;
use std::time::Duration;

use attendant_e2e::MirrorServer;
use attendant_e2e::mirror::{DEFAULT_SEED, MirrorInfo};
use attendant_e2e::workspace;
use attendant_server::channels::apply::apply;
use attendant_server::channels::import::{ImportResult, import};
use attendant_server::channels::model::{BuildState, DeviceId};
use attendant_server::channels::ops::{self, CreateOptions};
use attendant_server::config::Config;
use attendant_server::service::Service;
use serde_json::Value;

const DEVICE: &str = "x86/64/generic";

fn mirror() -> MirrorInfo {
    workspace::fixture(DEFAULT_SEED).expect("the fixture mirror")
}

struct Setup {
    _dir: tempfile::TempDir,
    service: Service,
    images: MirrorServer,
    www: std::path::PathBuf,
}

async fn setup() -> Setup {
    let mirror = mirror();
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir_all(www.join("img")).unwrap();
    write_release(&www, "1.0", "first image");
    let images = MirrorServer::start(&www).unwrap();
    let secret = dir.path().join("key.sec");
    attendant_server::signing::generate_key_pair(&secret, None).unwrap();
    let root = dir.path().join("root.sec");
    attendant_server::channels::keys::root_init(&root).unwrap();
    let delegation = dir.path().join("signing.ucert");
    attendant_server::channels::keys::delegate(
        &root,
        &secret,
        0,
        Duration::from_secs(100 * 365 * 86_400),
        &delegation,
    )
    .unwrap();
    let file = format!(
        r#"
upstream_url = "{upstream}"
data_dir = "{data}"
signing_key = "{secret}"
workers = 0

[channels]
signing_key = "{secret}"
delegation = "{delegation}"
publish_interval = "0s"
import_timeout = "5s"

[[channels.auto]]
channel = "nightly"

[[channels.auto.inputs]]
name = "openwrt"
generator = "upstream"
track = "stable"

[[channels.auto.inputs]]
name = "image"
generator = "http"
url = "{base}/img/generic-combined.img.gz"
monitor = "{base}/img/version"
image_type = "combined"
filesystem = "ext4"

[[channels.auto.inputs]]
name = "version"
generator = "version"
"#,
        upstream = mirror.root.display(),
        data = dir.path().join("data").display(),
        secret = secret.display(),
        delegation = delegation.display(),
        base = images.url(),
    );
    let mut config = Config::from_sources(&file, Path::new("test.toml"), []).unwrap();
    config.trusted_keys = vec![mirror.public_key.clone()];
    let service = Service::open(config).await.unwrap();
    let state = &service.state;
    apply(state, "test", false, |tree| {
        ops::create(
            tree,
            "nightly",
            &CreateOptions {
                auto: true,
                ..CreateOptions::default()
            },
        )
    })
    .await
    .unwrap();
    apply(state, "test", false, |tree| {
        ops::device_add(tree, "nightly", &DEVICE.parse::<DeviceId>().unwrap())
    })
    .await
    .unwrap();
    Setup {
        _dir: dir,
        service,
        images,
        www,
    }
}

fn write_release(www: &Path, version: &str, content: &str) {
    std::fs::write(www.join("img/generic-combined.img.gz"), content).unwrap();
    std::fs::write(www.join("img/version"), format!("{version}\n")).unwrap();
}

impl Setup {
    async fn import(&self) -> Vec<ImportResult> {
        let key = self.service.workers.signing_key.as_deref();
        let report = import(&self.service.state, key, &[]).await.unwrap();
        assert!(!report.locked);
        report
            .outcomes
            .into_iter()
            .map(|outcome| outcome.result)
            .collect()
    }

    async fn builds(&self) -> Vec<(u64, String)> {
        let tree = self
            .service
            .state
            .store
            .channels()
            .load_tree()
            .await
            .unwrap();
        tree[0].devices[DEVICE]
            .builds
            .iter()
            .map(|build| {
                assert_eq!(build.state, BuildState::Ready);
                (build.number, build.version_detail_text())
            })
            .collect()
    }

    fn published(&self) -> Value {
        let path = self
            .service
            .state
            .config
            .channels_path()
            .join("channels.json");
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_adds_a_build_only_when_an_input_changed_and_publishes_it() {
    let setup = setup().await;
    let results = setup.import().await;
    let ImportResult::Added {
        number,
        version_detail,
    } = &results[0]
    else {
        panic!("{results:?}");
    };
    assert_eq!(*number, 1);
    // The fixture's stable release and its revision, and the monitor's text.
    assert!(
        version_detail.starts_with("openwrt=25.12.1,revision=r"),
        "{version_detail}"
    );
    assert!(version_detail.ends_with(",image=1.0"), "{version_detail}");
    let serial = setup.published()["global"]["serial"].as_u64().unwrap();
    let pool_file = setup
        .service
        .state
        .config
        .channels_path()
        .join("pool")
        .read_dir()
        .unwrap()
        .count();
    assert_eq!(pool_file, 1, "the image was copied into the pool");

    // Idempotence: a second run adds and publishes nothing.
    assert_eq!(setup.import().await, [ImportResult::UpToDate]);
    assert_eq!(setup.builds().await.len(), 1);
    assert_eq!(setup.published()["global"]["serial"], serial);

    // A new image upstream: a new build, published.
    write_release(&setup.www, "1.1", "second image");
    let results = setup.import().await;
    assert!(
        matches!(&results[0], ImportResult::Added { number: 2, .. }),
        "{results:?}"
    );
    let published = setup.published();
    assert!(published["global"]["serial"].as_u64().unwrap() > serial);
    let index_url = published["channels"]["nightly"]["devices"][DEVICE]["index"]
        .as_str()
        .unwrap();
    let index: Value = serde_json::from_slice(
        &std::fs::read(
            setup
                .service
                .state
                .config
                .channels_path()
                .join(index_url.strip_prefix("/channels/").unwrap()),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(index["images"].as_array().unwrap().len(), 2);
    assert_eq!(index["images"][1]["files"][0]["image_type"], "combined");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_input_adds_nothing_and_says_why() {
    let setup = setup().await;
    setup.import().await;
    let before = setup.builds().await;
    let serial = setup.published()["global"]["serial"].clone();

    write_release(&setup.www, "2.0", "third image");
    setup.images.fail_with_status("/img/version", 503);
    let results = setup.import().await;
    let [ImportResult::Failed { reason }] = results.as_slice() else {
        panic!("{results:?}");
    };
    assert!(
        reason.starts_with("input `image`: `http://")
            && reason.ends_with("/img/version`: answered 503 Service Unavailable"),
        "{reason}"
    );
    assert_eq!(setup.builds().await, before);
    assert_eq!(setup.published()["global"]["serial"], serial);

    // The image itself failing (after the monitor said it changed): nothing either.
    setup.images.clear_faults();
    setup
        .images
        .fail_with_status("/img/generic-combined.img.gz", 404);
    let results = setup.import().await;
    assert!(
        matches!(&results[0], ImportResult::Failed { reason } if reason.contains("answered 404")),
        "{results:?}"
    );
    assert_eq!(setup.builds().await, before);

    // Back to normal: the change lands.
    setup.images.clear_faults();
    let results = setup.import().await;
    assert!(
        matches!(&results[0], ImportResult::Added { number: 2, .. }),
        "{results:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_importers_started_at_once_add_one_build() {
    let setup = setup().await;
    let key = setup.service.workers.signing_key.as_deref();
    let state = &setup.service.state;
    // Slow the image down so the two runs overlap.
    setup
        .images
        .delay("/img/generic-combined.img.gz", Duration::from_millis(300));
    let (first, second) = tokio::join!(import(state, key, &[]), import(state, key, &[]));
    let (first, second) = (first.unwrap(), second.unwrap());
    assert!(
        first.locked != second.locked,
        "exactly one ran: {first:?} {second:?}"
    );
    assert_eq!(setup.builds().await.len(), 1);
    // Once the lock is free again, the next run finds nothing new.
    assert_eq!(setup.import().await, [ImportResult::UpToDate]);
}
