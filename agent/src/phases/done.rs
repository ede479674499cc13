//! `done`: the final marker, written once every phase that applies to this node is done.
//!
//! Inputs: the phase markers. Outputs: `/var/lib/kubeboot/done` (JSON: finishedAt, node name, agent
//! version); the agent's systemd unit does not start again once it exists.
//! Done-marker: `phases/done.done`; re-verified: the final marker still exists.

use anyhow::{bail, Result};
use serde_json::json;

use crate::context::Context;
use crate::markers::{self, Markers, DONE_MARKER};
use crate::phases::{Phase, STEPS};
use crate::workflow::{applicability, Applicability};

pub struct Done;

impl Phase for Done {
    fn name(&self) -> &'static str {
        "done"
    }
    fn description(&self) -> &'static str {
        "write the final marker once every phase for this node is done"
    }
    fn run(&self, ctx: &Context) -> Result<()> {
        let markers = Markers::new(&ctx.root);
        let mut missing = Vec::new();
        for step in STEPS.iter().filter(|s| s.phase.name() != self.name()) {
            let name = step.phase.name();
            let applies = applicability(ctx, step)? == Applicability::Applies;
            if applies && !ctx.skipped.contains(name) && markers.done(name)?.is_none() {
                missing.push(name);
            }
        }
        if ctx.dry_run() {
            println!("[dry-run] done: would write {DONE_MARKER}");
            return Ok(());
        }
        if !missing.is_empty() {
            bail!("phases not done yet: {}", missing.join(", "));
        }
        let facts = ctx.facts()?;
        markers::write_json(
            &ctx.root.path(DONE_MARKER),
            &json!({
                "finishedAt": markers::timestamp(std::time::SystemTime::now()),
                "node": facts.node_name,
                "kind": facts.kind,
                "agentVersion": env!("CARGO_PKG_VERSION"),
            }),
        )
    }
    fn verify(&self, ctx: &Context) -> Result<()> {
        if !Markers::new(&ctx.root).all_done() {
            bail!("{DONE_MARKER} is missing");
        }
        Ok(())
    }
}
