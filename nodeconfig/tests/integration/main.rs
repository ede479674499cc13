//! The contract crate's integration tests, one binary (as ripgrep does): a module per concern.

mod contract;
mod fuzz;
