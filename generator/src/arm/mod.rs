//! The ARM template of a cluster's Azure infrastructure: `DIR/arm/azuredeploy.json` (secret-free,
//! a pure function of the spec) and `DIR/arm/azuredeploy.parameters.json` (SSH public key, image
//! id, every pool's custom data — secret-free too — and `clusterSecrets`, the values of the Key
//! Vault secrets, so the file is written 0600).
//!
//! The template text lives in `generator/templates/arm/`; this module only builds its context
//! (every name from `names.rs`) and re-parses the output so a template slip fails the render.

pub mod check;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use anyhow::{bail, Context, Result};
use ipnet::Ipv4Net;
use kubeboot_nodeconfig::{FieldError, Role, Secret, SharedPki};
use serde::Serialize;
use serde_json::{json, Value};

use crate::names::{Names, API_SERVER_PORT, JOIN_TOKEN_SECRET, PKI_SECRET};
use crate::spec::{AzureSpec, ClusterSpec, IdentityRoles};

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

/// What the workers' custom role may do under `identityRoles: contributor-plus-custom`:
/// read their own scale set and the network, nothing else.
const WORKER_CUSTOM_ROLE_ACTIONS: &[&str] = &[
    "Microsoft.Compute/virtualMachineScaleSets/read",
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read",
    "Microsoft.Network/virtualNetworks/read",
    "Microsoft.Network/virtualNetworks/subnets/read",
];

/// Frontend ports of the masters' SSH NAT pool: instance N is reachable on port 50000+N.
const SSH_NAT_PORT_START: u32 = 50000;
const SSH_NAT_PORT_END: u32 = 50119;

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

/// Renders the template and its parameters file for a validated (effective) spec.
pub fn render(spec: &ClusterSpec, secrets: &ArmSecrets) -> Result<ArmFiles> {
    let context = TemplateContext::new(spec)?;
    for pool in &context.pools {
        if !secrets.custom_data.contains_key(&pool.name) {
            bail!("no custom data rendered for pool {:?}", pool.name);
        }
    }
    let mut tera = tera::Tera::default();
    tera.add_raw_templates([
        (
            "azuredeploy",
            include_str!("../../templates/arm/azuredeploy.json.tera"),
        ),
        (
            "nsg-common-rules",
            include_str!("../../templates/arm/nsg-common-rules.json.tera"),
        ),
    ])
    .context("loading the ARM templates")?;
    let text = tera
        .render(
            "azuredeploy",
            &tera::Context::from_serialize(&context)
                .context("building the ARM template context")?,
        )
        .context("rendering the ARM template")?;
    // Re-parse: a template slip fails here, and the output gets one canonical layout.
    let template: Value =
        serde_json::from_str(&text).context("the rendered ARM template is not valid JSON")?;

    let azure = spec
        .spec
        .azure
        .as_ref()
        .expect("checked by TemplateContext::new");
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

#[derive(Serialize)]
struct ApiVersions {
    network: &'static str,
    compute: &'static str,
    authorization: &'static str,
    key_vault: &'static str,
}

#[derive(Serialize)]
struct KeyVaultContext {
    name: String,
    parameter: &'static str,
    join_token_secret: &'static str,
    pki_secret: &'static str,
    soft_delete_retention_days: u32,
}

/// One Key Vault role assignment of a scale set's identity.
#[derive(Serialize)]
struct VaultGrant {
    /// `Microsoft.KeyVault/vaults/<vault>[/secrets/<secret>]`, the assignment's `scope`.
    scope: String,
    /// The ARM expression naming the same resource (`resourceId(...)`), for `guid` and `dependsOn`.
    scope_id: String,
    role_id: &'static str,
    role_name: &'static str,
}

impl VaultGrant {
    fn new(
        vault: &str,
        secret: Option<&str>,
        role_id: &'static str,
        role_name: &'static str,
    ) -> Self {
        let (scope, scope_id) = match secret {
            None => (
                format!("Microsoft.KeyVault/vaults/{vault}"),
                format!("resourceId('Microsoft.KeyVault/vaults', '{vault}')"),
            ),
            Some(secret) => (
                format!("Microsoft.KeyVault/vaults/{vault}/secrets/{secret}"),
                format!("resourceId('Microsoft.KeyVault/vaults/secrets', '{vault}', '{secret}')"),
            ),
        };
        Self {
            scope,
            scope_id,
            role_id,
            role_name,
        }
    }

    /// Masters read every secret and write the join token they rotate; workers read the join
    /// token only.
    fn for_pool(vault: &str, master: bool) -> Vec<Self> {
        if master {
            vec![
                Self::new(
                    vault,
                    None,
                    KEY_VAULT_SECRETS_USER_ROLE_ID,
                    "Key Vault Secrets User",
                ),
                Self::new(
                    vault,
                    Some(JOIN_TOKEN_SECRET),
                    KEY_VAULT_SECRETS_OFFICER_ROLE_ID,
                    "Key Vault Secrets Officer",
                ),
            ]
        } else {
            vec![Self::new(
                vault,
                Some(JOIN_TOKEN_SECRET),
                KEY_VAULT_SECRETS_USER_ROLE_ID,
                "Key Vault Secrets User",
            )]
        }
    }
}

#[derive(Serialize)]
struct LoadBalancerNames {
    name: String,
    frontend: String,
    master_pool: String,
    outbound_pool: String,
    probe: String,
    api_rule: String,
    ssh_nat_pool: String,
    outbound_rule: String,
}

#[derive(Serialize)]
struct RoleContext {
    /// Role definition GUID.
    id: String,
    /// Human name for the assignment's description.
    name: &'static str,
    /// A custom role defined by this template (referenced by `resourceId`), not a built-in one.
    custom: bool,
}

#[derive(Serialize)]
struct PoolContext {
    name: String,
    master: bool,
    vmss: String,
    subnet: String,
    subnet_cidr: String,
    nsg: String,
    vm_size: String,
    count: u32,
    zones: Vec<String>,
    computer_name_prefix: String,
    role: RoleContext,
    vault_grants: Vec<VaultGrant>,
}

#[derive(Serialize)]
struct CustomRoleContext {
    id: String,
    role_name: String,
    actions: &'static [&'static str],
}

#[derive(Serialize)]
struct TemplateContext {
    api: ApiVersions,
    cluster: String,
    cluster_tag: &'static str,
    kubeboot_tag: &'static str,
    location: String,
    vnet: String,
    vnet_cidr: String,
    route_table: String,
    master_nsg: String,
    worker_nsg: String,
    public_ip: String,
    public_ip_zones: Vec<String>,
    dns_label: String,
    lb: LoadBalancerNames,
    api_port: u16,
    api_sources: Vec<String>,
    ssh_sources: Vec<String>,
    ssh_port_range_start: u32,
    ssh_port_range_end: u32,
    admin_username: String,
    pools: Vec<PoolContext>,
    custom_worker_role: Option<CustomRoleContext>,
    key_vault: KeyVaultContext,
}

impl TemplateContext {
    fn new(spec: &ClusterSpec) -> Result<Self> {
        let cluster = spec.metadata.name.as_str();
        let azure = spec
            .spec
            .azure
            .as_ref()
            .context("spec.azure: the ARM template needs an Azure cluster")?;
        let names = Names::new(cluster);
        let dns_label = azure
            .dns_label
            .clone()
            .context("spec.azure.dnsLabel: missing (render from the validated, effective spec)")?;
        let vnet_cidr = spec
            .spec
            .network
            .vnet_cidr
            .context("spec.network.vnetCIDR: required on Azure")?;
        let custom_worker_role = (azure.identity_roles == IdentityRoles::ContributorPlusCustom)
            .then(|| CustomRoleContext {
                id: custom_role_id(azure, cluster),
                role_name: format!(
                    "kubeboot worker ({}/{}/{cluster})",
                    azure.subscription_id, azure.resource_group
                ),
                actions: WORKER_CUSTOM_ROLE_ACTIONS,
            });
        let key_vault_name = names.key_vault(&azure.subscription_id, &azure.resource_group);
        let pools = spec
            .spec
            .pools
            .iter()
            .enumerate()
            .map(|(i, pool)| {
                let master = pool.role == Role::Master;
                let role = match (azure.identity_roles, master, &custom_worker_role) {
                    (IdentityRoles::Owner, true, _) => builtin_role(OWNER_ROLE_ID, "Owner"),
                    (IdentityRoles::Owner, false, _)
                    | (IdentityRoles::ContributorPlusCustom, true, _) => {
                        builtin_role(CONTRIBUTOR_ROLE_ID, "Contributor")
                    }
                    (IdentityRoles::ContributorPlusCustom, false, custom) => RoleContext {
                        id: custom
                            .as_ref()
                            .expect("defined for this role model")
                            .id
                            .clone(),
                        name: "kubeboot worker custom role",
                        custom: true,
                    },
                };
                Ok(PoolContext {
                    name: pool.name.clone(),
                    master,
                    vmss: names.scale_set(&pool.name),
                    subnet: names.subnet(&pool.name),
                    subnet_cidr: pool
                        .subnet_cidr
                        .with_context(|| format!("spec.pools[{i}].subnetCIDR: required on Azure"))?
                        .to_string(),
                    nsg: if master {
                        names.master_nsg()
                    } else {
                        names.worker_nsg()
                    },
                    vm_size: pool
                        .vm_size
                        .clone()
                        .with_context(|| format!("spec.pools[{i}].vmSize: required on Azure"))?,
                    count: pool.count,
                    zones: pool.zones.clone(),
                    computer_name_prefix: names.computer_name_prefix(&pool.name),
                    role,
                    vault_grants: VaultGrant::for_pool(&key_vault_name, master),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let any_zones = pools.iter().any(|p| !p.zones.is_empty());
        let context = Self {
            api: ApiVersions {
                network: NETWORK_API_VERSION,
                compute: COMPUTE_API_VERSION,
                authorization: AUTHORIZATION_API_VERSION,
                key_vault: KEY_VAULT_API_VERSION,
            },
            cluster: cluster.to_string(),
            cluster_tag: CLUSTER_TAG,
            kubeboot_tag: KUBEBOOT_TAG,
            location: azure.location.clone(),
            vnet: names.vnet(),
            vnet_cidr: vnet_cidr.to_string(),
            route_table: names.route_table(),
            master_nsg: names.master_nsg(),
            worker_nsg: names.worker_nsg(),
            public_ip: names.api_public_ip(),
            // A zone-redundant frontend when the region has zones (the pools use them).
            public_ip_zones: if any_zones {
                vec!["1".into(), "2".into(), "3".into()]
            } else {
                Vec::new()
            },
            dns_label,
            lb: LoadBalancerNames {
                name: names.load_balancer(),
                frontend: names.lb_frontend(),
                master_pool: names.lb_master_pool(),
                outbound_pool: names.lb_outbound_pool(),
                probe: names.lb_api_probe(),
                api_rule: names.lb_api_rule(),
                ssh_nat_pool: names.lb_ssh_nat_pool(),
                outbound_rule: names.lb_outbound_rule(),
            },
            api_port: API_SERVER_PORT,
            api_sources: azure.api_server_allowed_sources.clone(),
            ssh_sources: azure.ssh_allowed_sources.clone(),
            ssh_port_range_start: SSH_NAT_PORT_START,
            ssh_port_range_end: SSH_NAT_PORT_END,
            admin_username: spec.spec.ssh.admin_username.clone(),
            pools,
            custom_worker_role,
            key_vault: KeyVaultContext {
                name: key_vault_name,
                parameter: CLUSTER_SECRETS_PARAMETER,
                join_token_secret: JOIN_TOKEN_SECRET,
                pki_secret: PKI_SECRET,
                soft_delete_retention_days: SOFT_DELETE_RETENTION_DAYS,
            },
        };
        context.check_names()?;
        Ok(context)
    }

    /// Names are spliced into ARM expressions (`resourceId('...', 'name')`): refuse anything
    /// that could break out of the quotes, whatever validation let through.
    fn check_names(&self) -> Result<()> {
        let lb = &self.lb;
        let fixed = [
            &self.vnet,
            &self.route_table,
            &self.master_nsg,
            &self.worker_nsg,
            &self.public_ip,
            &lb.name,
            &lb.frontend,
            &lb.master_pool,
            &lb.outbound_pool,
            &lb.probe,
            &lb.api_rule,
            &lb.ssh_nat_pool,
            &lb.outbound_rule,
            &self.key_vault.name,
        ];
        let per_pool = self
            .pools
            .iter()
            .flat_map(|p| [&p.name, &p.vmss, &p.subnet, &p.nsg]);
        for name in fixed.into_iter().chain(per_pool) {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                bail!("Azure resource name {name:?} has characters the ARM template cannot carry");
            }
        }
        Ok(())
    }
}

fn builtin_role(id: &str, name: &'static str) -> RoleContext {
    RoleContext {
        id: id.to_string(),
        name,
        custom: false,
    }
}

/// The workers' custom role definition id: a role definition's name is a GUID unique in the
/// tenant, so derive it (UUID v5) from subscription, resource group and cluster — stable across
/// re-deployments, distinct between clusters.
fn custom_role_id(azure: &AzureSpec, cluster: &str) -> String {
    let seed = format!(
        "kubeboot-worker-role/{}/{}/{cluster}",
        azure.subscription_id.to_ascii_lowercase(),
        azure.resource_group.to_ascii_lowercase()
    );
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, seed.as_bytes()).to_string()
}
