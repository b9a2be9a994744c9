//! The host's layering, checked on every run: cargo already refuses cycles
//! between crates; this refuses them between the top-level modules of each
//! crate under `host/`, and holds the size limits that keep the code
//! readable (a thin `main.rs`, no source file past ~800 lines outside
//! tests).
//!
//! A module `a` depends on a module `b` of the same crate when any of `a`'s
//! files names `crate::b` (also inside `use crate::{…}` groups) or reaches
//! `b` through `super::`. Comments do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest source file, in lines, outside tests and test data.
const MAX_FILE_LINES: usize = 800;
/// Longest `main.rs` of the binary.
const MAX_MAIN_LINES: usize = 150;

fn host() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every crate under `host/`: its name and `src/`.
fn crates() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(host()).expect("reading host/") {
        let dir = entry.expect("a host/ entry").path();
        if dir.join("Cargo.toml").exists() && dir.join("src").is_dir() {
            out.push((dir.file_name().unwrap().to_string_lossy().into_owned(), dir.join("src")));
        }
    }
    out.sort();
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reading a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file below `src/` (`[]` for the crate root).
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("a file under src/");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_owned());
    }
    parts
}

/// The code of `text` without `//` comments (line and doc comments).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| {
            // A `//` inside a string literal would cut the line short; that
            // only hides references, and the strings here hold none.
            match l.find("//") {
                Some(i) if !l[..i].contains('"') => &l[..i],
                _ => l,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> Option<&str> {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    (end > 0).then(|| &s[..end])
}

/// The top-level modules a file names: `crate::x`, `crate::{x, y::z}` and
/// `super::` paths resolved from the file's own module.
fn references(code: &str, module: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let boundary = i == 0 || !rest[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$');
        if boundary {
            if let Some(group) = after.strip_prefix('{') {
                let inner = &group[..group.find('}').unwrap_or(group.len())];
                out.extend(inner.split(',').filter_map(|p| ident_at(p.trim())).map(str::to_owned));
            } else if let Some(id) = ident_at(after) {
                out.insert(id.to_owned());
            }
        }
        rest = after;
    }
    let mut rest = code;
    while let Some(i) = rest.find("super::") {
        let boundary = i == 0 || !rest[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        let mut after = &rest[i..];
        let mut depth = 0;
        while let Some(a) = after.strip_prefix("super::") {
            depth += 1;
            after = a;
        }
        if boundary && depth <= module.len() {
            let base = &module[..module.len() - depth];
            let next = ident_at(after.trim_start_matches('{')).map(str::to_owned);
            match (base.first(), next) {
                (Some(top), _) => {
                    out.insert(top.clone());
                }
                (None, Some(id)) => {
                    out.insert(id);
                }
                (None, None) => {}
            }
        }
        rest = &rest[i + "super::".len()..];
    }
    out
}

/// Module → the top-level modules of the same crate it names.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let tops: BTreeSet<String> = files.iter().filter_map(|f| module_path(src, f).first().cloned()).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = tops.iter().map(|t| (t.clone(), BTreeSet::new())).collect();
    for file in &files {
        let module = module_path(src, file);
        let Some(top) = module.first() else { continue };
        let text = std::fs::read_to_string(file).expect("reading a source file");
        for r in references(&code(&text), &module) {
            if &r != top && tops.contains(&r) {
                graph.get_mut(top).unwrap().insert(r);
            }
        }
    }
    graph
}

/// The strongly connected components with more than one module (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, v: &'g str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in &self.graph[v] {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_owned());
                    if w == v {
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
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

#[test]
fn the_check_sees_cycles_and_resolves_super() {
    let module = vec!["pipeline".to_owned(), "batch".to_owned()];
    let refs =
        references("use crate::{services::Gateway, paging};\nuse super::super::policy::X;\nsuper::parse(x);", &module);
    assert_eq!(refs, BTreeSet::from(["services".into(), "paging".into(), "policy".into(), "pipeline".into()]));
    assert!(references(&code("// crate::hidden\nlet a = b; // crate::also_hidden"), &[]).is_empty());
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["c".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
        ("d".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]
    .into();
    assert_eq!(cycles(&g), vec![vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]]);
}

#[test]
fn no_crate_under_host_has_an_import_cycle_among_its_top_level_modules() {
    let crates = crates();
    assert!(crates.len() >= 6, "expected the host's crates under host/, found {crates:?}");
    let mut problems = Vec::new();
    for (name, src) in &crates {
        let graph = graph(src);
        for cycle in cycles(&graph) {
            let edges: Vec<String> = cycle
                .iter()
                .flat_map(|m| graph[m].iter().filter(|d| cycle.contains(d)).map(move |d| format!("{m} → {d}")))
                .collect();
            problems.push(format!("host/{name}: {}", edges.join(", ")));
        }
    }
    assert!(problems.is_empty(), "import cycles among top-level modules:\n{}", problems.join("\n"));
}

/// Lines of `text` outside its `#[cfg(test)] mod … { … }` blocks: unit
/// tests beside the code are tests, not the file's code.
fn lines_outside_tests(text: &str) -> usize {
    let mut count = 0;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "#[cfg(test)]" {
            count += 1;
            continue;
        }
        // Skip the attribute's item: up to the line closing its braces.
        let mut depth = 0i64;
        let mut opened = false;
        for l in lines.by_ref() {
            depth += l.matches('{').count() as i64 - l.matches('}').count() as i64;
            opened |= l.contains('{');
            if opened && depth <= 0 || !opened && l.trim_end().ends_with(';') {
                break;
            }
        }
    }
    count
}

#[test]
fn test_modules_do_not_count_towards_a_files_length() {
    let text = "fn a() {}\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn t() {\n    }\n}\nfn b() {}\n";
    assert_eq!(lines_outside_tests(text), 2);
    assert_eq!(lines_outside_tests("#[cfg(test)]\nmod tests;\nfn a() {}\n"), 1);
}

#[test]
fn main_is_thin_and_no_source_file_is_too_long() {
    let mut problems = Vec::new();
    for (name, src) in crates() {
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for file in files {
            let rel = file.strip_prefix(host()).unwrap_or(&file).display().to_string();
            let is_test = file.file_name().is_some_and(|n| n == "tests.rs")
                || file.components().any(|c| c.as_os_str() == "tests" || c.as_os_str() == "testdata");
            let text = std::fs::read_to_string(&file).expect("reading a source file");
            let lines = lines_outside_tests(&text);
            if file.file_name().is_some_and(|n| n == "main.rs") && lines > MAX_MAIN_LINES {
                problems.push(format!("{rel}: {lines} lines (a binary's main.rs: at most {MAX_MAIN_LINES})"));
            } else if !is_test && lines > MAX_FILE_LINES {
                problems.push(format!("{rel}: {lines} lines (at most {MAX_FILE_LINES})"));
            }
        }
        let _ = name;
    }
    assert!(problems.is_empty(), "files past their size:\n{}", problems.join("\n"));
}
