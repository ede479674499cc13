//! The kubeadm stand-in: config validation, and the observable effects of init, join, reset and upgrade.
pub mod config;
pub mod controlplane;
pub mod init;
pub mod join;
pub mod reset;
pub mod upgrade;

use std::collections::BTreeMap;

use anyhow::{bail, Result};

use crate::apiserver::state::State;
use crate::fsx;
use crate::Root;
use config::{NodeRegistration, Taint};

pub const KUBELET_CONFIG: &str = "/var/lib/kubelet/config.yaml";
pub const KUBELET_FLAGS_ENV: &str = "/var/lib/kubelet/kubeadm-flags.env";
pub const KUBELET_CONF: &str = "/etc/kubernetes/kubelet.conf";
pub const MANIFESTS: &str = "/etc/kubernetes/manifests";
pub const CONTROL_PLANE_TAINT: &str = "node-role.kubernetes.io/control-plane";

/// Preflight errors honour `ignorePreflightErrors` (case-insensitive, or `all`) as kubeadm does.
pub struct Preflight<'a> {
    ignored: Vec<String>,
    errors: Vec<String>,
    root: &'a Root,
}

impl<'a> Preflight<'a> {
    pub fn new(root: &'a Root, ignored: &[String], from_flags: &[&str]) -> Preflight<'a> {
        let ignored = ignored
            .iter()
            .map(String::as_str)
            .chain(from_flags.iter().copied())
            .flat_map(|s| s.split(','))
            .map(str::to_lowercase)
            .collect();
        Preflight {
            ignored,
            errors: vec![],
            root,
        }
    }

    pub fn fail(&mut self, check: &str, message: String) {
        if self
            .ignored
            .iter()
            .any(|i| i == "all" || i == &check.to_lowercase())
        {
            println!("\t[WARNING {check}]: {message}");
        } else {
            self.errors.push(format!("[ERROR {check}]: {message}"));
        }
    }

    /// FileAvailable--<path>: the file must not exist yet.
    pub fn file_available(&mut self, node_path: &str) {
        if self.root.path(node_path).exists() {
            self.fail(
                &format!("FileAvailable-{}", node_path.replace('/', "-")),
                format!("{node_path} already exists"),
            );
        }
    }

    /// The control plane's static pod manifests must not exist yet (init and join --control-plane).
    pub fn static_pods_available(&mut self) {
        for component in [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "etcd",
        ] {
            self.file_available(&format!("{MANIFESTS}/{component}.yaml"));
        }
    }

    pub fn port_available(&mut self, port: u16) {
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_err() {
            self.fail(&format!("Port-{port}"), format!("Port {port} is in use"));
        }
    }

    pub fn privileged(&mut self) {
        if self.root.is_host() && !nix::unistd::geteuid().is_root() {
            self.fail("IsPrivilegedUser", "user is not running as root".into());
        }
    }

    pub fn finish(self) -> Result<()> {
        if !self.errors.is_empty() {
            bail!(
                "[preflight] Some fatal errors occurred:\n\t{}\n[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`",
                self.errors.join("\n\t")
            );
        }
        Ok(())
    }
}

/// The Node object kubeadm/kubelet register: labels from `--node-labels`, taints, provider ID.
pub fn node_object(
    name: &str,
    labels: &BTreeMap<String, String>,
    taints: &[Taint],
    provider_id: Option<&str>,
) -> serde_json::Value {
    let taints: Vec<serde_json::Value> = taints
        .iter()
        .map(|t| {
            let mut o = serde_json::json!({"key": t.key, "effect": t.effect});
            if let Some(v) = &t.value {
                o["value"] = v.clone().into();
            }
            o
        })
        .collect();
    let mut spec = serde_json::json!({"taints": taints});
    if let Some(p) = provider_id {
        spec["providerID"] = p.into();
    }
    serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}, "spec": spec})
}

/// Registers `node`; when the kubelet was first (409), merges its labels, taints and provider ID into the
/// existing Node, as kubeadm's mark-control-plane patches it.
pub fn register_node(client: &crate::client::Client, node: &serde_json::Value) -> Result<()> {
    let name = node["metadata"]["name"].as_str().unwrap_or_default();
    let (mut status, mut body) = client.call(reqwest::Method::POST, "/api/v1/nodes", Some(node))?;
    if status == 409 {
        (status, body) = client.call(
            reqwest::Method::PATCH,
            &format!("/api/v1/nodes/{name}"),
            Some(node),
        )?;
    }
    if !(200..300).contains(&status) {
        bail!(
            "registering node {name}: HTTP {status}: {}",
            body["message"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

/// Parses `k=v,k2=v2` as `--node-labels` takes it.
pub fn parse_labels(text: &str) -> BTreeMap<String, String> {
    text.split(',')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Writes the kubelet's config and the flags file kubeadm writes for the kubelet unit's drop-in.
pub fn write_kubelet_files(root: &Root, kubelet_config: &str, nr: &NodeRegistration) -> Result<()> {
    fsx::write(&root.path(KUBELET_CONFIG), kubelet_config, 0o644)?;
    let mut args = vec![format!("--container-runtime-endpoint={}", nr.cri_socket)];
    if let Some(taints) = &nr.taints {
        let list: Vec<String> = taints
            .iter()
            .map(|t| {
                format!(
                    "{}{}:{}",
                    t.key,
                    t.value
                        .as_deref()
                        .map(|v| format!("={v}"))
                        .unwrap_or_default(),
                    t.effect
                )
            })
            .collect();
        if !list.is_empty() {
            args.push(format!("--register-with-taints={}", list.join(",")));
        }
    }
    args.push(format!("--hostname-override={}", nr.name));
    args.extend(
        nr.kubelet_extra_args
            .iter()
            .map(|a| format!("--{}={}", a.name, a.value)),
    );
    fsx::write(
        &root.path(KUBELET_FLAGS_ENV),
        format!("KUBELET_KUBEADM_ARGS=\"{}\"\n", args.join(" ")),
        0o644,
    )
}

/// `systemctl restart kubelet`, as kubeadm's kubelet-start phase does; a failure is only a warning there too.
pub fn restart_kubelet() {
    match std::process::Command::new("systemctl").args(["restart", "kubelet"]).status() {
        Ok(s) if s.success() => println!("[kubelet-start] Starting the kubelet"),
        Ok(s) => println!("[kubelet-start] WARNING: unable to start the kubelet service: systemctl exited with {s}"),
        Err(e) => println!("[kubelet-start] WARNING: unable to start the kubelet service: {e}"),
    }
}

pub fn state(root: &Root) -> State {
    State::new(root)
}
