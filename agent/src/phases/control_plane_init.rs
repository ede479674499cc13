//! `control-plane-init` (first master only): the shared cluster PKI, then `kubeadm init`.
//!
//! Inputs: the shared PKI (`secrets`: inline `pki` or the vault's PKI secret, fetched right
//! before it is written), `/etc/kubeboot/kubeadm.yaml`. Outputs: the CAs and the
//! service-account key pair in `/etc/kubernetes/pki` (keys 0600, certificates 0644, directories
//! 0700), the endpoint name mapped to this master in /etc/hosts, and whatever `kubeadm init`
//! makes (static pods, admin.conf, the bootstrap token from the NodeConfig).
//! Done-marker: `phases/control-plane-init.done`.
//!
//! Re-running after a kill: if admin.conf, the API server manifest and the kubelet's config (so
//! the kubelet can run the static pods) exist and the API server answers, init got at least as
//! far as a running control plane, so the remaining (idempotent) init phases are run again
//! instead of a destructive reset. If the API does not answer within the deadline, or only
//! earlier leftovers exist (e.g. admin.conf without the kubelet's config), init died half-way:
//! `kubeadm reset -f` (which also empties /etc/kubernetes/pki), then the PKI is written again and
//! init runs from the start.

use std::time::Duration;

use anyhow::Result;
use tracing::info;

use crate::context::Context;
use crate::exec::{deadline, Cmd, Program};
use crate::hosts;
use crate::kubeadm_node::{api_server_answers, leftovers, reset, write_pki};
use crate::paths;
use crate::phases::Phase;
use crate::secrets;

pub struct ControlPlaneInit;

/// The init phases that may not have run when the control plane is up; each is safe to run
/// again. kubelet-start is among them: kubeadm may start the control plane before it.
const FINISHING_PHASES: &[&[&str]] = &[
    &["kubelet-start"],
    &["upload-config", "all"],
    &["mark-control-plane"],
    &["bootstrap-token", "--skip-token-print"],
    &["kubelet-finalize", "all"],
    &["addon", "all"],
];

fn kubeadm(ctx: &Context, args: &[&str], deadline: Duration) -> Result<()> {
    ctx.exec(&Cmd::new(
        Program::Kube("kubeadm"),
        args.iter().copied(),
        deadline,
    ))
    .map(drop)
}

impl Phase for ControlPlaneInit {
    fn name(&self) -> &'static str {
        "control-plane-init"
    }
    fn description(&self) -> &'static str {
        "write the shared PKI and run kubeadm init (first master)"
    }
    fn run(&self, ctx: &Context) -> Result<()> {
        let config_file = ctx.arg_path(paths::KUBEADM_CONFIG);
        // Without its static pod manifest and the kubelet's configuration nothing will ever start
        // the API server: no use waiting for it.
        let control_plane_written = [
            paths::ADMIN_CONF,
            paths::API_SERVER_MANIFEST,
            paths::KUBELET_CONFIG,
        ]
        .iter()
        .all(|f| ctx.root.path(f).exists());
        if control_plane_written && ctx.runs_commands() && api_server_answers(ctx) {
            info!(
                phase = self.name(),
                "the control plane is up; finishing init idempotently"
            );
            for phase in FINISHING_PHASES {
                let mut args = vec!["init", "phase"];
                args.extend_from_slice(phase);
                args.extend_from_slice(&["--config", config_file.as_str()]);
                kubeadm(ctx, &args, deadline::KUBEADM_INIT_PHASE)?;
            }
            return Ok(());
        }
        let left = leftovers(&ctx.root);
        if !left.is_empty() {
            reset(
                ctx,
                &format!(
                    "an earlier kubeadm init did not finish ({})",
                    left.join(", ")
                ),
            )?;
        }
        write_pki(&ctx.root, &secrets::shared_pki(ctx)?)?;
        hosts::map_endpoint_to_this_master(ctx)?;
        kubeadm(
            ctx,
            &[
                "init",
                "--config",
                config_file.as_str(),
                "--skip-token-print",
            ],
            deadline::KUBEADM_INIT,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::NodeKind;
    use crate::testing::{assert_idempotent, fixture, Sandbox};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_the_shared_pki_with_private_modes() {
        let sandbox = Sandbox::new("node-1");
        let config = fixture::first_master();
        sandbox.with_facts(&config, NodeKind::FirstMaster);
        let ctx = sandbox.context(config);
        assert_idempotent(&ControlPlaneInit, &ctx);
        let mode = |p: &str| {
            std::fs::metadata(sandbox.root().path(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("/etc/kubernetes/pki/ca.key"), 0o600);
        assert_eq!(mode("/etc/kubernetes/pki/ca.crt"), 0o644);
        assert_eq!(mode("/etc/kubernetes/pki/etcd/ca.key"), 0o600);
        assert_eq!(mode("/etc/kubernetes/pki/front-proxy-ca.crt"), 0o644);
        assert_eq!(mode("/etc/kubernetes/pki/sa.pub"), 0o644);
        assert_eq!(mode("/etc/kubernetes/pki/sa.key"), 0o600);
        assert_eq!(mode("/etc/kubernetes/pki"), 0o700);
        let hosts = std::fs::read_to_string(sandbox.root().path("/etc/hosts")).unwrap();
        assert!(hosts.contains("10.0.0.4 api.demo.example"), "{hosts}");
    }
}
