//! The hardened control plane on a master: kube-apiserver, controller-manager and scheduler flags
//! for kubeadm's ClusterConfiguration, and the files the API server reads (admission, audit policy,
//! encryption at rest, OIDC CA), written 0600 in 0700 directories and mounted into its static pod
//! through kubeadm's `extraVolumes`.
//!
//! What a user may change comes from the NodeConfig's `apiServer` (validated by the contract crate,
//! which refuses flags set here); everything else is fixed so that `kubeboot-agent audit` passes.

use std::path::Path;

use anyhow::{Context as _, Result};
use kubeboot_nodeconfig::NodeConfig;
use serde_json::{json, Value};

use crate::root::Root;
use crate::{paths, policy};

const DEFAULT_AUDIT_POLICY: &str = include_str!("../files/audit-policy.yaml");
/// Finished pods kept before the controller manager deletes them (CIS 1.3.1).
const TERMINATED_POD_GC_THRESHOLD: &str = "1000";

/// A file the API server reads, as the agent writes it on a master.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerFile {
    pub path: &'static str,
    pub contents: String,
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// kube-apiserver flags, in a stable order: kubeboot's, then the user's `extraArgs` (which the
/// contract keeps from overriding any of kubeboot's).
pub fn api_server_args(config: &NodeConfig) -> Vec<(String, String)> {
    let api = &config.api_server;
    let mut plugins: Vec<&str> = Vec::new();
    for plugin in policy::DEFAULT_ADMISSION_PLUGINS
        .iter()
        .copied()
        .chain(api.admission_plugins.iter().map(String::as_str))
    {
        if !plugins.contains(&plugin) {
            plugins.push(plugin);
        }
    }
    let mut args = pairs(&[
        ("authorization-mode", &api.authorization_modes.join(",")),
        ("enable-admission-plugins", &plugins.join(",")),
        (
            "admission-control-config-file",
            paths::ADMISSION_CONFIG_FILE,
        ),
        ("profiling", "false"),
        ("service-account-lookup", "true"),
        ("service-account-extend-token-expiration", "false"),
        ("tls-min-version", "VersionTLS12"),
        ("tls-cipher-suites", &policy::TLS_CIPHER_SUITES.join(",")),
        ("audit-policy-file", paths::AUDIT_POLICY_FILE),
        ("audit-log-path", &api.audit.log_path),
        ("audit-log-maxage", &api.audit.max_age.to_string()),
        ("audit-log-maxbackup", &api.audit.max_backup.to_string()),
        ("audit-log-maxsize", &api.audit.max_size.to_string()),
    ]);
    if encryption_key(config).is_some() {
        args.extend(pairs(&[(
            "encryption-provider-config",
            paths::ENCRYPTION_CONFIG_FILE,
        )]));
    }
    if let Some(oidc) = &api.oidc {
        args.extend(pairs(&[
            ("oidc-issuer-url", &oidc.issuer_url),
            ("oidc-client-id", &oidc.client_id),
            ("oidc-username-claim", &oidc.username_claim),
        ]));
        let optional = [
            ("oidc-username-prefix", &oidc.username_prefix),
            ("oidc-groups-claim", &oidc.groups_claim),
            ("oidc-groups-prefix", &oidc.groups_prefix),
        ];
        for (flag, value) in optional {
            if let Some(v) = value {
                args.push((flag.into(), v.clone()));
            }
        }
        if oidc.ca_pem.is_some() {
            args.push(("oidc-ca-file".into(), paths::OIDC_CA_FILE.into()));
        }
    }
    args.extend(api.extra_args.iter().map(|(k, v)| (k.clone(), v.clone())));
    args
}

/// kube-controller-manager flags kubeboot adds to kubeadm's (which already bind to 127.0.0.1
/// and use per-controller service-account credentials).
pub fn controller_manager_hardening() -> Vec<(String, String)> {
    pairs(&[
        ("profiling", "false"),
        ("terminated-pod-gc-threshold", TERMINATED_POD_GC_THRESHOLD),
        ("bind-address", "127.0.0.1"),
        ("use-service-account-credentials", "true"),
    ])
}

pub fn scheduler_args() -> Vec<(String, String)> {
    pairs(&[("profiling", "false"), ("bind-address", "127.0.0.1")])
}

fn encryption_key(config: &NodeConfig) -> Option<&str> {
    config
        .pki
        .as_ref()
        .and_then(|p| p.encryption_key.as_ref())
        .map(|k| k.expose())
}

fn parent(path: &str) -> &str {
    Path::new(path)
        .parent()
        .and_then(Path::to_str)
        .unwrap_or("/")
}

/// kubeadm v1beta4 `extraVolumes` for the API server: each directory of ours at the same path.
pub fn api_server_volumes(config: &NodeConfig) -> Value {
    let mut dirs = vec![
        (
            "kubeboot-admission",
            parent(paths::ADMISSION_CONFIG_FILE),
            true,
        ),
        (
            "kubeboot-audit-policy",
            parent(paths::AUDIT_POLICY_FILE),
            true,
        ),
        (
            "kubeboot-audit-log",
            parent(&config.api_server.audit.log_path),
            false,
        ),
    ];
    if encryption_key(config).is_some() {
        dirs.push((
            "kubeboot-encryption",
            parent(paths::ENCRYPTION_CONFIG_FILE),
            true,
        ));
    }
    if config
        .api_server
        .oidc
        .as_ref()
        .is_some_and(|o| o.ca_pem.is_some())
    {
        dirs.push(("kubeboot-oidc", parent(paths::OIDC_CA_FILE), true));
    }
    dirs.iter()
        .map(|(name, dir, read_only)| {
            json!({
                "name": name,
                "hostPath": dir,
                "mountPath": dir,
                "readOnly": read_only,
                "pathType": if *read_only { "Directory" } else { "DirectoryOrCreate" },
            })
        })
        .collect()
}

fn yaml(value: &Value) -> Result<String> {
    serde_yaml_ng::to_string(value).context("serialising an API server configuration file")
}

/// The files the API server reads on a master (none on a worker).
pub fn server_files(config: &NodeConfig) -> Result<Vec<ServerFile>> {
    if !config.is_master() {
        return Ok(Vec::new());
    }
    let api = &config.api_server;
    let ps = &api.pod_security;
    let admission = json!({
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AdmissionConfiguration",
        "plugins": [
            {
                "name": "PodSecurity",
                "configuration": {
                    "apiVersion": "pod-security.admission.config.k8s.io/v1",
                    "kind": "PodSecurityConfiguration",
                    "defaults": {
                        "enforce": ps.enforce.as_str(), "enforce-version": "latest",
                        "audit": ps.audit.as_str(), "audit-version": "latest",
                        "warn": ps.warn.as_str(), "warn-version": "latest",
                    },
                    "exemptions": {"usernames": [], "runtimeClasses": [], "namespaces": ps.exempt_namespaces},
                },
            },
            {"name": "EventRateLimit", "path": paths::EVENT_RATE_LIMIT_FILE},
        ],
    });
    // Per-namespace and per-user limits keep one noisy client from flooding etcd with events.
    let event_rate_limit = json!({
        "apiVersion": "eventratelimit.admission.k8s.io/v1alpha1",
        "kind": "Configuration",
        "limits": [
            {"type": "Namespace", "qps": 50, "burst": 100, "cacheSize": 2000},
            {"type": "User", "qps": 10, "burst": 50},
        ],
    });
    let mut files = vec![
        ServerFile {
            path: paths::ADMISSION_CONFIG_FILE,
            contents: yaml(&admission)?,
        },
        ServerFile {
            path: paths::EVENT_RATE_LIMIT_FILE,
            contents: yaml(&event_rate_limit)?,
        },
        ServerFile {
            path: paths::AUDIT_POLICY_FILE,
            contents: api
                .audit
                .policy
                .clone()
                .unwrap_or_else(|| DEFAULT_AUDIT_POLICY.to_string()),
        },
    ];
    if let Some(key) = encryption_key(config) {
        let provider = api.encryption.provider.as_str();
        // New writes use the key; `identity` lets the API server still read Secrets written
        // before encryption was on.
        let encryption = json!({
            "apiVersion": "apiserver.config.k8s.io/v1",
            "kind": "EncryptionConfiguration",
            "resources": [{
                "resources": ["secrets"],
                "providers": [
                    {provider: {"keys": [{"name": "kubeboot-1", "secret": key}]}},
                    {"identity": {}},
                ],
            }],
        });
        files.push(ServerFile {
            path: paths::ENCRYPTION_CONFIG_FILE,
            contents: yaml(&encryption)?,
        });
    }
    if let Some(pem) = api.oidc.as_ref().and_then(|o| o.ca_pem.as_ref()) {
        files.push(ServerFile {
            path: paths::OIDC_CA_FILE,
            contents: pem.clone(),
        });
    }
    Ok(files)
}

/// Writes the API server's files (0600, directories 0700) and the audit log directory; returns
/// whether anything changed.
pub fn write_server_files(root: &Root, config: &NodeConfig) -> Result<bool> {
    let mut changed = false;
    let files = server_files(config)?;
    if files.is_empty() {
        return Ok(false);
    }
    let log_dir = parent(&config.api_server.audit.log_path).to_string();
    for dir in files
        .iter()
        .map(|f| parent(f.path))
        .chain([log_dir.as_str()])
    {
        root.create_dir_with_mode(dir, 0o700)?;
    }
    for file in &files {
        changed |= root.write_if_changed(file.path, file.contents.as_bytes(), 0o600)?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubeboot_nodeconfig::{EncryptionProvider, Oidc};

    /// The test master, with an encryption key (the fixture has none).
    fn master() -> NodeConfig {
        let mut config = crate::testing::fixture::first_master();
        let pki = config.pki.as_mut().unwrap();
        pki.encryption_key = Some(kubeboot_nodeconfig::Secret::new("A".repeat(43) + "="));
        config
    }

    fn arg<'a>(args: &'a [(String, String)], name: &str) -> Option<&'a str> {
        args.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn defaults_turn_on_every_hardening_flag_once() {
        let config = master();
        let args = api_server_args(&config);
        assert_eq!(arg(&args, "authorization-mode"), Some("Node,RBAC"));
        assert_eq!(
            arg(&args, "enable-admission-plugins"),
            Some("NodeRestriction,EventRateLimit,DenyServiceExternalIPs")
        );
        assert_eq!(
            arg(&args, "encryption-provider-config"),
            Some(paths::ENCRYPTION_CONFIG_FILE)
        );
        assert_eq!(arg(&args, "audit-log-maxage"), Some("30"));
        assert!(arg(&args, "oidc-issuer-url").is_none());
        let mut names: Vec<&str> = args.iter().map(|(n, _)| n.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), args.len(), "a flag is set twice: {args:?}");
    }

    /// The contract's refused list is checked against every flag kubeboot writes, with every
    /// optional setting on; kubeadm's own flags are checked by the hardening integration test.
    #[test]
    fn extra_args_can_override_no_flag_kubeboot_writes() {
        let mut config = master();
        config.api_server.oidc = Some(Oidc {
            issuer_url: "https://login.example.com".into(),
            client_id: "kubernetes".into(),
            username_claim: "email".into(),
            username_prefix: Some("oidc:".into()),
            groups_claim: Some("groups".into()),
            groups_prefix: Some("oidc:".into()),
            ca_pem: Some(config.pki.as_ref().unwrap().ca.public.clone()),
        });
        config.api_server.validate("apiServer").unwrap();
        let written = api_server_args(&config);
        assert!(written.len() >= 20, "{written:?}");
        for (name, value) in written {
            let api = kubeboot_nodeconfig::ApiServer {
                extra_args: [(name.clone(), value)].into(),
                ..Default::default()
            };
            assert!(
                api.validate("apiServer").is_err(),
                "extraArgs.{name} is accepted although kubeboot writes --{name}"
            );
        }
    }

    #[test]
    fn user_settings_reach_flags_files_and_volumes() {
        let mut config = master();
        let api = &mut config.api_server;
        api.admission_plugins = vec!["AlwaysPullImages".into(), "EventRateLimit".into()];
        api.extra_args
            .insert("request-timeout".into(), "300s".into());
        api.encryption.provider = EncryptionProvider::Aescbc;
        api.audit.log_path = "/var/log/apiserver/audit.log".into();
        api.oidc = Some(Oidc {
            issuer_url: "https://login.example.com".into(),
            client_id: "kubernetes".into(),
            username_claim: "email".into(),
            username_prefix: None,
            groups_claim: Some("groups".into()),
            groups_prefix: Some("oidc:".into()),
            ca_pem: Some("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n".into()),
        });
        let args = api_server_args(&config);
        assert_eq!(
            arg(&args, "enable-admission-plugins"),
            Some("NodeRestriction,EventRateLimit,DenyServiceExternalIPs,AlwaysPullImages")
        );
        assert_eq!(arg(&args, "request-timeout"), Some("300s"));
        assert_eq!(arg(&args, "oidc-groups-claim"), Some("groups"));
        assert_eq!(arg(&args, "oidc-ca-file"), Some(paths::OIDC_CA_FILE));
        assert_eq!(arg(&args, "oidc-username-prefix"), None);
        let files = server_files(&config).unwrap();
        let encryption = files
            .iter()
            .find(|f| f.path == paths::ENCRYPTION_CONFIG_FILE)
            .unwrap();
        assert!(
            encryption.contents.contains("aescbc:"),
            "{}",
            encryption.contents
        );
        assert!(files.iter().any(|f| f.path == paths::OIDC_CA_FILE));
        let volumes = api_server_volumes(&config);
        let log = volumes
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "kubeboot-audit-log")
            .unwrap();
        assert_eq!(log["hostPath"], "/var/log/apiserver");
        assert_eq!(log["readOnly"], false);
        assert_eq!(volumes.as_array().unwrap().len(), 5);
    }

    #[test]
    fn files_are_private_and_rewritten_only_on_change() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let config = master();
        assert!(write_server_files(&root, &config).unwrap());
        assert!(!write_server_files(&root, &config).unwrap());
        for file in server_files(&config).unwrap() {
            let meta = std::fs::metadata(root.path(file.path)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{}", file.path);
            let dir = std::fs::metadata(root.path(parent(file.path))).unwrap();
            assert_eq!(dir.permissions().mode() & 0o777, 0o700, "{}", file.path);
            // Every file is a YAML document (the OIDC CA aside) the API server can load.
            serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&file.contents).unwrap();
        }
        let key = config
            .pki
            .as_ref()
            .unwrap()
            .encryption_key
            .as_ref()
            .unwrap();
        let written = std::fs::read_to_string(root.path(paths::ENCRYPTION_CONFIG_FILE)).unwrap();
        assert!(written.contains(key.expose()));
        let mut worker = config.clone();
        worker.node.role = kubeboot_nodeconfig::Role::Worker;
        worker.pki = None;
        assert!(server_files(&worker).unwrap().is_empty());
    }
}
