//! Every supported Kubernetes minor, end to end: for each, kubeboot-gen renders a cluster, the
//! agent brings up a first master, an extra master and a worker with the stand-ins playing that
//! release (STANDIN_KUBERNETES_VERSION), and the files the agent and kubeadm wrote pass that
//! release's strict `kubeadm config validate` (upstream key trees, unknown fields are errors,
//! KubeletConfiguration keys newer than the release are errors): /etc/kubeboot/kubeadm.yaml and
//! /var/lib/kubelet/config.yaml. The minors just outside the table are refused, with one line and
//! exit 2, by `kubeboot-gen validate` and by the agent; a minor past its end of life is refused by
//! `kubeboot-gen` with its date unless `--allow-end-of-life`, and then still boots (with a warning)
//! so that an opted-in pool keeps scaling. Every addon manifest, rendered for each known minor,
//! matches that minor's API field trees. (That a key newer than the release is
//! refused is the stand-in's own unit test, `schema::tests`; other bad versions are rows of
//! hardening.rs's table and generator/tests/integration/bad_specs.rs.)

use crate::support;

use std::path::Path;
use std::process::Output;

use kubeboot_nodeconfig::releases::{supported_minors, RELEASES};
use kubeboot_test_kit::binaries::binaries;
use kubeboot_test_kit::output::text;
use kubeboot_test_kit::port::free_port;
use support::machine::{loopback_spec, with_bind_port, Machine, Rendered};

const KUBEADM_CONFIG: &str = "/etc/kubeboot/kubeadm.yaml";
const KUBELET_CONFIG: &str = "/var/lib/kubelet/config.yaml";

fn version(minor: u64) -> String {
    format!("v1.{minor}.0")
}

fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

/// `kubeadm config validate --config FILE` of the stand-in playing `release`, for the node path
/// `node_path` under the directory `root` (the machine's, or where a dry run kept its files).
fn kubeadm_validate(machine: &Machine, release: &str, root: &Path, node_path: &str) -> Output {
    machine
        .command(&binaries().join("kubeadm"))
        .env("STANDIN_ROOT", root)
        .env("STANDIN_KUBERNETES_VERSION", release)
        .args(["config", "validate", "--config"])
        .arg(root.join(&node_path[1..]))
        .output()
        .unwrap()
}

/// The cluster of one minor: three machines run to done, every written config validated.
fn bring_up_and_validate(minor: u64) {
    let release = version(minor);
    let (endpoint_port, extra_port) = (free_port(), free_port());
    let cluster = Rendered::new(&loopback_spec(
        &format!("minor{minor}"),
        &release,
        endpoint_port,
        2,
    ));
    let master_yaml = cluster.node_yaml("master");
    let nodes = [
        (
            format!("minor{minor}-master-0"),
            with_bind_port(&master_yaml, endpoint_port),
        ),
        (
            format!("minor{minor}-master-1"),
            with_bind_port(&master_yaml, extra_port),
        ),
        (
            format!("minor{minor}-workers-0"),
            cluster.node_yaml("workers"),
        ),
    ];
    // Kept until the end: the first master's API server serves the others.
    let mut machines = Vec::new();
    for (hostname, node_yaml) in &nodes {
        let machine = Machine::new(hostname, node_yaml);
        let run = machine
            .agent_command(&["run"])
            .env("STANDIN_KUBERNETES_VERSION", &release)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{hostname} on {release}: {}",
            text(&run)
        );
        for config in [KUBEADM_CONFIG, KUBELET_CONFIG] {
            let check = kubeadm_validate(&machine, &release, machine.root(), config);
            assert!(
                check.status.success(),
                "{hostname}: {config} is not valid for {release}: {}",
                text(&check)
            );
        }
        machines.push(machine);
    }
    let kubeadm_config = std::fs::read_to_string(machines[0].node(KUBEADM_CONFIG)).unwrap();
    assert!(
        kubeadm_config.contains(&format!("kubernetesVersion: {release}")),
        "{kubeadm_config}"
    );
}

#[test]
fn every_supported_minor_gets_configs_its_kubeadm_accepts() {
    std::thread::scope(|s| {
        for minor in supported_minors(today()) {
            s.spawn(move || bring_up_and_validate(minor));
        }
    });
}

#[test]
fn the_strict_validation_is_live() {
    // The same validation must fail on a field upstream does not know, or the test above proves
    // nothing.
    let cluster = Rendered::new(&loopback_spec("strict", "v1.35.0", free_port(), 1));
    let machine = Machine::new("strict-workers-0", &cluster.node_yaml("workers"));
    // The configuration the worker would write, kept by a dry run.
    let kept = tempfile::tempdir().unwrap();
    let dry_run = machine.agent(&[
        "run",
        "--dry-run",
        "--dry-run-dir",
        kept.path().to_str().unwrap(),
    ]);
    assert!(dry_run.status.success(), "{}", text(&dry_run));
    let written = kept.path().join(&KUBEADM_CONFIG[1..]);
    let valid = kubeadm_validate(&machine, "v1.35.0", kept.path(), KUBEADM_CONFIG);
    assert!(valid.status.success(), "{}", text(&valid));
    let config = std::fs::read_to_string(&written).unwrap();
    let tampered = config.replacen("nodeRegistration:", "nodeRegistration:\n  colour: blue", 1);
    assert_ne!(config, tampered);
    std::fs::write(&written, tampered).unwrap();
    let invalid = kubeadm_validate(&machine, "v1.35.0", kept.path(), KUBEADM_CONFIG);
    assert!(!invalid.status.success(), "{}", text(&invalid));
    assert!(
        String::from_utf8_lossy(&invalid.stderr).contains("nodeRegistration.colour"),
        "{}",
        text(&invalid)
    );
}

/// The one line of stderr, asserting there is exactly one and that the exit status is 2.
fn one_line_exit_2(what: &str, out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2), "{what}: {}", text(out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: not one line: {stderr}");
    lines[0].to_string()
}

fn gen_validate(spec: &std::path::Path, extra: &[&str]) -> Output {
    std::process::Command::new(binaries().join("kubeboot-gen"))
        .arg("validate")
        .arg("--spec")
        .arg(spec)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn minors_next_to_the_table_are_refused_with_one_line() {
    let newest = RELEASES.last().unwrap().minor;
    let supported = version(newest);
    let cluster = Rendered::new(&loopback_spec("edge", &supported, free_port(), 1));
    let node_yaml = cluster.node_yaml("master");
    let work = tempfile::tempdir().unwrap();
    for minor in [RELEASES[0].minor - 1, newest + 1] {
        let release = version(minor);

        let spec = work.path().join(format!("{minor}.yaml"));
        std::fs::write(&spec, loopback_spec("edge", &release, 6443, 1)).unwrap();
        // Not even the opt-in renders a minor kubeboot does not know.
        let validate = gen_validate(&spec, &["--allow-end-of-life"]);
        let line = one_line_exit_2(&format!("kubeboot-gen validate {release}"), &validate);
        assert!(
            line.contains("spec.kubernetesVersion") && line.contains(&release),
            "{line}"
        );

        let machine = Machine::new(
            "edge-master-0",
            &node_yaml.replace(
                &format!("kubernetesVersion: {supported}"),
                &format!("kubernetesVersion: {release}"),
            ),
        );
        let run = machine.agent(&["run"]);
        let line = one_line_exit_2(&format!("kubeboot-agent run {release}"), &run);
        assert!(
            line.contains("cluster.kubernetesVersion") && line.contains(&release),
            "{line}"
        );
        assert!(
            !machine.node("/var/lib/kubeboot/phases").exists(),
            "{release}: the agent started"
        );
    }
}

#[test]
fn a_minor_past_its_end_of_life_is_refused_unless_allowed_and_then_still_boots() {
    let ended: Vec<_> = RELEASES
        .iter()
        .filter(|r| r.end_of_life < today())
        .collect();
    let release = ended
        .last()
        .expect("the table keeps a minor past its end of life");
    let old = format!("v1.{}.3", release.minor);
    let work = tempfile::tempdir().unwrap();
    let spec = work.path().join("old.yaml");
    std::fs::write(&spec, loopback_spec("eol", &old, 6443, 1)).unwrap();

    let refused = gen_validate(&spec, &[]);
    let line = one_line_exit_2(&format!("kubeboot-gen validate {old}"), &refused);
    let date = release.end_of_life.to_string();
    assert!(
        line.contains("spec.kubernetesVersion")
            && line.contains(&date)
            && line.contains("--allow-end-of-life"),
        "{line}"
    );

    let allowed = gen_validate(&spec, &["--allow-end-of-life"]);
    assert!(allowed.status.success(), "{}", text(&allowed));
    let stderr = String::from_utf8_lossy(&allowed.stderr);
    assert!(
        stderr.starts_with("warning: spec.kubernetesVersion") && stderr.contains(&date),
        "{stderr}"
    );

    // The opted-in cluster's nodes boot: a warning in the log, not a refusal.
    let port = free_port();
    let cluster = Rendered::with_args(
        &loopback_spec("eol", &old, port, 1),
        &["--allow-end-of-life"],
    );
    let machine = Machine::new(
        "eol-master-0",
        &with_bind_port(&cluster.node_yaml("master"), port),
    );
    let run = machine
        .agent_command(&["run"])
        .env("STANDIN_KUBERNETES_VERSION", &old)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
    assert!(
        String::from_utf8_lossy(&run.stderr)
            .contains(&format!("reached its end of life on {date}")),
        "{}",
        text(&run)
    );
}

/// Every addon manifest, as rendered for each minor kubeboot knows (Azure, autoscaler and zonal
/// disks on), against that minor's API: the field trees from the upstream OpenAPI documents that
/// the stand-in API server decodes with. No unknown field, no value of the wrong type, no
/// required field missing.
#[test]
fn every_addon_manifest_matches_the_api_of_every_known_minor() {
    use kubeboot_agent::phases::addons::{render, Manifest};
    use kubeboot_nodeconfig::{AzureDisk, AzureProvider, DiskSku, ProviderConfig, ProviderName};
    use kubeboot_stand_ins::apiserver::api_schema;
    for release in RELEASES {
        assert!(
            api_schema::minors().contains(&release.minor),
            "no API field trees for 1.{} in tests/data/upstream/k8s-api",
            release.minor
        );
        let mut config = kubeboot_nodeconfig::parse(crate::common::MASTER_YAML).unwrap();
        config.provider = ProviderConfig {
            name: ProviderName::Azure,
            azure: Some(AzureProvider {
                subscription_id: "sub-1".into(),
                resource_group: "rg-demo".into(),
                location: "westeurope".into(),
                cloud_config_path: kubeboot_nodeconfig::default_cloud_config_path(),
                cloud: Default::default(),
                custom_cloud: None,
            }),
        };
        config.cluster.kubernetes_version = version(release.minor).parse().unwrap();
        config.addons.cluster_autoscaler = true;
        config.addons.azure_disk = Some(AzureDisk {
            sku_name: DiskSku::PremiumLrs,
            zones: vec!["westeurope-1".into(), "westeurope-2".into()],
        });
        for Manifest { name, text, .. } in render(&config, Some(b"{}")).unwrap() {
            for doc in serde_yaml_ng::Deserializer::from_str(&text) {
                let mut object: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
                let found = api_schema::check(release.minor, &mut object, false)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(
                    found.unknown.is_empty() && found.invalid.is_empty(),
                    "{name} ({} {}) in 1.{}: {found:?}",
                    object["kind"],
                    object["metadata"]["name"],
                    release.minor
                );
            }
        }
    }
}
