//! The workspace's binaries (generator, agent, stand-ins, samplers) for tests that run them as a
//! node would, outside cargo's `CARGO_BIN_EXE_*` of their own package.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::output::text;

/// The workspace's root directory.
pub fn workspace_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// What cargo sets for the running test (its package's name, manifest dir, ...): build scripts
/// such as ring's rerun when these change, so a nested cargo that inherits them rebuilds half the
/// dependency tree, and the next outer build rebuilds it back.
const CARGO_TEST_ENV: &[&str] = &[
    "CARGO_PKG_",
    "CARGO_MANIFEST_",
    "CARGO_CRATE_",
    "CARGO_BIN_",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "CARGO_RUSTC_CURRENT_DIR",
    "OUT_DIR",
];

/// target/debug with every binary of the workspace, built once per test process. Built with the
/// package set of `cargo build --workspace` so that, after `cargo test --workspace`, this finds
/// everything up to date (a narrower `-p` set would rebuild dependencies with other features:
/// minutes); and always asked of cargo, so a test never runs a stale binary.
pub fn binaries() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        cargo_build(&["--workspace", "--bins"]);
        target_dir().join("debug")
    })
}

/// The release build of the agent, as users get it (the `release` profile), built once per test
/// process and always asked of cargo.
pub fn release_agent() -> &'static Path {
    static AGENT: OnceLock<PathBuf> = OnceLock::new();
    AGENT.get_or_init(|| {
        cargo_build(&[
            "--release",
            "-p",
            "kubeboot-agent",
            "--bin",
            "kubeboot-agent",
        ]);
        target_dir().join("release/kubeboot-agent")
    })
}

fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"))
}

/// `cargo build --locked ARGS` in the workspace, without the running test's cargo variables.
fn cargo_build(args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(workspace_root())
        .args(["build", "--locked"])
        .args(args);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if CARGO_TEST_ENV.iter().any(|p| name.starts_with(p)) {
            build.env_remove(&*name);
        }
    }
    let out = build.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
}
