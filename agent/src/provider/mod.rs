//! Cloud metadata behind one trait. Providers only fetch what the machine is; the metadata phase
//! decides what that means (node name, labels, first master) and writes it down.

use std::net::IpAddr;

use anyhow::Result;
use kubeboot_nodeconfig::{NodeConfig, ProviderName};

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

pub trait MetadataProvider {
    fn fetch(&self) -> Result<InstanceMetadata>;
}

/// The provider the NodeConfig names.
pub fn for_config(config: &NodeConfig, root: &Root) -> Box<dyn MetadataProvider> {
    match config.provider.name {
        ProviderName::Azure => Box::new(azure::Azure::new()),
        ProviderName::None => Box::new(none::NoCloud::new(root.clone())),
    }
}
