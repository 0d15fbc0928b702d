//! Prebuilt or attended: how a channel build reaches this router.
//!
//! A channel publishes images built from its recipe: the profile's default packages plus the
//! recipe's `add`, minus its `remove`. A router that has installed nothing beyond that flashes
//! the published image. A router with packages of its own would lose them with the published
//! image, so it asks the build API for its own image of the same build instead: the build's
//! OpenWrt version and recipe plus the router's packages, with the build's `channel.json`
//! written at first boot by a uci-defaults script (the public build API takes no embedded
//! files), followed by the recipe's own script. Both routes then go through the same
//! verification and `sysupgrade`.
//!
//! Everything here is a pure function of the plan and the check, so each rule is unit-tested.

use attendant_proto::channel::{ChannelStamp, IndexImage, encode_stamp};
use attendant_proto::wire;

use super::{ChannelError, ChannelPlan};
use crate::check::Check;
use crate::options::PlanOptions;

/// The end of the here-document that writes `channel.json`: a line the one-line JSON stamp can
/// never be.
const STAMP_END: &str = "ATTENDANT_CHANNEL_JSON";

/// How the next build of a channel plan reaches this router ([`Engine::channel_route`]).
///
/// [`Engine::channel_route`]: crate::engine::Engine::channel_route
#[derive(Debug)]
pub enum ChannelRoute {
    /// The published image: the router has nothing the recipe lacks.
    Prebuilt,
    /// An image built for this router from the build's version and recipe plus its packages.
    Attended {
        /// The check of that build request, its uci-defaults script included.
        check: Box<Check>,
        /// The packages the published image lacks.
        extra: Vec<String>,
    },
}

/// The `channel.json` a router flashed with `build` of `plan`'s channel carries.
pub fn stamp(plan: &ChannelPlan, build: &IndexImage, server: &str) -> ChannelStamp {
    ChannelStamp {
        channel: plan.name.clone(),
        channel_target: plan.alias.clone(),
        device: plan.device.clone(),
        build: build.version,
        version_detail: build.version_detail.clone(),
        server: server.to_owned(),
    }
}

/// The uci-defaults script of an attended build: writes `stamp` to `channel.json` first (a
/// recipe script may end with `exit 0`), then runs the recipe's script.
///
/// The stamp travels in a quoted here-document, so the shell expands nothing in it, and its
/// JSON is one line, so it cannot end the document early.
pub fn defaults_script(stamp: &ChannelStamp, recipe_script: Option<&str>) -> String {
    let json = String::from_utf8_lossy(&encode_stamp(stamp)).into_owned();
    let path = wire::CHANNEL_STAMP_PATH;
    let dir = path.rsplit_once('/').map_or("/", |(dir, _)| dir);
    let mut script = format!(
        "mkdir -p {dir}\ncat > {path} <<'{STAMP_END}'\n{}\n{STAMP_END}\n",
        json.trim_end()
    );
    if let Some(recipe) = recipe_script {
        script.push_str(recipe);
        if !recipe.ends_with('\n') {
            script.push('\n');
        }
    }
    script
}

/// The recipe's uci-defaults script of `build`, when it has one; an index that names a script
/// only by its digest cannot be rebuilt for this router.
pub fn recipe_script<'a>(
    channel: &str,
    build: &'a IndexImage,
) -> Result<Option<&'a str>, ChannelError> {
    let Some(recipe) = &build.recipe else {
        return Ok(None);
    };
    match (&recipe.defaults, &recipe.defaults_sha256) {
        (Some(script), _) => Ok(Some(script)),
        (None, None) => Ok(None),
        (None, Some(_)) => Err(ChannelError::NoRecipeScript {
            channel: channel.to_owned(),
            build: build.version,
        }),
    }
}

/// The plan options of an attended build of `build`: its OpenWrt version and recipe, the
/// router's own packages, and `script` embedded. `force`: a channel may move to the same or an
/// older OpenWrt version, which the build API's own rules would refuse.
pub fn plan_options(build: &IndexImage, script: String) -> PlanOptions {
    let recipe = build.recipe.clone().unwrap_or_default();
    PlanOptions {
        version_to: Some(build.openwrt_version.clone()),
        add: recipe.add,
        remove: recipe.remove,
        rootfs_size: recipe.rootfs_size_mb,
        init_script: Some(script),
        force: true,
        ..PlanOptions::default()
    }
}

/// The packages `check` requests that neither the profile's defaults nor `build`'s recipe
/// bring: what the published image would drop. Empty: the published image will do.
pub fn extra_packages(check: &Check, build: &IndexImage) -> Vec<String> {
    let added = build
        .recipe
        .as_ref()
        .map(|recipe| recipe.add.as_slice())
        .unwrap_or_default();
    check
        .packages
        .iter()
        .filter(|row| row.requested)
        .map(|row| &row.name)
        .filter(|name| !added.contains(name) && !is_default(check, name))
        .cloned()
        .collect()
}

/// Whether `name` is one of the profile's defaults, or the installed package that stands in for
/// one (a router whose image asked for `nftables` has `nftables-json`, which provides it).
fn is_default(check: &Check, name: &str) -> bool {
    check.defaults.contains(name)
        || check.device.packages.get(name).is_some_and(|package| {
            package
                .provides
                .iter()
                .any(|provided| check.defaults.contains(provided))
        })
}

#[cfg(test)]
mod tests {
    use attendant_proto::channel::{IndexRecipe, VersionDetail, defaults_digest, parse_stamp};

    use super::*;

    fn build(recipe: Option<IndexRecipe>) -> IndexImage {
        let json = serde_json::json!({
            "type": "full", "version": 7, "description": "Q4",
            "version_detail": "openwrt=24.10.5,recipe=3",
            "openwrt_version": "24.10.5", "version_code": "r28959-29397011cc",
            "target": "ath79/generic", "profile": "tplink_archer-c7-v5", "files": []
        });
        let mut image: IndexImage = serde_json::from_value(json).unwrap();
        image.recipe = recipe;
        image
    }

    fn sample_stamp() -> ChannelStamp {
        ChannelStamp {
            channel: "stable".to_owned(),
            channel_target: None,
            device: "ath79/generic/tplink_archer-c7-v5".to_owned(),
            build: 7,
            version_detail: VersionDetail::parse("openwrt=24.10.5,recipe=3").unwrap(),
            server: "https://sysupgrade.example.org".to_owned(),
        }
    }

    /// The script, run by a real shell in a scratch root, writes the stamp byte for byte and
    /// then runs the recipe's script even when that one ends with `exit 0`.
    #[test]
    fn the_script_writes_the_stamp_then_runs_the_recipe() {
        let dir = tempfile::tempdir().unwrap();
        let stamp = sample_stamp();
        let script = defaults_script(&stamp, Some("echo recipe > \"$ROOT/recipe-ran\"\nexit 0"));
        let rooted = script
            .replace(
                wire::CHANNEL_STAMP_PATH,
                "\"$ROOT/etc/attendant/channel.json\"",
            )
            .replace(
                "mkdir -p /etc/attendant",
                "mkdir -p \"$ROOT/etc/attendant\"",
            );
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(&rooted)
            .env("ROOT", dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        let written = std::fs::read(dir.path().join("etc/attendant/channel.json")).unwrap();
        assert_eq!(parse_stamp(&written).unwrap(), stamp);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("recipe-ran")).unwrap(),
            "recipe\n"
        );
    }

    #[test]
    fn shell_text_in_the_stamp_stays_text() {
        let mut stamp = sample_stamp();
        stamp.server = "https://example.org/$(reboot)`id`".to_owned();
        let script = defaults_script(&stamp, None);
        assert!(script.contains("<<'ATTENDANT_CHANNEL_JSON'\n{"));
        assert_eq!(script.matches("\nATTENDANT_CHANNEL_JSON\n").count(), 1);
    }

    #[test]
    fn a_script_known_only_by_its_digest_is_refused() {
        let mut recipe = IndexRecipe {
            defaults_sha256: Some(defaults_digest("exit 0\n")),
            ..IndexRecipe::default()
        };
        let err = recipe_script("stable", &build(Some(recipe.clone()))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "build 7 of channel `stable` names its uci-defaults script only by its digest, so it \
             cannot be built for this router"
        );
        assert_eq!(recipe_script("stable", &build(None)).unwrap(), None);
        recipe.defaults = Some("exit 0\n".to_owned());
        let image = build(Some(recipe));
        assert_eq!(recipe_script("stable", &image).unwrap(), Some("exit 0\n"));
        let options = plan_options(&image, "x".to_owned());
        assert_eq!(options.version_to.as_deref(), Some("24.10.5"));
        assert_eq!(options.init_script.as_deref(), Some("x"));
        assert!(options.force);
    }
}
