//! `azuredeploy.json` built as data: `Deployment` gathers every name and value the template needs
//! from the spec (names from `names.rs`), and one builder function per resource turns it into
//! `serde_json::Value`s. Strings are escaped by serde; the only text assembled here is ARM
//! expressions (`[resourceId(...)]`), whose names `Deployment::new` checks to be plain.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use kubeboot_nodeconfig::Role;
use serde_json::{json, Value};

use super::{
    api_version, CLUSTER_SECRETS_PARAMETER, COMPUTE_API_VERSION, CONTRIBUTOR_ROLE_ID, KEY_VAULT,
    KEY_VAULT_SECRET, KEY_VAULT_SECRETS_OFFICER_ROLE_ID, KEY_VAULT_SECRETS_USER_ROLE_ID,
    LOAD_BALANCER, NETWORK_API_VERSION, NSG, OWNER_ROLE_ID, POOL_CAPACITY_PARAMETER, PUBLIC_IP,
    ROLE_ASSIGNMENT, ROLE_DEFINITION, ROUTE_TABLE, SCALE_SET, SINGLE_PLACEMENT_GROUP_VMS,
    SOFT_DELETE_RETENTION_DAYS, SSH_NAT_PORT_END, SSH_NAT_PORT_START, VNET,
};
use crate::names::{Names, API_SERVER_PORT, JOIN_TOKEN_SECRET, PKI_SECRET};
use crate::spec::{AzureSpec, ClusterSpec, IdentityRoles};

/// What the workers' custom role may do under `identityRoles: contributor-plus-custom`:
/// read their own scale set and the network, nothing else.
const WORKER_CUSTOM_ROLE_ACTIONS: &[&str] = &[
    "Microsoft.Compute/virtualMachineScaleSets/read",
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read",
    "Microsoft.Network/virtualNetworks/read",
    "Microsoft.Network/virtualNetworks/subnets/read",
];

/// Every resource carries the cluster tags, declared once as a template variable.
const CLUSTER_TAGS: &str = "[variables('clusterTags')]";

/// `resourceId('kind', 'name', ...)`, the body of an ARM expression naming a resource of this
/// template (names are plain, see `Deployment::check_names`).
fn resource_id(kind: &str, names: &[&str]) -> String {
    let mut text = format!("resourceId('{kind}'");
    for name in names {
        text.push_str(", '");
        text.push_str(name);
        text.push('\'');
    }
    text.push(')');
    text
}

/// The expression `[resourceId(...)]`, as `dependsOn` entries and `id`s carry it.
fn id_expression(kind: &str, names: &[&str]) -> String {
    format!("[{}]", resource_id(kind, names))
}

/// `{ "id": "[resourceId(...)]" }`, how one resource property points at another.
fn id_ref(kind: &str, names: &[&str]) -> Value {
    json!({ "id": id_expression(kind, names) })
}

/// A resource of `kind` named `name`, at its pinned apiVersion, with the fields of `body`.
fn resource(kind: &str, name: &str, body: Value) -> Value {
    let api_version = api_version(kind).expect("the template deploys only pinned namespaces");
    let mut resource = json!({ "type": kind, "apiVersion": api_version, "name": name });
    let Value::Object(fields) = body else {
        unreachable!("resource bodies are JSON objects")
    };
    resource
        .as_object_mut()
        .expect("built as an object")
        .extend(fields);
    resource
}

/// One Key Vault role assignment of a scale set's identity.
struct VaultGrant {
    /// `Microsoft.KeyVault/vaults/<vault>[/secrets/<secret>]`, the assignment's `scope`.
    scope: String,
    /// The `resourceId(...)` naming the same resource, for `guid` and `dependsOn`.
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
                format!("{KEY_VAULT}/{vault}"),
                resource_id(KEY_VAULT, &[vault]),
            ),
            Some(secret) => (
                format!("{KEY_VAULT}/{vault}/secrets/{secret}"),
                resource_id(KEY_VAULT_SECRET, &[vault, secret]),
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

/// The resource-group role a scale set's identity gets.
struct PoolRole {
    /// Role definition GUID.
    id: String,
    /// Human name for the assignment's description.
    name: &'static str,
    /// A custom role defined by this template (referenced by `resourceId`), not a built-in one.
    custom: bool,
}

struct Pool {
    name: String,
    master: bool,
    vmss: String,
    subnet: String,
    subnet_cidr: String,
    nsg: String,
    vm_size: String,
    count: u32,
    /// At most this many instances (the count, or autoscaling's max).
    most_instances: u32,
    /// cluster-autoscaler's tags when the pool autoscales.
    autoscaler_tags: Option<BTreeMap<String, String>>,
    zones: Vec<String>,
    computer_name_prefix: String,
    role: PoolRole,
    vault_grants: Vec<VaultGrant>,
}

struct CustomRole {
    id: String,
    role_name: String,
}

/// Everything the template is built from, derived from a validated (effective) spec.
pub(super) struct Deployment {
    cluster: String,
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
    api_sources: Vec<String>,
    ssh_sources: Vec<String>,
    admin_username: String,
    pools: Vec<Pool>,
    custom_worker_role: Option<CustomRole>,
    key_vault: String,
}

impl Deployment {
    pub(super) fn new(spec: &ClusterSpec) -> Result<Self> {
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
            .then(|| CustomRole {
                id: custom_role_id(azure, cluster),
                role_name: format!(
                    "kubeboot worker ({}/{}/{cluster})",
                    azure.subscription_id, azure.resource_group
                ),
            });
        let key_vault = names.key_vault(&azure.subscription_id, &azure.resource_group);
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
                    (IdentityRoles::ContributorPlusCustom, false, custom) => PoolRole {
                        id: custom
                            .as_ref()
                            .expect("defined for this role model")
                            .id
                            .clone(),
                        name: "kubeboot worker custom role",
                        custom: true,
                    },
                };
                Ok(Pool {
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
                    most_instances: pool.most_instances(),
                    autoscaler_tags: super::autoscaler_tags(cluster, pool),
                    zones: pool.zones.clone(),
                    computer_name_prefix: names.computer_name_prefix(&pool.name),
                    role,
                    vault_grants: VaultGrant::for_pool(&key_vault, master),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let any_zones = pools.iter().any(|p| !p.zones.is_empty());
        let deployment = Self {
            cluster: cluster.to_string(),
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
            api_sources: azure.api_server_allowed_sources.clone(),
            ssh_sources: azure.ssh_allowed_sources.clone(),
            admin_username: spec.spec.ssh.admin_username.clone(),
            pools,
            custom_worker_role,
            key_vault,
        };
        deployment.check_names()?;
        Ok(deployment)
    }

    /// Pool names, in spec order.
    pub(super) fn pool_names(&self) -> impl Iterator<Item = &str> {
        self.pools.iter().map(|p| p.name.as_str())
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
            &self.key_vault,
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

    /// The whole template, resources in deployment order of the seed's provisioning flow.
    pub(super) fn template(&self) -> Value {
        let mut resources = vec![
            self.master_nsg(),
            self.worker_nsg(),
            resource(
                ROUTE_TABLE,
                &self.route_table,
                json!({
                    "location": self.location,
                    "tags": CLUSTER_TAGS,
                    "properties": { "disableBgpRoutePropagation": false },
                }),
            ),
            self.vnet(),
            self.public_ip(),
            self.load_balancer(),
        ];
        resources.extend(self.custom_worker_role.as_ref().map(custom_role));
        resources.push(self.vault());
        resources.extend([JOIN_TOKEN_SECRET, PKI_SECRET].map(|s| self.vault_secret(s)));
        for pool in &self.pools {
            resources.push(self.scale_set(pool));
            resources.push(self.role_assignment(pool));
            resources.extend(
                pool.vault_grants
                    .iter()
                    .map(|g| self.vault_assignment(pool, g)),
            );
        }
        let mut template = json!({
            "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
            "contentVersion": "1.0.0.0",
            "metadata": {
                "description": format!("kubeboot cluster {}: network, API server load balancer, Key Vault with the cluster secrets, one scale set per pool, role assignments", self.cluster),
            },
            "parameters": {
                "sshPublicKey": {
                    "type": "string",
                    "metadata": { "description": "OpenSSH public key of the admin user (password login is disabled)." },
                },
                "imageId": {
                    "type": "string",
                    "metadata": { "description": "Resource id of the kubeboot VM image (built with Packer)." },
                },
                "customData": {
                    "type": "object",
                    "metadata": { "description": "Per pool name, the base64 gzip cloud-init user data (DIR/pools/<pool>/custom-data.b64). It carries no secret: nodes read those from the Key Vault." },
                },
                CLUSTER_SECRETS_PARAMETER: {
                    "type": "secureObject",
                    "metadata": { "description": "Per Key Vault secret name, its value (join token; JSON of the shared PKI). Secure: ARM neither logs nor returns it, so one deployment fills the vault." },
                },
            },
            "variables": {
                "clusterTags": super::cluster_tags(&self.cluster),
            },
            "resources": resources,
            "outputs": {
                "apiServerFqdn": {
                    "type": "string",
                    "value": format!(
                        "[reference({}, '{NETWORK_API_VERSION}').dnsSettings.fqdn]",
                        resource_id(PUBLIC_IP, &[&self.public_ip])
                    ),
                },
            },
        });
        if self.pools.iter().any(|p| p.autoscaler_tags.is_some()) {
            template["parameters"][POOL_CAPACITY_PARAMETER] = json!({
                "type": "object",
                "metadata": { "description": "Per autoscaled pool name, the instances to deploy it with. The parameters file has the spec's count, for the first deployment; when re-deploying, pass each pool's live capacity (docs/azure.md), or the deployment resizes the pool to it under the autoscaler." },
            });
        }
        template
    }

    /// The masters' NSG: the API server and SSH from the allowed sources, plus the common rules.
    fn master_nsg(&self) -> Value {
        let api_port = API_SERVER_PORT.to_string();
        let mut rules = vec![
            inbound_from_sources(
                "allow-apiserver-in",
                "kubectl and nodes to the API server",
                100,
                &self.api_sources,
                &api_port,
            ),
            inbound_from_sources(
                "allow-ssh-in",
                "SSH to the masters through the load balancer's NAT pool",
                110,
                &self.ssh_sources,
                "22",
            ),
        ];
        rules.extend(common_rules());
        self.nsg(&self.master_nsg, rules)
    }

    fn worker_nsg(&self) -> Value {
        self.nsg(&self.worker_nsg, common_rules().to_vec())
    }

    fn nsg(&self, name: &str, rules: Vec<Value>) -> Value {
        resource(
            NSG,
            name,
            json!({
                "location": self.location,
                "tags": CLUSTER_TAGS,
                "properties": { "securityRules": rules },
            }),
        )
    }

    fn vnet(&self) -> Value {
        let subnets: Vec<Value> = self
            .pools
            .iter()
            .map(|pool| {
                json!({
                    "name": pool.subnet,
                    "properties": {
                        "addressPrefix": pool.subnet_cidr,
                        "networkSecurityGroup": id_ref(NSG, &[&pool.nsg]),
                        "routeTable": id_ref(ROUTE_TABLE, &[&self.route_table]),
                    },
                })
            })
            .collect();
        resource(
            VNET,
            &self.vnet,
            json!({
                "location": self.location,
                "tags": CLUSTER_TAGS,
                "dependsOn": [
                    id_expression(NSG, &[&self.master_nsg]),
                    id_expression(NSG, &[&self.worker_nsg]),
                    id_expression(ROUTE_TABLE, &[&self.route_table]),
                ],
                "properties": {
                    "addressSpace": { "addressPrefixes": [self.vnet_cidr] },
                    "subnets": subnets,
                },
            }),
        )
    }

    fn public_ip(&self) -> Value {
        let mut body = json!({
            "location": self.location,
            "tags": CLUSTER_TAGS,
            "sku": { "name": "Standard", "tier": "Regional" },
            "properties": {
                "publicIPAllocationMethod": "Static",
                "publicIPAddressVersion": "IPv4",
                "idleTimeoutInMinutes": 4,
                "dnsSettings": { "domainNameLabel": self.dns_label },
            },
        });
        if !self.public_ip_zones.is_empty() {
            body["zones"] = json!(self.public_ip_zones);
        }
        resource(PUBLIC_IP, &self.public_ip, body)
    }

    fn load_balancer(&self) -> Value {
        let lb = &self.lb;
        let frontend = id_ref(
            "Microsoft.Network/loadBalancers/frontendIPConfigurations",
            &[&lb.name, &lb.frontend],
        );
        let backend_pool = |pool: &str| {
            id_ref(
                "Microsoft.Network/loadBalancers/backendAddressPools",
                &[&lb.name, pool],
            )
        };
        resource(
            LOAD_BALANCER,
            &lb.name,
            json!({
                "location": self.location,
                "tags": CLUSTER_TAGS,
                "sku": { "name": "Standard", "tier": "Regional" },
                "dependsOn": [id_expression(PUBLIC_IP, &[&self.public_ip])],
                "properties": {
                    "frontendIPConfigurations": [{
                        "name": lb.frontend,
                        "properties": { "publicIPAddress": id_ref(PUBLIC_IP, &[&self.public_ip]) },
                    }],
                    "backendAddressPools": [
                        { "name": lb.master_pool },
                        { "name": lb.outbound_pool },
                    ],
                    "probes": [{
                        "name": lb.probe,
                        "properties": {
                            "protocol": "Tcp",
                            "port": API_SERVER_PORT,
                            "intervalInSeconds": 5,
                            "probeThreshold": 2,
                        },
                    }],
                    "loadBalancingRules": [{
                        "name": lb.api_rule,
                        "properties": {
                            "frontendIPConfiguration": frontend,
                            "backendAddressPool": backend_pool(&lb.master_pool),
                            "probe": id_ref("Microsoft.Network/loadBalancers/probes", &[&lb.name, &lb.probe]),
                            "protocol": "Tcp",
                            "frontendPort": API_SERVER_PORT,
                            "backendPort": API_SERVER_PORT,
                            "enableFloatingIP": false,
                            "idleTimeoutInMinutes": 30,
                            "loadDistribution": "Default",
                            "disableOutboundSnat": true,
                        },
                    }],
                    "inboundNatPools": [{
                        "name": lb.ssh_nat_pool,
                        "properties": {
                            "frontendIPConfiguration": frontend,
                            "protocol": "Tcp",
                            "frontendPortRangeStart": SSH_NAT_PORT_START,
                            "frontendPortRangeEnd": SSH_NAT_PORT_END,
                            "backendPort": 22,
                        },
                    }],
                    "outboundRules": [{
                        "name": lb.outbound_rule,
                        "properties": {
                            "frontendIPConfigurations": [frontend],
                            "backendAddressPool": backend_pool(&lb.outbound_pool),
                            "protocol": "All",
                            "enableTcpReset": true,
                            "idleTimeoutInMinutes": 4,
                        },
                    }],
                },
            }),
        )
    }

    fn vault(&self) -> Value {
        resource(
            KEY_VAULT,
            &self.key_vault,
            json!({
                "location": self.location,
                "tags": CLUSTER_TAGS,
                "properties": {
                    "tenantId": "[subscription().tenantId]",
                    "sku": { "family": "A", "name": "standard" },
                    "enableRbacAuthorization": true,
                    "enableSoftDelete": true,
                    "softDeleteRetentionInDays": SOFT_DELETE_RETENTION_DAYS,
                    "enablePurgeProtection": true,
                    "enabledForDeployment": false,
                    "enabledForDiskEncryption": false,
                    "enabledForTemplateDeployment": false,
                },
            }),
        )
    }

    /// A vault secret, its value taken from the secure parameter (never a literal).
    fn vault_secret(&self, secret: &str) -> Value {
        resource(
            KEY_VAULT_SECRET,
            &format!("{}/{secret}", self.key_vault),
            json!({
                "tags": CLUSTER_TAGS,
                "dependsOn": [id_expression(KEY_VAULT, &[&self.key_vault])],
                "properties": {
                    "value": format!("[parameters('{CLUSTER_SECRETS_PARAMETER}')['{secret}']]"),
                    "contentType": if secret == PKI_SECRET { "application/json" } else { "text/plain" },
                },
            }),
        )
    }

    fn scale_set(&self, pool: &Pool) -> Value {
        let lb = &self.lb;
        let lb_child = |kind: &str, name: &str| id_ref(kind, &[&lb.name, name]);
        let mut depends_on = vec![
            id_expression(VNET, &[&self.vnet]),
            id_expression(LOAD_BALANCER, &[&lb.name]),
            id_expression(KEY_VAULT_SECRET, &[&self.key_vault, JOIN_TOKEN_SECRET]),
        ];
        let mut backend_pools = Vec::new();
        if pool.master {
            depends_on.push(id_expression(
                KEY_VAULT_SECRET,
                &[&self.key_vault, PKI_SECRET],
            ));
            backend_pools.push(lb_child(
                "Microsoft.Network/loadBalancers/backendAddressPools",
                &lb.master_pool,
            ));
        }
        backend_pools.push(lb_child(
            "Microsoft.Network/loadBalancers/backendAddressPools",
            &lb.outbound_pool,
        ));
        let mut ip_configuration = json!({
            "primary": true,
            "subnet": id_ref("Microsoft.Network/virtualNetworks/subnets", &[&self.vnet, &pool.subnet]),
            "loadBalancerBackendAddressPools": backend_pools,
        });
        if pool.master {
            ip_configuration["loadBalancerInboundNatPools"] = json!([lb_child(
                "Microsoft.Network/loadBalancers/inboundNatPools",
                &lb.ssh_nat_pool
            )]);
        }
        // An autoscaled pool's capacity comes from a parameter, so that a re-deployment can keep
        // what the autoscaler made of it; its tags are the cluster tags plus the autoscaler's.
        let (tags, capacity) = match &pool.autoscaler_tags {
            None => (json!(CLUSTER_TAGS), json!(pool.count)),
            Some(autoscaler) => {
                let mut tags = super::cluster_tags(&self.cluster);
                tags.extend(autoscaler.clone());
                let capacity =
                    format!("[parameters('{POOL_CAPACITY_PARAMETER}')['{}']]", pool.name);
                (json!(tags), json!(capacity))
            }
        };
        let mut body = json!({
            "location": self.location,
            "tags": tags,
            "dependsOn": depends_on,
            "sku": { "name": pool.vm_size, "tier": "Standard", "capacity": capacity },
            "identity": { "type": "SystemAssigned" },
            "properties": {
                "orchestrationMode": "Uniform",
                "overprovision": false,
                "upgradePolicy": { "mode": "Manual" },
                "virtualMachineProfile": {
                    "osProfile": {
                        "computerNamePrefix": pool.computer_name_prefix,
                        "adminUsername": self.admin_username,
                        "customData": format!("[parameters('customData')['{}']]", pool.name),
                        "linuxConfiguration": {
                            "disablePasswordAuthentication": true,
                            "provisionVMAgent": true,
                            "ssh": {
                                "publicKeys": [{
                                    "path": format!("/home/{}/.ssh/authorized_keys", self.admin_username),
                                    "keyData": "[parameters('sshPublicKey')]",
                                }],
                            },
                        },
                    },
                    "storageProfile": {
                        "imageReference": { "id": "[parameters('imageId')]" },
                        "osDisk": {
                            "createOption": "FromImage",
                            "caching": "ReadWrite",
                            "managedDisk": { "storageAccountType": "StandardSSD_LRS" },
                        },
                    },
                    "networkProfile": {
                        "networkInterfaceConfigurations": [{
                            "name": format!("{}-nic", pool.vmss),
                            "properties": {
                                "primary": true,
                                "enableIPForwarding": true,
                                "ipConfigurations": [{
                                    "name": format!("{}-ipconfig", pool.vmss),
                                    "properties": ip_configuration,
                                }],
                            },
                        }],
                    },
                },
            },
        });
        if !pool.zones.is_empty() {
            body["zones"] = json!(pool.zones);
        }
        if pool.most_instances > SINGLE_PLACEMENT_GROUP_VMS {
            body["properties"]["singlePlacementGroup"] = json!(false);
        }
        resource(SCALE_SET, &pool.vmss, body)
    }

    /// The expression for the principal id of a scale set's system-assigned identity.
    fn principal_id(pool: &Pool) -> String {
        format!(
            "[reference({}, '{COMPUTE_API_VERSION}', 'full').identity.principalId]",
            resource_id(SCALE_SET, &[&pool.vmss])
        )
    }

    /// The scale set identity's role on the resource group.
    fn role_assignment(&self, pool: &Pool) -> Value {
        let vmss_id = resource_id(SCALE_SET, &[&pool.vmss]);
        let role = &pool.role;
        let mut depends_on = vec![format!("[{vmss_id}]")];
        let role_definition = if role.custom {
            let custom = id_expression(ROLE_DEFINITION, &[&role.id]);
            depends_on.push(custom.clone());
            custom
        } else {
            format!(
                "[subscriptionResourceId('{ROLE_DEFINITION}', '{}')]",
                role.id
            )
        };
        resource(
            ROLE_ASSIGNMENT,
            &format!("[guid(resourceGroup().id, {vmss_id}, '{}')]", role.id),
            json!({
                "dependsOn": depends_on,
                "properties": {
                    "roleDefinitionId": role_definition,
                    "principalId": Self::principal_id(pool),
                    "principalType": "ServicePrincipal",
                    "description": format!("kubeboot {}: {} for scale set {}", self.cluster, role.name, pool.vmss),
                },
            }),
        )
    }

    /// One of the scale set identity's grants on the vault or a secret (`VaultGrant::for_pool`).
    /// The identity exists only once the scale set does, so its instances may be refused (403)
    /// until these assignments have propagated: the agent retries.
    fn vault_assignment(&self, pool: &Pool, grant: &VaultGrant) -> Value {
        let vmss_id = resource_id(SCALE_SET, &[&pool.vmss]);
        resource(
            ROLE_ASSIGNMENT,
            &format!("[guid({}, {vmss_id}, '{}')]", grant.scope_id, grant.role_id),
            json!({
                "scope": grant.scope,
                "dependsOn": [format!("[{vmss_id}]"), format!("[{}]", grant.scope_id)],
                "properties": {
                    "roleDefinitionId": format!("[subscriptionResourceId('{ROLE_DEFINITION}', '{}')]", grant.role_id),
                    "principalId": Self::principal_id(pool),
                    "principalType": "ServicePrincipal",
                    "description": format!(
                        "kubeboot {}: {} on {} for scale set {}",
                        self.cluster, grant.role_name, grant.scope, pool.vmss
                    ),
                },
            }),
        )
    }
}

/// The workers' custom role (under `identityRoles: contributor-plus-custom`).
fn custom_role(role: &CustomRole) -> Value {
    resource(
        ROLE_DEFINITION,
        &role.id,
        json!({
            "properties": {
                "roleName": role.role_name,
                "description": "kubeboot workers: read their own scale set and network; no write access (the cloud controller runs on the masters).",
                "type": "CustomRole",
                "permissions": [{ "actions": WORKER_CUSTOM_ROLE_ACTIONS, "notActions": [] }],
                "assignableScopes": ["[resourceGroup().id]"],
            },
        }),
    )
}

/// An allow rule for one source and destination prefix.
fn allow_rule(
    name: &str,
    priority: u32,
    direction: &str,
    protocol: &str,
    source: &str,
    destination: &str,
    port: &str,
) -> Value {
    json!({
        "name": name,
        "properties": {
            "priority": priority,
            "direction": direction,
            "access": "Allow",
            "protocol": protocol,
            "sourceAddressPrefix": source,
            "sourcePortRange": "*",
            "destinationAddressPrefix": destination,
            "destinationPortRange": port,
        },
    })
}

/// An inbound TCP rule from the spec's allowed sources to the VNet (one source is
/// `sourceAddressPrefix`, several `sourceAddressPrefixes`).
fn inbound_from_sources(
    name: &str,
    description: &str,
    priority: u32,
    sources: &[String],
    port: &str,
) -> Value {
    let mut rule = allow_rule(name, priority, "Inbound", "Tcp", "", "VirtualNetwork", port);
    let properties = rule["properties"]
        .as_object_mut()
        .expect("built as an object");
    properties.insert("description".into(), description.into());
    properties.remove("sourceAddressPrefix");
    match sources {
        [one] => properties.insert("sourceAddressPrefix".into(), one.as_str().into()),
        many => properties.insert("sourceAddressPrefixes".into(), json!(many)),
    };
    rule
}

/// Rules both NSGs carry (the seed: in/out within the VNet, in/out with the Azure load balancer).
fn common_rules() -> [Value; 4] {
    [
        allow_rule(
            "allow-vnet-in",
            200,
            "Inbound",
            "*",
            "VirtualNetwork",
            "VirtualNetwork",
            "*",
        ),
        allow_rule(
            "allow-loadbalancer-in",
            210,
            "Inbound",
            "*",
            "AzureLoadBalancer",
            "*",
            "*",
        ),
        allow_rule(
            "allow-vnet-out",
            200,
            "Outbound",
            "*",
            "VirtualNetwork",
            "VirtualNetwork",
            "*",
        ),
        allow_rule(
            "allow-loadbalancer-out",
            210,
            "Outbound",
            "*",
            "*",
            "AzureLoadBalancer",
            "*",
        ),
    ]
}

fn builtin_role(id: &str, name: &'static str) -> PoolRole {
    PoolRole {
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
