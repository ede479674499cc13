//! `kubelet`: the kubelet's systemd unit and kubeadm's drop-in, enabled (kubeadm starts it).
//!
//! Inputs: none beyond the binaries in /usr/local/bin. Outputs:
//! `/etc/systemd/system/kubelet.service`, `/etc/systemd/system/kubelet.service.d/10-kubeadm.conf`,
//! `systemctl daemon-reload` and `enable kubelet`. Done-marker: `phases/kubelet.done`.
//!
//! The kubelet's settings reach it through kubeadm, not through files of ours: the CIS-hardened
//! `KubeletConfiguration` (built here, see `kubelet_configuration`) goes into the kubeadm config
//! on init (kubeadm writes /var/lib/kubelet/config.yaml and the cluster's kubelet-config ConfigMap
//! that joining nodes download), and per-node flags (labels, provider-id, cloud provider) go into
//! `nodeRegistration.kubeletExtraArgs` on init and join (see `kubelet_extra_args`).

use anyhow::Result;
use serde_json::{json, Value};

use crate::context::Context;
use crate::exec::Cmd;
use crate::facts::NodeFacts;
use crate::fsx;
use crate::phases::Phase;

pub struct Kubelet;

pub const UNIT_FILE: &str = "/etc/systemd/system/kubelet.service";
pub const DROP_IN_FILE: &str = "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf";
pub const CRI_SOCKET: &str = "unix:///run/containerd/containerd.sock";

/// TLS 1.2 suites with forward secrecy and AEAD only (CIS 4.2.12).
pub const TLS_CIPHER_SUITES: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
];

/// The cluster-wide kubelet configuration, CIS-hardened.
pub fn kubelet_configuration() -> Value {
    json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "authentication": {
            "anonymous": {"enabled": false},
            "webhook": {"enabled": true, "cacheTTL": "2m0s"},
            "x509": {"clientCAFile": "/etc/kubernetes/pki/ca.crt"},
        },
        "authorization": {
            "mode": "Webhook",
            "webhook": {"cacheAuthorizedTTL": "5m0s", "cacheUnauthorizedTTL": "30s"},
        },
        "readOnlyPort": 0,
        "protectKernelDefaults": true,
        "makeIPTablesUtilChains": true,
        "cgroupDriver": "systemd",
        "containerRuntimeEndpoint": CRI_SOCKET,
        "rotateCertificates": true,
        // Serving certificates from the cluster CA need a CSR approver, which the cluster does not
        // run; without one `kubectl logs/exec` would fail. The kubelet keeps its self-signed cert.
        "serverTLSBootstrap": false,
        "tlsMinVersion": "VersionTLS12",
        "tlsCipherSuites": TLS_CIPHER_SUITES,
        "eventRecordQPS": 5,
        "streamingConnectionIdleTimeout": "5m0s",
        "failSwapOn": true,
        // CIS 4.2.13: a fork bomb in one pod must not exhaust the node's PIDs.
        "podPidsLimit": 4096,
        "seccompDefault": true,
    })
}

/// Per-node kubelet flags as kubeadm v1beta4's `[{name, value}]` list.
pub fn kubelet_extra_args(facts: &NodeFacts) -> Vec<(String, String)> {
    let labels: Vec<String> = facts
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut args = vec![("node-labels".to_string(), labels.join(","))];
    if let Some(id) = &facts.provider_id {
        args.push(("cloud-provider".into(), "external".into()));
        args.push(("provider-id".into(), id.clone()));
    }
    args
}

impl Phase for Kubelet {
    fn name(&self) -> &'static str {
        "kubelet"
    }
    fn description(&self) -> &'static str {
        "install the kubelet unit and kubeadm's drop-in, enable the kubelet"
    }
    fn run(&self, ctx: &Context) -> Result<()> {
        // 0600: CIS 4.1.1 wants the kubelet's service files readable by root only.
        fsx::write_if_changed(
            &ctx.root.path(UNIT_FILE),
            include_bytes!("../../../units/kubelet.service"),
            0o600,
        )?;
        fsx::write_if_changed(
            &ctx.root.path(DROP_IN_FILE),
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
        let drop_in = std::fs::read_to_string(sandbox.root().path(DROP_IN_FILE)).unwrap();
        assert!(drop_in.contains("ExecStart=/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS"));
    }

    #[test]
    fn kubelet_configuration_is_cis_hardened() {
        let c = kubelet_configuration();
        assert_eq!(c["authentication"]["anonymous"]["enabled"], false);
        assert_eq!(c["authorization"]["mode"], "Webhook");
        assert_eq!(c["readOnlyPort"], 0);
        assert_eq!(c["protectKernelDefaults"], true);
        assert_eq!(c["cgroupDriver"], "systemd");
    }
}
