//! `join` (extra masters and workers): wait for the control-plane endpoint, then `kubeadm join`.
//!
//! Inputs: `/etc/kubeboot/kubeadm.yaml` (JoinConfiguration with the token and CA pins), rewritten
//! right before `kubeadm join` with the token `secrets` gives then (inline, or the vault's
//! current one: a node created long after the cluster joins with the token of the day); on
//! extra masters the shared PKI, fetched the same way. Outputs: extra masters get the shared CAs in
//! `/etc/kubernetes/pki` before joining and, after joining, the endpoint name mapped to themselves
//! in /etc/hosts (before joining they must reach the first master through it). What
//! `kubeadm join` makes: kubelet.conf, on masters static pods and an etcd member.
//! Done-marker: `phases/join.done`.
//!
//! The endpoint is polled with a TCP connect (`retry`: full jitter, no deadline: a master late or
//! reimaged is waited for as long as it takes, the reason shown by `status`). Re-running after a kill: a node with everything `kubeadm join` writes for the
//! kubelet (and, on a master, the API server manifest) has joined; anything less means a
//! half-finished join, which is reset first; a joined node gets its kubelet started.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use kubeboot_nodeconfig::ControlPlaneEndpoint;
use tracing::info;

use crate::context::Context;
use crate::exec::{deadline, Cmd, Program};
use crate::facts::NodeKind;
use crate::hosts;
use crate::kubeadm;
use crate::kubeadm_node::{leftovers, reset, write_pki};
use crate::paths::{self, KUBEADM_CONFIG};
use crate::phases::Phase;
use crate::provider::Report;
use crate::retry::Backoff;
use crate::secrets;

pub struct Join;

/// The first master may still be pulling images and running init, or be reimaged: wait for as
/// long as it takes.
pub const ENDPOINT_WAIT: Backoff = Backoff {
    first_delay: Duration::from_secs(2),
    initial: Duration::from_secs(2),
    max_delay: Duration::from_secs(30),
    factor: 2.0,
    max_attempts: u32::MAX,
    deadline: None,
};
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Polls `endpoint` with TCP connects until one succeeds, reporting each wait to `report`.
pub fn wait_for_endpoint(
    endpoint: &ControlPlaneEndpoint,
    backoff: &Backoff,
    report: Report,
) -> Result<()> {
    backoff
        .retry_reporting(
            |_| {
                let addrs: Vec<_> = (endpoint.host().to_string(), endpoint.port())
                    .to_socket_addrs()
                    .with_context(|| format!("resolving {endpoint}"))?
                    .collect();
                for addr in &addrs {
                    if TcpStream::connect_timeout(addr, CONNECT_TIMEOUT).is_ok() {
                        return Ok(());
                    }
                }
                let tried: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                bail!(
                    "{endpoint} ({}) does not accept connections yet",
                    tried.join(", ")
                )
            },
            report,
        )
        .with_context(|| format!("the control-plane endpoint {endpoint} never answered"))
}

/// What `kubeadm join` leaves on every node once it has joined: the kubelet's credentials,
/// configuration and flags, and the cluster CA. kubelet.conf alone is not enough: kubeadm may
/// write it before the others, so a kill in between leaves a node whose kubelet cannot start.
const JOINED_FILES: &[&str] = &[
    paths::KUBELET_KUBECONFIG,
    paths::KUBELET_CONFIG,
    paths::KUBELET_FLAGS_ENV,
    paths::CLUSTER_CA_CERT,
];

fn joined(ctx: &Context, kind: NodeKind) -> bool {
    let root = &ctx.root;
    JOINED_FILES.iter().all(|f| root.path(f).exists())
        && (kind == NodeKind::Worker || root.path(paths::API_SERVER_MANIFEST).exists())
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
            if ctx.runs_commands() {
                ctx.waiting_on(|report| {
                    wait_for_endpoint(
                        &ctx.config.cluster.control_plane_endpoint,
                        &ENDPOINT_WAIT,
                        report,
                    )
                })?;
            }
            let config = secrets::resolved(ctx)?;
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
            if let Some(pki) = &config.pki {
                write_pki(&ctx.root, pki)?;
            }
            if kubeadm::write_config(ctx, &config)? {
                info!(
                    phase = self.name(),
                    "the token changed since kubeadm-config: {KUBEADM_CONFIG} rewritten"
                );
            }
            let config_file = ctx.arg_path(paths::KUBEADM_CONFIG);
            ctx.exec(&Cmd::new(
                Program::Kube("kubeadm"),
                ["join", "--config", config_file.as_str()],
                deadline::KUBEADM_JOIN,
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
            first_delay: Duration::ZERO,
            initial: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_attempts,
            deadline: Some(Duration::from_secs(10)),
            ..ENDPOINT_WAIT
        }
    }

    #[test]
    fn waits_until_the_endpoint_listens_and_says_why_meanwhile() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = listener.local_addr().unwrap().to_string().parse().unwrap();
        wait_for_endpoint(&endpoint, &quick(3), &|_| panic!("no wait")).unwrap();
        drop(listener);
        let reasons = std::cell::RefCell::new(Vec::new());
        let err = wait_for_endpoint(&endpoint, &quick(3), &|w| {
            reasons.borrow_mut().push(w.reason.to_string())
        })
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("gave up after 3 attempts"),
            "{err:#}"
        );
        let reasons = reasons.into_inner();
        assert_eq!(reasons.len(), 2);
        assert!(
            reasons[0].contains("does not accept connections yet"),
            "{reasons:?}"
        );
    }
}
