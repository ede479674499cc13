//! What the integration tests of the workspace's crates share, so each is written once: a fake
//! node root, ports for servers, directory snapshots, the workspace's built binaries, child-process
//! output in assertion messages, and the fuzzing strategies of the two YAML contracts.
//!
//! Only ever a dev-dependency (the VM test crate, itself test-only, is the exception).

pub mod binaries;
pub mod fake_root;
pub mod mutate;
pub mod output;
pub mod port;
pub mod snapshot;
