//! `kubeboot-gen check DIR`: re-validates a render output. Each check is a function over the
//! parsed output tree returning one line per problem (`<file>: <problem>`); adding a check is
//! adding one entry to `CHECKS`.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Result;
use base64::Engine;
use kubeboot_nodeconfig::{NodeConfig, Role, DEFAULT_PATH};
use serde_yaml_ng::Value;

use crate::names::{JOIN_TOKEN_SECRET, PKI_SECRET};
use crate::render::{
    pool_dir, AGENT_UNIT, AZURE_JSON, CUSTOM_DATA, CUSTOM_DATA_LIMIT, EFFECTIVE_SPEC, USER_DATA,
};
use crate::secrets::{ca_cert_hash, LocalStore, CA_HASH_FILE, DIR_MODE, FILE_MODE, LOCAL_DIR};
use crate::tree::Tree;
use crate::validate::{validate_text_with, Lifecycle, ValidSpec};

type Check = fn(&ParsedTree) -> Vec<String>;

/// Every check `check` runs, in order.
pub const CHECKS: &[Check] = &[
    check_pools,
    check_user_data,
    check_custom_data,
    check_azure_json,
    check_secrets,
    check_ca_pins,
    check_secret_sources,
    check_modes,
    crate::arm::check::check_tree,
];

/// Runs every check over an output directory.
pub fn check_dir(dir: &Path) -> Result<Vec<String>> {
    Ok(check_tree(&Tree::read(dir)?))
}

pub fn check_tree(tree: &Tree) -> Vec<String> {
    let parsed = ParsedTree::parse(tree);
    CHECKS.iter().flat_map(|check| check(&parsed)).collect()
}

/// The output tree with what several checks read parsed once: the pools, each pool's NodeConfig
/// and the re-validated effective spec.
pub struct ParsedTree<'t> {
    pub(crate) tree: &'t Tree,
    pools: Vec<String>,
    node_configs: Vec<(PathBuf, Result<NodeConfig, String>)>,
    /// The effective spec, validated whatever `--allow-end-of-life` the render was given (what
    /// was rendered is checked); its problems as `check` reports them.
    pub(crate) spec: Result<ValidSpec, Vec<String>>,
}

impl<'t> ParsedTree<'t> {
    fn parse(tree: &'t Tree) -> Self {
        let pools = pools(tree);
        let node_configs = node_configs(tree, &pools);
        let spec = match tree.get(EFFECTIVE_SPEC).map(String::from_utf8_lossy) {
            None => Err(vec![format!("{EFFECTIVE_SPEC}: missing")]),
            Some(text) => validate_text_with(&text, Lifecycle::today(true)).map_err(|errors| {
                errors
                    .iter()
                    .map(|e| format!("{EFFECTIVE_SPEC}: {e}"))
                    .collect()
            }),
        };
        Self {
            tree,
            pools,
            node_configs,
            spec,
        }
    }
}

/// Pool names: the directories under `pools/`.
fn pools(tree: &Tree) -> Vec<String> {
    tree.dirs
        .keys()
        .filter_map(|d| {
            let rest = d.strip_prefix("pools").ok()?;
            let mut parts = rest.components();
            let name = parts.next()?.as_os_str().to_str()?.to_string();
            parts.next().is_none().then_some(name)
        })
        .collect()
}

fn show(path: &Path) -> String {
    path.display().to_string()
}

fn check_pools(parsed: &ParsedTree) -> Vec<String> {
    if parsed.pools.is_empty() {
        return vec!["pools/: no pools rendered".into()];
    }
    parsed
        .pools
        .iter()
        .flat_map(|pool| [USER_DATA, CUSTOM_DATA].map(|f| pool_dir(pool).join(f)))
        .filter(|path| parsed.tree.get(path).is_none())
        .map(|path| format!("{}: missing", show(&path)))
        .collect()
}

/// A parsed `#cloud-config`: its `write_files` contents by path.
struct CloudConfig {
    files: Vec<(String, String)>,
}

fn parse_cloud_config(text: &str) -> Result<CloudConfig, String> {
    if !text.starts_with("#cloud-config\n") {
        return Err("does not start with the #cloud-config header".into());
    }
    let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    let entries = doc
        .get("write_files")
        .and_then(Value::as_sequence)
        .ok_or("has no write_files list")?;
    let mut files = Vec::new();
    for entry in entries {
        let field = |key: &str| entry.get(key).and_then(Value::as_str);
        let path = field("path").ok_or("a write_files entry has no path")?;
        if field("permissions") != Some("0600") || field("owner") != Some("root:root") {
            return Err(format!(
                "{path} must be written with permissions '0600' and owner root:root"
            ));
        }
        let content = field("content").ok_or(format!("{path} has no content"))?;
        files.push((path.to_string(), content.to_string()));
    }
    let starts_agent = doc
        .get("runcmd")
        .and_then(Value::as_sequence)
        .is_some_and(|cmds| {
            cmds.iter().any(|c| {
                let words: Vec<&str> = c
                    .as_sequence()
                    .map(|ws| ws.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                words == ["systemctl", "start", "--no-block", AGENT_UNIT]
            })
        });
    if !starts_agent {
        return Err(format!("runcmd does not start {AGENT_UNIT}"));
    }
    Ok(CloudConfig { files })
}

impl CloudConfig {
    fn file(&self, path: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, c)| c.as_str())
    }
}

/// The NodeConfig of each pool, parsed with the agent's own parser.
fn node_configs(tree: &Tree, pools: &[String]) -> Vec<(PathBuf, Result<NodeConfig, String>)> {
    pools
        .iter()
        .filter_map(|pool| {
            let path = pool_dir(pool).join(USER_DATA);
            let bytes = tree.get(&path)?;
            let parsed = std::str::from_utf8(bytes)
                .map_err(|_| "is not UTF-8".to_string())
                .and_then(parse_cloud_config)
                .and_then(|cc| {
                    let text = cc
                        .file(DEFAULT_PATH)
                        .ok_or(format!("does not write {DEFAULT_PATH}"))?;
                    let config = kubeboot_nodeconfig::parse(text)
                        .map_err(|e| format!("{DEFAULT_PATH}: {e}"))?;
                    if &config.node.pool != pool {
                        return Err(format!(
                            "{DEFAULT_PATH}: node.pool is {:?}, expected {pool:?}",
                            config.node.pool
                        ));
                    }
                    match (cc.file(&cloud_config_path(&config)), tree.get(AZURE_JSON)) {
                        (Some(written), Some(rendered)) if written.as_bytes() != rendered => {
                            Err(format!("its azure.json differs from {AZURE_JSON}"))
                        }
                        (None, Some(_)) => Err("does not write azure.json".into()),
                        (Some(_), None) => {
                            Err(format!("writes azure.json but {AZURE_JSON} is missing"))
                        }
                        _ => Ok(config),
                    }
                });
            Some((path, parsed))
        })
        .collect()
}

fn cloud_config_path(config: &NodeConfig) -> String {
    config
        .provider
        .azure
        .as_ref()
        .map(|a| a.cloud_config_path.clone())
        .unwrap_or_default()
}

fn check_user_data(parsed: &ParsedTree) -> Vec<String> {
    let mut problems = Vec::new();
    let mut configs = Vec::new();
    for (path, config) in &parsed.node_configs {
        match config {
            Ok(config) => configs.push((path, config)),
            Err(e) => problems.push(format!("{}: {e}", show(path))),
        }
    }
    let masters = configs
        .iter()
        .filter(|(_, c)| c.node.role == Role::Master)
        .count();
    if !configs.is_empty() && problems.is_empty() && masters != 1 {
        problems.push(format!(
            "pools/: {masters} master pools, expected exactly one"
        ));
    }
    // Every node must agree on how to reach and trust the cluster.
    if let Some((first_path, first)) = configs.first() {
        for (path, config) in &configs[1..] {
            if config.cluster != first.cluster || config.bootstrap != first.bootstrap {
                problems.push(format!(
                    "{}: cluster or bootstrap settings differ from {}",
                    show(path),
                    show(first_path)
                ));
            }
        }
    }
    problems
}

fn check_custom_data(parsed: &ParsedTree) -> Vec<String> {
    let tree = parsed.tree;
    let mut problems = Vec::new();
    for pool in &parsed.pools {
        let dir = pool_dir(pool);
        let (Some(b64), Some(user_data)) = (
            tree.get(dir.join(CUSTOM_DATA)),
            tree.get(dir.join(USER_DATA)),
        ) else {
            continue;
        };
        let path = show(&dir.join(CUSTOM_DATA));
        let decoded = std::str::from_utf8(b64).ok().and_then(|t| {
            base64::engine::general_purpose::STANDARD
                .decode(t.trim_end())
                .ok()
        });
        let Some(gzipped) = decoded else {
            problems.push(format!("{path}: not base64"));
            continue;
        };
        if gzipped.len() > CUSTOM_DATA_LIMIT {
            problems.push(format!(
                "{path}: {} bytes decoded, over Azure's {CUSTOM_DATA_LIMIT}-byte limit",
                gzipped.len()
            ));
        }
        let mut plain = Vec::new();
        if flate2::read::GzDecoder::new(gzipped.as_slice())
            .read_to_end(&mut plain)
            .is_err()
        {
            problems.push(format!("{path}: not gzip data"));
        } else if plain != user_data {
            problems.push(format!("{path}: does not decode to {USER_DATA}"));
        }
    }
    problems
}

fn check_azure_json(parsed: &ParsedTree) -> Vec<String> {
    let Some(bytes) = parsed.tree.get(AZURE_JSON) else {
        return Vec::new();
    };
    let required = [
        "tenantId",
        "subscriptionId",
        "resourceGroup",
        "location",
        "vnetName",
        "subnetName",
        "securityGroupName",
        "routeTableName",
    ];
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Err(e) => vec![format!("{AZURE_JSON}: not JSON: {e}")],
        Ok(json) => required
            .iter()
            .filter(|key| {
                json.get(**key)
                    .and_then(|v| v.as_str())
                    .is_none_or(str::is_empty)
            })
            .map(|key| format!("{AZURE_JSON}: {key} is missing or empty"))
            .collect(),
    }
}

/// The local secret store's files belong together: every private key is the one of its
/// certificate or public key (a key from another cluster is caught).
fn check_secrets(parsed: &ParsedTree) -> Vec<String> {
    let dir = Path::new(LOCAL_DIR);
    let read = |name: &str| {
        Ok(parsed
            .tree
            .get(dir.join(name))
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned()))
    };
    match LocalStore::from_files(&format!("{LOCAL_DIR}/"), read) {
        Ok(_) => Vec::new(),
        // "secrets in secrets/: ca.key: ..." reads better as "secrets/ca.key: ...".
        Err(e) => vec![match e.source() {
            Some(cause) => format!("{LOCAL_DIR}/{cause}"),
            None => e.to_string(),
        }],
    }
}

/// The CA pin every node carries, and `secrets/ca-cert-hash`, match the stored CA certificate
/// (local secret store only).
fn check_ca_pins(parsed: &ParsedTree) -> Vec<String> {
    let Some(cert) = parsed.tree.get("secrets/ca.crt") else {
        return Vec::new();
    };
    let expected = match std::str::from_utf8(cert)
        .map_err(|e| e.to_string())
        .and_then(|c| ca_cert_hash(c).map_err(|e| e.to_string()))
    {
        Ok(hash) => hash,
        Err(e) => return vec![format!("secrets/ca.crt: {e}")],
    };
    let hash_file = Path::new(LOCAL_DIR).join(CA_HASH_FILE);
    let stale_hash_file = parsed
        .tree
        .get(&hash_file)
        .filter(|text| String::from_utf8_lossy(text).trim_end() != expected)
        .map(|_| format!("{}: is not the hash of secrets/ca.crt", show(&hash_file)));
    parsed
        .node_configs
        .iter()
        .filter_map(|(path, config)| {
            let config = config.as_ref().ok()?;
            (config.bootstrap.ca_cert_hashes != [expected.clone()]).then(|| {
                format!(
                    "{}: bootstrap.caCertHashes does not pin secrets/ca.crt",
                    show(path)
                )
            })
        })
        .chain(stale_hash_file)
        .collect()
}

/// On Azure no custom data may carry a secret: every NodeConfig reads its secrets from the
/// cluster's Key Vault (the one the ARM template creates: join token for all, PKI for masters
/// only), and no user data holds a private key. (The NodeConfig's own validation already refuses
/// an inline token or PKI beside `secrets.keyVault`.)
fn check_secret_sources(parsed: &ParsedTree) -> Vec<String> {
    // A missing or invalid effective spec is reported by the ARM check.
    let Ok(spec) = &parsed.spec else {
        return Vec::new();
    };
    let Some(azure) = &spec.cluster.spec.azure else {
        return Vec::new();
    };
    let vault = spec
        .names()
        .key_vault(&azure.subscription_id, &azure.resource_group);
    let mut problems = Vec::new();
    for (path, config) in &parsed.node_configs {
        let Ok(config) = config else { continue };
        let want_pki = config.is_master().then_some(PKI_SECRET);
        let reads_vault = config.secrets.as_ref().is_some_and(|s| {
            s.key_vault.name == vault
                && s.key_vault.join_token_secret == JOIN_TOKEN_SECRET
                && s.key_vault.pki_secret.as_deref() == want_pki
        });
        if !reads_vault {
            problems.push(format!(
                "{}: on Azure the NodeConfig must read its secrets from Key Vault {vault:?} ({JOIN_TOKEN_SECRET}{})",
                show(path),
                want_pki.map(|p| format!(", {p}")).unwrap_or_default()
            ));
        }
        if parsed
            .tree
            .get(path)
            .is_some_and(|bytes| String::from_utf8_lossy(bytes).contains("PRIVATE KEY"))
        {
            problems.push(format!(
                "{}: carries a private key, but custom data is readable by anyone who can read the scale set",
                show(path)
            ));
        }
    }
    problems
}

/// Everything may hold secrets or cluster details: files 0600, directories 0700.
fn check_modes(parsed: &ParsedTree) -> Vec<String> {
    let tree = parsed.tree;
    let files = tree
        .files
        .iter()
        .filter(|(_, f)| f.mode != FILE_MODE)
        .map(|(p, f)| format!("{}: mode {:04o}, expected {FILE_MODE:04o}", show(p), f.mode));
    let dirs = tree
        .dirs
        .iter()
        .filter(|(_, mode)| **mode != DIR_MODE)
        .map(|(p, mode)| {
            // The empty path is the output directory itself.
            let dir = if p.as_os_str().is_empty() {
                ".".to_string()
            } else {
                show(p)
            };
            format!("{dir}/: mode {mode:04o}, expected {DIR_MODE:04o}")
        });
    files.chain(dirs).collect()
}
