//! `kubeboot-agent run`: bring this node into the cluster, resuming where an earlier run stopped.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::context::{self, Context};
use crate::error::Stop;
use crate::overlay::Overlay;
use crate::upgrade;
use crate::workflow::{self, Selection};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub node: super::NodeArgs,
    /// Change nothing on the node: write into a private temporary tree instead, print each
    /// command instead of running it, then print what a real run would change (a diff per file).
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: keep the files the run would write in DIR (absent or empty; outside
    /// --root unless that is /) to read them; the printed diff withholds private files' contents.
    #[arg(long, value_name = "DIR", requires = "dry_run")]
    pub dry_run_dir: Option<PathBuf>,
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
    let mut root = args.node.root();
    // Half-upgraded, the node matches neither version: the phases would undo part of the upgrade.
    if let Some(unfinished) = upgrade::unfinished(&root)? {
        return Err(Stop::BadConfig(format!(
            "an upgrade from {} to {} is unfinished: finish it (kubeboot-agent upgrade --to {}) before `run`",
            unfinished.from, unfinished.to, unfinished.to
        ))
        .into());
    }
    // Read before the overlay exists, so a bad NodeConfig leaves nothing behind.
    let config = context::read_config(&root, args.node.config())?;
    if args.dry_run {
        let overlay = match &args.dry_run_dir {
            Some(dir) => Overlay::kept_in(dir, root.dir())?,
            None => Overlay::temporary()?,
        };
        root = root.with_overlay(overlay);
    }
    let ctx = Context::new(root, config);
    let outcome = workflow::run(&ctx, &selection);
    if let Some(overlay) = ctx.root.overlay() {
        // Also after a failure: what the phases before it would change.
        let changes = overlay.changes(ctx.root.dir())?;
        for change in &changes {
            println!("{change}");
        }
        println!(
            "[dry-run] {} change(s) to the node under {}; nothing was changed",
            changes.len(),
            ctx.root.dir().display()
        );
    }
    outcome?;
    Ok(ExitCode::SUCCESS)
}
