//! The agent's integration tests, one binary (as ripgrep does): a module per concern. `common` is a bare node
//! root for the CLI; `support` builds whole machines and clusters; `release` is a generated Kubernetes
//! release tree and the server that serves it.

mod common;
mod support {
    pub mod fake_cloud;
    pub mod leaks;
    pub mod machine;
}
mod artifacts;
mod bake;
mod bounded_commands;
mod cli;
mod hardening;
mod image_and_packaging;
mod kill_anywhere;
mod minors;
mod release;
mod roles;
mod rotation;
mod upgrade;
mod vault;
