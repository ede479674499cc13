//! The files the stand-in API server keeps under `<root>/var/lib/stand-ins/kube-apiserver/`: what kubeadm
//! uploads at init (cluster facts, kubelet config, bootstrap-token Secrets) and what the server records
//! (nodes, created or applied objects) for tests to assert on.
use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use serde_json::Value;

use super::tokens;
pub use super::tokens::BootstrapTokenInfo;
use crate::{fsx, Root};

pub const DIR: &str = "/var/lib/stand-ins/kube-apiserver";
const OBJECTS: &str = "objects.json";
const SECRETS: &str = "secrets.json";
const SECRET_KEY_PREFIX: &str = "v1/Secret/";

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

    /// Every stored object, keyed `apiVersion/Kind/namespace/name`: Secrets from `secrets.json` (0600: they
    /// hold bootstrap tokens), the rest from `objects.json`.
    pub fn objects(&self) -> Result<BTreeMap<String, Value>> {
        let mut objects: BTreeMap<String, Value> = self.read_json(OBJECTS)?;
        objects.extend(self.read_json::<BTreeMap<String, Value>>(SECRETS)?);
        Ok(objects)
    }

    /// Stores `objects` (as [`State::objects`] returned them, changed), Secrets apart and private.
    pub fn set_objects(&self, objects: &BTreeMap<String, Value>) -> Result<()> {
        let (secrets, others): (BTreeMap<_, _>, BTreeMap<_, _>) = objects
            .iter()
            .partition(|(k, _)| k.starts_with(SECRET_KEY_PREFIX));
        self.write_json(SECRETS, &secrets, 0o600)?;
        self.write_json(OBJECTS, &others, 0o644)
    }

    /// The bootstrap tokens the server holds (Secrets of type `bootstrap.kubernetes.io/token` named
    /// `bootstrap-token-<id>` in kube-system), without their secrets; see [`BootstrapTokenInfo`] for each field.
    /// Reads the state files, so it works while the API server runs. Example, for a node whose root is `dir`:
    /// `State::new(&Root::new(dir)).bootstrap_tokens()?`.
    pub fn bootstrap_tokens(&self) -> Result<Vec<BootstrapTokenInfo>> {
        Ok(tokens::infos(
            &self.objects()?,
            time::OffsetDateTime::now_utc(),
        ))
    }

    /// Test "time travel": sets the `expiration` of token `id` to `at` (written RFC 3339 UTC, whole seconds,
    /// as kubeadm writes it), as an admin editing the Secret would. The running API server reads its state on
    /// every request, so an `at` in the past makes the token stop authenticating and signing cluster-info at
    /// once. Fails when there is no such token Secret.
    pub fn set_token_expiration(&self, id: &str, at: time::OffsetDateTime) -> Result<()> {
        let mut objects = self.objects()?;
        tokens::set_expiration(&mut objects, id, at)?;
        self.set_objects(&objects)
    }

    pub fn pid_file(&self) -> PathBuf {
        self.path("kube-apiserver.pid")
    }

    pub fn log_file(&self) -> PathBuf {
        self.path("kube-apiserver.log")
    }
}
