//! `install-kubelet` (upgrade): kubelet and kubectl of the target version, verified, into place
//! beside the running kubelet (renamed over it: the running process keeps the old file), and the
//! installed kubelet's own `--version` checked.
//!
//! Inputs: the target version, the NodeConfig's release mirror. Outputs: `/usr/local/bin/kubelet`
//! and `kubectl`. Done-marker: `upgrade/install-kubelet.done`.

use anyhow::{bail, Result};

use crate::artifacts::BIN_DIR;
use crate::context::Context;
use crate::exec::deadline;
use crate::phases::Phase;

pub struct InstallKubelet;

impl Phase for InstallKubelet {
    fn name(&self) -> &'static str {
        "install-kubelet"
    }
    fn description(&self) -> &'static str {
        "install kubelet and kubectl of the target version, verified"
    }
    fn run(&self, ctx: &Context) -> Result<()> {
        super::install_binaries(ctx, &["kubelet", "kubectl"])?;
        let kubelet = ctx.root.path(format!("{BIN_DIR}/kubelet"));
        let said = ctx.runner.query(
            ctx.phase(),
            &kubelet,
            &["--version"],
            deadline::VERSION_QUERY,
        )?;
        let target = &ctx.config.cluster.kubernetes_version;
        // `Kubernetes v1.37.1`, as the kubelet prints it.
        if said.split_whitespace().nth(1) != Some(target.to_string().as_str()) {
            bail!(
                "the installed kubelet says {:?}, not Kubernetes {target}",
                said.trim()
            );
        }
        Ok(())
    }
}
