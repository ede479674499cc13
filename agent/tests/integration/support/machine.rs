//! Nodes for end-to-end tests of the real agent: a cluster rendered by `kubeboot-gen`, and fresh
//! machines under temporary roots with the stand-ins on PATH and baked into the image.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kubeboot_test_kit::binaries::binaries;
use kubeboot_test_kit::fake_root::FakeRoot;
use kubeboot_test_kit::output::text;
use serde_yaml_ng::Value;

use crate::release::ARCH;

/// A plain-VM cluster (provider none) whose endpoint is the first master on loopback:
/// `masters` masters (the first is the init node) and one worker, in pools `master`/`workers`.
pub fn loopback_spec(name: &str, version: &str, endpoint_port: u16, masters: u32) -> String {
    format!(
        "\
apiVersion: kubeboot.io/v1alpha1
kind: Cluster
metadata: {{name: {name}}}
spec:
  kubernetesVersion: {version}
  controlPlaneEndpoint: 127.0.0.1:{endpoint_port}
  initNode: {name}-master-0
  network: {{podCIDR: 10.244.0.0/16, serviceCIDR: 10.96.0.0/12}}
  pools:
    - {{name: master, role: master, count: {masters}}}
    - {{name: workers, role: worker, count: 1, labels: {{tier: general}}}}
"
    )
}

/// The NodeConfig with the API server listening on `port`. On Azure every master listens on the
/// same port behind the load balancer; masters sharing this host need a port each, and with no
/// load balancer the first master's port must be the endpoint's.
pub fn with_bind_port(node_yaml: &str, port: u16) -> String {
    let mut config: Value = serde_yaml_ng::from_str(node_yaml).unwrap();
    config["cluster"]["apiServerBindPort"] = port.into();
    serde_yaml_ng::to_string(&config).unwrap()
}

/// The NodeConfig of a master that is the endpoint itself, on `port` (127.0.0.1:`port`).
pub fn with_endpoint_port(node_yaml: &str, port: u16) -> String {
    let mut config: Value = serde_yaml_ng::from_str(&with_bind_port(node_yaml, port)).unwrap();
    config["cluster"]["controlPlaneEndpoint"] = format!("127.0.0.1:{port}").into();
    serde_yaml_ng::to_string(&config).unwrap()
}

/// The NodeConfig fetching Kubernetes releases from `base` (the image bakes the boot version's).
pub fn with_release_mirror(node_yaml: &str, base: &str) -> String {
    let mut config: Value = serde_yaml_ng::from_str(node_yaml).unwrap();
    config["artifacts"]["releaseBaseUrl"] = base.into();
    serde_yaml_ng::to_string(&config).unwrap()
}

/// A `file://` release mirror holding Kubernetes `version` as the stand-ins play it: kubeadm and
/// kubelet stamped with that version (each reports it, and has a digest of its own), the real
/// kubectl, each with its `.sha256`.
pub struct ReleaseMirror {
    dir: tempfile::TempDir,
}

impl ReleaseMirror {
    pub fn new(version: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut tree = crate::release::ReleaseTree { files: Vec::new() };
        let bin = binaries();
        for (name, body) in [
            ("kubeadm", stamped(&bin.join("kubeadm"), version)),
            ("kubelet", stamped(&bin.join("kubelet"), version)),
            (
                "kubectl",
                std::fs::read(kubeboot_stand_ins::test_kubectl()).unwrap(),
            ),
        ] {
            tree.add(&format!("/release/{version}/bin/linux/{ARCH}/{name}"), body);
        }
        tree.write_to(dir.path());
        Self { dir }
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.dir.path().display())
    }

    /// The file the mirror serves for `name` of `version`.
    pub fn binary(&self, version: &str, name: &str) -> Vec<u8> {
        std::fs::read(
            self.dir
                .path()
                .join(format!("release/{version}/bin/linux/{ARCH}/{name}")),
        )
        .unwrap()
    }
}

fn stamped(binary: &Path, version: &str) -> Vec<u8> {
    kubeboot_stand_ins::version::stamped(&std::fs::read(binary).unwrap(), version)
}

/// What `kubeboot-gen render` wrote for a cluster spec.
pub struct Rendered {
    dir: tempfile::TempDir,
    pub output: Output,
}

impl Rendered {
    pub fn new(spec: &str) -> Self {
        Self::with_args(spec, &[])
    }

    /// Renders with extra `kubeboot-gen render` arguments.
    pub fn with_args(spec: &str, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let spec_file = dir.path().join("cluster.yaml");
        std::fs::write(&spec_file, spec).unwrap();
        let output = Command::new(binaries().join("kubeboot-gen"))
            .arg("render")
            .arg("--spec")
            .arg(&spec_file)
            .arg("--out")
            .arg(dir.path().join("out"))
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        Self { dir, output }
    }

    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// The NodeConfig cloud-init would write from a pool's user data.
    pub fn node_yaml(&self, pool: &str) -> String {
        self.user_data_file(pool, "/etc/kubeboot/node.yaml")
    }

    /// The file at `path` that cloud-init would write from a pool's user data.
    pub fn user_data_file(&self, pool: &str, path: &str) -> String {
        let user_data = self.out().join(format!("pools/{pool}/user-data.yaml"));
        let user_data: Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(user_data).unwrap()).unwrap();
        user_data["write_files"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|f| f["path"] == path)
            .and_then(|f| f["content"].as_str())
            .unwrap_or_else(|| panic!("pool {pool}: no {path} in the user data"))
            .to_string()
    }
}

/// A fresh machine under a temporary root: the files a booted VM has (containerd and cgroup v2
/// included), the kubelet/kubeadm the
/// image bakes (the stand-ins, hard-linked), and the NodeConfig cloud-init wrote (0600).
pub struct Machine {
    fs: FakeRoot,
    path: tempfile::TempDir,
}

impl Machine {
    pub fn new(hostname: &str, node_yaml: &str) -> Self {
        let bin = binaries();
        let m = Self {
            fs: FakeRoot::booted_vm(hostname),
            path: tempfile::tempdir().unwrap(),
        };
        for unit in ["swap.target", "containerd.service"] {
            m.fs.write(&format!("/lib/systemd/system/{unit}"), "[Unit]\n", 0o644);
        }
        m.fs.write("/etc/kubeboot/node.yaml", node_yaml, 0o600);
        for tool in [
            "kubeadm",
            "kubelet",
            "kube-apiserver",
            "systemctl",
            "modprobe",
        ] {
            std::os::unix::fs::symlink(bin.join(tool), m.path.path().join(tool)).unwrap();
        }
        let config: Value = serde_yaml_ng::from_str(node_yaml).unwrap();
        let version = config["cluster"]["kubernetesVersion"].as_str().unwrap();
        let mut baked = Vec::new();
        for (tool, source) in [
            ("kubeadm", bin.join("kubeadm")),
            ("kubelet", bin.join("kubelet")),
            // A real kubectl: the API server probe and the addons talk to the API server.
            ("kubectl", kubeboot_stand_ins::test_kubectl()),
        ] {
            let dest = m.node("/usr/local/bin").join(tool);
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::hard_link(source, &dest).unwrap();
            let digest = sha256(&std::fs::read(&dest).unwrap());
            baked.push(serde_json::json!({"name": tool, "version": version, "path": format!("/usr/local/bin/{tool}"), "sha256": digest}));
        }
        // The baked stand-ins play the NodeConfig's version (a release mirror's are stamped).
        m.fs.write("/usr/local/bin/kubernetes-version", version, 0o644);
        m.fs.write(
            "/etc/kubeboot/baked.json",
            &serde_json::json!({"files": baked}).to_string(),
            0o644,
        );
        let reload = m
            .command(&m.path.path().join("systemctl"))
            .arg("daemon-reload")
            .output()
            .unwrap();
        assert!(reload.status.success(), "{}", text(&reload));
        m
    }

    pub fn root(&self) -> &Path {
        self.fs.root()
    }

    pub fn node(&self, node_path: &str) -> PathBuf {
        self.fs.path(node_path)
    }

    /// Where the program `name` is found on this machine's PATH (a stand-in, linked).
    pub fn on_path(&self, name: &str) -> PathBuf {
        self.path.path().join(name)
    }

    /// `program` as it runs on this machine: stand-ins rooted here, first on PATH, and a HOME of
    /// the test's own (kubectl keeps a cache there).
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("STANDIN_ROOT", self.root())
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", self.path.path().display()),
            )
            .env("HOME", self.path.path())
            .env_remove("JOURNAL_STREAM");
        cmd
    }

    /// `kubeboot-agent ARGS --root <this machine>`, not started yet.
    pub fn agent_command(&self, args: &[&str]) -> Command {
        let mut cmd = self.command(Path::new(env!("CARGO_BIN_EXE_kubeboot-agent")));
        cmd.args(args).arg("--root").arg(self.root());
        cmd
    }

    pub fn agent(&self, args: &[&str]) -> Output {
        self.agent_command(args).output().unwrap()
    }
}

impl Drop for Machine {
    /// Stops the API server the stand-in kubeadm started on a master.
    fn drop(&mut self) {
        let pid_file = self.node("/var/lib/stand-ins/kube-apiserver/kube-apiserver.pid");
        if let Some(pid) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
