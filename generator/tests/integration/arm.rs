//! The ARM template for the example spec: rendered, walked, snapshotted, and mutated to prove
//! the walker catches what it claims to.

use crate::common;

use common::gen;
use kubeboot_gen::arm::{self, check::check, ArmSecrets};
use kubeboot_gen::names::Names;
use kubeboot_gen::spec::{ClusterSpec, IdentityRoles};
use kubeboot_gen::validate::{validate_text, EXAMPLE_SPEC};
use kubeboot_test_kit::output::stderr;
use serde_json::{json, Value};

const SNAPSHOT: &str = "tests/snapshots/azuredeploy.json";

/// The built-in example spec as validation leaves it (DNS label derived).
fn example_spec() -> ClusterSpec {
    validate_text(EXAMPLE_SPEC).unwrap().cluster
}

fn resource_mut<'a>(template: &'a mut Value, kind: &str, name: &str) -> &'a mut Value {
    template["resources"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["type"] == kind && r["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} not in the template"))
}

fn assert_caught(problems: &[String], needle: &str) {
    assert!(
        problems.iter().any(|p| p.contains(needle)),
        "expected a problem containing {needle:?}, got {problems:#?}"
    );
}

#[test]
fn example_template_passes_the_walker_in_both_role_models() {
    let mut spec = example_spec();
    let (template, parameters) = common::render_arm(&spec);
    assert_eq!(check(&template, &parameters, &spec), Vec::<String>::new());

    spec.spec.azure.as_mut().unwrap().identity_roles = IdentityRoles::ContributorPlusCustom;
    let (template, parameters) = common::render_arm(&spec);
    assert_eq!(check(&template, &parameters, &spec), Vec::<String>::new());
    let kinds: Vec<&str> = template["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["type"].as_str())
        .collect();
    assert!(kinds.contains(&"Microsoft.Authorization/roleDefinitions"));
}

#[test]
fn template_matches_the_reviewed_snapshot() {
    let spec = example_spec();
    let data = common::custom_data(&spec);
    let secrets = common::secrets();
    let files = arm::render(
        &spec,
        &ArmSecrets {
            ssh_public_key: "ssh-rsa AAAA other key",
            custom_data: &data,
            join_token: &secrets.bootstrap_token,
            pki: &secrets.shared_pki(),
        },
    )
    .unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SNAPSHOT);
    if std::env::var_os("KUBEBOOT_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &files.template).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert!(
        files.template == expected,
        "the template differs from {SNAPSHOT}; review the change and re-run with KUBEBOOT_UPDATE_SNAPSHOTS=1"
    );
    // The secrets live only in the parameters file.
    let token = secrets.bootstrap_token.expose();
    assert!(!files.template.contains("ssh-rsa") && !files.template.contains("H4sI"));
    assert!(!files.template.contains(token) && !files.template.contains("PRIVATE KEY"));
    assert!(files.parameters.contains("ssh-rsa AAAA other key"));
    // ... as the values the vault's secrets are created with: the token text, and the PKI as the
    // JSON the agent parses back into the NodeConfig's `pki` structure.
    let parameters: Value = serde_json::from_str(&files.parameters).unwrap();
    let values = &parameters["parameters"]["clusterSecrets"]["value"];
    assert_eq!(values["bootstrap-token"], token);
    let pki: kubeboot_nodeconfig::SharedPki =
        serde_json::from_str(values["cluster-pki"].as_str().unwrap()).unwrap();
    assert_eq!(pki, secrets.shared_pki());
    assert!(pki.encryption_key.is_some());
}

#[test]
fn walker_catches_a_missing_parameter_declaration() {
    let spec = example_spec();
    let (mut template, parameters) = common::render_arm(&spec);
    template["parameters"]
        .as_object_mut()
        .unwrap()
        .remove("sshPublicKey");
    let problems = check(&template, &parameters, &spec);
    assert_caught(&problems, "parameters('sshPublicKey') is not declared");
    assert_caught(&problems, "\"sshPublicKey\" is not a template parameter");
}

#[test]
fn walker_catches_an_undeclared_variable() {
    let spec = example_spec();
    let (mut template, parameters) = common::render_arm(&spec);
    template["variables"] = json!({});
    let problems = check(&template, &parameters, &spec);
    assert_caught(&problems, "variables('clusterTags') is not declared");
    assert_caught(&problems, "tag k8s-azure-cluster-name must be \"demo\"");
}

#[test]
fn walker_catches_a_dangling_depends_on() {
    let spec = example_spec();
    let (mut template, parameters) = common::render_arm(&spec);
    let lb = resource_mut(&mut template, "Microsoft.Network/loadBalancers", "demo");
    lb["dependsOn"] =
        json!(["[resourceId('Microsoft.Network/publicIPAddresses', 'demo-api-pip-typo')]"]);
    let problems = check(&template, &parameters, &spec);
    assert_caught(&problems, "dependsOn \"[resourceId('Microsoft.Network/publicIPAddresses', 'demo-api-pip-typo')]\" is not a resource");
}

#[test]
fn walker_catches_a_reference_to_a_missing_child() {
    let spec = example_spec();
    let (mut template, parameters) = common::render_arm(&spec);
    let vmss = resource_mut(
        &mut template,
        "Microsoft.Compute/virtualMachineScaleSets",
        "demo-gpu",
    );
    vmss["properties"]["virtualMachineProfile"]["networkProfile"]["networkInterfaceConfigurations"][0]
        ["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"] =
        json!("[resourceId('Microsoft.Network/virtualNetworks/subnets', 'demo-vnet', 'demo-gpu2-subnet')]");
    let problems = check(&template, &parameters, &spec);
    assert_caught(&problems, "names nothing in this template");
    assert_caught(
        &problems,
        "scale set \"demo-gpu\": must sit in subnet \"demo-gpu-subnet\"",
    );
}

#[test]
fn walker_catches_a_basic_load_balancer_and_a_renamed_one() {
    let spec = example_spec();
    let (mut template, parameters) = common::render_arm(&spec);
    resource_mut(&mut template, "Microsoft.Network/loadBalancers", "demo")["sku"]["name"] =
        json!("Basic");
    assert_caught(
        &check(&template, &parameters, &spec),
        "load balancer: sku \"Basic\" must be Standard",
    );

    let (mut template, parameters) = common::render_arm(&spec);
    resource_mut(&mut template, "Microsoft.Network/loadBalancers", "demo")["name"] =
        json!("demo-lb");
    let problems = check(&template, &parameters, &spec);
    assert_caught(
        &problems,
        "load balancer \"demo\": missing (it must be named exactly like the cluster)",
    );
}

#[test]
fn walker_catches_scale_set_settings() {
    let spec = example_spec();
    let (mut template, parameters) = common::render_arm(&spec);
    let master = resource_mut(
        &mut template,
        "Microsoft.Compute/virtualMachineScaleSets",
        "demo-master",
    );
    master["properties"]["overprovision"] = json!(true);
    master["properties"]["virtualMachineProfile"]["osProfile"]["linuxConfiguration"]
        ["disablePasswordAuthentication"] = json!(false);
    master["identity"] = json!({"type": "None"});
    let worker = resource_mut(
        &mut template,
        "Microsoft.Compute/virtualMachineScaleSets",
        "demo-general",
    );
    let pools = &mut worker["properties"]["virtualMachineProfile"]["networkProfile"]
        ["networkInterfaceConfigurations"][0]["properties"]["ipConfigurations"][0]["properties"]
        ["loadBalancerBackendAddressPools"];
    pools.as_array_mut().unwrap().push(
        json!({"id": "[resourceId('Microsoft.Network/loadBalancers/backendAddressPools', 'demo', 'demo-masters')]"}),
    );
    let problems = check(&template, &parameters, &spec);
    assert_caught(&problems, "\"demo-master\": overprovision must be false");
    assert_caught(
        &problems,
        "\"demo-master\": password authentication must be disabled",
    );
    assert_caught(
        &problems,
        "\"demo-master\": identity must be SystemAssigned",
    );
    assert_caught(
        &problems,
        "\"demo-general\": workers must not be in the API server backend pool",
    );
}

/// Azure's limits in a hand-edited template: masters beyond the SSH NAT pool's ports, a pool over
/// one placement group's 100 VMs kept in a single placement group.
#[test]
fn walker_catches_scale_sets_over_azure_limits() {
    let mut spec = example_spec();
    spec.spec.pools[1].count = 150;
    let (mut template, parameters) = common::render_arm(&spec);
    assert_eq!(check(&template, &parameters, &spec), Vec::<String>::new());
    let lb = resource_mut(&mut template, "Microsoft.Network/loadBalancers", "demo");
    lb["properties"]["inboundNatPools"][0]["properties"]["frontendPortRangeEnd"] = json!(50001);
    let general = resource_mut(
        &mut template,
        "Microsoft.Compute/virtualMachineScaleSets",
        "demo-general",
    );
    assert_eq!(general["properties"]["singlePlacementGroup"], json!(false));
    general["properties"]
        .as_object_mut()
        .unwrap()
        .remove("singlePlacementGroup");
    let problems = check(&template, &parameters, &spec);
    assert_caught(
        &problems,
        "\"demo-master\": 3 masters, but the SSH NAT pool's frontend ports reach at most 2",
    );
    assert_caught(
        &problems,
        "\"demo-general\": 150 VMs need singlePlacementGroup: false",
    );
}

#[test]
fn walker_catches_wrong_roles_and_missing_nsg_rules() {
    let spec = example_spec();
    let (mut template, parameters) = common::render_arm(&spec);
    for r in template["resources"].as_array_mut().unwrap() {
        if r["type"] == "Microsoft.Authorization/roleAssignments" {
            let text = r["properties"]["roleDefinitionId"]
                .as_str()
                .unwrap()
                .replace(arm::OWNER_ROLE_ID, arm::CONTRIBUTOR_ROLE_ID);
            r["properties"]["roleDefinitionId"] = json!(text);
        }
    }
    let nsg = resource_mut(
        &mut template,
        "Microsoft.Network/networkSecurityGroups",
        "demo-master-nsg",
    );
    nsg["properties"]["securityRules"]
        .as_array_mut()
        .unwrap()
        .remove(0);
    let problems = check(&template, &parameters, &spec);
    assert_caught(
        &problems,
        "role assignment for \"demo-master\": must grant Owner",
    );
    assert_caught(&problems, "NSG \"demo-master-nsg\": no rule allowing Inbound Tcp from (given sources) to (given sources) port 6443");
}

#[test]
fn walker_catches_missing_custom_data_and_restricted_sources_mismatch() {
    let mut spec = example_spec();
    let (template, mut parameters) = common::render_arm(&spec);
    parameters["parameters"]["customData"]["value"]
        .as_object_mut()
        .unwrap()
        .remove("gpu");
    assert_caught(
        &check(&template, &parameters, &spec),
        "no customData for pool \"gpu\"",
    );

    // The spec now restricts SSH, the template was rendered for `*`.
    spec.spec.azure.as_mut().unwrap().ssh_allowed_sources = vec!["203.0.113.0/24".into()];
    let (_, parameters) = common::render_arm(&spec);
    assert_caught(&check(&template, &parameters, &spec), "port 22");
    let (template, parameters) = common::render_arm(&spec);
    assert_eq!(check(&template, &parameters, &spec), Vec::<String>::new());
}

#[test]
fn azure_fields_are_validated_with_their_paths() {
    let mut azure = example_spec().spec.azure.unwrap();
    assert!(arm::validate_azure(&azure).is_empty());
    azure.ssh_allowed_sources = vec!["*".into(), "10.0.0.0/8".into()];
    azure.api_server_allowed_sources = vec!["10.0.0.0/33".into()];
    azure.image_id = Some("kubeboot-image".into());
    let errors: Vec<String> = arm::validate_azure(&azure)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            "spec.azure.apiServerAllowedSources[0]: \"10.0.0.0/33\" is neither `*` nor an IPv4 address or CIDR",
            "spec.azure.sshAllowedSources[0]: `*` allows every source; it cannot be combined with other entries",
            "spec.azure.imageId: must be an image resource id (/subscriptions/.../providers/Microsoft.Compute/...)",
        ]
    );
}

#[test]
fn render_writes_the_template_and_check_walks_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out_s = out.to_str().unwrap();
    let o = gen(&["render", "--out", out_s]);
    assert!(o.status.success(), "{}", stderr(&o));
    let template_path = out.join(arm::TEMPLATE_FILE);
    let template = std::fs::read_to_string(&template_path).unwrap();
    // Secrets do not depend on the template: it equals the reviewed snapshot byte for byte.
    let snapshot =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SNAPSHOT))
            .unwrap();
    assert_eq!(template, snapshot);
    assert!(gen(&["check", out_s]).status.success());

    std::fs::write(
        &template_path,
        template.replacen("\"name\": \"Standard\"", "\"name\": \"Basic\"", 2),
    )
    .unwrap();
    let o = gen(&["check", out_s]);
    assert_eq!(o.status.code(), Some(1));
    let problem = "arm/azuredeploy.json: load balancer: sku \"Basic\" must be Standard";
    assert!(stderr(&o).contains(problem), "{}", stderr(&o));
    let o = gen(&["check", out_s, "--output", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert!(
        report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().contains(problem)),
        "{report:#}"
    );
}

/// The cluster name is one value everywhere the seed's bug depends on it: the LB, the tags, and
/// the NodeConfig the agent turns into kubeadm's clusterName and the cloud controller's
/// --cluster-name.
#[test]
fn cluster_name_is_the_same_in_node_configs_load_balancer_and_tags() {
    let valid = validate_text(EXAMPLE_SPEC).unwrap();
    let secrets = common::secrets();
    let hash = secrets.ca_cert_hash().unwrap();
    for pool in &valid.cluster.spec.pools {
        let config = kubeboot_gen::render::node_config(&valid, secrets, &hash, pool);
        assert_eq!(config.cluster.name, "demo");
    }
    let (template, _) = common::render_arm(&valid.cluster);
    assert_eq!(
        template["variables"]["clusterTags"][arm::CLUSTER_TAG],
        "demo"
    );
    assert!(template["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["type"] == "Microsoft.Network/loadBalancers" && r["name"] == "demo"));
}

fn vault_name(spec: &ClusterSpec) -> String {
    let azure = spec.spec.azure.as_ref().unwrap();
    Names::new(&spec.metadata.name).key_vault(&azure.subscription_id, &azure.resource_group)
}

#[test]
fn walker_catches_a_vault_without_rbac_soft_delete_or_purge_protection() {
    let spec = example_spec();
    let kv = vault_name(&spec);
    let (mut template, parameters) = common::render_arm(&spec);
    let vault = resource_mut(&mut template, "Microsoft.KeyVault/vaults", &kv);
    vault["properties"]["enableRbacAuthorization"] = json!(false);
    vault["properties"]
        .as_object_mut()
        .unwrap()
        .remove("enablePurgeProtection");
    vault["properties"]["enableSoftDelete"] = json!(false);
    vault["properties"]["accessPolicies"] = json!([{"objectId": "x", "permissions": {}}]);
    let problems = check(&template, &parameters, &spec);
    for flag in [
        "enableRbacAuthorization",
        "enableSoftDelete",
        "enablePurgeProtection",
    ] {
        assert_caught(
            &problems,
            &format!("Key Vault \"{kv}\": {flag} must be true"),
        );
    }
    assert_caught(&problems, "access policies are ignored under RBAC");

    let (mut template, parameters) = common::render_arm(&spec);
    template["resources"]
        .as_array_mut()
        .unwrap()
        .retain(|r| r["type"] != "Microsoft.KeyVault/vaults");
    let problems = check(&template, &parameters, &spec);
    assert_caught(&problems, &format!("Key Vault \"{kv}\": missing"));
    // The secrets and scale sets that depend on it now dangle.
    assert_caught(&problems, "is not a resource of this template");
}

#[test]
fn walker_catches_secrets_that_bypass_the_secure_parameter() {
    let spec = example_spec();
    let kv = vault_name(&spec);
    let (mut template, mut parameters) = common::render_arm(&spec);
    let token = resource_mut(
        &mut template,
        "Microsoft.KeyVault/vaults/secrets",
        &format!("{kv}/bootstrap-token"),
    );
    token["properties"]["value"] = json!("abcdef.0123456789abcdef");
    template["parameters"]["clusterSecrets"]["type"] = json!("object");
    parameters["parameters"]["clusterSecrets"]["value"]
        .as_object_mut()
        .unwrap()
        .remove("cluster-pki");
    let problems = check(&template, &parameters, &spec);
    assert_caught(
        &problems,
        &format!("Key Vault secret \"{kv}/bootstrap-token\": value must be [parameters('clusterSecrets')['bootstrap-token']]"),
    );
    assert_caught(&problems, "\"clusterSecrets\": type must be secureObject");
    assert_caught(
        &problems,
        "parameters file: no clusterSecrets value for secret \"cluster-pki\"",
    );

    let (mut template, parameters) = common::render_arm(&spec);
    template["resources"]
        .as_array_mut()
        .unwrap()
        .retain(|r| r["name"] != format!("{kv}/cluster-pki"));
    let problems = check(&template, &parameters, &spec);
    assert_caught(
        &problems,
        &format!("Key Vault secret \"{kv}/cluster-pki\": missing"),
    );
}

/// The Key Vault role assignment of a scale set on `scope` (relative to the vault:
/// "" for the vault itself, "/secrets/<name>" for a secret).
fn vault_assignment<'a>(template: &'a mut Value, vmss: &str, scope: &str) -> &'a mut Value {
    let kv = template["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Microsoft.KeyVault/vaults")
        .map(|r| r["name"].as_str().unwrap().to_string())
        .unwrap();
    let scope = format!("Microsoft.KeyVault/vaults/{kv}{scope}");
    template["resources"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| {
            r["type"] == "Microsoft.Authorization/roleAssignments"
                && r["scope"] == scope.as_str()
                && r["properties"]["principalId"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("'{vmss}')"))
        })
        .unwrap_or_else(|| panic!("no Key Vault role assignment for {vmss} on {scope}"))
}

fn set_role(assignment: &mut Value, from: &str, to: &str) {
    let role = assignment["properties"]["roleDefinitionId"]
        .as_str()
        .unwrap()
        .replace(from, to);
    assignment["properties"]["roleDefinitionId"] = json!(role);
}

#[test]
fn masters_may_write_only_the_join_token_and_workers_only_read_it() {
    let spec = example_spec();
    let kv = vault_name(&spec);
    let (template, _) = common::render_arm(&spec);
    let token_scope = format!("Microsoft.KeyVault/vaults/{kv}/secrets/bootstrap-token");
    let grants: Vec<(String, String, String)> = template["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.get("scope").is_some())
        .map(|r| {
            let principal = r["properties"]["principalId"].as_str().unwrap();
            let vmss = principal.split('\'').nth(3).unwrap().to_string();
            let role = r["properties"]["roleDefinitionId"].as_str().unwrap();
            let role = if role.contains(arm::KEY_VAULT_SECRETS_OFFICER_ROLE_ID) {
                "officer"
            } else if role.contains(arm::KEY_VAULT_SECRETS_USER_ROLE_ID) {
                "user"
            } else {
                panic!("unexpected role {role}")
            };
            (vmss, r["scope"].as_str().unwrap().to_string(), role.into())
        })
        .collect();
    let mut want = vec![
        (
            "demo-master".to_string(),
            format!("Microsoft.KeyVault/vaults/{kv}"),
            "user".to_string(),
        ),
        ("demo-master".into(), token_scope.clone(), "officer".into()),
    ];
    for worker in ["demo-general", "demo-gpu"] {
        want.push((worker.into(), token_scope.clone(), "user".into()));
    }
    let mut grants = grants;
    grants.sort();
    want.sort();
    assert_eq!(grants, want);
}

#[test]
fn walker_catches_workers_reading_more_than_the_join_token() {
    let spec = example_spec();
    let kv = vault_name(&spec);
    let (mut template, parameters) = common::render_arm(&spec);
    // A worker granted the whole vault could read the CA keys.
    vault_assignment(&mut template, "demo-general", "/secrets/bootstrap-token")["scope"] =
        json!(format!("Microsoft.KeyVault/vaults/{kv}"));
    // Secrets Officer on the whole vault would let a master overwrite the cluster's PKI.
    set_role(
        vault_assignment(&mut template, "demo-master", ""),
        arm::KEY_VAULT_SECRETS_USER_ROLE_ID,
        arm::KEY_VAULT_SECRETS_OFFICER_ROLE_ID,
    );
    // A worker that may write the join token could hand every new node a token of its choice.
    set_role(
        vault_assignment(&mut template, "demo-gpu", "/secrets/bootstrap-token"),
        arm::KEY_VAULT_SECRETS_USER_ROLE_ID,
        arm::KEY_VAULT_SECRETS_OFFICER_ROLE_ID,
    );
    let problems = check(&template, &parameters, &spec);
    assert_caught(
        &problems,
        &format!("Key Vault role assignment for \"demo-general\": scope \"Microsoft.KeyVault/vaults/{kv}\" must be one of [\"Microsoft.KeyVault/vaults/{kv}/secrets/bootstrap-token\"] (workers read the join token only)"),
    );
    assert_caught(
        &problems,
        &format!("Key Vault role assignment for \"demo-general\": none scoped to \"Microsoft.KeyVault/vaults/{kv}/secrets/bootstrap-token\""),
    );
    assert_caught(
        &problems,
        &format!("Key Vault role assignment for \"demo-master\": must grant Key Vault Secrets User ({}) on \"Microsoft.KeyVault/vaults/{kv}\"", arm::KEY_VAULT_SECRETS_USER_ROLE_ID),
    );
    assert_caught(
        &problems,
        "Key Vault role assignment for \"demo-gpu\": must grant Key Vault Secrets User",
    );

    // A master without its vault assignments could never read the PKI.
    let (mut template, parameters) = common::render_arm(&spec);
    template["resources"].as_array_mut().unwrap().retain(|r| {
        !(r.get("scope").is_some()
            && r["properties"]["principalId"]
                .as_str()
                .is_some_and(|p| p.contains("'demo-master')")))
    });
    assert_caught(
        &check(&template, &parameters, &spec),
        "Key Vault role assignments: 0 for scale set \"demo-master\", want exactly 2",
    );
}

#[test]
fn walker_catches_masters_that_cannot_write_the_join_token() {
    let spec = example_spec();
    let kv = vault_name(&spec);
    let token_scope = format!("Microsoft.KeyVault/vaults/{kv}/secrets/bootstrap-token");
    // Read-only on the token: the rotated token never reaches the vault.
    let (mut template, parameters) = common::render_arm(&spec);
    set_role(
        vault_assignment(&mut template, "demo-master", "/secrets/bootstrap-token"),
        arm::KEY_VAULT_SECRETS_OFFICER_ROLE_ID,
        arm::KEY_VAULT_SECRETS_USER_ROLE_ID,
    );
    assert_caught(
        &check(&template, &parameters, &spec),
        &format!("Key Vault role assignment for \"demo-master\": must grant Key Vault Secrets Officer ({}) on \"{token_scope}\"", arm::KEY_VAULT_SECRETS_OFFICER_ROLE_ID),
    );

    // No write assignment at all.
    let (mut template, parameters) = common::render_arm(&spec);
    template["resources"].as_array_mut().unwrap().retain(|r| {
        !(r["scope"] == token_scope.as_str()
            && r["properties"]["principalId"]
                .as_str()
                .is_some_and(|p| p.contains("'demo-master')")))
    });
    let problems = check(&template, &parameters, &spec);
    assert_caught(
        &problems,
        "Key Vault role assignments: 1 for scale set \"demo-master\", want exactly 2",
    );
    assert_caught(
        &problems,
        &format!("Key Vault role assignment for \"demo-master\": none scoped to \"{token_scope}\"; masters write the join token they rotate needs Key Vault Secrets Officer there"),
    );

    // Write access widened to the vault: a master could overwrite cluster-pki.
    let (mut template, parameters) = common::render_arm(&spec);
    vault_assignment(&mut template, "demo-master", "/secrets/bootstrap-token")["scope"] =
        json!(format!("Microsoft.KeyVault/vaults/{kv}"));
    let problems = check(&template, &parameters, &spec);
    assert_caught(
        &problems,
        &format!("Key Vault role assignment for \"demo-master\": must grant Key Vault Secrets User ({}) on \"Microsoft.KeyVault/vaults/{kv}\", grants", arm::KEY_VAULT_SECRETS_USER_ROLE_ID),
    );
}

/// The example's `gpu` pool autoscales from zero: its scale set carries cluster-autoscaler's
/// auto-discovery tags and its labels and taints as the node template (keys encoded as the
/// autoscaler decodes them), and its capacity comes from the `poolCapacity` parameter, which the
/// parameters file sets to the spec's count. The fixed pools keep a literal capacity and no
/// autoscaler tag.
#[test]
fn autoscaled_pools_carry_the_autoscaler_tags_and_a_capacity_parameter() {
    let spec = example_spec();
    let (template, parameters) = common::render_arm(&spec);
    let vmss = |name: &str| {
        template["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == "Microsoft.Compute/virtualMachineScaleSets" && r["name"] == name)
            .unwrap()
            .clone()
    };
    let gpu = vmss("demo-gpu");
    for (tag, value) in [
        ("k8s-azure-cluster-name", "demo"),
        ("kubeboot-cluster", "demo"),
        ("cluster-autoscaler-enabled", "true"),
        ("cluster-autoscaler-name", "demo"),
        ("min", "0"),
        ("max", "4"),
        ("kubeboot-pool", "gpu"),
        (
            "k8s.io_cluster-autoscaler_node-template_label_accelerator",
            "nvidia",
        ),
        (
            "k8s.io_cluster-autoscaler_node-template_taint_nvidia.com_gpu",
            "present:NoSchedule",
        ),
    ] {
        assert_eq!(gpu["tags"][tag], value, "{tag}");
    }
    assert_eq!(gpu["tags"].as_object().unwrap().len(), 10);
    assert_eq!(
        gpu["sku"]["capacity"],
        "[parameters('poolCapacity')['gpu']]"
    );
    assert_eq!(template["parameters"]["poolCapacity"]["type"], "object");
    assert_eq!(
        parameters["parameters"]["poolCapacity"]["value"],
        json!({"gpu": 0})
    );
    let general = vmss("demo-general");
    assert_eq!(general["sku"]["capacity"], 3);
    assert_eq!(general["tags"], "[variables('clusterTags')]");
}

#[test]
fn the_autoscaler_tags_encode_slashes_and_underscores_as_it_decodes_them() {
    let mut spec = example_spec();
    let gpu = &mut spec.spec.pools[2];
    gpu.labels = [("example.com/my_key".to_string(), "v".to_string())].into();
    gpu.taints = vec!["dedicated=batch:NoExecute".parse().unwrap()];
    let tags = arm::autoscaler_tags("demo", gpu).unwrap();
    assert_eq!(
        tags["k8s.io_cluster-autoscaler_node-template_label_example.com_my~2key"],
        "v"
    );
    assert_eq!(
        tags["k8s.io_cluster-autoscaler_node-template_taint_dedicated"],
        "batch:NoExecute"
    );
    assert_eq!(arm::autoscaler_tags("demo", &spec.spec.pools[1]), None);
}

#[test]
fn walker_catches_autoscaling_drift() {
    let spec = example_spec();
    let (mut template, mut parameters) = common::render_arm(&spec);
    let gpu = resource_mut(
        &mut template,
        "Microsoft.Compute/virtualMachineScaleSets",
        "demo-gpu",
    );
    gpu["sku"]["capacity"] = json!(0);
    gpu["tags"].as_object_mut().unwrap().remove("max");
    gpu["tags"]["k8s.io_cluster-autoscaler_node-template_taint_nvidia.com_gpu"] = json!("present");
    let general = resource_mut(
        &mut template,
        "Microsoft.Compute/virtualMachineScaleSets",
        "demo-general",
    );
    general["tags"] = json!({"k8s-azure-cluster-name": "demo", "kubeboot-cluster": "demo", "cluster-autoscaler-enabled": "true"});
    parameters["parameters"]["poolCapacity"]["value"]["gpu"] = json!(9);
    let problems = check(&template, &parameters, &spec);
    assert_caught(
        &problems,
        "scale set \"demo-gpu\": capacity 0 must be [parameters('poolCapacity')['gpu']]",
    );
    assert_caught(
        &problems,
        "scale set \"demo-gpu\": tag max is null, not \"4\"",
    );
    assert_caught(&problems, "tag k8s.io_cluster-autoscaler_node-template_taint_nvidia.com_gpu is \"present\", not \"present:NoSchedule\"");
    assert_caught(
        &problems,
        "poolCapacity for pool \"gpu\" is 9, not within 0..=4",
    );
    assert_caught(&problems, "scale set \"demo-general\": cluster-autoscaler-enabled is set, but the pool has no autoscaling");
}
