//! The files of a node image that preflight looks at, written into every fake root.

/// (node path, contents, mode): the image's containerd, a script answering `--version` as Debian
/// 13's containerd package does, and the file the kernel shows when the unified (v2) cgroup
/// hierarchy is mounted.
pub const PREFLIGHT_FILES: [(&str, &str, u32); 2] = [
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
