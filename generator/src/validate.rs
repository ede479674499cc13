//! Strict, friendly validation of the cluster spec. Every problem is one line naming the field path
//! (`spec.pools[1].subnetCIDR: ...`); all problems are collected, not just the first.
//!
//! Provider rule: with `spec.azure` the network layout is Azure's (`vnetCIDR`, per-pool `subnetCIDR`
//! and `vmSize` are required, `zones` optional) and the endpoint is derived from the public IP's DNS
//! label, so `controlPlaneEndpoint`/`initNode` are refused. Without `spec.azure` (plain VMs, bare
//! metal) `controlPlaneEndpoint` and `initNode` are required and the Azure-only fields are refused
//! rather than ignored: a field that silently does nothing is a bug waiting to happen.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;
use kubeboot_nodeconfig::labels::{check_node_label, is_dns_subdomain};
use kubeboot_nodeconfig::releases::{supported_minors, Support};
use kubeboot_nodeconfig::{
    parse_versioned, ControlPlaneEndpoint, FieldError, KubernetesVersion, Role, API_VERSION,
};
use time::Date;

use crate::names::{azure_api_endpoint, Names, MAX_CLUSTER_NAME, MAX_POOL_NAME};
use crate::spec::{AzureSpec, ClusterSpec, PoolSpec, KIND};

/// The built-in example: the spec verbatim.
pub const EXAMPLE_SPEC: &str = include_str!("../examples/cluster.yaml");

/// Azure keeps five addresses of every subnet for itself.
const AZURE_RESERVED_PER_SUBNET: u64 = 5;
/// kube-controller-manager's default --node-cidr-mask-size for IPv4: one /24 per node.
const NODE_POD_PREFIX: u8 = 24;
/// kube-apiserver refuses IPv4 service ranges larger than /12 (20 host bits).
const MAX_SERVICE_HOST_BITS: u8 = 20;
/// The cloud provider's default --cluster-name; a cluster of that name would share load
/// balancers and public IPs with any misconfigured cluster in the resource group.
const CLOUD_PROVIDER_DEFAULT_CLUSTER_NAME: &str = "kubernetes";

/// A spec that passed validation, with the values derived from it.
#[derive(Debug, Clone)]
pub struct ValidSpec {
    /// The spec with every default applied (including the derived DNS label on Azure).
    pub cluster: ClusterSpec,
    /// The API server's endpoint, as every NodeConfig carries it.
    pub control_plane_endpoint: ControlPlaneEndpoint,
    /// Problems that do not stop rendering.
    pub warnings: Vec<FieldError>,
}

impl ValidSpec {
    pub fn name(&self) -> &str {
        &self.cluster.metadata.name
    }

    pub fn names(&self) -> Names<'_> {
        Names::new(&self.cluster.metadata.name)
    }

    /// The effective spec as YAML, with the derived endpoint as a leading comment (it is not a
    /// field on Azure, so the output stays a valid spec).
    pub fn effective_yaml(&self) -> String {
        let body = serde_yaml_ng::to_string(&self.cluster).expect("a spec always serialises");
        format!(
            "# controlPlaneEndpoint: {}\n{body}",
            self.control_plane_endpoint
        )
    }
}

/// The day a spec is validated on, and whether the operator accepts a Kubernetes minor past its
/// end of life (`--allow-end-of-life`).
#[derive(Debug, Clone, Copy)]
pub struct Lifecycle {
    pub today: Date,
    pub allow_end_of_life: bool,
}

impl Lifecycle {
    pub fn today(allow_end_of_life: bool) -> Self {
        Self {
            today: time::OffsetDateTime::now_utc().date(),
            allow_end_of_life,
        }
    }
}

/// Parses and validates a spec as of today, refusing minors past their end of life; on failure
/// returns every problem found.
pub fn validate_text(text: &str) -> Result<ValidSpec, Vec<FieldError>> {
    validate_text_with(text, Lifecycle::today(false))
}

pub fn validate_text_with(text: &str, lifecycle: Lifecycle) -> Result<ValidSpec, Vec<FieldError>> {
    let cluster: ClusterSpec = parse_versioned(text, API_VERSION, KIND).map_err(|e| vec![e])?;
    validate(cluster, lifecycle)
}

pub fn validate(
    mut cluster: ClusterSpec,
    lifecycle: Lifecycle,
) -> Result<ValidSpec, Vec<FieldError>> {
    let mut v = Validator::default();
    v.kubernetes_version(&cluster.spec.kubernetes_version, lifecycle);
    v.metadata(&cluster);
    v.spec(&cluster);
    if !v.errors.is_empty() {
        return Err(v.errors);
    }
    let control_plane_endpoint = match &mut cluster.spec.azure {
        Some(azure) => {
            let label = azure.dns_label.get_or_insert_with(|| {
                Names::new(&cluster.metadata.name).default_dns_label(&azure.resource_group)
            });
            azure_api_endpoint(label, &azure.location)
        }
        None => cluster
            .spec
            .control_plane_endpoint
            .clone()
            .expect("checked: required without spec.azure"),
    }
    .parse()
    .expect("checked: a given endpoint, or a DNS label and a location");
    Ok(ValidSpec {
        cluster,
        control_plane_endpoint,
        warnings: v.warnings,
    })
}

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
    warnings: Vec<FieldError>,
}

impl Validator {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(path, message));
    }

    fn check(&mut self, path: impl Into<String>, result: Result<(), String>) {
        if let Err(message) = result {
            self.error(path, message);
        }
    }

    fn metadata(&mut self, cluster: &ClusterSpec) {
        let name = &cluster.metadata.name;
        self.check(
            "metadata.name",
            check_azure_dns_name(name, MAX_CLUSTER_NAME),
        );
        if name == CLOUD_PROVIDER_DEFAULT_CLUSTER_NAME {
            self.error(
                "metadata.name",
                "\"kubernetes\" is the cloud provider's default cluster name; choose a name of your own",
            );
        }
    }

    fn kubernetes_version(&mut self, version: &KubernetesVersion, lifecycle: Lifecycle) {
        const PATH: &str = "spec.kubernetesVersion";
        match version.support(lifecycle.today) {
            Err(message) => self.error(PATH, message),
            Ok(Support::Supported(_)) => {}
            Ok(Support::EndOfLife(release)) if lifecycle.allow_end_of_life => {
                self.warnings.push(FieldError::new(
                    PATH,
                    format!(
                        "{}; rendering it anyway (--allow-end-of-life)",
                        release.end_of_life_message()
                    ),
                ))
            }
            Ok(Support::EndOfLife(release)) => self.error(
                PATH,
                format!(
                    "{} (supported now: {}); pass --allow-end-of-life to render it anyway",
                    release.end_of_life_message(),
                    supported_minors(lifecycle.today)
                        .map(|m| format!("1.{m}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }
    }

    fn spec(&mut self, cluster: &ClusterSpec) {
        let spec = &cluster.spec;
        match &spec.azure {
            Some(azure) => self.azure(azure, cluster),
            None => self.plain_vms(cluster),
        }
        self.network(cluster);
        self.pools(cluster);
        self.check(
            "spec.ssh.adminUsername",
            check_admin_username(&spec.ssh.admin_username),
        );
        self.errors.extend(crate::vault::validate(&spec.secrets));
        if let Err(problems) = spec.api_server.validate("spec.apiServer") {
            self.errors.extend(problems);
        }
        if let Err(e) = spec
            .api_server
            .check_for_version("spec.apiServer", &spec.kubernetes_version)
        {
            self.errors.push(e);
        }
        self.errors.extend(
            spec.artifacts
                .problems("spec.artifacts", &spec.kubernetes_version),
        );
    }

    fn azure(&mut self, azure: &AzureSpec, cluster: &ClusterSpec) {
        self.check("spec.azure.tenantId", check_guid(&azure.tenant_id));
        self.check(
            "spec.azure.subscriptionId",
            check_guid(&azure.subscription_id),
        );
        self.check(
            "spec.azure.resourceGroup",
            check_resource_group(&azure.resource_group),
        );
        self.check("spec.azure.location", check_location(&azure.location));
        if let Some(label) = &azure.dns_label {
            self.check("spec.azure.dnsLabel", check_dns_label(label));
        }
        self.errors.extend(crate::arm::validate_azure(azure));
        self.errors.extend(crate::arm::validate_pool_sizes(cluster));
        // The NodeConfig's rules for cloud/customCloud, reported at the spec's paths.
        if let Err(e) = crate::render::azure_provider(azure).validate("spec.azure") {
            self.errors.push(e);
        }
        let spec = &cluster.spec;
        if spec.control_plane_endpoint.is_some() {
            self.error(
                "spec.controlPlaneEndpoint",
                "is derived on Azure (<dnsLabel>.<location>.cloudapp.azure.com:6443); set spec.azure.dnsLabel instead",
            );
        }
        if spec.init_node.is_some() {
            self.error(
                "spec.initNode",
                "is not used on Azure (the master scale set's instance 0 runs kubeadm init)",
            );
        }
        if spec.network.vnet_cidr.is_none() {
            self.error("spec.network.vnetCIDR", "is required with spec.azure");
        }
        for (i, pool) in spec.pools.iter().enumerate() {
            if pool.subnet_cidr.is_none() {
                self.error(
                    format!("spec.pools[{i}].subnetCIDR"),
                    "is required with spec.azure",
                );
            }
            match &pool.vm_size {
                None => self.error(
                    format!("spec.pools[{i}].vmSize"),
                    "is required with spec.azure",
                ),
                Some(size) => self.check(format!("spec.pools[{i}].vmSize"), check_vm_size(size)),
            }
        }
    }

    fn plain_vms(&mut self, cluster: &ClusterSpec) {
        let spec = &cluster.spec;
        match &spec.control_plane_endpoint {
            None => self.error(
                "spec.controlPlaneEndpoint",
                "is required without spec.azure (host:port of the API server)",
            ),
            Some(endpoint) => self.check(
                "spec.controlPlaneEndpoint",
                endpoint.parse::<ControlPlaneEndpoint>().map(drop),
            ),
        }
        match &spec.init_node {
            None => self.error(
                "spec.initNode",
                "is required without spec.azure (node name of the master that runs kubeadm init)",
            ),
            Some(node) => {
                if !is_dns_subdomain(node) {
                    self.error(
                        "spec.initNode",
                        format!("{node:?} is not a valid node name (lowercase DNS subdomain)"),
                    );
                }
            }
        }
        if spec.network.vnet_cidr.is_some() {
            self.error("spec.network.vnetCIDR", AZURE_ONLY);
        }
        for (i, pool) in spec.pools.iter().enumerate() {
            if pool.subnet_cidr.is_some() {
                self.error(format!("spec.pools[{i}].subnetCIDR"), AZURE_ONLY);
            }
            if pool.vm_size.is_some() {
                self.error(format!("spec.pools[{i}].vmSize"), AZURE_ONLY);
            }
            if !pool.zones.is_empty() {
                self.error(format!("spec.pools[{i}].zones"), AZURE_ONLY);
            }
            if pool.autoscaling.is_some() {
                self.error(format!("spec.pools[{i}].autoscaling"), AZURE_ONLY);
            }
        }
        if spec.addons.azure_disk.is_some_and(|d| d.enabled) {
            self.error("spec.addons.azureDisk", AZURE_ONLY);
        }
    }

    fn network(&mut self, cluster: &ClusterSpec) {
        let net = &cluster.spec.network;
        let mut ranges = vec![
            ("spec.network.podCIDR", net.pod_cidr),
            ("spec.network.serviceCIDR", net.service_cidr),
        ];
        ranges.extend(net.vnet_cidr.map(|v| ("spec.network.vnetCIDR", v)));
        for (path, cidr) in &ranges {
            self.check(*path, check_canonical(cidr));
        }
        for (i, (path, cidr)) in ranges.iter().enumerate() {
            for (other_path, other) in &ranges[..i] {
                if overlaps(cidr, other) {
                    self.error(*path, format!("{cidr} overlaps {other_path} ({other})"));
                }
            }
        }
        if 32 - net.service_cidr.prefix_len() > MAX_SERVICE_HOST_BITS {
            self.error(
                "spec.network.serviceCIDR",
                format!(
                    "{} is larger than the API server accepts (at most /{})",
                    net.service_cidr,
                    32 - MAX_SERVICE_HOST_BITS
                ),
            );
        }
        let nodes: u64 = cluster
            .spec
            .pools
            .iter()
            .map(|p| u64::from(p.most_instances()))
            .sum();
        if net.pod_cidr.prefix_len() > NODE_POD_PREFIX {
            self.error(
                "spec.network.podCIDR",
                format!(
                    "{} is smaller than one node's /{NODE_POD_PREFIX} pod range",
                    net.pod_cidr
                ),
            );
        } else {
            let node_ranges = 1u64 << (NODE_POD_PREFIX - net.pod_cidr.prefix_len());
            if nodes > node_ranges {
                self.error(
                    "spec.network.podCIDR",
                    format!(
                        "{} holds {node_ranges} node ranges of /{NODE_POD_PREFIX} but the pools have {nodes} nodes",
                        net.pod_cidr
                    ),
                );
            }
        }
    }

    fn pools(&mut self, cluster: &ClusterSpec) {
        let pools = &cluster.spec.pools;
        if pools.is_empty() {
            self.error("spec.pools", "needs at least the master pool");
            return;
        }
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, pool) in pools.iter().enumerate() {
            let path = format!("spec.pools[{i}]");
            self.check(
                format!("{path}.name"),
                check_azure_dns_name(&pool.name, MAX_POOL_NAME),
            );
            if let Some(first) = seen.insert(&pool.name, i) {
                seen.insert(&pool.name, first);
                self.error(
                    format!("{path}.name"),
                    format!("{:?} is already used by spec.pools[{first}]", pool.name),
                );
            }
            self.zones(&path, pool);
            self.labels(&path, pool);
            self.autoscaling(&path, pool);
            self.subnet(&path, i, cluster);
        }
        let masters: Vec<usize> = pools
            .iter()
            .enumerate()
            .filter(|(_, p)| p.role == Role::Master)
            .map(|(i, _)| i)
            .collect();
        match masters.as_slice() {
            [] => self.error(
                "spec.pools",
                "needs exactly one pool with role master, found none",
            ),
            [i] => {
                let count = pools[*i].count;
                let path = format!("spec.pools[{i}].count");
                if count == 0 {
                    self.error(path, "a master pool needs at least one node");
                } else if count % 2 == 0 {
                    self.warnings.push(FieldError::new(
                        path,
                        format!("{count} masters: etcd tolerates no more failures than with {}; an odd count is better", count - 1),
                    ));
                }
            }
            [first, rest @ ..] => {
                for i in rest {
                    self.error(
                        format!("spec.pools[{i}].role"),
                        format!("only one pool may be master; spec.pools[{first}] already is"),
                    );
                }
            }
        }
    }

    fn zones(&mut self, path: &str, pool: &PoolSpec) {
        for (j, zone) in pool.zones.iter().enumerate() {
            if !matches!(zone.as_str(), "1" | "2" | "3") {
                self.error(
                    format!("{path}.zones[{j}]"),
                    format!("{zone:?} is not an Azure availability zone (\"1\", \"2\" or \"3\")"),
                );
            } else if pool.zones[..j].contains(zone) {
                self.error(
                    format!("{path}.zones[{j}]"),
                    format!("zone {zone:?} is listed twice"),
                );
            }
        }
    }

    fn labels(&mut self, path: &str, pool: &PoolSpec) {
        for (key, value) in &pool.labels {
            self.check(format!("{path}.labels.{key}"), check_node_label(key, value));
        }
        for (j, taint) in pool.taints.iter().enumerate() {
            if pool.taints[..j]
                .iter()
                .any(|t| t.key == taint.key && t.effect == taint.effect)
            {
                self.error(
                    format!("{path}.taints[{j}]"),
                    format!("{taint} repeats the key and effect of an earlier taint"),
                );
            }
        }
    }

    /// cluster-autoscaler scales worker pools between `min` and `max`; `count` is where it starts.
    /// The pool's labels and taints become the scale set's node-template tags, and a resource
    /// holds at most 50 tags.
    fn autoscaling(&mut self, path: &str, pool: &PoolSpec) {
        let Some(range) = pool.autoscaling else {
            return;
        };
        let at = format!("{path}.autoscaling");
        if pool.role == Role::Master {
            self.error(
                at,
                "masters are not autoscaled (etcd membership does not follow the scale set)",
            );
            return;
        }
        if range.max == 0 || range.min > range.max {
            self.error(
                at,
                format!(
                    "min {} and max {} must satisfy min <= max and max >= 1",
                    range.min, range.max
                ),
            );
            return;
        }
        if !(range.min..=range.max).contains(&pool.count) {
            self.error(
                format!("{path}.count"),
                format!(
                    "{} is outside autoscaling's {}..={} (count is the size the pool starts at)",
                    pool.count, range.min, range.max
                ),
            );
        }
        // The node template's taints are tags named by key: one key, one taint.
        for (j, taint) in pool.taints.iter().enumerate() {
            if pool.taints[..j].iter().any(|t| t.key == taint.key) {
                self.error(
                    format!("{path}.taints[{j}]"),
                    format!(
                        "{taint} repeats the key of an earlier taint; an autoscaled pool's node template holds one taint per key"
                    ),
                );
            }
        }
        // Every label and taint is a tag besides kubeboot's own; the cluster name does not
        // change the count.
        let tags = crate::arm::autoscaler_tags("", pool).map_or(0, |t| t.len())
            + crate::arm::cluster_tags("").len();
        if tags > crate::arm::MAX_TAGS {
            self.error(
                at,
                format!(
                    "its {} labels and {} taints make its scale set carry {tags} tags, over Azure's {}",
                    pool.labels.len(),
                    pool.taints.len(),
                    crate::arm::MAX_TAGS
                ),
            );
        }
    }

    fn subnet(&mut self, path: &str, index: usize, cluster: &ClusterSpec) {
        let pools = &cluster.spec.pools;
        let pool = &pools[index];
        let Some(subnet) = pool.subnet_cidr else {
            return;
        };
        let path = format!("{path}.subnetCIDR");
        if let Err(message) = check_canonical(&subnet) {
            self.error(path, message);
            return;
        }
        let net = &cluster.spec.network;
        if let Some(vnet) = net.vnet_cidr {
            if !vnet.contains(&subnet) {
                self.error(
                    &path,
                    format!("{subnet} is outside spec.network.vnetCIDR ({vnet})"),
                );
            }
        }
        for (other_path, other) in [
            ("spec.network.podCIDR", net.pod_cidr),
            ("spec.network.serviceCIDR", net.service_cidr),
        ] {
            if overlaps(&subnet, &other) {
                self.error(&path, format!("{subnet} overlaps {other_path} ({other})"));
            }
        }
        for (j, other) in pools[..index].iter().enumerate() {
            if let Some(other) = other.subnet_cidr.filter(|o| overlaps(&subnet, o)) {
                self.error(
                    &path,
                    format!("{subnet} overlaps spec.pools[{j}].subnetCIDR ({other})"),
                );
            }
        }
        let usable = (1u64 << (32 - subnet.prefix_len())).saturating_sub(AZURE_RESERVED_PER_SUBNET);
        if u64::from(pool.most_instances()) > usable {
            self.error(
                &path,
                format!(
                    "{subnet} has {usable} usable addresses (Azure reserves 5) for {} nodes",
                    pool.most_instances()
                ),
            );
        }
    }
}

const AZURE_ONLY: &str = "only applies with spec.azure; remove it for plain VMs";

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn check_canonical(net: &Ipv4Net) -> Result<(), String> {
    if net.trunc() == *net {
        Ok(())
    } else {
        Err(format!(
            "{net} has host bits set; did you mean {}?",
            net.trunc()
        ))
    }
}

/// Names that become DNS labels and Azure resource names: lowercase letters, digits and '-',
/// starting with a letter, not ending with '-'.
fn check_azure_dns_name(name: &str, max: usize) -> Result<(), String> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= max
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1] != b'-'
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} must be 1-{max} lowercase letters, digits or '-', starting with a letter and not ending with '-'"
        ))
    }
}

/// Azure public IP DNS label: `^[a-z][a-z0-9-]{1,61}[a-z0-9]$`.
fn check_dns_label(label: &str) -> Result<(), String> {
    check_azure_dns_name(label, 63).and_then(|_| {
        if label.len() >= 3 {
            Ok(())
        } else {
            Err(format!("{label:?} must be at least 3 characters"))
        }
    })
}

/// A GUID in its canonical hyphenated form (`8-4-4-4-12` hex digits).
fn check_guid(text: &str) -> Result<(), String> {
    match uuid::Uuid::try_parse(text) {
        Ok(_) if text.len() == 36 => Ok(()),
        _ => Err(format!(
            "{text:?} is not a GUID like 11111111-2222-4333-8444-555555555555"
        )),
    }
}

/// Azure resource group names: 1-90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.'.
fn check_resource_group(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 90
        && !name.ends_with('.')
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'(' | b')'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} must be 1-90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.'"
        ))
    }
}

/// Azure region names as ARM writes them (`westeurope`, `eastus2`), not display names.
fn check_location(location: &str) -> Result<(), String> {
    let b = location.as_bytes();
    if !b.is_empty()
        && b.len() <= 40
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        Ok(())
    } else {
        Err(format!(
            "{location:?} is not an Azure region name like westeurope (lowercase, no spaces)"
        ))
    }
}

/// `Standard_D4s_v5`, `Basic_A1`: tier, underscore, then letters/digits/underscores.
fn check_vm_size(size: &str) -> Result<(), String> {
    let ok = ["Standard_", "Basic_"].iter().any(|tier| {
        size.strip_prefix(tier).is_some_and(|rest| {
            !rest.is_empty()
                && !rest.starts_with('_')
                && !rest.ends_with('_')
                && rest.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
        })
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{size:?} is not an Azure VM size like Standard_D4s_v5"
        ))
    }
}

/// Azure's Linux admin user rules: 1-64 characters, not a reserved name, usable as a Linux user.
fn check_admin_username(name: &str) -> Result<(), String> {
    const RESERVED: &[&str] = &[
        "admin",
        "administrator",
        "root",
        "sys",
        "guest",
        "user",
        "test",
        "adm",
        "daemon",
        "bin",
    ];
    let b = name.as_bytes();
    if RESERVED.contains(&name) {
        return Err(format!("{name:?} is reserved by Azure or the OS"));
    }
    if !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-'))
    {
        Ok(())
    } else {
        Err(format!(
            "{name:?} must be 1-64 lowercase letters, digits, '_' or '-', starting with a letter or '_'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_is_valid_and_derives_the_endpoint() {
        let spec = validate_text(EXAMPLE_SPEC).unwrap();
        let label = Names::new("demo").default_dns_label("demo-rg");
        assert_eq!(
            spec.control_plane_endpoint.to_string(),
            format!("{label}.westeurope.cloudapp.azure.com:6443")
        );
        assert_eq!(
            spec.control_plane_endpoint.host().to_string(),
            format!("{label}.westeurope.cloudapp.azure.com")
        );
        assert!(spec.warnings.is_empty());
    }

    #[test]
    fn the_effective_spec_validates_to_itself() {
        let spec = validate_text(EXAMPLE_SPEC).unwrap();
        let again = validate_text(&spec.effective_yaml()).unwrap();
        assert_eq!(again.cluster, spec.cluster);
        assert_eq!(again.control_plane_endpoint, spec.control_plane_endpoint);
    }

    #[test]
    fn small_rules() {
        assert!(check_guid("11111111-2222-4333-8444-555555555555").is_ok());
        assert!(check_guid("111111112222433384445555555555555").is_err());
        assert!(check_guid("11111111222243338444555555555555").is_err());
        assert!(check_vm_size("Standard_NC6s_v3").is_ok());
        assert!(check_vm_size("Standard_").is_err());
        assert!(check_vm_size("D4s_v5").is_err());
        assert!(check_location("westeurope").is_ok());
        assert!(check_location("West Europe").is_err());
        assert!(check_resource_group("my_rg(1).x").is_ok());
        assert!(check_resource_group("rg.").is_err());
    }
}
