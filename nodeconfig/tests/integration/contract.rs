//! The NodeConfig contract as the agent sees it: versioning, strictness and role rules, each
//! failing with one line naming the field.

use kubeboot_nodeconfig::parse;

const MASTER: &str = include_str!("../corpus/master.yaml");
const WORKER: &str = include_str!("../corpus/worker.yaml");

fn error_of(text: &str) -> String {
    parse(text).expect_err("must be rejected").to_string()
}

#[test]
fn the_corpus_parses() {
    assert!(parse(MASTER).unwrap().is_master());
    assert!(!parse(WORKER).unwrap().is_master());
}

#[test]
fn an_unknown_api_version_is_rejected_with_a_clear_message() {
    let err = error_of(&WORKER.replacen("kubeboot.io/v1alpha1", "kubeboot.io/v1beta1", 1));
    assert_eq!(
        err,
        "apiVersion: unsupported \"kubeboot.io/v1beta1\"; this build reads \"kubeboot.io/v1alpha1\""
    );
    let err = error_of(&WORKER.replacen("kind: NodeConfig", "kind: Cluster", 1));
    assert!(err.starts_with("kind: expected \"NodeConfig\""), "{err}");
}

#[test]
fn an_unknown_field_is_rejected_with_its_path() {
    let err = error_of(&WORKER.replacen("  podCIDR:", "  dnsDomian: x\n  podCIDR:", 1));
    assert!(
        err.starts_with("cluster.dnsDomian: unknown field `dnsDomian`"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
}

#[test]
fn a_worker_with_pki_is_rejected() {
    let start = MASTER.find("\npki:").expect("master has pki");
    let end = MASTER
        .find("\napiServer:")
        .expect("pki is followed by apiServer");
    let err = error_of(&format!("{}{}\n", WORKER.trim_end(), &MASTER[start..end]));
    assert_eq!(
        err,
        "pki: must not be given to a worker (it would leak the CA keys)"
    );
}

#[test]
fn a_master_without_pki_is_rejected() {
    let without = &MASTER[..MASTER.find("\npki:").unwrap()];
    assert_eq!(error_of(without), "pki: required on a master");
}

#[test]
fn a_malformed_bootstrap_token_is_rejected() {
    let token = "abcdef.0123456789abcdef";
    assert!(WORKER.contains(token));
    for bad in [
        "ABCDEF.0123456789abcdef",
        "abcdef0123456789abcdef",
        "abcde.0123456789abcdefg",
    ] {
        let err = error_of(&WORKER.replacen(token, bad, 1));
        assert_eq!(err, "bootstrap.token: must match [a-z0-9]{6}.[a-z0-9]{16}");
    }
}

const VAULT_MASTER: &str = include_str!("../corpus/azure-vault-master.yaml");
const VAULT_WORKER: &str = include_str!("../corpus/azure-vault-worker.yaml");

#[test]
fn vault_backed_azure_nodes_parse_without_inline_secrets() {
    use kubeboot_nodeconfig::AzureCloud;
    let master = parse(VAULT_MASTER).unwrap();
    assert!(master.bootstrap.token.is_none() && master.pki.is_none());
    let vault = &master.secrets.as_ref().unwrap().key_vault;
    assert_eq!(
        (vault.name.as_str(), vault.join_token_secret.as_str()),
        ("demo-kv-1a2b3c4d", "bootstrap-token")
    );
    assert_eq!(vault.pki_secret.as_deref(), Some("cluster-pki"));
    let azure = master.provider.azure.as_ref().unwrap();
    assert_eq!(azure.cloud, AzureCloud::AzureUsGovernmentCloud);
    // Written back under the name cloud-provider-azure uses.
    assert!(master.to_yaml().contains("cloud: AzureUSGovernmentCloud"));

    let worker = parse(VAULT_WORKER).unwrap();
    let azure = worker.provider.azure.as_ref().unwrap();
    assert_eq!(azure.cloud, AzureCloud::Custom);
    let custom = azure.custom_cloud.as_ref().unwrap();
    assert_eq!(custom.key_vault_dns_suffix, "vault.azurestack.example.test");
    assert!(custom
        .ca_bundle
        .as_ref()
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
}

#[test]
fn the_cloud_defaults_to_the_public_one() {
    let worker = parse(&VAULT_MASTER.replace("    cloud: AzureUSGovernmentCloud\n", "")).unwrap();
    assert_eq!(
        worker.provider.azure.unwrap().cloud,
        kubeboot_nodeconfig::AzureCloud::AzurePublicCloud
    );
    assert!(parse(&VAULT_MASTER.replace("AzureUSGovernmentCloud", "AzureChinaCloud")).is_ok());
    let err = error_of(&VAULT_MASTER.replace("AzureUSGovernmentCloud", "AzureGermanCloud"));
    assert!(
        err.starts_with("provider.azure.cloud: unknown variant"),
        "{err}"
    );
}

#[test]
fn with_a_key_vault_the_vault_is_the_only_source_of_secrets() {
    let with_token = VAULT_WORKER.replace(
        "bootstrap:\n",
        "bootstrap:\n  token: abcdef.0123456789abcdef\n",
    );
    assert_eq!(
        error_of(&with_token),
        "bootstrap.token: must be absent when secrets.keyVault is given (the vault is its only source)"
    );
    let start = MASTER.find("\npki:").unwrap();
    let end = MASTER.find("\napiServer:").unwrap();
    let with_pki = VAULT_MASTER.replace(
        "\napiServer:",
        &format!("{}\napiServer:", &MASTER[start..end]),
    );
    assert_eq!(
        error_of(&with_pki),
        "pki: must be absent when secrets.keyVault is given (the vault is its only source)"
    );
}

#[test]
fn without_a_key_vault_the_token_is_required_inline() {
    let without = WORKER.replace("  token: abcdef.0123456789abcdef\n", "");
    assert_eq!(
        error_of(&without),
        "bootstrap.token: required unless secrets.keyVault is given"
    );
}

#[test]
fn a_key_vault_needs_provider_azure() {
    let start = VAULT_WORKER.find("\nsecrets:").unwrap();
    let plain = WORKER.replace("  token: abcdef.0123456789abcdef\n", "");
    let err = error_of(&format!("{}{}", plain.trim_end(), &VAULT_WORKER[start..]));
    assert_eq!(
        err,
        "secrets.keyVault: only allowed when provider.name is azure"
    );
}

#[test]
fn only_masters_name_the_pki_secret() {
    let err = error_of(&VAULT_MASTER.replace("    pkiSecret: cluster-pki\n", ""));
    assert_eq!(err, "secrets.keyVault.pkiSecret: required on a master");
    let err = error_of(&format!("{}    pkiSecret: cluster-pki\n", VAULT_WORKER));
    assert_eq!(
        err,
        "secrets.keyVault.pkiSecret: must not be given to a worker (it may read the join secret only)"
    );
}

#[test]
fn vault_and_secret_names_follow_azure_rules() {
    for bad in [
        "kv",
        "1demo-kv",
        "demo--kv",
        "demo-kv-",
        "demo_kv",
        "a-vault-name-of-25-chars1",
    ] {
        let err =
            error_of(&VAULT_WORKER.replace("name: demo-kv-1a2b3c4d", &format!("name: {bad}")));
        assert!(err.starts_with("secrets.keyVault.name: "), "{bad}: {err}");
    }
    assert!(parse(&VAULT_WORKER.replace("demo-kv-1a2b3c4d", "Kv1")).is_ok());
    let err = error_of(&VAULT_WORKER.replace(
        "joinTokenSecret: bootstrap-token",
        "joinTokenSecret: boot_token",
    ));
    assert!(
        err.starts_with("secrets.keyVault.joinTokenSecret: "),
        "{err}"
    );
}

#[test]
fn a_custom_cloud_is_given_exactly_when_cloud_is_custom() {
    let start = VAULT_WORKER.find("    customCloud:").unwrap();
    let end = VAULT_WORKER.find("bootstrap:").unwrap();
    let custom_block = &VAULT_WORKER[start..end];
    let err = error_of(&VAULT_WORKER.replace(custom_block, ""));
    assert_eq!(
        err,
        "provider.azure.customCloud: required when cloud is Custom"
    );
    let err = error_of(&VAULT_WORKER.replace("cloud: Custom", "cloud: AzureChinaCloud"));
    assert_eq!(
        err,
        "provider.azure.customCloud: only allowed when cloud is Custom"
    );
}

#[test]
fn custom_cloud_endpoints_are_checked() {
    let cases = [
        (
            "keyVaultDnsSuffix: vault.azurestack.example.test",
            "keyVaultDnsSuffix: Vault..test",
            "keyVaultDnsSuffix",
        ),
        (
            "keyVaultResource: https://",
            "keyVaultResource: http://",
            "keyVaultResource",
        ),
        (
            "imdsEndpoint: http://169.254.169.254",
            "imdsEndpoint: 169.254.169.254",
            "imdsEndpoint",
        ),
        (
            "-----BEGIN CERTIFICATE-----",
            "not a certificate",
            "caBundle",
        ),
    ];
    for (good, bad, field) in cases {
        assert!(VAULT_WORKER.contains(good), "{good}");
        let err = error_of(&VAULT_WORKER.replacen(good, bad, 1));
        assert!(
            err.starts_with(&format!("provider.azure.customCloud.{field}: ")),
            "{field}: {err}"
        );
    }
}

/// The product's release table and the stand-ins' independent facts (tests/data/upstream/
/// releases.json, collected separately so that the stand-ins do not trust product code) agree on
/// what each minor removed and on the kubeadm config apiVersion it reads.
#[test]
fn the_release_table_agrees_with_the_stand_ins_facts() {
    use kubeboot_nodeconfig::releases::RELEASES;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/upstream/releases.json"
    ))
    .unwrap();
    let facts: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let names = |v: &serde_yaml_ng::Value| -> std::collections::BTreeSet<String> {
        v.as_sequence()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    for release in RELEASES {
        let minor = &facts["minors"][format!("1.{}", release.minor).as_str()];
        assert!(
            minor.is_mapping(),
            "the stand-ins know nothing of 1.{}",
            release.minor
        );
        assert_eq!(
            names(&minor["removed_feature_gates"]),
            release
                .removed_feature_gates
                .iter()
                .map(|g| g.to_string())
                .collect(),
            "removed feature gates of 1.{}",
            release.minor
        );
        assert!(
            names(&minor["kubeadm_api_versions"]).contains(release.kubeadm_api_version),
            "kubeadm 1.{} does not read {}",
            release.minor,
            release.kubeadm_api_version
        );
    }
}

#[test]
fn the_autoscaler_runs_on_azure_masters_only() {
    let with_autoscaler = |doc: &str| match doc.find("\naddons:\n") {
        Some(at) => format!(
            "{}\naddons:\n  clusterAutoscaler: true\n{}",
            &doc[..at],
            &doc[at + "\naddons:\n".len()..]
        ),
        None => format!("{}\naddons:\n  clusterAutoscaler: true\n", doc.trim_end()),
    };
    assert!(
        kubeboot_nodeconfig::parse(&with_autoscaler(VAULT_MASTER))
            .unwrap()
            .addons
            .cluster_autoscaler
    );
    assert_eq!(
        error_of(&with_autoscaler(VAULT_WORKER)),
        "addons.clusterAutoscaler: only allowed on a master (it runs there)"
    );
    let mut elsewhere = kubeboot_nodeconfig::parse(&with_autoscaler(MASTER)).unwrap();
    elsewhere.provider = kubeboot_nodeconfig::ProviderConfig {
        name: kubeboot_nodeconfig::ProviderName::None,
        azure: None,
    };
    assert_eq!(
        elsewhere.validate().unwrap_err().to_string(),
        "addons.clusterAutoscaler: only allowed when provider.name is azure"
    );
}

#[test]
fn the_disk_driver_runs_on_azure_masters_with_zones_of_their_location() {
    let with_disk = |doc: &str, disk: &str| match doc.find("\naddons:\n") {
        Some(at) => format!(
            "{}\naddons:\n  azureDisk: {disk}\n{}",
            &doc[..at],
            &doc[at + "\naddons:\n".len()..]
        ),
        None => format!("{}\naddons:\n  azureDisk: {disk}\n", doc.trim_end()),
    };
    let ok = kubeboot_nodeconfig::parse(&with_disk(
        VAULT_MASTER,
        "{skuName: Premium_LRS, zones: [usgovvirginia-1, usgovvirginia-3]}",
    ))
    .unwrap();
    let disk = ok.addons.azure_disk.unwrap();
    assert_eq!(disk.sku_name.as_str(), "Premium_LRS");
    assert_eq!(
        error_of(&with_disk(VAULT_WORKER, "{skuName: StandardSSD_LRS}")),
        "addons.azureDisk: only allowed on a master (it runs there)"
    );
    assert_eq!(
        error_of(&with_disk(VAULT_MASTER, "{skuName: StandardSSD_LRS, zones: [northeurope-1]}")),
        "addons.azureDisk.zones[0]: \"northeurope-1\" is not a zone of usgovvirginia (`usgovvirginia-1` to `usgovvirginia-3`)"
    );
    assert!(
        error_of(&with_disk(VAULT_MASTER, "{skuName: Standard_LRS}"))
            .starts_with("addons.azureDisk.skuName")
    );
}
