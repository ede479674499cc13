//! What the metadata phase learned about this machine, persisted to
//! `/var/lib/kubeboot/node-facts.json` so later phases (and re-runs after a reboot) read the same
//! answers instead of asking the cloud again.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use kubeboot_nodeconfig::Taint;
use serde::{Deserialize, Serialize};

use crate::provider::AzureInstance;

/// Which of the three node recipes this machine follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeKind {
    /// The master that runs `kubeadm init` and applies the addons.
    FirstMaster,
    /// A master that joins the first one's control plane.
    ExtraMaster,
    Worker,
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::FirstMaster => "first master",
            Self::ExtraMaster => "extra master",
            Self::Worker => "worker",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeFacts {
    /// Kubernetes node name (lowercase).
    pub node_name: String,
    pub kind: NodeKind,
    /// `azure` or `none`.
    pub provider: String,
    /// The kubelet's `--provider-id`, when the cloud defines one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    /// The node's primary private address (API server advertise address on masters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    /// Every label the kubelet registers the node with: pool, zone and the NodeConfig's labels.
    pub labels: BTreeMap<String, String>,
    /// Stored in `key=value:Effect` form.
    #[serde(default)]
    pub taints: Vec<Taint>,
    /// Where the VM is in Azure, as IMDS told it (kept so re-runs do not ask again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureInstance>,
}
