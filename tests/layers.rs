//! The module graph points down: the engine imports nothing of the crate but `time`, and no
//! library module imports from `commands/` (the CLI layer) or `cli`.

mod common;

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every `crate::a::b` path named in a file (in `use` lines and inline paths alike).
fn crate_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        found.push(rest[..end].trim_end_matches(':').to_string());
    }
    // `use crate::{a, b}` groups
    for (i, _) in text.match_indices("crate::{") {
        let rest = &text[i + "crate::{".len()..];
        if let Some(end) = rest.find('}') {
            found.extend(rest[..end].split(',').map(|s| s.trim().to_string()));
        }
    }
    found
}

fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut bad = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&f).unwrap();
        let paths = crate_paths(&text);
        if rel.starts_with("engine/") {
            for p in paths
                .iter()
                .filter(|p| !p.is_empty() && !p.starts_with("time"))
            {
                bad.push(format!("{rel}: the engine imports crate::{p}"));
            }
            if text.contains("super::super::") {
                bad.push(format!("{rel}: the engine reaches out with super::super"));
            }
        }
        let cli_layer = rel.starts_with("commands/") || rel == "main.rs" || rel == "cli.rs";
        if !cli_layer {
            for p in &paths {
                if p.starts_with("commands") || p == "cli" || p.starts_with("cli::") {
                    bad.push(format!("{rel}: a library module imports crate::{p}"));
                }
            }
        }
    }
    bad
}

#[test]
fn the_module_graph_points_down() {
    let bad = violations(&common::root().join("src"));
    assert!(bad.is_empty(), "layering broken:\n{}", bad.join("\n"));
}

#[test]
fn the_check_can_fail() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path();
    std::fs::create_dir_all(src.join("engine")).unwrap();
    std::fs::create_dir_all(src.join("sweep")).unwrap();
    std::fs::write(
        src.join("engine/mod.rs"),
        "use crate::time::Time;\nuse crate::world::Fleet;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("sweep/mod.rs"),
        "fn f() { crate::commands::write_file(p, b); }\n",
    )
    .unwrap();
    let bad = violations(src);
    assert_eq!(bad.len(), 2, "{bad:?}");
}
