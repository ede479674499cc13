//! `kubeboot-agent rotate-join-token`: one join-token rotation on this master (what the
//! `kubeboot-join-token.timer` runs every 10 minutes; see `crate::join_token`). Refused on a
//! worker and without `secrets.keyVault`: on plain VMs the operator owns the join token.

use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Result;

use crate::context::Context;
use crate::error::Stop;
use crate::join_token;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub node: super::NodeArgs,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let ctx = Context::load(args.node.root(), args.node.config())?;
    if !ctx.config.is_master() {
        return Err(Stop::BadConfig(
            "rotate-join-token runs on masters only: this node is a worker".into(),
        )
        .into());
    }
    if ctx.config.secrets.is_none() {
        return Err(Stop::BadConfig(
            "rotate-join-token needs secrets.keyVault in the NodeConfig: without a vault (plain VMs) the operator owns the join token".into(),
        )
        .into());
    }
    // Waits are recorded as the phase's, so `status` shows why a rotation waits.
    ctx.set_phase("join-token");
    join_token::rotate(&ctx, SystemTime::now())?;
    Ok(ExitCode::SUCCESS)
}
