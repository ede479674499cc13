//! What kubeadm expects and leaves on the node, shared by `control-plane-init` and `join`: the
//! shared PKI written where kubeadm reads it, the files of an unfinished init or join, the reset
//! that clears them, and whether the API server answers.

use std::time::Duration;

use anyhow::Result;
use kubeboot_nodeconfig::SharedPki;
use tracing::{info, warn};

use crate::context::Context;
use crate::exec::{deadline, Cmd, Program};
use crate::paths::{self, PKI_DIR};
use crate::retry::Backoff;
use crate::root::Root;

/// Probing the API server: a restarted control plane may take up to 3 minutes to answer before
/// `control-plane-init` counts init as dead.
const API_WAIT: Backoff = Backoff {
    first_delay: Duration::ZERO,
    initial: Duration::from_secs(1),
    max_delay: Duration::from_secs(10),
    factor: 2.0,
    max_attempts: u32::MAX,
    deadline: Some(Duration::from_secs(180)),
};

/// Whether the API server answers with the admin credentials, retrying until the deadline.
pub fn api_server_answers(ctx: &Context) -> bool {
    let admin_conf = ctx.arg_path(paths::ADMIN_CONF);
    let probe = Cmd::new(
        Program::Kube("kubectl"),
        [
            "--kubeconfig",
            admin_conf.as_str(),
            "get",
            "--raw",
            "/readyz",
        ],
        deadline::KUBECTL_REQUEST,
    );
    API_WAIT
        .retry(|attempt| {
            info!(
                phase = ctx.phase(),
                "is the API server up? (attempt {attempt})"
            );
            anyhow::ensure!(ctx.runner.probe(ctx.phase(), &probe), "not ready");
            Ok(())
        })
        .is_ok()
}

/// Writes the shared CAs and the service-account key pair where kubeadm expects them.
pub fn write_pki(root: &Root, pki: &SharedPki) -> Result<()> {
    root.create_dir_with_mode(paths::PKI_DIR, 0o700)?;
    root.create_dir_with_mode(format!("{PKI_DIR}/etcd"), 0o700)?;
    for (_, stem, public_part, pair) in pki.pairs() {
        let public = format!("{PKI_DIR}/{stem}.{}", public_part.extension());
        let private = format!("{PKI_DIR}/{stem}.key");
        root.write_if_changed(public, pair.public.as_bytes(), 0o644)?;
        root.write_if_changed(private, pair.private.expose().as_bytes(), 0o600)?;
    }
    Ok(())
}

/// Files a started-but-unfinished kubeadm init or join leaves behind.
pub fn leftovers(root: &Root) -> Vec<&'static str> {
    let manifests =
        std::fs::read_dir(root.path(paths::MANIFESTS_DIR)).is_ok_and(|mut d| d.next().is_some());
    [
        (paths::ADMIN_CONF, root.path(paths::ADMIN_CONF).exists()),
        (
            paths::KUBELET_KUBECONFIG,
            root.path(paths::KUBELET_KUBECONFIG).exists(),
        ),
        (paths::MANIFESTS_DIR, manifests),
        (
            paths::ETCD_MEMBER_DIR,
            root.path(paths::ETCD_MEMBER_DIR).exists(),
        ),
    ]
    .into_iter()
    .filter_map(|(path, present)| present.then_some(path))
    .collect()
}

/// `kubeadm reset -f`: back to a clean node after a half-finished init or join.
pub fn reset(ctx: &Context, why: &str) -> Result<()> {
    warn!(
        phase = ctx.phase(),
        "{why}: resetting with kubeadm before trying again"
    );
    ctx.exec(&Cmd::new(
        Program::Kube("kubeadm"),
        ["reset", "-f"],
        deadline::KUBEADM_RESET,
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsx;
    use crate::testing::Sandbox;

    #[test]
    fn finds_leftovers_of_a_dead_init() {
        let sandbox = Sandbox::new("node-1");
        let root = sandbox.root();
        assert!(leftovers(&root).is_empty());
        fsx::write_atomic(
            &root.path("/etc/kubernetes/manifests/etcd.yaml"),
            b"x",
            0o600,
        )
        .unwrap();
        assert_eq!(leftovers(&root), vec![paths::MANIFESTS_DIR]);
    }
}
