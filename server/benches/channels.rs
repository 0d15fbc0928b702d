//! Channel publication benchmark: one channel with 2,000 devices (about as many profiles as
//! OpenWrt has), published from scratch and then incrementally.
//!
//! `cargo bench -p attendant-server --bench channels` builds the tree in memory (two Ready builds
//! per device, two images each, their pool files written beforehand: builds are not what is
//! measured), then times [`publish`]: from scratch into an empty directory, then after one
//! device got a new build — once with the changed device named (what `serve` does, from the
//! store's revisions) and once with every index compared against the published one. Each row is
//! the median of a few runs. Numbers go to `docs/benchmarks.md`.
//!
//! Under `cargo test` (no `--bench` argument) it runs with a few devices, so the benchmark is
//! kept working by CI without costing it time.

#![expect(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::indexing_slicing,
    reason = "a benchmark, like a test, stops at its first failure and prints its table"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use attendant_proto::usign::SecretKey;
use attendant_server::channels::model::{
    Build, BuildSource, BuildState, Channel, ChannelKind, ChannelSettings, Device, ImageFile,
    Recipe,
};
use attendant_server::channels::publish::{Changed, PublishOptions, pool_relative, publish};
use sha2::{Digest, Sha256};

/// Devices in a real run.
const DEVICES: usize = 2000;
/// Devices under `cargo test`.
const SMOKE_DEVICES: usize = 20;
/// Runs per measurement (the median is reported).
const RUNS: usize = 5;
const NOW: i64 = 1_796_557_500;
const DAY: Duration = Duration::from_secs(86_400);

fn main() {
    let devices = if std::env::args().any(|arg| arg == "--bench") {
        DEVICES
    } else {
        SMOKE_DEVICES
    };
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("key.sec");
    attendant_server::signing::generate_key_pair(&secret, None).unwrap();
    let key = attendant_server::signing::load_secret_key(&secret).unwrap();
    let pool = dir.path().join("pool-source");
    let mut channel = tree(devices, &pool, &key);

    println!("| publication ({devices} devices) | median | runs |");
    println!("| --- | --- | --- |");
    let mut serial = 0;
    let mut scratch = Vec::new();
    for run in 0..RUNS {
        let out = dir.path().join(format!("scratch-{run}"));
        copy_pool(&pool, &out);
        serial += 1;
        let started = Instant::now();
        let report = publish(
            std::slice::from_ref(&channel),
            &Changed::Unknown,
            &out,
            &key,
            &options(serial),
        )
        .unwrap();
        scratch.push(started.elapsed());
        assert_eq!(report.written.len(), devices);
    }
    row("from scratch", &mut scratch);

    let out = dir.path().join(format!("scratch-{}", RUNS - 1));
    let mut named = Vec::new();
    let mut compared = Vec::new();
    for run in 0..RUNS * 2 {
        let name = format!("x86/64/profile-{run:04}");
        let device = channel.devices.get_mut(&name).unwrap();
        let number = device.builds.last().unwrap().number + 1;
        device.builds.push(build(&name, number, &out, &key));
        let changed = if run % 2 == 0 {
            Changed::Devices(BTreeSet::from([("stable".to_owned(), name)]))
        } else {
            Changed::Unknown
        };
        serial += 1;
        let started = Instant::now();
        let report = publish(
            std::slice::from_ref(&channel),
            &changed,
            &out,
            &key,
            &options(serial),
        )
        .unwrap();
        let elapsed = started.elapsed();
        assert_eq!(report.written.len(), 1);
        if run % 2 == 0 {
            named.push(elapsed);
        } else {
            compared.push(elapsed);
        }
    }
    row("one device, changed device named", &mut named);
    row("one device, every index compared", &mut compared);
}

fn options(serial: u64) -> PublishOptions {
    PublishOptions::new(serial, NOW, 7 * DAY, 2 * DAY)
}

fn row(what: &str, times: &mut [Duration]) {
    times.sort();
    println!(
        "| {what} | {:.1} ms | {} |",
        times[times.len() / 2].as_secs_f64() * 1000.0,
        times.len()
    );
}

fn tree(devices: usize, pool: &Path, key: &SecretKey) -> Channel {
    let devices: BTreeMap<String, Device> = (0..devices)
        .map(|n| {
            let name = format!("x86/64/profile-{n:04}");
            let builds = vec![build(&name, 1, pool, key), build(&name, 2, pool, key)];
            (
                name,
                Device {
                    last_build: 2,
                    builds,
                    ..Device::default()
                },
            )
        })
        .collect();
    Channel {
        name: "stable".to_owned(),
        settings: ChannelSettings {
            kind: ChannelKind::Manual,
            versionbase: 1,
            fullcount: 0,
            rollout: Default::default(),
        },
        hidden: false,
        alias: None,
        redirect: None,
        devices,
    }
}

/// A Ready build with a sysupgrade and a factory image, their files put into `pool`.
fn build(device: &str, number: u64, pool: &Path, key: &SecretKey) -> Build {
    let profile = device.rsplit('/').next().unwrap();
    let images = ["sysupgrade", "factory"]
        .into_iter()
        .map(|image_type| {
            let content = format!("{device} {number} {image_type}");
            let image = ImageFile {
                name: format!("openwrt-24.10.5-x86-64-{profile}-squashfs-{image_type}.bin"),
                image_type: image_type.to_owned(),
                filesystem: "squashfs".to_owned(),
                size: content.len() as u64,
                sha256: hex::encode(Sha256::digest(content.as_bytes())),
            };
            let path = pool.join(pool_relative(&image));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &content).unwrap();
            std::fs::write(
                format!("{}.sig", path.display()),
                key.sign(content.as_bytes()).to_file(),
            )
            .unwrap();
            image
        })
        .collect();
    Build {
        number,
        state: BuildState::Ready,
        source: BuildSource::Imported {
            origin: "bench".to_owned(),
        },
        openwrt_version: "24.10.5".to_owned(),
        version_code: "r28959-29397011cc".to_owned(),
        recipe: Recipe {
            add: vec!["luci".to_owned(), "luci-ssl".to_owned()],
            remove: vec!["ppp".to_owned()],
            ..Recipe::default()
        },
        description: format!("OpenWrt 24.10.5 with LuCI, build {number}"),
        version_detail: vec![
            ("openwrt".to_owned(), "24.10.5".to_owned()),
            ("recipe".to_owned(), "3".to_owned()),
        ],
        minversion: Some(1),
        phased_percentage: if number == 2 { 50 } else { 100 },
        images,
        created_at: 0,
        embeds_stamp: true,
    }
}

/// The pool as publication finds it: already in place.
fn copy_pool(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from.join("pool"))
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success(), "cp -a of the pool failed");
}
