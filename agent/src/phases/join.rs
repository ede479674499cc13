//! `join` (extra masters and workers): wait for the control-plane endpoint, then `kubeadm join`.
//!
//! Inputs: `/etc/kubeboot/kubeadm.yaml` (JoinConfiguration with the token and CA pins), on extra
//! masters the NodeConfig's shared PKI. Outputs: extra masters get the shared CAs in
//! `/etc/kubernetes/pki` before joining and, after joining, the endpoint name mapped to themselves
//! in /etc/hosts (before joining they must reach the first master through it). What
//! `kubeadm join` makes: kubelet.conf, on masters static pods and an etcd member.
//! Done-marker: `phases/join.done`.
//!
//! The endpoint is polled with a TCP connect, exponential backoff with jitter and a deadline, each
//! attempt logged. Re-running after a kill: a node with everything `kubeadm join` writes for the
//! kubelet (and, on a master, the API server manifest) has joined; anything less means a
//! half-finished join, which is reset first; a joined node gets its kubelet started.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use tracing::info;

use crate::context::Context;
use crate::exec::{Cmd, Program};
use crate::facts::NodeKind;
use crate::hosts;
use crate::kubeadm::CONFIG_FILE;
use crate::phases::control_plane_init::{
    leftovers, reset, write_pki, API_SERVER_MANIFEST, KUBELET_CONFIG,
};
use crate::phases::Phase;
use crate::retry::Backoff;

pub struct Join;

pub const KUBELET_CONF: &str = "/etc/kubernetes/kubelet.conf";

/// The first master may still be pulling images and running init: wait up to 20 minutes.
pub const ENDPOINT_WAIT: Backoff = Backoff {
    initial: Duration::from_secs(2),
    max_delay: Duration::from_secs(30),
    factor: 2.0,
    jitter: 0.3,
    max_attempts: u32::MAX,
    deadline: Duration::from_secs(20 * 60),
};
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Polls `host:port` with TCP connects until one succeeds.
pub fn wait_for_endpoint(phase: &str, endpoint: &str, backoff: &Backoff) -> Result<()> {
    backoff
        .retry(|attempt| {
            info!(
                phase,
                "waiting for the control-plane endpoint {endpoint} (attempt {attempt})"
            );
            let addrs: Vec<_> = endpoint
                .to_socket_addrs()
                .with_context(|| format!("resolving {endpoint}"))?
                .collect();
            for addr in &addrs {
                if TcpStream::connect_timeout(addr, CONNECT_TIMEOUT).is_ok() {
                    return Ok(());
                }
            }
            bail!("{endpoint} ({addrs:?}) does not accept connections yet")
        })
        .with_context(|| format!("the control-plane endpoint {endpoint} never answered"))
}

/// What `kubeadm join` leaves on every node once it has joined: the kubelet's credentials,
/// configuration and flags, and the cluster CA. kubelet.conf alone is not enough: kubeadm may
/// write it before the others, so a kill in between leaves a node whose kubelet cannot start.
const JOINED_FILES: &[&str] = &[
    KUBELET_CONF,
    KUBELET_CONFIG,
    "/var/lib/kubelet/kubeadm-flags.env",
    "/etc/kubernetes/pki/ca.crt",
];

fn joined(ctx: &Context, kind: NodeKind) -> bool {
    let root = &ctx.root;
    JOINED_FILES.iter().all(|f| root.path(f).exists())
        && (kind == NodeKind::Worker || root.path(API_SERVER_MANIFEST).exists())
}

impl Phase for Join {
    fn name(&self) -> &'static str {
        "join"
    }
    fn description(&self) -> &'static str {
        "wait for the control-plane endpoint and run kubeadm join"
    }
    fn run(&self, ctx: &Context) -> Result<()> {
        let kind = ctx.facts()?.kind;
        if joined(ctx, kind) {
            info!(phase = self.name(), "this node has joined already");
            // kubeadm starts the kubelet last; a kill just before leaves it enabled but stopped,
            // and only the kubelet registers the node. Starting a running unit changes nothing.
            ctx.exec(&Cmd::systemctl(["start", "kubelet"]))?;
        } else {
            if !ctx.dry_run() {
                wait_for_endpoint(
                    self.name(),
                    &ctx.config.cluster.control_plane_endpoint,
                    &ENDPOINT_WAIT,
                )?;
            }
            let left = leftovers(&ctx.root);
            if !left.is_empty() {
                reset(
                    ctx,
                    &format!(
                        "an earlier kubeadm join did not finish ({})",
                        left.join(", ")
                    ),
                )?;
            }
            if kind == NodeKind::ExtraMaster {
                let pki = ctx
                    .config
                    .pki
                    .as_ref()
                    .context("pki: required on a master")?;
                write_pki(&ctx.root, pki)?;
            }
            let config_file = ctx.arg_path(CONFIG_FILE);
            ctx.exec(&Cmd::new(
                Program::Kube("kubeadm"),
                ["join", "--config", config_file.as_str()],
            ))?;
        }
        if kind == NodeKind::ExtraMaster {
            hosts::map_endpoint_to_this_master(ctx)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn quick(max_attempts: u32) -> Backoff {
        Backoff {
            initial: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_attempts,
            deadline: Duration::from_secs(10),
            ..ENDPOINT_WAIT
        }
    }

    #[test]
    fn waits_until_the_endpoint_listens() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = listener.local_addr().unwrap().to_string();
        wait_for_endpoint("join", &endpoint, &quick(3)).unwrap();
        drop(listener);
        let err = wait_for_endpoint("join", &endpoint, &quick(3)).unwrap_err();
        assert!(
            format!("{err:#}").contains("gave up after 3 attempts"),
            "{err:#}"
        );
    }
}
