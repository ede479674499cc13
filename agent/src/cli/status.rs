//! `kubeboot-agent status`: per-phase state from the markers. `--output json` is a stable schema
//! (documented in docs/agent.md) that the end-to-end tests parse.

use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

use crate::context::Context;
use crate::facts::NodeFacts;
use crate::markers::Markers;
use crate::workflow::{self, PhaseStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub node: super::NodeArgs,
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub done: bool,
    pub node: Option<NodeFacts>,
    pub phases: Vec<PhaseStatus>,
}

pub fn collect(args: &Args) -> Result<Status> {
    let root = args.node.root();
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
        Output::Json => println!("{}", serde_json::to_string_pretty(&status)?),
        Output::Text => {
            println!("done: {}", status.done);
            if let Some(node) = &status.node {
                println!("node: {} ({})", node.node_name, node.kind);
            }
            for p in &status.phases {
                let state = serde_json::to_value(p.state)?;
                let detail = match (&p.finished_at, &p.last_error) {
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
    Ok(ExitCode::SUCCESS)
}
