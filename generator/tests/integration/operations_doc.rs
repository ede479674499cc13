//! docs/operations.md checked against the code: its `kubeboot-gen` / `kubeboot-agent` command lines
//! (code blocks and inline code) exist, the SSH ports and the vault's retention are the rendered
//! ones, and `render --rotate` does what the document says (replaces every secret, unrefused).

use crate::common;
use common::repo;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::gen;
use common::shell::{kubeboot_command_problems, Shell};
use kubeboot_gen::arm;
use kubeboot_gen::names::Names;
use kubeboot_gen::validate::{validate_text, EXAMPLE_SPEC};
use kubeboot_test_kit::output::{stderr, stdout};
use serde_json::Value;

fn doc() -> String {
    std::fs::read_to_string(repo().join("docs/operations.md")).expect("docs/operations.md exists")
}

/// The commands of the document: its ```sh blocks and its inline code.
fn doc_shell(text: &str) -> Shell {
    let mut shell = Shell::parse(text);
    shell.lines.extend(Shell::inline_code(text).lines);
    shell
}

#[test]
fn every_kubeboot_command_line_in_the_doc_exists() {
    let shell = doc_shell(&doc());
    let gen_subcommands: Vec<String> = shell
        .invocations("kubeboot-gen")
        .iter()
        .filter_map(|a| a.first().cloned())
        .collect();
    // What the document is about: not an empty extraction.
    for sub in ["render", "check", "validate"] {
        assert!(
            gen_subcommands.iter().any(|s| s == sub),
            "{gen_subcommands:?}"
        );
    }
    assert!(shell
        .invocations("kubeboot-gen")
        .iter()
        .any(|a| a.iter().any(|w| w == "--rotate")));
    let problems = kubeboot_command_problems(&shell);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_command_check_fails_on_unknown_subcommands_and_options() {
    let text = "Run `kubeboot-gen render --rotat` or:\n\n```sh\nkubeboot-gen rotate --out out\nsudo kubeboot-agent status --outptu json\nkubeboot-agent rotate-everything\n```\n";
    let problems = kubeboot_command_problems(&doc_shell(text));
    for needle in [
        "kubeboot-gen render has no option --rotat",
        "kubeboot-gen has no subcommand \"rotate\"",
        "kubeboot-agent status has no option --outptu",
        "kubeboot-agent has no subcommand \"rotate-everything\"",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "{needle}: {problems:#?}"
        );
    }
}

/// The example's template, rendered in-process.
fn example_template() -> Value {
    common::render_arm(&validate_text(EXAMPLE_SPEC).unwrap().cluster).0
}

fn resource<'a>(template: &'a Value, kind: &str) -> &'a Value {
    template["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

#[test]
fn ssh_ports_and_vault_retention_are_the_rendered_ones() {
    let text = doc();
    let template = example_template();
    let lb = resource(&template, "Microsoft.Network/loadBalancers");
    let nat = &lb["properties"]["inboundNatPools"][0];
    assert_eq!(nat["name"], Names::new("demo").lb_ssh_nat_pool());
    assert!(text.contains(&format!("NAT pool `{}`", nat["name"].as_str().unwrap())));
    let p = &nat["properties"];
    assert_eq!(p["backendPort"], 22);
    let ports = format!(
        "ports {}–{}",
        p["frontendPortRangeStart"], p["frontendPortRangeEnd"]
    );
    assert!(text.contains(&ports), "the doc names {ports}");

    let vault = resource(&template, "Microsoft.KeyVault/vaults");
    assert_eq!(vault["properties"]["enablePurgeProtection"], true);
    let days = vault["properties"]["softDeleteRetentionInDays"]
        .as_u64()
        .unwrap();
    assert_eq!(days, u64::from(arm::SOFT_DELETE_RETENTION_DAYS));
    assert!(text.contains(&format!("for {days} days")));
}

fn read(out: &Path, rel: &str) -> String {
    std::fs::read_to_string(out.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `--rotate` on an output directory that already has secrets (as a deployed cluster's has):
/// not refused; every stored secret, every pool's CA pin and everything the deployment writes
/// into the vault and the scale sets change.
#[test]
fn rotate_replaces_every_secret_of_an_existing_render_without_refusing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    common::seed_secrets(&out);
    let out_s = out.to_str().unwrap();
    let o = gen(&["render", "--out", out_s]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("secrets: reused"));
    let secret_files: Vec<String> = std::fs::read_dir(out.join("secrets"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(secret_files.len() >= 12, "{secret_files:?}");
    let before: Vec<String> = secret_files
        .iter()
        .map(|f| read(&out, &format!("secrets/{f}")))
        .collect();
    let pin = read(&out, "secrets/ca-cert-hash").trim().to_string();
    let user_data = read(&out, "pools/general/user-data.yaml");
    assert!(user_data.contains(&pin));
    let parameters: Value = serde_json::from_str(&read(&out, arm::PARAMETERS_FILE)).unwrap();

    let o = gen(&["render", "--out", out_s, "--rotate"]);
    assert!(o.status.success(), "--rotate was refused: {}", stderr(&o));
    assert!(stdout(&o).contains("secrets: rotated"));
    for (file, old) in secret_files.iter().zip(&before) {
        assert_ne!(
            &read(&out, &format!("secrets/{file}")),
            old,
            "{file} must change"
        );
    }
    assert_eq!(mode(&out.join("secrets")), 0o700);
    assert_eq!(mode(&out.join("secrets/id_rsa")), 0o600);
    let new_pin = read(&out, "secrets/ca-cert-hash").trim().to_string();
    let new_user_data = read(&out, "pools/general/user-data.yaml");
    assert!(new_user_data.contains(&new_pin) && !new_user_data.contains(&pin));
    let rotated: Value = serde_json::from_str(&read(&out, arm::PARAMETERS_FILE)).unwrap();
    for path in [
        "/parameters/sshPublicKey/value",
        "/parameters/clusterSecrets/value/bootstrap-token",
        "/parameters/clusterSecrets/value/cluster-pki",
    ] {
        assert_ne!(parameters.pointer(path), rotated.pointer(path), "{path}");
        assert!(rotated.pointer(path).is_some(), "{path}");
    }
}

/// A damaged store (a secret file missing) stops a plain render with a message recommending
/// `--rotate`, and `--rotate` then succeeds: it does not read the store it replaces.
#[test]
fn rotate_replaces_a_damaged_store_that_stops_a_plain_render() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    common::seed_secrets(&out);
    let out_s = out.to_str().unwrap();
    assert!(gen(&["render", "--out", out_s]).status.success());
    std::fs::remove_file(out.join("secrets/ca.key")).unwrap();
    let o = gen(&["render", "--out", out_s]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("render with --rotate"),
        "{}",
        stderr(&o)
    );
    let o = gen(&["render", "--out", out_s, "--rotate"]);
    assert!(
        o.status.success(),
        "--rotate stopped at the damaged store: {}",
        stderr(&o)
    );
    assert!(out.join("secrets/ca.key").exists());
}

/// The first step of an upgrade (docs/operations.md, "Upgrade the cluster"): the spec at the next
/// minor, rendered into the same `out/`, changes every pool's NodeConfig (so the scale sets' model,
/// whose custom data it is) to that version and nothing secret: instances created after the
/// re-deployment boot at the new version and join the same cluster.
#[test]
fn re_rendering_at_the_next_minor_moves_every_pool_to_it_and_keeps_the_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    common::seed_secrets(&out);
    let spec = dir.path().join("cluster.yaml");
    let render_at = |version: &str| {
        std::fs::write(
            &spec,
            EXAMPLE_SPEC.replace(
                "kubernetesVersion: v1.37.1",
                &format!("kubernetesVersion: {version}"),
            ),
        )
        .unwrap();
        let o = common::gen_render(&spec, &out);
        assert!(o.status.success(), "{version}: {}", stderr(&o));
        let parameters: Value = serde_json::from_str(&read(&out, arm::PARAMETERS_FILE)).unwrap();
        let secrets: Vec<String> = ["secrets/ca.crt", "secrets/ca-cert-hash", "secrets/id_rsa"]
            .iter()
            .map(|f| read(&out, f))
            .collect();
        (parameters, secrets)
    };
    let (before, secrets_before) = render_at("v1.36.2");
    let (after, secrets_after) = render_at("v1.37.1");
    assert_eq!(
        secrets_before, secrets_after,
        "the cluster's secrets are kept"
    );
    let pools = validate_text(EXAMPLE_SPEC).unwrap().cluster.spec.pools;
    for pool in pools.iter().map(|p| &p.name) {
        let node_yaml = read(&out, &format!("pools/{pool}/user-data.yaml"));
        assert!(
            node_yaml.contains("kubernetesVersion: v1.37.1"),
            "{pool}: {node_yaml}"
        );
        assert!(!node_yaml.contains("v1.36.2"), "{pool}: {node_yaml}");
        let custom_data = |p: &Value| p["parameters"]["customData"]["value"][pool].clone();
        assert_ne!(
            custom_data(&before),
            custom_data(&after),
            "{pool}: the model's custom data"
        );
    }
    let o = gen(&["check", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
}
