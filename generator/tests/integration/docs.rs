//! The README and docs/ as a newcomer navigates them: the README links every document, every
//! relative link (and its #anchor) leads somewhere, and every `kubeboot-gen` / `kubeboot-agent`
//! command line in any of them exists. (docs/operations.md, docs/azure.md and docs/releases.md
//! have their own, deeper checks.)

use crate::common;
use common::repo;

use std::path::{Path, PathBuf};

use common::shell::{kubeboot_command_problems, Shell};

/// README.md and every Markdown file under docs/, as (path, text).
fn documents() -> Vec<(PathBuf, String)> {
    let mut paths = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    paths.extend(docs);
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

/// GitHub's anchor of a heading: lowercased, punctuation dropped, spaces to dashes.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> Vec<String> {
    Shell::prose(text)
        .filter(|line| line.starts_with('#'))
        .map(|line| anchor(line.trim_start_matches('#')))
        .collect()
}

/// The relative link targets of a document, outside code: `](target)`.
fn relative_links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    for line in Shell::prose(text) {
        for (i, _) in line.match_indices("](") {
            let rest = &line[i + 2..];
            let Some(end) = rest.find(')') else { continue };
            let target = &rest[..end];
            if !target.contains("://") && !target.starts_with("mailto:") {
                links.push(target.to_string());
            }
        }
    }
    links
}

/// Every link of `text` (a document at `path`) that leads nowhere.
fn broken_links(path: &Path, text: &str) -> Vec<String> {
    let dir = path.parent().unwrap();
    let mut broken = Vec::new();
    for link in relative_links(text) {
        let (file, fragment) = match link.split_once('#') {
            Some((file, fragment)) => (file, Some(fragment)),
            None => (link.as_str(), None),
        };
        let target = if file.is_empty() {
            path.to_path_buf()
        } else {
            dir.join(file)
        };
        if !target.exists() {
            broken.push(format!("{}: {link}: no such file", path.display()));
            continue;
        }
        if let Some(fragment) = fragment {
            let target_text = std::fs::read_to_string(&target).unwrap_or_default();
            if !anchors(&target_text).iter().any(|a| a == fragment) {
                broken.push(format!("{}: {link}: no such heading", path.display()));
            }
        }
    }
    broken
}

#[test]
fn the_readme_links_every_document() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let (docs, _): (Vec<_>, Vec<_>) = documents()
        .into_iter()
        .partition(|(p, _)| p.parent().unwrap().ends_with("docs"));
    assert!(docs.len() >= 8, "{} documents", docs.len());
    for (path, _) in docs {
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(
            readme.contains(&format!("](docs/{name})")),
            "README.md does not link docs/{name}"
        );
    }
}

#[test]
fn the_readme_stays_short() {
    let lines = std::fs::read_to_string(repo().join("README.md"))
        .unwrap()
        .lines()
        .count();
    assert!(
        lines <= 150,
        "README.md has {lines} lines: move details to docs/"
    );
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for (path, text) in documents() {
        checked += relative_links(&text).len();
        broken.extend(broken_links(&path, &text));
    }
    assert!(checked > 20, "only {checked} links found");
    assert!(broken.is_empty(), "{broken:#?}");
}

#[test]
fn the_link_check_finds_missing_files_and_headings() {
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("a.md");
    let text = "# A title\n\n## Some `code`: here\n\nSee [b](b.md), [here](#some-code-here), [gone](#gone), \
                [c](c.md#x) and [web](https://example.com).\n```sh\n[not](a link)\n```\n";
    std::fs::write(&doc, text).unwrap();
    std::fs::write(dir.path().join("c.md"), "# X\n").unwrap();
    let broken = broken_links(&doc, text);
    assert_eq!(broken.len(), 2, "{broken:#?}");
    assert!(broken[0].ends_with("b.md: no such file"));
    assert!(broken[1].ends_with("#gone: no such heading"));
}

#[test]
fn every_kubeboot_command_line_in_every_document_exists() {
    let mut problems = Vec::new();
    let mut invocations = 0;
    for (path, text) in documents() {
        let mut shell = Shell::parse(&text);
        shell.lines.extend(Shell::inline_code(&text).lines);
        invocations +=
            shell.invocations("kubeboot-gen").len() + shell.invocations("kubeboot-agent").len();
        problems.extend(
            kubeboot_command_problems(&shell)
                .into_iter()
                .map(|p| format!("{}: {p}", path.display())),
        );
    }
    assert!(invocations > 30, "only {invocations} command lines found");
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The repository paths named in the prose's inline code (`agent/src/paths.rs`, …) that do not
/// exist.
fn missing_paths(text: &str) -> (usize, Vec<String>) {
    const TOP: [&str; 10] = [
        "agent/",
        "generator/",
        "nodeconfig/",
        "tests/",
        "units/",
        "images/",
        "packer/",
        "packaging/",
        "docs/",
        ".ci/",
    ];
    let mut named = 0;
    let mut missing = Vec::new();
    for line in Shell::prose(text) {
        for span in line.split('`').skip(1).step_by(2) {
            let is_path = TOP.iter().any(|top| span.starts_with(top))
                && span
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c));
            if is_path {
                named += 1;
                if !repo().join(span).exists() {
                    missing.push(span.to_string());
                }
            }
        }
    }
    (named, missing)
}

#[test]
fn every_repository_path_the_documents_name_exists() {
    let mut named = 0;
    let mut missing = Vec::new();
    for (path, text) in documents() {
        let (n, gone) = missing_paths(&text);
        named += n;
        missing.extend(gone.into_iter().map(|p| format!("{}: {p}", path.display())));
    }
    assert!(named > 50, "only {named} paths found");
    assert!(missing.is_empty(), "{missing:#?}");
    // The check bites: a moved file is reported, a placeholder is not a path.
    let (n, gone) =
        missing_paths("See `agent/src/gone.rs`, `agent/src/paths.rs` and `<crate>/tests`.");
    assert_eq!((n, gone), (2, vec!["agent/src/gone.rs".to_string()]));
}
