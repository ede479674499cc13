//! Every check can fail: starting from a compliant tree, each mutation must fail exactly its item.

use std::os::unix::fs::chown;

use kubeboot_nodeconfig::Role;

use super::fixture::{self, pod};
use super::{run, Node, Status};
use crate::root::Root;

fn tree(role: Role) -> (tempfile::TempDir, Root) {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::new(dir.path());
    match role {
        Role::Master => fixture::master(&root),
        Role::Worker => fixture::worker(&root),
    }
    (dir, root)
}

fn failed(root: &Root, role: Role) -> Vec<&'static str> {
    let report = run(&Node::new(root.clone()).unwrap(), role);
    report
        .checks
        .iter()
        .filter(|f| f.status == Status::Fail)
        .map(|f| f.id)
        .collect()
}

/// Rewrites one static pod manifest with `flag` replaced (`Some`) or removed (`None`).
fn set_flag(root: &Root, component: &str, flag: &str, value: Option<&str>) {
    let base = match component {
        "kube-apiserver" => fixture::APISERVER_FLAGS,
        "kube-controller-manager" => fixture::CONTROLLER_MANAGER_FLAGS,
        "kube-scheduler" => fixture::SCHEDULER_FLAGS,
        _ => fixture::ETCD_FLAGS,
    };
    let prefix = format!("--{flag}=");
    let mut flags: Vec<String> = base
        .iter()
        .filter(|f| !f.starts_with(&prefix))
        .map(|f| f.to_string())
        .collect();
    if let Some(v) = value {
        flags.push(format!("{prefix}{v}"));
    }
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let path = format!("/etc/kubernetes/manifests/{component}.yaml");
    fixture::write(root, &path, &pod(component, &flags), 0o600);
}

/// Rewrites the kubelet config with a top-level key replaced (`Some`, YAML) or removed.
fn set_kubelet(root: &Root, key: &str, value: Option<&str>) {
    let mut config: serde_yaml_ng::Mapping =
        serde_yaml_ng::from_str(fixture::KUBELET_CONFIG).unwrap();
    match value {
        Some(v) => config.insert(key.into(), serde_yaml_ng::from_str(v).unwrap()),
        None => config.remove(key),
    };
    fixture::write(
        root,
        "/var/lib/kubelet/config.yaml",
        &serde_yaml_ng::to_string(&config).unwrap(),
        0o600,
    );
}

fn chmod(root: &Root, path: &str, mode: u32) {
    fixture::chmod(&root.path(path), mode);
}

fn give_away(root: &Root, path: &str) {
    // 65534 is "nobody": any owner but the expected one.
    chown(root.path(path), Some(65534), Some(65534)).expect("tests run as root (see .ci/run)");
}

type Mutation = fn(&Root);

const MASTER_CASES: &[(&str, Mutation)] = &[
    ("1.1.1", |r| {
        chmod(r, "/etc/kubernetes/manifests/kube-apiserver.yaml", 0o644)
    }),
    ("1.1.2", |r| {
        give_away(r, "/etc/kubernetes/manifests/kube-apiserver.yaml")
    }),
    ("1.1.3", |r| {
        chmod(
            r,
            "/etc/kubernetes/manifests/kube-controller-manager.yaml",
            0o640,
        )
    }),
    ("1.1.4", |r| {
        give_away(r, "/etc/kubernetes/manifests/kube-controller-manager.yaml")
    }),
    ("1.1.5", |r| {
        chmod(r, "/etc/kubernetes/manifests/kube-scheduler.yaml", 0o604)
    }),
    ("1.1.6", |r| {
        give_away(r, "/etc/kubernetes/manifests/kube-scheduler.yaml")
    }),
    ("1.1.7", |r| {
        chmod(r, "/etc/kubernetes/manifests/etcd.yaml", 0o700)
    }),
    ("1.1.8", |r| {
        give_away(r, "/etc/kubernetes/manifests/etcd.yaml")
    }),
    ("1.1.11", |r| chmod(r, "/var/lib/etcd", 0o750)),
    ("1.1.13", |r| {
        chmod(r, "/etc/kubernetes/super-admin.conf", 0o644)
    }),
    ("1.1.14", |r| give_away(r, "/etc/kubernetes/admin.conf")),
    ("1.1.15", |r| {
        chmod(r, "/etc/kubernetes/scheduler.conf", 0o644)
    }),
    ("1.1.16", |r| give_away(r, "/etc/kubernetes/scheduler.conf")),
    ("1.1.17", |r| {
        chmod(r, "/etc/kubernetes/controller-manager.conf", 0o660)
    }),
    ("1.1.18", |r| {
        give_away(r, "/etc/kubernetes/controller-manager.conf")
    }),
    ("1.1.19", |r| give_away(r, "/etc/kubernetes/pki/etcd")),
    ("1.1.20", |r| {
        chmod(r, "/etc/kubernetes/pki/etcd/ca.crt", 0o664)
    }),
    ("1.1.21", |r| {
        chmod(r, "/etc/kubernetes/pki/etcd/ca.key", 0o640)
    }),
    ("1.2.2", |r| {
        set_flag(
            r,
            "kube-apiserver",
            "token-auth-file",
            Some("/etc/tokens.csv"),
        )
    }),
    ("1.2.3", |r| {
        set_flag(
            r,
            "kube-apiserver",
            "enable-admission-plugins",
            Some("NodeRestriction,EventRateLimit"),
        )
    }),
    ("1.2.4", |r| {
        set_flag(r, "kube-apiserver", "kubelet-client-key", None)
    }),
    ("1.2.9", |r| {
        set_flag(
            r,
            "kube-apiserver",
            "enable-admission-plugins",
            Some("NodeRestriction,DenyServiceExternalIPs"),
        )
    }),
    ("1.2.10", |r| {
        set_flag(
            r,
            "kube-apiserver",
            "enable-admission-plugins",
            Some("NodeRestriction,EventRateLimit,DenyServiceExternalIPs,AlwaysAdmit"),
        )
    }),
    ("1.2.12", |r| {
        set_flag(
            r,
            "kube-apiserver",
            "disable-admission-plugins",
            Some("ServiceAccount"),
        )
    }),
    ("1.2.13", |r| {
        set_flag(
            r,
            "kube-apiserver",
            "disable-admission-plugins",
            Some("DefaultStorageClass,NamespaceLifecycle"),
        )
    }),
    ("1.2.14", |r| {
        set_flag(
            r,
            "kube-apiserver",
            "enable-admission-plugins",
            Some("EventRateLimit,DenyServiceExternalIPs"),
        )
    }),
    ("1.2.15", |r| {
        set_flag(r, "kube-apiserver", "profiling", None)
    }),
    ("1.2.16", |r| {
        set_flag(r, "kube-apiserver", "audit-log-path", None)
    }),
    ("1.2.17", |r| {
        set_flag(r, "kube-apiserver", "audit-log-maxage", Some("7"))
    }),
    ("1.2.18", |r| {
        set_flag(r, "kube-apiserver", "audit-log-maxbackup", Some("x"))
    }),
    ("1.2.19", |r| {
        set_flag(r, "kube-apiserver", "audit-log-maxsize", None)
    }),
    ("1.2.21", |r| {
        set_flag(r, "kube-apiserver", "service-account-lookup", Some("false"))
    }),
    ("1.2.22", |r| {
        set_flag(r, "kube-apiserver", "service-account-key-file", Some(""))
    }),
    ("1.2.23", |r| {
        set_flag(r, "kube-apiserver", "etcd-certfile", None)
    }),
    ("1.2.24", |r| {
        set_flag(r, "kube-apiserver", "tls-private-key-file", None)
    }),
    ("1.2.26", |r| {
        set_flag(r, "kube-apiserver", "etcd-cafile", None)
    }),
    ("1.2.28", |r| {
        fixture::write(
            r,
            "/etc/kubernetes/encryption/config.yaml",
            &fixture::ENCRYPTION_CONFIG.replace("- secretbox:", "- identity: {}\n  - secretbox:"),
            0o600,
        )
    }),
    ("1.2.29", |r| {
        set_flag(
            r,
            "kube-apiserver",
            "tls-cipher-suites",
            Some("TLS_AES_128_GCM_SHA256,TLS_RSA_WITH_RC4_128_SHA"),
        )
    }),
    ("1.2.30", |r| {
        set_flag(
            r,
            "kube-apiserver",
            "service-account-extend-token-expiration",
            None,
        )
    }),
    ("1.3.1", |r| {
        set_flag(
            r,
            "kube-controller-manager",
            "terminated-pod-gc-threshold",
            None,
        )
    }),
    ("1.3.2", |r| {
        set_flag(r, "kube-controller-manager", "profiling", Some("true"))
    }),
    ("1.3.3", |r| {
        set_flag(
            r,
            "kube-controller-manager",
            "use-service-account-credentials",
            Some("false"),
        )
    }),
    ("1.3.4", |r| {
        set_flag(
            r,
            "kube-controller-manager",
            "service-account-private-key-file",
            None,
        )
    }),
    ("1.3.5", |r| {
        set_flag(r, "kube-controller-manager", "root-ca-file", None)
    }),
    ("1.3.6", |r| {
        set_flag(
            r,
            "kube-controller-manager",
            "feature-gates",
            Some("A=true,RotateKubeletServerCertificate=false"),
        )
    }),
    ("1.3.7", |r| {
        set_flag(
            r,
            "kube-controller-manager",
            "bind-address",
            Some("0.0.0.0"),
        )
    }),
    ("1.4.1", |r| {
        set_flag(r, "kube-scheduler", "profiling", Some("true"))
    }),
    ("1.4.2", |r| {
        set_flag(r, "kube-scheduler", "bind-address", Some("0.0.0.0"))
    }),
    ("2.1", |r| set_flag(r, "etcd", "key-file", None)),
    ("2.2", |r| {
        set_flag(r, "etcd", "client-cert-auth", Some("false"))
    }),
    ("2.3", |r| set_flag(r, "etcd", "auto-tls", Some("true"))),
    ("2.4", |r| set_flag(r, "etcd", "peer-cert-file", None)),
    ("2.5", |r| {
        set_flag(r, "etcd", "peer-client-cert-auth", None)
    }),
    ("2.6", |r| {
        set_flag(r, "etcd", "peer-auto-tls", Some("true"))
    }),
    ("2.7", |r| {
        set_flag(
            r,
            "etcd",
            "trusted-ca-file",
            Some("/etc/kubernetes/pki/ca.crt"),
        )
    }),
];

/// Cases that make more than one item fail, with every item they must fail.
const MASTER_MULTI_CASES: &[(&[&str], Mutation)] = &[
    (&["1.2.6", "1.2.7", "1.2.8"], |r| {
        set_flag(
            r,
            "kube-apiserver",
            "authorization-mode",
            Some("AlwaysAllow"),
        )
    }),
    (&["1.2.25", "2.7"], |r| {
        set_flag(r, "kube-apiserver", "client-ca-file", None)
    }),
    (&["1.2.27", "1.2.28"], |r| {
        set_flag(r, "kube-apiserver", "encryption-provider-config", None)
    }),
];

const NODE_CASES: &[(&str, Mutation)] = &[
    ("4.1.1", |r| {
        chmod(
            r,
            "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
            0o644,
        )
    }),
    ("4.1.2", |r| {
        give_away(r, "/lib/systemd/system/kubelet.service")
    }),
    ("4.1.3", |r| {
        fixture::write(r, "/etc/kubernetes/proxy.conf", "kind: Config\n", 0o644)
    }),
    ("4.1.4", |r| {
        fixture::write(r, "/etc/kubernetes/proxy.conf", "kind: Config\n", 0o600);
        give_away(r, "/etc/kubernetes/proxy.conf");
    }),
    ("4.1.5", |r| chmod(r, "/etc/kubernetes/kubelet.conf", 0o644)),
    ("4.1.6", |r| give_away(r, "/etc/kubernetes/kubelet.conf")),
    ("4.1.7", |r| chmod(r, "/etc/kubernetes/pki/ca.crt", 0o666)),
    ("4.1.8", |r| give_away(r, "/etc/kubernetes/pki/ca.crt")),
    ("4.1.9", |r| chmod(r, "/var/lib/kubelet/config.yaml", 0o644)),
    ("4.1.10", |r| give_away(r, "/var/lib/kubelet/config.yaml")),
    ("4.2.1", |r| {
        set_kubelet(
            r,
            "authentication",
            Some("{anonymous: {enabled: true}, x509: {clientCAFile: /etc/kubernetes/pki/ca.crt}}"),
        )
    }),
    ("4.2.2", |r| {
        set_kubelet(r, "authorization", Some("{mode: AlwaysAllow}"))
    }),
    ("4.2.3", |r| {
        set_kubelet(
            r,
            "authentication",
            Some("{anonymous: {enabled: false}, x509: {clientCAFile: ''}}"),
        )
    }),
    ("4.2.4", |r| set_kubelet(r, "readOnlyPort", None)),
    ("4.2.5", |r| {
        set_kubelet(r, "streamingConnectionIdleTimeout", Some("0s"))
    }),
    ("4.2.6", |r| {
        set_kubelet(r, "makeIPTablesUtilChains", Some("false"))
    }),
    ("4.2.8", |r| set_kubelet(r, "eventRecordQPS", Some("-1"))),
    ("4.2.10", |r| {
        set_kubelet(r, "rotateCertificates", Some("false"))
    }),
    ("4.2.11", |r| {
        set_kubelet(
            r,
            "featureGates",
            Some("{RotateKubeletServerCertificate: false}"),
        )
    }),
    ("4.2.12", |r| {
        set_kubelet(r, "tlsCipherSuites", Some("[TLS_RSA_WITH_AES_128_CBC_SHA]"))
    }),
    ("4.2.13", |r| set_kubelet(r, "podPidsLimit", None)),
    ("4.2.14", |r| set_kubelet(r, "seccompDefault", None)),
];

#[test]
fn compliant_trees_pass_every_check() {
    for role in [Role::Master, Role::Worker] {
        let (_dir, root) = tree(role);
        let report = run(&Node::new(root).unwrap(), role);
        let bad: Vec<_> = report
            .checks
            .iter()
            .filter(|f| f.status == Status::Fail)
            .collect();
        assert!(bad.is_empty(), "{role:?}: {bad:#?}");
        assert!(report.all_passed());
        let na = report
            .checks
            .iter()
            .filter(|f| f.status == Status::NotApplicable)
            .count();
        assert_eq!(
            na == 0,
            role == Role::Master,
            "{role:?}: {na} not applicable"
        );
    }
}

#[test]
fn each_master_mutation_fails_exactly_its_items() {
    let single = MASTER_CASES
        .iter()
        .map(|(id, m)| (std::slice::from_ref(id), *m));
    for (ids, mutate) in single.chain(MASTER_MULTI_CASES.iter().copied()) {
        let (_dir, root) = tree(Role::Master);
        mutate(&root);
        assert_eq!(
            failed(&root, Role::Master),
            ids.to_vec(),
            "mutation for {ids:?}"
        );
    }
}

#[test]
fn each_node_mutation_fails_its_item_on_both_roles() {
    for role in [Role::Master, Role::Worker] {
        for (id, mutate) in NODE_CASES {
            let (_dir, root) = tree(role);
            mutate(&root);
            let mut failed = failed(&root, role);
            if role == Role::Master {
                // The kubelet's CA is also a PKI file, which 1.1.x audits on masters.
                failed.retain(|f| !f.starts_with("1.1."));
            }
            assert_eq!(failed, vec![*id], "{role:?} mutation for {id}");
        }
    }
}

#[test]
fn every_item_has_a_failing_case() {
    let (_dir, root) = tree(Role::Master);
    let report = run(&Node::new(root).unwrap(), Role::Master);
    let covered: Vec<&str> = MASTER_CASES
        .iter()
        .chain(NODE_CASES)
        .map(|(id, _)| *id)
        .chain(
            MASTER_MULTI_CASES
                .iter()
                .flat_map(|(ids, _)| ids.iter().copied()),
        )
        .collect();
    for finding in &report.checks {
        assert!(
            covered.contains(&finding.id),
            "{} has no failing fixture",
            finding.id
        );
    }
}

#[test]
fn missing_files_fail_and_control_plane_items_do_not_apply_on_workers() {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::new(dir.path());
    let master = run(&Node::new(root.clone()).unwrap(), Role::Master);
    assert_eq!(master.passed + master.failed, master.checks.len());
    assert!(master.find("1.1.1").unwrap().evidence.contains("missing"));
    assert_eq!(master.find("2.2").unwrap().status, Status::Fail);
    let worker = run(&Node::new(root).unwrap(), Role::Worker);
    assert_eq!(worker.find("1.2.15").unwrap().status, Status::NotApplicable);
    assert_eq!(worker.find("4.1.9").unwrap().status, Status::Fail);
    // 4.1.3 is about an optional file: absent is compliant.
    assert_eq!(worker.find("4.1.3").unwrap().status, Status::Pass);
}

/// The audit keeps CIS's own lists (what each benchmark item accepts; they differ from each other
/// and from kubeboot's choice, `policy::TLS_CIPHER_SUITES`), which must pass both.
#[test]
fn the_suites_kubeboot_sets_pass_both_cis_items() {
    for suite in crate::policy::TLS_CIPHER_SUITES {
        assert!(
            super::control_plane::APISERVER_STRONG_CIPHERS.contains(suite),
            "1.2.29: {suite}"
        );
        assert!(
            super::kubelet::KUBELET_STRONG_CIPHERS.contains(suite),
            "4.2.12: {suite}"
        );
    }
}
