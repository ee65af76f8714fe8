//! Tidy checks over the source tree, as rust-analyzer's `tidy` test does them: rules that
//! hold for every file, so they are checked on every file rather than left to review.
//!
//! * Every Rust file opens with a `//!` module comment (generated files excepted).
//! * Library crates never print or exit: no `println!`, `eprintln!`, `print!`, `eprint!`,
//!   `dbg!` or `std::process::exit` outside binaries (`main.rs`, `src/cli/`, benches).
//! * Library code has no `unwrap()` (tests, test modules and binaries excepted): errors
//!   from input are typed, and true invariants say so with `expect("invariant: ...")`.
//! * ARCHITECTURE.md names every crate (by package name) and every module directory
//!   (by path, or by module path such as `passes::egraph`).

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, skipping build output and hidden directories.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&p, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root())
        .unwrap_or(p)
        .to_string_lossy()
        .replace('\\', "/")
}

/// The crate directories of the workspace: `(directory, package name)`.
fn crates() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root()];
    while let Some(d) = stack.pop() {
        let manifest = d.join("Cargo.toml");
        if let Ok(text) = fs::read_to_string(&manifest)
            && let Some(name) = text
                .lines()
                .find_map(|l| l.strip_prefix("name = \"")?.strip_suffix('"'))
        {
            out.push((rel(&d), name.to_string()));
        }
        if let Ok(entries) = fs::read_dir(&d) {
            for e in entries.filter_map(Result::ok) {
                let name = e.file_name().to_string_lossy().into_owned();
                let skip = name == "target"
                    || name.starts_with('.')
                    || name == "src"
                    || name == "tests"
                    || name == "samples"
                    || name == "tools";
                if e.path().is_dir() && !skip {
                    stack.push(e.path());
                }
            }
        }
    }
    out.sort();
    out
}

/// True for files that are binaries, tests or benches: they may print, exit and unwrap.
fn is_binary_or_test(path: &str) -> bool {
    path.ends_with("/main.rs")
        || path == "src/main.rs"
        || path.starts_with("src/cli/")
        || path.starts_with("tests/")
        || path.contains("/tests/")
        || path.contains("/benches/")
        || path.starts_with("benches/")
        || path.starts_with("tools/")
        || path.ends_with("/tests.rs")
        || path.contains("/bin/")
}

/// The part of a library file outside `#[cfg(test)]` modules (which sit at the end).
fn library_part(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or(text)
}

/// Code lines only: comments (doc examples included) are not code.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
}

#[test]
fn every_file_opens_with_a_module_comment() {
    let mut files = Vec::new();
    rust_files(&root(), &mut files);
    assert!(files.len() > 100, "found only {} Rust files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|p| {
            let text = fs::read_to_string(p).unwrap_or_default();
            let generated = text.lines().take(3).any(|l| l.contains("@generated"));
            !generated && !text.trim_start().starts_with("//!")
        })
        .map(|p| rel(p))
        .collect();
    assert!(missing.is_empty(), "no //! module comment: {missing:#?}");
}

#[test]
fn libraries_do_not_print_exit_or_unwrap() {
    let mut files = Vec::new();
    rust_files(&root(), &mut files);
    let banned = [
        "println!",
        "eprintln!",
        "print!(",
        "eprint!(",
        "dbg!(",
        "process::exit",
    ];
    let mut problems = Vec::new();
    for p in &files {
        let path = rel(p);
        if is_binary_or_test(&path) {
            continue;
        }
        let text = fs::read_to_string(p).unwrap_or_default();
        if text.lines().take(3).any(|l| l.contains("@generated")) {
            continue;
        }
        for (n, line) in code_lines(library_part(&text)) {
            for b in banned {
                if line.contains(b) {
                    problems.push(format!("{path}:{n}: {b} in a library: {}", line.trim()));
                }
            }
            if line.contains(".unwrap()") {
                problems.push(format!(
                    "{path}:{n}: unwrap() in a library: {}",
                    line.trim()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn architecture_names_every_crate_and_module_directory() {
    let arch = fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut missing = Vec::new();
    for (dir, name) in crates() {
        if !arch.contains(&name) {
            missing.push(format!("crate {name} ({dir})"));
        }
        let src = if dir.is_empty() {
            root().join("src")
        } else {
            root().join(&dir).join("src")
        };
        let short = name
            .strip_prefix("tessera-")
            .unwrap_or(&name)
            .replace('-', "_");
        let mut stack = vec![src.clone()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = fs::read_dir(&d) else {
                continue;
            };
            for e in entries.filter_map(Result::ok) {
                if !e.path().is_dir() {
                    continue;
                }
                let path = rel(&e.path());
                let module = e
                    .path()
                    .strip_prefix(&src)
                    .map(|m| m.to_string_lossy().replace('/', "::"))
                    .unwrap_or_default();
                let module_path = format!("{short}::{module}");
                if !arch.contains(&path) && !arch.contains(&module_path) {
                    missing.push(format!("module directory {path} ({module_path})"));
                }
                stack.push(e.path());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not name: {missing:#?}"
    );
}
