//! `kubeboot-agent plan`: what `run` would do, phase by phase, and why.

use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

use super::OutputFormat;
use crate::context::Context;
use crate::markers::Markers;
use crate::workflow::{stage_state, Applicability, Invariants, Progress, Stage};

pub type Args = super::ReportArgs;

/// What `run` would do with one stage, and why (`action` is one of run, done, rerun, retry, skip,
/// decide).
#[derive(Debug, Serialize)]
pub struct PlannedStage {
    pub name: &'static str,
    pub action: &'static str,
    pub reason: String,
    /// The stages it starts after (`run` starts it beside any other stage that is ready).
    pub after: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
struct Plan<'a> {
    stages: &'a [PlannedStage],
}

pub fn run(args: Args) -> Result<ExitCode> {
    let ctx = Context::load(args.node.root(), args.node.config())?;
    print(&plan(&ctx)?, args.output)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints a plan (of the boot phases or of an upgrade's steps).
pub fn print(stages: &[PlannedStage], output: OutputFormat) -> Result<()> {
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&Plan { stages })?),
        OutputFormat::Text => {
            for s in stages {
                let after = match s.action {
                    "run" | "rerun" | "retry" if !s.after.is_empty() => {
                        format!(" (after {})", s.after.join(", "))
                    }
                    _ => String::new(),
                };
                println!("{:<20} {:<7} {}{after}", s.name, s.action, s.reason);
            }
        }
    }
    Ok(())
}

/// Every stage in order with what `run` would do with it.
pub fn plan(ctx: &Context) -> Result<Vec<PlannedStage>> {
    let stages: Vec<Stage> = Stage::all().collect();
    plan_stages(ctx, &Markers::new(&ctx.root), &stages, Recorded::Count)
}

/// Whether a plan counts what `markers` recorded: not for an upgrade that has not started (the
/// records there are an earlier upgrade's, which it clears).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Count,
    Ignore,
}

/// What running `stages` would do with each, given what `markers` recorded.
pub fn plan_stages(
    ctx: &Context,
    markers: &Markers,
    stages: &[Stage],
    recorded: Recorded,
) -> Result<Vec<PlannedStage>> {
    let mut planned = Vec::new();
    for &stage in stages {
        let mut state = match recorded {
            Recorded::Count => stage_state(Some(ctx), markers, stage, Invariants::Check)?,
            Recorded::Ignore => stage_state(Some(ctx), markers, stage, Invariants::Skip)?,
        };
        if recorded == Recorded::Ignore {
            (state.progress, state.failed) = (Progress::NotDone, None);
        }
        let (action, why) = match state.applicability {
            Applicability::NotForKind(_) | Applicability::NotNeeded => {
                ("skip", state.applicability.to_string())
            }
            Applicability::Undecided(_) => ("decide", state.applicability.to_string()),
            Applicability::Applies => match (state.progress, state.failed) {
                (Progress::Done(done), _) => ("done", format!("finished {}", done.finished_at)),
                (Progress::Stale(_, why), _) => ("rerun", format!("done, but {why}")),
                (Progress::NotDone, Some(f)) => {
                    ("retry", format!("failed {}: {}", f.time, f.message))
                }
                (Progress::NotDone, None) => ("run", stage.description().to_string()),
            },
        };
        planned.push(PlannedStage {
            name: stage.name(),
            action,
            reason: why,
            after: stage.after(),
        });
    }
    Ok(planned)
}
