//! kubeadm's configuration documents for this node, in the apiVersion the Kubernetes version wants
//! (`releases::Release::kubeadm_api_version`, the one place that choice is made).
//!
//! First master: InitConfiguration + ClusterConfiguration + KubeletConfiguration. Extra master:
//! JoinConfiguration with a `controlPlane` section (the shared CAs are already on disk, so no
//! certificate key is needed). Worker: JoinConfiguration. The bootstrap token and CA pins are only
//! ever in this file (0600), never on a command line.
//!
//! kubeadm v1beta4 writes component flags (`extraArgs`, `kubeletExtraArgs`) as a list of
//! `{name, value}`, in the order given.

use anyhow::{Context as _, Result};
use kubeboot_nodeconfig::{NodeConfig, ProviderName};
use serde_json::{json, Value};

use crate::apiserver;
use crate::context::Context;
use crate::facts::{NodeFacts, NodeKind};
use crate::kubelet::{cri_socket, kubelet_configuration, kubelet_extra_args};
use crate::paths;

/// kubeadm's token discovery gives up after this (a Go duration, JoinConfiguration.timeouts).
const JOIN_DISCOVERY_TIMEOUT: &str = "2m0s";
/// The group kubeadm's node bootstrap tokens belong to (its RBAC rules are bound to it).
const BOOTSTRAP_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
/// The key type of the certificates kubeadm signs: the shared CAs kubeboot generates are ECDSA
/// P-256, and kubeadm's default (RSA-2048) would mix key types under them.
const ENCRYPTION_ALGORITHM: &str = "ECDSA-P256";

/// Writes kubeadm's configuration for `config` (with its secrets resolved); returns whether it
/// changed.
pub fn write_config(ctx: &Context, config: &NodeConfig) -> Result<bool> {
    let text = render(config, &ctx.facts()?)?;
    ctx.root.create_dir_with_mode(paths::CONFIG_DIR, 0o700)?;
    ctx.root
        .write_if_changed(paths::KUBEADM_CONFIG, text.as_bytes(), 0o600)
}

fn args(pairs: &[(String, String)]) -> Value {
    pairs
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect()
}

/// kube-controller-manager flags: the hardened set, the cluster name and, on Azure, the external
/// cloud provider (cloud controllers run in cloud-provider-azure's cloud-controller-manager).
pub fn controller_manager_args(config: &NodeConfig) -> Vec<(String, String)> {
    let mut out = apiserver::controller_manager_hardening();
    out.push(("cluster-name".into(), config.cluster.name.clone()));
    if config.provider.name == ProviderName::Azure {
        out.push(("cloud-provider".into(), "external".into()));
    }
    out
}

/// Taints as the Kubernetes API writes them (`{key, value, effect}`).
fn taints(facts: &NodeFacts) -> Value {
    facts
        .taints
        .iter()
        .map(|t| {
            let mut v = json!({"key": t.key, "effect": t.effect.as_str()});
            if let Some(value) = &t.value {
                v["value"] = json!(value);
            }
            v
        })
        .collect()
}

fn node_registration(facts: &NodeFacts) -> Value {
    json!({
        "name": facts.node_name,
        "criSocket": cri_socket(),
        "kubeletExtraArgs": args(&kubelet_extra_args(facts)),
        // An explicit list, so kubeadm adds nothing of its own (masters carry the control-plane
        // taint in it already).
        "taints": taints(facts),
    })
}

fn local_api_endpoint(config: &NodeConfig, facts: &NodeFacts) -> Value {
    let port = config.cluster.api_server_bind_port;
    match facts.address {
        Some(addr) => json!({"advertiseAddress": addr.to_string(), "bindPort": port}),
        None => json!({"bindPort": port}),
    }
}

/// The documents kubeadm gets on this node, in order.
pub fn documents(config: &NodeConfig, facts: &NodeFacts) -> Result<Vec<Value>> {
    let api_version = config
        .cluster
        .kubernetes_version
        .release()
        .map_err(anyhow::Error::msg)?
        .kubeadm_api_version;
    let cluster = &config.cluster;
    let boot = &config.bootstrap;
    let token = boot
        .token
        .as_ref()
        .context("no bootstrap token: render from secrets::resolved")?
        .expose();
    Ok(match facts.kind {
        NodeKind::FirstMaster => {
            let mut api_server = json!({
                "extraArgs": args(&apiserver::api_server_args(config)),
                "extraVolumes": apiserver::api_server_volumes(config),
            });
            if !config.api_server.cert_sans.is_empty() {
                api_server["certSANs"] = json!(config.api_server.cert_sans);
            }
            vec![
                json!({
                    "apiVersion": api_version,
                    "kind": "InitConfiguration",
                    "bootstrapTokens": [{
                        "token": token,
                        "ttl": boot.token_ttl,
                        "description": "kubeboot: nodes of this cluster join with this token",
                        "groups": [BOOTSTRAP_GROUP],
                        "usages": ["signing", "authentication"],
                    }],
                    "nodeRegistration": node_registration(facts),
                    "localAPIEndpoint": local_api_endpoint(config, facts),
                }),
                json!({
                    "apiVersion": api_version,
                    "kind": "ClusterConfiguration",
                    "clusterName": cluster.name,
                    "kubernetesVersion": cluster.kubernetes_version.to_string(),
                    "controlPlaneEndpoint": cluster.control_plane_endpoint,
                    "encryptionAlgorithm": ENCRYPTION_ALGORITHM,
                    "networking": {
                        "podSubnet": cluster.pod_cidr.to_string(),
                        "serviceSubnet": cluster.service_cidr.to_string(),
                        "dnsDomain": cluster.dns_domain,
                    },
                    "apiServer": api_server,
                    "controllerManager": {"extraArgs": args(&controller_manager_args(config))},
                    "scheduler": {"extraArgs": args(&apiserver::scheduler_args())},
                }),
                kubelet_configuration(),
            ]
        }
        NodeKind::ExtraMaster | NodeKind::Worker => {
            let mut join = json!({
                "apiVersion": api_version,
                "kind": "JoinConfiguration",
                "discovery": {
                    "bootstrapToken": {
                        "apiServerEndpoint": cluster.control_plane_endpoint,
                        "token": token,
                        "caCertHashes": boot.ca_cert_hashes,
                    },
                },
                "nodeRegistration": node_registration(facts),
                // The join phase has waited for the endpoint already, so kubeadm's own retries
                // (5 minutes by default) only repeat a token the cluster refuses (expired, revoked,
                // reset by a re-deployment). Failing sooner lets the unit's restart read the
                // vault's current token sooner.
                "timeouts": {"discovery": JOIN_DISCOVERY_TIMEOUT},
            });
            if facts.kind == NodeKind::ExtraMaster {
                join["controlPlane"] =
                    json!({"localAPIEndpoint": local_api_endpoint(config, facts)});
            }
            vec![join]
        }
    })
}

/// The multi-document YAML file kubeadm reads with `--config`.
pub fn render(config: &NodeConfig, facts: &NodeFacts) -> Result<String> {
    let mut out = String::new();
    for doc in documents(config, facts)? {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&doc).context("serialising a kubeadm document")?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{fixture, Sandbox};

    fn facts(kind: NodeKind, config: &NodeConfig) -> NodeFacts {
        let sandbox = Sandbox::new("node-1");
        sandbox.with_facts(config, kind);
        sandbox.context(config.clone()).facts().unwrap()
    }

    fn kinds(docs: &[Value]) -> Vec<&str> {
        docs.iter().map(|d| d["kind"].as_str().unwrap()).collect()
    }

    #[test]
    fn first_master_gets_init_cluster_and_kubelet_documents() {
        let mut config = fixture::first_master();
        config
            .api_server
            .extra_args
            .insert("default-watch-cache-size".into(), "200".into());
        let docs = documents(&config, &facts(NodeKind::FirstMaster, &config)).unwrap();
        assert_eq!(
            kinds(&docs),
            [
                "InitConfiguration",
                "ClusterConfiguration",
                "KubeletConfiguration"
            ]
        );
        assert_eq!(docs[0]["apiVersion"], "kubeadm.k8s.io/v1beta4");
        assert_eq!(
            docs[0]["bootstrapTokens"][0]["token"],
            "abcdef.0123456789abcdef"
        );
        assert_eq!(docs[0]["nodeRegistration"]["name"], "node-1");
        assert_eq!(docs[0]["localAPIEndpoint"]["advertiseAddress"], "10.0.0.4");
        assert_eq!(docs[1]["networking"]["podSubnet"], "10.244.0.0/16");
        assert_eq!(docs[1]["clusterName"], "demo");
        assert_eq!(docs[1]["encryptionAlgorithm"], "ECDSA-P256");
        let api_args = docs[1]["apiServer"]["extraArgs"].as_array().unwrap();
        assert!(api_args.contains(&json!({"name": "profiling", "value": "false"})));
        assert_eq!(
            api_args.last(),
            Some(&json!({"name": "default-watch-cache-size", "value": "200"}))
        );
        assert!(docs[1]["apiServer"]["extraVolumes"]
            .as_array()
            .is_some_and(|v| !v.is_empty()));
        assert!(docs[1]["controllerManager"]["extraArgs"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "cluster-name", "value": "demo"})));
    }

    #[test]
    fn joining_nodes_get_a_join_configuration() {
        let master = fixture::first_master();
        let docs = documents(&master, &facts(NodeKind::ExtraMaster, &master)).unwrap();
        assert_eq!(kinds(&docs), ["JoinConfiguration"]);
        assert_eq!(
            docs[0]["controlPlane"]["localAPIEndpoint"]["bindPort"],
            6443
        );
        let worker = fixture::worker();
        let docs = documents(&worker, &facts(NodeKind::Worker, &worker)).unwrap();
        let join = &docs[0];
        assert!(join.get("controlPlane").is_none());
        assert_eq!(join["timeouts"]["discovery"], JOIN_DISCOVERY_TIMEOUT);
        assert_eq!(
            join["discovery"]["bootstrapToken"]["apiServerEndpoint"],
            "api.demo.example:6443"
        );
        assert_eq!(
            join["discovery"]["bootstrapToken"]["caCertHashes"][0],
            format!("sha256:{}", "a".repeat(64))
        );
        assert_eq!(
            join["nodeRegistration"]["taints"],
            json!([{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}])
        );
        assert_eq!(
            join["nodeRegistration"]["kubeletExtraArgs"],
            json!([{"name": "node-labels", "value": "kubeboot.io/pool=general"}])
        );
    }
}
