//! The NodeConfig contract: the one file (`/etc/kubeboot/node.yaml`) that `kubeboot-gen` writes
//! into each VM's user data and `kubeboot-agent` reads at first boot.
//!
//! It is versioned by `apiVersion`; a reader refuses any apiVersion it does not know, so an old
//! agent baked into an image never half-understands a newer generator's output.

mod apiserver;
mod endpoint;
pub mod exit;
pub mod fsx;
pub mod labels;
pub mod releases;
mod secret;
mod taint;
mod types;
mod url;
mod version;

pub use apiserver::*;
pub use endpoint::{ControlPlaneEndpoint, Host};
pub use secret::Secret;
pub use taint::{Taint, TaintEffect};
pub use types::*;
pub use url::{check_no_userinfo, redact_userinfo};
pub use version::KubernetesVersion;

/// The apiVersion of everything in this crate.
pub const API_VERSION: &str = "kubeboot.io/v1alpha1";
pub const KIND: &str = "NodeConfig";
/// Where the generator's user data puts the NodeConfig on the node.
pub const DEFAULT_PATH: &str = "/etc/kubeboot/node.yaml";

/// One problem with a document, as one line naming the field path (`bootstrap.token: ...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{path}: {message}")]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl FieldError {
    /// Control characters (a newline in a key or value of the input, say) are escaped, so the
    /// error always prints as one line.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: one_line(path.into()),
            message: one_line(message.into()),
        }
    }
}

fn one_line(text: String) -> String {
    if !text.chars().any(char::is_control) {
        return text;
    }
    text.chars()
        .map(|c| match c.is_control() {
            true => c.escape_default().to_string(),
            false => c.to_string(),
        })
        .collect()
}

/// Reads a typed, versioned YAML document strictly: the `apiVersion`/`kind` header is checked
/// first (so an unknown version gets a clear message rather than a field error), then the body is
/// deserialised with unknown keys refused, and every error names the field path.
/// Shared by the NodeConfig and the generator's cluster spec.
pub fn parse_versioned<T: serde::de::DeserializeOwned>(
    text: &str,
    api_version: &str,
    kind: &str,
) -> Result<T, FieldError> {
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)
        .map_err(|e| FieldError::new("(document)", format!("not valid YAML: {e}")))?;
    let map = value
        .as_mapping()
        .ok_or_else(|| FieldError::new("(document)", format!("expected a {kind} mapping")))?;
    let header = |key: &str| match map.get(key) {
        None => Err(FieldError::new(key, "missing")),
        Some(v) => v
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| FieldError::new(key, "must be a string")),
    };
    let found_version = header("apiVersion")?;
    if found_version != api_version {
        return Err(FieldError::new(
            "apiVersion",
            format!("unsupported {found_version:?}; this build reads {api_version:?}"),
        ));
    }
    let found_kind = header("kind")?;
    if found_kind != kind {
        return Err(FieldError::new(
            "kind",
            format!("expected {kind:?}, found {found_kind:?}"),
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        FieldError::new(
            if path == "." {
                "(document)".into()
            } else {
                path
            },
            message,
        )
    })
}

/// Parses and validates a NodeConfig. This is the agent's parser; `kubeboot-gen check` uses it too.
pub fn parse(text: &str) -> Result<NodeConfig, FieldError> {
    let config: NodeConfig = parse_versioned(text, API_VERSION, KIND)?;
    config.validate()?;
    Ok(config)
}

impl NodeConfig {
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("a NodeConfig always serialises")
    }
}
