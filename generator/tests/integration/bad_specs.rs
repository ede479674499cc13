//! A table of broken specs: each must fail `render` with a one-line error naming its field, and
//! leave the output directory unwritten.

use crate::common;

use common::{gen, gen_render};
use kubeboot_test_kit::output::stderr;

const EXAMPLE: &str = include_str!("../../examples/cluster.yaml");
const PLAIN: &str = include_str!("../../examples/plain-vms.yaml");

/// (base spec, text to replace, replacement, expected start of an error line after "error: ").
/// The first occurrence of the text is replaced; the case fails if the text is absent.
const CASES: &[(&str, &str, &str, &str)] = &[
    // Syntax and types, found by the strict parser.
    (EXAMPLE, "kubeboot.io/v1alpha1", "kubeboot.io/v2", "apiVersion: unsupported \"kubeboot.io/v2\""),
    (EXAMPLE, "kind: Cluster", "kind: Clusters", "kind: expected \"Cluster\""),
    (EXAMPLE, "    adminUsername: azureuser", "    adminUsername: azureuser\n    adminPassword: x", "spec.ssh.adminPassword: unknown field"),
    (EXAMPLE, "  network:", "  netwerk: {}\n  network:", "spec.netwerk: unknown field"),
    (EXAMPLE, "count: 3", "count: three", "spec.pools[0].count: invalid type"),
    (EXAMPLE, "count: 0", "count: -1", "spec.pools[2].count: invalid value"),
    (EXAMPLE, "podCIDR: 10.244.0.0/16", "podCIDR: 10.244.0.0/33", "spec.network.podCIDR: invalid"),
    (EXAMPLE, "podCIDR: 10.244.0.0/16", "podCIDR: fd00:10:244::/56", "spec.network.podCIDR: \"fd00:10:244::/56\" is IPv6; kubeboot clusters are IPv4 only"),
    (EXAMPLE, "serviceCIDR: 10.96.0.0/12", "serviceCIDR: \"10.96.0.0/12,fd00:10:96::/112\"", "spec.network.serviceCIDR: \"10.96.0.0/12,fd00:10:96::/112\" is dual-stack; kubeboot clusters are IPv4 only"),
    (EXAMPLE, "    podCIDR: 10.244.0.0/16", "\tpodCIDR: 10.244.0.0/16", "(document): not valid YAML: line 14 is indented with a tab (YAML allows spaces only)"),
    (EXAMPLE, "v1.37.1", "v1.37", "spec.kubernetesVersion: \"v1.37\" is not a version"),
    (EXAMPLE, ":NoSchedule", ":Sometimes", "spec.pools[2].taints[0]: taint"),
    (EXAMPLE, "role: worker", "role: boss", "spec.pools[1].role: unknown variant"),
    (EXAMPLE, "store: local", "store: s3", "spec.secrets.store: unknown variant"),
    // Names Azure would refuse.
    (EXAMPLE, "name: demo", "name: Demo", "metadata.name: \"Demo\" must be"),
    (EXAMPLE, "name: demo", "name: demo-cluster-with-a-very-long-name-x", "metadata.name: \"demo-cluster-with-a-very-long-name-x\" must be 1-32"),
    (EXAMPLE, "name: demo", "name: demo_1", "metadata.name: \"demo_1\" must be"),
    (EXAMPLE, "name: demo", "name: kubernetes", "metadata.name: \"kubernetes\" is the cloud provider's default"),
    (EXAMPLE, "name: gpu", "name: gpu-", "spec.pools[2].name: \"gpu-\" must be"),
    (EXAMPLE, "resourceGroup: demo-rg", "resourceGroup: demo-rg.", "spec.azure.resourceGroup: \"demo-rg.\" must be"),
    (EXAMPLE, "location: westeurope", "location: West Europe", "spec.azure.location: \"West Europe\" is not an Azure region"),
    (EXAMPLE, "location: westeurope", "location: westeurope\n    dnsLabel: x", "spec.azure.dnsLabel: \"x\" must be at least 3"),
    (EXAMPLE, "vmSize: Standard_D4s_v5", "vmSize: D4s_v5", "spec.pools[1].vmSize: \"D4s_v5\" is not an Azure VM size"),
    (EXAMPLE, "adminUsername: azureuser", "adminUsername: root", "spec.ssh.adminUsername: \"root\" is reserved"),
    // The Azure environment: NodeConfig's rules at the spec's paths.
    (EXAMPLE, "location: westeurope", "location: westeurope\n    cloud: AzureGermanCloud", "spec.azure.cloud: unknown variant"),
    (EXAMPLE, "location: westeurope", "location: westeurope\n    cloud: Custom", "spec.azure.customCloud: required when cloud is Custom"),
    (EXAMPLE, "location: westeurope", "location: westeurope\n    customCloud: {keyVaultDnsSuffix: vault.example.test, keyVaultResource: \"https://vault.example.test\"}", "spec.azure.customCloud: only allowed when cloud is Custom"),
    (EXAMPLE, "location: westeurope", "location: westeurope\n    cloud: Custom\n    customCloud: {keyVaultDnsSuffix: vault.example.test, keyVaultResource: \"http://vault.example.test\"}", "spec.azure.customCloud.keyVaultResource: \"http://vault.example.test\" must start with https://"),
    (EXAMPLE, "location: westeurope", "location: westeurope\n    cloud: Custom\n    customCloud: {keyVaultDnsSuffix: vault.example.test, keyVaultResource: \"https://vault.example.test\", imdsEndpoint: \"http://user:s3cret-pw@169.254.169.254\"}", "spec.azure.customCloud.imdsEndpoint: must not hold credentials"),
    // Versions and GUIDs.
    (EXAMPLE, "v1.37.1", "v1.30.4", "spec.kubernetesVersion: Kubernetes v1.30.4 is not a release kubeboot knows"),
    (EXAMPLE, "v1.37.1", "v1.38.0", "spec.kubernetesVersion: Kubernetes v1.38.0 is not a release kubeboot knows"),
    (EXAMPLE, "v1.37.1", "v1.34.2", "spec.kubernetesVersion: Kubernetes 1.34 reached its end of life on 2026-10-27"),
    (EXAMPLE, "  network:", "  apiServer:\n    extraArgs:\n      feature-gates: \"SidecarContainers=true\"\n  network:", "spec.apiServer.extraArgs.feature-gates: Kubernetes 1.37 removed the feature gate SidecarContainers"),
    (EXAMPLE, "tenantId: 11111111-2222-4333-8444-555555555555", "tenantId: 11111111-2222-4333-8444-55555555555", "spec.azure.tenantId: \"11111111-2222-4333-8444-55555555555\" is not a GUID"),
    (EXAMPLE, "subscriptionId: 66666666-7777-4888-9999-000000000000", "subscriptionId: my-subscription", "spec.azure.subscriptionId: \"my-subscription\" is not a GUID"),
    // Container runtime artifacts.
    (EXAMPLE, "  network:", "  artifacts:\n    containerd: {version: v1.6.20, baseUrl: https://mirror.example/containerd}\n  network:", "spec.artifacts.containerd.version: containerd 1.6.20 is older than 1.7.0"),
    (EXAMPLE, "  network:", "  artifacts:\n    runc: {version: latest, baseUrl: https://mirror.example/runc}\n  network:", "spec.artifacts.runc.version: \"latest\" is not a release version"),
    (EXAMPLE, "  network:", "  artifacts:\n    containerd: {version: v2.1.4, baseUrl: ftp://mirror.example/containerd}\n  network:", "spec.artifacts.containerd.baseUrl:"),
    (EXAMPLE, "  network:", "  artifacts:\n    releaseBaseUrl: https://user:s3cret-pw@mirror.example\n  network:", "spec.artifacts.releaseBaseUrl: must not hold credentials"),
    (EXAMPLE, "  network:", "  artifacts:\n    containerd: {version: v2.1.4, baseUrl: \"ftp://user:s3cret-pw@mirror.example/containerd\"}\n  network:", "spec.artifacts.containerd.baseUrl: must not hold credentials"),
    (EXAMPLE, "  network:", "  artifacts:\n    releaseBaseUrl: ftp://mirror.example\n  network:", "spec.artifacts.releaseBaseUrl: \"ftp://mirror.example\" must start with http:// or https:// (or file://)"),
    (EXAMPLE, "  network:", "  apiServer:\n    oidc: {issuerURL: \"https://login.example.com\", clientID: k, caPEM: \"-----BEGIN CERTIFICATE-----\\nAAAAAAAA\\n-----END CERTIFICATE-----\\n\"}\n  network:", "spec.apiServer.oidc.caPEM: is not an X.509 certificate"),
    (EXAMPLE, "location: westeurope", "location: westeurope\n    cloud: Custom\n    customCloud: {keyVaultDnsSuffix: vault.example.test, keyVaultResource: \"https://vault.example.test\", caBundle: \"-----BEGIN CERTIFICATE-----\\nnot base64\\n-----END CERTIFICATE-----\\n\"}", "spec.azure.customCloud.caBundle: is not a valid PEM block"),
    // Networks.
    (EXAMPLE, "vnetCIDR: 10.240.0.0/16", "vnetCIDR: 10.240.0.1/16", "spec.network.vnetCIDR: 10.240.0.1/16 has host bits set"),
    (EXAMPLE, "podCIDR: 10.244.0.0/16", "podCIDR: 10.96.0.0/16", "spec.network.serviceCIDR: 10.96.0.0/12 overlaps spec.network.podCIDR"),
    (EXAMPLE, "vnetCIDR: 10.240.0.0/16", "vnetCIDR: 10.0.0.0/8", "spec.network.vnetCIDR: 10.0.0.0/8 overlaps spec.network.podCIDR"),
    (EXAMPLE, "serviceCIDR: 10.96.0.0/12", "serviceCIDR: 172.16.0.0/11", "spec.network.serviceCIDR: 172.16.0.0/11 is larger"),
    (EXAMPLE, "podCIDR: 10.244.0.0/16", "podCIDR: 10.244.0.0/23", "spec.network.podCIDR: 10.244.0.0/23 holds 2 node ranges"),
    (EXAMPLE, "subnetCIDR: 10.240.1.0/24", "subnetCIDR: 10.241.1.0/24", "spec.pools[1].subnetCIDR: 10.241.1.0/24 is outside spec.network.vnetCIDR"),
    (EXAMPLE, "subnetCIDR: 10.240.2.0/24", "subnetCIDR: 10.240.1.128/25", "spec.pools[2].subnetCIDR: 10.240.1.128/25 overlaps spec.pools[1].subnetCIDR"),
    (EXAMPLE, "subnetCIDR: 10.240.0.0/24", "subnetCIDR: 10.240.0.0/30", "spec.pools[0].subnetCIDR: 10.240.0.0/30 has 0 usable addresses"),
    (EXAMPLE, "    vnetCIDR: 10.240.0.0/16\n", "", "spec.network.vnetCIDR: is required with spec.azure"),
    (EXAMPLE, "      subnetCIDR: 10.240.2.0/24\n", "", "spec.pools[2].subnetCIDR: is required with spec.azure"),
    // Pools.
    (EXAMPLE, "name: gpu", "name: general", "spec.pools[2].name: \"general\" is already used by spec.pools[1]"),
    (EXAMPLE, "role: master", "role: worker", "spec.pools: needs exactly one pool with role master, found none"),
    (EXAMPLE, "taints: [\"nvidia.com/gpu=present:NoSchedule\"]", "taints: [\"nvidia.com/gpu=present:NoSchedule\", \"nvidia.com/gpu=absent:NoSchedule\"]", "spec.pools[2].taints[1]: nvidia.com/gpu=absent:NoSchedule repeats"),
    (EXAMPLE, "role: worker\n      count: 0", "role: master\n      count: 1", "spec.pools[2].role: only one pool may be master; spec.pools[0] already is"),
    (EXAMPLE, "count: 3", "count: 0", "spec.pools[0].count: a master pool needs at least one node"),
    // Azure's limits, each named in the message.
    (EXAMPLE, "count: 0", "count: 601", "spec.pools[2].count: 601 VMs, over Azure's limit of 600 per scale set from a custom image"),
    (EXAMPLE, "count: 3", "count: 121", "spec.pools[0].count: 121 masters, but the SSH NAT pool's frontend ports 50000-50119 reach at most 120"),
    // Autoscaling.
    (EXAMPLE, "max: 4}", "max: 601}", "spec.pools[2].autoscaling.max: 601 VMs, over Azure's limit of 600 per scale set from a custom image"),
    (EXAMPLE, "{min: 0, max: 4}", "{min: 5, max: 4}", "spec.pools[2].autoscaling: min 5 and max 4 must satisfy min <= max and max >= 1"),
    (EXAMPLE, "{min: 0, max: 4}", "{min: 0, max: 0}", "spec.pools[2].autoscaling: min 0 and max 0 must satisfy"),
    (EXAMPLE, "{min: 0, max: 4}", "{min: 1, max: 4}", "spec.pools[2].count: 0 is outside autoscaling's 1..=4"),
    (EXAMPLE, "{min: 0, max: 4}", "{min: 0, max: 4, step: 1}", "spec.pools[2].autoscaling.step: unknown field"),
    (EXAMPLE, "taints: [\"nvidia.com/gpu=present:NoSchedule\"]", "taints: [\"nvidia.com/gpu=present:NoSchedule\", \"nvidia.com/gpu=present:NoExecute\"]", "spec.pools[2].taints[1]: nvidia.com/gpu=present:NoExecute repeats the key of an earlier taint; an autoscaled pool's node template holds one taint per key"),
    (EXAMPLE, "      subnetCIDR: 10.240.0.0/24
", "      subnetCIDR: 10.240.0.0/24
      autoscaling: {min: 1, max: 5}
", "spec.pools[0].autoscaling: masters are not autoscaled"),
    (EXAMPLE, "subnetCIDR: 10.240.2.0/24", "subnetCIDR: 10.240.2.0/29", "spec.pools[2].subnetCIDR: 10.240.2.0/29 has 3 usable addresses (Azure reserves 5) for 4 nodes"),
    (EXAMPLE, "podCIDR: 10.244.0.0/16", "podCIDR: 10.244.0.0/22", "spec.network.podCIDR: 10.244.0.0/22 holds 4 node ranges of /24 but the pools have 10 nodes"),
    (EXAMPLE, "zones: [\"1\"]", "zones: [\"4\"]", "spec.pools[2].zones[0]: \"4\" is not an Azure availability zone"),
    (EXAMPLE, "zones: [\"1\", \"2\", \"3\"]", "zones: [\"1\", \"1\"]", "spec.pools[0].zones[1]: zone \"1\" is listed twice"),
    (EXAMPLE, "labels: {workload: general}", "labels: {\"bad key!\": general}", "spec.pools[1].labels.bad key!: \"bad key!\" must be"),
    (EXAMPLE, "labels: {workload: general}", "labels: {workload: \"gen eral\"}", "spec.pools[1].labels.workload: \"gen eral\" must be"),
    (EXAMPLE, "labels: {workload: general}", "labels: {node-role.kubernetes.io/worker: \"\"}", "spec.pools[1].labels.node-role.kubernetes.io/worker: \"node-role.kubernetes.io/worker\" is in a kubernetes.io/k8s.io namespace"),
    (EXAMPLE, "labels: {workload: general}", "labels: {kubeboot.io/pool: other}", "spec.pools[1].labels.kubeboot.io/pool: \"kubeboot.io/pool\" is in the kubeboot.io namespace, which kubeboot sets itself"),
    (EXAMPLE, "labels: {workload: general}", "labels: {topology.kubernetes.io/zone: \"1\"}", "spec.pools[1].labels.topology.kubernetes.io/zone: \"topology.kubernetes.io/zone\" is set by the kubelet, kubeboot or the cloud provider"),
    // Provider rules.
    (EXAMPLE, "  network:", "  controlPlaneEndpoint: api.example.com:6443\n  network:", "spec.controlPlaneEndpoint: is derived on Azure"),
    (EXAMPLE, "  network:", "  initNode: demo-master-0\n  network:", "spec.initNode: is not used on Azure"),
    (PLAIN, "  controlPlaneEndpoint: 192.168.122.10:6443\n", "", "spec.controlPlaneEndpoint: is required without spec.azure"),
    (PLAIN, "192.168.122.10:6443", "192.168.122.10", "spec.controlPlaneEndpoint: \"192.168.122.10\" needs a port"),
    (PLAIN, "  initNode: local-master-0\n", "", "spec.initNode: is required without spec.azure"),
    (PLAIN, "initNode: local-master-0", "initNode: Local_Master", "spec.initNode: \"Local_Master\" is not a valid node name"),
    (PLAIN, "      count: 1\n", "      count: 1\n      vmSize: Standard_D2s_v5\n", "spec.pools[0].vmSize: only applies with spec.azure"),
    (PLAIN, "    podCIDR", "    vnetCIDR: 10.240.0.0/16\n    podCIDR", "spec.network.vnetCIDR: only applies with spec.azure"),
    (PLAIN, "      count: 2\n", "      count: 2\n      zones: [\"1\"]\n", "spec.pools[1].zones: only applies with spec.azure"),
    (PLAIN, "      count: 2\n", "      count: 2\n      autoscaling: {min: 1, max: 3}\n", "spec.pools[1].autoscaling: only applies with spec.azure"),
    (PLAIN, "  network:", "  addons: {azureDisk: {skuName: Premium_LRS}}\n  network:", "spec.addons.azureDisk: only applies with spec.azure"),
    (EXAMPLE, "  network:", "  addons: {azureDisk: {skuName: UltraSSD_LRS}}\n  network:", "spec.addons.azureDisk.skuName: unknown variant"),
    (EXAMPLE, "store: local", "store: local\n  apiServer:\n    extraArgs: {authorization-mode: AlwaysAllow}", "spec.apiServer.extraArgs"),
    (EXAMPLE, "store: local", "store: local\n  apiServer:\n    extraArgs: {tls-min-version: VersionTLS10}", "spec.apiServer.extraArgs.tls-min-version: is managed by kubeboot"),
    (EXAMPLE, "store: local", "store: local\n  apiServer:\n    extraArgs: {authorization-config: /etc/authz.yaml}", "spec.apiServer.extraArgs.authorization-config: is managed by kubeboot"),
];

#[test]
fn every_bad_spec_fails_with_its_one_line_error_and_writes_nothing() {
    assert!(CASES.len() >= 25);
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (i, (base, from, to, expected)) in CASES.iter().enumerate() {
        assert!(
            base.contains(from),
            "case {i}: {from:?} is not in the base spec"
        );
        let spec = dir.path().join(format!("spec-{i}.yaml"));
        std::fs::write(&spec, base.replacen(from, to, 1)).unwrap();
        let out = dir.path().join(format!("out-{i}"));
        let o = gen_render(&spec, &out);
        let err = stderr(&o);
        let found = err.lines().any(|l| {
            l.strip_prefix("error: ")
                .is_some_and(|l| l.starts_with(expected))
        });
        let echoed = err.contains("s3cret-pw");
        if o.status.code() != Some(2) || !found || out.exists() || echoed {
            failures.push(format!(
                "case {i} ({expected}): status {:?}, out written: {}, credential echoed: {echoed}, stderr:\n{err}",
                o.status.code(),
                out.exists()
            ));
        }
        // Every diagnostic is one line naming a field.
        for line in err.lines() {
            assert!(
                line.starts_with("error: ") || line.starts_with("warning: "),
                "case {i}: stray output line {line:?}"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `kubeboot-gen validate` of a spec text: its exit code and stderr.
fn validate(text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.yaml");
    std::fs::write(&spec, text).unwrap();
    let o = gen(&["validate", "--spec", spec.to_str().unwrap()]);
    (o.status.code(), stderr(&o))
}

/// Each path has its error line, and there is no other line.
fn assert_errors_exactly(err: &str, paths: &[&str]) {
    for path in paths {
        assert!(
            err.contains(&format!("error: {path}")),
            "{path} missing in:\n{err}"
        );
    }
    assert_eq!(err.lines().count(), paths.len(), "{err}");
}

#[test]
fn all_errors_are_reported_not_just_the_first() {
    let text = EXAMPLE
        .replacen("name: demo", "name: Demo", 1)
        .replacen("location: westeurope", "location: West Europe", 1)
        .replacen("zones: [\"1\"]", "zones: [\"7\"]", 1);
    let (code, err) = validate(&text);
    assert_ne!(code, Some(0));
    assert_errors_exactly(
        &err,
        &[
            "metadata.name:",
            "spec.azure.location:",
            "spec.pools[2].zones[0]:",
        ],
    );
}

#[test]
fn every_api_server_problem_is_reported_not_just_the_first() {
    let text = EXAMPLE.replacen(
        "store: local",
        "store: local\n  apiServer:\n    extraArgs: {profiling: \"true\", tls-min-version: VersionTLS10}\n    authorizationModes: [RBAC]",
        1,
    );
    let (code, err) = validate(&text);
    assert_eq!(code, Some(2));
    assert_errors_exactly(
        &err,
        &[
            "spec.apiServer.extraArgs.profiling:",
            "spec.apiServer.extraArgs.tls-min-version:",
            "spec.apiServer.authorizationModes: must include Node",
        ],
    );
}

#[test]
fn every_artifact_problem_is_reported_not_just_the_first() {
    let text = EXAMPLE.replacen(
        "store: local",
        "store: local\n  artifacts:\n    releaseBaseUrl: ftp://mirror.example\n    runc: {version: latest, baseUrl: \"https://user:s3cret-pw@mirror.example/runc\"}",
        1,
    );
    let (code, err) = validate(&text);
    assert_eq!(code, Some(2));
    assert_errors_exactly(
        &err,
        &[
            "spec.artifacts.releaseBaseUrl:",
            "spec.artifacts.runc.baseUrl: must not hold credentials",
            "spec.artifacts.runc.version:",
        ],
    );
    assert!(!err.contains("s3cret-pw"), "{err}");
}

/// An autoscaled pool's labels and taints are scale-set tags: with kubeboot's own 8 and the gpu
/// pool's taint, 41 labels fill Azure's 50; 42 are one too many.
#[test]
fn an_autoscaled_pool_with_more_tags_than_azure_allows_is_refused() {
    let with_labels = |n: usize| {
        let labels: Vec<String> = (0..n).map(|i| format!("l{i}: v")).collect();
        EXAMPLE.replacen(
            "labels: {accelerator: nvidia}",
            &format!("labels: {{{}}}", labels.join(", ")),
            1,
        )
    };
    let (code, err) = validate(&with_labels(41));
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = validate(&with_labels(42));
    assert_eq!(code, Some(2));
    assert_errors_exactly(
        &err,
        &["spec.pools[2].autoscaling: its 42 labels and 1 taints make its scale set carry 51 tags, over Azure's 50"],
    );
}

#[test]
fn a_huge_value_is_not_echoed_whole() {
    let huge = "x".repeat(20 << 20);
    let (code, err) = validate(&EXAMPLE.replacen(
        "labels: {workload: general}",
        &format!("labels: {{workload: {huge}}}"),
        1,
    ));
    assert_eq!(code, Some(2));
    let start = &err[..err.len().min(500)];
    assert!(
        err.starts_with("error: spec.pools[1].labels.workload: \"xxx"),
        "{start}"
    );
    assert!(err.contains("characters left out"), "{start}");
    assert!(err.len() < 2000, "{} bytes of error", err.len());
}

#[test]
fn an_even_master_count_is_a_warning_not_an_error() {
    let (code, err) = validate(&EXAMPLE.replacen("count: 3", "count: 2", 1));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.starts_with("warning: spec.pools[0].count: 2 masters"),
        "{err}"
    );
}

/// Unreadable input is bad input (exit 2) like an invalid spec, and nothing is rendered.
#[test]
fn a_spec_that_is_not_utf8_or_missing_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("latin1.yaml");
    let mut bytes = EXAMPLE.as_bytes().to_vec();
    bytes.extend_from_slice(b"# caf\xe9\n");
    std::fs::write(&spec, &bytes).unwrap();
    let out = dir.path().join("out");
    for o in [
        gen(&["validate", "--spec", spec.to_str().unwrap()]),
        gen_render(&spec, &out),
    ] {
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let expected = format!(
            "error: {}: not UTF-8 text (invalid byte at offset {})\n",
            spec.display(),
            EXAMPLE.len() + 5
        );
        assert_eq!(stderr(&o), expected);
    }
    assert!(!out.exists());
    let missing = gen(&["validate", "--spec", "/nonexistent/spec.yaml"]);
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    assert!(stderr(&missing).starts_with("error: /nonexistent/spec.yaml: "));
}

#[test]
fn validate_reports_errors_and_warnings_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.yaml");
    let json = |text: &str| {
        std::fs::write(&spec, text).unwrap();
        let o = gen(&["validate", "--spec", spec.to_str().unwrap(), "-o", "json"]);
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(report["spec"], spec.to_str().unwrap());
        (o.status.code(), report)
    };
    let (code, report) = json(&EXAMPLE.replacen("name: demo", "name: Demo", 1).replacen(
        "location: westeurope",
        "location: West Europe",
        1,
    ));
    assert_eq!(code, Some(2));
    assert_eq!(report["valid"], false);
    let paths: Vec<&str> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["metadata.name", "spec.azure.location"]);
    let (code, report) = json(&EXAMPLE.replacen("count: 3", "count: 2", 1));
    assert_eq!(code, Some(0));
    assert_eq!(report["valid"], true);
    assert_eq!(report["errors"], serde_json::json!([]));
    assert_eq!(report["warnings"][0]["path"], "spec.pools[0].count");
}
