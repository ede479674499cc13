//! What the integration tests of the workspace's crates share, so each is written once: a fake
//! node root, ports for servers, directory snapshots, the workspace's built binaries, child-process
//! output in assertion messages, the fuzzing strategies of the two YAML contracts, and the HTTP
//! server every fake is built on.
//!
//! Only ever a dev-dependency, except of the crates that are themselves test-only (the VM test
//! crate; the stand-ins, whose fakes and API server serve through `http`).

pub mod binaries;
pub mod fake_root;
pub mod http;
pub mod mutate;
pub mod output;
pub mod port;
pub mod snapshot;
