//! Every router path and environment variable named in `proto/src/wire.rs` is spelt out there
//! only: this test fails when another crate's code writes one of them as a string literal again
//! (`"/etc/config/system"`, or root-relative `"etc/config/system"`), so a rename cannot leave a
//! stale copy behind. Test code is not checked: a test may pin the value on purpose.

#![expect(
    clippy::indexing_slicing,
    reason = "the literal scanner indexes within bounds it checked; a slip should fail the test loudly"
)]

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

/// Literals that must stay spelt out, with the reason: `(file, literal, why)`.
const SPELT_OUT: [(&str, &str, &str); 1] = [(
    "agent/src/cli/status.rs",
    "\"The state lives in /var/run/attendant/state.json and is lost at reboot.\"",
    "argh's `note` attribute takes only a string literal, not a constant or `concat!`",
)];

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
    let mut excused = [false; SPELT_OUT.len()];
    for file in files
        .iter()
        .filter(|file| !file.ends_with("proto/src/wire.rs"))
    {
        let text = std::fs::read_to_string(file).unwrap();
        let relative = file.strip_prefix(&workspace).unwrap_or(file);
        for (line, literal) in repeated_literals(&text, &names) {
            let place = relative.to_string_lossy();
            if let Some(kept) = SPELT_OUT
                .iter()
                .position(|(file, kept, _)| *file == place && *kept == literal)
            {
                excused[kept] = true;
                continue;
            }
            found.push(format!("{}:{line}: {literal}", relative.display()));
        }
    }
    let stale: Vec<_> = SPELT_OUT
        .iter()
        .zip(excused)
        .filter(|(_, seen)| !seen)
        .map(|((file, literal, _), _)| format!("{file}: {literal}"))
        .collect();
    assert!(
        stale.is_empty(),
        "SPELT_OUT lists literals no longer there; remove them:\n{}",
        stale.join("\n")
    );
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

#[test]
fn finds_an_absolute_path_inside_a_longer_literal_only_where_it_stands_alone() {
    let names = declared_names(
        "pub const UCI_SYSTEM_CONFIG_PATH: &str = \"/etc/config/system\";\n\
         pub const UCI_DEFAULTS_DIR: &str = \"/etc/uci-defaults\";\n",
    );
    let code = r##"fn a() {
    log::warn!("cannot read /etc/config/system: {error}");
    let rom = "/rom/etc/uci-defaults/99-asu-defaults";
    let unit = "/etc/config/systemd";
    let below = "/etc/uci-defaults/99-asu-defaults";
    let relative = "root/etc/config/system";
    let raw = r#"see /etc/config/system."#;
    let quote = '"'; let end = "ends at /etc/config/system";
    // "cannot read /etc/config/system" in a comment
}
"##;
    assert_eq!(
        repeated_literals(code, &names),
        [
            (2, "\"cannot read /etc/config/system: {error}\"".to_owned()),
            (5, "\"/etc/uci-defaults/99-asu-defaults\"".to_owned()),
            (7, "\"see /etc/config/system.\"".to_owned()),
            (8, "\"ends at /etc/config/system\"".to_owned()),
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

/// `(line number, literal)` for each string literal in the non-test code of `text` that is one
/// of `names`, or holds an absolute one of them inside longer text (`"cannot read
/// /etc/config/system: {error}"`). Test modules (`#[cfg(test)] mod …`, conventionally last in
/// a file) and comments are skipped.
///
/// Inside longer text a name counts only where it stands alone as a path: not preceded by a
/// path character (so `/rom/etc/uci-defaults` is not `/etc/uci-defaults`) and not continued by
/// one (so `/etc/config/systemd` is not `/etc/config/system`); a `/` after it is a path below
/// it, spelt out again, and counts. Root-relative spellings count only as a whole literal:
/// inside text, `etc/config/system` is too often a piece of some other path.
fn repeated_literals(text: &str, names: &[String]) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (line, literal) in string_literals(non_test_code(text)) {
        let exact = names.contains(&literal);
        let inside = names
            .iter()
            .filter(|name| name.starts_with('/'))
            .any(|name| stands_alone(&literal, name));
        if exact || inside {
            found.push((line, format!("\"{literal}\"")));
        }
    }
    found
}

/// `text` up to its test module.
fn non_test_code(text: &str) -> &str {
    let mut offset = 0;
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod "))
        {
            return &text[..offset];
        }
        offset += line.len();
    }
    text
}

/// `(line number, content)` of each string literal (plain or raw) outside comments, escapes
/// left as written.
fn string_literals(code: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = code.chars().collect();
    let mut literals = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\n' => line += 1,
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            // A character literal holding a quote: `'"'` or `'\''`.
            '\'' if chars.get(i + 2) == Some(&'\'') => i += 2,
            '\'' if chars.get(i + 1) == Some(&'\\') && chars.get(i + 3) == Some(&'\'') => i += 3,
            'r' if !chars
                .get(i.wrapping_sub(1))
                .is_some_and(|c| c.is_alphanumeric() || *c == '_')
                && matches!(chars.get(i + 1), Some('"' | '#')) =>
            {
                let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
                if chars.get(i + 1 + hashes) == Some(&'"') {
                    let start = i + 2 + hashes;
                    let closing: Vec<char> = std::iter::once('"')
                        .chain(std::iter::repeat_n('#', hashes))
                        .collect();
                    let mut end = start;
                    while end < chars.len() && !chars[end..].starts_with(&closing) {
                        end += 1;
                    }
                    let content: String = chars[start..end.min(chars.len())].iter().collect();
                    literals.push((line, content.clone()));
                    line += content.matches('\n').count();
                    i = end + closing.len();
                    continue;
                }
            }
            '"' => {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && chars[end] != '"' {
                    end += if chars[end] == '\\' { 2 } else { 1 };
                }
                let content: String = chars[start..end.min(chars.len())].iter().collect();
                literals.push((line, content.clone()));
                line += content.matches('\n').count();
                i = end + 1;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    literals
}

/// Whether `name` occurs in `literal` as a path of its own (see [`repeated_literals`]).
fn stands_alone(literal: &str, name: &str) -> bool {
    let path_char = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '~');
    literal.match_indices(name).any(|(at, _)| {
        let before = literal[..at].chars().next_back();
        let mut after = literal[at + name.len()..].chars();
        let next = after.next();
        let continued = match next {
            Some('/') | None => false,
            // A sentence may end right after the path.
            Some('.') => after.next().is_some_and(|c| c.is_alphanumeric()),
            Some(c) => path_char(c),
        };
        !before.is_some_and(path_char) && !continued
    })
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
