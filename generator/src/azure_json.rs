//! `azure.json`: cloud-provider-azure's cloud config for the external cloud-controller-manager
//! (and the kubelet's credential provider). Key names are those of the upstream
//! `pkg/provider/config.Config` JSON tags; the provider ignores unknown keys silently, so a test
//! checks every key here against the upstream key list.

use serde::Serialize;

use kubeboot_nodeconfig::{AzureCloud, Role};

use crate::spec::PoolSpec;
use crate::validate::ValidSpec;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AzureCloudConfig {
    /// The environment by cloud-provider-azure's name for it.
    pub cloud: &'static str,
    pub tenant_id: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub location: String,
    pub vnet_name: String,
    pub vnet_resource_group: String,
    /// Subnet for internal load balancers: the first worker pool's (the master's if none).
    pub subnet_name: String,
    /// The worker NSG: the service controller adds service rules there.
    pub security_group_name: String,
    pub security_group_resource_group: String,
    pub route_table_name: String,
    pub route_table_resource_group: String,
    pub vm_type: &'static str,
    pub load_balancer_sku: &'static str,
    /// The standard load balancer is named after the cluster (see `names.rs`).
    pub load_balancer_name: String,
    /// System-assigned identity of each scale set: managed identity on, no user-assigned ID.
    pub use_managed_identity_extension: bool,
    #[serde(rename = "userAssignedIdentityID")]
    pub user_assigned_identity_id: &'static str,
    pub use_instance_metadata: bool,
    /// Masters serve the API load balancer only, never Service traffic.
    #[serde(rename = "excludeMasterFromStandardLB")]
    pub exclude_master_from_standard_lb: bool,
    /// Nodes reach the internet through the ARM template's outbound rule (one predictable egress
    /// IP, its SNAT ports); Service load-balancing rules must not add SNAT of their own.
    #[serde(rename = "disableOutboundSNAT")]
    pub disable_outbound_snat: bool,
    pub cloud_provider_backoff: bool,
    pub cloud_provider_rate_limit: bool,
}

impl AzureCloudConfig {
    /// `None` for a cluster without `spec.azure`.
    pub fn from_spec(spec: &ValidSpec) -> Option<Self> {
        let azure = spec.cluster.spec.azure.as_ref()?;
        let names = spec.names();
        let pools = &spec.cluster.spec.pools;
        let lb_subnet_pool: &PoolSpec = pools
            .iter()
            .find(|p| p.role == Role::Worker)
            .or_else(|| pools.first())
            .expect("a valid spec has a master pool");
        Some(Self {
            cloud: cloud_name(azure.cloud),
            tenant_id: azure.tenant_id.clone(),
            subscription_id: azure.subscription_id.clone(),
            resource_group: azure.resource_group.clone(),
            location: azure.location.clone(),
            vnet_name: names.vnet(),
            vnet_resource_group: azure.resource_group.clone(),
            subnet_name: names.subnet(&lb_subnet_pool.name),
            security_group_name: names.worker_nsg(),
            security_group_resource_group: azure.resource_group.clone(),
            route_table_name: names.route_table(),
            route_table_resource_group: azure.resource_group.clone(),
            vm_type: "vmss",
            load_balancer_sku: "standard",
            load_balancer_name: names.load_balancer(),
            use_managed_identity_extension: true,
            user_assigned_identity_id: "",
            use_instance_metadata: true,
            exclude_master_from_standard_lb: true,
            disable_outbound_snat: true,
            cloud_provider_backoff: true,
            cloud_provider_rate_limit: true,
        })
    }

    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("always serialises");
        text.push('\n');
        text
    }
}

/// cloud-provider-azure's `cloud` value for an environment. A custom environment is what it calls
/// `AzureStackCloud`, whose ARM endpoints it reads from an environment file that kubeboot does not
/// render yet (see the README's status).
fn cloud_name(cloud: AzureCloud) -> &'static str {
    match cloud {
        AzureCloud::AzurePublicCloud => "AzurePublicCloud",
        AzureCloud::AzureUsGovernmentCloud => "AzureUSGovernmentCloud",
        AzureCloud::AzureChinaCloud => "AzureChinaCloud",
        AzureCloud::Custom => "AzureStackCloud",
    }
}
