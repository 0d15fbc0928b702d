//! One test per operation and per refusal.

use super::*;
use crate::channels::model::{test_build, test_channel};

const DEVICE: &str = "ath79/generic/tplink_archer-c7-v5";
const OTHER: &str = "x86/64/generic";

fn device_id(text: &str) -> DeviceId {
    text.parse().unwrap()
}

/// `stable` with DEVICE holding builds 1..=n (imported, ready).
fn tree_with(builds: u64) -> Tree {
    let mut stable = test_channel("stable");
    stable.devices.insert(
        DEVICE.to_owned(),
        Device {
            builds: (1..=builds).map(test_build).collect(),
            last_build: builds,
            ..Device::default()
        },
    );
    Tree::from([("stable".to_owned(), stable)])
}

/// Applies a change to a tree, as a commit would.
fn apply(tree: &Tree, change: &Change) -> Tree {
    let mut tree = tree.clone();
    for (name, after) in &change.touched {
        match after {
            Some(channel) => {
                tree.insert(name.clone(), channel.clone());
            }
            None => {
                tree.remove(name);
            }
        }
    }
    tree
}

fn numbers(tree: &Tree, channel: &str, device: &str) -> Vec<u64> {
    tree[channel].devices[device]
        .builds
        .iter()
        .map(|b| b.number)
        .collect()
}

fn built(number: u64) -> Build {
    Build {
        embeds_stamp: true,
        source: BuildSource::Built {
            request_hash: "cd".repeat(32),
        },
        ..test_build(number)
    }
}

#[test]
fn names_follow_the_rule() {
    for good in ["stable", "lab/canary", "24.10", "a-b_c.d", "0"] {
        check_name(good).unwrap();
    }
    for bad in [
        "",
        "Stable",
        "-x",
        "/x",
        "x/",
        "a//b",
        "a/../b",
        "a/.b",
        "a b",
        "pool",
        "pool/x",
        "keys",
        "channels.json",
        "x.sig",
    ] {
        assert!(
            matches!(check_name(bad), Err(OpError::InvalidName { .. })),
            "{bad}"
        );
    }
    assert!(check_name(&"a".repeat(129)).is_err());
    assert_eq!(
        check_name("Stable").unwrap_err().to_string(),
        "channel name `Stable` is not allowed: it must start with `a-z` or `0-9`"
    );
}

#[test]
fn create_makes_an_empty_manual_channel() {
    let change = create(&Tree::new(), "testing", &CreateOptions::default()).unwrap();
    let tree = apply(&Tree::new(), &change);
    assert_eq!(tree["testing"], test_channel("testing"));
    assert_eq!(
        change.summary,
        ["create channel `testing` (manual, versionbase 1, fullcount 0)"]
    );
}

#[test]
fn create_like_copies_devices_and_settings_without_builds() {
    let mut tree = tree_with(3);
    tree.get_mut("stable").unwrap().settings.fullcount = 5;
    let options = CreateOptions {
        auto: true,
        versionbase: Some(100),
        like: Some("stable".to_owned()),
        ..CreateOptions::default()
    };
    let tree = apply(&tree, &create(&tree, "daily", &options).unwrap());
    let daily = &tree["daily"];
    assert_eq!(daily.settings.kind, ChannelKind::Auto);
    assert_eq!(daily.settings.versionbase, 100);
    assert_eq!(daily.settings.fullcount, 5);
    assert!(daily.devices[DEVICE].builds.is_empty());
}

#[test]
fn create_refuses_existing_bad_names_and_zero_versionbase() {
    let tree = tree_with(0);
    assert!(matches!(
        create(&tree, "stable", &CreateOptions::default()),
        Err(OpError::ChannelExists { .. })
    ));
    assert!(matches!(
        create(&tree, "../x", &CreateOptions::default()),
        Err(OpError::InvalidName { .. })
    ));
    let zero = CreateOptions {
        versionbase: Some(0),
        ..CreateOptions::default()
    };
    assert_eq!(create(&tree, "x", &zero), Err(OpError::Versionbase));
    let like = CreateOptions {
        like: Some("missing".to_owned()),
        ..CreateOptions::default()
    };
    assert!(matches!(
        create(&tree, "x", &like),
        Err(OpError::NoChannel { .. })
    ));
}

#[test]
fn first_build_number_is_the_versionbase() {
    let mut tree = tree_with(0);
    tree.get_mut("stable").unwrap().settings.versionbase = 20;
    let change = add_build(&tree, "stable", DEVICE, new_imported(), 5).unwrap();
    let tree = apply(&tree, &change);
    assert_eq!(numbers(&tree, "stable", DEVICE), [20]);
    assert_eq!(tree["stable"].devices[DEVICE].builds[0].created_at, 5);
}

fn new_imported() -> NewBuild {
    NewBuild {
        source: BuildSource::Imported {
            origin: "x.bin".to_owned(),
        },
        state: BuildState::Ready,
        openwrt_version: "24.10.5".to_owned(),
        version_code: String::new(),
        recipe: Recipe::default(),
        description: String::new(),
        version_detail: Vec::new(),
        minversion: None,
        images: Vec::new(),
        embeds_stamp: false,
    }
}

#[test]
fn build_numbers_are_never_reused() {
    let tree = tree_with(3);
    let tree = apply(&tree, &remove_build(&tree, "stable", DEVICE, 3).unwrap());
    let tree = apply(
        &tree,
        &add_build(&tree, "stable", DEVICE, new_imported(), 0).unwrap(),
    );
    assert_eq!(numbers(&tree, "stable", DEVICE), [1, 2, 4]);
}

#[test]
fn add_build_refuses_a_minversion_not_below_its_number() {
    let tree = tree_with(2);
    let new = NewBuild {
        minversion: Some(3),
        ..new_imported()
    };
    assert_eq!(
        add_build(&tree, "stable", DEVICE, new, 0),
        Err(OpError::Minversion {
            minversion: 3,
            number: 3
        })
    );
}

#[test]
fn remove_drops_per_device_redirects_and_refuses_while_aliased() {
    let tree = tree_with(1);
    let tree = apply(
        &tree,
        &create(&tree, "lab", &CreateOptions::default()).unwrap(),
    );
    let tree = apply(
        &tree,
        &redirect(&tree, "lab", "stable", Some(&device_id(DEVICE))).unwrap(),
    );
    let aliased = apply(&tree, &alias(&tree, "daily", "stable", 0).unwrap());
    assert_eq!(
        remove(&aliased, "stable"),
        Err(OpError::StillReferenced {
            name: "stable".to_owned(),
            by: vec!["daily".to_owned()]
        })
    );
    let tree = apply(&tree, &remove(&tree, "stable").unwrap());
    assert!(!tree.contains_key("stable"));
    assert!(tree["lab"].devices.is_empty());
    assert!(matches!(
        remove(&tree, "stable"),
        Err(OpError::NoChannel { .. })
    ));
}

#[test]
fn hide_and_show_flip_the_flag() {
    let tree = tree_with(0);
    let hidden = apply(&tree, &set_hidden(&tree, "stable", true).unwrap());
    assert!(hidden["stable"].hidden);
    let shown = apply(&hidden, &set_hidden(&hidden, "stable", false).unwrap());
    assert!(!shown["stable"].hidden);
    // Showing a shown channel changes nothing.
    assert!(
        set_hidden(&tree, "stable", false)
            .unwrap()
            .touched
            .is_empty()
    );
}

#[test]
fn rename_leaves_a_redirect_and_rewrites_pointers() {
    let tree = tree_with(2);
    let tree = apply(&tree, &alias(&tree, "daily", "stable", 0).unwrap());
    let tree = apply(
        &tree,
        &create(&tree, "lab", &CreateOptions::default()).unwrap(),
    );
    let tree = apply(
        &tree,
        &redirect(&tree, "lab", "stable", Some(&device_id(DEVICE))).unwrap(),
    );
    let tree = apply(&tree, &rename(&tree, "stable", "release").unwrap());
    assert_eq!(tree["release"].name, "release");
    assert_eq!(numbers(&tree, "release", DEVICE), [1, 2]);
    let old = &tree["stable"];
    assert_eq!(old.redirect.as_deref(), Some("release"));
    assert!(old.hidden);
    assert!(
        old.devices.contains_key(DEVICE),
        "redirect mirrors the device list"
    );
    assert!(old.devices[DEVICE].builds.is_empty());
    assert_eq!(tree["daily"].alias.as_deref(), Some("release"));
    assert_eq!(
        tree["lab"].devices[DEVICE].redirect.as_deref(),
        Some("release")
    );
    // New builds land in the new name.
    let change = add_build(&tree, "release", DEVICE, new_imported(), 0).unwrap();
    assert_eq!(change.target, format!("release {DEVICE} 3"));
}

#[test]
fn rename_rebuilds_queued_builds_under_the_new_name() {
    let mut tree = tree_with(1);
    let mut queued = built(2);
    queued.state = BuildState::Pending {
        request_hash: "cd".repeat(32),
    };
    let stable = tree.get_mut("stable").unwrap();
    let device = stable.devices.get_mut(DEVICE).unwrap();
    device.builds.push(queued);
    device.last_build = 2;
    let tree = apply(&tree, &alias(&tree, "daily", "stable", 0).unwrap());
    let change = rename(&tree, "stable", "release").unwrap();
    // The queued job's stamp says `stable`: the build (and the alias's copy, whose stamp names
    // its target) gets a new job; the ready build keeps its images.
    assert_eq!(
        change.rebuilds,
        [
            BuildRef {
                channel: "daily".to_owned(),
                device: DEVICE.to_owned(),
                number: 2,
            },
            BuildRef {
                channel: "release".to_owned(),
                device: DEVICE.to_owned(),
                number: 2,
            },
        ]
    );
    let tree = apply(&tree, &change);
    let build = tree["release"].devices[DEVICE].build(2).unwrap();
    assert_eq!(
        build.state,
        BuildState::Pending {
            request_hash: String::new()
        }
    );
    assert_eq!(
        tree["release"].devices[DEVICE].build(1).unwrap().state,
        BuildState::Ready
    );
}

#[test]
fn rename_refuses_existing_targets_and_redirects() {
    let tree = tree_with(0);
    let tree = apply(
        &tree,
        &create(&tree, "testing", &CreateOptions::default()).unwrap(),
    );
    assert!(matches!(
        rename(&tree, "stable", "testing"),
        Err(OpError::ChannelExists { .. })
    ));
    let tree = apply(&tree, &rename(&tree, "stable", "release").unwrap());
    assert!(matches!(
        rename(&tree, "stable", "other"),
        Err(OpError::Mirrored { .. })
    ));
}

#[test]
fn alias_mirrors_devices_builds_and_phase() {
    let mut tree = tree_with(2);
    tree.get_mut("stable")
        .unwrap()
        .devices
        .get_mut(DEVICE)
        .unwrap()
        .builds[1]
        .phased_percentage = 30;
    let tree = apply(&tree, &alias(&tree, "daily", "stable", 0).unwrap());
    let daily = &tree["daily"];
    assert_eq!(daily.alias.as_deref(), Some("stable"));
    assert_eq!(numbers(&tree, "daily", DEVICE), [1, 2]);
    let mirrored = &daily.devices[DEVICE].builds[1];
    assert_eq!(mirrored.phased_percentage, 30);
    assert_eq!(
        mirrored.source,
        BuildSource::Copied {
            channel: "stable".to_owned(),
            build: 2
        }
    );
    assert_eq!(
        mirrored.images,
        tree["stable"].devices[DEVICE].builds[1].images
    );

    // A change of the target re-syncs the alias.
    let tree = apply(&tree, &phase(&tree, "stable", DEVICE, 2, 0).unwrap());
    assert_eq!(tree["daily"].devices[DEVICE].builds[1].phased_percentage, 0);
    let tree = apply(
        &tree,
        &device_add(&tree, "stable", &device_id(OTHER)).unwrap(),
    );
    assert!(tree["daily"].devices.contains_key(OTHER));
    let tree = apply(&tree, &remove_build(&tree, "stable", DEVICE, 1).unwrap());
    assert_eq!(numbers(&tree, "daily", DEVICE), [2]);
}

#[test]
fn alias_of_built_builds_are_rebuilt_with_their_own_stamp() {
    let mut tree = tree_with(0);
    tree.get_mut("stable")
        .unwrap()
        .devices
        .get_mut(DEVICE)
        .unwrap()
        .builds = vec![built(1)];
    let change = alias(&tree, "daily", "stable", 0).unwrap();
    assert_eq!(
        change.rebuilds,
        [BuildRef {
            channel: "daily".to_owned(),
            device: DEVICE.to_owned(),
            number: 1
        }]
    );
    let tree = apply(&tree, &change);
    let mirrored = &tree["daily"].devices[DEVICE].builds[0];
    assert!(matches!(mirrored.state, BuildState::Pending { .. }));
    assert!(mirrored.images.is_empty());
    // Later syncs keep the mirrored build and do not rebuild it again.
    let change = phase(&tree, "stable", DEVICE, 1, 50).unwrap();
    assert!(change.rebuilds.is_empty());
}

#[test]
fn alias_retarget_mirrors_the_new_target() {
    let tree = tree_with(2);
    let tree = apply(&tree, &alias(&tree, "daily", "stable", 0).unwrap());
    let mut tree = apply(
        &tree,
        &create(&tree, "testing", &CreateOptions::default()).unwrap(),
    );
    tree.get_mut("testing").unwrap().devices.insert(
        OTHER.to_owned(),
        Device {
            builds: vec![test_build(9)],
            last_build: 9,
            redirect: None,
        },
    );
    let change = alias(&tree, "daily", "testing", 0).unwrap();
    assert_eq!(
        change.summary,
        ["re-target alias `daily` from `stable` to `testing`"]
    );
    let tree = apply(&tree, &change);
    assert!(!tree["daily"].devices.contains_key(DEVICE));
    assert_eq!(numbers(&tree, "daily", OTHER), [9]);
}

#[test]
fn alias_refuses_self_chains_and_plain_channels() {
    let tree = tree_with(0);
    assert!(matches!(
        alias(&tree, "stable", "stable", 0),
        Err(OpError::SelfReference { .. })
    ));
    let tree = apply(&tree, &alias(&tree, "daily", "stable", 0).unwrap());
    assert!(matches!(
        alias(&tree, "weekly", "daily", 0),
        Err(OpError::Chain { .. })
    ));
    let tree = apply(
        &tree,
        &create(&tree, "testing", &CreateOptions::default()).unwrap(),
    );
    assert!(matches!(
        alias(&tree, "testing", "stable", 0),
        Err(OpError::ChannelExists { .. })
    ));
    assert!(matches!(
        alias(&tree, "x", "missing", 0),
        Err(OpError::NoChannel { .. })
    ));
}

#[test]
fn mirrors_refuse_direct_changes() {
    let tree = tree_with(1);
    let tree = apply(&tree, &alias(&tree, "daily", "stable", 0).unwrap());
    let refused = phase(&tree, "daily", DEVICE, 1, 10).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "channel `daily` is an alias of `stable` and mirrors it; change `stable` instead"
    );
    assert!(matches!(
        device_add(&tree, "daily", &device_id(OTHER)),
        Err(OpError::Mirrored { .. })
    ));
    assert!(matches!(
        add_build(&tree, "daily", DEVICE, new_imported(), 0),
        Err(OpError::Mirrored { .. })
    ));
    assert!(matches!(
        remove_build(&tree, "daily", DEVICE, 1),
        Err(OpError::Mirrored { .. })
    ));
}

#[test]
fn channel_redirect_is_a_hidden_shallow_copy() {
    let tree = tree_with(2);
    let tree = apply(&tree, &redirect(&tree, "old", "stable", None).unwrap());
    let old = &tree["old"];
    assert!(old.hidden);
    assert_eq!(old.redirect.as_deref(), Some("stable"));
    assert!(old.devices[DEVICE].builds.is_empty());
    // Re-synced when the target's devices change.
    let tree = apply(
        &tree,
        &device_add(&tree, "stable", &device_id(OTHER)).unwrap(),
    );
    assert!(tree["old"].devices.contains_key(OTHER));
    // Re-targeting a redirect is allowed; a plain channel is not turned into one.
    let tree = apply(
        &tree,
        &create(&tree, "testing", &CreateOptions::default()).unwrap(),
    );
    let tree = apply(&tree, &redirect(&tree, "old", "testing", None).unwrap());
    assert!(tree["old"].devices.is_empty());
    assert!(matches!(
        redirect(&tree, "stable", "testing", None),
        Err(OpError::ChannelExists { .. })
    ));
    assert!(matches!(
        redirect(&tree, "new", "old", None),
        Err(OpError::Chain { .. })
    ));
}

#[test]
fn device_redirect_points_one_device_elsewhere() {
    let tree = tree_with(1);
    let tree = apply(
        &tree,
        &create(&tree, "lab", &CreateOptions::default()).unwrap(),
    );
    let change = redirect(&tree, "lab", "stable", Some(&device_id(DEVICE))).unwrap();
    let tree = apply(&tree, &change);
    assert_eq!(
        tree["lab"].devices[DEVICE].redirect.as_deref(),
        Some("stable")
    );
    assert!(matches!(
        add_build(&tree, "lab", DEVICE, new_imported(), 0),
        Err(OpError::DeviceRedirected { .. })
    ));
    // The device must exist in the target, and must not be a real device of the channel.
    assert!(matches!(
        redirect(&tree, "lab", "stable", Some(&device_id(OTHER))),
        Err(OpError::NoDevice { .. })
    ));
    let tree = apply(
        &tree,
        &device_add(&tree, "stable", &device_id(OTHER)).unwrap(),
    );
    let tree = apply(&tree, &device_add(&tree, "lab", &device_id(OTHER)).unwrap());
    assert!(matches!(
        redirect(&tree, "lab", "stable", Some(&device_id(OTHER))),
        Err(OpError::DeviceExists { .. })
    ));
}

#[test]
fn device_add_and_remove() {
    let tree = tree_with(1);
    let tree = apply(
        &tree,
        &device_add(&tree, "stable", &device_id(OTHER)).unwrap(),
    );
    assert!(tree["stable"].devices.contains_key(OTHER));
    assert!(matches!(
        device_add(&tree, "stable", &device_id(OTHER)),
        Err(OpError::DeviceExists { .. })
    ));
    let tree = apply(&tree, &device_remove(&tree, "stable", OTHER).unwrap());
    assert!(!tree["stable"].devices.contains_key(OTHER));
    assert!(matches!(
        device_remove(&tree, "stable", OTHER),
        Err(OpError::NoDevice { .. })
    ));
}

#[test]
fn phase_applies_to_the_latest_only_and_checks_range() {
    let tree = tree_with(2);
    let tree2 = apply(&tree, &phase(&tree, "stable", DEVICE, 2, 25).unwrap());
    assert_eq!(
        tree2["stable"].devices[DEVICE].builds[1].phased_percentage,
        25
    );
    assert_eq!(
        phase(&tree, "stable", DEVICE, 1, 25),
        Err(OpError::NotLatest {
            channel: "stable".to_owned(),
            device: DEVICE.to_owned(),
            number: 1,
            latest: 2,
            action: "phased"
        })
    );
    assert_eq!(
        phase(&tree, "stable", DEVICE, 2, 101),
        Err(OpError::Percentage { value: 101 })
    );
    assert!(matches!(
        phase(&tree, "stable", DEVICE, 7, 10),
        Err(OpError::NoBuild { number: 7, .. })
    ));
    assert!(matches!(
        phase(&tree, "stable", OTHER, 1, 10),
        Err(OpError::NoDevice { .. })
    ));
}

#[test]
fn failed_builds_are_not_the_latest() {
    let mut tree = tree_with(2);
    tree.get_mut("stable")
        .unwrap()
        .devices
        .get_mut(DEVICE)
        .unwrap()
        .builds[1]
        .state = BuildState::Failed {
        reason: "x".to_owned(),
    };
    phase(&tree, "stable", DEVICE, 1, 10).unwrap();
}

#[test]
fn tag_makes_a_new_number_and_replaces_an_older_tag() {
    let mut tree = tree_with(2);
    tree.get_mut("stable")
        .unwrap()
        .devices
        .get_mut(DEVICE)
        .unwrap()
        .builds[1]
        .phased_percentage = 40;
    let tree = apply(&tree, &tag(&tree, "stable", DEVICE, 2, "Q3", 7).unwrap());
    let tree = apply(&tree, &tag(&tree, "stable", DEVICE, 3, "Q4", 8).unwrap());
    assert_eq!(numbers(&tree, "stable", DEVICE), [1, 2, 3, 4]);
    let tagged = &tree["stable"].devices[DEVICE].builds[3];
    assert_eq!(tagged.version_detail_text(), "openwrt=24.10.5,tag=Q4");
    assert_eq!(tagged.phased_percentage, 40);
    assert_eq!(tagged.created_at, 8);
    assert_eq!(
        tagged.images,
        tree["stable"].devices[DEVICE].builds[1].images
    );
    assert!(matches!(
        tag(&tree, "stable", DEVICE, 3, "Q5", 0),
        Err(OpError::NotLatest { .. })
    ));
    for bad in ["", "a,b", "a=b", "a b"] {
        assert!(
            matches!(
                tag(&tree, "stable", DEVICE, 4, bad, 0),
                Err(OpError::InvalidTag { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn tagging_a_built_build_rebuilds_it() {
    let mut tree = tree_with(0);
    tree.get_mut("stable")
        .unwrap()
        .devices
        .get_mut(DEVICE)
        .unwrap()
        .builds = vec![built(1)];
    let change = tag(&tree, "stable", DEVICE, 1, "rc", 0).unwrap();
    assert_eq!(change.rebuilds.len(), 1);
    assert_eq!(change.rebuilds[0].number, 2);
}

#[test]
fn copy_promotes_and_reverts_under_new_numbers() {
    let tree = tree_with(2);
    let tree = apply(
        &tree,
        &create(&tree, "testing", &CreateOptions::default()).unwrap(),
    );
    let tree = apply(
        &tree,
        &device_add(&tree, "testing", &device_id(DEVICE)).unwrap(),
    );
    // Promotion into another channel.
    let tree = apply(
        &tree,
        &copy(&tree, "stable", DEVICE, 2, "testing", 0).unwrap(),
    );
    assert_eq!(numbers(&tree, "testing", DEVICE), [1]);
    assert_eq!(
        tree["testing"].devices[DEVICE].builds[0].phased_percentage,
        100
    );
    // Revert within a channel: build 1 comes back as build 3.
    let tree = apply(
        &tree,
        &copy(&tree, "stable", DEVICE, 1, "stable", 0).unwrap(),
    );
    assert_eq!(numbers(&tree, "stable", DEVICE), [1, 2, 3]);
    assert_eq!(
        tree["stable"].devices[DEVICE].builds[2].images,
        tree["stable"].devices[DEVICE].builds[0].images
    );
}

#[test]
fn copy_refuses_the_latest_again_and_unready_builds() {
    let mut tree = tree_with(2);
    assert_eq!(
        copy(&tree, "stable", DEVICE, 2, "stable", 0),
        Err(OpError::AlreadyLatest {
            channel: "stable".to_owned(),
            device: DEVICE.to_owned(),
            number: 2,
            target: "stable".to_owned(),
            latest: 2
        })
    );
    tree.get_mut("stable")
        .unwrap()
        .devices
        .get_mut(DEVICE)
        .unwrap()
        .builds[0]
        .state = BuildState::Pending {
        request_hash: String::new(),
    };
    assert!(matches!(
        copy(&tree, "stable", DEVICE, 1, "stable", 0),
        Err(OpError::NotReady {
            state: "pending",
            ..
        })
    ));
    assert!(matches!(
        copy(&tree, "stable", DEVICE, 2, "missing", 0),
        Err(OpError::NoChannel { .. })
    ));
}

#[test]
fn remove_build_keeps_stepping_stones() {
    let mut tree = tree_with(3);
    tree.get_mut("stable")
        .unwrap()
        .devices
        .get_mut(DEVICE)
        .unwrap()
        .builds[2]
        .minversion = Some(2);
    assert_eq!(
        remove_build(&tree, "stable", DEVICE, 2),
        Err(OpError::SteppingStone {
            channel: "stable".to_owned(),
            device: DEVICE.to_owned(),
            number: 2,
            needed_by: 3,
            minversion: 2
        })
    );
    let tree = apply(&tree, &remove_build(&tree, "stable", DEVICE, 1).unwrap());
    assert_eq!(numbers(&tree, "stable", DEVICE), [2, 3]);
}

#[test]
fn fullcount_expires_the_oldest_but_keeps_the_stepping_stone() {
    let mut tree = tree_with(3);
    tree.get_mut("stable").unwrap().settings.fullcount = 1;
    // The new build 4 needs a build in 3..4 below it: build 3 is its only stepping stone.
    let new = NewBuild {
        minversion: Some(3),
        ..new_imported()
    };
    let change = add_build(&tree, "stable", DEVICE, new, 0).unwrap();
    let tree = apply(&tree, &change);
    assert_eq!(numbers(&tree, "stable", DEVICE), [3, 4]);
    assert!(
        change.summary.contains(&format!(
            "expire `stable` `{DEVICE}` builds 1, 2 (fullcount 1)"
        )),
        "{:?}",
        change.summary
    );
}

#[test]
fn fullcount_frees_a_stepping_stone_once_its_newer_build_expired() {
    let mut tree = tree_with(2);
    let stable = tree.get_mut("stable").unwrap();
    stable.settings.fullcount = 1;
    stable.devices.get_mut(DEVICE).unwrap().builds[1].minversion = Some(1);
    let tree = apply(
        &tree,
        &add_build(&tree, "stable", DEVICE, new_imported(), 0).unwrap(),
    );
    assert_eq!(numbers(&tree, "stable", DEVICE), [3]);
}

#[test]
fn fullcount_never_expires_the_latest() {
    let mut tree = tree_with(1);
    tree.get_mut("stable").unwrap().settings.fullcount = 1;
    let tree = apply(
        &tree,
        &add_build(&tree, "stable", DEVICE, new_imported(), 0).unwrap(),
    );
    assert_eq!(numbers(&tree, "stable", DEVICE), [2]);
}

#[test]
fn settle_marks_ready_or_failed_and_syncs_aliases() {
    let mut tree = tree_with(0);
    let mut pending = built(1);
    pending.state = BuildState::Pending {
        request_hash: "ab".repeat(32),
    };
    tree.get_mut("stable")
        .unwrap()
        .devices
        .get_mut(DEVICE)
        .unwrap()
        .builds = vec![pending];
    let tree = apply(&tree, &alias(&tree, "daily", "stable", 0).unwrap());
    let failed = apply(
        &tree,
        &settle(
            &tree,
            "stable",
            DEVICE,
            1,
            Settled::Failed {
                reason: "boom".to_owned(),
            },
        )
        .unwrap(),
    );
    assert!(matches!(
        failed["stable"].devices[DEVICE].builds[0].state,
        BuildState::Failed { .. }
    ));
    assert!(failed["daily"].devices[DEVICE].builds.is_empty());
    let images = test_build(1).images;
    let ready = apply(
        &tree,
        &settle(
            &tree,
            "stable",
            DEVICE,
            1,
            Settled::Ready {
                images: images.clone(),
                version_code: "r1-abc".to_owned(),
            },
        )
        .unwrap(),
    );
    let build = &ready["stable"].devices[DEVICE].builds[0];
    assert_eq!(build.state, BuildState::Ready);
    assert_eq!(build.images, images);
    assert_eq!(build.version_code, "r1-abc");
}

#[test]
fn errors_carry_hints_where_there_is_a_way_out() {
    let tree = tree_with(0);
    let error = device_remove(&tree, "stable", OTHER).unwrap_err();
    assert_eq!(
        error.hint().unwrap(),
        format!("add it with `attendant-server channel device add stable {OTHER}`")
    );
    assert_eq!(OpError::Versionbase.hint(), None);
}
