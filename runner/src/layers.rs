//! Holds the crate to its layers (see the crate docs): every `crate::X`
//! path in `src/` (`use` lines, grouped `use crate::{a, b}`, inline paths;
//! comments are skipped) must name a module of a lower layer than the file's
//! own, or the file's own module.

use std::path::Path;

/// Each top-level module and its layer; modules on one layer are siblings,
/// which do not import each other.
const LAYERS: &[(&str, u8)] = &[
    ("model", 0),
    ("error", 1),
    ("runs", 1),
    ("config", 2),
    ("exec", 3),
    ("discover", 4),
    ("isolation", 4),
    ("history", 4),
    ("report", 4),
    ("shard", 5),
    ("plan", 6),
    ("pool", 7),
    ("diagnose", 8),
    ("cli", 9),
    ("commands", 10),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|&(_, l)| l)
}

/// The text with comments blanked out (newlines kept, so offsets keep
/// their line numbers).
fn without_comments(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut depth = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if depth > 0 {
            if rest.starts_with("*/") {
                depth -= 1;
                out.push_str("  ");
                i += 2;
            } else if rest.starts_with("/*") {
                depth += 1;
                out.push_str("  ");
                i += 2;
            } else {
                let c = rest.chars().next().unwrap_or(' ');
                out.push(if c == '\n' { '\n' } else { ' ' });
                i += c.len_utf8();
            }
        } else if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            out.extend(std::iter::repeat_n(' ', end));
            i += end;
        } else if rest.starts_with("/*") {
            depth += 1;
            out.push_str("  ");
            i += 2;
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The top-level modules a file's code names through `crate::`, each with
/// its line.
fn crate_references(text: &str) -> Vec<(usize, String)> {
    let code = without_comments(text);
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(pos) = code[from..].find("crate::") {
        let at = from + pos;
        from = at + "crate::".len();
        if code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| is_ident(c) || c == '$')
        {
            continue;
        }
        let rest = code[from..].trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => items.push(std::mem::take(&mut item)),
                    _ if depth == 0 => item.push(c),
                    _ => {}
                }
            }
            items.push(item);
            for item in items {
                let head: String = item
                    .trim_start()
                    .chars()
                    .take_while(|&c| is_ident(c))
                    .collect();
                if !head.is_empty() && head != "self" {
                    found.push((line_of(at), head));
                }
            }
        } else {
            let head: String = rest.chars().take_while(|&c| is_ident(c)).collect();
            if !head.is_empty() {
                found.push((line_of(at), head));
            }
        }
    }
    found
}

/// What in one file of `module` breaks the layering: `path:line: why`.
fn violations(path: &str, module: &str, text: &str) -> Vec<String> {
    let Some(own) = layer(module) else {
        return vec![format!(
            "{path}: module `{module}` has no layer: add it to LAYERS and the crate docs"
        )];
    };
    crate_references(text)
        .into_iter()
        .filter(|(_, target)| target != module)
        .filter_map(|(line, target)| match layer(&target) {
            Some(l) if l < own => None,
            Some(l) => Some(format!(
                "{path}:{line}: `{module}` (layer {own}) imports crate::{target} (layer {l}): {}",
                if l == own {
                    "a sibling"
                } else {
                    "a layer above"
                }
            )),
            None => Some(format!(
                "{path}:{line}: crate::{target} is not a module with a layer"
            )),
        })
        .collect()
}

/// The library's `.rs` files under `dir` with their top-level module; the
/// crate root and the binaries are not layers.
fn sources(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        if path.is_dir() {
            if rel != Path::new("bin") {
                sources(root, &path, out);
            }
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let first = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        let module = first.trim_end_matches(".rs").to_string();
        if ["lib", "main", "layers"].contains(&module.as_str()) {
            continue;
        }
        out.push((path.to_string_lossy().into_owned(), module));
    }
}

#[test]
fn imports_point_down_the_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &root, &mut files);
    assert!(
        files.len() > 50,
        "found only {} files under {}",
        files.len(),
        root.display()
    );
    let mut broken = Vec::new();
    for (path, module) in &files {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        broken.extend(violations(path, module, &text));
    }
    broken.sort();
    assert!(
        broken.is_empty(),
        "imports against the layers:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_check_sees_upward_sibling_and_grouped_imports_but_not_comments() {
    let text = "use crate::model::TestCase;\n\
                // use crate::pool::Pool;\n\
                /* crate::commands */\n\
                use crate::{error::Error, plan::Plan};\n\
                fn f() { crate::report::start(); }\n";
    assert_eq!(
        violations("exec/x.rs", "exec", text),
        [
            "exec/x.rs:4: `exec` (layer 3) imports crate::plan (layer 6): a layer above",
            "exec/x.rs:5: `exec` (layer 3) imports crate::report (layer 4): a layer above",
        ]
    );
    assert_eq!(
        violations("history.rs", "history", "use crate::report::Event;"),
        ["history.rs:1: `history` (layer 4) imports crate::report (layer 4): a sibling"]
    );
    assert!(violations("pool/m.rs", "pool", "use crate::{model::Slot, exec};").is_empty());
}

/// The pool drives executors and knows no adapter: no adapter's name in its
/// code or its comments.
#[test]
fn the_pool_names_no_adapter() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &root, &mut files);
    let named: Vec<String> = files
        .iter()
        .filter(|(_, module)| module == "pool")
        .flat_map(|(path, _)| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            text.lines()
                .enumerate()
                .filter(|(_, line)| {
                    let line = line.to_lowercase();
                    ["pytest", "cargoadapter", "commandadapter"]
                        .iter()
                        .any(|name| line.contains(name))
                })
                .map(|(n, line)| format!("{path}:{}: {}", n + 1, line.trim()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        named.is_empty(),
        "the pool names an adapter:\n{}",
        named.join("\n")
    );
}
