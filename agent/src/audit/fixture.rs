//! A node tree that passes every check (the shape kubeadm writes with kubeboot's settings), for
//! unit tests that then break one thing at a time.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::root::Root;

pub const APISERVER_FLAGS: &[&str] = &[
    "--authorization-mode=Node,RBAC",
    "--enable-admission-plugins=NodeRestriction,EventRateLimit,DenyServiceExternalIPs",
    "--admission-control-config-file=/etc/kubernetes/admission/config.yaml",
    "--kubelet-client-certificate=/etc/kubernetes/pki/apiserver-kubelet-client.crt",
    "--kubelet-client-key=/etc/kubernetes/pki/apiserver-kubelet-client.key",
    "--profiling=false",
    "--audit-log-path=/var/log/kubernetes/audit/audit.log",
    "--audit-log-maxage=30",
    "--audit-log-maxbackup=10",
    "--audit-log-maxsize=100",
    "--service-account-key-file=/etc/kubernetes/pki/sa.pub",
    "--etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt",
    "--etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key",
    "--etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt",
    "--tls-cert-file=/etc/kubernetes/pki/apiserver.crt",
    "--tls-private-key-file=/etc/kubernetes/pki/apiserver.key",
    "--client-ca-file=/etc/kubernetes/pki/ca.crt",
    "--encryption-provider-config=/etc/kubernetes/encryption/config.yaml",
    "--tls-cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_AES_128_GCM_SHA256",
    "--service-account-extend-token-expiration=false",
];

pub const CONTROLLER_MANAGER_FLAGS: &[&str] = &[
    "--terminated-pod-gc-threshold=1000",
    "--profiling=false",
    "--use-service-account-credentials=true",
    "--service-account-private-key-file=/etc/kubernetes/pki/sa.key",
    "--root-ca-file=/etc/kubernetes/pki/ca.crt",
    "--bind-address=127.0.0.1",
];

pub const SCHEDULER_FLAGS: &[&str] = &["--profiling=false", "--bind-address=127.0.0.1"];

pub const ETCD_FLAGS: &[&str] = &[
    "--data-dir=/var/lib/etcd",
    "--cert-file=/etc/kubernetes/pki/etcd/server.crt",
    "--key-file=/etc/kubernetes/pki/etcd/server.key",
    "--client-cert-auth=true",
    "--peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt",
    "--peer-key-file=/etc/kubernetes/pki/etcd/peer.key",
    "--peer-client-cert-auth=true",
    "--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
];

pub const KUBELET_CONFIG: &str = "\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
readOnlyPort: 0
rotateCertificates: true
podPidsLimit: 4096
seccompDefault: true
tlsCipherSuites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]
";

pub const ENCRYPTION_CONFIG: &str = "\
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
  - secretbox:
      keys:
      - name: key1
        secret: c2VjcmV0IGlzIHNlY3VyZQ==
  - identity: {}
";

pub fn pod(name: &str, flags: &[&str]) -> String {
    let command: Vec<String> = std::iter::once(name.to_string())
        .chain(flags.iter().map(|f| f.to_string()))
        .collect();
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "kube-system"},
        "spec": {"containers": [{"name": name, "image": "registry.k8s.io/x", "command": command}]},
    });
    serde_yaml_ng::to_string(&pod).unwrap()
}

pub fn write(root: &Root, node_path: &str, text: &str, mode: u32) {
    let path = root.path(node_path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, text).unwrap();
    chmod(&path, mode);
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Writes a complete, compliant master tree under `root`.
pub fn master(root: &Root) {
    let manifests = [
        ("kube-apiserver", APISERVER_FLAGS),
        ("kube-controller-manager", CONTROLLER_MANAGER_FLAGS),
        ("kube-scheduler", SCHEDULER_FLAGS),
        ("etcd", ETCD_FLAGS),
    ];
    for (name, flags) in manifests {
        write(
            root,
            &format!("/etc/kubernetes/manifests/{name}.yaml"),
            &pod(name, flags),
            0o600,
        );
    }
    for conf in ["admin", "super-admin", "scheduler", "controller-manager"] {
        write(
            root,
            &format!("/etc/kubernetes/{conf}.conf"),
            "kind: Config\n",
            0o600,
        );
    }
    write(root, "/etc/kubernetes/pki/ca.key", "cluster key", 0o600);
    write(root, "/etc/kubernetes/pki/etcd/ca.crt", "etcd ca", 0o644);
    write(root, "/etc/kubernetes/pki/etcd/ca.key", "etcd key", 0o600);
    write(
        root,
        "/etc/kubernetes/encryption/config.yaml",
        ENCRYPTION_CONFIG,
        0o600,
    );
    fs::create_dir_all(root.path("/var/lib/etcd")).unwrap();
    chmod(&root.path("/var/lib/etcd"), 0o700);
    worker(root);
}

/// Writes a complete, compliant worker tree under `root`.
pub fn worker(root: &Root) {
    write(root, "/etc/kubernetes/pki/ca.crt", "cluster ca", 0o644);
    write(
        root,
        "/etc/kubernetes/kubelet.conf",
        "kind: Config\n",
        0o600,
    );
    write(root, "/var/lib/kubelet/config.yaml", KUBELET_CONFIG, 0o600);
    write(
        root,
        "/var/lib/kubelet/kubeadm-flags.env",
        "KUBELET_KUBEADM_ARGS=\"--node-ip=10.0.0.4\"\n",
        0o600,
    );
    write(
        root,
        "/lib/systemd/system/kubelet.service",
        "[Service]\nExecStart=/usr/bin/kubelet\n",
        0o600,
    );
    write(
        root,
        "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
        "[Service]\n",
        0o600,
    );
}
