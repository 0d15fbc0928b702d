use std::collections::BTreeMap;
use std::path::Path;

use super::*;

const SHA: &str = "ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12";
const DEVICE: &str = "ath79/generic/tplink_archer-c7-v5";

fn freshness() -> Freshness {
    Freshness {
        generated_at: 1_796_557_500,
        expires: 1_796_557_500 + 7 * 86_400,
        serial: 12,
    }
}

pub(super) fn sample_channels() -> ChannelsDoc {
    let device = |channel: &str, redirect: Option<&str>| DeviceEntry {
        index: format!("/channels/{channel}/{DEVICE}/index.json"),
        redirect: redirect.map(str::to_owned),
    };
    let mut channels = BTreeMap::new();
    channels.insert(
        "stable".to_owned(),
        ChannelEntry {
            devices: BTreeMap::from([(DEVICE.to_owned(), device("stable", None))]),
            ..ChannelEntry::default()
        },
    );
    channels.insert(
        "old".to_owned(),
        ChannelEntry {
            devices: BTreeMap::from([(DEVICE.to_owned(), device("stable", None))]),
            hidden: true,
            redirect: Some("stable".to_owned()),
            ..ChannelEntry::default()
        },
    );
    channels.insert(
        "daily".to_owned(),
        ChannelEntry {
            devices: BTreeMap::from([(DEVICE.to_owned(), device("daily", None))]),
            alias: Some("stable".to_owned()),
            ..ChannelEntry::default()
        },
    );
    channels.insert(
        "lab/canary".to_owned(),
        ChannelEntry {
            devices: BTreeMap::from([(DEVICE.to_owned(), device("stable", Some("stable")))]),
            ..ChannelEntry::default()
        },
    );
    ChannelsDoc {
        global: freshness(),
        channels,
    }
}

fn image(version: u64) -> IndexImage {
    let name = format!(
        "openwrt-24.10.5-ath79-generic-tplink_archer-c7-v5-squashfs-sysupgrade-{version}.bin"
    );
    IndexImage {
        kind: ImageType::Full,
        version,
        description: format!("build {version}"),
        version_detail: VersionDetail::parse(&format!("openwrt=24.10.5,recipe=3,build={version}"))
            .unwrap(),
        minversion: None,
        phased_percentage: None,
        openwrt_version: "24.10.5".to_owned(),
        version_code: "r28959-29397011cc".to_owned(),
        target: "ath79/generic".to_owned(),
        profile: "tplink_archer-c7-v5".to_owned(),
        recipe: None,
        files: vec![IndexFile {
            order: 0,
            path: format!("/channels/pool/ab/{SHA}-{name}"),
            signature: format!("/channels/pool/ab/{SHA}-{name}.sig"),
            checksum: SHA.to_owned(),
            size: 6_291_456,
            name,
            image_type: "sysupgrade".to_owned(),
            filesystem: "squashfs".to_owned(),
        }],
    }
}

/// The sample recipe's uci-defaults script.
const DEFAULTS: &str = "uci set system.@system[0].hostname='lab'\nuci commit system\n";

pub(super) fn sample_index() -> IndexDoc {
    let mut latest = image(7);
    latest.minversion = Some(5);
    latest.phased_percentage = Some(25);
    latest.recipe = Some(IndexRecipe {
        add: vec!["luci".to_owned()],
        remove: vec!["ppp".to_owned()],
        defaults_sha256: Some(defaults_digest(DEFAULTS)),
        defaults: Some(DEFAULTS.to_owned()),
        rootfs_size_mb: Some(256),
    });
    IndexDoc {
        global: IndexGlobal {
            freshness: freshness(),
            channel: "stable".to_owned(),
            device: DEVICE.to_owned(),
        },
        images: vec![image(5), image(6), latest],
    }
}

fn sample_stamp() -> ChannelStamp {
    ChannelStamp {
        channel: "daily".to_owned(),
        channel_target: Some("stable".to_owned()),
        device: DEVICE.to_owned(),
        build: 7,
        version_detail: VersionDetail::parse("openwrt=24.10.5,recipe=3").unwrap(),
        server: "https://upgrade.example.org".to_owned(),
    }
}

/// `testdata/channel/` (also the fuzz seeds) holds exactly what the samples encode to;
/// `ATTENDANT_WRITE_FIXTURES=1` rewrites the files after a deliberate format change.
#[test]
fn fixtures_match_their_recipe() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/channel");
    for (name, bytes) in [
        ("channels.json", encode_channels(&sample_channels())),
        ("index.json", encode_index(&sample_index())),
        ("channel.json", encode_stamp(&sample_stamp())),
    ] {
        let path = dir.join(name);
        if std::env::var_os("ATTENDANT_WRITE_FIXTURES").is_some() {
            std::fs::write(&path, &bytes).unwrap();
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{name} differs from its recipe"
        );
    }
}

#[test]
fn documents_round_trip_byte_for_byte() {
    let channels = encode_channels(&sample_channels());
    assert_eq!(parse_channels(&channels).unwrap(), sample_channels());
    assert_eq!(
        encode_channels(&parse_channels(&channels).unwrap()),
        channels
    );
    let index = encode_index(&sample_index());
    assert_eq!(parse_index(&index).unwrap(), sample_index());
    let stamp = encode_stamp(&sample_stamp());
    assert_eq!(parse_stamp(&stamp).unwrap(), sample_stamp());
    assert!(channels.ends_with(b"}\n") && index.ends_with(b"}\n") && stamp.ends_with(b"}\n"));
}

#[test]
fn writes_the_documented_shape() {
    let text = String::from_utf8(encode_index(&sample_index())).unwrap();
    assert!(
        text.starts_with(
            "{\"global\":{\"generated_at\":\"Sun Dec 06 11:45:00 UTC 2026\",\"expires\":\"Sun \
             Dec 13 11:45:00 UTC 2026\",\"serial\":12,\"channel\":\"stable\",\"device\":\
             \"ath79/generic/tplink_archer-c7-v5\"},\"images\":[{\"type\":\"full\",\"version\":5,"
        ),
        "{text}"
    );
    assert!(
        text.contains("\"minversion\":5,\"phased-percentage\":25,"),
        "{text}"
    );
    assert!(text.contains("\"version_detail\":\"openwrt=24.10.5,recipe=3,build=7\""));
    // Absent optional fields are left out, not written as null.
    assert!(!text.contains("null"));
    let channels = String::from_utf8(encode_channels(&sample_channels())).unwrap();
    assert!(channels.contains(
        "\"old\":{\"devices\":{\"ath79/generic/tplink_archer-c7-v5\":{\"index\":\
         \"/channels/stable/ath79/generic/tplink_archer-c7-v5/index.json\"}},\"hidden\":true,\
         \"redirect\":\"stable\"}"
    ));
}

#[test]
fn every_proper_prefix_fails() {
    for bytes in [
        encode_channels(&sample_channels()),
        encode_index(&sample_index()),
        encode_stamp(&sample_stamp()),
    ] {
        // The last byte is the optional final newline.
        for len in 0..bytes.len() - 1 {
            assert!(
                parse_channels(&bytes[..len]).is_err()
                    && parse_index(&bytes[..len]).is_err()
                    && parse_stamp(&bytes[..len]).is_err(),
                "prefix {len}"
            );
        }
    }
}

fn index_error(change: impl FnOnce(&mut IndexDoc)) -> ChannelFormatError {
    let mut doc = sample_index();
    change(&mut doc);
    parse_index(&encode_index(&doc)).unwrap_err()
}

fn field_of(error: &ChannelFormatError) -> &str {
    match error {
        ChannelFormatError::Field { field, .. } | ChannelFormatError::TooMany { field, .. } => {
            field
        }
        other => panic!("not a field error: {other}"),
    }
}

#[test]
fn a_recipe_script_must_match_its_digest_and_size() {
    let recipe = |doc: &mut IndexDoc| doc.images[2].recipe.as_mut().unwrap().clone();
    let err = index_error(|doc| {
        let mut changed = recipe(doc);
        changed.defaults = Some("exit 1\n".to_owned());
        doc.images[2].recipe = Some(changed);
    });
    assert_eq!(
        err.to_string(),
        "`index.json` field `images[2].recipe.defaults` is `exit 1\\n`: expected a script whose \
         SHA-256 is `recipe.defaults_sha256`"
    );
    let err = index_error(|doc| {
        let mut changed = recipe(doc);
        let big = "#".repeat(MAX_DEFAULTS_SCRIPT_LEN + 1);
        changed.defaults_sha256 = Some(defaults_digest(&big));
        changed.defaults = Some(big);
        doc.images[2].recipe = Some(changed);
    });
    assert_eq!(field_of(&err), "images[2].recipe.defaults");
    // A digest alone (a server that does not publish scripts) is still an index.
    let mut doc = sample_index();
    if let Some(recipe) = doc.images[2].recipe.as_mut() {
        recipe.defaults = None;
    }
    assert_eq!(parse_index(&encode_index(&doc)).unwrap(), doc);
}

#[test]
fn index_field_rules() {
    let err = index_error(|doc| doc.images[2].phased_percentage = Some(101));
    assert_eq!(
        err.to_string(),
        "`index.json` field `images[2].phased-percentage` is `101`: expected a percentage from 0 \
         to 100"
    );
    let err = index_error(|doc| doc.images[1].phased_percentage = Some(50));
    assert_eq!(
        err.to_string(),
        "`index.json` field `images[1].phased-percentage` is `50`: expected `phased-percentage` \
         only on the latest image"
    );
    let err = index_error(|doc| doc.images[1].version = 5);
    assert_eq!(field_of(&err), "images[1].version");
    let err = index_error(|doc| doc.images[0].files[0].checksum = SHA.to_uppercase());
    assert_eq!(field_of(&err), "images[0].files[0].checksum");
    let err = index_error(|doc| doc.images[0].files[0].path = "/channels/../etc/passwd".into());
    assert_eq!(
        err.to_string(),
        "`index.json` field `images[0].files[0].path` is `/channels/../etc/passwd`: expected an \
         absolute URL path (`/channels/...`) without `..`, empty segments, query or fragment, at \
         most 1024 bytes"
    );
    let err = index_error(|doc| doc.images[0].files[0].signature = "https://evil/x.sig".into());
    assert_eq!(field_of(&err), "images[0].files[0].signature");
    let err = index_error(|doc| doc.images[0].files[0].order = 1);
    assert_eq!(field_of(&err), "images[0].files[0].order");
    let err = index_error(|doc| doc.images[0].files[0].name = "../x".into());
    assert_eq!(field_of(&err), "images[0].files[0].name");
    let err = index_error(|doc| doc.global.device = "x86/64".into());
    assert_eq!(field_of(&err), "global.device");
    let err = index_error(|doc| doc.global.channel = "Stable".into());
    assert_eq!(field_of(&err), "global.channel");
    let err = index_error(|doc| doc.images[0].profile = "other".into());
    assert_eq!(
        err.to_string(),
        "`index.json` field `images[0].profile` is `other`: expected the profile of \
         `global.device`"
    );
    let err = index_error(|doc| doc.images[0].target = "x86/64".into());
    assert_eq!(field_of(&err), "images[0].target");
    let err = index_error(|doc| {
        doc.images[2]
            .recipe
            .as_mut()
            .unwrap()
            .add
            .push("bad name".into());
    });
    assert_eq!(field_of(&err), "images[2].recipe.add[1]");
    let err = index_error(|doc| doc.images[0].description = "a\u{1b}[2J".into());
    assert_eq!(field_of(&err), "images[0].description");
    let err = index_error(|doc| doc.global.freshness.expires = doc.global.freshness.generated_at);
    assert_eq!(field_of(&err), "global.expires");
    let err = index_error(|doc| doc.images[0].files = vec![doc.images[0].files[0].clone(); 65]);
    assert!(matches!(
        err,
        ChannelFormatError::TooMany {
            count: 65,
            max: 64,
            ..
        }
    ));
}

#[test]
fn refuses_delta_images_and_bad_dates() {
    let text = String::from_utf8(encode_index(&sample_index())).unwrap();
    let delta = text.replacen("\"type\":\"full\"", "\"type\":\"delta\"", 1);
    let err = parse_index(delta.as_bytes()).unwrap_err();
    assert!(
        matches!(&err, ChannelFormatError::Json { reason, .. } if reason.contains("unknown variant `delta`, expected `full`")),
        "{err}"
    );
    let bad_date = text.replacen("Sun Dec 06", "Mon Dec 06", 1);
    let err = parse_index(bad_date.as_bytes()).unwrap_err();
    assert!(
        err.to_string()
            .contains("the weekday does not match the date"),
        "{err}"
    );
    let bad_detail = text.replacen("recipe=3,build=5", "recipe=3,,build=5", 1);
    assert!(parse_index(bad_detail.as_bytes()).is_err());
}

#[test]
fn channels_field_rules() {
    let refuse = |change: &dyn Fn(&mut ChannelsDoc)| {
        let mut doc = sample_channels();
        change(&mut doc);
        parse_channels(&encode_channels(&doc)).unwrap_err()
    };
    let err = refuse(&|doc| {
        doc.channels.get_mut("daily").unwrap().alias = Some("nightly".into());
    });
    assert_eq!(
        err.to_string(),
        "`channels.json` field `channels.daily.alias` is `nightly`: expected the name of a \
         channel in this file"
    );
    let err = refuse(&|doc| {
        doc.channels.get_mut("daily").unwrap().redirect = Some("stable".into());
    });
    assert_eq!(field_of(&err), "channels.daily.redirect");
    let err = refuse(&|doc| {
        let entry = doc.channels.remove("stable").unwrap();
        doc.channels.insert("../stable".into(), entry);
    });
    assert_eq!(field_of(&err), "channels.../stable");
    let err = refuse(&|doc| {
        let stable = doc.channels.get_mut("stable").unwrap();
        let entry = stable.devices.remove(DEVICE).unwrap();
        stable.devices.insert("ath79/generic".into(), entry);
    });
    assert_eq!(field_of(&err), "channels.stable.devices.ath79/generic");
    let err = refuse(&|doc| {
        let stable = doc.channels.get_mut("stable").unwrap();
        stable.devices.get_mut(DEVICE).unwrap().index = "//evil.example/index.json".into();
    });
    assert_eq!(
        field_of(&err),
        "channels.stable.devices.ath79/generic/tplink_archer-c7-v5.index"
    );
    let err = refuse(&|doc| {
        let canary = doc.channels.get_mut("lab/canary").unwrap();
        canary.devices.get_mut(DEVICE).unwrap().redirect = Some("gone".into());
    });
    assert_eq!(
        field_of(&err),
        "channels.lab/canary.devices.ath79/generic/tplink_archer-c7-v5.redirect"
    );
}

#[test]
fn stamp_field_rules_and_unknown_keys() {
    let refuse = |change: &dyn Fn(&mut ChannelStamp)| {
        let mut stamp = sample_stamp();
        change(&mut stamp);
        parse_stamp(&encode_stamp(&stamp)).unwrap_err()
    };
    assert_eq!(
        field_of(&refuse(&|s| s.server = "file:///etc".into())),
        "server"
    );
    assert_eq!(
        field_of(&refuse(&|s| s.channel_target = Some("A".into()))),
        "channel_target"
    );
    assert_eq!(field_of(&refuse(&|s| s.device = "x".into())), "device");
    // A newer server may add keys; they are skipped.
    let mut text = String::from_utf8(encode_stamp(&sample_stamp())).unwrap();
    text.insert_str(1, "\"future\":[1,2],");
    assert_eq!(parse_stamp(text.as_bytes()).unwrap(), sample_stamp());
}

#[test]
fn rejects_oversized_files() {
    let big = vec![b' '; MAX_STAMP_LEN + 1];
    assert_eq!(
        parse_stamp(&big).unwrap_err().to_string(),
        "`channel.json` is 4097 bytes, more than the limit of 4096 bytes"
    );
    let big = vec![b' '; MAX_INDEX_LEN + 1];
    assert!(matches!(
        parse_index(&big),
        Err(ChannelFormatError::TooLarge {
            file: MetadataFile::Index,
            ..
        })
    ));
}
