//! REAL kubectl (`apply --server-side`) against the stand-in API server, as the agent's addons phase runs it.
//! `.ci/install-deps` installs that kubectl (`kubeboot_stand_ins::test_kubectl`), so a missing one fails this
//! test rather than skipping it: a skipped test would hide that addons were never exercised.
use crate::common;

use common::*;
use kubeboot_test_kit::output::{stderr, stdout};

const ADDONS: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: kube-flannel
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: flannel
  namespace: kube-flannel
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: flannel
rules:
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: flannel
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: flannel
subjects:
- kind: ServiceAccount
  name: flannel
  namespace: kube-flannel
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: kube-flannel-cfg
  namespace: kube-flannel
data:
  net-conf.json: '{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}}'
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-flannel-ds
  namespace: kube-flannel
spec:
  selector:
    matchLabels: {app: flannel}
  template:
    metadata:
      labels: {app: flannel}
    spec:
      serviceAccountName: flannel
      containers:
      - name: kube-flannel
        image: ghcr.io/flannel-io/flannel:v0.26.1
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: cloud-controller-manager:apiserver-authentication-reader
  namespace: kube-system
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: extension-apiserver-authentication-reader
subjects:
- kind: ServiceAccount
  name: cloud-controller-manager
  namespace: kube-system
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: cloud-controller-manager
  namespace: kube-system
spec:
  replicas: 1
  selector:
    matchLabels: {component: cloud-controller-manager}
  template:
    metadata:
      labels: {component: cloud-controller-manager}
    spec:
      containers:
      - name: cloud-controller-manager
        image: mcr.microsoft.com/oss/kubernetes/azure-cloud-controller-manager:v1.34.0
"#;

struct Cluster {
    master: Node,
}

fn cluster() -> Cluster {
    let (_, _, master) = initialised_master();
    Cluster { master }
}

fn apply(c: &Cluster, kubeconfig: &str, dir: &std::path::Path) -> std::process::Output {
    std::process::Command::new(kubeboot_stand_ins::test_kubectl())
        .args([
            "--kubeconfig",
            kubeconfig,
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=kubeboot",
            "-v=8",
            "-f",
        ])
        .arg(dir)
        .env("HOME", c.master.root())
        .output()
        .unwrap()
}

#[test]
fn kubectl_server_side_apply_records_every_object_and_is_idempotent() {
    let c = cluster();
    let dir = c.master.path("/etc/kubeboot/addons");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("addons.yaml"), ADDONS).unwrap();
    let admin = c
        .master
        .path("/etc/kubernetes/admin.conf")
        .display()
        .to_string();
    for round in 0..2 {
        let out = apply(&c, &admin, &dir);
        assert_ok(&out);
        assert_eq!(
            stdout(&out).matches("serverside-applied").count(),
            8,
            "round {round}: {}",
            stdout(&out)
        );
    }
    let objects = c
        .master
        .read_json("/var/lib/stand-ins/kube-apiserver/objects.json");
    for key in [
        "v1/Namespace//kube-flannel",
        "v1/ServiceAccount/kube-flannel/flannel",
        "rbac.authorization.k8s.io/v1/ClusterRole//flannel",
        "rbac.authorization.k8s.io/v1/ClusterRoleBinding//flannel",
        "v1/ConfigMap/kube-flannel/kube-flannel-cfg",
        "apps/v1/DaemonSet/kube-flannel/kube-flannel-ds",
        "rbac.authorization.k8s.io/v1/RoleBinding/kube-system/cloud-controller-manager:apiserver-authentication-reader",
        "apps/v1/Deployment/kube-system/cloud-controller-manager",
    ] {
        assert_eq!(objects[key]["metadata"]["annotations"]["stand-in/field-manager"], "kubeboot", "{key}");
    }
    assert_eq!(
        objects["apps/v1/DaemonSet/kube-flannel/kube-flannel-ds"]["spec"]["template"]["spec"]
            ["containers"][0]["image"],
        "ghcr.io/flannel-io/flannel:v0.26.1"
    );
}

/// Server-side apply with kubectl's default (strict) field validation: a misspelt field deep in a pod
/// template is refused by its path, as the real API server's strict decoder names it, and so is a value
/// of the wrong type; nothing is stored.
#[test]
fn kubectl_apply_is_refused_for_an_unknown_nested_field_or_a_wrong_type() {
    let c = cluster();
    let dir = c.master.path("/etc/kubeboot/addons");
    std::fs::create_dir_all(&dir).unwrap();
    let admin = c
        .master
        .path("/etc/kubernetes/admin.conf")
        .display()
        .to_string();
    let deployment = |extra: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: typo\n  namespace: kube-system\nspec:\n  \
             selector:\n    matchLabels: {{a: b}}\n  template:\n    metadata:\n      labels: {{a: b}}\n    spec:\n      \
             containers:\n      - name: c\n        image: i\n{extra}"
        )
    };
    for (extra, refusal) in [
        (
            "        imagePullPolcy: Always\n",
            "strict decoding error: unknown field \"spec.template.spec.containers[0].imagePullPolcy\"",
        ),
        (
            "        ports:\n        - containerPort: \"80\"\n",
            "spec.template.spec.containers[0].ports[0].containerPort: expected integer",
        ),
    ] {
        std::fs::write(dir.join("typo.yaml"), deployment(extra)).unwrap();
        let out = apply(&c, &admin, &dir);
        assert!(!out.status.success(), "{}", stdout(&out));
        assert!(stderr(&out).contains(refusal), "{}", stderr(&out));
    }
    let objects = c
        .master
        .read_json("/var/lib/stand-ins/kube-apiserver/objects.json");
    assert!(objects.get("apps/v1/Deployment/kube-system/typo").is_none());
    // The same object without the faults is applied.
    std::fs::write(dir.join("typo.yaml"), deployment("")).unwrap();
    assert_ok(&apply(&c, &admin, &dir));
}

#[test]
fn kubectl_is_refused_without_a_cluster_client_certificate_and_in_a_missing_namespace() {
    let c = cluster();
    let dir = c.master.path("/etc/kubeboot/addons");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: nowhere\ndata: {}\n",
    )
    .unwrap();
    let admin = c
        .master
        .path("/etc/kubernetes/admin.conf")
        .display()
        .to_string();
    let out = apply(&c, &admin, &dir);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("namespaces \"nowhere\" not found"),
        "{}",
        stderr(&out)
    );

    // A kubeconfig whose client certificate comes from another CA: TLS client auth fails.
    let other = SharedPki::generate();
    let stranger = Node::with_pki(&other);
    let text = read(std::path::Path::new(&admin));
    let (cert, key) = {
        let ca = kubeboot_stand_ins::pki::Ca::load(
            &stranger.path("/etc/kubernetes/pki/ca.crt"),
            &stranger.path("/etc/kubernetes/pki/ca.key"),
        )
        .unwrap();
        ca.issue(
            &kubeboot_stand_ins::pki::Leaf::client("kubernetes-admin", &["kubeadm:cluster-admins"]),
            "ECDSA-P256",
        )
        .unwrap()
    };
    let kc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let mut kc = kc;
    use base64::Engine;
    kc["users"][0]["user"]["client-certificate-data"] = base64::engine::general_purpose::STANDARD
        .encode(cert)
        .into();
    kc["users"][0]["user"]["client-key-data"] =
        base64::engine::general_purpose::STANDARD.encode(key).into();
    let wrong = c.master.path("/etc/kubernetes/wrong.conf");
    std::fs::write(&wrong, serde_yaml_ng::to_string(&kc).unwrap()).unwrap();
    std::fs::write(
        dir.join("cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: default\ndata: {}\n",
    )
    .unwrap();
    let out = apply(&c, &wrong.display().to_string(), &dir);
    assert!(
        !out.status.success(),
        "a client certificate from another CA must not be accepted"
    );
    let out = apply(&c, &admin, &dir);
    assert_ok(&out);
}
