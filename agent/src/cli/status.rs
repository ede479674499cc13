//! `kubeboot-agent status`: per-phase state from the markers. `--output json` is a stable schema
//! (documented in docs/agent.md) that the end-to-end tests parse. Exits 4 when a phase failed.

use std::process::ExitCode;

use anyhow::Result;
use kubeboot_nodeconfig::exit;
use serde::Serialize;

use super::OutputFormat;
use crate::context::Context;
use crate::error::Stop;
use crate::facts::NodeFacts;
use crate::markers::Markers;
use crate::workflow::{self, PhaseState, PhaseStatus};

pub type Args = super::ReportArgs;

#[derive(Debug, Serialize)]
pub struct Status {
    pub done: bool,
    pub node: Option<NodeFacts>,
    pub phases: Vec<PhaseStatus>,
}

pub fn collect(args: &Args) -> Result<Status> {
    let root = args.node.root();
    // A mistyped --root would otherwise read as a node where nothing has run yet.
    if !args.node.common.root.is_dir() {
        return Err(Stop::BadConfig(format!(
            "--root {}: no such directory",
            args.node.common.root.display()
        ))
        .into());
    }
    let ctx = Context::load(root.clone(), args.node.config()).ok();
    let node = match &ctx {
        Some(ctx) => ctx.try_facts()?,
        None => None,
    };
    Ok(Status {
        done: Markers::new(&root).all_done(),
        node,
        phases: workflow::statuses(&root, ctx.as_ref())?,
    })
}

pub fn run(args: Args) -> Result<ExitCode> {
    let status = collect(&args)?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&status)?),
        OutputFormat::Text => {
            println!("done: {}", status.done);
            if let Some(node) = &status.node {
                println!("node: {} ({})", node.node_name, node.kind);
            }
            for p in &status.phases {
                let state = serde_json::to_value(p.state)?;
                let detail = match (&p.finished_at, &p.last_error) {
                    (Some(at), _) if !p.ran_beside.is_empty() => format!(
                        "{at} ({} ms, beside {})",
                        p.duration_ms.unwrap_or(0),
                        p.ran_beside.join(", ")
                    ),
                    (Some(at), _) => format!("{at} ({} ms)", p.duration_ms.unwrap_or(0)),
                    (None, _) if p.waiting.is_some() => {
                        let w = p.waiting.as_ref().expect("checked");
                        format!("since {} (attempt {}): {}", w.since, w.attempt, w.reason)
                    }
                    (None, Some(err)) => err.clone(),
                    (None, None) => String::new(),
                };
                println!(
                    "{:<20} {:<8} {detail}",
                    p.name,
                    state.as_str().unwrap_or("")
                );
            }
        }
    }
    let failed = status.phases.iter().any(|p| p.state == PhaseState::Failed);
    Ok(ExitCode::from(if failed {
        exit::PHASE_FAILED
    } else {
        exit::OK
    }))
}
