//! The structure holds: each crate depends only on the crates below it, the simulators are
//! nobody's normal dependency but the demo feature's, and inside each crate no two top-level
//! modules import each other, directly or around a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `sectigo-*` crates named in a manifest's `[dependencies]` (not dev-dependencies), with
/// whether each is optional.
fn sectigo_deps(manifest: &Path) -> BTreeMap<String, bool> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let mut section = String::new();
    let mut deps = BTreeMap::new();
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            section = l.to_string();
            continue;
        }
        if section != "[dependencies]" {
            continue;
        }
        if let Some(name) = l.split(['.', ' ', '=']).next() {
            if name.starts_with("sectigo-") {
                deps.insert(name.to_string(), l.contains("optional = true"));
            }
        }
    }
    deps
}

#[test]
fn crates_depend_only_downwards() {
    let r = root();
    // Each crate with the project crates it may use.
    let allowed: &[(&str, &[&str])] = &[
        ("crates/core", &[]),
        ("crates/model", &["sectigo-core"]),
        ("crates/scm", &["sectigo-core"]),
        ("crates/state", &["sectigo-core", "sectigo-model"]),
        (
            "crates/jira",
            &["sectigo-core", "sectigo-model", "sectigo-state"],
        ),
        (
            "crates/engine",
            &[
                "sectigo-core",
                "sectigo-model",
                "sectigo-scm",
                "sectigo-state",
                "sectigo-jira",
            ],
        ),
        (
            "crates/workflow",
            &[
                "sectigo-core",
                "sectigo-model",
                "sectigo-state",
                "sectigo-jira",
                "sectigo-engine",
            ],
        ),
        ("crates/sim", &["sectigo-core", "sectigo-jira"]),
    ];
    for (dir, may) in allowed {
        let deps = sectigo_deps(&r.join(dir).join("Cargo.toml"));
        for d in deps.keys() {
            assert!(may.contains(&d.as_str()), "{dir} depends on {d}");
        }
    }
    // The product: every layer, and the simulators only as the optional `demo` feature.
    let top = sectigo_deps(&r.join("Cargo.toml"));
    assert_eq!(top.get("sectigo-sim"), Some(&true), "{top:?}");
    assert!(top.get("sectigo-workflow") == Some(&false), "{top:?}");
}

/// `src/a/b.rs` → `a`; `src/a.rs` → `a`; `src/lib.rs` → none (the crate root).
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let m = first.trim_end_matches(".rs").to_string();
    (m != "lib" && m != "main").then_some(m)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules a file names through `crate::`.
fn imports(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut c = path[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_module_cycle_inside_any_crate() {
    let r = root();
    let mut srcs = vec![r.join("src")];
    for e in std::fs::read_dir(r.join("crates")).unwrap().flatten() {
        srcs.push(e.path().join("src"));
    }
    for src in srcs {
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut modules = BTreeSet::new();
        for f in &files {
            if let Some(m) = top_module(&src, f) {
                modules.insert(m);
            }
        }
        for f in &files {
            let Some(m) = top_module(&src, f) else {
                continue;
            };
            let text = std::fs::read_to_string(f).unwrap();
            let to: BTreeSet<String> = imports(&text)
                .into_iter()
                .filter(|t| *t != m && modules.contains(t))
                .collect();
            graph.entry(m).or_default().extend(to);
        }
        assert!(
            cycle(&graph).is_none(),
            "{}: import cycle {:?} (graph {graph:?})",
            src.display(),
            cycle(&graph)
        );
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(
        cycle(&g),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(
        imports("use crate::{api::x, exit};\nlet y = crate::daemon::z;"),
        ["api", "daemon", "exit"].map(String::from).into()
    );
}
