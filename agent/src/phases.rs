//! THE list of phases, in order, and which kind of node runs each. Everything else (the runner,
//! `plan`, `status`) walks this list, then the final marker (`workflow::Stage`). One phase per
//! file under `phases/`.

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

/// A phase and the node kinds it runs on.
pub struct Step {
    pub phase: &'static dyn Phase,
    pub runs_on: &'static [NodeKind],
}

use NodeKind::{ExtraMaster, FirstMaster, Worker};
const EVERY_NODE: &[NodeKind] = &[FirstMaster, ExtraMaster, Worker];
const FIRST_MASTER: &[NodeKind] = &[FirstMaster];
const JOINING_NODES: &[NodeKind] = &[ExtraMaster, Worker];
const MASTERS: &[NodeKind] = &[FirstMaster, ExtraMaster];

#[rustfmt::skip]
pub static STEPS: &[Step] = &[
    Step { phase: &preflight::Preflight, runs_on: EVERY_NODE },
    Step { phase: &metadata::Metadata, runs_on: EVERY_NODE },
    Step { phase: &os::Os, runs_on: EVERY_NODE },
    Step { phase: &container_runtime::ContainerRuntime, runs_on: EVERY_NODE },
    Step { phase: &install::Install, runs_on: EVERY_NODE },
    Step { phase: &kubelet::Kubelet, runs_on: EVERY_NODE },
    Step { phase: &kubeadm_config::KubeadmConfig, runs_on: EVERY_NODE },
    Step { phase: &control_plane_init::ControlPlaneInit, runs_on: FIRST_MASTER },
    Step { phase: &join::Join, runs_on: JOINING_NODES },
    Step { phase: &harden::Harden, runs_on: EVERY_NODE },
    Step { phase: &addons::Addons, runs_on: FIRST_MASTER },
    Step { phase: &join_token::JoinToken, runs_on: MASTERS },
];

impl Step {
    /// True when the phase runs whatever the node's kind (so the kind need not be known yet).
    pub fn runs_on_every_node(&self) -> bool {
        EVERY_NODE.iter().all(|k| self.runs_on.contains(k))
    }
}
