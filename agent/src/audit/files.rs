//! CIS 1.1.x (control-plane configuration files) and 4.1.x (kubelet files): modes and owners.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use kubeboot_nodeconfig::Role;

use super::{kubelet, manifest, verdict, Finding, Node, Status};
use crate::paths;

/// Where kubelet's unit and kubeadm's drop-in live on Debian-family hosts (the upstream packages'
/// paths, /usr/lib and /lib, and the /etc overrides). Every one present is audited.
pub const KUBELET_SERVICE_FILES: &[&str] = &[
    "/etc/systemd/system/kubelet.service",
    "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
    "/usr/lib/systemd/system/kubelet.service",
    "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf",
    "/lib/systemd/system/kubelet.service",
    "/lib/systemd/system/kubelet.service.d/10-kubeadm.conf",
];
/// kube-proxy runs as a DaemonSet with an in-cluster kubeconfig; this file exists only on nodes
/// set up by hand, and is audited when present.
const PROXY_KUBECONFIG: &str = "/etc/kubernetes/proxy.conf";

/// Which files one item is about.
enum Target {
    /// Must exist.
    File(&'static str),
    /// Audited only when present (CIS: "if ... exists").
    Optional(&'static [&'static str]),
    /// At least one must exist; all present ones are audited.
    AnyOf(&'static [&'static str]),
    /// A directory and everything in it (optionally only names ending with the suffix).
    Tree(&'static str, Option<&'static str>),
    /// The etcd data directory named by `--data-dir` in the etcd manifest.
    EtcdDataDir,
    /// The kubelet's client CA file named in its configuration.
    KubeletClientCa,
}

enum Rule {
    /// No permission bits outside the mask (CIS: "600 or more restrictive").
    ModeWithin(u32),
    /// Owned by root:root (the expected owner under a test root).
    Owner,
}

struct FileItem {
    id: &'static str,
    title: &'static str,
    master_only: bool,
    target: Target,
    rule: Rule,
}

const fn item(id: &'static str, title: &'static str, target: Target, rule: Rule) -> FileItem {
    FileItem {
        id,
        title,
        master_only: true,
        target,
        rule,
    }
}

const fn node_item(id: &'static str, title: &'static str, target: Target, rule: Rule) -> FileItem {
    FileItem {
        id,
        title,
        master_only: false,
        target,
        rule,
    }
}

const ADMIN_CONFS: &[&str] = &[paths::ADMIN_CONF, "/etc/kubernetes/super-admin.conf"];

const ITEMS: &[FileItem] = &[
    item(
        "1.1.1",
        "API server pod specification file permissions are 600 or more restrictive",
        Target::File(paths::API_SERVER_MANIFEST),
        Rule::ModeWithin(0o600),
    ),
    item(
        "1.1.2",
        "API server pod specification file ownership is root:root",
        Target::File(paths::API_SERVER_MANIFEST),
        Rule::Owner,
    ),
    item(
        "1.1.3",
        "Controller manager pod specification file permissions are 600 or more restrictive",
        Target::File(paths::CONTROLLER_MANAGER_MANIFEST),
        Rule::ModeWithin(0o600),
    ),
    item(
        "1.1.4",
        "Controller manager pod specification file ownership is root:root",
        Target::File(paths::CONTROLLER_MANAGER_MANIFEST),
        Rule::Owner,
    ),
    item(
        "1.1.5",
        "Scheduler pod specification file permissions are 600 or more restrictive",
        Target::File(paths::SCHEDULER_MANIFEST),
        Rule::ModeWithin(0o600),
    ),
    item(
        "1.1.6",
        "Scheduler pod specification file ownership is root:root",
        Target::File(paths::SCHEDULER_MANIFEST),
        Rule::Owner,
    ),
    item(
        "1.1.7",
        "etcd pod specification file permissions are 600 or more restrictive",
        Target::File(paths::ETCD_MANIFEST),
        Rule::ModeWithin(0o600),
    ),
    item(
        "1.1.8",
        "etcd pod specification file ownership is root:root",
        Target::File(paths::ETCD_MANIFEST),
        Rule::Owner,
    ),
    item(
        "1.1.11",
        "etcd data directory permissions are 700 or more restrictive",
        Target::EtcdDataDir,
        Rule::ModeWithin(0o700),
    ),
    item(
        "1.1.13",
        "Default administrative credential file permissions are 600",
        Target::AnyOf(ADMIN_CONFS),
        Rule::ModeWithin(0o600),
    ),
    item(
        "1.1.14",
        "Default administrative credential file ownership is root:root",
        Target::AnyOf(ADMIN_CONFS),
        Rule::Owner,
    ),
    item(
        "1.1.15",
        "scheduler.conf file permissions are 600 or more restrictive",
        Target::File("/etc/kubernetes/scheduler.conf"),
        Rule::ModeWithin(0o600),
    ),
    item(
        "1.1.16",
        "scheduler.conf file ownership is root:root",
        Target::File("/etc/kubernetes/scheduler.conf"),
        Rule::Owner,
    ),
    item(
        "1.1.17",
        "controller-manager.conf file permissions are 600 or more restrictive",
        Target::File("/etc/kubernetes/controller-manager.conf"),
        Rule::ModeWithin(0o600),
    ),
    item(
        "1.1.18",
        "controller-manager.conf file ownership is root:root",
        Target::File("/etc/kubernetes/controller-manager.conf"),
        Rule::Owner,
    ),
    item(
        "1.1.19",
        "Kubernetes PKI directory and file ownership is root:root",
        Target::Tree(paths::PKI_DIR, None),
        Rule::Owner,
    ),
    item(
        "1.1.20",
        "Kubernetes PKI certificate file permissions are 644 or more restrictive",
        Target::Tree(paths::PKI_DIR, Some(".crt")),
        Rule::ModeWithin(0o644),
    ),
    item(
        "1.1.21",
        "Kubernetes PKI key file permissions are 600",
        Target::Tree(paths::PKI_DIR, Some(".key")),
        Rule::ModeWithin(0o600),
    ),
    node_item(
        "4.1.1",
        "kubelet service file permissions are 600 or more restrictive",
        Target::AnyOf(KUBELET_SERVICE_FILES),
        Rule::ModeWithin(0o600),
    ),
    node_item(
        "4.1.2",
        "kubelet service file ownership is root:root",
        Target::AnyOf(KUBELET_SERVICE_FILES),
        Rule::Owner,
    ),
    node_item(
        "4.1.3",
        "If a proxy kubeconfig file exists its permissions are 600 or more restrictive",
        Target::Optional(&[PROXY_KUBECONFIG]),
        Rule::ModeWithin(0o600),
    ),
    node_item(
        "4.1.4",
        "If a proxy kubeconfig file exists its ownership is root:root",
        Target::Optional(&[PROXY_KUBECONFIG]),
        Rule::Owner,
    ),
    node_item(
        "4.1.5",
        "kubelet.conf file permissions are 600 or more restrictive",
        Target::File(paths::KUBELET_KUBECONFIG),
        Rule::ModeWithin(0o600),
    ),
    node_item(
        "4.1.6",
        "kubelet.conf file ownership is root:root",
        Target::File(paths::KUBELET_KUBECONFIG),
        Rule::Owner,
    ),
    node_item(
        "4.1.7",
        "Certificate authorities file permissions are 644 or more restrictive",
        Target::KubeletClientCa,
        Rule::ModeWithin(0o644),
    ),
    node_item(
        "4.1.8",
        "Client certificate authorities file ownership is root:root",
        Target::KubeletClientCa,
        Rule::Owner,
    ),
    node_item(
        "4.1.9",
        "kubelet config.yaml permissions are 600 or more restrictive",
        Target::File(paths::KUBELET_CONFIG),
        Rule::ModeWithin(0o600),
    ),
    node_item(
        "4.1.10",
        "kubelet config.yaml ownership is root:root",
        Target::File(paths::KUBELET_CONFIG),
        Rule::Owner,
    ),
];

pub(super) fn checks(node: &Node, role: Role) -> Vec<Finding> {
    ITEMS
        .iter()
        .map(|item| {
            if item.master_only && role != Role::Master {
                return Finding::not_on_worker(item.id, item.title);
            }
            let verdict = match resolve(node, &item.target) {
                Ok(paths) => judge(node, &paths, &item.rule),
                Err(missing) => (Status::Fail, missing),
            };
            Finding::new(item.id, item.title, verdict)
        })
        .collect()
}

/// The node paths an item covers, or why there are none that should be there.
fn resolve(node: &Node, target: &Target) -> Result<Vec<String>, String> {
    let exists = |p: &str| node.path(p).symlink_metadata().is_ok();
    match target {
        Target::File(path) => match exists(path) {
            true => Ok(vec![path.to_string()]),
            false => Err(format!("{path} is missing")),
        },
        Target::Optional(paths) => Ok(paths
            .iter()
            .filter(|p| exists(p))
            .map(|p| p.to_string())
            .collect()),
        Target::AnyOf(paths) => {
            let present: Vec<String> = paths
                .iter()
                .filter(|p| exists(p))
                .map(|p| p.to_string())
                .collect();
            match present.is_empty() {
                false => Ok(present),
                true => Err(format!("none of {} exists", paths.join(", "))),
            }
        }
        Target::Tree(dir, suffix) => {
            if !exists(dir) {
                return Err(format!("{dir} is missing"));
            }
            let mut found = Vec::new();
            walk(node, dir, &mut found);
            found.retain(|p| suffix.is_none_or(|s| p.ends_with(s)));
            found.sort();
            match found.is_empty() {
                false => Ok(found),
                true => Err(format!("no {} files under {dir}", suffix.unwrap_or(""))),
            }
        }
        Target::EtcdDataDir => {
            let dir = manifest::flags(node, paths::ETCD_MANIFEST)
                .ok()
                .and_then(|f| f.get("data-dir").cloned())
                .unwrap_or_else(|| paths::ETCD_DATA_DIR.into());
            match exists(&dir) {
                true => Ok(vec![dir]),
                false => Err(format!("etcd data directory {dir} is missing")),
            }
        }
        Target::KubeletClientCa => {
            let ca = kubelet::client_ca_file(node)
                .map_err(|e| format!("no kubelet client CA file: {e}"))?;
            match exists(&ca) {
                true => Ok(vec![ca]),
                false => Err(format!("kubelet client CA file {ca} is missing")),
            }
        }
    }
}

/// Every path under `dir` (itself included), as node paths.
fn walk(node: &Node, dir: &str, found: &mut Vec<String>) {
    found.push(dir.to_string());
    let Ok(entries) = fs::read_dir(node.path(dir)) else {
        return;
    };
    for entry in entries.flatten() {
        let child = format!(
            "{}/{}",
            dir.trim_end_matches('/'),
            entry.file_name().to_string_lossy()
        );
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(node, &child, found);
        } else {
            found.push(child);
        }
    }
}

fn judge(node: &Node, paths: &[String], rule: &Rule) -> (Status, String) {
    if paths.is_empty() {
        return (Status::Pass, "not present".into());
    }
    let mut offenders = Vec::new();
    let mut seen = Vec::new();
    for path in paths {
        let meta = match node.path(path).symlink_metadata() {
            Ok(m) => m,
            Err(e) => {
                offenders.push(format!("{path}: {e}"));
                continue;
            }
        };
        let (ok, fact) = match rule {
            Rule::ModeWithin(mask) => {
                let mode = meta.permissions().mode() & 0o7777;
                (mode & !mask == 0, format!("{path} mode {mode:04o}"))
            }
            Rule::Owner => {
                let owner = (meta.uid(), meta.gid());
                (
                    owner == node.owner,
                    format!("{path} owner {}:{}", owner.0, owner.1),
                )
            }
        };
        if ok {
            seen.push(fact);
        } else {
            offenders.push(fact);
        }
    }
    let expected = match rule {
        Rule::ModeWithin(mask) => format!("expected within {mask:04o}"),
        Rule::Owner => format!("expected {}:{}", node.owner.0, node.owner.1),
    };
    if offenders.is_empty() {
        let shown = summarize(&seen);
        (Status::Pass, format!("{shown} ({expected})"))
    } else {
        (
            verdict(false),
            format!("{} ({expected})", summarize(&offenders)),
        )
    }
}

/// Keeps evidence to one readable line for a tree of many files.
fn summarize(facts: &[String]) -> String {
    const SHOWN: usize = 4;
    if facts.len() <= SHOWN {
        facts.join("; ")
    } else {
        format!(
            "{}; and {} more",
            facts[..SHOWN].join("; "),
            facts.len() - SHOWN
        )
    }
}
