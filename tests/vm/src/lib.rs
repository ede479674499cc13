//! Harness for the end-to-end VM test (`tests/e2e.rs`): loopback host services (fake Azure IMDS,
//! artifact release mirror), NoCloud seeds built from the generator's rendered user data, a QEMU
//! launcher, and the parsers for the evidence the guests send back over their second serial port.
//!
//! Test-only: this crate is never shipped and the product crates never depend on it.

pub mod baseline;
pub mod capture;
pub mod checks;
pub mod cluster;
pub mod evidence;
pub mod http;
pub mod imds;
pub mod mirror;
pub mod qemu;
pub mod secrets;
pub mod seed;

use std::path::PathBuf;

/// The workspace root (this crate lives at `tests/vm`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}
