//! The files the stand-in API server keeps under `<root>/var/lib/stand-ins/kube-apiserver/`: what kubeadm
//! uploads at init (cluster facts, kubelet config, bootstrap tokens) and what the server records (nodes,
//! applied objects) for tests to assert on.
use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::jws::BootstrapToken;
use crate::{fsx, Root};

pub const DIR: &str = "/var/lib/stand-ins/kube-apiserver";

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct ClusterState {
    pub git_version: String,
    pub cluster_name: String,
    pub control_plane_endpoint: String,
    /// The ClusterConfiguration document as kubeadm stores it in the `kubeadm-config` ConfigMap.
    pub cluster_configuration: String,
}

pub struct State {
    dir: PathBuf,
}

impl State {
    pub fn new(root: &Root) -> State {
        State {
            dir: root.path(DIR),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn read_json<T: for<'de> Deserialize<'de> + Default>(&self, name: &str) -> Result<T> {
        match std::fs::read_to_string(self.path(name)) {
            Ok(t) => serde_json::from_str(&t)
                .with_context(|| format!("parsing {}", self.path(name).display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.path(name).display())),
        }
    }

    fn write_json(&self, name: &str, value: &impl Serialize, mode: u32) -> Result<()> {
        fsx::write(&self.path(name), serde_json::to_vec_pretty(value)?, mode)
    }

    pub fn cluster(&self) -> Result<Option<ClusterState>> {
        let c: Option<ClusterState> = self.read_json("cluster.json")?;
        Ok(c)
    }

    pub fn set_cluster(&self, c: &ClusterState) -> Result<()> {
        self.write_json("cluster.json", &Some(c), 0o644)
    }

    /// Bootstrap tokens, stored whole (0600) because the server must sign cluster-info with them.
    pub fn tokens(&self) -> Result<Vec<BootstrapToken>> {
        let raw: Vec<String> = self.read_json("bootstrap-tokens.json")?;
        raw.iter().map(|t| BootstrapToken::parse(t)).collect()
    }

    pub fn add_tokens(&self, tokens: &[BootstrapToken]) -> Result<()> {
        let mut raw: Vec<String> = self.read_json("bootstrap-tokens.json")?;
        for t in tokens {
            if !raw.contains(&t.full()) {
                raw.push(t.full());
            }
        }
        self.write_json("bootstrap-tokens.json", &raw, 0o600)
    }

    pub fn kubelet_config(&self) -> Result<Option<String>> {
        match std::fs::read_to_string(self.path("kubelet-config.yaml")) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub fn set_kubelet_config(&self, yaml: &str) -> Result<()> {
        fsx::write(&self.path("kubelet-config.yaml"), yaml, 0o644)
    }

    /// Registered nodes by name (`nodes.json`).
    pub fn nodes(&self) -> Result<BTreeMap<String, serde_json::Value>> {
        self.read_json("nodes.json")
    }

    pub fn set_nodes(&self, nodes: &BTreeMap<String, serde_json::Value>) -> Result<()> {
        self.write_json("nodes.json", nodes, 0o644)
    }

    /// Objects applied with server-side apply, keyed `group/version/kind/namespace/name` (`objects.json`).
    pub fn objects(&self) -> Result<BTreeMap<String, serde_json::Value>> {
        self.read_json("objects.json")
    }

    pub fn set_objects(&self, objects: &BTreeMap<String, serde_json::Value>) -> Result<()> {
        self.write_json("objects.json", objects, 0o644)
    }

    pub fn pid_file(&self) -> PathBuf {
        self.path("kube-apiserver.pid")
    }

    pub fn log_file(&self) -> PathBuf {
        self.path("kube-apiserver.log")
    }
}
