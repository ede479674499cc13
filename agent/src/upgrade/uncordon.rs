//! `uncordon` (upgrade): the node takes pods again, with the operator's or a master's credentials,
//! or a worker's own (a node may set its own Node's `unschedulable`).
//!
//! Inputs: the node's name (facts), the kubeconfig. Outputs: the Node schedulable. Done-marker:
//! `upgrade/uncordon.done`.

use anyhow::Result;

use crate::context::Context;
use crate::exec::deadline;
use crate::phases::Phase;

pub struct Uncordon;

impl Phase for Uncordon {
    fn name(&self) -> &'static str {
        "uncordon"
    }
    fn description(&self) -> &'static str {
        "mark the node schedulable again"
    }
    fn run(&self, ctx: &Context) -> Result<()> {
        let node = ctx.facts()?.node_name;
        super::kubectl(ctx, &["uncordon", &node], deadline::KUBECTL_REQUEST)?;
        Ok(())
    }
}
