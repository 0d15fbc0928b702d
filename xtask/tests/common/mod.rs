//! What the binaries and the LuCI app expect on the router, checked against a set of installed
//! files (from the built packages or from the feed's Makefiles).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use attendant_proto::wire;

/// A file a package installs: its bytes (empty where unknown, e.g. a cargo binary) and mode, or
/// a symlink (mode 0777, no bytes) with its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Installed {
    pub(crate) contents: Vec<u8>,
    pub(crate) mode: u32,
    pub(crate) link: Option<String>,
}

impl Installed {
    pub(crate) fn file(contents: Vec<u8>, mode: u32) -> Self {
        Self {
            contents,
            mode,
            link: None,
        }
    }

    pub(crate) fn symlink(target: &str) -> Self {
        Self {
            contents: Vec::new(),
            mode: 0o777,
            link: Some(target.to_owned()),
        }
    }
}

/// The path a relative symlink at `path` points to (`..` resolved).
pub(crate) fn resolve(path: &str, target: &str) -> String {
    let mut parts: Vec<&str> = path.split('/').filter(|part| !part.is_empty()).collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            ".." => {
                parts.pop();
            }
            "." | "" => {}
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Router path (with a leading `/`) to the file installed there.
pub(crate) type Installs = BTreeMap<String, Installed>;

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

pub(crate) fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Every `.js` and `.rs` file under `dir`.
pub(crate) fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path
            .extension()
            .is_some_and(|ext| ext == "js" || ext == "rs")
        {
            out.push(path);
        }
    }
}

/// Every `'…'` or `"…"` literal in `text` that follows `marker`.
pub(crate) fn quoted_after(text: &str, marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices(marker) {
        let rest = &text[at + marker.len()..];
        let rest = rest.trim_start();
        let Some(quote) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') else {
            continue;
        };
        if let Some(end) = rest[1..].find(quote) {
            found.push(rest[1..1 + end].to_owned());
        }
    }
    found
}

/// `path` is an executable file, or a symlink to an installed executable file.
fn executable(installs: &Installs, path: &str) {
    let file = installs
        .get(path)
        .unwrap_or_else(|| panic!("`{path}` is not installed"));
    match &file.link {
        Some(target) => {
            let resolved = resolve(path, target);
            let pointee = installs.get(&resolved).unwrap_or_else(|| {
                panic!("`{path}` links to `{resolved}`, which is not installed")
            });
            assert!(pointee.link.is_none(), "`{resolved}` is a link too");
            assert_eq!(pointee.mode, 0o755, "`{resolved}` must be executable");
        }
        None => assert_eq!(file.mode, 0o755, "`{path}` must be executable"),
    }
}

/// The multi-call binary at `/usr/bin/attendant` and the plugin as a link to it.
fn check_multicall(installs: &Installs) {
    let binary = installs
        .get("/usr/bin/attendant")
        .unwrap_or_else(|| panic!("`/usr/bin/attendant` is not installed"));
    assert_eq!((binary.mode, binary.link.as_deref()), (0o755, None));
    assert_eq!(
        installs.get("/usr/libexec/rpcd/attendant"),
        Some(&Installed::symlink("../../bin/attendant")),
        "the rpcd plugin must be a link to the multi-call binary"
    );
    assert_eq!(
        resolve("/usr/libexec/rpcd/attendant", "../../bin/attendant"),
        "/usr/bin/attendant"
    );
}

fn json(installs: &Installs, path: &str) -> serde_json::Value {
    let file = &installs[path];
    serde_json::from_slice(&file.contents).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// Checks every runtime path and name the code uses against `installs`.
pub(crate) fn check_runtime(installs: &Installs) {
    let repo = repo();

    // The agent and the rpcd plugin. The multi-call binary acts as the plugin when started from
    // a directory named `PLUGIN_DIRECTORY_NAME` (`ubus-bridge/src/multicall.rs`), so the
    // installed plugin path (`wire::RPCD_PLUGIN_PATH`) must sit in a directory of that name.
    check_multicall(installs);
    executable(installs, "/usr/bin/attendant");
    executable(installs, wire::RPCD_PLUGIN_PATH);
    let multicall = read(&repo.join("ubus-bridge/src/multicall.rs"));
    let plugin_directory = quoted_after(&multicall, "PLUGIN_DIRECTORY_NAME: &str =");
    let installed_directory = Path::new(wire::RPCD_PLUGIN_PATH)
        .parent()
        .and_then(Path::file_name)
        .and_then(|name| name.to_str())
        .map(str::to_owned);
    assert_eq!(
        plugin_directory.first(),
        installed_directory.as_ref(),
        "the bridge recognises its plugin personality by a directory other than the one \
         `{}` is installed in",
        wire::RPCD_PLUGIN_PATH
    );

    // Every ubus object the LuCI views call is an installed plugin, and every method is granted
    // by an installed ACL.
    let mut views = Vec::new();
    sources(&repo.join("luci/htdocs"), &mut views);
    let mut calls = BTreeSet::new();
    for view in &views {
        let text = read(view);
        for declare in text.split("rpc.declare(").skip(1) {
            let declare = &declare[..declare.find('}').unwrap()];
            let object = quoted_after(declare, "object:").remove(0);
            let method = quoted_after(declare, "method:").remove(0);
            calls.insert((object, method));
        }
        // `'require attendant.logic'` loads /www/luci-static/resources/attendant/logic.js.
        for module in quoted_after(&text, "\n")
            .iter()
            .filter_map(|line| line.strip_prefix("require "))
        {
            let module = module.split(' ').next().unwrap();
            if module.contains('.') {
                let path = format!("/www/luci-static/resources/{}.js", module.replace('.', "/"));
                assert!(
                    installs.contains_key(&path),
                    "`{}` requires `{module}`: `{path}` is not installed",
                    view.display()
                );
            }
        }
    }
    assert!(
        calls.iter().any(|(object, _)| object == "attendant"),
        "no call to `attendant` found"
    );
    let acls: Vec<String> = installs
        .keys()
        .filter(|path| path.starts_with("/usr/share/rpcd/acl.d/"))
        .cloned()
        .collect();
    assert!(acls.iter().all(|path| path.ends_with(".json")));
    let mut granted = BTreeSet::new();
    let mut groups = BTreeSet::new();
    for acl in &acls {
        for (group, grants) in json(installs, acl).as_object().unwrap() {
            groups.insert(group.clone());
            for access in ["read", "write"] {
                let Some(ubus) = grants
                    .get(access)
                    .and_then(|grant| grant.get("ubus"))
                    .and_then(|u| u.as_object())
                else {
                    continue;
                };
                for (object, methods) in ubus {
                    for method in methods.as_array().unwrap() {
                        granted.insert((object.clone(), method.as_str().unwrap().to_owned()));
                    }
                }
            }
        }
    }
    for (object, method) in &calls {
        if object == "attendant" {
            executable(installs, &format!("/usr/libexec/rpcd/{object}"));
        }
        assert!(
            granted.contains(&(object.clone(), method.clone())),
            "no installed ACL grants `{object}.{method}`"
        );
    }

    // The menu: its ACL groups exist, and each view it opens is installed.
    let menu = "/usr/share/luci/menu.d/luci-app-attendant.json";
    assert!(installs.contains_key(menu), "`{menu}` is not installed");
    assert_eq!(installs[menu].mode, 0o644);
    let mut view_count = 0;
    for (node, entry) in json(installs, menu).as_object().unwrap() {
        for group in entry
            .pointer("/depends/acl")
            .and_then(|acl| acl.as_array())
            .into_iter()
            .flatten()
        {
            assert!(
                groups.contains(group.as_str().unwrap()),
                "menu `{node}` needs ACL group {group}, which no installed ACL defines"
            );
        }
        if entry.pointer("/action/type").and_then(|kind| kind.as_str()) == Some("view") {
            let view = entry.pointer("/action/path").unwrap().as_str().unwrap();
            let path = format!("/www/luci-static/resources/view/{view}.js");
            assert!(
                installs.contains_key(&path),
                "menu `{node}` opens `{path}`, which is not installed"
            );
            assert_eq!(installs[&path].mode, 0o644);
            view_count += 1;
        }
    }
    assert!(view_count >= 2, "the menu opens {view_count} views");
    assert!(
        installs.keys().any(|path| path
            .starts_with("/www/luci-static/resources/view/status/include/")
            && path.contains("attendant")),
        "the status-page include is not installed"
    );

    // UCI: the config file belongs to attendedsysupgrade-common; ours only adds its section.
    assert!(
        !installs.contains_key(wire::UCI_CONFIG_PATH),
        "`{}` belongs to attendedsysupgrade-common",
        wire::UCI_CONFIG_PATH
    );
    let defaults: Vec<_> = installs
        .iter()
        .filter(|(path, _)| path.starts_with("/etc/uci-defaults/"))
        .collect();
    assert_eq!(defaults.len(), 1, "expected one uci-defaults script");
    let (path, script) = defaults[0];
    assert_eq!(script.mode, 0o755, "{path}");
    let script = String::from_utf8(script.contents.clone()).unwrap();
    let section = format!("{}.{}", wire::UCI_PACKAGE, wire::UCI_SECTION_ATTENDANT);
    assert!(
        script.contains(&format!("uci -q get {section} ")),
        "{path} must not overwrite an existing section"
    );
    assert!(
        script.contains(&format!(
            "uci -q set {section}={}",
            wire::UCI_SECTION_ATTENDANT
        )),
        "{path} adds no `{section}`"
    );
    assert!(script.contains(&format!("uci -q commit {}", wire::UCI_PACKAGE)));
    assert!(script.contains(wire::UCI_CONFIG_PATH));

    // Data files are not executable, and nothing but programs and scripts is (links are 0777 and
    // checked through what they point to).
    for (path, file) in installs.iter().filter(|(_, file)| file.link.is_none()) {
        let program = path.starts_with("/usr/bin/")
            || path.starts_with("/usr/libexec/")
            || path.starts_with("/etc/uci-defaults/")
            || path.starts_with("/etc/init.d/");
        assert_eq!(
            file.mode,
            if program { 0o755 } else { 0o644 },
            "mode of `{path}`"
        );
    }
}
