//! Shared by the integration tests: a temporary node root and a wrapper around the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kubeboot_test_kit::fake_root::FakeRoot;

pub const MASTER_YAML: &str = include_str!("../../fixtures/master.yaml");
pub const WORKER_YAML: &str = include_str!("../../fixtures/worker.yaml");

/// A node's filesystem root in a temporary directory, with the files a fresh VM has.
pub struct Node {
    fs: FakeRoot,
}

impl Node {
    pub fn new(hostname: &str, node_yaml: &str) -> Self {
        let node = Self {
            fs: FakeRoot::booted_vm(hostname),
        };
        // A swap entry, for the phase that turns swap off.
        node.write(
            "/etc/fstab",
            "UUID=1 / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n",
        );
        node.write("/etc/kubeboot/node.yaml", node_yaml);
        node
    }

    pub fn root(&self) -> &Path {
        self.fs.root()
    }

    pub fn path(&self, node_path: &str) -> PathBuf {
        self.fs.path(node_path)
    }

    pub fn write(&self, node_path: &str, text: &str) {
        let p = self.path(node_path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn read(&self, node_path: &str) -> String {
        self.fs.read(node_path)
    }

    /// The agent with `--root` set (and `--config` for the subcommands that take it).
    pub fn agent(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubeboot-agent"));
        cmd.args(args).arg("--root").arg(self.root());
        cmd.env_remove("JOURNAL_STREAM");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.agent(args).output().unwrap()
    }

    pub fn status_json(&self) -> serde_json::Value {
        let out = self.run(&["status", "--output", "json"]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        // Exit 4 exactly when a phase failed (docs/cli.md#exit-codes).
        let failed = status["phases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["state"] == "failed");
        assert_eq!(
            out.status.code(),
            Some(if failed { 4 } else { 0 }),
            "{status:#}"
        );
        status
    }
}
