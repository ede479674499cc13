//! `spec.secrets.store: vault`: the cluster secrets as one JSON document in a Vault (or OpenBao)
//! KV version 2 engine, at `<mount>/data/<path>`.
//!
//! The token comes from `VAULT_TOKEN` or `spec.secrets.vault.tokenFile` (owner-only), never from a
//! flag; it travels only in the `X-Vault-Token` header (marked sensitive) and is never logged.
//! TLS is verified by rustls against the bundled web roots plus an optional CA bundle; plain
//! `http` is accepted for loopback addresses only (a local dev server).
//! Writes use KV v2 check-and-set with the version seen at load, so two renders racing on one
//! path cannot silently overwrite each other's secrets.

use std::cell::Cell;
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use kubeboot_nodeconfig::{FieldError, Secret};
use reqwest::blocking::{Client, Response};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::secrets::{ClusterSecrets, SecretStore};
use crate::spec::{SecretStoreKind, SecretsSpec, VaultSpec};

pub const TOKEN_ENV: &str = "VAULT_TOKEN";
const TOKEN_HEADER: &str = "X-Vault-Token";

/// Checks `spec.secrets` for the Vault store: the block is present when (and only when) asked
/// for, the address is https (or http on loopback), mount and path are plain relative paths.
pub fn validate(secrets: &SecretsSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let vault = match (secrets.store, &secrets.vault) {
        (SecretStoreKind::Vault, Some(vault)) => vault,
        (SecretStoreKind::Vault, None) => {
            return vec![FieldError::new(
                "spec.secrets.vault",
                "is required with store: vault (address, mount, path)",
            )]
        }
        (SecretStoreKind::Local, Some(_)) => {
            return vec![FieldError::new(
                "spec.secrets.vault",
                "is only used with store: vault",
            )]
        }
        (SecretStoreKind::Local, None) => return errors,
    };
    if let Err(message) = check_address(&vault.address) {
        errors.push(FieldError::new("spec.secrets.vault.address", message));
    }
    for (field, value) in [("mount", &vault.mount), ("path", &vault.path)] {
        let bad_segment = value
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..");
        if bad_segment || value.contains(['?', '#', '%', ' ']) {
            errors.push(FieldError::new(
                format!("spec.secrets.vault.{field}"),
                format!("{value:?} must be a relative path like kubeboot/demo (no empty, `.` or `..` segments)"),
            ));
        }
    }
    errors
}

fn check_address(address: &str) -> Result<(), String> {
    let (scheme, rest) = address
        .split_once("://")
        .ok_or("must be a URL like https://vault.example.com:8200")?;
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return Err("must be scheme://host[:port] without a path".into());
    }
    match scheme {
        "https" => Ok(()),
        "http" if is_loopback(authority) => Ok(()),
        "http" => Err("plain http is allowed only for a loopback address; use https".into()),
        _ => Err(format!("unsupported scheme {scheme:?}; use https")),
    }
}

fn is_loopback(authority: &str) -> bool {
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A KV v2 location with a client holding the token.
pub struct VaultStore {
    client: Client,
    address: String,
    mount: String,
    path: String,
    /// KV version seen by the last `load` (0: nothing stored), for check-and-set on `save`.
    seen_version: Cell<Option<u64>>,
}

impl VaultStore {
    /// The store of a spec; the token from `VAULT_TOKEN`, else from the spec's token file.
    pub fn from_spec(vault: &VaultSpec) -> Result<Self> {
        let token = match std::env::var(TOKEN_ENV) {
            Ok(token) if !token.trim().is_empty() => Secret::new(token.trim()),
            _ => match &vault.token_file {
                Some(file) => read_token_file(file)?,
                None => bail!(
                    "spec.secrets.vault: no token: set {TOKEN_ENV} or spec.secrets.vault.tokenFile"
                ),
            },
        };
        let ca_pem = vault
            .ca_cert_file
            .as_ref()
            .map(|f| {
                fs::read(f).with_context(|| {
                    format!("spec.secrets.vault.caCertFile: reading {}", f.display())
                })
            })
            .transpose()?;
        Self::new(
            &vault.address,
            &vault.mount,
            &vault.path,
            &token,
            ca_pem.as_deref(),
        )
    }

    pub fn new(
        address: &str,
        mount: &str,
        path: &str,
        token: &Secret,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self> {
        let mut token_header = HeaderValue::from_str(token.expose())
            .context("the Vault token has characters not allowed in an HTTP header")?;
        token_header.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(TOKEN_HEADER, token_header);
        let mut builder = Client::builder()
            .default_headers(headers)
            .https_only(!address.starts_with("http://"))
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20));
        if let Some(pem) = ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .context("spec.secrets.vault.caCertFile: not a PEM certificate bundle")?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(Self {
            client: builder.build().context("building the Vault HTTP client")?,
            address: address.trim_end_matches('/').to_string(),
            mount: mount.trim_matches('/').to_string(),
            path: path.trim_matches('/').to_string(),
            seen_version: Cell::new(None),
        })
    }

    fn url(&self, api: &str) -> String {
        format!("{}/v1/{api}", self.address)
    }

    fn data_url(&self) -> String {
        self.url(&format!("{}/data/{}", self.mount, self.path))
    }

    fn location(&self) -> String {
        format!("{}/{}/{}", self.address, self.mount, self.path)
    }

    fn send(&self, request: reqwest::blocking::RequestBuilder) -> Result<Response> {
        request.send().map_err(|e| {
            let cause = if e.is_connect() {
                "connection failed"
            } else if e.is_timeout() {
                "timed out"
            } else {
                "request failed"
            };
            anyhow::anyhow!(
                "vault {}: cannot reach the server ({cause}): {}",
                self.address,
                root_cause(&e)
            )
        })
    }

    /// Refuses anything but a KV version 2 engine at `mount` (asked the way the vault CLI
    /// does, through the endpoint every token that may use the path can read).
    fn require_kv2(&self) -> Result<()> {
        let response = self.send(self.client.get(self.url(&format!(
            "sys/internal/ui/mounts/{}/{}",
            self.mount, self.path
        ))))?;
        let body = self.json_or_error(response, "checking the secrets engine")?;
        let engine = &body["data"];
        let kind = engine["type"].as_str().unwrap_or_default();
        let version = engine["options"]["version"].as_str().unwrap_or("1");
        if kind != "kv" {
            bail!(
                "spec.secrets.vault.mount: {:?} is a {kind:?} engine, not a KV version 2 engine",
                self.mount
            );
        }
        if version != "2" {
            bail!(
                "spec.secrets.vault.mount: {:?} is a KV version {version} engine; kubeboot needs KV version 2 \
                 (e.g. `bao secrets enable -path={} -version=2 kv`, or `... kv enable-versioning {}`)",
                self.mount,
                self.mount,
                self.mount
            );
        }
        Ok(())
    }

    fn json_or_error(&self, response: Response, doing: &str) -> Result<Value> {
        let status = response.status();
        let body: Value = response.json().unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let reasons = body["errors"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        let hint = match status {
            StatusCode::FORBIDDEN => format!(
                " (is the token right and allowed on {}? it comes from {TOKEN_ENV} or tokenFile)",
                self.location()
            ),
            _ => String::new(),
        };
        bail!("vault {}: {doing}: {status} {reasons}{hint}", self.address)
    }
}

impl SecretStore for VaultStore {
    fn load(&self) -> Result<Option<ClusterSecrets>> {
        self.require_kv2()?;
        let response = self.send(self.client.get(self.data_url()))?;
        if response.status() == StatusCode::NOT_FOUND {
            self.seen_version.set(Some(0));
            return Ok(None);
        }
        let body = self.json_or_error(response, "reading the cluster secrets")?;
        let version = body["data"]["metadata"]["version"].as_u64();
        self.seen_version.set(version);
        let data = body["data"]["data"].clone();
        if data.is_null() {
            return Ok(None); // the latest version was deleted
        }
        let secrets: ClusterSecrets = serde_json::from_value(data).with_context(|| {
            format!(
                "vault {}: the document there is not kubeboot cluster secrets",
                self.location()
            )
        })?;
        secrets
            .check()
            .with_context(|| format!("secrets in vault {}", self.location()))?;
        Ok(Some(secrets))
    }

    fn save(&self, secrets: &ClusterSecrets) -> Result<()> {
        self.require_kv2()?;
        let mut body = json!({ "data": secrets });
        if let Some(version) = self.seen_version.get() {
            body["options"] = json!({ "cas": version });
        }
        let response = self.send(self.client.post(self.data_url()).json(&body))?;
        let result = self.json_or_error(response, "writing the cluster secrets");
        if let Err(e) = &result {
            if e.to_string().contains("check-and-set") {
                bail!(
                    "vault {}: the secrets changed since they were read (another render?); re-run",
                    self.location()
                );
            }
        }
        let written = result?;
        self.seen_version.set(
            written["data"]["version"]
                .as_u64()
                .or(self.seen_version.get()),
        );
        Ok(())
    }
}

fn read_token_file(file: &std::path::Path) -> Result<Secret> {
    let what = || format!("spec.secrets.vault.tokenFile: {}", file.display());
    let mode = fs::metadata(file).with_context(what)?.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "{}: mode {:o} lets others read the token; chmod 600 it",
            what(),
            mode & 0o777
        );
    }
    let token = fs::read_to_string(file).with_context(what)?;
    let token = token.trim();
    if token.is_empty() {
        bail!("{}: empty", what());
    }
    Ok(Secret::new(token))
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_must_be_https_or_loopback_http() {
        assert!(check_address("https://vault.example.com:8200").is_ok());
        assert!(check_address("http://127.0.0.1:8200").is_ok());
        assert!(check_address("http://[::1]:8200").is_ok());
        assert!(check_address("http://localhost:8200/").is_ok());
        assert!(check_address("http://vault.example.com:8200").is_err());
        assert!(check_address("https://vault.example.com/v1").is_err());
        assert!(check_address("vault.example.com").is_err());
    }
}
