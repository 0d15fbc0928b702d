//! No import cycle between the modules of `attendant-server` and of `attendant-proto`: the graph
//! whose edges are the `use crate::…`, `use super::…` and `use self::…` imports outside test
//! modules has no cycle. A cycle means two modules can only be understood together; the next
//! feature then lands in both.

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a test fails loudly on unreadable sources; Tarjan's maps hold every visited module"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

#[test]
fn server_modules_import_each_other_without_cycles() {
    assert_no_cycle(&crate_dir("server/src"));
}

#[test]
fn proto_modules_import_each_other_without_cycles() {
    assert_no_cycle(&crate_dir("proto/src"));
}

#[test]
fn a_cycle_is_found() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    std::fs::write(dir.path().join("a.rs"), "use crate::b::B;\npub struct A;\n").unwrap();
    std::fs::write(
        dir.path().join("b.rs"),
        "use crate::{a::A, c};\npub struct B;\n#[cfg(test)]\nmod tests {\n    use crate::a::A;\n}\n",
    )
    .unwrap();
    let graph = graph(dir.path());
    assert_eq!(
        cycles(&graph),
        [vec![vec!["a".to_owned()], vec!["b".to_owned()]]]
    );
}

fn crate_dir(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

fn assert_no_cycle(root: &Path) {
    let graph = graph(root);
    assert!(graph.len() > 5, "no modules found under {}", root.display());
    let found = cycles(&graph);
    let shown: Vec<Vec<String>> = found
        .iter()
        .map(|cycle| cycle.iter().map(|module| module.join("::")).collect())
        .collect();
    assert!(found.is_empty(), "import cycles: {shown:?}");
}

/// Module → the modules it imports, for every `.rs` file under `root`.
fn graph(root: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut files = Vec::new();
    collect_files(root, &mut files);
    let modules: BTreeMap<Module, PathBuf> = files
        .into_iter()
        .filter(|file| file.file_name().is_some_and(|name| name != "main.rs"))
        .map(|file| (module_of(root, &file), file))
        .collect();
    modules
        .iter()
        .map(|(module, file)| {
            let source = std::fs::read_to_string(file).unwrap();
            let source = source
                .split("#[cfg(test)]\nmod tests")
                .next()
                .unwrap_or_default();
            let imports = use_paths(source)
                .into_iter()
                .filter_map(|path| resolve(module, &path, &modules))
                .filter(|target| target != module)
                .collect();
            (module.clone(), imports)
        })
        .collect()
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

/// `store/mod.rs` and `store.rs` → `["store"]`; `lib.rs` → `[]`.
fn module_of(root: &Path, file: &Path) -> Module {
    let relative = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Module = relative
        .components()
        .map(|part| part.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts
        .last()
        .is_some_and(|last| last == "lib" || last == "mod")
    {
        parts.pop();
    }
    parts
}

/// Every path of every `use` declaration, braces expanded (`a::{b, c::d}` → `a::b`, `a::c::d`),
/// comments dropped.
fn use_paths(source: &str) -> Vec<String> {
    let code: String = source
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let mut paths = Vec::new();
    let mut rest = code.as_str();
    while let Some(start) = find_use(rest) {
        let after = rest.get(start + 4..).unwrap_or_default();
        let end = after.find(';').unwrap_or(after.len());
        let tree = after.get(..end).unwrap_or_default().trim();
        // Only paths inside this crate matter; this also skips `use ` in message strings.
        if ["crate::", "super::", "self::"]
            .iter()
            .any(|start| tree.starts_with(start))
        {
            expand("", tree, &mut paths);
        }
        rest = after.get(end..).unwrap_or_default();
    }
    paths
}

/// The byte offset of the next `use ` that starts a declaration (not `fuse ` or `reuse `).
fn find_use(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = text[from..].find("use ") {
        let at = from + found;
        let before = text[..at].chars().next_back();
        if before.is_none_or(|c| !c.is_alphanumeric() && c != '_') {
            return Some(at);
        }
        from = at + 4;
    }
    None
}

fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let tree: String = tree.split_whitespace().collect();
    let Some(open) = tree.find('{') else {
        let path = tree.split("as").next().unwrap_or_default();
        out.push(format!("{prefix}{path}"));
        return;
    };
    let close = tree
        .rfind('}')
        .filter(|close| *close > open)
        .unwrap_or(tree.len());
    let head = tree.get(..open).unwrap_or_default();
    let inner = tree.get(open + 1..close).unwrap_or_default();
    let mut depth = 0;
    let mut item = String::new();
    for c in inner.chars().chain(std::iter::once(',')) {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                if !item.is_empty() {
                    expand(&format!("{prefix}{head}"), &item, out);
                }
                item.clear();
                continue;
            }
            _ => {}
        }
        item.push(c);
    }
}

/// The module a `crate::`/`super::`/`self::` path lands in (the longest module prefix).
fn resolve(from: &Module, path: &str, modules: &BTreeMap<Module, PathBuf>) -> Option<Module> {
    let mut parts = path.split("::").filter(|part| !part.is_empty());
    let mut base: Module = match parts.next()? {
        "crate" => Vec::new(),
        "self" => from.clone(),
        "super" => from[..from.len().saturating_sub(1)].to_vec(),
        _ => return None,
    };
    let mut rest: Vec<&str> = parts.collect();
    while rest.first() == Some(&"super") {
        base.pop();
        rest.remove(0);
    }
    let mut best = modules.contains_key(&base).then(|| base.clone());
    for part in rest {
        base.push(part.to_owned());
        if modules.contains_key(&base) {
            best = Some(base.clone());
        }
    }
    best
}

/// The strongly connected components with more than one module (Tarjan).
fn cycles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        found: Vec<Vec<Module>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, module: &'a Module) {
            let number = self.index.len();
            self.index.insert(module, number);
            self.low.insert(module, number);
            self.stack.push(module);
            for next in self.graph.get(module).into_iter().flatten() {
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[module].min(self.low[next]);
                    self.low.insert(module, low);
                } else if self.stack.contains(&next) {
                    let low = self.low[module].min(self.index[next]);
                    self.low.insert(module, low);
                }
            }
            if self.low[module] == self.index[module] {
                let mut component = Vec::new();
                while let Some(top) = self.stack.pop() {
                    component.push(top.clone());
                    if top == module {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for module in graph.keys() {
        if !walk.index.contains_key(module) {
            walk.visit(module);
        }
    }
    walk.found
}
