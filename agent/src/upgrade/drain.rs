//! `drain` (upgrade): the node's pods go elsewhere before its kubelet is replaced: `kubectl
//! drain --ignore-daemonsets --delete-emptydir-data` with a master's admin credentials or the
//! operator's `--kubeconfig`.
//! A worker's own credentials may not evict pods: without `--kubeconfig` the operator drains it
//! beforehand, and this step checks that it is cordoned.
//!
//! Inputs: the node's name (facts), the kubeconfig. Outputs: the Node cordoned, its pods evicted.
//! Done-marker: `upgrade/drain.done`.

use anyhow::{bail, Result};

use crate::context::Context;
use crate::exec::deadline;
use crate::phases::Phase;

pub struct Drain;

/// `kubectl drain --timeout`: what the step waits for evictions (PodDisruptionBudgets) at most.
const DRAIN_TIMEOUT: &str = "--timeout=10m";

impl Phase for Drain {
    fn name(&self) -> &'static str {
        "drain"
    }
    fn description(&self) -> &'static str {
        "cordon the node and evict its pods (a worker without --kubeconfig: check it was drained)"
    }
    fn run(&self, ctx: &Context) -> Result<()> {
        let node = ctx.facts()?.node_name;
        if super::operator_kubeconfig(ctx)?.is_some() {
            super::kubectl(
                ctx,
                &[
                    "drain",
                    &node,
                    "--ignore-daemonsets",
                    // The disk driver's controller (on the masters) keeps its socket in an
                    // emptyDir: an evicted pod loses its emptyDir either way.
                    "--delete-emptydir-data",
                    DRAIN_TIMEOUT,
                ],
                deadline::KUBECTL_DRAIN,
            )?;
        } else {
            let unschedulable = super::kubectl(
                ctx,
                &[
                    "get",
                    "node",
                    &node,
                    "--output=jsonpath={.spec.unschedulable}",
                ],
                deadline::KUBECTL_REQUEST,
            )?;
            if unschedulable.trim() != "true" {
                bail!(
                    "worker {node} is not cordoned: drain it first (kubectl drain {node} --ignore-daemonsets --delete-emptydir-data), or pass --kubeconfig with credentials that may evict pods"
                );
            }
        }
        Ok(())
    }
}
