//! `kubeboot-agent plan`: what `run` would do, phase by phase, and why.

use std::process::ExitCode;

use anyhow::Result;

use crate::context::Context;
use crate::markers::Markers;
use crate::workflow::{stage_state, Applicability, Invariants, Progress, Stage};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub node: super::NodeArgs,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let ctx = Context::load(args.node.root(), args.node.config())?;
    print!("{}", render(&ctx)?);
    Ok(ExitCode::SUCCESS)
}

/// One line per stage: name, what `run` would do with it, and why.
pub fn render(ctx: &Context) -> Result<String> {
    let markers = Markers::new(&ctx.root);
    let mut out = String::new();
    for stage in Stage::all() {
        let state = stage_state(Some(ctx), &markers, stage, Invariants::Check)?;
        let (action, why) = match state.applicability {
            Applicability::NotForKind(kind) => ("skip", format!("not run on a {kind}")),
            Applicability::NotNeeded => ("skip", "nothing to do on this node".into()),
            Applicability::Undecided(runs_on) => (
                "decide",
                format!(
                    "runs on a {}: the metadata phase decides which this master is",
                    runs_on
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            ),
            Applicability::Applies => match (state.progress, state.failed) {
                (Progress::Done(done), _) => ("done", format!("finished {}", done.finished_at)),
                (Progress::Stale(_, why), _) => ("rerun", format!("done, but {why}")),
                (Progress::NotDone, Some(f)) => {
                    ("retry", format!("failed {}: {}", f.time, f.message))
                }
                (Progress::NotDone, None) => ("run", stage.description().to_string()),
            },
        };
        out.push_str(&format!("{:<20} {:<7} {why}\n", stage.name(), action));
    }
    Ok(out)
}
