//! The kubelet's settings, which reach it through kubeadm's configuration (see `crate::kubeadm`):
//! the cluster-wide CIS-hardened `KubeletConfiguration` and the per-node flags.

use serde_json::{json, Value};

use crate::facts::NodeFacts;
use crate::{paths, policy};

/// The kubelet's and kubeadm's name for containerd's socket.
pub fn cri_socket() -> String {
    format!("unix://{}", paths::CONTAINERD_SOCKET)
}

/// The cluster-wide kubelet configuration, CIS-hardened.
pub fn kubelet_configuration() -> Value {
    json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "authentication": {
            "anonymous": {"enabled": false},
            "webhook": {"enabled": true, "cacheTTL": "2m0s"},
            "x509": {"clientCAFile": paths::CLUSTER_CA_CERT},
        },
        "authorization": {
            "mode": "Webhook",
            "webhook": {"cacheAuthorizedTTL": "5m0s", "cacheUnauthorizedTTL": "30s"},
        },
        "readOnlyPort": 0,
        "protectKernelDefaults": true,
        "makeIPTablesUtilChains": true,
        "cgroupDriver": "systemd",
        "containerRuntimeEndpoint": cri_socket(),
        "rotateCertificates": true,
        // Serving certificates from the cluster CA need a CSR approver, which the cluster does not
        // run; without one `kubectl logs/exec` would fail. The kubelet keeps its self-signed cert.
        "serverTLSBootstrap": false,
        "tlsMinVersion": "VersionTLS12",
        "tlsCipherSuites": policy::TLS_CIPHER_SUITES,
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

#[cfg(test)]
mod tests {
    use super::*;

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
