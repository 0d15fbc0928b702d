//! Extra repositories in build requests, as ASU takes them: admitted by the allow-list, written
//! into the ImageBuilder (`repositories.conf` and `keys/`), downloaded and verified by it, and
//! gone again for the next build. The feed is the fixture mirror's community feed over HTTP,
//! with a package no release feed has.

use std::path::Path;

use attendant_e2e::mirror::{COMMUNITY_PACKAGE, COMMUNITY_VERSION, MirrorInfo};
use attendant_e2e::mirror_server::MirrorServer;
use serde_json::{Value, json};

use crate::fixture::free_port;
use crate::support::Server;

/// The base64 line of a usign public key file: what `repository_keys` carry.
fn key_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_owned()
}

fn request(packages: &[&str], repositories: Value, keys: &[String], mode: Option<&str>) -> Value {
    let mut body = json!({
        "version": "24.10.5", "target": "x86/64", "profile": "generic",
        "packages": packages, "repositories": repositories, "repository_keys": keys,
    });
    if let Some(mode) = mode {
        body["repositories_mode"] = json!(mode);
    }
    body
}

/// The key files in every unpacked ImageBuilder of the server.
fn imagebuilder_keys(server: &Server) -> Vec<String> {
    let entries = server.config.imagebuilder_path().join("entries");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(entries).unwrap() {
        let keys = entry.unwrap().path().join("imagebuilder/keys");
        for key in std::fs::read_dir(keys).unwrap() {
            names.push(key.unwrap().file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    names
}

/// The `detail` of a build that needed the package of the feed at `url`, which was unusable.
fn unusable(url: &str) -> String {
    format!(
        "Error: Impossible package selection: missing ({COMMUNITY_PACKAGE}); the package list of \
         repository `community` ({url}) could not be downloaded or did not verify"
    )
}

/// The repositories file of the server's one unpacked ImageBuilder, and the pristine copy.
fn imagebuilder_repositories(server: &Server) -> (String, String) {
    let entries = server.config.imagebuilder_path().join("entries");
    let entry = std::fs::read_dir(entries).unwrap().next().unwrap().unwrap();
    let tree = entry.path().join("imagebuilder");
    (
        std::fs::read_to_string(tree.join("repositories.conf")).unwrap(),
        std::fs::read_to_string(tree.join(".attendant-repositories/repositories.conf")).unwrap(),
    )
}

#[tokio::test]
async fn an_allowed_extra_repository_builds_and_leaves_the_imagebuilder_as_it_was() {
    let mirror = crate::fixture::mirror();
    let feeds = MirrorServer::start(&mirror.root).unwrap();
    let feed = format!(
        "{}/{}",
        feeds.url(),
        MirrorInfo::community_feed("24.10.5", "x86_64")
    );
    let dead = format!("http://127.0.0.1:{}/feeds", free_port());
    let allowed = vec![format!("{}/feeds/community", feeds.url()), dead.clone()];
    let server = Server::start(move |config| config.repository_allow_list = allowed).await;
    let key = key_line(&mirror.community_public_key);
    let community = json!({"community": feed});

    // Outside the allow-list: ASU's 400, nothing queued.
    let outside = format!("{}/releases/24.10.5/packages/x86_64/base", feeds.url());
    let (status, _, answer) = server
        .post(&request(&[], json!({"base": outside}), &[], None))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["detail"],
        format!("Repository not allowed: {outside}")
    );

    // Appended to the release's feeds, with the feed's key: the package only it has is built.
    let (status, built) = server
        .build(&request(
            &[COMMUNITY_PACKAGE],
            community.clone(),
            std::slice::from_ref(&key),
            Some("append"),
        ))
        .await;
    assert_eq!(status, 200, "{built}");
    assert_eq!(built["manifest"][COMMUNITY_PACKAGE], COMMUNITY_VERSION);
    assert!(built["manifest"]["base-files"].is_string(), "{built}");
    assert_eq!(built["request"]["repositories"], community);

    // `replace` (ASU's default) drops the release's feeds: the default packages are gone.
    let (status, replaced) = server
        .build(&request(
            &[COMMUNITY_PACKAGE],
            community.clone(),
            std::slice::from_ref(&key),
            None,
        ))
        .await;
    assert_eq!(status, 500, "{replaced}");
    let detail = replaced["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("Error: Impossible package selection: missing (")
            && detail.contains("base-files"),
        "{detail}"
    );

    // Without repositories the package is unknown to the server's own index check.
    let (status, _, unknown) = server
        .post(&request(&[COMMUNITY_PACKAGE], json!({}), &[], None))
        .await;
    assert_eq!(status, 422, "{unknown}");
    // The next build without repositories sees neither the feed nor its key.
    let (status, plain) = server.build(&request(&[], json!({}), &[], None)).await;
    assert_eq!(status, 200, "{plain}");
    assert!(plain["manifest"][COMMUNITY_PACKAGE].is_null(), "{plain}");
    assert!(!plain.to_string().contains(&feed), "{plain}");
    assert_eq!(imagebuilder_keys(&server), [".keep"]);
    let (conf, pristine) = imagebuilder_repositories(&server);
    assert_eq!(conf, pristine);
    assert!(
        conf.contains("src/gz openwrt_core ") && !conf.contains("community"),
        "{conf}"
    );

    // A key that did not sign the feed: opkg drops its list, and the failure names it.
    let wrong_key = key_line(&mirror.public_key);
    let (status, unsigned) = server
        .build(&request(
            &[COMMUNITY_PACKAGE],
            community.clone(),
            &[wrong_key],
            Some("append"),
        ))
        .await;
    assert_eq!(status, 500, "{unsigned}");
    assert_eq!(unsigned["detail"], unusable(&feed));

    // Allowed but unreachable: the request's fault, as in ASU, so the failure is cached.
    let unreachable = format!("{dead}/community/24.10.5/x86_64");
    let body = request(
        &[COMMUNITY_PACKAGE],
        json!({"community": unreachable}),
        std::slice::from_ref(&key),
        Some("append"),
    );
    let (status, failed) = server.build(&body).await;
    assert_eq!(status, 500, "{failed}");
    assert_eq!(failed["detail"], unusable(&unreachable));
    let (again, _, cached) = server.post(&body).await;
    assert_eq!(again, 500, "answered from the cache: {cached}");
    assert_eq!(cached["detail"], failed["detail"]);
}
