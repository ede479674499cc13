//! `install`: the Kubernetes binaries of the NodeConfig's version, verified.
//!
//! Inputs: `cluster.kubernetesVersion` and `artifacts` of the NodeConfig; what the image baked
//! (`/etc/kubeboot/baked.json`). Outputs: kubelet, kubeadm, kubectl in `/usr/local/bin` (plus crictl
//! and the CNI plugins when the NodeConfig names them), each checked against its SHA-256; baked
//! copies that match are used as they are. All of it is `crate::artifacts`; this phase only calls
//! it. Done-marker: `phases/install.done`; re-verified: the Kubernetes binaries are still there.

use anyhow::{bail, Result};

use crate::artifacts::{self, ArtifactSet, BIN_DIR, KUBERNETES_BINARIES};
use crate::context::Context;
use crate::phases::Phase;

pub struct Install;

impl Phase for Install {
    fn name(&self) -> &'static str {
        "install"
    }
    fn description(&self) -> &'static str {
        "install kubelet, kubeadm, kubectl (and crictl, CNI plugins) verified, baked or fetched"
    }
    fn run(&self, ctx: &Context) -> Result<()> {
        artifacts::install_for_phase(ctx, &ArtifactSet::for_node(&ctx.config))
    }
    fn verify(&self, ctx: &Context) -> Result<()> {
        let missing: Vec<&str> = KUBERNETES_BINARIES
            .into_iter()
            .filter(|name| !ctx.root.path(format!("{BIN_DIR}/{name}")).exists())
            .collect();
        if !missing.is_empty() {
            bail!("{} missing from {BIN_DIR}", missing.join(", "));
        }
        Ok(())
    }
}
