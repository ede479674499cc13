//! The ARM template of a cluster's Azure infrastructure: `DIR/arm/azuredeploy.json` (secret-free,
//! a pure function of the spec) and `DIR/arm/azuredeploy.parameters.json` (SSH public key, image
//! id, every pool's custom data — secret-free too — and `clusterSecrets`, the values of the Key
//! Vault secrets, so the file is written 0600).
//!
//! The template is built as `serde_json::Value`s by `template.rs` (every name from `names.rs`);
//! `check.rs` walks a rendered (or hand-edited) template against the spec.

pub mod check;
mod template;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use anyhow::{bail, Context, Result};
use ipnet::Ipv4Net;
use kubeboot_nodeconfig::labels::POOL_LABEL;
use kubeboot_nodeconfig::{FieldError, Role, Secret, SharedPki};
use serde_json::{json, Value};

use crate::names::{JOIN_TOKEN_SECRET, PKI_SECRET};
use crate::spec::{AzureSpec, ClusterSpec, PoolSpec};
use template::Deployment;

pub const TEMPLATE_FILE: &str = "arm/azuredeploy.json";
pub const PARAMETERS_FILE: &str = "arm/azuredeploy.parameters.json";

/// apiVersions of the resource types the template deploys (current GA versions).
pub const NETWORK_API_VERSION: &str = "2024-05-01";
pub const COMPUTE_API_VERSION: &str = "2024-07-01";
pub const AUTHORIZATION_API_VERSION: &str = "2022-04-01";
pub const KEY_VAULT_API_VERSION: &str = "2024-11-01";

/// Built-in Azure role definition ids (identical in every tenant).
pub const OWNER_ROLE_ID: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
pub const CONTRIBUTOR_ROLE_ID: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
/// "Key Vault Secrets User": read secret contents (`secrets/getSecret/action`,
/// `secrets/readMetadata/action`), nothing else; RBAC-authorized vaults only. Source:
/// MicrosoftDocs/azure-docs, articles/role-based-access-control/built-in-roles/security.md.
pub const KEY_VAULT_SECRETS_USER_ROLE_ID: &str = "4633458b-17de-408a-b874-0445c86b69e6";
/// "Key Vault Secrets Officer": every data action on secrets (`vaults/secrets/*`: read, set,
/// delete, ...), no permission management; RBAC-authorized vaults only. Same source. Masters get
/// it on the `bootstrap-token` secret only, to write the token they rotate.
pub const KEY_VAULT_SECRETS_OFFICER_ROLE_ID: &str = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7";
/// The secureObject parameter carrying the Key Vault secrets' values, keyed by secret name.
pub const CLUSTER_SECRETS_PARAMETER: &str = "clusterSecrets";
/// Days a deleted vault (and secret) stays recoverable; with purge protection nobody can shorten
/// it. Azure's maximum, and its default.
pub const SOFT_DELETE_RETENTION_DAYS: u32 = 90;

/// Tag cloud-provider-azure itself puts on the public IPs it creates (`consts.ClusterNameKey`).
pub const CLUSTER_TAG: &str = "k8s-azure-cluster-name";
/// kubeboot's own tag (Azure tag names may not contain `/`, hence no `kubeboot.io/...`).
pub const KUBEBOOT_TAG: &str = "kubeboot-cluster";

/// The tags on every resource of the cluster (the template's `clusterTags` variable).
pub fn cluster_tags(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (CLUSTER_TAG.to_string(), cluster.to_string()),
        (KUBEBOOT_TAG.to_string(), cluster.to_string()),
    ])
}

/// The template parameter giving each autoscaled pool's instance count to deploy with (the
/// parameters file has the spec's `count`; a re-deployment passes the live capacity, so that it
/// does not undo the autoscaler's work).
pub const POOL_CAPACITY_PARAMETER: &str = "poolCapacity";
/// The pool name on an autoscaled pool's scale set, to find its live capacity by.
pub const POOL_TAG: &str = "kubeboot-pool";
/// Tag prefixes of cluster-autoscaler's node template (scale from zero): the Azure provider turns
/// `_` in the rest of the name back into `/` and `~2` into `_` (`extractLabelsFromTags`).
const NODE_TEMPLATE_LABEL: &str = "k8s.io_cluster-autoscaler_node-template_label_";
const NODE_TEMPLATE_TAINT: &str = "k8s.io_cluster-autoscaler_node-template_taint_";

/// The tags cluster-autoscaler reads on an autoscaled pool's scale set (None for other pools):
/// auto-discovery (`--node-group-auto-discovery=label:cluster-autoscaler-enabled=true,
/// cluster-autoscaler-name=<cluster>`, bounds in `min` and `max`), and the pool's labels (with the
/// `kubeboot.io/pool` label the agent adds) and taints as the node template it plans with while
/// the pool is empty. CPU and memory it takes from the VM size; kubeboot reserves none of them, so
/// no resource tags.
pub fn autoscaler_tags(cluster: &str, pool: &PoolSpec) -> Option<BTreeMap<String, String>> {
    let range = pool.autoscaling?;
    let encode = |key: &str| key.replace('_', "~2").replace('/', "_");
    let mut tags = BTreeMap::from([
        ("cluster-autoscaler-enabled".to_string(), "true".to_string()),
        ("cluster-autoscaler-name".to_string(), cluster.to_string()),
        ("min".to_string(), range.min.to_string()),
        ("max".to_string(), range.max.to_string()),
        (POOL_TAG.to_string(), pool.name.clone()),
    ]);
    // The pool label the agent sets, then the spec's (which may not use kubeboot.io/).
    let labels = [(POOL_LABEL, &pool.name)]
        .into_iter()
        .chain(pool.labels.iter().map(|(k, v)| (k.as_str(), v)));
    for (key, value) in labels {
        tags.insert(
            format!("{NODE_TEMPLATE_LABEL}{}", encode(key)),
            value.clone(),
        );
    }
    for taint in &pool.taints {
        tags.insert(
            format!("{NODE_TEMPLATE_TAINT}{}", encode(&taint.key)),
            format!(
                "{}:{}",
                taint.value.as_deref().unwrap_or_default(),
                taint.effect.as_str()
            ),
        );
    }
    Some(tags)
}

/// Resource types the template deploys.
pub const NSG: &str = "Microsoft.Network/networkSecurityGroups";
pub const VNET: &str = "Microsoft.Network/virtualNetworks";
pub const ROUTE_TABLE: &str = "Microsoft.Network/routeTables";
pub const PUBLIC_IP: &str = "Microsoft.Network/publicIPAddresses";
pub const LOAD_BALANCER: &str = "Microsoft.Network/loadBalancers";
pub const SCALE_SET: &str = "Microsoft.Compute/virtualMachineScaleSets";
pub const ROLE_ASSIGNMENT: &str = "Microsoft.Authorization/roleAssignments";
pub const ROLE_DEFINITION: &str = "Microsoft.Authorization/roleDefinitions";
pub const KEY_VAULT: &str = "Microsoft.KeyVault/vaults";
pub const KEY_VAULT_SECRET: &str = "Microsoft.KeyVault/vaults/secrets";

/// Frontend ports of the masters' SSH NAT pool: instance N is reachable on port 50000+N, so the
/// range bounds the master count.
pub const SSH_NAT_PORT_START: u32 = 50000;
pub const SSH_NAT_PORT_END: u32 = 50119;
/// Most VMs a scale set holds when it boots from a custom image, as kubeboot's always do
/// (`imageReference.id`, the Packer-built image); 1,000 is for platform images only. Azure:
/// "Virtual Machine Scale Sets and placement groups".
pub const MAX_SCALE_SET_VMS: u32 = 600;
/// Most VMs of a scale set in a single placement group (Azure's default); a larger pool is
/// rendered with `singlePlacementGroup: false` (same source).
pub const SINGLE_PLACEMENT_GROUP_VMS: u32 = 100;

/// Most tags on one Azure resource ("Use tags to organize your Azure resources": 50).
pub const MAX_TAGS: usize = 50;

/// The pinned apiVersion of a resource type, by its namespace; None for a namespace the template
/// does not deploy.
pub fn api_version(kind: &str) -> Option<&'static str> {
    match kind.split('/').next().unwrap_or_default() {
        "Microsoft.Network" => Some(NETWORK_API_VERSION),
        "Microsoft.Compute" => Some(COMPUTE_API_VERSION),
        "Microsoft.Authorization" => Some(AUTHORIZATION_API_VERSION),
        "Microsoft.KeyVault" => Some(KEY_VAULT_API_VERSION),
        _ => None,
    }
}

/// The two rendered files.
pub struct ArmFiles {
    pub template: String,
    pub parameters: String,
}

/// Inputs the template needs beyond the spec: the SSH public key, each pool's custom data
/// (base64), keyed by pool name, and the values the Key Vault secrets are created with.
pub struct ArmSecrets<'a> {
    pub ssh_public_key: &'a str,
    pub custom_data: &'a BTreeMap<String, String>,
    /// Value of the `bootstrap-token` secret.
    pub join_token: &'a Secret,
    /// Value of the `cluster-pki` secret, as JSON (the structure of a NodeConfig's inline `pki`).
    pub pki: &'a SharedPki,
}

/// Checks the ARM-specific fields of `spec.spec.azure`; one error per bad entry.
pub fn validate_azure(azure: &AzureSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (field, sources) in [
        ("apiServerAllowedSources", &azure.api_server_allowed_sources),
        ("sshAllowedSources", &azure.ssh_allowed_sources),
    ] {
        let path = format!("spec.azure.{field}");
        if sources.is_empty() {
            errors.push(FieldError::new(
                &path,
                "must list at least one source (`*` for any)",
            ));
        }
        for (i, source) in sources.iter().enumerate() {
            let any = source == "*";
            if any && sources.len() > 1 {
                errors.push(FieldError::new(
                    format!("{path}[{i}]"),
                    "`*` allows every source; it cannot be combined with other entries",
                ));
            } else if !any
                && source.parse::<Ipv4Net>().is_err()
                && source.parse::<Ipv4Addr>().is_err()
            {
                errors.push(FieldError::new(
                    format!("{path}[{i}]"),
                    format!("{source:?} is neither `*` nor an IPv4 address or CIDR"),
                ));
            }
        }
    }
    if let Some(image) = &azure.image_id {
        let lower = image.to_ascii_lowercase();
        if !lower.starts_with("/subscriptions/") || !lower.contains("/providers/microsoft.compute/")
        {
            errors.push(FieldError::new(
                "spec.azure.imageId",
                "must be an image resource id (/subscriptions/.../providers/Microsoft.Compute/...)",
            ));
        }
    }
    errors
}

/// Azure's limits on the pools: VMs per scale set, and masters reachable through the SSH NAT
/// pool's frontend ports; one error per pool, naming the limit.
pub fn validate_pool_sizes(spec: &ClusterSpec) -> Vec<FieldError> {
    let nat_ports = SSH_NAT_PORT_END - SSH_NAT_PORT_START + 1;
    let mut errors = Vec::new();
    for (i, pool) in spec.spec.pools.iter().enumerate() {
        let path = format!("spec.pools[{i}].count");
        if pool.most_instances() > MAX_SCALE_SET_VMS {
            let path = match pool.autoscaling {
                Some(range) if range.max >= pool.count => {
                    format!("spec.pools[{i}].autoscaling.max")
                }
                _ => path,
            };
            errors.push(FieldError::new(
                path,
                format!(
                    "{} VMs, over Azure's limit of {MAX_SCALE_SET_VMS} per scale set from a custom image",
                    pool.most_instances()
                ),
            ));
        } else if pool.role == Role::Master && pool.count > nat_ports {
            errors.push(FieldError::new(
                path,
                format!(
                    "{} masters, but the SSH NAT pool's frontend ports {SSH_NAT_PORT_START}-{SSH_NAT_PORT_END} reach at most {nat_ports}",
                    pool.count
                ),
            ));
        }
    }
    errors
}

/// Renders the template and its parameters file for a validated (effective) spec.
pub fn render(spec: &ClusterSpec, secrets: &ArmSecrets) -> Result<ArmFiles> {
    let deployment = Deployment::new(spec)?;
    for pool in deployment.pool_names() {
        if !secrets.custom_data.contains_key(pool) {
            bail!("no custom data rendered for pool {pool:?}");
        }
    }
    let template = deployment.template();

    let azure = spec
        .spec
        .azure
        .as_ref()
        .expect("checked by Deployment::new");
    let mut parameters = serde_json::Map::new();
    parameters.insert(
        "sshPublicKey".into(),
        json!({ "value": secrets.ssh_public_key }),
    );
    parameters.insert("customData".into(), json!({ "value": secrets.custom_data }));
    let pki_json =
        serde_json::to_string(secrets.pki).context("serialising the PKI for the Key Vault")?;
    parameters.insert(
        CLUSTER_SECRETS_PARAMETER.into(),
        json!({ "value": {
            JOIN_TOKEN_SECRET: secrets.join_token.expose(),
            PKI_SECRET: pki_json,
        } }),
    );
    if let Some(image) = &azure.image_id {
        parameters.insert("imageId".into(), json!({ "value": image }));
    }
    let capacity: BTreeMap<&str, u32> = spec
        .spec
        .pools
        .iter()
        .filter(|p| p.autoscaling.is_some())
        .map(|p| (p.name.as_str(), p.count))
        .collect();
    if !capacity.is_empty() {
        parameters.insert(POOL_CAPACITY_PARAMETER.into(), json!({ "value": capacity }));
    }
    let parameters = json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
        "contentVersion": "1.0.0.0",
        "parameters": parameters,
    });
    Ok(ArmFiles {
        template: to_pretty(&template),
        parameters: to_pretty(&parameters),
    })
}

fn to_pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values always serialise");
    text.push('\n');
    text
}
