//! The module graph, read from the sources: no cycles between files, and
//! no import from a lower layer up to a higher one. The layers are the list
//! in `src/lib.rs`'s `# Layers` section, so the documentation and this
//! check cannot drift apart.
//!
//! A file imports another when it names it by a `crate::` (or, in
//! `main.rs`, `distinctly::`) or `super::` path, in a `use` or in code.
//! Test code (`tests.rs` files and the `#[cfg(test)] mod tests` at the end
//! of a file) is left out, and so are the references between a module and
//! its own submodules (a `mod.rs` and its children use each other by
//! design).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path: `["kafka", "service", "split"]`; the crate root is empty.
type Module = Vec<String>;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every source file (test files left out) by module path.
fn modules() -> BTreeMap<Module, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src()).unwrap();
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            let last = parts.last().unwrap().clone();
            if last == "tests" {
                continue;
            }
            if last == "mod" || (parts.len() == 1 && last == "lib") {
                parts.pop();
            }
            out.insert(parts, path);
        }
    }
    out
}

/// The code of a file without comments, string contents and the test
/// module at its end.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            // A char literal, not a lifetime: '"' must not open a string.
            b'\'' if b.get(i + 2) == Some(&b'\'') => {
                i += 3;
            }
            b'\'' if b.get(i + 1) == Some(&b'\\') => {
                i += 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
            }
            c => {
                out.push(c as char);
                i += 1;
            }
        }
    }
    out
}

/// `use` trees expanded into paths: `a::{b, c::d}` -> `a::b`, `a::c::d`.
fn expand(tree: &str, prefix: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = format!("{prefix}{}", &tree[..open]);
        let inner = &tree[open + 1..tree.rfind('}').unwrap()];
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&inner[start..i], &head, out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand(&inner[start..], &head, out);
    } else if !tree.is_empty() {
        let path = tree.split(" as ").next().unwrap().trim();
        out.push(format!("{prefix}{path}"));
    }
}

/// The paths a file names: its `use` trees and `crate::`/`super::` paths
/// in code, each as written.
fn paths(code: &str, crate_name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().last();
        rest = &rest[at + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let end = rest.find(';').unwrap_or(rest.len());
        expand(&rest[..end].replace(['\n', ' '], ""), "", &mut out);
        rest = &rest[end..];
    }
    for start in [format!("{crate_name}::"), "super::".to_string()] {
        let mut from = 0;
        while let Some(at) = code[from..].find(&start) {
            let at = from + at;
            from = at + start.len();
            if code[..at]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
            {
                continue;
            }
            let path: String = code[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(path);
        }
    }
    out
}

/// The module a path names, resolved against the module `from` (the
/// longest prefix that is a file; `None` for other crates).
fn resolve(
    path: &str,
    from: &Module,
    crate_name: &str,
    known: &BTreeMap<Module, PathBuf>,
) -> Option<Module> {
    let mut parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
    let mut base: Module = match parts.first() {
        Some(&p) if p == crate_name => {
            parts.remove(0);
            Vec::new()
        }
        Some(&"super") => {
            let mut m = from.clone();
            while parts.first() == Some(&"super") {
                parts.remove(0);
                m.pop();
            }
            m
        }
        Some(&"self") => {
            parts.remove(0);
            from.clone()
        }
        _ => return None,
    };
    let mut best = base.clone();
    for p in parts {
        base.push(p.to_string());
        if known.contains_key(&base) {
            best = base.clone();
        }
    }
    Some(best)
}

/// The layers stated in `src/lib.rs`: top-level module -> layer index.
fn layers() -> BTreeMap<String, usize> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let section = lib
        .split("//! # Layers")
        .nth(1)
        .expect("src/lib.rs states its layers under `# Layers`");
    let mut out = BTreeMap::new();
    for line in section.lines().map(|l| l.trim_start_matches("//!").trim()) {
        if line.starts_with('#') {
            break;
        }
        let Some((number, rest)) = line.split_once(". ") else {
            continue;
        };
        let Ok(layer) = number.parse::<usize>() else {
            continue;
        };
        let names = rest.split_once(':').map_or(rest, |(_, n)| n);
        for name in names.split(',') {
            let name = name.trim().trim_matches('`').trim_end_matches('.');
            if !name.is_empty() {
                out.insert(name.to_string(), layer);
            }
        }
    }
    out
}

fn is_ancestor(a: &Module, b: &Module) -> bool {
    a.len() <= b.len() && b[..a.len()] == a[..]
}

/// Every import edge between files (`from` -> `to`).
fn edges() -> BTreeSet<(Module, Module)> {
    let known = modules();
    let mut edges = BTreeSet::new();
    for (module, path) in &known {
        let main = path.ends_with("main.rs") && module.len() == 1;
        let crate_name = if main { "distinctly" } else { "crate" };
        // `main.rs` is a crate of its own: its `distinctly::` paths start
        // from the library's root.
        let from: Module = if main {
            vec!["main".into()]
        } else {
            module.clone()
        };
        for p in paths(&code(path), crate_name) {
            let Some(to) = resolve(&p, &from, crate_name, &known) else {
                continue;
            };
            if to.is_empty() || is_ancestor(&to, &from) || is_ancestor(&from, &to) {
                continue;
            }
            edges.insert((from.clone(), to));
        }
    }
    edges
}

fn name(m: &Module) -> String {
    m.join("::")
}

/// Strongly connected components of more than one file.
fn cycles(edges: &BTreeSet<(Module, Module)>) -> Vec<Vec<Module>> {
    let nodes: BTreeSet<&Module> = edges.iter().flat_map(|(a, b)| [a, b]).collect();
    let reach = |from: &Module| -> BTreeSet<Module> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(n) = stack.pop() {
            for (a, b) in edges {
                if *a == n && seen.insert(b.clone()) {
                    stack.push(b.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&Module, BTreeSet<Module>> =
        nodes.iter().map(|n| (*n, reach(n))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for n in &nodes {
        if done.contains(*n) || !reachable[n].contains(*n) {
            continue;
        }
        let component: Vec<Module> = nodes
            .iter()
            .filter(|m| reachable[n].contains(**m) && reachable[*m].contains(*n))
            .map(|m| (*m).clone())
            .collect();
        done.extend(component.iter().cloned());
        out.push(component);
    }
    out
}

#[test]
fn the_module_graph_has_no_cycles() {
    let edges = edges();
    let found: Vec<String> = cycles(&edges)
        .iter()
        .map(|c| {
            let members: BTreeSet<&Module> = c.iter().collect();
            let inside: Vec<String> = edges
                .iter()
                .filter(|(a, b)| members.contains(a) && members.contains(b))
                .map(|(a, b)| format!("{} -> {}", name(a), name(b)))
                .collect();
            inside.join(", ")
        })
        .collect();
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn no_module_imports_from_a_higher_layer() {
    let layers = layers();
    let known = modules();
    let top = |m: &Module| m.first().cloned().unwrap_or_default();
    // Every top-level module has a layer.
    let mut unplaced: Vec<String> = known
        .keys()
        .filter(|m| !m.is_empty())
        .map(top)
        .filter(|t| !layers.contains_key(t))
        .collect();
    unplaced.dedup();
    assert!(
        unplaced.is_empty(),
        "modules without a layer in src/lib.rs: {unplaced:?}"
    );
    let upward: Vec<String> = edges()
        .iter()
        .filter(|(a, b)| layers[&top(a)] < layers[&top(b)])
        .map(|(a, b)| {
            format!(
                "{} (layer {}) -> {} (layer {})",
                name(a),
                layers[&top(a)],
                name(b),
                layers[&top(b)]
            )
        })
        .collect();
    assert!(
        upward.is_empty(),
        "imports from a higher layer:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_reader_sees_what_it_should() {
    // The checks above are only as good as this reading of the sources.
    let mut out = Vec::new();
    expand("crate::a::{b, c::{d, e as f}}", "", &mut out);
    assert_eq!(out, ["crate::a::b", "crate::a::c::d", "crate::a::c::e"]);
    let code = code(Path::new(&src().join("main.rs")));
    assert!(!code.contains("//"), "comments are left out");
    let edges = edges();
    assert!(edges.contains(&(vec!["main".into()], vec!["cli".into()])));
    assert!(edges
        .iter()
        .any(|(a, b)| a[0] == "kafka" && b == &vec!["window".to_string()]));
}
