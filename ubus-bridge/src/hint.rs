//! The agent's warnings, problems and hints in words for the LuCI app, which has no flags.
//!
//! The agent words a hint for its command line (`--force`, `--ignored-defaults NAME`); the
//! bridge keeps the hint's [`HintCode`] and words it for a ubus caller instead, naming call
//! arguments and settings in `/etc/config/attendedsysupgrade`. A warning or problem (`check`'s
//! `warnings` and `problems`, a job's `warnings`, a `blocked` error's `problems`) is
//!
//! ```json
//! {"message": "package `luci` would go down from `25.074.1` to `25.051.1`",
//!  "hint": {"code": "force", "message": "start with `force` to build anyway"}}
//! ```
//!
//! and an error object carries the same `hint` beside its `message`. `hint` is left out when
//! there is no way out to suggest. A warning that `force` let through says only what it found.

use attendant::hint::{Finding, Hint, HintCode};
use attendant_proto::wire;
use serde_json::{Map, Value, json};

/// A warning or problem: `{"message": ..., "hint"?: {...}}`.
pub fn finding(finding: &Finding) -> Value {
    let mut object = Map::new();
    object.insert("message".to_owned(), finding.message.clone().into());
    if let Some(hint) = finding.hint.as_ref().and_then(hint) {
        object.insert("hint".to_owned(), hint);
    }
    Value::Object(object)
}

/// The warnings or problems of a check.
pub fn findings(findings: &[Finding]) -> Vec<Value> {
    findings.iter().map(finding).collect()
}

/// A hint: `{"code": ..., "message": ...}`; `None` for advice the agent gives its command line
/// only (no code), or a code the bridge has no words for.
pub fn hint(hint: &Hint) -> Option<Value> {
    let code = hint.code?;
    let message = message(code)?;
    Some(json!({"code": code.as_str(), "message": message}))
}

/// The bridge's words for a kind of way out: no flags, only call arguments and settings.
pub fn message(code: HintCode) -> Option<String> {
    let config = wire::UCI_CONFIG_PATH;
    Some(match code {
        HintCode::Force => "start with `force` to build anyway",
        HintCode::Remove => "leave the package out of the build with `remove`",
        HintCode::IgnoredDefaults => {
            return Some(format!(
                "add the package with `add`, or, if it was removed on purpose, list it in `ignored_defaults` in {config}"
            ));
        }
        HintCode::InitScript => {
            return Some(format!(
                "set `init_script` in {config} to build the script into the new image"
            ));
        }
        HintCode::Fstype => "choose another filesystem with `fstype`",
        HintCode::VersionTo => "choose a version the server offers with `version`",
        HintCode::Versions => "choose one of the versions the server offers",
        HintCode::UnsupportedBoard => "the server does not build for this board",
        HintCode::TryLater => "try again later",
        HintCode::CaFile => "install the `ca-bundle` package",
        HintCode::FreeSpace => {
            return Some(format!(
                "free space on the router, or set `image` in {config} to a place with room"
            ));
        }
        HintCode::Resume => "start again; the download resumes",
        HintCode::DownloadAgain => "start again to download the image afresh",
        HintCode::RequireSignature => {
            "ask the server operator to sign images, or turn off `require_signature` in the configuration"
        }
        HintCode::PreInstall => {
            return Some(format!(
                "fix the pre-install hook, or remove `pre_install` from {config}"
            ));
        }
        HintCode::ForceFlash => {
            "sysupgrade's own checks failed; install with `force` only if the image is known to fit this router"
        }
        HintCode::ClearState => "delete the state file named above",
        _ => return None,
    }
    .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hint_code_has_words_without_flags() {
        for code in HintCode::ALL {
            let words = message(code).unwrap_or_else(|| panic!("no words for {code:?}"));
            assert!(!words.contains("--"), "{code:?}: {words}");
            assert!(!words.contains("attendant "), "{code:?}: {words}");
        }
    }

    #[test]
    fn the_contract_lists_every_hint_code_in_the_bridge_words() {
        let contract: Value = serde_json::from_str(include_str!("../contract.json")).unwrap();
        let mut listed: Vec<&str> = contract["hints"]["codes"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        listed.sort_unstable();
        let mut ours: Vec<&str> = HintCode::ALL.iter().map(|code| code.as_str()).collect();
        ours.sort_unstable();
        assert_eq!(listed, ours);
        // Every example hint says what the bridge says.
        fn walk(value: &Value) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::Object(hint)) = map.get("hint")
                        && hint["message"] != "..."
                    {
                        let code = HintCode::ALL
                            .into_iter()
                            .find(|code| hint["code"] == code.as_str())
                            .unwrap();
                        assert_eq!(hint["message"], message(code).unwrap(), "{hint:?}");
                    }
                    map.values().for_each(walk);
                }
                Value::Array(items) => items.iter().for_each(walk),
                _ => {}
            }
        }
        walk(&contract);
    }

    #[test]
    fn a_finding_keeps_its_message_and_codes_its_hint() {
        let missing = Finding::hinted(
            "default package `nftables` is not installed and will not be in the image",
            HintCode::IgnoredDefaults,
            "add it with `--add nftables`, or silence this with `--ignored-defaults nftables`",
        );
        assert_eq!(
            finding(&missing),
            json!({
                "message": "default package `nftables` is not installed and will not be in the image",
                "hint": {"code": "ignored_defaults", "message": message(HintCode::IgnoredDefaults).unwrap()},
            })
        );
        let forced = Finding::forced("package `luci` goes down from `2` to `1`");
        assert_eq!(
            finding(&forced),
            json!({"message": "package `luci` goes down from `2` to `1`"})
        );
    }
}
