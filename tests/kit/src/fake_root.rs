//! A node's filesystem under a temporary directory, addressed by the paths the node would use.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// (node path, contents, mode): the files of a node image that preflight looks at — the image's
/// containerd, a script answering `--version` as Debian 13's containerd package does, and the file
/// the kernel shows when the unified (v2) cgroup hierarchy is mounted.
const PREFLIGHT_FILES: [(&str, &str, u32); 2] = [
    (
        "/usr/bin/containerd",
        "#!/bin/sh\necho 'containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6+b4'\n",
        0o755,
    ),
    (
        "/sys/fs/cgroup/cgroup.controllers",
        "cpuset cpu io memory hugetlb pids rdma misc\n",
        0o444,
    ),
];

/// A temporary node root; removed on drop.
pub struct FakeRoot {
    dir: tempfile::TempDir,
}

impl FakeRoot {
    /// An empty root.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The files a freshly booted VM of the node image has before the agent runs: its hostname,
    /// no swap, an fstab and hosts file, and what preflight checks of the image.
    pub fn booted_vm(hostname: &str) -> Self {
        let root = Self::new();
        root.write("/proc/sys/kernel/hostname", &format!("{hostname}\n"), 0o644);
        root.write(
            "/proc/swaps",
            "Filename\tType\tSize\tUsed\tPriority\n",
            0o644,
        );
        root.write("/etc/fstab", "UUID=1 / ext4 defaults 0 1\n", 0o644);
        root.write("/etc/hosts", "127.0.0.1 localhost\n", 0o644);
        for (path, contents, mode) in PREFLIGHT_FILES {
            root.write(path, contents, mode);
        }
        root
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Where `node_path` (absolute on the node) lies under this root.
    pub fn path(&self, node_path: &str) -> PathBuf {
        self.root().join(node_path.trim_start_matches('/'))
    }

    /// Writes `contents` at `node_path` with `mode`, creating its directories.
    pub fn write(&self, node_path: &str, contents: &str, mode: u32) {
        let p = self.path(node_path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, contents).unwrap();
        self.chmod(node_path, mode);
    }

    pub fn chmod(&self, node_path: &str, mode: u32) {
        std::fs::set_permissions(self.path(node_path), std::fs::Permissions::from_mode(mode))
            .unwrap();
    }

    pub fn read(&self, node_path: &str) -> String {
        std::fs::read_to_string(self.path(node_path))
            .unwrap_or_else(|e| panic!("reading {node_path}: {e}"))
    }
}

impl Default for FakeRoot {
    fn default() -> Self {
        Self::new()
    }
}
