//! `kubeadm-upgrade` (upgrade): `kubeadm upgrade apply <target> --yes` on the first master (the
//! cluster's configuration, its control plane's static pods and the kubelet configuration move to
//! the target), `kubeadm upgrade node` on every other node (the static pods of an extra master,
//! the kubelet configuration everywhere, at the version the cluster now names). Both converge when
//! run again.
//!
//! Inputs: the target, kubeadm's credentials on the node (admin.conf on masters, kubelet.conf on
//! workers). On a master it first waits (3 minutes at most) for the API server to answer: a run
//! killed while kubeadm restarted it resumes meanwhile. Outputs: kubeadm's. Done-marker:
//! `upgrade/kubeadm-upgrade.done`.

use anyhow::{bail, Result};

use crate::context::Context;
use crate::exec::{deadline, Cmd, Program};
use crate::facts::NodeKind;
use crate::kubeadm_node::api_server_answers;
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
        // A run killed while kubeadm restarted the API server resumes while it comes back.
        if ctx.config.is_master() && !api_server_answers(ctx) {
            bail!("the API server does not answer (kubectl get --raw /readyz with admin.conf)");
        }
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
