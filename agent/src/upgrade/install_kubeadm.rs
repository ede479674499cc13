//! `install-kubeadm` (upgrade): kubeadm of the target version, verified, before it upgrades
//! anything (kubeadm refuses to upgrade to a version newer than itself).
//!
//! Inputs: the target version, the NodeConfig's release mirror. Outputs: `/usr/local/bin/kubeadm`.
//! Done-marker: `upgrade/install-kubeadm.done`.

use anyhow::Result;

use crate::context::Context;
use crate::phases::Phase;

pub struct InstallKubeadm;

impl Phase for InstallKubeadm {
    fn name(&self) -> &'static str {
        "install-kubeadm"
    }
    fn description(&self) -> &'static str {
        "install kubeadm of the target version, verified"
    }
    fn run(&self, ctx: &Context) -> Result<()> {
        super::install_binaries(ctx, &["kubeadm"])
    }
}
