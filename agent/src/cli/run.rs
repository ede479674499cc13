//! `kubeboot-agent run`: bring this node into the cluster, resuming where an earlier run stopped.

use std::process::ExitCode;

use anyhow::Result;

use crate::context::Context;
use crate::workflow::{self, Selection};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub node: super::NodeArgs,
    /// Write files under --root but run no command; print each command instead.
    #[arg(long)]
    pub dry_run: bool,
    /// Run only this phase (it must apply to this node).
    #[arg(long, value_name = "PHASE", conflicts_with = "skip")]
    pub only: Option<String>,
    /// Do not run this phase (repeatable); the final marker accepts it as handled.
    #[arg(long, value_name = "PHASE")]
    pub skip: Vec<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let selection = Selection {
        only: args.only,
        skip: args.skip.into_iter().collect(),
    };
    selection.check()?;
    let ctx = Context::load(args.node.root(), args.node.config(), args.dry_run)?;
    workflow::run(&ctx, &selection)?;
    Ok(ExitCode::SUCCESS)
}
