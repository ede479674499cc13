//! Hardening, end to end with the real binaries: the generator renders a plain-VM cluster, the agent
//! turns a first master and a worker into nodes with the stand-ins on PATH, then
//! - `kubeboot-agent audit` passes every CIS check on what they wrote;
//! - no secret (bootstrap token, CA/SA/etcd/front-proxy keys, SSH key, encryption key) appears in any
//!   log, in any child's recorded argv or environment, or in any file others may read;
//! - a table of bad NodeConfigs is refused with a one-line error, exit 2, and nothing changed.

use crate::support;

use std::path::Path;
use std::process::Command;

use kubeboot_nodeconfig::ApiServer;
use kubeboot_test_kit::output::text;
use kubeboot_test_kit::snapshot;
use serde_yaml_ng::Value;
use support::leaks::{self, Needle};
use support::machine::{Machine, Rendered};

const SPEC: &str = "\
apiVersion: kubeboot.io/v1alpha1
kind: Cluster
metadata: {name: lab}
spec:
  kubernetesVersion: v1.37.1
  controlPlaneEndpoint: 127.0.0.1:6443
  initNode: lab-master-0
  network: {podCIDR: 10.244.0.0/16, serviceCIDR: 10.96.0.0/12}
  pools:
    - {name: master, role: master, count: 1}
    - {name: workers, role: worker, count: 1}
";

/// Every secret of the rendered cluster, read from the generator's secrets directory.
fn cluster_secrets(out: &Path) -> Vec<Needle> {
    let files = [
        "bootstrap-token",
        "ca.key",
        "etcd-ca.key",
        "front-proxy-ca.key",
        "sa.key",
        "id_rsa",
        "encryption-key",
    ];
    files
        .iter()
        .map(|f| {
            Needle::new(
                f,
                &std::fs::read_to_string(out.join("secrets").join(f)).unwrap(),
            )
        })
        .collect()
}

#[test]
fn first_master_and_worker_pass_the_audit_and_leak_no_secret() {
    let cluster = Rendered::new(SPEC);
    let out = cluster.out();
    let mut logs = vec![("kubeboot-gen render".to_string(), cluster.output.clone())];

    let master = Machine::new("lab-master-0", &cluster.node_yaml("master"));
    let worker = Machine::new("lab-workers-0", &cluster.node_yaml("workers"));
    // A dry run first: it prints what it would write (private files by size only).
    for (name, machine) in [("master", &master), ("worker", &worker)] {
        let dry_run = machine.agent(&["run", "--dry-run"]);
        assert!(dry_run.status.success(), "{name}: {}", text(&dry_run));
        assert!(
            String::from_utf8_lossy(&dry_run.stdout).contains("/etc/kubeboot/kubeadm.yaml (0600, "),
            "{name}: {}",
            text(&dry_run)
        );
        logs.push((format!("{name}: agent run --dry-run"), dry_run));
    }
    let run = master.agent(&["run"]);
    assert!(run.status.success(), "master: {}", text(&run));
    logs.push(("master: agent run".into(), run));
    let run = worker.agent(&["run"]);
    assert!(run.status.success(), "worker: {}", text(&run));
    logs.push(("worker: agent run".into(), run));

    for (name, machine, role) in [("master", &master, "master"), ("worker", &worker, "worker")] {
        let audit = machine.agent(&["audit", "--output", "json"]);
        let report: serde_json::Value = serde_json::from_slice(&audit.stdout)
            .unwrap_or_else(|e| panic!("{name}: {e}: {}", text(&audit)));
        let failed: Vec<_> = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["status"] == "fail")
            .collect();
        assert!(failed.is_empty(), "{name}: {failed:#?}");
        assert_eq!(audit.status.code(), Some(0), "{name}: {}", text(&audit));
        assert_eq!(report["role"], role);
        // The control-plane items apply (and pass) on the master only.
        let applicable = report["passed"].as_u64().unwrap();
        assert!(
            if role == "master" {
                applicable >= 80
            } else {
                (20..40).contains(&applicable)
            },
            "{name}: {applicable} passed"
        );
        logs.push((format!("{name}: audit"), audit));
    }

    // Secrets hygiene.
    let needles = cluster_secrets(&out);
    let mut hits = Vec::new();
    for (name, output) in &logs {
        hits.extend(leaks::scan(
            &needles,
            &format!("{name} stdout"),
            &output.stdout,
        ));
        hits.extend(leaks::scan(
            &needles,
            &format!("{name} stderr"),
            &output.stderr,
        ));
    }
    for machine in [&master, &worker] {
        let calls = machine.node("/var/log/stand-ins/calls.jsonl");
        let recorded = std::fs::read(&calls).unwrap();
        assert!(!recorded.is_empty(), "the stand-ins recorded no call");
        hits.extend(leaks::scan(
            &needles,
            &calls.display().to_string(),
            &recorded,
        ));
        hits.extend(leaks::scan_tree(&needles, machine.root()));
    }
    hits.extend(leaks::scan_tree(&needles, &out));
    assert!(hits.is_empty(), "secrets leaked: {hits:#?}");
    // The secrets are where they belong, so the scan was looking at the right values.
    let kubeadm_config = std::fs::read(master.node("/etc/kubeboot/kubeadm.yaml")).unwrap();
    assert!(!leaks::scan(&needles, "kubeadm.yaml (0600)", &kubeadm_config).is_empty());

    // Every flag the master's API server runs with was set by kubeboot or kubeadm, so extraArgs
    // may set none of them: the refused list is checked against what is actually written.
    let manifest =
        std::fs::read_to_string(master.node("/etc/kubernetes/manifests/kube-apiserver.yaml"))
            .unwrap();
    let flags = api_server_flags(&manifest);
    assert!(flags.len() >= 30, "too few flags: {flags:?}");
    let overridable: Vec<&(String, String)> = flags
        .iter()
        .filter(|(name, value)| {
            let api = ApiServer {
                extra_args: [(name.clone(), value.clone())].into(),
                ..ApiServer::default()
            };
            api.validate("apiServer").is_ok()
        })
        .collect();
    assert!(
        overridable.is_empty(),
        "extraArgs may override flags kubeboot or kubeadm set: {overridable:?}"
    );
}

/// `--name=value` arguments of the kube-apiserver static pod's command.
fn api_server_flags(manifest: &str) -> Vec<(String, String)> {
    let pod: Value = serde_yaml_ng::from_str(manifest).unwrap();
    pod["spec"]["containers"][0]["command"]
        .as_sequence()
        .expect("the API server pod has a command")
        .iter()
        .filter_map(|arg| arg.as_str()?.strip_prefix("--"))
        .map(|flag| {
            let (name, value) = flag.split_once('=').unwrap_or((flag, ""));
            (name.to_string(), value.to_string())
        })
        .collect()
}

const MASTER: &str = include_str!("../../../nodeconfig/tests/corpus/master.yaml");
const WORKER: &str = include_str!("../../../nodeconfig/tests/corpus/worker.yaml");

fn set(doc: &str, path: &str, value: Option<&str>) -> String {
    let mut tree: Value = serde_yaml_ng::from_str(doc).unwrap();
    let mut keys: Vec<&str> = path.split('.').collect();
    let last = keys.pop().unwrap();
    let parent = keys
        .iter()
        .fold(&mut tree, |v, k| match k.parse::<usize>() {
            Ok(i) => &mut v[i],
            Err(_) => &mut v[*k],
        });
    match (value, parent) {
        (Some(v), Value::Sequence(seq)) => {
            seq[last.parse::<usize>().unwrap()] = serde_yaml_ng::from_str(v).unwrap()
        }
        (Some(v), parent) => parent[last] = serde_yaml_ng::from_str(v).unwrap(),
        (None, Value::Mapping(map)) => {
            map.remove(last).expect("the key to remove exists");
        }
        (None, _) => panic!("{path}: cannot remove from a non-mapping"),
    }
    serde_yaml_ng::to_string(&tree).unwrap()
}

/// PEM framing around a body that is base64 but no certificate.
const GARBAGE_CERTIFICATE: &str =
    "\"-----BEGIN CERTIFICATE-----\\nAAAAAAAA\\n-----END CERTIFICATE-----\\n\"";

/// (what is wrong, the document, the field path its error must name)
fn table() -> Vec<(&'static str, String, &'static str)> {
    let m = |path, value| set(MASTER, path, value);
    let w = |path, value| set(WORKER, path, value);
    let master: Value = serde_yaml_ng::from_str(MASTER).unwrap();
    let huge = "x".repeat(20 << 20);
    let key_as_yaml = serde_yaml_ng::to_string(&master["pki"]["etcdCA"]["private"]).unwrap();
    vec![
        ("empty file", String::new(), "(document)"),
        ("not YAML", "cluster: [unclosed".into(), "(document)"),
        ("a list, not a mapping", "- a\n- b\n".into(), "(document)"),
        ("unknown apiVersion", m("apiVersion", Some("kubeboot.io/v2")), "apiVersion"),
        ("missing apiVersion", m("apiVersion", None), "apiVersion"),
        ("wrong kind", m("kind", Some("Cluster")), "kind"),
        ("missing cluster name", m("cluster.name", None), "cluster"),
        ("bad cluster name", m("cluster.name", Some("Demo_Cluster")), "cluster.name"),
        ("unknown field", m("cluster.colour", Some("blue")), "cluster"),
        ("wrong role", m("node.role", Some("boss")), "node.role"),
        ("missing role", w("node.role", None), "node"),
        ("endpoint without port", m("cluster.controlPlaneEndpoint", Some("api.example.com")), "cluster.controlPlaneEndpoint"),
        ("endpoint with a bad port", w("cluster.controlPlaneEndpoint", Some("10.0.0.1:99999")), "cluster.controlPlaneEndpoint"),
        ("unsupported version", m("cluster.kubernetesVersion", Some("v1.30.0")), "cluster.kubernetesVersion"),
        ("malformed version", m("cluster.kubernetesVersion", Some("1.36")), "cluster.kubernetesVersion"),
        ("bad pod CIDR", m("cluster.podCIDR", Some("10.244.0.0/33")), "cluster.podCIDR"),
        ("an IPv6 pod range", m("cluster.podCIDR", Some("fd00:10:244::/56")), "cluster.podCIDR: \"fd00:10:244::/56\" is IPv6"),
        ("a dual-stack service range", m("cluster.serviceCIDR", Some("'10.96.0.0/12,fd00:10:96::/112'")), "cluster.serviceCIDR: \"10.96.0.0/12,fd00:10:96::/112\" is dual-stack"),
        ("a tab for indentation", MASTER.replacen("\n  name: demo\n", "\n\tname: demo\n", 1), "line 4 is indented with a tab"),
        ("a 20 MB value", m("cluster.name", Some(huge.as_str())), "cluster.name: \"xxxx"),
        ("overlapping service CIDR", m("cluster.serviceCIDR", Some("10.244.128.0/20")), "cluster.serviceCIDR"),
        ("token of the wrong shape", m("bootstrap.token", Some("ABCDEF.0123456789abcdef")), "bootstrap.token"),
        ("token without a dot", w("bootstrap.token", Some("abcdef0123456789abcdef")), "bootstrap.token"),
        ("malformed CA pin", w("bootstrap.caCertHashes.0", Some("sha256:xyz")), "bootstrap.caCertHashes[0]"),
        ("no CA pin", w("bootstrap.caCertHashes", Some("[]")), "bootstrap.caCertHashes"),
        ("malformed PEM", m("pki.ca.private", Some("not a key")), "pki.ca.private"),
        ("malformed certificate", m("pki.etcdCA.public", Some("'-----BEGIN CERT'")), "pki.etcdCA.public"),
        ("master without PKI", m("pki", None), "pki"),
        ("worker with PKI", w("pki", Some("{ca: {public: x, private: y}, frontProxyCA: {public: x, private: y}, etcdCA: {public: x, private: y}, serviceAccount: {public: x, private: y}}")), "pki"),
        ("short encryption key", m("pki.encryptionKey", Some("c2hvcnQ=")), "pki.encryptionKey"),
        ("azure without its section", m("provider.azure", None), "provider.azure"),
        ("the autoscaler without Azure", w("addons", Some("{clusterAutoscaler: true}")), "addons.clusterAutoscaler: only allowed when provider.name is azure"),
        ("bad label", w("node.labels", Some("{'bad key!': x}")), "node.labels"),
        ("bad taint", w("node.taints.0", Some("no-effect")), "node.taints[0]"),
        ("managed API server flag", m("apiServer.extraArgs", Some("{authorization-mode: AlwaysAllow}")), "apiServer.extraArgs.authorization-mode"),
        ("TLS 1.0 through extraArgs", m("apiServer.extraArgs", Some("{tls-min-version: VersionTLS10}")), "apiServer.extraArgs.tls-min-version"),
        ("an authorization config beside the modes", m("apiServer.extraArgs", Some("{authorization-config: /etc/authz.yaml}")), "apiServer.extraArgs.authorization-config"),
        ("AlwaysAllow authorization", m("apiServer.authorizationModes", Some("[Node, RBAC, AlwaysAllow]")), "apiServer.authorizationModes[2]"),
        ("plain-http OIDC issuer", m("apiServer.oidc.issuerURL", Some("http://login.example.com")), "apiServer.oidc.issuerURL"),
        ("credentials in the OIDC issuer", m("apiServer.oidc.issuerURL", Some("'https://user:s3cret-pw@login.example.com'")), "apiServer.oidc.issuerURL"),
        ("credentials in the release mirror", w("artifacts", Some("{releaseBaseUrl: 'https://user:s3cret-pw@mirror.example'}")), "artifacts.releaseBaseUrl"),
        ("credentials in a tool's mirror", w("artifacts", Some("{crictl: {version: v1.35.0, baseUrl: 'https://s3cret-pw@mirror.example/crictl'}}")), "artifacts.crictl.baseUrl"),
        // The generator's rules, applied by the agent too (one contract, one set of rules).
        ("a role label the kubelet may not set", w("node.labels", Some("{node-role.kubernetes.io/worker: ''}")), "node.labels.node-role.kubernetes.io/worker"),
        ("a label kubeboot sets itself", w("node.labels", Some("{kubeboot.io/pool: other}")), "node.labels.kubeboot.io/pool"),
        ("a label the kubelet sets itself", w("node.labels", Some("{kubernetes.io/hostname: other}")), "node.labels.kubernetes.io/hostname"),
        ("an ftp mirror", w("artifacts", Some("{releaseBaseUrl: 'ftp://mirror.example'}")), "artifacts.releaseBaseUrl"),
        ("an ftp tool mirror", w("artifacts", Some("{crictl: {version: v1.34.0, baseUrl: 'ftp://mirror.example'}}")), "artifacts.crictl.baseUrl"),
        ("a DNS domain that is not a DNS name", m("cluster.dnsDomain", Some("Cluster_Local")), "cluster.dnsDomain"),
        ("a token TTL that is not a duration", m("bootstrap.tokenTtl", Some("forever")), "bootstrap.tokenTtl"),
        ("a token that never expires", m("bootstrap.tokenTtl", Some("'0'")), "bootstrap.tokenTtl"),
        ("a certificate with a garbage body", m("pki.ca.public", Some(GARBAGE_CERTIFICATE)), "pki.ca.public"),
        ("a private key with a garbage body", m("pki.frontProxyCA.private", Some("\"-----BEGIN PRIVATE KEY-----\\nAAAAAAAA\\n-----END PRIVATE KEY-----\\n\"")), "pki.frontProxyCA.private"),
        ("a public key with a garbage body", m("pki.serviceAccount.public", Some("\"-----BEGIN PUBLIC KEY-----\\nAAAAAAAA\\n-----END PUBLIC KEY-----\\n\"")), "pki.serviceAccount.public"),
        ("a key where the certificate belongs", m("pki.etcdCA.public", Some(key_as_yaml.as_str())), "pki.etcdCA.public"),
        ("an OIDC CA with a garbage body", m("apiServer.oidc.caPEM", Some(GARBAGE_CERTIFICATE)), "apiServer.oidc.caPEM"),
    ]
}

#[test]
fn every_bad_node_config_is_refused_without_touching_the_node() {
    let agent = env!("CARGO_BIN_EXE_kubeboot-agent");
    let empty_path = tempfile::tempdir().unwrap();
    for (what, doc, field) in table() {
        let root = tempfile::tempdir().unwrap();
        let config = root.path().join("etc/kubeboot/node.yaml");
        std::fs::create_dir_all(config.parent().unwrap()).unwrap();
        std::fs::write(&config, &doc).unwrap();
        let before = snapshot::take(root.path());
        // No program is reachable: a bad config must fail before the agent runs anything.
        let out = Command::new(agent)
            .args(["run", "--root"])
            .arg(root.path())
            .arg("--config")
            .arg(&config)
            .env("PATH", empty_path.path())
            .env_remove("INVOCATION_ID")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{what}: exit status; stderr: {stderr}"
        );
        assert_eq!(
            lines.len(),
            1,
            "{what}: not one line: {}",
            &stderr[..stderr.len().min(2000)]
        );
        assert!(
            lines[0].len() < 2000,
            "{what}: a {}-byte error",
            lines[0].len()
        );
        assert!(
            !stderr.contains("s3cret-pw"),
            "{what}: the credential is echoed: {stderr}"
        );
        assert!(
            lines[0].contains(field),
            "{what}: {:?} does not name {field}",
            lines[0]
        );
        assert_eq!(
            snapshot::take(root.path()),
            before,
            "{what}: the node changed"
        );
    }
}
