//! The cluster spec (`kind: Cluster`): what a user writes and `kubeboot-gen` reads.
//! Types only; semantic validation lives in `validate.rs`.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;
use kubeboot_nodeconfig::{
    cidr, ApiServer, Artifacts, AzureCloud, Cni, CustomCloud, DiskSku, KubernetesVersion, Role,
    Taint,
};
use serde::{Deserialize, Serialize};

pub const KIND: &str = "Cluster";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSpec {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: Spec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Cluster name: the Azure load balancer's name, kubeadm's clusterName, the cloud
    /// controller's --cluster-name, and the tag on every resource.
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    pub kubernetes_version: KubernetesVersion,
    /// Present for a cluster on Azure scale sets; absent for plain VMs or bare metal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureSpec>,
    /// `host:port` of the API server. Required without `azure`; on Azure it is derived from
    /// the API server public IP's DNS label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_endpoint: Option<String>,
    /// Node name of the master that runs `kubeadm init` (plain VMs; on Azure, ordinal 0 decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_node: Option<String>,
    pub network: NetworkSpec,
    pub pools: Vec<PoolSpec>,
    #[serde(default)]
    pub ssh: SshSpec,
    #[serde(default)]
    pub secrets: SecretsSpec,
    #[serde(default)]
    pub artifacts: Artifacts,
    #[serde(default)]
    pub api_server: ApiServer,
    #[serde(default)]
    pub addons: AddonsSpec,
}

/// What the user chooses of the addons; the NodeConfig's `addons` adds what the generator derives
/// (whether cluster-autoscaler runs follows from the pools' `autoscaling`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddonsSpec {
    #[serde(default)]
    pub cni: Cni,
    /// Azure only: the Azure Disk CSI driver and a default StorageClass; absent means on, with
    /// StandardSSD_LRS disks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_disk: Option<AzureDiskSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AzureDiskSpec {
    #[serde(default = "enabled")]
    pub enabled: bool,
    #[serde(default)]
    pub sku_name: DiskSku,
}

fn enabled() -> bool {
    true
}

impl AddonsSpec {
    /// The disk driver's settings when it is deployed (Azure clusters, unless turned off).
    pub fn azure_disk(&self, on_azure: bool) -> Option<AzureDiskSpec> {
        let disk = self.azure_disk.unwrap_or(AzureDiskSpec {
            enabled: true,
            sku_name: DiskSku::default(),
        });
        (on_azure && disk.enabled).then_some(disk)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AzureSpec {
    pub tenant_id: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub location: String,
    /// The Azure environment; every NodeConfig and `azure.json` name it.
    #[serde(default)]
    pub cloud: AzureCloud,
    /// Endpoints of a `Custom` cloud (Key Vault DNS suffix and token audience, IMDS, CA bundle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_cloud: Option<CustomCloud>,
    /// DNS label of the API server public IP; default derived from cluster and resource group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_label: Option<String>,
    /// Sources allowed to reach the API server (TCP 6443) through the master NSG: `*` (the
    /// default, as the seed) or IPv4 addresses/CIDRs.
    #[serde(default = "any_source")]
    pub api_server_allowed_sources: Vec<String>,
    /// Sources allowed to SSH (via the load balancer's NAT pool) to the masters; same form.
    #[serde(default = "any_source")]
    pub ssh_allowed_sources: Vec<String>,
    /// Which roles the scale sets' identities get on the resource group.
    #[serde(default)]
    pub identity_roles: IdentityRoles,
    /// Resource id of the VM image (the Packer-built one); when absent, `imageId` is left for
    /// the `az deployment group create` command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
}

fn any_source() -> Vec<String> {
    vec!["*".into()]
}

/// Role assignments of the scale sets' system-assigned identities on the resource group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityRoles {
    /// As the seed: Owner for the masters, Contributor for the workers.
    #[default]
    Owner,
    /// Safer: Contributor for the masters (the cloud controller needs no role-assignment rights),
    /// and a custom read-only role for the workers (the external cloud provider runs on masters).
    ContributorPlusCustom,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkSpec {
    /// Address space of the cluster VNet (Azure only).
    #[serde(
        default,
        rename = "vnetCIDR",
        deserialize_with = "cidr::optional_ipv4",
        skip_serializing_if = "Option::is_none"
    )]
    pub vnet_cidr: Option<Ipv4Net>,
    #[serde(rename = "podCIDR", deserialize_with = "cidr::ipv4")]
    pub pod_cidr: Ipv4Net,
    #[serde(rename = "serviceCIDR", deserialize_with = "cidr::ipv4")]
    pub service_cidr: Ipv4Net,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PoolSpec {
    pub name: String,
    pub role: Role,
    pub count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_size: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
    /// The pool's subnet inside the VNet (Azure only).
    #[serde(
        default,
        rename = "subnetCIDR",
        deserialize_with = "cidr::optional_ipv4",
        skip_serializing_if = "Option::is_none"
    )]
    pub subnet_cidr: Option<Ipv4Net>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
    /// Worker pools on Azure: cluster-autoscaler keeps the pool between `min` and `max`
    /// instances; `count` is then the size the pool is created with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Autoscaling {
    pub min: u32,
    pub max: u32,
}

impl PoolSpec {
    /// The most instances the pool can have: what its subnet, the pod range and Azure's limits
    /// must hold.
    pub fn most_instances(&self) -> u32 {
        self.autoscaling
            .map_or(self.count, |a| a.max.max(self.count))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SshSpec {
    #[serde(default = "default_admin_username")]
    pub admin_username: String,
}

impl Default for SshSpec {
    fn default() -> Self {
        Self {
            admin_username: default_admin_username(),
        }
    }
}

fn default_admin_username() -> String {
    "azureuser".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretStoreKind {
    /// Files under `DIR/secrets/` (0700 directory, 0600 files).
    #[default]
    Local,
    /// A Vault (or OpenBao) KV version 2 engine.
    Vault,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretsSpec {
    #[serde(default)]
    pub store: SecretStoreKind,
    /// Where the secrets live when `store: vault`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<VaultSpec>,
}

/// A Vault (or OpenBao) KV version 2 location. The token comes from `VAULT_TOKEN` or `tokenFile`,
/// never from the spec or a flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VaultSpec {
    /// `https://vault.example.com:8200` (plain `http` only for loopback addresses).
    pub address: String,
    /// Mount point of the KV v2 engine.
    #[serde(default = "default_vault_mount")]
    pub mount: String,
    /// Secret path inside the mount, e.g. `kubeboot/demo`.
    pub path: String,
    /// PEM CA bundle to verify the server with, in addition to the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_file: Option<std::path::PathBuf>,
    /// File holding the token, used when `VAULT_TOKEN` is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<std::path::PathBuf>,
}

fn default_vault_mount() -> String {
    "secret".into()
}
