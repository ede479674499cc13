//! `kubeadm-upgrade` (upgrade): `kubeadm upgrade apply <target> --yes` on the first master (the
//! cluster's configuration, its control plane's static pods and the kubelet configuration move to
//! the target), `kubeadm upgrade node` on every other node (the static pods of an extra master,
//! the kubelet configuration everywhere, at the version the cluster now names). Both converge when
//! run again.
//!
//! Inputs: the target, kubeadm's credentials on the node (admin.conf on masters, kubelet.conf on
//! workers). Outputs: kubeadm's. Done-marker: `upgrade/kubeadm-upgrade.done`. A run killed while
//! kubeadm restarted the API server fails here until the kubelet has it back up; re-run it.

use anyhow::Result;

use crate::context::Context;
use crate::exec::{deadline, Cmd, Program};
use crate::facts::NodeKind;
use crate::phases::Phase;

pub struct KubeadmUpgrade;

impl Phase for KubeadmUpgrade {
    fn name(&self) -> &'static str {
        "kubeadm-upgrade"
    }
    fn description(&self) -> &'static str {
        "kubeadm upgrade apply (first master) or kubeadm upgrade node (every other node)"
    }
    fn run(&self, ctx: &Context) -> Result<()> {
        let target = ctx.config.cluster.kubernetes_version.to_string();
        let args: Vec<&str> = match ctx.node_kind()? {
            Some(NodeKind::FirstMaster) => vec!["upgrade", "apply", target.as_str(), "--yes"],
            _ => vec!["upgrade", "node"],
        };
        ctx.exec(&Cmd::new(
            Program::Kube("kubeadm"),
            args,
            deadline::KUBEADM_UPGRADE,
        ))?;
        Ok(())
    }
}
