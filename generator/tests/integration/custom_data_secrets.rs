//! No custom data carries a secret on Azure: every pool's `custom-data.b64` of several specs is
//! decoded exactly as Azure does (base64, then the gzip cloud-init reads) and searched for every
//! secret of the cluster, for private keys of any kind and for passwords. Plain VMs keep their
//! secrets inline (the operator hands the file to the node), and the scan proves it sees them.

use crate::common;

use std::fs;
use std::io::Read;
use std::path::Path;

use base64::Engine;
use common::{gen, gen_render, secrets, seed_secrets};
use kubeboot_gen::validate::EXAMPLE_SPEC;
use kubeboot_nodeconfig::{AzureCloud, NodeConfig, Role};
use kubeboot_test_kit::output::{stderr, stdout};

const PLAIN: &str = include_str!("../../examples/plain-vms.yaml");

/// Inserts `text` before the first line that starts with `anchor` (a spec edit by text, so each
/// variant below reads like the YAML a user would write).
fn insert_before(spec: &str, anchor: &str, text: &str) -> String {
    let at = spec
        .find(anchor)
        .unwrap_or_else(|| panic!("{anchor:?} not in the spec"));
    format!("{}{text}{}", &spec[..at], &spec[at..])
}

/// The Azure specs scanned: the example, more worker pools, the other role model, a custom cloud.
fn azure_specs() -> Vec<(&'static str, String)> {
    let more_pools = insert_before(
        EXAMPLE_SPEC,
        "  ssh:",
        "    - name: batch
      role: worker
      count: 2
      vmSize: Standard_D4s_v5
      subnetCIDR: 10.240.3.0/24
    - name: infra
      role: worker
      count: 1
      vmSize: Standard_D2s_v5
      subnetCIDR: 10.240.4.0/24
      taints: [\"dedicated=infra:NoSchedule\"]
",
    );
    let custom_roles = insert_before(
        EXAMPLE_SPEC,
        "  network:",
        "    identityRoles: contributor-plus-custom\n",
    );
    vec![
        ("example", EXAMPLE_SPEC.to_string()),
        ("multi-pool", more_pools),
        ("contributor-plus-custom", custom_roles),
        ("custom-cloud", custom_cloud_spec()),
    ]
}

/// The example in a custom Azure environment, with a CA bundle (a public certificate: custom
/// data may carry it).
fn custom_cloud_spec() -> String {
    let bundle: String = secrets()
        .ca
        .public
        .lines()
        .map(|l| format!("        {l}\n"))
        .collect();
    insert_before(
        EXAMPLE_SPEC,
        "  network:",
        &format!(
            "    cloud: Custom
    customCloud:
      keyVaultDnsSuffix: vault.example.test
      keyVaultResource: https://vault.example.test
      imdsEndpoint: http://169.254.169.254
      caBundle: |
{bundle}"
        ),
    )
}

/// Renders `spec` (with the shared test secrets) and returns each pool's custom data, decoded.
fn render_custom_data(dir: &Path, name: &str, spec: &str) -> Vec<(String, String)> {
    render_spec(dir, name, spec);
    decoded_custom_data(&dir.join(name))
}

fn render_spec(dir: &Path, name: &str, spec: &str) {
    let spec_file = dir.join(format!("{name}.yaml"));
    fs::write(&spec_file, spec).unwrap();
    let out = dir.join(name);
    seed_secrets(&out);
    let o = gen_render(&spec_file, &out);
    assert!(o.status.success(), "{name}: {}{}", stdout(&o), stderr(&o));
}

fn decoded_custom_data(out: &Path) -> Vec<(String, String)> {
    let mut pools = Vec::new();
    for entry in fs::read_dir(out.join("pools")).unwrap() {
        let dir = entry.unwrap().path();
        let b64 = fs::read_to_string(dir.join("custom-data.b64")).unwrap();
        let gzipped = base64::engine::general_purpose::STANDARD
            .decode(b64.trim_end())
            .unwrap();
        let mut text = String::new();
        flate2::read::GzDecoder::new(gzipped.as_slice())
            .read_to_string(&mut text)
            .unwrap();
        let pool = dir.file_name().unwrap().to_string_lossy().into_owned();
        pools.push((pool, text));
    }
    assert!(!pools.is_empty(), "{}: no pools rendered", out.display());
    pools
}

/// The NodeConfig a cloud-config writes (its first `write_files` entry).
fn node_config(user_data: &str) -> NodeConfig {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(user_data).unwrap();
    kubeboot_nodeconfig::parse(doc["write_files"][0]["content"].as_str().unwrap()).unwrap()
}

/// Every secret the cluster has, as the text a leak would show: the token and its secret half,
/// the encryption key, and a line from the body of each private key (a PEM header could be
/// stripped or re-encoded; the body would still be there).
fn secret_needles() -> Vec<(String, String)> {
    let s = secrets();
    let token = s.bootstrap_token.expose();
    let mut needles = vec![
        ("the bootstrap token".to_string(), token.to_string()),
        (
            "the bootstrap token's secret".to_string(),
            token.split_once('.').unwrap().1.to_string(),
        ),
        (
            "the Secrets encryption key".to_string(),
            s.encryption_key.expose().to_string(),
        ),
    ];
    for (what, pair) in [
        ("CA", &s.ca),
        ("front-proxy CA", &s.front_proxy_ca),
        ("etcd CA", &s.etcd_ca),
        ("service-account key", &s.service_account),
        ("SSH key", &s.ssh),
    ] {
        let body = pair
            .private
            .expose()
            .lines()
            .find(|l| !l.starts_with("-----") && l.len() >= 40)
            .unwrap_or_else(|| panic!("{what}: no body line"))
            .to_string();
        needles.push((format!("the {what}'s private key"), body));
    }
    needles
}

/// What a scan finds in one decoded custom data: one line per leak.
fn leaks(text: &str) -> Vec<String> {
    let mut found: Vec<String> = secret_needles()
        .into_iter()
        .filter(|(_, needle)| text.contains(needle.as_str()))
        .map(|(what, _)| what)
        .collect();
    if text.contains("PRIVATE KEY") {
        found.push("a PEM private key".into());
    }
    if text.to_ascii_lowercase().contains("password") {
        found.push("a password".into());
    }
    found
}

#[test]
fn no_pool_of_any_azure_spec_carries_a_secret_in_its_custom_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut scanned = 0;
    for (name, spec) in azure_specs() {
        for (pool, text) in render_custom_data(dir.path(), name, &spec) {
            let found = leaks(&text);
            assert!(
                found.is_empty(),
                "{name}: pool {pool}'s custom data carries {}",
                found.join(", ")
            );
            scanned += 1;
        }
    }
    // example 3 + multi-pool 5 + contributor-plus-custom 3 + custom-cloud 3
    assert_eq!(scanned, 14);
}

/// The scan is not blind: plain VMs keep their secrets inline in the NodeConfig (the operator
/// provides that file, no custom data is involved), and the scan names each of them there.
#[test]
fn the_scan_finds_the_inline_secrets_of_plain_vms() {
    let dir = tempfile::tempdir().unwrap();
    let pools = render_custom_data(dir.path(), "plain", PLAIN);
    let master = &pools.iter().find(|(p, _)| p == "master").unwrap().1;
    let found = leaks(master);
    for what in [
        "the bootstrap token",
        "the CA's private key",
        "the Secrets encryption key",
        "a PEM private key",
    ] {
        assert!(
            found.iter().any(|f| f == what),
            "{what} not found: {found:?}"
        );
    }
    let worker = &pools.iter().find(|(p, _)| p == "worker").unwrap().1;
    assert_eq!(
        leaks(worker),
        ["the bootstrap token", "the bootstrap token's secret"]
    );
}

/// What replaced the secrets: every NodeConfig names the vault the ARM template creates and the
/// secrets it fills (masters the PKI too, workers the join token only), in the spec's Azure
/// environment, which azure.json names as well.
#[test]
fn azure_node_configs_read_the_vault_the_template_creates_in_the_specs_cloud() {
    let dir = tempfile::tempdir().unwrap();
    render_spec(dir.path(), "custom-cloud", &custom_cloud_spec());
    let out = dir.path().join("custom-cloud");
    let template: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("arm/azuredeploy.json")).unwrap())
            .unwrap();
    let resources = template["resources"].as_array().unwrap();
    let vault = resources
        .iter()
        .find(|r| r["type"] == "Microsoft.KeyVault/vaults")
        .unwrap()["name"]
        .as_str()
        .unwrap();
    let secret_names: Vec<&str> = resources
        .iter()
        .filter(|r| r["type"] == "Microsoft.KeyVault/vaults/secrets")
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for (pool, text) in decoded_custom_data(&out) {
        let config = node_config(&text);
        assert!(
            config.bootstrap.token.is_none() && config.pki.is_none(),
            "{pool}"
        );
        let kv = &config.secrets.as_ref().unwrap().key_vault;
        assert_eq!(kv.name, vault, "{pool}");
        assert!(secret_names.contains(&format!("{vault}/{}", kv.join_token_secret).as_str()));
        match config.node.role {
            Role::Master => {
                let pki = kv.pki_secret.as_deref().unwrap();
                assert!(secret_names.contains(&format!("{vault}/{pki}").as_str()));
            }
            Role::Worker => assert_eq!(kv.pki_secret, None, "{pool}"),
        }
        let azure = config.provider.azure.as_ref().unwrap();
        assert_eq!(azure.cloud, AzureCloud::Custom);
        let custom = azure.custom_cloud.as_ref().unwrap();
        assert_eq!(custom.key_vault_dns_suffix, "vault.example.test");
        assert_eq!(custom.key_vault_resource, "https://vault.example.test");
        assert_eq!(
            custom.imds_endpoint.as_deref(),
            Some("http://169.254.169.254")
        );
        assert_eq!(
            custom.ca_bundle.as_deref(),
            Some(secrets().ca.public.as_str())
        );
    }
    let azure_json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("azure.json")).unwrap()).unwrap();
    assert_eq!(azure_json["cloud"], "AzureStackCloud");
}

/// `kubeboot-gen check` refuses an Azure NodeConfig that does not read the cluster's vault.
#[test]
fn check_refuses_a_node_config_that_names_another_vault() {
    let dir = tempfile::tempdir().unwrap();
    render_spec(dir.path(), "example", EXAMPLE_SPEC);
    let out = dir.path().join("example");
    let user_data = out.join("pools/general/user-data.yaml");
    let text = fs::read_to_string(&user_data).unwrap();
    let config = node_config(&text);
    let vault = &config.secrets.as_ref().unwrap().key_vault.name;
    fs::write(
        &user_data,
        text.replace(vault.as_str(), "other-kv-00000000"),
    )
    .unwrap();
    let o = gen(&["check", out.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&format!(
            "pools/general/user-data.yaml: on Azure the NodeConfig must read its secrets from Key Vault {vault:?} (bootstrap-token)"
        )),
        "{}",
        stderr(&o)
    );
}
