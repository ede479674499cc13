//! THE list of phases, in order, which kind of node runs each and which phases each needs done
//! first. Everything else (the runner, `plan`, `status`) walks this list, then the final marker
//! (`workflow::Stage`). The runner starts a phase as soon as the phases it needs are done, beside
//! whatever else is running (the downloads of `install` while `os` and `container-runtime` prepare
//! the machine), as kops nodeup runs its tasks as a dependency graph; the list order is one valid
//! order of that graph. One phase per file under `phases/`.

use anyhow::Result;

use crate::context::Context;
use crate::facts::NodeKind;

pub mod addons;
pub mod container_runtime;
pub mod control_plane_init;
pub mod harden;
pub mod install;
pub mod join;
pub mod join_token;
pub mod kubeadm_config;
pub mod kubelet;
pub mod metadata;
pub mod os;
pub mod preflight;

/// One named, idempotent step of turning a VM into a node.
pub trait Phase: Sync {
    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    /// Conditions beyond the node kind (e.g. nothing to apply); false means "not needed here".
    fn applies_to(&self, _ctx: &Context) -> Result<bool> {
        Ok(true)
    }
    /// Does the work. Must be safe to re-run after a kill at any point.
    fn run(&self, ctx: &Context) -> Result<()>;
    /// Cheap re-check of the phase's invariants when it is already done; an error makes the
    /// runner forget the marker and run the phase again (e.g. swap turned back on).
    fn verify(&self, _ctx: &Context) -> Result<()> {
        Ok(())
    }
}

/// A phase, the node kinds it runs on, and the phases it needs done (or skipped, or not for this
/// node) before it starts: its inputs come from their outputs. Each names an earlier step.
pub struct Step {
    pub phase: &'static dyn Phase,
    pub runs_on: &'static [NodeKind],
    pub after: &'static [&'static str],
}

use NodeKind::{ExtraMaster, FirstMaster, Worker};
const EVERY_NODE: &[NodeKind] = &[FirstMaster, ExtraMaster, Worker];
const FIRST_MASTER: &[NodeKind] = &[FirstMaster];
const JOINING_NODES: &[NodeKind] = &[ExtraMaster, Worker];
const MASTERS: &[NodeKind] = &[FirstMaster, ExtraMaster];

/// What `kubeadm init` and `kubeadm join` need on the node: the runtime, the binaries, the
/// kubelet's unit and kubeadm's configuration.
const KUBEADM_NEEDS: &[&str] = &["container-runtime", "install", "kubelet", "kubeadm-config"];

#[rustfmt::skip]
pub static STEPS: &[Step] = &[
    Step { phase: &preflight::Preflight, runs_on: EVERY_NODE, after: &[] },
    // The node's name, kind and address, from the provider.
    Step { phase: &metadata::Metadata, runs_on: EVERY_NODE, after: &["preflight"] },
    Step { phase: &os::Os, runs_on: EVERY_NODE, after: &["preflight"] },
    // containerd wants the kernel modules (overlay) and sysctls of `os`.
    Step { phase: &container_runtime::ContainerRuntime, runs_on: EVERY_NODE, after: &["os"] },
    // Needs only the NodeConfig: the downloads run while the machine is prepared.
    Step { phase: &install::Install, runs_on: EVERY_NODE, after: &["preflight"] },
    // Only its unit files: kubeadm starts the kubelet, so its systemd reload need not wait.
    Step { phase: &kubelet::Kubelet, runs_on: EVERY_NODE, after: &["preflight"] },
    Step { phase: &kubeadm_config::KubeadmConfig, runs_on: EVERY_NODE, after: &["metadata"] },
    Step { phase: &control_plane_init::ControlPlaneInit, runs_on: FIRST_MASTER, after: KUBEADM_NEEDS },
    Step { phase: &join::Join, runs_on: JOINING_NODES, after: KUBEADM_NEEDS },
    // The files kubeadm leaves behind, on every kind of node.
    Step { phase: &harden::Harden, runs_on: EVERY_NODE, after: &["control-plane-init", "join"] },
    Step { phase: &addons::Addons, runs_on: FIRST_MASTER, after: &["control-plane-init"] },
    Step { phase: &join_token::JoinToken, runs_on: MASTERS, after: &["control-plane-init", "join"] },
];

impl Step {
    /// True when the phase runs whatever the node's kind (so the kind need not be known yet).
    pub fn runs_on_every_node(&self) -> bool {
        EVERY_NODE.iter().all(|k| self.runs_on.contains(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every phase a step waits for is an earlier step, so the list order is an order the
    /// runner may take (no cycle, no unknown name).
    #[test]
    fn every_step_needs_only_earlier_steps() {
        for (i, step) in STEPS.iter().enumerate() {
            for needed in step.after {
                let at = STEPS.iter().position(|s| s.phase.name() == *needed);
                assert!(
                    at.is_some_and(|at| at < i),
                    "{} needs {needed}, which is not an earlier step",
                    step.phase.name()
                );
            }
        }
    }
}
