//! `kubeboot-agent audit`: the CIS Kubernetes Benchmark items that concern what the agent (and the
//! kubeadm it drives) writes on a node — file modes and owners, control-plane and etcd flags in the
//! static pod manifests, the kubelet configuration — each a named check with its evidence.
//!
//! Items are numbered as in CIS Kubernetes Benchmark v1.11 (the one for Kubernetes 1.32+); the
//! ones that cannot be checked on the node, or cannot pass with kubeadm, are listed in docs/agent.md.

mod control_plane;
mod files;
mod kubelet;
mod manifest;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use anyhow::{Context, Result};
use kubeboot_nodeconfig::Role;
use serde::Serialize;

use crate::root::Root;

pub const BENCHMARK: &str = "CIS Kubernetes Benchmark v1.11";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Pass,
    Fail,
    /// The item concerns another role (control-plane items on a worker).
    NotApplicable,
}

/// The outcome of one CIS item.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub id: &'static str,
    pub title: &'static str,
    pub status: Status,
    pub evidence: String,
}

impl Finding {
    fn new(id: &'static str, title: &'static str, (status, evidence): (Status, String)) -> Self {
        Finding {
            id,
            title,
            status,
            evidence,
        }
    }

    /// A control-plane item, audited on a worker.
    fn not_on_worker(id: &'static str, title: &'static str) -> Self {
        let evidence = "control-plane item; this is a worker".to_string();
        Finding::new(id, title, (Status::NotApplicable, evidence))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub benchmark: &'static str,
    pub role: Role,
    pub passed: usize,
    pub failed: usize,
    pub checks: Vec<Finding>,
}

impl Report {
    pub fn all_passed(&self) -> bool {
        self.failed == 0
    }

    pub fn find(&self, id: &str) -> Option<&Finding> {
        self.checks.iter().find(|f| f.id == id)
    }
}

/// What a check needs to know about the node it inspects.
pub struct Node {
    root: Root,
    /// Owner every audited file must have: root on a real node; under a test `--root`, the owner of
    /// that directory (an unprivileged test cannot create root-owned files).
    owner: (u32, u32),
}

impl Node {
    pub fn new(root: Root) -> Result<Self> {
        let owner = if root.is_system() {
            (0, 0)
        } else {
            let meta = fs::metadata(root.dir())
                .with_context(|| format!("reading {}", root.dir().display()))?;
            (meta.uid(), meta.gid())
        };
        Ok(Self { root, owner })
    }

    fn path(&self, node_path: &str) -> PathBuf {
        self.root.path(node_path)
    }

    fn read(&self, node_path: &str) -> std::io::Result<String> {
        fs::read_to_string(self.path(node_path))
    }
}

/// Runs every check for `role` against the node under `root`.
pub fn run(node: &Node, role: Role) -> Report {
    let mut checks = files::checks(node, role);
    checks.extend(control_plane::checks(node, role));
    checks.extend(kubelet::checks(node));
    let failed = checks.iter().filter(|f| f.status == Status::Fail).count();
    let passed = checks.iter().filter(|f| f.status == Status::Pass).count();
    Report {
        benchmark: BENCHMARK,
        role,
        passed,
        failed,
        checks,
    }
}

fn verdict(ok: bool) -> Status {
    if ok {
        Status::Pass
    } else {
        Status::Fail
    }
}

#[cfg(test)]
pub(crate) mod fixture;
#[cfg(test)]
mod tests;
