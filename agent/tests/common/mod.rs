//! Shared by the integration tests: a temporary node root and a wrapper around the real binary.
#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "../support/image.rs"]
mod image;
#[path = "../support/output.rs"]
mod output;
pub use output::text;

pub const MASTER_YAML: &str = include_str!("../fixtures/master.yaml");
pub const WORKER_YAML: &str = include_str!("../fixtures/worker.yaml");

/// A node's filesystem root in a temporary directory, with the files a fresh VM has.
pub struct Node {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Node {
    pub fn new(hostname: &str, node_yaml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let node = Self {
            config: dir.path().join("etc/kubeboot/node.yaml"),
            dir,
        };
        node.write("/proc/sys/kernel/hostname", &format!("{hostname}\n"));
        node.write("/proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n");
        node.write(
            "/etc/fstab",
            "UUID=1 / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n",
        );
        node.write("/etc/hosts", "127.0.0.1 localhost\n");
        for (path, contents, mode) in image::PREFLIGHT_FILES {
            node.write(path, contents);
            std::fs::set_permissions(
                node.path(path),
                std::os::unix::fs::PermissionsExt::from_mode(mode),
            )
            .unwrap();
        }
        node.write("/etc/kubeboot/node.yaml", node_yaml);
        node
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, node_path: &str) -> PathBuf {
        self.root().join(node_path.trim_start_matches('/'))
    }

    pub fn write(&self, node_path: &str, text: &str) {
        let p = self.path(node_path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn read(&self, node_path: &str) -> String {
        std::fs::read_to_string(self.path(node_path))
            .unwrap_or_else(|e| panic!("reading {node_path}: {e}"))
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
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}
