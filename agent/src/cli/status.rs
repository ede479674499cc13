//! `kubeboot-agent status`: per-phase state from the markers. `--output json` is a stable schema
//! (documented in docs/agent.md) that the end-to-end tests parse; an upgrade's steps follow the
//! phases. Exits 4 when a phase or an upgrade step failed.

use std::process::ExitCode;

use anyhow::Result;
use kubeboot_nodeconfig::exit;
use serde::Serialize;

use super::OutputFormat;
use crate::context::Context;
use crate::error::Stop;
use crate::facts::NodeFacts;
use crate::markers::Markers;
use crate::upgrade::{self, UpgradeRecord};
use crate::workflow::{self, PhaseState, PhaseStatus};

pub type Args = super::ReportArgs;

#[derive(Debug, Serialize)]
pub struct Status {
    pub done: bool,
    pub node: Option<NodeFacts>,
    pub phases: Vec<PhaseStatus>,
    /// The node's latest upgrade (`kubeboot-agent upgrade`), if any.
    pub upgrade: Option<UpgradeStatus>,
}

#[derive(Debug, Serialize)]
pub struct UpgradeStatus {
    #[serde(flatten)]
    pub record: UpgradeRecord,
    pub steps: Vec<PhaseStatus>,
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
    let upgrade = match upgrade::record(&root)? {
        Some(record) => {
            let steps = workflow::statuses_of(
                &Markers::for_upgrade(&root),
                ctx.as_ref(),
                &upgrade::stages(),
            )?;
            Some(UpgradeStatus { record, steps })
        }
        None => None,
    };
    Ok(Status {
        done: Markers::new(&root).all_done(),
        node,
        phases: workflow::statuses(&root, ctx.as_ref())?,
        upgrade,
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
            print_phases(&status.phases)?;
            if let Some(upgrade) = &status.upgrade {
                let r = &upgrade.record;
                match &r.finished_at {
                    Some(at) => println!("upgrade: {} to {}, finished {at}", r.from, r.to),
                    None => println!(
                        "upgrade: {} to {}, started {}, unfinished",
                        r.from, r.to, r.started_at
                    ),
                }
                print_phases(&upgrade.steps)?;
            }
        }
    }
    let steps = status.upgrade.iter().flat_map(|u| &u.steps);
    let failed = status
        .phases
        .iter()
        .chain(steps)
        .any(|p| p.state == PhaseState::Failed);
    Ok(ExitCode::from(if failed {
        exit::PHASE_FAILED
    } else {
        exit::OK
    }))
}

/// One line per phase or step: name, state, and when it finished, why it waits or how it failed.
fn print_phases(phases: &[PhaseStatus]) -> Result<()> {
    for p in phases {
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
    Ok(())
}
