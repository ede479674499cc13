//! The generator's integration tests, one binary (as ripgrep does): a module per concern, sharing `common`.

mod arm;
mod azure_runbook;
mod bad_specs;
mod common;
mod custom_data_secrets;
mod docs;
mod fuzz_spec;
mod operations_doc;
mod output_dir;
mod releases_doc;
mod render;
mod vault;
