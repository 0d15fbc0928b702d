//! The ImageBuilder cache against a real mirror layout: served over HTTP on loopback and read from
//! a directory, with archives built here (tar + zstd/xz) and `sha256sums` signed with usign.

use std::{
    collections::HashMap,
    error::Error,
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
};

use attendant_proto::usign::{Fingerprint, Keyring, SecretKey};
use attendant_server::imagebuilder::{CacheConfig, IbError, IbSpec, ImagebuilderCache, Upstream};
use axum::{
    extract::State,
    http::{StatusCode, Uri},
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

/// Helpers return errors; the tests unwrap them.
type Fallible<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// A test signing key; `seed_byte` makes different keys.
fn key(seed_byte: u8) -> Fallible<SecretKey> {
    Ok(SecretKey::generate(
        [seed_byte; 32],
        Fingerprint([seed_byte, 1, 2, 3, 4, 5, 6, 7]),
        [0; 16],
        None,
    )?)
}

fn keyring(key: &SecretKey) -> Keyring {
    let mut keyring = Keyring::new();
    keyring.add(key.public_key());
    keyring
}

/// One entry of a test archive; names are written raw so unsafe ones survive.
enum Item {
    File(String, Vec<u8>),
    Symlink(String, String),
}

fn file(path: impl Into<String>, data: impl Into<Vec<u8>>) -> Item {
    Item::File(path.into(), data.into())
}

fn symlink(path: impl Into<String>, target: impl Into<String>) -> Item {
    Item::Symlink(path.into(), target.into())
}

/// Copy `value` into a fixed-size header field.
fn set_field(field: &mut [u8], value: &str) -> Fallible<()> {
    field
        .get_mut(..value.len())
        .ok_or("name too long for a plain tar header")?
        .copy_from_slice(value.as_bytes());
    Ok(())
}

fn tar(items: &[Item]) -> Fallible<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for item in items {
        let mut header = tar::Header::new_gnu();
        let (path, data): (&str, &[u8]) = match item {
            Item::File(path, data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                (path, data)
            }
            Item::Symlink(path, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                set_field(&mut header.as_old_mut().linkname, target)?;
                (path, b"")
            }
        };
        set_field(&mut header.as_old_mut().name, path)?;
        header.set_size(u64::try_from(data.len())?);
        header.set_cksum();
        builder.append(&header, data)?;
    }
    Ok(builder.into_inner()?)
}

fn compress(archive_name: &str, tar: &[u8]) -> Fallible<Vec<u8>> {
    if archive_name.ends_with(".zst") {
        Ok(zstd::encode_all(tar, 3)?)
    } else {
        let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 1);
        encoder.write_all(tar)?;
        Ok(encoder.finish()?)
    }
}

/// A plausible ImageBuilder tree under `top`: a Makefile naming `marker`, `payload` bytes of
/// data, and a relative symlink.
fn imagebuilder(top: &str, marker: &str, payload: usize) -> Fallible<Vec<u8>> {
    tar(&[
        file(format!("{top}/Makefile"), format!("# {marker}\n")),
        file(format!("{top}/target/data.bin"), vec![7; payload]),
        symlink(format!("{top}/scripts/link"), "../Makefile"),
    ])
}

/// The mirror directory for one version/target, as `downloads.openwrt.org` lays it out.
struct Release {
    spec: IbSpec,
    dir: PathBuf,
    archive_name: String,
}

impl Release {
    /// `target` is `<target>/<subtarget>`; `ext` is `zst` or `xz`.
    fn new(
        mirror: &Path,
        version: &str,
        version_path: &str,
        target: &str,
        ext: &str,
    ) -> Fallible<Self> {
        let (target, subtarget) = target.split_once('/').ok_or("target without `/`")?;
        let dir = mirror.join(format!("{version_path}/targets/{target}/{subtarget}"));
        std::fs::create_dir_all(&dir)?;
        let stem = if version == "SNAPSHOT" {
            format!("openwrt-imagebuilder-{target}-{subtarget}")
        } else {
            format!("openwrt-imagebuilder-{version}-{target}-{subtarget}")
        };
        Ok(Self {
            spec: IbSpec::new(version, version_path, target, subtarget),
            dir,
            archive_name: format!("{stem}.Linux-x86_64.tar.{ext}"),
        })
    }

    /// The archive's top-level directory.
    fn top(&self) -> String {
        self.archive_name
            .trim_end_matches(".tar.zst")
            .trim_end_matches(".tar.xz")
            .to_owned()
    }

    /// Publish an archive made of `tar` bytes, list it in `sha256sums` and sign that with `key`;
    /// returns the archive's SHA-256.
    fn publish_tar(&self, tar: &[u8], key: &SecretKey) -> Fallible<String> {
        let archive = compress(&self.archive_name, tar)?;
        let sha256 = hex::encode(Sha256::digest(&archive));
        std::fs::write(self.dir.join(&self.archive_name), &archive)?;
        let sums = format!(
            "{} *openwrt-x86-64-generic-ext4-combined.img.gz\n{sha256} *{}\n",
            "0".repeat(64),
            self.archive_name
        );
        self.publish_sums(sums.as_bytes(), key)?;
        Ok(sha256)
    }

    /// Publish a plausible ImageBuilder; see [`imagebuilder`].
    fn publish(&self, marker: &str, payload: usize, key: &SecretKey) -> Fallible<String> {
        self.publish_tar(&imagebuilder(&self.top(), marker, payload)?, key)
    }

    fn publish_sums(&self, sums: &[u8], key: &SecretKey) -> Fallible<()> {
        std::fs::write(self.dir.join("sha256sums"), sums)?;
        std::fs::write(self.dir.join("sha256sums.sig"), key.sign(sums).to_file())?;
        Ok(())
    }
}

/// A loopback HTTP server over a mirror directory that counts requests per file name and can
/// answer 503 a number of times first.
struct MirrorServer {
    url: String,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    dir: PathBuf,
    requests: Mutex<HashMap<String, usize>>,
    failures: Mutex<HashMap<String, usize>>,
}

impl MirrorServer {
    async fn start(dir: &Path) -> Fallible<Self> {
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            ..Shared::default()
        });
        let app = axum::Router::new()
            .fallback(serve_file)
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        // Serves until the test's runtime shuts down.
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { url, shared })
    }

    fn upstream(&self) -> Fallible<Upstream> {
        Ok(self.url.parse()?)
    }

    fn requests(&self, file: &str) -> usize {
        let requests = self
            .shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        requests.get(file).copied().unwrap_or(0)
    }

    /// Answer the next `times` requests for `file` with 503.
    fn fail(&self, file: &str, times: usize) {
        self.shared
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(file.to_owned(), times);
    }
}

async fn serve_file(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/').to_owned();
    let file = path.rsplit('/').next().unwrap_or_default().to_owned();
    {
        let mut requests = shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *requests.entry(file.clone()).or_default() += 1;
        let mut failures = shared
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(left) = failures.get_mut(&file).filter(|left| **left > 0) {
            *left -= 1;
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    match tokio::fs::read(shared.dir.join(&path)).await {
        Ok(bytes) => bytes.into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

fn cache(root: &Path, upstream: Upstream, key: &SecretKey) -> ImagebuilderCache {
    ImagebuilderCache::new(CacheConfig::new(
        root.to_owned(),
        upstream,
        keyring(key),
        reqwest::Client::new(),
    ))
}

/// Names in `dir` (empty when it does not exist).
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn assert_nothing_cached(root: &Path) {
    assert_eq!(listing(&root.join("entries")), Vec::<String>::new());
    assert_eq!(listing(&root.join("tmp")), Vec::<String>::new());
}

#[tokio::test]
async fn release_is_downloaded_once_then_reused_without_requests() {
    let temp = tempfile::tempdir().unwrap();
    let key = key(1).unwrap();
    let release = Release::new(
        &temp.path().join("mirror"),
        "24.10.0",
        "releases/24.10.0",
        "x86/64",
        "xz",
    )
    .unwrap();
    let sha256 = release.publish("release", 100, &key).unwrap();
    let server = MirrorServer::start(&temp.path().join("mirror"))
        .await
        .unwrap();
    let root = temp.path().join("cache");

    let cache = cache(&root, server.upstream().unwrap(), &key);
    let lease = cache.acquire(&release.spec).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(lease.dir.join("Makefile")).unwrap(),
        "# release\n"
    );
    assert_eq!(
        std::fs::read_to_string(lease.dir.join("scripts/link")).unwrap(),
        "# release\n"
    );
    assert_eq!(lease.archive_sha256, sha256);
    assert_eq!(
        lease.archive_name,
        "openwrt-imagebuilder-24.10.0-x86-64.Linux-x86_64.tar.xz"
    );
    assert_eq!(server.requests("sha256sums"), 1);
    assert_eq!(server.requests("sha256sums.sig"), 1);
    assert_eq!(server.requests(&release.archive_name), 1);
    let first_dir = lease.dir.clone();
    drop(lease);

    let again = cache.acquire(&release.spec).await.unwrap();
    assert_eq!(again.dir, first_dir);
    assert_eq!(
        server.requests("sha256sums"),
        1,
        "a cached release needs no request"
    );
    assert_eq!(server.requests(&release.archive_name), 1);
    drop(again);

    // A restarted server finds the entry on disk.
    let restarted = self::cache(&root, server.upstream().unwrap(), &key);
    let lease = restarted.acquire(&release.spec).await.unwrap();
    assert_eq!(lease.dir, first_dir);
    assert_eq!(server.requests("sha256sums"), 1);
    assert_eq!(listing(&root.join("tmp")), Vec::<String>::new());
}

#[tokio::test]
async fn snapshot_is_rechecked_and_refreshed_when_it_moves() {
    let temp = tempfile::tempdir().unwrap();
    let key = key(1).unwrap();
    let mirror = temp.path().join("mirror");
    let snapshot = Release::new(&mirror, "SNAPSHOT", "snapshots", "ath79/generic", "zst").unwrap();
    let first_sha = snapshot.publish("r1000", 10, &key).unwrap();
    let server = MirrorServer::start(&mirror).await.unwrap();
    let cache = cache(&temp.path().join("cache"), server.upstream().unwrap(), &key);

    let first = cache.acquire(&snapshot.spec).await.unwrap();
    assert_eq!(
        first.archive_name,
        "openwrt-imagebuilder-ath79-generic.Linux-x86_64.tar.zst"
    );
    let same = cache.acquire(&snapshot.spec).await.unwrap();
    assert_eq!(same.dir, first.dir);
    assert_eq!(
        server.requests("sha256sums"),
        2,
        "snapshots re-check sha256sums"
    );
    assert_eq!(server.requests(&snapshot.archive_name), 1);

    let second_sha = snapshot.publish("r1001", 10, &key).unwrap();
    assert_ne!(first_sha, second_sha);
    let moved = cache.acquire(&snapshot.spec).await.unwrap();
    assert_eq!(moved.archive_sha256, second_sha);
    assert_ne!(moved.dir, first.dir);
    assert_eq!(
        std::fs::read_to_string(moved.dir.join("Makefile")).unwrap(),
        "# r1001\n"
    );
    assert_eq!(
        std::fs::read_to_string(first.dir.join("Makefile")).unwrap(),
        "# r1000\n"
    );
    assert_eq!(server.requests(&snapshot.archive_name), 2);
}

#[tokio::test]
async fn directory_upstream_from_file_url() {
    let temp = tempfile::tempdir().unwrap();
    let key = key(1).unwrap();
    let mirror = temp.path().join("mirror");
    let release = Release::new(&mirror, "25.12.0", "releases/25.12.0", "x86/64", "zst").unwrap();
    release.publish("dir", 10, &key).unwrap();
    let upstream: Upstream = format!("file://{}", mirror.display()).parse().unwrap();
    assert_eq!(upstream, Upstream::Directory(mirror.clone()));
    let lease = cache(&temp.path().join("cache"), upstream, &key)
        .acquire(&release.spec)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(lease.dir.join("Makefile")).unwrap(),
        "# dir\n"
    );
}

#[tokio::test]
async fn tampered_archive_is_refused_and_nothing_is_cached() {
    let temp = tempfile::tempdir().unwrap();
    let key = key(1).unwrap();
    let mirror = temp.path().join("mirror");
    let release = Release::new(&mirror, "24.10.0", "releases/24.10.0", "x86/64", "xz").unwrap();
    let expected = release.publish("good", 10, &key).unwrap();
    let archive_path = release.dir.join(&release.archive_name);
    let tampered = compress(
        &release.archive_name,
        &imagebuilder(&release.top(), "evil", 10).unwrap(),
    )
    .unwrap();
    std::fs::write(&archive_path, &tampered).unwrap();
    let actual = hex::encode(Sha256::digest(&tampered));
    let server = MirrorServer::start(&mirror).await.unwrap();
    let root = temp.path().join("cache");

    let error = cache(&root, server.upstream().unwrap(), &key)
        .acquire(&release.spec)
        .await
        .unwrap_err();
    assert!(!error.is_retryable());
    assert_eq!(
        error.to_string(),
        format!(
            "`openwrt-imagebuilder-24.10.0-x86-64.Linux-x86_64.tar.xz` has SHA-256 `{actual}` but \
             the signed `sha256sums` lists `{expected}`; the download was corrupted or tampered \
             with and was deleted"
        )
    );
    assert_nothing_cached(&root);
}

#[tokio::test]
async fn tampered_sha256sums_fails_the_signature_check() {
    let temp = tempfile::tempdir().unwrap();
    let key = key(1).unwrap();
    let mirror = temp.path().join("mirror");
    let release = Release::new(&mirror, "24.10.0", "releases/24.10.0", "x86/64", "xz").unwrap();
    release.publish("good", 10, &key).unwrap();
    let sums_path = release.dir.join("sha256sums");
    let sums = std::fs::read_to_string(&sums_path).unwrap();
    std::fs::write(&sums_path, sums.replacen('0', "1", 1)).unwrap();
    let root = temp.path().join("cache");

    let error = cache(&root, Upstream::Directory(mirror.clone()), &key)
        .acquire(&release.spec)
        .await
        .unwrap_err();
    assert!(
        matches!(error, IbError::SignatureInvalid { .. }),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert_eq!(
        error.to_string(),
        format!(
            "signature `{}` does not verify: signature by key `0101020304050607` does not match \
             the message: the message or the signature was altered",
            release.dir.join("sha256sums.sig").display()
        )
    );
    assert_nothing_cached(&root);
}

#[tokio::test]
async fn unknown_key_and_missing_signature_are_refused() {
    let temp = tempfile::tempdir().unwrap();
    let mirror = temp.path().join("mirror");
    let release = Release::new(&mirror, "24.10.0", "releases/24.10.0", "x86/64", "xz").unwrap();
    release.publish("good", 10, &key(2).unwrap()).unwrap();
    let root = temp.path().join("cache");
    let cache = cache(&root, Upstream::Directory(mirror.clone()), &key(1).unwrap());
    let sig_path = release.dir.join("sha256sums.sig");

    let error = cache.acquire(&release.spec).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "`{}` was signed by key `0201020304050607`, which is not a trusted key",
            sig_path.display()
        )
    );
    assert_eq!(
        error.hint().as_deref(),
        Some(
            "add the upstream's public key (file name `0201020304050607`) to the server's \
             trusted keys"
        )
    );

    std::fs::remove_file(&sig_path).unwrap();
    let error = cache.acquire(&release.spec).await.unwrap_err();
    assert!(matches!(error, IbError::Unsigned { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "`{}` is missing: the upstream's `sha256sums` is unsigned and cannot be trusted",
            sig_path.display()
        )
    );
    assert_nothing_cached(&root);
}

#[tokio::test]
async fn unsafe_archives_are_refused_naming_the_entry() {
    let temp = tempfile::tempdir().unwrap();
    let key = key(1).unwrap();
    let mirror = temp.path().join("mirror");
    let release = Release::new(&mirror, "24.10.0", "releases/24.10.0", "x86/64", "zst").unwrap();
    let top = release.top();
    let root = temp.path().join("cache");
    let cache = cache(&root, Upstream::Directory(mirror.clone()), &key);
    let makefile = format!("{top}/Makefile");
    let escape = format!("{top}/../x");
    let etc = format!("{top}/etc");
    let cases: [(Vec<Item>, &str, &str); 3] = [
        (
            vec![file(makefile.as_str(), "x"), file(escape.as_str(), "x")],
            escape.as_str(),
            "path contains a `..` component",
        ),
        (vec![file("/abs", "x")], "/abs", "absolute path"),
        (
            vec![file(makefile.as_str(), "x"), symlink(etc.as_str(), "/etc")],
            etc.as_str(),
            "symlink target `/etc` is absolute",
        ),
    ];
    for (items, bad_entry, bad_reason) in cases {
        release.publish_tar(&tar(&items).unwrap(), &key).unwrap();
        let error = cache.acquire(&release.spec).await.unwrap_err();
        let IbError::UnsafeArchive {
            archive,
            entry,
            reason,
        } = &error
        else {
            panic!("expected UnsafeArchive, got {error:?}");
        };
        assert_eq!(archive, &release.archive_name);
        assert_eq!(entry, bad_entry);
        assert_eq!(reason, bad_reason);
        assert_eq!(
            error.to_string(),
            format!(
                "refusing ImageBuilder archive `{}`: entry `{bad_entry}`: {bad_reason}",
                release.archive_name
            )
        );
        assert!(!error.is_retryable());
        assert_nothing_cached(&root);
    }
    assert!(!temp.path().join("x").exists());
}

#[tokio::test]
async fn missing_imagebuilder_is_not_found_with_asu_text() {
    let temp = tempfile::tempdir().unwrap();
    let key = key(1).unwrap();
    let mirror = temp.path().join("mirror");
    let release = Release::new(&mirror, "24.10.0", "releases/24.10.0", "x86/64", "xz").unwrap();
    // Listed files, but no ImageBuilder (the buildbots have not finished this target yet).
    release
        .publish_sums(
            format!("{} *openwrt-x.img\n", "a".repeat(64)).as_bytes(),
            &key,
        )
        .unwrap();
    let server = MirrorServer::start(&mirror).await.unwrap();
    let cache = cache(&temp.path().join("cache"), server.upstream().unwrap(), &key);

    let error = cache.acquire(&release.spec).await.unwrap_err();
    assert!(!error.is_retryable());
    assert_eq!(
        error.to_string(),
        "Image not found: openwrt-imagebuilder-24.10.0-x86-64.Linux-x86_64.tar.{zst,xz}. If this \
         version was just released, please try again in a few hours as it may take some time to \
         become fully available."
    );

    // No target directory at all.
    let other = IbSpec::new("24.10.0", "releases/24.10.0", "ramips", "mt7621");
    let error = cache.acquire(&other).await.unwrap_err();
    assert!(matches!(&error, IbError::NotFound { image, .. }
        if image == "openwrt-imagebuilder-24.10.0-ramips-mt7621.Linux-x86_64.tar.{zst,xz}"));
}

#[tokio::test]
async fn server_errors_are_retried() {
    let temp = tempfile::tempdir().unwrap();
    let key = key(1).unwrap();
    let mirror = temp.path().join("mirror");
    let release = Release::new(&mirror, "24.10.0", "releases/24.10.0", "x86/64", "xz").unwrap();
    release.publish("retry", 10, &key).unwrap();
    let server = MirrorServer::start(&mirror).await.unwrap();
    server.fail("sha256sums", 1);
    server.fail(&release.archive_name, 2);

    let lease = cache(&temp.path().join("cache"), server.upstream().unwrap(), &key)
        .acquire(&release.spec)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(lease.dir.join("Makefile")).unwrap(),
        "# retry\n"
    );
    assert_eq!(server.requests("sha256sums"), 2);
    assert_eq!(server.requests(&release.archive_name), 3);

    // More failures than attempts: the last answer is returned, and it is retryable.
    let root = temp.path().join("cache2");
    server.fail("sha256sums", 10);
    let error = cache(&root, server.upstream().unwrap(), &key)
        .acquire(&release.spec)
        .await
        .unwrap_err();
    assert!(
        matches!(error, IbError::Http { status: 503, .. }),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert_eq!(
        error.to_string(),
        format!(
            "upstream answered HTTP 503 for `{}/releases/24.10.0/targets/x86/64/sha256sums`",
            server.url
        )
    );
}

#[tokio::test]
async fn unreachable_upstream_is_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().join("cache");
    let error = cache(&root, url.parse().unwrap(), &key(1).unwrap())
        .acquire(&IbSpec::new("24.10.0", "releases/24.10.0", "x86", "64"))
        .await
        .unwrap_err();
    assert!(matches!(error, IbError::Network { .. }), "{error:?}");
    assert!(error.is_retryable());
    assert!(
        error.to_string().starts_with(&format!(
            "could not fetch `{url}/releases/24.10.0/targets/x86/64/sha256sums`: "
        )),
        "{error}"
    );
    assert_nothing_cached(&root);
}

#[tokio::test]
async fn oversized_download_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let key = key(1).unwrap();
    let mirror = temp.path().join("mirror");
    let release = Release::new(&mirror, "24.10.0", "releases/24.10.0", "x86/64", "xz").unwrap();
    release.publish("big", 100_000, &key).unwrap();
    let server = MirrorServer::start(&mirror).await.unwrap();
    let root = temp.path().join("cache");
    let mut config = CacheConfig::new(
        root.clone(),
        server.upstream().unwrap(),
        keyring(&key),
        reqwest::Client::new(),
    );
    config.download_limit_bytes = 100;
    let error = ImagebuilderCache::new(config)
        .acquire(&release.spec)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "download of `{}/releases/24.10.0/targets/x86/64/{}` is larger than the limit of 100 \
             bytes",
            server.url, release.archive_name
        )
    );
    assert_nothing_cached(&root);
}

#[tokio::test]
async fn eviction_removes_least_recently_used_unleased_entries() {
    let temp = tempfile::tempdir().unwrap();
    let key = key(1).unwrap();
    let mirror = temp.path().join("mirror");
    let releases: Vec<Release> = ["x86/64", "ath79/generic", "ramips/mt7621", "mvebu/cortexa9"]
        .iter()
        .map(|target| Release::new(&mirror, "24.10.0", "releases/24.10.0", target, "zst").unwrap())
        .collect();
    for release in &releases {
        release.publish("sized", 1000, &key).unwrap();
    }
    let root = temp.path().join("cache");
    let mut config = CacheConfig::new(
        root.clone(),
        Upstream::Directory(mirror.clone()),
        keyring(&key),
        reqwest::Client::new(),
    );
    // Room for two entries of ~1 KB, not three.
    config.disk_budget_bytes = 2500;
    let cache = ImagebuilderCache::new(config);

    let oldest_but_leased = cache.acquire(&releases[0].spec).await.unwrap();
    let unleased = cache.acquire(&releases[1].spec).await.unwrap();
    let unleased_dir = unleased.dir.clone();
    drop(unleased);
    let newest = cache.acquire(&releases[2].spec).await.unwrap();

    assert!(
        oldest_but_leased.dir.join("Makefile").exists(),
        "a leased entry is never evicted"
    );
    assert!(
        !unleased_dir.exists(),
        "the least recently used unleased entry is evicted"
    );
    assert!(newest.dir.join("Makefile").exists());
    assert!(cache.cached_bytes() <= 2500);

    // Once released, the oldest entry is the next to go.
    let oldest_dir = oldest_but_leased.dir.clone();
    drop(oldest_but_leased);
    let fourth = cache.acquire(&releases[3].spec).await.unwrap();
    assert!(!oldest_dir.exists());
    assert!(newest.dir.exists());
    assert!(fourth.dir.exists());
    assert_eq!(listing(&root.join("entries")).len(), 2);
}

#[tokio::test]
async fn concurrent_acquires_share_one_download() {
    let temp = tempfile::tempdir().unwrap();
    let key = key(1).unwrap();
    let mirror = temp.path().join("mirror");
    let release = Release::new(&mirror, "SNAPSHOT", "snapshots", "x86/64", "zst").unwrap();
    release.publish("shared", 200_000, &key).unwrap();
    let server = MirrorServer::start(&mirror).await.unwrap();
    let cache = cache(&temp.path().join("cache"), server.upstream().unwrap(), &key);

    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let cache = cache.clone();
            let spec = release.spec.clone();
            tokio::spawn(async move { cache.acquire(&spec).await })
        })
        .collect();
    let mut dirs = Vec::new();
    for task in tasks {
        dirs.push(task.await.unwrap().unwrap().dir.clone());
    }
    dirs.dedup();
    assert_eq!(dirs.len(), 1);
    assert_eq!(server.requests(&release.archive_name), 1);
}
