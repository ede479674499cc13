//! The ARM template walker: everything `kubeboot-gen check` and the tests verify about a rendered
//! `azuredeploy.json` (+ parameters) before anyone runs `az deployment group create`.
//!
//! Generic checks: every `parameters('x')`/`variables('x')` is declared, every `resourceId(...)`
//! with literal arguments (in `dependsOn` or anywhere else) names a resource or child of this
//! template, parameters without a default have a value, apiVersions are the pinned ones.
//! Seed checks: each point of the seed's provisioning flow (NSG rules, VNet/subnets/route table,
//! Standard public IP and load balancer named like the cluster, pools and rules, one scale set
//! per pool with its settings, role assignments, cluster tags everywhere), and the Key Vault
//! (RBAC, soft delete, purge protection, its two secrets from the secure parameter, who may read
//! and write what).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use kubeboot_nodeconfig::Role;
use serde_json::Value;

use super::{
    api_version, CLUSTER_SECRETS_PARAMETER, CLUSTER_TAG, CONTRIBUTOR_ROLE_ID, KEY_VAULT,
    KEY_VAULT_SECRET, KEY_VAULT_SECRETS_OFFICER_ROLE_ID, KEY_VAULT_SECRETS_USER_ROLE_ID,
    KUBEBOOT_TAG, LOAD_BALANCER, NSG, OWNER_ROLE_ID, PARAMETERS_FILE, POOL_CAPACITY_PARAMETER,
    PUBLIC_IP, ROLE_ASSIGNMENT, ROLE_DEFINITION, ROUTE_TABLE, SCALE_SET,
    SINGLE_PLACEMENT_GROUP_VMS, TEMPLATE_FILE, VNET,
};
use crate::check::ParsedTree;
use crate::names::{Names, API_SERVER_PORT, JOIN_TOKEN_SECRET, PKI_SECRET};
use crate::render::{pool_dir, CUSTOM_DATA};
use crate::secrets::FILE_MODE;
use crate::spec::{ClusterSpec, IdentityRoles, PoolSpec};

/// Parameters a deployment may supply on the command line instead of the parameters file.
const COMMAND_LINE_PARAMETERS: &[&str] = &["imageId"];

/// The `kubeboot-gen check` entry: walks the rendered template against the effective spec the
/// output carries (re-validated once for every check, see `ParsedTree`); also checks the parameters file is owner-only and carries
/// exactly each pool's rendered custom data.
pub fn check_tree(parsed: &ParsedTree) -> Vec<String> {
    let tree = parsed.tree;
    let spec = match &parsed.spec {
        Ok(valid) => &valid.cluster,
        Err(problems) => return problems.clone(),
    };
    let read_json = |rel: &str| -> Result<Value, String> {
        let bytes = tree.get(rel).ok_or_else(|| format!("{rel}: missing"))?;
        serde_json::from_slice(bytes).map_err(|e| format!("{rel}: not valid JSON: {e}"))
    };
    if spec.spec.azure.is_none() {
        return [TEMPLATE_FILE, PARAMETERS_FILE]
            .iter()
            .filter(|f| tree.get(f).is_some())
            .map(|f| format!("{f}: rendered for a cluster without spec.azure"))
            .collect();
    }
    let (template, parameters) = match (read_json(TEMPLATE_FILE), read_json(PARAMETERS_FILE)) {
        (Ok(t), Ok(p)) => (t, p),
        (t, p) => return [t.err(), p.err()].into_iter().flatten().collect(),
    };
    let mut problems: Vec<String> = check(&template, &parameters, spec)
        .into_iter()
        .map(|p| format!("{TEMPLATE_FILE}: {p}"))
        .collect();
    let mode = tree.files[Path::new(PARAMETERS_FILE)].mode;
    if mode != FILE_MODE {
        problems.push(format!(
            "{PARAMETERS_FILE}: mode {mode:o}, must be {FILE_MODE:o} (it carries the cluster secrets)"
        ));
    }
    for pool in &spec.spec.pools {
        let rel = pool_dir(&pool.name).join(CUSTOM_DATA);
        let rendered = tree
            .get(&rel)
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let given = parameters["parameters"]["customData"]["value"][&pool.name].as_str();
        if given != Some(rendered.trim_end()) {
            problems.push(format!(
                "{PARAMETERS_FILE}: customData of pool {:?} differs from {}",
                pool.name,
                rel.display()
            ));
        }
    }
    problems
}

/// Walks a template and its parameters document; returns one line per problem (empty: all good).
pub fn check(template: &Value, parameters: &Value, spec: &ClusterSpec) -> Vec<String> {
    let resources: Vec<&Value> = template["resources"]
        .as_array()
        .map(|r| r.iter().collect())
        .unwrap_or_default();
    // First of each (type, name), as ARM resolves `resourceId`: a map, because every reference
    // in the template is resolved and a linear search made the walk quadratic in the pools.
    let mut by_type_and_name: HashMap<String, HashMap<&str, &Value>> = HashMap::new();
    for resource in &resources {
        if let (Some(kind), Some(name)) = (resource["type"].as_str(), resource["name"].as_str()) {
            by_type_and_name
                .entry(kind.to_ascii_lowercase())
                .or_default()
                .entry(name)
                .or_insert(*resource);
        }
    }
    let mut walker = Walker {
        template,
        resources,
        by_type_and_name,
        problems: Vec::new(),
    };
    if walker.resources.is_empty() {
        walker.problem("resources: missing or empty");
        return walker.problems;
    }
    walker.generic(parameters, spec);
    walker.seed_points(parameters, spec);
    walker.problems
}

struct Walker<'t> {
    template: &'t Value,
    resources: Vec<&'t Value>,
    /// Resources by type in lower case (ARM types are case-insensitive), then by name.
    by_type_and_name: HashMap<String, HashMap<&'t str, &'t Value>>,
    problems: Vec<String>,
}

impl<'t> Walker<'t> {
    fn problem(&mut self, message: impl Into<String>) {
        self.problems.push(message.into());
    }

    fn generic(&mut self, parameters: &Value, spec: &ClusterSpec) {
        let schema = self.template["$schema"].as_str().unwrap_or_default();
        if !schema.ends_with("/deploymentTemplate.json#") {
            self.problem(format!(
                "$schema: {schema:?} is not a deployment template schema"
            ));
        }
        let declared_parameters = keys(&self.template["parameters"]);
        let declared_variables = keys(&self.template["variables"]);
        let mut strings = Vec::new();
        collect_strings(self.template, "", &mut strings);
        for (path, text) in &strings {
            let Some(expr) = expression(text) else {
                continue;
            };
            for (function, declared) in [
                ("parameters", &declared_parameters),
                ("variables", &declared_variables),
            ] {
                for call in calls(expr, function) {
                    match call.first() {
                        Some(Some(name)) if declared.contains(name) => {}
                        Some(Some(name)) => {
                            self.problem(format!("{path}: {function}('{name}') is not declared"))
                        }
                        _ => self.problem(format!("{path}: {function}() without a literal name")),
                    }
                }
            }
            for call in calls(expr, "resourceId") {
                if let Some(args) = call.into_iter().collect::<Option<Vec<String>>>() {
                    if self.resolve(&args).is_none() {
                        self.problem(format!(
                            "{path}: resourceId({}) names nothing in this template",
                            args.join(", ")
                        ));
                    }
                }
            }
        }
        for (i, resource) in self.resources.clone().into_iter().enumerate() {
            let kind = resource["type"].as_str().unwrap_or_default();
            let Some(want) = api_version(kind) else {
                self.problem(format!("resources[{i}]: unexpected type {kind:?}"));
                continue;
            };
            if resource["apiVersion"].as_str() != Some(want) {
                self.problem(format!(
                    "resources[{i}] ({kind}): apiVersion {} is not the pinned {want}",
                    resource["apiVersion"]
                ));
            }
            if resource["name"].as_str().is_none_or(str::is_empty) {
                self.problem(format!("resources[{i}] ({kind}): no name"));
            }
            for dep in resource["dependsOn"].as_array().into_iter().flatten() {
                let dep_text = dep.as_str().unwrap_or_default();
                let resolved = match expression(dep_text) {
                    Some(expr) => sole_resource_id(expr)
                        .is_some_and(|args| self.resolve_top_level(&args).is_some()),
                    None => self
                        .resources
                        .iter()
                        .any(|r| r["name"].as_str() == Some(dep_text)),
                };
                if !resolved {
                    self.problem(format!(
                        "resources[{i}] ({kind}): dependsOn {dep_text:?} is not a resource of this template"
                    ));
                }
            }
        }
        // Every parameter without a default must get a value, and the file may not carry extras
        // (ARM refuses a deployment with undeclared parameters).
        let given = keys(&parameters["parameters"]);
        let image_on_command_line = spec
            .spec
            .azure
            .as_ref()
            .is_none_or(|a| a.image_id.is_none());
        for name in &declared_parameters {
            let has_default = !self.template["parameters"][name]["defaultValue"].is_null();
            let command_line =
                image_on_command_line && COMMAND_LINE_PARAMETERS.contains(&name.as_str());
            if !has_default && !command_line && !given.contains(name) {
                self.problem(format!("parameters file: no value for parameter {name:?}"));
            }
        }
        for name in given.difference(&declared_parameters) {
            self.problem(format!(
                "parameters file: {name:?} is not a template parameter"
            ));
        }
    }

    /// A resource (top level, including child types declared at the top level such as
    /// `vaults/secrets` named `<vault>/<secret>`) or a child element (`properties.<childType>[name]`)
    /// of the template.
    fn resolve(&self, args: &[String]) -> Option<&'t Value> {
        let (kind, names) = args.split_first()?;
        if let Some(top) = self.find(kind, &names.join("/")) {
            return Some(top);
        }
        let mut segments = kind.split('/');
        let namespace = segments.next()?;
        let types: Vec<&str> = segments.collect();
        if types.is_empty() || types.len() != names.len() {
            return None;
        }
        let top = format!("{namespace}/{}", types[0]);
        let mut node = self.find(&top, &names[0])?;
        for (child_type, name) in types[1..].iter().zip(&names[1..]) {
            node = node["properties"][*child_type]
                .as_array()?
                .iter()
                .find(|c| c["name"].as_str() == Some(name.as_str()))?;
        }
        Some(node)
    }

    fn resolve_top_level(&self, args: &[String]) -> Option<&'t Value> {
        self.resolve(args)
            .filter(|r| self.resources.iter().any(|top| std::ptr::eq(*top, *r)))
    }

    fn find(&self, kind: &str, name: &str) -> Option<&'t Value> {
        self.by_type_and_name
            .get(&kind.to_ascii_lowercase())?
            .get(name)
            .copied()
    }

    fn of_type(&self, kind: &str) -> Vec<&'t Value> {
        self.resources
            .iter()
            .copied()
            .filter(|r| r["type"].as_str() == Some(kind))
            .collect()
    }

    /// Does `reference` (an `{ "id": "[resourceId(...)]" }` object or the expression) point at
    /// exactly `target`?
    fn points_to(&self, reference: &Value, target: &Value) -> bool {
        let text = reference["id"]
            .as_str()
            .or(reference.as_str())
            .unwrap_or_default();
        expression(text)
            .and_then(sole_resource_id)
            .and_then(|args| self.resolve(&args))
            .is_some_and(|resolved| std::ptr::eq(resolved, target))
    }

    fn seed_points(&mut self, parameters: &Value, spec: &ClusterSpec) {
        let cluster = spec.metadata.name.as_str();
        let Some(azure) = spec.spec.azure.as_ref() else {
            self.problem("spec.azure: missing; the ARM template is for Azure clusters");
            return;
        };
        let names = Names::new(cluster);
        self.tags(cluster);
        self.nsgs(spec, &names);
        self.network(spec, &names);

        // Public IP: Standard, static, with the DNS label the endpoint is derived from.
        match self.find(PUBLIC_IP, &names.api_public_ip()) {
            None => self.problem(format!("public IP {:?}: missing", names.api_public_ip())),
            Some(pip) => {
                let p = &pip["properties"];
                if pip["sku"]["name"] != "Standard" {
                    self.problem(
                        "public IP: sku must be Standard (a Standard load balancer needs it)",
                    );
                }
                if p["publicIPAllocationMethod"] != "Static" {
                    self.problem("public IP: allocation must be Static");
                }
                if p["dnsSettings"]["domainNameLabel"].as_str() != azure.dns_label.as_deref() {
                    self.problem(format!(
                        "public IP: domainNameLabel {} is not the endpoint's label {:?}",
                        p["dnsSettings"]["domainNameLabel"], azure.dns_label
                    ));
                }
            }
        }
        let lb = self.load_balancer(&names);
        let master_pool =
            lb.and_then(|lb| named_child(lb, "backendAddressPools", &names.lb_master_pool()));
        let outbound_pool =
            lb.and_then(|lb| named_child(lb, "backendAddressPools", &names.lb_outbound_pool()));
        let nat_pool =
            lb.and_then(|lb| named_child(lb, "inboundNatPools", &names.lb_ssh_nat_pool()));
        self.scale_sets(
            spec,
            &names,
            parameters,
            master_pool,
            outbound_pool,
            nat_pool,
        );
        self.role_assignments(spec, &names, azure.identity_roles);
        self.key_vault(spec, &names, parameters);
    }

    fn tags(&mut self, cluster: &str) {
        for resource in self.resources.clone() {
            let kind = resource["type"].as_str().unwrap_or_default();
            if kind.starts_with("Microsoft.Authorization/") {
                continue; // role assignments and definitions take no tags
            }
            let tags = match resource["tags"].as_str().and_then(expression) {
                Some(expr) => match calls(expr, "variables").first() {
                    Some(args) => match args.first() {
                        Some(Some(var)) => &self.template["variables"][var.as_str()],
                        _ => &Value::Null,
                    },
                    None => &Value::Null,
                },
                None => &resource["tags"],
            };
            for tag in [CLUSTER_TAG, KUBEBOOT_TAG] {
                if tags[tag].as_str() != Some(cluster) {
                    self.problem(format!(
                        "{kind} {}: tag {tag} must be {cluster:?} (tells clusters sharing the resource group apart)",
                        resource["name"]
                    ));
                }
            }
        }
    }

    fn nsgs(&mut self, spec: &ClusterSpec, names: &Names) {
        let azure = spec.spec.azure.as_ref().expect("checked by the caller");
        let common = [
            Rule::new("Inbound", "*", "VirtualNetwork", "VirtualNetwork", "*"),
            Rule::new("Outbound", "*", "VirtualNetwork", "VirtualNetwork", "*"),
            Rule::new("Inbound", "*", "AzureLoadBalancer", "*", "*"),
            Rule::new("Outbound", "*", "*", "AzureLoadBalancer", "*"),
        ];
        let api_port = API_SERVER_PORT.to_string();
        for (name, master) in [(names.master_nsg(), true), (names.worker_nsg(), false)] {
            let Some(nsg) = self.find(NSG, &name) else {
                self.problem(format!("NSG {name:?}: missing"));
                continue;
            };
            let rules = nsg["properties"]["securityRules"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut wanted: Vec<(Rule, Option<&Vec<String>>)> =
                common.iter().cloned().map(|r| (r, None)).collect();
            if master {
                wanted.push((
                    Rule::new("Inbound", "Tcp", "", "", &api_port),
                    Some(&azure.api_server_allowed_sources),
                ));
                wanted.push((
                    Rule::new("Inbound", "Tcp", "", "", "22"),
                    Some(&azure.ssh_allowed_sources),
                ));
            }
            for (rule, sources) in wanted {
                if !rules
                    .iter()
                    .any(|r| rule.matches(&r["properties"], sources))
                {
                    self.problem(format!("NSG {name:?}: no rule allowing {rule}"));
                }
            }
            if !master {
                for port in [api_port.as_str(), "22"] {
                    if rules.iter().any(|r| {
                        let p = &r["properties"];
                        p["direction"] == "Inbound" && p["destinationPortRange"] == port
                    }) {
                        self.problem(format!(
                            "NSG {name:?}: workers must not open port {port} inbound"
                        ));
                    }
                }
            }
            let mut seen = BTreeSet::new();
            for r in &rules {
                let p = &r["properties"];
                if !seen.insert((p["direction"].to_string(), p["priority"].to_string())) {
                    self.problem(format!(
                        "NSG {name:?}: priority {} used twice",
                        p["priority"]
                    ));
                }
            }
        }
    }

    fn network(&mut self, spec: &ClusterSpec, names: &Names) {
        let route_table = self.find(ROUTE_TABLE, &names.route_table());
        if route_table.is_none() {
            self.problem(format!("route table {:?}: missing", names.route_table()));
        }
        let Some(vnet) = self.find(VNET, &names.vnet()) else {
            self.problem(format!("VNet {:?}: missing", names.vnet()));
            return;
        };
        if let Some(cidr) = spec.spec.network.vnet_cidr {
            let prefixes = &vnet["properties"]["addressSpace"]["addressPrefixes"];
            if !prefixes
                .as_array()
                .is_some_and(|p| p.iter().any(|x| x == &cidr.to_string()))
            {
                self.problem(format!("VNet: address space {prefixes} lacks {cidr}"));
            }
        }
        let subnets = vnet["properties"]["subnets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if subnets.len() != spec.spec.pools.len() {
            self.problem(format!(
                "VNet: {} subnets for {} pools (one per pool)",
                subnets.len(),
                spec.spec.pools.len()
            ));
        }
        for pool in &spec.spec.pools {
            let name = names.subnet(&pool.name);
            let Some(subnet) = subnets
                .iter()
                .find(|s| s["name"].as_str() == Some(name.as_str()))
            else {
                self.problem(format!("VNet: no subnet {name:?} for pool {:?}", pool.name));
                continue;
            };
            let p = &subnet["properties"];
            if let Some(cidr) = pool.subnet_cidr {
                if p["addressPrefix"] != cidr.to_string() {
                    self.problem(format!(
                        "subnet {name:?}: addressPrefix {} is not {cidr}",
                        p["addressPrefix"]
                    ));
                }
            }
            let nsg_name = if pool.role == Role::Master {
                names.master_nsg()
            } else {
                names.worker_nsg()
            };
            if !self
                .find(NSG, &nsg_name)
                .is_some_and(|nsg| self.points_to(&p["networkSecurityGroup"], nsg))
            {
                self.problem(format!("subnet {name:?}: must use NSG {nsg_name:?}"));
            }
            if !route_table.is_some_and(|rt| self.points_to(&p["routeTable"], rt)) {
                self.problem(format!(
                    "subnet {name:?}: must use route table {:?}",
                    names.route_table()
                ));
            }
        }
    }

    fn load_balancer(&mut self, names: &Names) -> Option<&'t Value> {
        let Some(lb) = self.find(LOAD_BALANCER, &names.load_balancer()) else {
            self.problem(format!(
                "load balancer {:?}: missing (it must be named exactly like the cluster)",
                names.load_balancer()
            ));
            return None;
        };
        if lb["sku"]["name"] != "Standard" {
            self.problem(format!(
                "load balancer: sku {} must be Standard",
                lb["sku"]["name"]
            ));
        }
        let p = &lb["properties"];
        let frontend = named_child(lb, "frontendIPConfigurations", &names.lb_frontend());
        match (frontend, self.find(PUBLIC_IP, &names.api_public_ip())) {
            (Some(f), Some(pip)) if self.points_to(&f["properties"]["publicIPAddress"], pip) => {}
            _ => self.problem("load balancer: the frontend must use the API server public IP"),
        }
        let master_pool = named_child(lb, "backendAddressPools", &names.lb_master_pool());
        let outbound_pool = named_child(lb, "backendAddressPools", &names.lb_outbound_pool());
        if master_pool.is_none() {
            self.problem(format!(
                "load balancer: no master backend pool {:?}",
                names.lb_master_pool()
            ));
        }
        if named_child(lb, "backendAddressPools", &names.load_balancer()).is_some() {
            self.problem("load balancer: a backend pool named like the cluster belongs to the cloud provider");
        }
        let port = Value::from(API_SERVER_PORT);
        let api_rule = p["loadBalancingRules"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| {
                let rp = &r["properties"];
                rp["protocol"] == "Tcp" && rp["frontendPort"] == port && rp["backendPort"] == port
            });
        match api_rule {
            None => self.problem(format!("load balancer: no TCP {API_SERVER_PORT} rule")),
            Some(rule) => {
                let rp = &rule["properties"];
                if !master_pool.is_some_and(|mp| self.points_to(&rp["backendAddressPool"], mp)) {
                    self.problem("load balancer: the API server rule must target the master pool");
                }
                let probe = named_child(lb, "probes", &names.lb_api_probe());
                match probe {
                    Some(probe) if self.points_to(&rp["probe"], probe) => {
                        if probe["properties"]["port"] != port {
                            self.problem(format!("load balancer: the API server probe must check port {API_SERVER_PORT}"));
                        }
                    }
                    _ => self.problem("load balancer: the API server rule has no probe"),
                }
                if rp["disableOutboundSnat"] != true {
                    self.problem("load balancer: the API server rule must disable outbound SNAT (the outbound rule owns it)");
                }
            }
        }
        match named_child(lb, "inboundNatPools", &names.lb_ssh_nat_pool()) {
            Some(nat)
                if nat["properties"]["backendPort"] == 22
                    && nat["properties"]["protocol"] == "Tcp" => {}
            _ => self.problem("load balancer: no inbound NAT pool for SSH (TCP 22) to the masters"),
        }
        let outbound = named_child(lb, "outboundRules", &names.lb_outbound_rule());
        if !outbound.zip(outbound_pool).is_some_and(|(rule, pool)| {
            self.points_to(&rule["properties"]["backendAddressPool"], pool)
        }) {
            self.problem("load balancer: no outbound rule for the outbound pool (a Standard LB gives no default outbound access)");
        }
        Some(lb)
    }

    fn scale_sets(
        &mut self,
        spec: &ClusterSpec,
        names: &Names,
        parameters: &Value,
        master_pool: Option<&'t Value>,
        outbound_pool: Option<&'t Value>,
        nat_pool: Option<&'t Value>,
    ) {
        let scale_sets = self.of_type(SCALE_SET);
        if scale_sets.len() != spec.spec.pools.len() {
            self.problem(format!(
                "{} scale sets for {} pools (one per pool)",
                scale_sets.len(),
                spec.spec.pools.len()
            ));
        }
        let custom_data = &parameters["parameters"]["customData"]["value"];
        for pool in &spec.spec.pools {
            let name = names.scale_set(&pool.name);
            let Some(vmss) = self.find(SCALE_SET, &name) else {
                self.problem(format!(
                    "scale set {name:?} for pool {:?}: missing",
                    pool.name
                ));
                continue;
            };
            let at = |what: &str| format!("scale set {name:?}: {what}");
            let mut problems = Vec::new();
            if vmss["sku"]["name"].as_str() != pool.vm_size.as_deref() {
                problems.push(at(&format!(
                    "size {} is not the pool's {:?}",
                    vmss["sku"]["name"], pool.vm_size
                )));
            }
            problems.extend(
                autoscaling_problems(spec, pool, vmss, parameters)
                    .into_iter()
                    .map(|p| at(&p)),
            );
            if pool.most_instances() > SINGLE_PLACEMENT_GROUP_VMS
                && vmss["properties"]["singlePlacementGroup"] != false
            {
                problems.push(at(&format!(
                    "{} VMs need singlePlacementGroup: false (one placement group holds at most {SINGLE_PLACEMENT_GROUP_VMS})",
                    pool.most_instances()
                )));
            }
            if let Some(nat) = nat_pool.filter(|_| pool.role == Role::Master) {
                let range = &nat["properties"];
                let ports = range["frontendPortRangeEnd"]
                    .as_u64()
                    .zip(range["frontendPortRangeStart"].as_u64())
                    .map_or(0, |(end, start)| (end + 1).saturating_sub(start));
                if ports < u64::from(pool.count) {
                    problems.push(at(&format!(
                        "{} masters, but the SSH NAT pool's frontend ports reach at most {ports}",
                        pool.count
                    )));
                }
            }
            let zones: Vec<&str> = vmss["zones"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if zones != pool.zones.iter().map(String::as_str).collect::<Vec<_>>() {
                problems.push(at(&format!(
                    "zones {zones:?} are not the pool's {:?}",
                    pool.zones
                )));
            }
            let p = &vmss["properties"];
            if p["overprovision"] != false {
                problems.push(at(
                    "overprovision must be false (extra VMs would run the agent and join)",
                ));
            }
            if p["orchestrationMode"] != "Uniform" {
                problems.push(at(
                    "orchestrationMode must be Uniform (the cloud config says vmType: vmss)",
                ));
            }
            if !p["upgradePolicy"]["mode"].is_string() {
                problems.push(at("no upgradePolicy"));
            }
            if vmss["identity"]["type"] != "SystemAssigned" {
                problems.push(at("identity must be SystemAssigned"));
            }
            let os = &p["virtualMachineProfile"]["osProfile"];
            if os["adminUsername"] != spec.spec.ssh.admin_username.as_str() {
                problems.push(at("adminUsername is not spec.ssh.adminUsername"));
            }
            let linux = &os["linuxConfiguration"];
            if linux["disablePasswordAuthentication"] != true {
                problems.push(at("password authentication must be disabled"));
            }
            let keys = linux["ssh"]["publicKeys"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if keys.is_empty()
                || !keys
                    .iter()
                    .all(|k| k["keyData"] == "[parameters('sshPublicKey')]")
            {
                problems.push(at("the SSH public key must be parameters('sshPublicKey')"));
            }
            let want_custom_data = format!("[parameters('customData')['{}']]", pool.name);
            if os["customData"] != want_custom_data.as_str() {
                problems.push(at(&format!("customData must be {want_custom_data}")));
            }
            if custom_data[&pool.name].as_str().is_none_or(str::is_empty) {
                problems.push(format!(
                    "parameters file: no customData for pool {:?}",
                    pool.name
                ));
            }
            if p["virtualMachineProfile"]["storageProfile"]["imageReference"]["id"]
                != "[parameters('imageId')]"
            {
                problems.push(at("the image must be parameters('imageId')"));
            }
            self.problems.extend(problems);
            let nics = p["virtualMachineProfile"]["networkProfile"]
                ["networkInterfaceConfigurations"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let [nic] = nics.as_slice() else {
                self.problem(at("must have exactly one NIC configuration"));
                continue;
            };
            if nic["properties"]["enableIPForwarding"] != true {
                self.problem(at(
                    "IP forwarding must be on (pod routes in the route table point at nodes)",
                ));
            }
            let ip = &nic["properties"]["ipConfigurations"][0]["properties"];
            let subnet = self.resolve(&[
                "Microsoft.Network/virtualNetworks/subnets".into(),
                names.vnet(),
                names.subnet(&pool.name),
            ]);
            if !subnet.is_some_and(|s| self.points_to(&ip["subnet"], s)) {
                self.problem(at(&format!(
                    "must sit in subnet {:?}",
                    names.subnet(&pool.name)
                )));
            }
            let in_list = |list: &Value, target: Option<&Value>| {
                target.is_some_and(|t| {
                    list.as_array()
                        .into_iter()
                        .flatten()
                        .any(|r| self.points_to(r, t))
                })
            };
            let master = pool.role == Role::Master;
            let pools = &ip["loadBalancerBackendAddressPools"];
            let in_outbound = in_list(pools, outbound_pool);
            let in_masters = in_list(pools, master_pool);
            let in_nat = in_list(&ip["loadBalancerInboundNatPools"], nat_pool);
            if !in_outbound {
                self.problem(at("must be in the load balancer's outbound pool"));
            }
            if in_masters != master {
                self.problem(at(if master {
                    "masters must be in the API server backend pool"
                } else {
                    "workers must not be in the API server backend pool"
                }));
            }
            if in_nat != master {
                self.problem(at(if master {
                    "masters must be in the SSH NAT pool"
                } else {
                    "workers must not be in the SSH NAT pool"
                }));
            }
        }
    }

    /// Role assignments on the resource group (no `scope`): one per scale set, its role model's.
    fn role_assignments(&mut self, spec: &ClusterSpec, names: &Names, roles: IdentityRoles) {
        let assignments: Vec<&Value> = self
            .of_type(ROLE_ASSIGNMENT)
            .into_iter()
            .filter(|a| a.get("scope").is_none())
            .collect();
        let custom_role = self.of_type(ROLE_DEFINITION).first().copied();
        if roles == IdentityRoles::ContributorPlusCustom {
            match custom_role {
                None => self.problem(
                    "contributor-plus-custom: the workers' custom role definition is missing",
                ),
                Some(role) => {
                    let p = &role["properties"];
                    if p["assignableScopes"] != serde_json::json!(["[resourceGroup().id]"]) {
                        self.problem("custom role: assignable only to the resource group");
                    }
                    let actions = p["permissions"][0]["actions"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    if actions.is_empty()
                        || actions
                            .iter()
                            .any(|a| a.as_str().is_none_or(|a| !a.ends_with("/read")))
                    {
                        self.problem("custom role: the workers' role must be read-only");
                    }
                }
            }
        }
        for pool in &spec.spec.pools {
            let vmss = names.scale_set(&pool.name);
            let vmss_ref = format!("resourceId('{SCALE_SET}', '{vmss}')");
            let matching = granted_to(&assignments, &vmss_ref);
            let [assignment] = matching.as_slice() else {
                self.problem(format!(
                    "role assignments: {} on the resource group for scale set {vmss:?}, want exactly one",
                    matching.len()
                ));
                continue;
            };
            let master = pool.role == Role::Master;
            let (want, label) = match (roles, master) {
                (IdentityRoles::Owner, true) => (OWNER_ROLE_ID.to_string(), "Owner"),
                (IdentityRoles::Owner, false) | (IdentityRoles::ContributorPlusCustom, true) => {
                    (CONTRIBUTOR_ROLE_ID.to_string(), "Contributor")
                }
                (IdentityRoles::ContributorPlusCustom, false) => (
                    custom_role
                        .and_then(|r| r["name"].as_str())
                        .unwrap_or("<custom role>")
                        .to_string(),
                    "the custom worker role",
                ),
            };
            let p = &assignment["properties"];
            let role_id = p["roleDefinitionId"].as_str().unwrap_or_default();
            if !role_id.contains(&format!("'{want}'")) {
                self.problem(format!(
                    "role assignment for {vmss:?}: must grant {label} ({want}), grants {role_id}"
                ));
            }
            if p["principalType"] != "ServicePrincipal" {
                self.problem(format!(
                    "role assignment for {vmss:?}: principalType must be ServicePrincipal"
                ));
            }
            if !assignment["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("[guid("))
            {
                self.problem(format!(
                    "role assignment for {vmss:?}: name must be a deterministic guid(...)"
                ));
            }
            let depends = assignment["dependsOn"].to_string();
            if !depends.contains(&vmss_ref) {
                self.problem(format!(
                    "role assignment for {vmss:?}: must depend on the scale set"
                ));
            }
        }
    }

    /// The Key Vault: RBAC authorization (no access policies), soft delete and purge protection;
    /// its two secrets filled from the secureObject parameter (which the parameters file fills);
    /// and each scale set identity's grants on it, exactly (`vault_grants`).
    fn key_vault(&mut self, spec: &ClusterSpec, names: &Names, parameters: &Value) {
        let azure = spec.spec.azure.as_ref().expect("checked by the caller");
        let name = names.key_vault(&azure.subscription_id, &azure.resource_group);
        let Some(vault) = self.find(KEY_VAULT, &name) else {
            self.problem(format!("Key Vault {name:?}: missing"));
            return;
        };
        let p = &vault["properties"];
        for (flag, why) in [
            (
                "enableRbacAuthorization",
                "access is granted by role assignments, not access policies",
            ),
            ("enableSoftDelete", "a deleted secret must stay recoverable"),
            (
                "enablePurgeProtection",
                "nobody may purge the cluster's CA before the retention ends",
            ),
        ] {
            if p[flag] != true {
                self.problem(format!("Key Vault {name:?}: {flag} must be true ({why})"));
            }
        }
        if p["accessPolicies"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            self.problem(format!(
                "Key Vault {name:?}: access policies are ignored under RBAC; grant roles instead"
            ));
        }
        if p["tenantId"].as_str().is_none_or(str::is_empty) {
            self.problem(format!("Key Vault {name:?}: no tenantId"));
        }

        let parameter = &self.template["parameters"][CLUSTER_SECRETS_PARAMETER];
        if parameter["type"] != "secureObject" {
            self.problem(format!(
                "parameter {CLUSTER_SECRETS_PARAMETER:?}: type must be secureObject (ARM would log the secrets)"
            ));
        }
        let secrets = self.of_type(KEY_VAULT_SECRET);
        if secrets.len() != 2 {
            self.problem(format!(
                "Key Vault {name:?}: {} secrets, want exactly {JOIN_TOKEN_SECRET} and {PKI_SECRET}",
                secrets.len()
            ));
        }
        for secret in [JOIN_TOKEN_SECRET, PKI_SECRET] {
            let full = format!("{name}/{secret}");
            let Some(resource) = self.find(KEY_VAULT_SECRET, &full) else {
                self.problem(format!("Key Vault secret {full:?}: missing"));
                continue;
            };
            let want = format!("[parameters('{CLUSTER_SECRETS_PARAMETER}')['{secret}']]");
            if resource["properties"]["value"] != want.as_str() {
                self.problem(format!(
                    "Key Vault secret {full:?}: value must be {want} (never a literal)"
                ));
            }
            let vault_ref = format!("resourceId('{KEY_VAULT}', '{name}')");
            if !resource["dependsOn"].to_string().contains(&vault_ref) {
                self.problem(format!(
                    "Key Vault secret {full:?}: must depend on the vault"
                ));
            }
            let given = &parameters["parameters"][CLUSTER_SECRETS_PARAMETER]["value"][secret];
            if given.as_str().is_none_or(str::is_empty) {
                self.problem(format!(
                    "parameters file: no {CLUSTER_SECRETS_PARAMETER} value for secret {secret:?}"
                ));
            }
        }

        let vault_assignments: Vec<&Value> = self
            .of_type(ROLE_ASSIGNMENT)
            .into_iter()
            .filter(|a| a.get("scope").is_some())
            .collect();
        for pool in &spec.spec.pools {
            let vmss = names.scale_set(&pool.name);
            let vmss_ref = format!("resourceId('{SCALE_SET}', '{vmss}')");
            let matching = granted_to(&vault_assignments, &vmss_ref);
            let wanted = vault_grants(&name, pool.role == Role::Master);
            if matching.len() != wanted.len() {
                self.problem(format!(
                    "Key Vault role assignments: {} for scale set {vmss:?}, want exactly {}",
                    matching.len(),
                    wanted.len()
                ));
            }
            let at = |m: &str| format!("Key Vault role assignment for {vmss:?}: {m}");
            let scopes: Vec<&str> = wanted.iter().map(|g| g.scope.as_str()).collect();
            for grant in &wanted {
                if !matching.iter().any(|a| a["scope"] == grant.scope.as_str()) {
                    self.problem(at(&format!(
                        "none scoped to {:?}; {} needs {} there",
                        grant.scope, grant.why, grant.role_name
                    )));
                }
            }
            for assignment in &matching {
                let scope = assignment["scope"].as_str().unwrap_or_default();
                let Some(grant) = wanted.iter().find(|g| g.scope == scope) else {
                    self.problem(at(&format!(
                        "scope {scope:?} must be one of {scopes:?} ({})",
                        wanted[0].why
                    )));
                    continue;
                };
                if self.resolve(&grant.scope_ref).is_none() {
                    self.problem(at(&format!(
                        "scope {scope:?} names nothing in this template"
                    )));
                }
                let p = &assignment["properties"];
                let role_id = p["roleDefinitionId"].as_str().unwrap_or_default();
                if !role_id.contains(&format!("'{}'", grant.role_id)) {
                    self.problem(at(&format!(
                        "must grant {} ({}) on {scope:?}, grants {role_id}",
                        grant.role_name, grant.role_id
                    )));
                }
                if p["principalType"] != "ServicePrincipal" {
                    self.problem(at("principalType must be ServicePrincipal"));
                }
                if !assignment["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("[guid("))
                {
                    self.problem(at("name must be a deterministic guid(...)"));
                }
                let depends = assignment["dependsOn"].to_string();
                if !depends.contains(&vmss_ref) {
                    self.problem(at("must depend on the scale set"));
                }
            }
        }
    }
}

/// A Key Vault role assignment a scale set's identity must have, and nothing more.
struct WantedGrant {
    scope: String,
    scope_ref: Vec<String>,
    role_id: &'static str,
    role_name: &'static str,
    why: &'static str,
}

/// Masters: Secrets User on the vault (read every secret), Secrets Officer on `bootstrap-token`
/// only (write the token they rotate, never the PKI). Workers: Secrets User on `bootstrap-token`.
fn vault_grants(vault: &str, master: bool) -> Vec<WantedGrant> {
    let on_vault = |role_id, role_name, why| WantedGrant {
        scope: format!("{KEY_VAULT}/{vault}"),
        scope_ref: vault_ref_args(vault, None),
        role_id,
        role_name,
        why,
    };
    let on_token = |role_id, role_name, why| WantedGrant {
        scope: format!("{KEY_VAULT}/{vault}/secrets/{JOIN_TOKEN_SECRET}"),
        scope_ref: vault_ref_args(vault, Some(JOIN_TOKEN_SECRET)),
        role_id,
        role_name,
        why,
    };
    if master {
        vec![
            on_vault(
                KEY_VAULT_SECRETS_USER_ROLE_ID,
                "Key Vault Secrets User",
                "masters read every secret",
            ),
            on_token(
                KEY_VAULT_SECRETS_OFFICER_ROLE_ID,
                "Key Vault Secrets Officer",
                "masters write the join token they rotate",
            ),
        ]
    } else {
        vec![on_token(
            KEY_VAULT_SECRETS_USER_ROLE_ID,
            "Key Vault Secrets User",
            "workers read the join token only",
        )]
    }
}

/// `resourceId` arguments of the vault or one of its secrets.
fn vault_ref_args(vault: &str, secret: Option<&str>) -> Vec<String> {
    match secret {
        None => vec![KEY_VAULT.into(), vault.into()],
        Some(secret) => vec![KEY_VAULT_SECRET.into(), vault.into(), secret.into()],
    }
}

/// An NSG rule the seed asks for: direction, protocol, source and destination prefixes, port.
/// An empty prefix means "any" for the match (the source ranges are checked separately).
#[derive(Clone)]
struct Rule {
    direction: &'static str,
    protocol: &'static str,
    source: &'static str,
    destination: &'static str,
    port: String,
}

impl Rule {
    fn new(
        direction: &'static str,
        protocol: &'static str,
        source: &'static str,
        destination: &'static str,
        port: &str,
    ) -> Self {
        Self {
            direction,
            protocol,
            source,
            destination,
            port: port.to_string(),
        }
    }

    fn matches(&self, p: &Value, sources: Option<&Vec<String>>) -> bool {
        let source_ok = match sources {
            Some(want) => {
                let given: Vec<&str> = match p["sourceAddressPrefix"].as_str() {
                    Some(one) => vec![one],
                    None => p["sourceAddressPrefixes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect(),
                };
                given == want.iter().map(String::as_str).collect::<Vec<_>>()
            }
            None => self.source.is_empty() || p["sourceAddressPrefix"] == self.source,
        };
        p["direction"] == self.direction
            && p["access"] == "Allow"
            && p["protocol"] == self.protocol
            && source_ok
            && (self.destination.is_empty() || p["destinationAddressPrefix"] == self.destination)
            && p["destinationPortRange"] == self.port.as_str()
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let any = |s: &str| {
            if s.is_empty() {
                "(given sources)".to_string()
            } else {
                s.to_string()
            }
        };
        write!(
            f,
            "{} {} from {} to {} port {}",
            self.direction,
            self.protocol,
            any(self.source),
            any(self.destination),
            self.port
        )
    }
}

/// An autoscaled pool's scale set carries cluster-autoscaler's tags and takes its capacity from the
/// `poolCapacity` parameter, whose value (in the parameters file) lies within the bounds; any other
/// pool has its count as capacity and no auto-discovery tag (the autoscaler would resize it).
fn autoscaling_problems(
    spec: &ClusterSpec,
    pool: &PoolSpec,
    vmss: &Value,
    parameters: &Value,
) -> Vec<String> {
    let capacity = &vmss["sku"]["capacity"];
    let mut problems = Vec::new();
    let Some(wanted) = super::autoscaler_tags(&spec.metadata.name, pool) else {
        if *capacity != pool.count {
            problems.push(format!(
                "capacity {capacity} is not the pool's count {}",
                pool.count
            ));
        }
        if !vmss["tags"]["cluster-autoscaler-enabled"].is_null() {
            problems.push(
                "cluster-autoscaler-enabled is set, but the pool has no autoscaling".to_string(),
            );
        }
        return problems;
    };
    let from_parameter = format!("[parameters('{POOL_CAPACITY_PARAMETER}')['{}']]", pool.name);
    if capacity.as_str() != Some(from_parameter.as_str()) {
        problems.push(format!(
            "capacity {capacity} must be {from_parameter}: a re-deployment would reset what the autoscaler did"
        ));
    }
    let range = pool.autoscaling.expect("autoscaler tags imply autoscaling");
    match parameters["parameters"][POOL_CAPACITY_PARAMETER]["value"][&pool.name].as_u64() {
        Some(n) if (u64::from(range.min)..=u64::from(range.max)).contains(&n) => {}
        other => problems.push(format!(
            "parameters file: {POOL_CAPACITY_PARAMETER} for pool {:?} is {}, not within {}..={}",
            pool.name,
            other.map_or("missing".to_string(), |n| n.to_string()),
            range.min,
            range.max
        )),
    }
    for (tag, value) in wanted {
        if vmss["tags"][&tag].as_str() != Some(value.as_str()) {
            problems.push(format!(
                "tag {tag} is {}, not {value:?} (cluster-autoscaler reads it)",
                vmss["tags"][&tag]
            ));
        }
    }
    problems
}

fn named_child<'v>(resource: &'v Value, child_type: &str, name: &str) -> Option<&'v Value> {
    resource["properties"][child_type]
        .as_array()?
        .iter()
        .find(|c| c["name"].as_str() == Some(name))
}

fn keys(object: &Value) -> BTreeSet<String> {
    object
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn collect_strings<'v>(value: &'v Value, path: &str, out: &mut Vec<(String, &'v str)>) {
    match value {
        Value::String(s) => out.push((path.to_string(), s)),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_strings(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                collect_strings(item, &child, out);
            }
        }
        _ => {}
    }
}

/// The body of an ARM expression (`[...]`; `[[` escapes a literal bracket).
fn expression(text: &str) -> Option<&str> {
    let body = text.strip_prefix('[')?.strip_suffix(']')?;
    (!body.starts_with('[')).then_some(body)
}

/// The literal arguments of the one `resourceId(...)` call in `expr`; None when there is not
/// exactly one or an argument is not a literal.
fn sole_resource_id(expr: &str) -> Option<Vec<String>> {
    match calls(expr, "resourceId").as_slice() {
        [args] => args.iter().cloned().collect(),
        _ => None,
    }
}

/// Every call of `function` in `expr`, as its arguments: `Some(literal)` for a quoted string
/// argument, `None` for anything computed. `resourceId` does not match `subscriptionResourceId`.
fn calls(expr: &str, function: &str) -> Vec<Vec<Option<String>>> {
    let pattern = format!("{function}(");
    let mut found = Vec::new();
    let mut rest = expr;
    let mut offset = 0;
    while let Some(pos) = rest.find(&pattern) {
        let start = offset + pos;
        let preceded_by_ident = expr[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let args_start = start + pattern.len();
        if !preceded_by_ident {
            found.push(arguments(&expr[args_start..]));
        }
        offset = args_start;
        rest = &expr[args_start..];
    }
    found
}

/// Splits the top-level arguments of a call whose text starts right after `(`.
fn arguments(text: &str) -> Vec<Option<String>> {
    let mut args = Vec::new();
    let mut current = String::new();
    let (mut depth, mut quoted) = (0usize, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if quoted && chars.peek() == Some(&'\'') => {
                current.push_str("''");
                chars.next();
            }
            '\'' => {
                quoted = !quoted;
                current.push(c);
            }
            '(' | '[' if !quoted => {
                depth += 1;
                current.push(c);
            }
            ')' | ']' if !quoted && depth == 0 => break,
            ')' | ']' if !quoted => {
                depth -= 1;
                current.push(c);
            }
            ',' if !quoted && depth == 0 => args.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    if !current.trim().is_empty() {
        args.push(current);
    }
    args.into_iter()
        .map(|a| {
            let a = a.trim();
            a.strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .filter(|s| !s.contains('\''))
                .map(str::to_string)
        })
        .collect()
}

/// The role assignments whose principal is the system-assigned identity of the scale set that
/// `vmss_ref` (`resourceId(...)`) names.
fn granted_to<'t>(assignments: &[&'t Value], vmss_ref: &str) -> Vec<&'t Value> {
    assignments
        .iter()
        .copied()
        .filter(|a| {
            a["properties"]["principalId"]
                .as_str()
                .is_some_and(|p| p.contains(vmss_ref) && p.contains(".identity.principalId"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_split_literal_and_computed_arguments() {
        let expr = "reference(resourceId('Microsoft.Compute/virtualMachineScaleSets', 'demo-master'), '2024-07-01', 'full').identity.principalId";
        assert_eq!(
            calls(expr, "resourceId"),
            vec![vec![
                Some("Microsoft.Compute/virtualMachineScaleSets".to_string()),
                Some("demo-master".to_string())
            ]]
        );
        assert_eq!(
            calls("subscriptionResourceId('a', 'b')", "resourceId"),
            Vec::<Vec<Option<String>>>::new()
        );
        assert_eq!(
            calls("resourceId('T/x', guid(resourceGroup().id))", "resourceId"),
            vec![vec![Some("T/x".to_string()), None]]
        );
        assert_eq!(
            calls("parameters('customData')['gpu']", "parameters"),
            vec![vec![Some("customData".to_string())]]
        );
    }

    #[test]
    fn escaped_brackets_are_not_expressions() {
        assert_eq!(expression("[[literal]"), None);
        assert_eq!(expression("[variables('x')]"), Some("variables('x')"));
        assert_eq!(expression("plain"), None);
    }
}
