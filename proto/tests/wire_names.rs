//! Every router path and environment variable named in `proto/src/wire.rs` is spelt out there
//! only: this test fails when another crate's code writes one of them as a string literal again
//! (`"/etc/config/system"`, or root-relative `"etc/config/system"`), so a rename cannot leave a
//! stale copy behind. Test code is not checked: a test may pin the value on purpose.

use std::path::{Path, PathBuf};

/// The source directories checked, relative to the workspace root: the code that runs on the
/// router or the server, and the test fixtures that fake a router. `xtask` (packaging) is not
/// among them: it spells paths relative to a package's root, and its own test ties them to the
/// ones here.
const SOURCE_DIRS: [&str; 5] = [
    "proto/src",
    "agent/src",
    "ubus-bridge/src",
    "server/src",
    "tests/src",
];

#[test]
fn wire_names_are_spelt_out_only_in_wire_rs() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let wire_rs = workspace.join("proto/src/wire.rs");
    let names = declared_names(&std::fs::read_to_string(&wire_rs).unwrap());
    assert!(
        names.len() >= 30,
        "found only {} names in wire.rs: {names:?}",
        names.len()
    );

    let mut files = Vec::new();
    for dir in SOURCE_DIRS {
        let dir = workspace.join(dir);
        rust_files(&dir, &mut files)
            .unwrap_or_else(|error| panic!("cannot list `{}`: {error}", dir.display()));
    }
    assert!(files.len() >= 50, "found only {} source files", files.len());

    let mut found = Vec::new();
    for file in files
        .iter()
        .filter(|file| !file.ends_with("proto/src/wire.rs"))
    {
        let text = std::fs::read_to_string(file).unwrap();
        for (line, literal) in repeated_literals(&text, &names) {
            found.push(format!(
                "{}:{line}: {literal}",
                file.strip_prefix(&workspace).unwrap_or(file).display()
            ));
        }
    }
    assert!(
        found.is_empty(),
        "use the constant from `attendant_proto::wire` (with `wire::under_root` for a path \
         under a router root) instead of these literals:\n{}",
        found.join("\n")
    );
}

#[test]
fn finds_a_repeated_path_in_either_spelling_and_only_outside_tests() {
    let names = declared_names(
        "/// doc\npub const STATE_PATH: &str = \"/var/run/attendant/state.json\";\n\
         pub const TMP_DIR: &str = \"/tmp\";\npub const X_ENV: &str = \"ATTENDANT_X\";\n\
         pub const UCI_PACKAGE: &str = \"attendedsysupgrade\";\n",
    );
    assert_eq!(
        names,
        [
            "/var/run/attendant/state.json",
            "var/run/attendant/state.json",
            "ATTENDANT_X"
        ]
    );
    let code = "fn a() {\n    root.join(\"var/run/attendant/state.json\");\n    \
                // \"/var/run/attendant/state.json\" in a comment\n    \
                let tmp = \"/tmp\"; let e = \"ATTENDANT_X\";\n}\n\
                #[cfg(test)]\nmod tests {\n    const P: &str = \"/var/run/attendant/state.json\";\n}\n";
    assert_eq!(
        repeated_literals(code, &names),
        [
            (2, "\"var/run/attendant/state.json\"".to_owned()),
            (4, "\"ATTENDANT_X\"".to_owned()),
        ]
    );
}

/// The literals to look for: each absolute path with at least two components declared in
/// `wire.rs`, in both spellings, and each `*_ENV` name. One-component paths (`/tmp`) are too
/// common in other senses to flag.
fn declared_names(wire_rs: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in wire_rs.lines() {
        let Some(rest) = line.trim().strip_prefix("pub const ") else {
            continue;
        };
        let Some((name, value)) = rest.split_once(": &str = \"") else {
            continue;
        };
        let Some(value) = value.strip_suffix("\";") else {
            continue;
        };
        if let Some(relative) = value.strip_prefix('/')
            && relative.contains('/')
        {
            names.push(value.to_owned());
            names.push(relative.to_owned());
        } else if name.ends_with("_ENV") {
            names.push(value.to_owned());
        }
    }
    names
}

/// `(line number, literal)` for each string literal in the non-test code of `text` that is
/// exactly one of `names`. Test modules (`#[cfg(test)] mod …`, conventionally last in a file)
/// and whole-line comments are skipped.
fn repeated_literals(text: &str, names: &[String]) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((index, line)) = lines.next() {
        let trimmed = line.trim();
        if trimmed == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|(_, next)| next.trim_start().starts_with("mod "))
        {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        for name in names {
            let literal = format!("\"{name}\"");
            if line.contains(&literal) {
                found.push((index + 1, literal));
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<Vec<_>, _>>()?;
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // Test-only modules kept in their own files.
        if name == "tests" || name == "tests.rs" {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
    Ok(())
}
