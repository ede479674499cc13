//! End-to-end renders through the binary and the library: the example, plain VMs, re-renders,
//! rotation, determinism, the custom data limit, and the outputs checked by real tools
//! (cloud-init, openssl) and against upstream key lists.

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{files_under, gen, gen_render, secrets, seed_secrets, upstream_schemas};
use kubeboot_gen::render::render;
use kubeboot_gen::validate::{validate_text, EXAMPLE_SPEC};
use kubeboot_nodeconfig::{ProviderName, Role};
use kubeboot_test_kit::output::{stderr, stdout};

const PLAIN: &str = include_str!("../../examples/plain-vms.yaml");

fn render_into(out: &Path, extra: &[&str]) -> String {
    let mut args = vec!["render", "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = gen(&args);
    assert!(
        o.status.success(),
        "render {args:?}: {:?}\n{}{}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    let o_check = gen(&["check", out.to_str().unwrap()]);
    assert!(
        o_check.status.success(),
        "check: {:?}\n{}",
        o_check.status,
        stderr(&o_check)
    );
    stdout(&o)
}

fn user_data_files(out: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(out.join("pools"))
        .unwrap()
        .map(|e| e.unwrap().path().join("user-data.yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn renders_and_checks_the_builtin_example() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let printed = render_into(&out, &[]);
    for pool in ["master", "general", "gpu"] {
        assert!(printed.contains(&format!("pool {pool}: custom data ")));
        assert!(out
            .join("pools")
            .join(pool)
            .join("custom-data.b64")
            .is_file());
    }
    assert!(out.join("azure.json").is_file());
    // Secrets are never printed.
    let token = fs::read_to_string(out.join("secrets/bootstrap-token")).unwrap();
    assert!(!printed.contains(token.trim()));

    // A tampered file is caught.
    let user_data = out.join("pools/gpu/user-data.yaml");
    let text = fs::read_to_string(&user_data).unwrap();
    fs::write(&user_data, text.replace("role: worker", "role: master")).unwrap();
    let o = gen(&["check", out.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("pools/gpu/"), "{}", stderr(&o));
}

#[test]
fn the_example_command_prints_the_spec_render_uses() {
    let o = gen(&["example"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), EXAMPLE_SPEC);
    assert!(EXAMPLE_SPEC.contains("name: demo") && EXAMPLE_SPEC.contains("store: local"));
}

#[test]
fn rerender_reuses_secrets_byte_for_byte_and_rotate_replaces_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    assert!(render_into(&out, &[]).contains("secrets: generated"));
    let first = files_under(&out);
    assert!(render_into(&out, &[]).contains("secrets: reused"));
    assert_eq!(
        first,
        files_under(&out),
        "a re-render must be byte-identical"
    );

    assert!(render_into(&out, &["--rotate"]).contains("secrets: rotated"));
    let rotated = files_under(&out);
    for name in [
        "secrets/ca.crt",
        "secrets/bootstrap-token",
        "secrets/id_rsa",
        "pools/master/user-data.yaml",
    ] {
        let get = |files: &[(PathBuf, Vec<u8>)]| {
            files
                .iter()
                .find(|(p, _)| p == Path::new(name))
                .unwrap()
                .1
                .clone()
        };
        assert_ne!(get(&first), get(&rotated), "{name} must change on --rotate");
    }
}

#[test]
fn same_spec_and_secrets_render_identically() {
    let spec = validate_text(EXAMPLE_SPEC).unwrap();
    let a = render(&spec, secrets()).unwrap();
    let b = render(&spec, secrets()).unwrap();
    assert_eq!(a.tree, b.tree);
    // azure.json + cluster.yaml + 3 pools x 2 + the ARM template and its parameters
    assert_eq!(a.tree.files.len(), 10);
}

/// Workers never get the PKI, masters do: inline on plain VMs, as the vault's PKI secret on Azure
/// (where nothing secret is inline).
#[test]
fn workers_never_get_the_pki_and_masters_do() {
    for (text, azure) in [(EXAMPLE_SPEC, true), (PLAIN, false)] {
        let spec = validate_text(text).unwrap();
        let hash = secrets().ca_cert_hash().unwrap();
        for pool in &spec.cluster.spec.pools {
            let config = kubeboot_gen::render::node_config(&spec, secrets(), &hash, pool);
            let reparsed = kubeboot_nodeconfig::parse(&config.to_yaml()).unwrap();
            let master = pool.role == Role::Master;
            let vault = reparsed.secrets.as_ref().map(|s| &s.key_vault);
            assert_eq!(vault.is_some(), azure, "{}", pool.name);
            assert_eq!(reparsed.bootstrap.token.is_some(), !azure, "{}", pool.name);
            assert_eq!(reparsed.pki.is_some(), master && !azure, "{}", pool.name);
            assert_eq!(
                vault.is_some_and(|v| v.pki_secret.is_some()),
                master && azure,
                "{}",
                pool.name
            );
        }
    }
    let spec = validate_text(EXAMPLE_SPEC).unwrap();
    let hash = secrets().ca_cert_hash().unwrap();
    for pool in &spec.cluster.spec.pools {
        let config = kubeboot_gen::render::node_config(&spec, secrets(), &hash, pool);
        let yaml = config.to_yaml();
        let reparsed = kubeboot_nodeconfig::parse(&yaml).unwrap();
        assert_eq!(
            reparsed.cluster.control_plane_endpoint,
            spec.control_plane_endpoint
        );
        // The API server's settings reach the masters only.
        if pool.role == Role::Master {
            assert!(reparsed
                .api_server
                .cert_sans
                .contains(&spec.control_plane_endpoint.host().to_string()));
        } else {
            assert!(!yaml.contains("apiServer:"), "{}: {yaml}", pool.name);
        }
        assert_eq!(reparsed.bootstrap.ca_cert_hashes, vec![hash.clone()]);
        // The example's gpu pool autoscales, so the masters run cluster-autoscaler; being on
        // Azure, they also deploy the disk driver, with a StorageClass for the pools' zones.
        let master = pool.role == Role::Master;
        assert_eq!(reparsed.addons.cluster_autoscaler, master, "{}", pool.name);
        let disk = reparsed.addons.azure_disk.as_ref();
        assert_eq!(disk.is_some(), master, "{}", pool.name);
        if let Some(disk) = disk {
            assert_eq!(disk.sku_name.as_str(), "StandardSSD_LRS");
            assert_eq!(disk.zones, ["westeurope-1", "westeurope-2", "westeurope-3"]);
        }
    }
    let premium = validate_text(&EXAMPLE_SPEC.replace(
        "  network:",
        "  addons: {azureDisk: {skuName: Premium_LRS}}\n  network:",
    ))
    .unwrap();
    let off = validate_text(&EXAMPLE_SPEC.replace(
        "  network:",
        "  addons: {azureDisk: {enabled: false}}\n  network:",
    ))
    .unwrap();
    let master_of = |spec: &kubeboot_gen::validate::ValidSpec| {
        let pool = spec
            .cluster
            .spec
            .pools
            .iter()
            .find(|p| p.role == Role::Master)
            .unwrap();
        kubeboot_gen::render::node_config(spec, secrets(), &hash, pool)
    };
    assert_eq!(
        master_of(&premium)
            .addons
            .azure_disk
            .unwrap()
            .sku_name
            .as_str(),
        "Premium_LRS"
    );
    assert_eq!(master_of(&off).addons.azure_disk, None);
    // A regional worker pool: its nodes have no zone, so the StorageClass allows every topology.
    let regional = validate_text(&EXAMPLE_SPEC.replacen("      zones: [\"1\"]\n", "", 1)).unwrap();
    assert!(regional
        .cluster
        .spec
        .pools
        .iter()
        .any(|p| p.zones.is_empty()));
    assert_eq!(
        master_of(&regional).addons.azure_disk.unwrap().zones,
        Vec::<String>::new()
    );
    let fixed =
        validate_text(&EXAMPLE_SPEC.replace("      autoscaling: {min: 0, max: 4}", "")).unwrap();
    assert!(fixed
        .cluster
        .spec
        .pools
        .iter()
        .all(|p| p.autoscaling.is_none()));
    for pool in &fixed.cluster.spec.pools {
        let config = kubeboot_gen::render::node_config(&fixed, secrets(), &hash, pool);
        assert!(!config.addons.cluster_autoscaler, "{}", pool.name);
    }
}

#[test]
fn plain_vms_render_without_azure_and_their_node_configs_parse() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("plain.yaml");
    fs::write(&spec, PLAIN).unwrap();
    let out = dir.path().join("out");
    seed_secrets(&out);
    render_into(&out, &["--spec", spec.to_str().unwrap()]);
    assert!(!out.join("azure.json").exists());
    for file in user_data_files(&out) {
        let text = fs::read_to_string(&file).unwrap();
        assert!(!text.contains("azure.json"), "{}", file.display());
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        let node_yaml = doc["write_files"][0]["content"].as_str().unwrap();
        let config = kubeboot_nodeconfig::parse(node_yaml).unwrap();
        assert_eq!(config.provider.name, ProviderName::None);
        assert_eq!(
            config.cluster.control_plane_endpoint.to_string(),
            "192.168.122.10:6443"
        );
        assert_eq!(config.cluster.init_node.as_deref(), Some("local-master-0"));
    }
}

#[test]
fn every_user_data_passes_cloud_init_schema() {
    let dir = tempfile::tempdir().unwrap();
    let plain_spec = dir.path().join("plain.yaml");
    fs::write(&plain_spec, PLAIN).unwrap();
    let azure_out = dir.path().join("azure");
    let plain_out = dir.path().join("plain");
    seed_secrets(&azure_out);
    seed_secrets(&plain_out);
    render_into(&azure_out, &[]);
    render_into(&plain_out, &["--spec", plain_spec.to_str().unwrap()]);
    let files: Vec<PathBuf> = user_data_files(&azure_out)
        .into_iter()
        .chain(user_data_files(&plain_out))
        .collect();
    assert_eq!(files.len(), 5);
    for file in files {
        let o = Command::new("cloud-init")
            .args(["schema", "--config-file"])
            .arg(&file)
            .output()
            .expect("cloud-init is installed (run .ci/install-deps)");
        assert!(
            o.status.success(),
            "{}: {}{}",
            file.display(),
            stdout(&o),
            stderr(&o)
        );
        assert!(stdout(&o).contains("Valid"), "{}", stdout(&o));
    }
}

#[test]
fn ca_hash_matches_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    seed_secrets(&out);
    render_into(&out, &[]);
    let ca = out.join("secrets/ca.crt");
    let o = Command::new("sh")
        .arg("-c")
        .arg(
            "openssl x509 -pubkey -noout -in \"$1\" | openssl pkey -pubin -outform der | sha256sum",
        )
        .arg("sh")
        .arg(&ca)
        .output()
        .expect("openssl runs");
    assert!(o.status.success(), "{}", stderr(&o));
    let openssl_hex = stdout(&o).split_whitespace().next().unwrap().to_string();
    assert_eq!(openssl_hex.len(), 64);
    let expected = format!("sha256:{openssl_hex}");
    assert_eq!(
        fs::read_to_string(out.join("secrets/ca-cert-hash"))
            .unwrap()
            .trim(),
        expected
    );
    let ours = kubeboot_gen::secrets::ca_cert_hash(&fs::read_to_string(&ca).unwrap()).unwrap();
    assert_eq!(ours, expected);
    let master = fs::read_to_string(out.join("pools/general/user-data.yaml")).unwrap();
    assert!(master.contains(&expected));
}

#[test]
fn secrets_have_owner_only_modes_and_a_usable_ssh_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    render_into(&out, &[]);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&out.join("secrets")), 0o700);
    for entry in fs::read_dir(out.join("secrets")).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    let public = ssh_key::PublicKey::from_openssh(
        &fs::read_to_string(out.join("secrets/id_rsa.pub")).unwrap(),
    )
    .unwrap();
    let private =
        ssh_key::PrivateKey::from_openssh(fs::read_to_string(out.join("secrets/id_rsa")).unwrap())
            .unwrap();
    assert_eq!(private.public_key().key_data(), public.key_data());
    let rsa = public.key_data().rsa().expect("an RSA key");
    assert_eq!(rsa.n.as_positive_bytes().unwrap().len() * 8, 3072);
    let token = fs::read_to_string(out.join("secrets/bootstrap-token")).unwrap();
    assert!(kubeboot_nodeconfig::check_token(token.trim()).is_ok());

    // A loose mode is reported by check.
    fs::set_permissions(
        out.join("secrets/ca.key"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let o = gen(&["check", out.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("secrets/ca.key: mode 0644, expected 0600"),
        "{}",
        stderr(&o)
    );
}

/// cloud-provider-azure ignores unknown keys silently: every key must be one of its config
/// struct's JSON keys, with the right JSON type.
#[test]
fn azure_json_uses_only_real_cloud_provider_keys() {
    let schema_dir = upstream_schemas();
    let schema: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(schema_dir.join("azure-cloud-config-keys.json"))
            .expect("upstream key list readable"),
    )
    .unwrap();
    let keys = schema["keys"].as_object().unwrap();
    let spec = validate_text(EXAMPLE_SPEC).unwrap();
    let rendered = render(&spec, secrets()).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(rendered.tree.get("azure.json").unwrap()).unwrap();
    let json = json.as_object().unwrap();
    assert!(json.len() >= 15);
    for (key, value) in json {
        let upstream = keys
            .get(key)
            .unwrap_or_else(|| panic!("{key} is not a cloud-provider-azure key"));
        let ty = upstream["type"].as_str().unwrap_or("object");
        let ok = match ty {
            "string" => value.is_string(),
            "bool" => value.is_boolean(),
            "int" => value.is_i64(),
            _ => false,
        };
        assert!(ok, "{key}: {value} is not of upstream type {ty}");
    }
    assert_eq!(json["vmType"], "vmss");
    assert_eq!(json["loadBalancerSku"], "standard");
    assert_eq!(json["securityGroupName"], "demo-worker-nsg");
    assert_eq!(json["useManagedIdentityExtension"], true);
    assert_eq!(json["userAssignedIdentityID"], "");
}

/// Random label values do not compress: enough of them push custom data over Azure's limit.
#[test]
fn over_the_custom_data_limit_is_refused_and_nothing_is_written() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let labels: Vec<String> = (0..1500)
        .map(|i| {
            let value: String = (0..60)
                .map(|_| char::from(b'a' + (next() % 26) as u8))
                .collect();
            format!("l{i}: {value}")
        })
        .collect();
    let spec_text = EXAMPLE_SPEC.replacen(
        "labels: {workload: general}",
        &format!("labels: {{{}}}", labels.join(", ")),
        1,
    );
    let spec = validate_text(&spec_text).unwrap();
    let err = render(&spec, secrets()).unwrap_err().to_string();
    assert!(err.starts_with("spec.pools[1]: custom data is "), "{err}");
    assert!(err.contains("over Azure's 65535-byte limit"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let spec_file = dir.path().join("big.yaml");
    fs::write(&spec_file, &spec_text).unwrap();
    let out = dir.path().join("out");
    let o = gen_render(&spec_file, &out);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("error: spec.pools[1]: custom data is "),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists(), "nothing may be written when rendering fails");
}

#[test]
fn a_removed_pool_leaves_no_stale_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    seed_secrets(&out);
    render_into(&out, &[]);
    let spec = dir.path().join("two-pools.yaml");
    let gpu_start = EXAMPLE_SPEC.find("    - name: gpu").unwrap();
    let gpu_end = EXAMPLE_SPEC.find("  ssh:").unwrap();
    fs::write(
        &spec,
        format!("{}{}", &EXAMPLE_SPEC[..gpu_start], &EXAMPLE_SPEC[gpu_end..]),
    )
    .unwrap();
    render_into(&out, &["--spec", spec.to_str().unwrap()]);
    assert!(!out.join("pools/gpu").exists());
    assert!(out.join("pools/general/user-data.yaml").exists());
}

#[test]
fn container_runtime_artifacts_reach_every_node_config() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("plain.yaml");
    let with_runtime = PLAIN.replacen(
        "  network:",
        "  artifacts:\n    containerd: {version: v2.1.4, baseUrl: https://mirror.example/containerd/v2.1.4}\n    runc: {version: v1.3.0, baseUrl: https://mirror.example/runc/v1.3.0}\n  network:",
        1,
    );
    assert_ne!(with_runtime, PLAIN);
    fs::write(&spec, with_runtime).unwrap();
    let out = dir.path().join("out");
    seed_secrets(&out);
    render_into(&out, &["--spec", spec.to_str().unwrap()]);
    let files = user_data_files(&out);
    assert!(!files.is_empty());
    for file in files {
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&fs::read_to_string(&file).unwrap()).unwrap();
        let node_yaml = doc["write_files"][0]["content"].as_str().unwrap();
        let config = kubeboot_nodeconfig::parse(node_yaml).unwrap();
        let containerd = config.artifacts.containerd.expect("artifacts.containerd");
        assert_eq!(containerd.version, "v2.1.4");
        assert_eq!(
            containerd.base_url,
            "https://mirror.example/containerd/v2.1.4"
        );
        assert_eq!(config.artifacts.runc.unwrap().version, "v1.3.0");
    }
}
