//! The cloud behind one trait: what the machine is, and where the cluster secrets come from.
//! Providers fetch, and publish the rotated join token; the metadata phase decides what the machine means (node name, labels,
//! first master) and the phases decide where secrets go. `none` reads the secrets inline from the
//! NodeConfig; `azure` reads them from the Key Vault the NodeConfig names (or inline without one).

use std::net::IpAddr;

use anyhow::{anyhow, Context as _, Result};
use kubeboot_nodeconfig::{NodeConfig, ProviderName, Secret, SharedPki};

use crate::retry::Waiting;
use crate::root::Root;

pub mod azure;
pub mod none;

/// What a provider knows about this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceMetadata {
    /// The OS hostname the platform assigned (Azure: osProfile.computerName).
    pub computer_name: String,
    /// Primary private address, when known.
    pub address: Option<IpAddr>,
    pub azure: Option<AzureInstance>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AzureInstance {
    pub subscription_id: String,
    pub resource_group: String,
    pub location: String,
    pub vm_scale_set: String,
    /// Instance id within the scale set (0, 1, ... with overprovisioning off).
    pub ordinal: u32,
    /// Availability zone, empty when the scale set is not zonal.
    pub zone: String,
    /// Fault domain: the zone label of a scale set that is not zonal.
    #[serde(default)]
    pub platform_fault_domain: String,
}

/// Told why a provider waits, before each retry (the phase records it for `status`).
pub type Report<'a> = &'a dyn Fn(&Waiting);

pub trait Provider {
    /// What this machine is; waits as long as the platform needs to answer.
    fn fetch(&self, report: Report) -> Result<InstanceMetadata>;
    /// The bootstrap token: the one the first master creates, the one the others join with.
    fn join_token(&self, config: &NodeConfig, report: Report) -> Result<Secret>;
    /// The cluster PKI every master shares, with the Secrets encryption key (masters only).
    fn shared_pki(&self, config: &NodeConfig, report: Report) -> Result<SharedPki>;
    /// Makes `token` the join token the others read (masters rotating it); waits as long as the
    /// platform needs.
    fn publish_join_token(&self, config: &NodeConfig, token: &Secret, report: Report)
        -> Result<()>;
}

/// The provider the NodeConfig names.
pub fn for_config(config: &NodeConfig, root: &Root) -> Box<dyn Provider> {
    match (config.provider.name, &config.provider.azure) {
        (ProviderName::Azure, Some(azure)) => Box::new(azure::Azure::new(azure)),
        // Validation pairs provider azure with its settings; without them there is no Azure.
        (ProviderName::Azure, None) | (ProviderName::None, _) => {
            Box::new(none::NoCloud::new(root.clone()))
        }
    }
}

/// The token written in the NodeConfig itself.
fn inline_token(config: &NodeConfig) -> Result<Secret> {
    config
        .bootstrap
        .token
        .clone()
        .context("bootstrap.token: absent, and no vault holds it")
}

/// The PKI written in the NodeConfig itself.
fn inline_pki(config: &NodeConfig) -> Result<SharedPki> {
    config
        .pki
        .clone()
        .context("pki: required on a master, and no vault holds it")
}

/// A failed HTTP request to `what`: reqwest's message names the URL, whose userinfo is cut.
pub fn http_error(what: &str, e: &reqwest::Error) -> anyhow::Error {
    anyhow!(
        "{what}: {}",
        kubeboot_nodeconfig::redact_userinfo(&e.to_string())
    )
}

/// Where and how JSON failed to parse, without serde's message (it may quote the value, which is
/// a secret).
pub fn not_json(what: &str, e: &serde_json::Error) -> anyhow::Error {
    anyhow!(
        "the {what} is not the expected JSON ({:?} error at line {}, column {})",
        e.classify(),
        e.line(),
        e.column()
    )
}
