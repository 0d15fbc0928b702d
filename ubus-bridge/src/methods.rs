//! The object's methods: the signatures `list` prints and the dispatch of `call`.
//!
//! rpcd turns each example value's JSON type into the blobmsg policy of the argument
//! (rpcd's `exec.c`, <https://github.com/openwrt/rpcd/blob/master/exec.c>): string, boolean, array, and integer → `int32` (the examples
//! avoid `8`, `16` and `64`, which would mean `int8`, `int16` and `int64`). The same signatures
//! are in `contract.json`; a test compares the two.

use serde_json::{Value, json};

use crate::context::Context;
use crate::error::BridgeError;
use crate::protocol::Arguments;
use crate::{check, config, device, upgrade};

/// Who may call a method: the ACL group's `read` or `write` part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Looks, changes nothing.
    Read,
    /// Starts, stops or changes something.
    Write,
}

/// Every method with its access, in the order `list` documents them.
pub const METHODS: [(&str, Access); 10] = [
    ("info", Access::Read),
    ("channels", Access::Read),
    ("packages", Access::Read),
    ("check", Access::Read),
    ("status", Access::Read),
    ("config_get", Access::Read),
    ("start", Access::Write),
    ("cancel", Access::Write),
    ("install", Access::Write),
    ("config_set", Access::Write),
];

/// The method names.
pub fn names() -> Vec<&'static str> {
    METHODS.iter().map(|(name, _)| *name).collect()
}

/// What `list` prints: each method with its example arguments.
pub fn signatures() -> Value {
    let plan = json!({
        "version": "24.10.6",
        "add": ["luci-app-example"],
        "remove": ["luci-app-example"],
        "fstype": "squashfs",
        "rootfs_size": 256,
        "force": false,
    });
    let mut plan = plan;
    if let Some(object) = plan.as_object_mut() {
        object.insert("channel".to_owned(), "stable".into());
        object.insert("percentage".to_owned(), 50.into());
        object.insert("prebuilt".to_owned(), false.into());
    }
    let mut check = plan.clone();
    if let Some(object) = check.as_object_mut() {
        object.insert("max_age".to_owned(), 3600.into());
    }
    let mut start = plan;
    if let Some(object) = start.as_object_mut() {
        object.insert("keep_settings".to_owned(), true.into());
    }
    json!({
        "info": {},
        "channels": {"all": false},
        "packages": {"all": false},
        "check": check,
        "status": {"job": "0123456789abcdef"},
        "config_get": {},
        "start": start,
        "cancel": {"job": "0123456789abcdef"},
        "install": {"job": "0123456789abcdef", "keep_settings": true, "force": false},
        "config_set": {
            "url": "https://sysupgrade.openwrt.org",
            "rebuilders": ["https://rebuild.example.org"],
            "auto_search": false,
            "advanced_mode": false,
            "login_check_for_upgrades": false,
            "upgrade_packages": true,
            "keep_settings": true,
            "require_signature": false,
            "rootfs_size": 256,
            "channel": "stable",
        },
    })
}

/// Runs one method.
pub fn call(method: &str, arguments: &Arguments, context: &Context) -> Result<Value, BridgeError> {
    match method {
        "info" => device::info(context),
        "channels" => device::channels(context, arguments),
        "packages" => device::packages(context, arguments),
        "check" => check::check(context, arguments),
        "status" => upgrade::status(context, arguments),
        "config_get" => config::get(context),
        "start" => upgrade::start(context, arguments),
        "cancel" => upgrade::cancel(context, arguments),
        "install" => upgrade::install(context, arguments),
        "config_set" => config::set(context, arguments),
        other => Err(BridgeError::UnknownMethod {
            method: attendant_proto::excerpt::excerpt(
                other,
                attendant_proto::excerpt::MAX_VALUE_CHARS,
            ),
            known: names(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_has_a_signature() {
        let signatures = signatures();
        let object = signatures.as_object().unwrap();
        assert_eq!(object.len(), METHODS.len());
        for name in names() {
            assert!(object.contains_key(name), "{name}");
        }
    }

    #[test]
    fn no_example_integer_means_a_narrow_type() {
        fn walk(value: &Value) {
            match value {
                Value::Number(n) => assert!(![8, 16, 64].contains(&n.as_u64().unwrap_or(0))),
                Value::Object(map) => map.values().for_each(walk),
                Value::Array(items) => items.iter().for_each(walk),
                _ => {}
            }
        }
        walk(&signatures());
    }

    #[test]
    fn unknown_methods_are_named() {
        let context = Context {
            root: "/nonexistent".into(),
            launcher: crate::Launcher::current(),
        };
        let error = call("reboot", &Arguments::default(), &context).unwrap_err();
        assert!(
            error.to_string().starts_with(
                "unknown method `reboot`; the object `attendant` has: info, channels, packages"
            ),
            "{error}"
        );
    }
}
