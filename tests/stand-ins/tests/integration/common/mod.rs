//! Test fixtures: a node root with the shared PKI kubeboot pre-writes, hand-written kubeadm configs in the
//! shape the agent produces (v1beta4), and helpers to run the stand-in binaries under that root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kubeboot_stand_ins::pki;
use kubeboot_test_kit::fake_root::FakeRoot;
use kubeboot_test_kit::output::{stderr, stdout};
use kubeboot_test_kit::port::free_port;

pub const TOKEN: &str = "abcdef.0123456789abcdef";

pub struct Node {
    fs: FakeRoot,
}

pub fn bin(name: &str) -> PathBuf {
    match name {
        "kubeadm" => PathBuf::from(env!("CARGO_BIN_EXE_kubeadm")),
        "kubelet" => PathBuf::from(env!("CARGO_BIN_EXE_kubelet")),
        "kube-apiserver" => PathBuf::from(env!("CARGO_BIN_EXE_kube-apiserver")),
        "systemctl" => PathBuf::from(env!("CARGO_BIN_EXE_systemctl")),
        "modprobe" => PathBuf::from(env!("CARGO_BIN_EXE_modprobe")),
        other => panic!("no binary {other}"),
    }
}

/// The shared CAs, as kubeboot's generator renders them (self-signed, keys 0600).
pub struct SharedPki {
    pub files: Vec<(String, String, u32)>,
}

impl SharedPki {
    pub fn generate() -> SharedPki {
        let mut files = Vec::new();
        for (name, cn) in [
            ("ca", "kubernetes"),
            ("front-proxy-ca", "front-proxy-ca"),
            ("etcd/ca", "etcd-ca"),
        ] {
            let (cert, key) = pki::generate_ca(cn).unwrap();
            files.push((format!("{name}.crt"), cert, 0o644));
            files.push((format!("{name}.key"), key, 0o600));
        }
        let key = rcgen::KeyPair::generate().unwrap();
        files.push(("sa.key".into(), key.serialize_pem(), 0o600));
        files.push(("sa.pub".into(), key.public_key_pem(), 0o644));
        SharedPki { files }
    }

    pub fn ca_pin(&self) -> String {
        let ca = &self.files.iter().find(|(n, _, _)| n == "ca.crt").unwrap().1;
        pki::ca_pin(&pki::first_cert_der(ca).unwrap()).unwrap()
    }
}

impl Node {
    pub fn new() -> Node {
        let node = Node {
            fs: FakeRoot::new(),
        };
        for unit in ["kubelet.service", "containerd.service"] {
            node.write(
                &format!("/lib/systemd/system/{unit}"),
                "[Service]\nExecStart=/bin/true\n",
                0o644,
            );
        }
        node
    }

    pub fn with_pki(pki: &SharedPki) -> Node {
        let node = Node::new();
        for (name, content, mode) in &pki.files {
            node.write(&format!("/etc/kubernetes/pki/{name}"), content, *mode);
        }
        node
    }

    pub fn root(&self) -> &Path {
        self.fs.root()
    }

    pub fn path(&self, node_path: &str) -> PathBuf {
        self.fs.path(node_path)
    }

    pub fn write(&self, node_path: &str, content: &str, mode: u32) {
        self.fs.write(node_path, content, mode);
    }

    pub fn chmod(&self, node_path: &str, mode: u32) {
        self.fs.chmod(node_path, mode);
    }

    pub fn command(&self, name: &str) -> Command {
        let mut c = Command::new(bin(name));
        let bin_dir = bin("kubeadm").parent().unwrap().to_path_buf();
        let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )))
        .unwrap();
        c.env("STANDIN_ROOT", self.root())
            .env("PATH", path)
            .env_remove("STANDIN_KUBERNETES_VERSION")
            .env_remove("STANDIN_LOG")
            .env_remove("STANDIN_DELAY_MS");
        c
    }

    pub fn run(&self, name: &str, args: &[&str]) -> Output {
        self.command(name).args(args).output().unwrap()
    }

    /// Writes a kubeadm config (0600) and returns its real path.
    pub fn config(&self, text: &str) -> String {
        self.write("/etc/kubeboot/kubeadm.yaml", text, 0o600);
        self.path("/etc/kubeboot/kubeadm.yaml")
            .display()
            .to_string()
    }

    pub fn read_json(&self, node_path: &str) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(self.path(node_path)).unwrap()).unwrap()
    }

    pub fn call_log(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.path("/var/log/stand-ins/calls.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Node {
    /// Never leave an API server running after a test.
    fn drop(&mut self) {
        if self
            .path("/var/lib/stand-ins/kube-apiserver/kube-apiserver.pid")
            .exists()
        {
            let _ = self.run("kubeadm", &["reset", "-f"]);
        }
    }
}

#[track_caller]
pub fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "expected success\nstdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
}

/// Asserts failure with `needle` in stderr.
#[track_caller]
pub fn assert_fails(o: &Output, needle: &str) {
    assert!(
        !o.status.success(),
        "expected failure containing {needle:?}\nstdout: {}",
        stdout(o)
    );
    assert!(
        stderr(o).contains(needle),
        "stderr lacks {needle:?}:\n{}",
        stderr(o)
    );
}

pub fn init_config(port: u16) -> String {
    format!(
        r#"apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: {TOKEN}
  ttl: 24h0m0s
  usages: [signing, authentication]
  groups: [system:bootstrappers:kubeadm:default-node-token]
localAPIEndpoint:
  advertiseAddress: 127.0.0.1
  bindPort: {port}
nodeRegistration:
  name: master-0
  criSocket: unix:///run/containerd/containerd.sock
  kubeletExtraArgs:
  - name: node-labels
    value: kubeboot.io/pool=masters,topology.kubernetes.io/zone=westeurope-1
  - name: provider-id
    value: azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/masters/virtualMachines/0
  - name: cloud-provider
    value: external
  taints:
  - key: node-role.kubernetes.io/control-plane
    effect: NoSchedule
skipPhases: [addon/kube-proxy]
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.35.0
clusterName: kubeboot
controlPlaneEndpoint: 127.0.0.1:{port}
encryptionAlgorithm: ECDSA-P256
networking:
  dnsDomain: cluster.local
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
apiServer:
  certSANs: [kube.example.com]
  extraArgs:
  - name: profiling
    value: "false"
  - name: audit-log-path
    value: /var/log/kubernetes/audit.log
controllerManager:
  extraArgs:
  - name: cloud-provider
    value: external
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
readOnlyPort: 0
protectKernelDefaults: true
rotateCertificates: true
nodeStatusUpdateFrequency: 1s
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
authorization:
  mode: Webhook
"#
    )
}

/// A first master after `kubeadm init` with a fresh PKI, its API server on a free port.
pub fn initialised_master() -> (SharedPki, u16, Node) {
    let pki = SharedPki::generate();
    let port = free_port();
    let master = Node::with_pki(&pki);
    let cfg = master.config(&init_config(port));
    assert_ok(&master.run("kubeadm", &["init", "--config", &cfg]));
    (pki, port, master)
}

pub fn join_config(port: u16, name: &str, pin: &str) -> String {
    format!(
        r#"apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: 127.0.0.1:{port}
    token: {TOKEN}
    caCertHashes: ["{pin}"]
nodeRegistration:
  name: {name}
  criSocket: unix:///run/containerd/containerd.sock
  kubeletExtraArgs:
  - name: node-labels
    value: kubeboot.io/pool=workers
  - name: provider-id
    value: azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/workers/virtualMachines/3
  taints:
  - key: kubeboot.io/dedicated
    value: batch
    effect: NoExecute
timeouts:
  discovery: 5s
"#
    )
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}
