#!/usr/bin/env python3
"""Find import cycles between the modules of each crate in the workspace.

A cycle (module `a` uses `b`, `b` uses `a`, directly or through others) means neither module can
be read, tested or moved without the other; we keep every crate's module graph acyclic.

The graph is built from the source text, not from the compiler: for every module (one `.rs` file
under `src/`, `mod.rs` naming its directory) each path that starts with `crate::` or `super::`,
in a `use` declaration (brace groups expanded) or anywhere in the code, is an edge to the module
the path leads to: the longest prefix of the path that names a module file, or, for an item
re-exported from the crate root, the module its `pub use` points at. Comments and string
literals are ignored. A module's use of its own submodules is not an edge, however it is
spelt (`child::Item`, `self::child`, `crate::this::child`): a parent owns what it declares, and
only a child reaching back up or a module reaching sideways can close a cycle. Paths inside an
inline `mod tests { … }` are left out: a test module is a module of its own that nothing
imports, so it can close no cycle, and a test may well check its module through the crate's
top-level error type.

Binary roots (`src/main.rs` beside a `src/lib.rs`, `src/bin/*.rs`) use the library by its crate
name and are left out; a crate without `lib.rs` is rooted at `main.rs`.

Usage: scripts/module-cycles.py [--verbose] [CRATE_DIR...] | --self-test
  With no CRATE_DIR, every member of the workspace's Cargo.toml and `fuzz/` are checked.
  Prints each crate's module and edge count and every cycle with the lines that make it.
  Exit status: 0 without cycles, 1 when a crate has a cycle, 2 on a usage or input error.
"""

import re
import sys
import tomllib
from pathlib import Path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
# A path with at least one `::` after `crate` or `super` (`pub(crate)` has none).
PATH = re.compile(rf"\b(?:crate|super)(?:::(?:{IDENT}))+")


def main(argv):
    if argv == ["--self-test"]:
        return self_test()
    verbose = "--verbose" in argv
    args = [a for a in argv if a != "--verbose"]
    if any(a.startswith("-") for a in args):
        print(__doc__, file=sys.stderr)
        return 2
    root = Path(__file__).resolve().parent.parent
    crates = [Path(a) for a in args] or workspace_crates(root)
    status = 0
    for crate in crates:
        src = crate / "src"
        if not src.is_dir():
            print(f"error: `{src}` is not a directory", file=sys.stderr)
            return 2
        graph = ModuleGraph(src)
        cycles = graph.cycles()
        label = crate.name if crate.is_absolute() else str(crate)
        print(f"{label}: {len(graph.modules)} modules, {graph.edge_count()} edges, "
              f"{len(cycles)} cycle{'s' if len(cycles) != 1 else ''}")
        for component in cycles:
            status = 1
            print(f"  cycle: {' <-> '.join(show(m) for m in component)}")
            members = set(component)
            for source in component:
                for target, evidence in sorted(graph.edges[source].items()):
                    if target in members:
                        where = ", ".join(evidence[:3]) + (" …" if len(evidence) > 3 else "")
                        print(f"    {show(source)} -> {show(target)}  ({where})")
        if verbose:
            for source in sorted(graph.edges):
                for target in sorted(graph.edges[source]):
                    print(f"  edge {show(source)} -> {show(target)}")
    return status


def workspace_crates(root):
    manifest = tomllib.loads((root / "Cargo.toml").read_text())
    members = manifest.get("workspace", {}).get("members", [])
    crates = [root / m for m in members]
    if (root / "fuzz" / "src").is_dir():
        crates.append(root / "fuzz")
    return crates


def show(module):
    return "::".join(module) if module else "crate"


class ModuleGraph:
    def __init__(self, src):
        self.src = src
        has_lib = (src / "lib.rs").is_file()
        self.modules = {}  # module path (tuple) -> file
        for file in sorted(src.rglob("*.rs")):
            relative = file.relative_to(src)
            parts = list(relative.parts)
            if parts[0] == "bin" or (has_lib and parts == ["main.rs"]):
                continue
            if parts in (["lib.rs"], ["main.rs"]):
                module = ()
            elif parts[-1] == "mod.rs":
                module = tuple(parts[:-1])
            else:
                module = tuple(parts[:-1]) + (parts[-1][:-3],)
            self.modules[module] = file
        self.reexports = self._root_reexports()
        self.edges = {m: {} for m in self.modules}
        for module, file in self.modules.items():
            text = strip_comments_and_strings(file.read_text())
            inline = inline_modules(text)
            for offset, line_number, path in paths_in(text):
                enclosing = tuple(name for name, start, end in inline if start <= offset < end)
                if "tests" in enclosing:
                    continue
                # Inside an inline module `super` is the file's module.
                scope = module + enclosing
                target = self.resolve(scope, path)
                # A module owns its submodules: using them is not an edge, however spelt.
                if target is not None and target[:len(module)] != module:
                    where = f"{file.relative_to(src.parent)}:{line_number}"
                    evidence = self.edges[module].setdefault(target, [])
                    if where not in evidence:
                        evidence.append(where)

    def _root_reexports(self):
        """Names the crate root re-exports (`pub use a::b::Name;`), mapped to their module."""
        root = self.modules.get(())
        if root is None:
            return {}
        names = {}
        text = strip_comments_and_strings(root.read_text())
        for match in re.finditer(r"\bpub\s+use\s+([^;]+);", text):
            for path in expand_use_tree(match.group(1)):
                segments = [s for s in path if s not in ("crate", "self")]
                module = self._longest_module(tuple(segments[:-1]))
                if segments and module:
                    names[segments[-1]] = module
        return names

    def _longest_module(self, segments):
        for end in range(len(segments), 0, -1):
            if tuple(segments[:end]) in self.modules:
                return tuple(segments[:end])
        return None

    def resolve(self, module, path):
        segments = list(path)
        if segments[0] == "crate":
            base = []
            segments = segments[1:]
        else:
            base = list(module)
            while segments and segments[0] == "super":
                if not base:
                    return None
                base.pop()
                segments = segments[1:]
        found = self._longest_module(tuple(base + segments))
        if found is not None:
            return found
        if not base and segments and segments[0] in self.reexports:
            return self.reexports[segments[0]]
        return tuple(base) if tuple(base) in self.modules else None

    def edge_count(self):
        return sum(len(targets) for targets in self.edges.values())

    def cycles(self):
        """Strongly connected components with more than one module (Tarjan, iterative)."""
        index = {}
        low = {}
        on_stack = set()
        stack = []
        components = []
        counter = 0
        for start in sorted(self.edges):
            if start in index:
                continue
            work = [(start, iter(sorted(self.edges[start])))]
            index[start] = low[start] = counter
            counter += 1
            stack.append(start)
            on_stack.add(start)
            while work:
                node, children = work[-1]
                child = next(children, None)
                if child is not None:
                    if child not in index:
                        index[child] = low[child] = counter
                        counter += 1
                        stack.append(child)
                        on_stack.add(child)
                        work.append((child, iter(sorted(self.edges[child]))))
                    elif child in on_stack:
                        low[node] = min(low[node], index[child])
                    continue
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
        return sorted(components)


def strip_comments_and_strings(text):
    """The text with comments, string and char literals blanked (newlines kept for line numbers)."""
    out = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end == -1 else end
            i = end
            continue
        if text.startswith("/*", i):
            depth = 0
            j = i
            while j < n:
                if text.startswith("/*", j):
                    depth += 1
                    j += 2
                elif text.startswith("*/", j):
                    depth -= 1
                    j += 2
                    if depth == 0:
                        break
                else:
                    j += 1
            out.append("\n" * text.count("\n", i, j))
            i = j
            continue
        raw = re.match(r'b?r(#*)"', text[i:i + 260]) if c in "br" else None
        if raw and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            closing = '"' + raw.group(1)
            start = i + raw.end()
            end = text.find(closing, start)
            end = n if end == -1 else end + len(closing)
            out.append('""' + "\n" * text.count("\n", i, end))
            i = end
            continue
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
            continue
        if c == "'":
            # A char literal ('a', '\n', '\u{1b}'), not a lifetime ('a).
            literal = re.match(r"'(?:\\(?:u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'])'", text[i:i + 12])
            if literal:
                out.append("' '")
                i += literal.end()
                continue
        out.append(c)
        i += 1
    return "".join(out)


def paths_in(text):
    """`(offset, line number, path segments)` for every `crate::`/`super::` path, `use` groups
    expanded."""
    found = []
    covered = []
    for match in re.finditer(r"\buse\s+([^;]+);", text):
        line = text.count("\n", 0, match.start()) + 1
        for path in expand_use_tree(match.group(1)):
            if path and path[0] in ("crate", "super"):
                found.append((match.start(), line, path))
        covered.append((match.start(), match.end()))
    for match in PATH.finditer(text):
        if any(start <= match.start() < end for start, end in covered):
            continue
        line = text.count("\n", 0, match.start()) + 1
        found.append((match.start(), line, match.group(0).split("::")))
    return found


def inline_modules(text):
    """`(name, start, end)` of every inline `mod name { … }`, outermost first."""
    found = []
    for match in re.finditer(rf"\bmod\s+({IDENT})\s*\{{", text):
        depth = 0
        for end in range(match.end() - 1, len(text)):
            if text[end] == "{":
                depth += 1
            elif text[end] == "}":
                depth -= 1
                if depth == 0:
                    break
        found.append((match.group(1), match.end(), end))
    return found


def expand_use_tree(tree):
    """`a::{b, c::{d, e}}` -> [[a, b], [a, c, d], [a, c, e]] (`as` renames and `*` dropped)."""
    tree = re.sub(rf"\s+as\s+{IDENT}", "", tree)
    tree = re.sub(r"\s+", "", tree)
    return [p for p in _expand(tree, []) if p]


def _expand(tree, prefix):
    if not tree:
        return [prefix]
    depth = 0
    for i, c in enumerate(tree):
        if c == "{":
            if depth == 0:
                head = tree[:i].rstrip(":")
                base = prefix + [s for s in head.split("::") if s]
                inner = tree[i + 1:tree.rindex("}")]
                result = []
                for item in split_top_level(inner):
                    if item == "self":
                        result.append(base)
                    else:
                        result.extend(_expand(item, base))
                return result
            depth += 1
        elif c == "}":
            depth -= 1
    segments = [s for s in tree.split("::") if s and s != "*"]
    return [prefix + segments]


def split_top_level(text):
    items, depth, current = [], 0, ""
    for c in text:
        if c == "," and depth == 0:
            items.append(current)
            current = ""
            continue
        depth += c == "{"
        depth -= c == "}"
        current += c
    items.append(current)
    return [i for i in items if i]


def self_test():
    """Checks the graph on small crates written to a temporary directory."""
    import tempfile

    def graph(files):
        with tempfile.TemporaryDirectory() as directory:
            src = Path(directory) / "src"
            for name, text in files.items():
                (src / name).parent.mkdir(parents=True, exist_ok=True)
                (src / name).write_text(text)
            return ModuleGraph(src)

    cyclic = graph({
        "lib.rs": "mod a; mod b; mod c; pub use a::Thing;",
        "a.rs": "use crate::b::{self, B as Renamed};\npub struct Thing;",
        "b.rs": "pub fn f() { crate::c::g() }",
        "c.rs": "// crate::a::Thing\nfn g() -> crate::Thing { todo() }\nconst S: &str = \"crate::b::f\";",
    })
    assert cyclic.cycles() == [[("a",), ("b",), ("c",)]], cyclic.cycles()
    acyclic = graph({
        "lib.rs": "mod p;",
        "p/mod.rs": "mod q; use q::Q;\n#[cfg(test)]\nmod tests { use super::*; use crate::p::q::Q; }",
        "p/q.rs": "use super::super::p;\nuse super::*;",
    })
    assert acyclic.cycles() == [], acyclic.cycles()
    assert acyclic.edges[("p", "q")] == {("p",): ["src/p/q.rs:1", "src/p/q.rs:2"]}, acyclic.edges
    assert acyclic.edges[("p",)] == {}, acyclic.edges
    tested = graph({
        "lib.rs": "mod a; mod b;",
        "a.rs": "use crate::b::B;\n#[cfg(test)]\nmod tests { use crate::b::B; }",
        "b.rs": "pub struct B;\n#[cfg(test)]\nmod tests { fn t() { crate::a::f() } }",
    })
    assert tested.cycles() == [], tested.cycles()
    assert tested.edges[("a",)] == {("b",): ["src/a.rs:1"]}, tested.edges
    print("self-test passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:
        # A reader that stops early (`| head`) is not an error; keep Python's exit flush quiet.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
