//! The last `check` result, kept so that callers which only want to know "is there an upgrade?"
//! do not make every one of their calls ask the upgrade server.
//!
//! LuCI's Status page calls every include's `load()` every few seconds (its poll interval, 5 s
//! by default) for as long as the page is open, and the app's include asks `check`. Without a
//! cache every router with that page open would ask the upgrade server each time. A caller that
//! can live with an older answer passes `max_age` (seconds); when the stored result of a check
//! with the same arguments and the same configuration is younger than that, it is answered
//! without asking the server. Without `max_age` (the Overview's "Check for upgrade") the server
//! is always asked, and the fresh answer replaces the stored one.
//!
//! A failed check (server down, an error answer, a refused version) is stored the same way: the
//! page polls just as often while the server fails, and each poll must not become a request.
//!
//! Every `check` reply carries `checked_at` (unix seconds of the check that produced it) and
//! `cached` (whether it came from here); an error reply carries them in its `error` object,
//! beside `code` and `message`. The file is
//! `/var/run/attendant/check-cache.json`, next to the job's state: on tmpfs, so a reboot (and
//! with it every firmware upgrade) forgets it. It is written to a temporary file that is then
//! renamed, so a reader sees the old result or the new one, never half of one. A missing,
//! unreadable or damaged file is a miss, never an error: the server is asked instead.
//!
//! The key also holds a fingerprint of the router's own state that the answer depends on
//! without any argument or setting changing: the package database (installing a package the
//! channel build's recipe lacks turns the published image into an attended build, and changes
//! the build API's package table) and the running image's `channel.json`.
//!
//! ```json
//! {"key": {"arguments": {...}, "configuration": {...}, "router": {...}}, "checked_at": 1767225600, "reply": {...}}
//! ```

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use attendant::atomic::write_atomic;
use attendant::config::Settings;
use attendant::download::{DownloadError, hex, sha256_file};
use attendant_proto::wire;
use ring::digest;
use serde_json::{Map, Value, json};

use crate::jobs::{STATE_DIR, StartOptions};

/// The cache file in [`STATE_DIR`].
pub const CACHE_FILE: &str = "check-cache.json";

/// Largest cache file read. A check of a router with a few hundred packages is well below
/// 200 KB; anything bigger was not written by us.
pub const MAX_CACHE_FILE_LEN: u64 = 1024 * 1024;

/// The stored result of one set of `check` arguments on one router.
#[derive(Debug, Clone)]
pub struct CheckCache {
    path: PathBuf,
    key: Value,
    now: u64,
}

impl CheckCache {
    /// The cache of the router under `root`, for a check with `options` under `settings`;
    /// `init_script` is the content of the uci-defaults script the build would carry.
    pub fn new(
        root: &Path,
        options: &StartOptions,
        settings: &Settings,
        init_script: Option<&str>,
    ) -> Self {
        Self::at(
            root,
            key(options, settings, init_script, &router_state(root)),
            unix_now(),
        )
    }

    fn at(root: &Path, key: Value, now: u64) -> Self {
        Self {
            path: attendant_proto::wire::under_root(root, STATE_DIR).join(CACHE_FILE),
            key,
            now,
        }
    }

    /// The stored reply, marked `cached`, when it answers the same check and is at most
    /// `max_age` seconds old; `None` without `max_age`.
    pub fn fresh(&self, max_age: Option<u32>) -> Option<Value> {
        let max_age = u64::from(max_age?);
        let mut stored = match self.load() {
            Ok(stored) => stored?,
            Err(error) => {
                log::debug!(
                    "ignoring the check cache `{}`: {error}",
                    self.path.display()
                );
                return None;
            }
        };
        if stored.get("key") != Some(&self.key) {
            return None;
        }
        let checked_at = stored.get("checked_at").and_then(Value::as_u64)?;
        // A result from the future (the clock was set back, as on a router without a
        // battery-backed clock before NTP) has no age we can trust.
        let age = self.now.checked_sub(checked_at)?;
        if age > max_age {
            return None;
        }
        let mut reply = stored.get_mut("reply").map(Value::take)?;
        let object = stamped_object(&mut reply)?;
        object.insert("checked_at".to_owned(), checked_at.into());
        object.insert("cached".to_owned(), true.into());
        Some(reply)
    }

    /// Marks a fresh `reply` with its time and stores it for later callers. A failed write
    /// only costs the next caller a question to the server, so it is logged, not returned.
    /// An error reply (`{"error": {...}}`) is stored too and marked inside its `error` object.
    pub fn store(&self, mut reply: Value) -> Value {
        if let Some(object) = stamped_object(&mut reply) {
            object.insert("checked_at".to_owned(), self.now.into());
            object.insert("cached".to_owned(), false.into());
        }
        let entry = json!({"key": self.key, "checked_at": self.now, "reply": reply});
        if let Err(error) = self.save(&entry) {
            log::warn!(
                "cannot store the check result in `{}`: {error}",
                self.path.display()
            );
        }
        reply
    }

    /// The stored entry; `None` when there is none. A damaged file is an `InvalidData` error.
    fn load(&self) -> io::Result<Option<Value>> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error),
        };
        let mut bytes = Vec::new();
        file.take(MAX_CACHE_FILE_LEN.saturating_add(1))
            .read_to_end(&mut bytes)?;
        if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_CACHE_FILE_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("larger than {MAX_CACHE_FILE_LEN} bytes"),
            ));
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
    }

    /// Stores `entry` atomically: a reader sees the old result or the new one, never half.
    fn save(&self, entry: &Value) -> io::Result<()> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir)?;
        }
        write_atomic(&self.path, &serde_json::to_vec(entry)?)
    }
}

/// The object that carries `checked_at` and `cached`: an error reply's `error` object (an error
/// reply holds only `error`), else the reply itself.
fn stamped_object(reply: &mut Value) -> Option<&mut Map<String, Value>> {
    let object = reply.as_object_mut()?;
    if object.contains_key("error") {
        return object.get_mut("error")?.as_object_mut();
    }
    Some(object)
}

/// What makes two checks the same question: the call's arguments after parsing (so `["a, b"]`
/// and `["a", "b"]` match), every setting the check reads and the router's own state
/// ([`router_state`]). A changed server or package list in the configuration is a new
/// question. `keep_settings` is in it because it changes a check warning; the init script by
/// its SHA-256, because editing the script at the same path changes the build the check
/// describes.
fn key(
    options: &StartOptions,
    settings: &Settings,
    init_script: Option<&str>,
    router: &Value,
) -> Value {
    json!({
        "arguments": {
            "version": options.version,
            "add": options.add,
            "remove": options.remove,
            "fstype": options.fstype,
            "rootfs_size": options.rootfs_size,
            "force": options.force,
            "channel": options.channel,
            "percentage": options.percentage,
            "prebuilt": options.prebuilt,
        },
        "configuration": {
            "server": settings.server,
            "add": settings.add,
            "remove": settings.remove,
            "ignored_defaults": settings.ignored_defaults,
            "ignored_changes": settings.ignored_changes,
            "fstype": settings.fstype,
            "rootfs_size": settings.rootfs_size,
            "init_script": settings.init_script,
            "keep_settings": settings.keep_settings,
            "channel": settings.channel,
        },
        "init_script_sha256": init_script.map(|script| {
            hex(digest::digest(&digest::SHA256, script.as_bytes()).as_ref())
        }),
        "router": router,
    })
}

/// The files under `root` whose content the answer depends on: the package database (opkg's,
/// or apk's installed list and world) and the running image's channel stamp.
const ROUTER_STATE_FILES: [&str; 4] = [
    wire::OPKG_STATUS_PATH,
    wire::APK_INSTALLED_PATH,
    wire::APK_WORLD_PATH,
    wire::CHANNEL_STAMP_PATH,
];

/// Each of [`ROUTER_STATE_FILES`] by its SHA-256 and length: `null` when it does not exist,
/// `"unreadable"` when it cannot be read (the check then fails reading it, and that failure is
/// what gets stored). Hashing streams the file, so a large opkg status costs no memory; it
/// costs one read of a file the check itself reads anyway.
fn router_state(root: &Path) -> Value {
    let files: Map<String, Value> = ROUTER_STATE_FILES
        .iter()
        .map(|absolute| {
            let path = wire::under_root(root, absolute);
            let fingerprint = match sha256_file(&path) {
                Ok((sha256, len)) => json!({"sha256": sha256, "len": len}),
                Err(DownloadError::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound =>
                {
                    Value::Null
                }
                Err(error) => {
                    log::debug!(
                        "the check cache cannot fingerprint `{}`: {error}",
                        path.display()
                    );
                    Value::from("unreadable")
                }
            };
            ((*absolute).to_owned(), fingerprint)
        })
        .collect();
    Value::Object(files)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply() -> Value {
        json!({"verdict": "upgrade_available", "target": {"version": "24.10.6"}})
    }

    fn cache(root: &Path, arguments: &str, now: u64) -> CheckCache {
        CheckCache::at(root, json!({"arguments": arguments}), now)
    }

    #[test]
    fn a_stored_result_is_answered_within_max_age_and_marked_cached() {
        let root = tempfile::tempdir().unwrap();
        let stored = cache(root.path(), "a", 1000).store(reply());
        assert_eq!(stored["checked_at"], 1000);
        assert_eq!(stored["cached"], false);
        let hit = cache(root.path(), "a", 1600).fresh(Some(600)).unwrap();
        assert_eq!(hit["verdict"], "upgrade_available");
        assert_eq!(hit["checked_at"], 1000);
        assert_eq!(hit["cached"], true);
        assert!(
            attendant_proto::wire::under_root(root.path(), STATE_DIR)
                .join(CACHE_FILE)
                .is_file()
        );
    }

    #[test]
    fn an_older_result_or_no_max_age_asks_the_server() {
        let root = tempfile::tempdir().unwrap();
        cache(root.path(), "a", 1000).store(reply());
        assert!(cache(root.path(), "a", 1601).fresh(Some(600)).is_none());
        assert!(cache(root.path(), "a", 1000).fresh(None).is_none());
        assert!(cache(root.path(), "a", 1000).fresh(Some(0)).is_some());
    }

    #[test]
    fn only_the_same_arguments_reuse_a_result() {
        let root = tempfile::tempdir().unwrap();
        cache(root.path(), "a", 1000).store(reply());
        assert!(cache(root.path(), "b", 1000).fresh(Some(600)).is_none());
        let settings = Settings::default();
        let plain = key(&StartOptions::default(), &settings, None, &Value::Null);
        let forced = key(
            &StartOptions {
                force: true,
                ..StartOptions::default()
            },
            &settings,
            None,
            &Value::Null,
        );
        assert_ne!(plain, forced);
        let mut other_server = Settings::default();
        other_server.server = "https://asu.example.org".to_owned();
        assert_ne!(
            plain,
            key(&StartOptions::default(), &other_server, None, &Value::Null)
        );
    }

    #[test]
    fn keep_settings_and_the_init_script_content_are_part_of_the_question() {
        let mut settings = Settings::default();
        settings.init_script = Some("/etc/attendant-defaults.sh".into());
        let options = StartOptions::default();
        let plain = key(&options, &settings, Some("echo one\n"), &Value::Null);
        assert_eq!(
            plain,
            key(&options, &settings, Some("echo one\n"), &Value::Null)
        );
        // The same path with another content is another build.
        assert_ne!(
            plain,
            key(&options, &settings, Some("echo two\n"), &Value::Null)
        );
        assert_ne!(plain, key(&options, &settings, None, &Value::Null));
        let mut discarding = settings.clone();
        discarding.keep_settings = !settings.keep_settings;
        assert_ne!(
            plain,
            key(&options, &discarding, Some("echo one\n"), &Value::Null)
        );
    }

    #[test]
    fn the_package_database_and_the_channel_stamp_are_part_of_the_question() {
        let root = tempfile::tempdir().unwrap();
        let write = |absolute: &str, bytes: &[u8]| {
            let path = wire::under_root(root.path(), absolute);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, bytes).unwrap();
        };
        let none = router_state(root.path());
        assert!(
            none.as_object().unwrap().values().all(Value::is_null),
            "{none}"
        );
        write(wire::OPKG_STATUS_PATH, b"Package: luci\nVersion: 1\n");
        let one = router_state(root.path());
        assert_ne!(one, none);
        assert_eq!(one, router_state(root.path()));
        assert_eq!(one[wire::OPKG_STATUS_PATH]["len"], 25);
        write(
            wire::OPKG_STATUS_PATH,
            b"Package: luci\nVersion: 1\n\nPackage: htop\nVersion: 3\n",
        );
        let two = router_state(root.path());
        assert_ne!(two, one);
        write(
            wire::CHANNEL_STAMP_PATH,
            b"{\"channel\":\"stable\",\"build\":5}",
        );
        assert_ne!(router_state(root.path()), two);
        // A directory where a file should be cannot be read: not a miss of the file, and not
        // an error either.
        fs::create_dir_all(wire::under_root(root.path(), wire::APK_WORLD_PATH)).unwrap();
        assert_eq!(
            router_state(root.path())[wire::APK_WORLD_PATH],
            "unreadable"
        );
    }

    #[test]
    fn a_failed_check_is_stored_and_reused_within_max_age() {
        let root = tempfile::tempdir().unwrap();
        let failed = json!({"error": {"code": "server", "message": "cannot reach the server"}});
        let stored = cache(root.path(), "a", 1000).store(failed);
        assert_eq!(
            stored,
            json!({"error": {"code": "server", "message": "cannot reach the server",
                             "checked_at": 1000, "cached": false}})
        );
        let hit = cache(root.path(), "a", 1600).fresh(Some(600)).unwrap();
        assert_eq!(
            hit,
            json!({"error": {"code": "server", "message": "cannot reach the server",
                             "checked_at": 1000, "cached": true}})
        );
        assert!(cache(root.path(), "a", 1601).fresh(Some(600)).is_none());
        assert!(cache(root.path(), "a", 1600).fresh(None).is_none());
        // A later answer replaces the failure.
        cache(root.path(), "a", 1700).store(reply());
        let answer = cache(root.path(), "a", 1700).fresh(Some(600)).unwrap();
        assert_eq!(answer["verdict"], "upgrade_available");
    }

    #[test]
    fn a_result_from_the_future_is_not_trusted() {
        let root = tempfile::tempdir().unwrap();
        cache(root.path(), "a", 5000).store(reply());
        assert!(cache(root.path(), "a", 1000).fresh(Some(3600)).is_none());
    }

    #[test]
    fn a_damaged_or_oversized_file_is_a_miss_and_is_replaced() {
        let root = tempfile::tempdir().unwrap();
        let dir = attendant_proto::wire::under_root(root.path(), STATE_DIR);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(CACHE_FILE), b"{\"key\": ").unwrap();
        assert!(cache(root.path(), "a", 1000).fresh(Some(600)).is_none());
        let huge = vec![b' '; usize::try_from(MAX_CACHE_FILE_LEN).unwrap() + 1];
        fs::write(dir.join(CACHE_FILE), huge).unwrap();
        assert!(cache(root.path(), "a", 1000).fresh(Some(600)).is_none());
        cache(root.path(), "a", 1000).store(reply());
        assert!(cache(root.path(), "a", 1000).fresh(Some(600)).is_some());
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .filter(|name| name.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn an_unwritable_state_directory_still_answers_the_fresh_result() {
        let root = tempfile::tempdir().unwrap();
        // A file where the directory should be: the write fails, the reply does not.
        fs::create_dir_all(root.path().join("var/run")).unwrap();
        fs::write(
            attendant_proto::wire::under_root(root.path(), STATE_DIR),
            b"",
        )
        .unwrap();
        let stored = cache(root.path(), "a", 1000).store(reply());
        assert_eq!(stored["cached"], false);
        assert!(cache(root.path(), "a", 1000).fresh(Some(600)).is_none());
    }
}
