//! `check` (upgrade): before a node other than the first master changes anything, the cluster's
//! control plane must be at the target already (kubeadm's `upgrade node` takes its version from
//! the cluster, and a kubelet must not be newer than the API server).
//!
//! Inputs: the kubeadm-config ConfigMap's ClusterConfiguration (through the operator's or the
//! node's kubeconfig), the target. Outputs: none. Done-marker: `upgrade/check.done`.

use anyhow::{bail, Context as _, Result};
use kubeboot_nodeconfig::KubernetesVersion;

use crate::context::Context;
use crate::exec::deadline;
use crate::facts::NodeKind;
use crate::phases::Phase;

pub struct Check;

impl Phase for Check {
    fn name(&self) -> &'static str {
        "check"
    }
    fn description(&self) -> &'static str {
        "check that the control plane is at the target before a node other than the first master follows"
    }
    fn run(&self, ctx: &Context) -> Result<()> {
        if ctx.node_kind()? == Some(NodeKind::FirstMaster) {
            // `kubeadm upgrade apply` enforces the version-skew policy there itself.
            return Ok(());
        }
        let document = super::kubectl(
            ctx,
            &[
                "--namespace=kube-system",
                "get",
                "configmap",
                "kubeadm-config",
                "--output=jsonpath={.data.ClusterConfiguration}",
            ],
            deadline::KUBECTL_REQUEST,
        )?;
        let cluster = control_plane_version(&document)?;
        let target = &ctx.config.cluster.kubernetes_version;
        if &cluster != target {
            bail!(
                "the control plane is at {cluster}, not {target}: upgrade the first master first (kubeboot-agent upgrade --to {target} there)"
            );
        }
        Ok(())
    }
}

/// `kubernetesVersion` of a ClusterConfiguration document.
fn control_plane_version(document: &str) -> Result<KubernetesVersion> {
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(document).context("the cluster's ClusterConfiguration")?;
    doc["kubernetesVersion"]
        .as_str()
        .context("the cluster's ClusterConfiguration has no kubernetesVersion")?
        .parse()
        .map_err(anyhow::Error::msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cluster_version() {
        let doc = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.37.1\n";
        assert_eq!(control_plane_version(doc).unwrap().to_string(), "v1.37.1");
        assert!(control_plane_version("kind: ClusterConfiguration\n").is_err());
    }
}
