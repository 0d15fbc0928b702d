//! simplestreams benchmark: the products file of 2,000 devices × 10 builds (two images each)
//! generated from channel indexes, and `find-orphans` over a data directory of 100,000 files
//! of which the stream references half.
//!
//! `cargo bench -p attendant-server --bench streams` prints a Markdown table (the median of a few
//! runs) for `docs/benchmarks.md`. Under `cargo test` (no `--bench` argument) it runs small, so
//! CI keeps it working without paying for it.

#![expect(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::indexing_slicing,
    reason = "a benchmark, like a test, stops at its first failure and prints its table"
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use attendant_proto::channel::{
    Freshness, ImageType, IndexDoc, IndexFile, IndexGlobal, IndexImage, VersionDetail,
};
use attendant_server::streams::format::{Products, encode, index_of, rfc2822};
use attendant_server::streams::ops::find_orphans;
use attendant_server::streams::sync::{Naming, products_from_channels};

/// Runs per measurement (the median is reported).
const RUNS: usize = 5;
const NOW: i64 = 1_796_557_500;

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let (devices, versions, files) = if full {
        (2000, 10, 100_000)
    } else {
        (20, 3, 1000)
    };
    let dir = tempfile::tempdir().unwrap();

    println!("| streams | size | median | runs |");
    println!("| --- | --- | --- | --- |");
    let indexes: Vec<IndexDoc> = (0..devices).map(|n| index(n, versions)).collect();
    let naming = Naming {
        vendor: "org.openwrt.attendant".to_owned(),
        stream: "daily".to_owned(),
    };
    let mut bytes = 0;
    let generate = median(|| {
        let products = products_from_channels(&naming, &indexes);
        let encoded = encode(&products);
        let index = encode(&index_of([&products], &rfc2822(NOW)));
        bytes = encoded.len() + index.len();
    });
    row(
        &format!(
            "products: {devices} devices × {versions} versions ({} MB)",
            bytes >> 20
        ),
        generate,
    );

    let data = dir.path().join("data");
    let referenced = write_pool(&data, files);
    let index = dir.path().join("streams/v1/index.json");
    write_stream(dir.path(), &referenced);
    let orphans = dir.path().join("orphans.json");
    let mut found = 0;
    let walk = median(|| {
        let (report, _) = find_orphans(&orphans, &data, std::slice::from_ref(&index), NOW).unwrap();
        found = report.orphans.len();
    });
    assert_eq!(found, files - referenced.len());
    row(
        &format!("find-orphans: {files} files, {found} orphaned"),
        walk,
    );
}

fn row(what: &str, (median, runs): (Duration, usize)) {
    println!("| {what} | | {:.3} s | {runs} |", median.as_secs_f64());
}

fn median(mut run: impl FnMut()) -> (Duration, usize) {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed()
        })
        .collect();
    times.sort();
    (times[RUNS / 2], RUNS)
}

fn index(device: usize, versions: u64) -> IndexDoc {
    let target = ["ath79", "ramips", "mediatek", "x86"][device % 4];
    let profile = format!("vendor_device-{device}");
    IndexDoc {
        global: IndexGlobal {
            freshness: Freshness {
                generated_at: NOW,
                expires: NOW + 86_400,
                serial: 1,
            },
            channel: "stable".to_owned(),
            device: format!("{target}/generic/{profile}"),
        },
        images: (1..=versions)
            .map(|version| IndexImage {
                kind: ImageType::Full,
                version,
                description: String::new(),
                version_detail: VersionDetail::parse(&format!("openwrt=24.10.{version}")).unwrap(),
                minversion: None,
                phased_percentage: None,
                openwrt_version: format!("24.10.{version}"),
                version_code: format!("r{version}-29397011cc"),
                target: format!("{target}/generic"),
                profile: profile.clone(),
                recipe: None,
                files: ["sysupgrade", "factory"]
                    .into_iter()
                    .map(|image_type| {
                        let sha256 =
                            format!("{device:032x}{version:016x}{:016x}", image_type.len());
                        let name =
                            format!("openwrt-24.10.{version}-{profile}-squashfs-{image_type}.bin");
                        IndexFile {
                            order: 0,
                            path: format!("/channels/pool/{}/{sha256}-{name}", &sha256[..2]),
                            signature: String::new(),
                            checksum: sha256,
                            size: 6 << 20,
                            name,
                            image_type: image_type.to_owned(),
                            filesystem: "squashfs".to_owned(),
                        }
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// `files` empty files under `data/<aa>/`; returns the paths of every second one.
fn write_pool(data: &Path, files: usize) -> Vec<String> {
    let mut referenced = Vec::new();
    for n in 0..files {
        let relative = format!("{:02x}/{n:08}.bin", n % 256);
        let path = data.join(&relative);
        if n < 256 {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        }
        std::fs::write(&path, b"").unwrap();
        if n % 2 == 0 {
            referenced.push(relative);
        }
    }
    referenced
}

/// A stream at `root` whose items name `referenced` under `data/`.
fn write_stream(root: &Path, referenced: &[String]) {
    let mut text = String::from(
        r#"{"content_id":"org.openwrt.attendant:daily","format":"products:1.0","products":{"p":{"versions":{"00000001":{"items":{"#,
    );
    for (n, path) in referenced.iter().enumerate() {
        if n > 0 {
            text.push(',');
        }
        text.push_str(&format!(r#""i{n}":{{"path":"data/{path}","size":0}}"#));
    }
    text.push_str("}}}}}}");
    let products: Products = serde_json::from_str(&text).unwrap();
    let v1: PathBuf = root.join("streams/v1");
    std::fs::create_dir_all(&v1).unwrap();
    std::fs::write(
        v1.join("org.openwrt.attendant:daily.json"),
        encode(&products),
    )
    .unwrap();
    std::fs::write(
        v1.join("index.json"),
        encode(&index_of([&products], &rfc2822(NOW))),
    )
    .unwrap();
}
