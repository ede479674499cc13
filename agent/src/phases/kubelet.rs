//! `kubelet`: the kubelet's systemd unit and kubeadm's drop-in, enabled (kubeadm starts it).
//!
//! Inputs: none (the unit names `/usr/local/bin/kubelet`, which `install` puts there beside this
//! phase; kubeadm, which starts the kubelet, runs after both). Outputs:
//! `/etc/systemd/system/kubelet.service`, `/etc/systemd/system/kubelet.service.d/10-kubeadm.conf`,
//! `systemctl daemon-reload` and `enable kubelet`. Done-marker: `phases/kubelet.done`.
//!
//! The kubelet's settings reach it through kubeadm, not through files of ours: the CIS-hardened
//! `KubeletConfiguration` (built in `crate::kubelet`) goes into the kubeadm config
//! on init (kubeadm writes /var/lib/kubelet/config.yaml and the cluster's kubelet-config ConfigMap
//! that joining nodes download), and per-node flags (labels, provider-id, cloud provider) go into
//! `nodeRegistration.kubeletExtraArgs` on init and join (see `kubelet_extra_args`).

use anyhow::Result;

use crate::context::Context;
use crate::exec::Cmd;
use crate::paths;
use crate::phases::Phase;

pub struct Kubelet;

impl Phase for Kubelet {
    fn name(&self) -> &'static str {
        "kubelet"
    }
    fn description(&self) -> &'static str {
        "install the kubelet unit and kubeadm's drop-in, enable the kubelet"
    }
    fn run(&self, ctx: &Context) -> Result<()> {
        // 0600: CIS 4.1.1 wants the kubelet's service files readable by root only.
        ctx.root.write_if_changed(
            paths::KUBELET_UNIT,
            include_bytes!("../../../units/kubelet.service"),
            0o600,
        )?;
        ctx.root.write_if_changed(
            paths::KUBELET_DROP_IN,
            include_bytes!("../../../units/kubelet.service.d/10-kubeadm.conf"),
            0o600,
        )?;
        ctx.exec(&Cmd::systemctl(["daemon-reload"]))?;
        // Reloaded just above; a second reload by `enable` would only cost time.
        ctx.exec(&Cmd::systemctl(["enable", "--no-reload", "kubelet"]))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_idempotent, fixture, Sandbox};

    #[test]
    fn writes_unit_and_drop_in_idempotently() {
        let sandbox = Sandbox::new("node-1");
        let ctx = sandbox.context(fixture::worker());
        assert_idempotent(&Kubelet, &ctx);
        let drop_in = std::fs::read_to_string(sandbox.root().path(paths::KUBELET_DROP_IN)).unwrap();
        assert!(drop_in.contains("ExecStart=/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS"));
        // The units are reloaded after they are written, then the kubelet enabled (on each run).
        let once = [
            "systemctl daemon-reload",
            "systemctl enable --no-reload kubelet",
        ];
        assert_eq!(ctx.runner.recorded(), [once, once].concat());
    }
}
