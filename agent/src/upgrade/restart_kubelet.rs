//! `restart-kubelet` (upgrade): systemd reloads and restarts the kubelet, which now runs the new
//! binary with the configuration `kubeadm upgrade` wrote.
//!
//! Inputs: the installed kubelet. Outputs: the kubelet running. Done-marker:
//! `upgrade/restart-kubelet.done`.

use anyhow::Result;

use crate::context::Context;
use crate::exec::Cmd;
use crate::phases::Phase;

pub struct RestartKubelet;

impl Phase for RestartKubelet {
    fn name(&self) -> &'static str {
        "restart-kubelet"
    }
    fn description(&self) -> &'static str {
        "reload systemd and restart the kubelet on the new binary"
    }
    fn run(&self, ctx: &Context) -> Result<()> {
        ctx.exec(&Cmd::systemctl(["daemon-reload"]))?;
        ctx.exec(&Cmd::systemctl(["restart", "kubelet"]))?;
        Ok(())
    }
}
