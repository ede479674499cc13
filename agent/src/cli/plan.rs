//! `kubeboot-agent plan`: what `run` would do, phase by phase, and why.

use std::process::ExitCode;

use anyhow::Result;

use crate::context::Context;
use crate::markers::Markers;
use crate::phases::STEPS;
use crate::workflow::{applicability, Applicability};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub node: super::NodeArgs,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let ctx = Context::load(args.node.root(), args.node.config(), true)?;
    print!("{}", render(&ctx)?);
    Ok(ExitCode::SUCCESS)
}

/// One line per phase: name, what `run` would do with it, and why.
pub fn render(ctx: &Context) -> Result<String> {
    let markers = Markers::new(&ctx.root);
    let mut out = String::new();
    for step in STEPS {
        let phase = step.phase;
        let (action, why) = match applicability(ctx, step)? {
            Applicability::NotForKind(kind) => ("skip", format!("not run on a {kind}")),
            Applicability::NotNeeded => ("skip", "nothing to do on this node".into()),
            Applicability::Undecided => (
                "decide",
                format!(
                    "runs on a {}: the metadata phase decides which this master is",
                    step.runs_on
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            ),
            Applicability::Applies => match markers.done(phase.name())? {
                Some(done) => match phase.verify(ctx) {
                    Ok(()) => ("done", format!("finished {}", done.finished_at)),
                    Err(e) => ("rerun", format!("done, but {e:#}")),
                },
                None => match markers.failed(phase.name())? {
                    Some(f) => ("retry", format!("failed {}: {}", f.time, f.message)),
                    None => ("run", phase.description().to_string()),
                },
            },
        };
        out.push_str(&format!("{:<20} {:<7} {why}\n", phase.name(), action));
    }
    Ok(out)
}
