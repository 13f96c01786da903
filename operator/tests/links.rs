//! Every relative Markdown link in the repository's Markdown files (`[text](path)`,
//! `[text](path#anchor)`, `![alt](path)`, `[text](#anchor)`) names a file that exists, and an anchor
//! names a heading of that file (GitHub's anchors). Links with a scheme (`https://…`) are not
//! checked, nor are links in code blocks or code spans. No outside program: the files are found by
//! walking the checkout (skipping hidden and build directories), not by asking git.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use operator::reference::anchor;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the workspace root")
}

/// The Markdown files under `dir`, outside hidden and build directories.
fn markdown_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read a directory") {
        let path = entry.expect("a directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || matches!(name, "target" | "out" | "corpus" | "artifacts") {
            continue;
        }
        if path.is_dir() {
            markdown_files(&path, files);
        } else if name.ends_with(".md") {
            files.push(path);
        }
    }
}

/// The text of a Markdown file outside fenced code blocks and code spans, a line per line.
fn prose_lines(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let outside_code: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        lines.push(outside_code);
    }
    lines
}

/// The targets of the inline links on `line`: what follows `](` up to `)`, without a title.
fn link_targets(line: &str) -> Vec<&str> {
    line.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &line[at + 2..];
            let target = &rest[..rest.find(')')?];
            match target.strip_prefix('<') {
                Some(bracketed) => bracketed.split('>').next(),
                None => target.split_whitespace().next(),
            }
        })
        .collect()
}

/// The anchors of a Markdown file's headings, as GitHub makes them (a repeated one gets `-1`, `-2`).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    for line in prose_lines_keeping_code(text) {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let base = anchor(heading.trim());
        let mut candidate = base.clone();
        let mut n = 0;
        while !anchors.insert(candidate.clone()) {
            n += 1;
            candidate = format!("{base}-{n}");
        }
    }
    anchors
}

/// The lines outside fenced code blocks (headings keep their code spans).
fn prose_lines_keeping_code(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|line| {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// What is wrong with `target`, linked from `file`, if anything.
fn broken(root: &Path, file: &Path, target: &str) -> Option<String> {
    if target.is_empty() {
        return Some("an empty link".into());
    }
    let scheme = target.split_once(':').map(|(s, _)| s);
    if scheme.is_some_and(|s| !s.contains('/') && !s.contains('#')) {
        return None;
    }
    let (path, fragment) = match target.split_once('#') {
        Some((path, fragment)) => (path, Some(fragment)),
        None => (target, None),
    };
    let path = path.replace("%20", " ");
    let resolved = match path.as_str() {
        "" => file.to_path_buf(),
        p if p.starts_with('/') => root.join(p.trim_start_matches('/')),
        p => file.parent().expect("a file's directory").join(p),
    };
    if !resolved.exists() {
        return Some(format!("{} does not exist", resolved.display()));
    }
    let fragment = fragment?;
    if resolved.extension().and_then(|e| e.to_str()) != Some("md") {
        return None;
    }
    let text = std::fs::read_to_string(&resolved).expect("read the linked file");
    (!anchors(&text).contains(fragment))
        .then(|| format!("{} has no heading #{fragment}", resolved.display()))
}

#[test]
fn relative_links_resolve() {
    let root = root();
    let mut files = Vec::new();
    markdown_files(&root, &mut files);
    files.sort();
    assert!(
        files.iter().any(|f| f.ends_with("docs/reference.md")),
        "{files:?}"
    );
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read a Markdown file");
        for (n, line) in prose_lines(&text).iter().enumerate() {
            for target in link_targets(line) {
                checked += 1;
                if let Some(problem) = broken(&root, file, target) {
                    let file = file.strip_prefix(&root).unwrap_or(file);
                    problems.push(format!(
                        "{}:{}: ({target}): {problem}",
                        file.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} links found");
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checks_read_links_and_headings_as_github_does() {
    assert_eq!(
        link_targets("see [a](docs/a.md#x) and ![b](b.png \"title\") and [c](<c d.md>)"),
        ["docs/a.md#x", "b.png", "c d.md"]
    );
    assert_eq!(
        prose_lines("`[x](y)` [z](w)\n```\n[q](r)\n```"),
        ["  [z](w)"]
    );
    let headings = anchors("# Title\n## `spec.model`\n```\n# not a heading\n```\n## Title\n#nope");
    assert_eq!(
        headings,
        BTreeSet::from(["title".into(), "specmodel".into(), "title-1".into()])
    );
    let root = root();
    let readme = root.join("README.md");
    assert_eq!(broken(&root, &readme, "https://example.com/x"), None);
    assert_eq!(broken(&root, &readme, "docs/install.md#the-flag"), None);
    assert!(broken(&root, &readme, "docs/missing.md").is_some());
    assert!(broken(&root, &readme, "docs/install.md#no-such-heading").is_some());
}
