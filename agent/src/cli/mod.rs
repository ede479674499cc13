//! Command line: one file per subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::root::Root;

pub mod bake;
pub mod install;

#[derive(Debug, Parser)]
#[command(name = "kubeboot-agent", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install kubelet, kubeadm, kubectl (crictl, CNI plugins) of one version, verified.
    Install(install::Args),
    /// Prepare a VM image: install the artifacts and units, record baked.json, clean first-boot state.
    Bake(bake::Args),
}

/// Options every subcommand shares.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Prefix for every path the agent reads or writes on the node (tests, dry runs).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

impl Common {
    pub fn root(&self) -> Root {
        Root::new(&self.root)
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    let result = match cli.command {
        Command::Install(args) => install::run(args),
        Command::Bake(args) => bake::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
