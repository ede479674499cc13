//! `apiServer`: the kube-apiserver settings a user can choose (in the cluster spec, copied into
//! masters' NodeConfig). The agent turns them into kubeadm's ClusterConfiguration, plus files
//! (admission, audit, encryption configuration, OIDC CA) mounted into the API server's static pod.
//!
//! Flags that kubeboot or kubeadm set themselves are refused in `extraArgs`: overriding them would
//! break the cluster or silently undo a hardened default; each has a typed field instead, or none.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::FieldError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiServer {
    /// Extra subject alternative names for the API server certificate.
    #[serde(default, rename = "certSANs", skip_serializing_if = "Vec::is_empty")]
    pub cert_sans: Vec<String>,
    /// Extra kube-apiserver flags (without leading dashes); see `MANAGED_FLAGS` for the refused ones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_args: BTreeMap<String, String>,
    /// Admission plugins enabled in addition to those kubeboot always enables (the agent's
    /// `policy::DEFAULT_ADMISSION_PLUGINS`; the API server's own defaults, PodSecurity among
    /// them, stay on).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admission_plugins: Vec<String>,
    /// Cluster-wide Pod Security Admission defaults (namespaces can still label themselves).
    #[serde(default)]
    pub pod_security: PodSecurity,
    /// Authorization modes, in order. Must include Node and RBAC; AlwaysAllow is refused.
    #[serde(default = "default_authorization_modes")]
    pub authorization_modes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<Oidc>,
    #[serde(default)]
    pub audit: AuditLog,
    #[serde(default)]
    pub encryption: Encryption,
}

impl ApiServer {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl Default for ApiServer {
    fn default() -> Self {
        Self {
            cert_sans: Vec::new(),
            extra_args: BTreeMap::new(),
            admission_plugins: Vec::new(),
            pod_security: PodSecurity::default(),
            authorization_modes: default_authorization_modes(),
            oidc: None,
            audit: AuditLog::default(),
            encryption: Encryption::default(),
        }
    }
}

fn default_authorization_modes() -> Vec<String> {
    vec!["Node".into(), "RBAC".into()]
}

/// Pod Security Standard levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PodSecurityLevel {
    Privileged,
    Baseline,
    Restricted,
}

impl PodSecurityLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            PodSecurityLevel::Privileged => "privileged",
            PodSecurityLevel::Baseline => "baseline",
            PodSecurityLevel::Restricted => "restricted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSecurity {
    #[serde(default = "baseline")]
    pub enforce: PodSecurityLevel,
    #[serde(default = "restricted")]
    pub audit: PodSecurityLevel,
    #[serde(default = "restricted")]
    pub warn: PodSecurityLevel,
    /// Namespaces exempt from the defaults (kube-system runs the CNI and the cloud provider,
    /// which need host access).
    #[serde(default = "default_exempt_namespaces")]
    pub exempt_namespaces: Vec<String>,
}

fn baseline() -> PodSecurityLevel {
    PodSecurityLevel::Baseline
}

fn restricted() -> PodSecurityLevel {
    PodSecurityLevel::Restricted
}

fn default_exempt_namespaces() -> Vec<String> {
    vec!["kube-system".into()]
}

impl Default for PodSecurity {
    fn default() -> Self {
        Self {
            enforce: baseline(),
            audit: restricted(),
            warn: restricted(),
            exempt_namespaces: default_exempt_namespaces(),
        }
    }
}

/// OpenID Connect authentication of users (the `--oidc-*` flags).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Oidc {
    /// `https://` URL of the issuer (must match the tokens' `iss`).
    #[serde(rename = "issuerURL")]
    pub issuer_url: String,
    #[serde(rename = "clientID")]
    pub client_id: String,
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_claim: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_prefix: Option<String>,
    /// PEM bundle of the CA that signs the issuer's TLS certificate, when it is not publicly
    /// trusted; the agent writes it where `--oidc-ca-file` points.
    #[serde(default, rename = "caPEM", skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

fn default_username_claim() -> String {
    "sub".into()
}

/// API server audit logging: the policy and the log file's rotation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditLog {
    /// A complete `audit.k8s.io/v1` Policy document; without it kubeboot's default policy is used
    /// (metadata for everything, no request bodies of secrets, noise from health checks dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Absolute path on the master; its directory is mounted into the API server pod.
    #[serde(default = "default_audit_log_path")]
    pub log_path: String,
    /// Days to keep rotated files (CIS 1.2.17 wants at least 30).
    #[serde(default = "default_max_age")]
    pub max_age: u32,
    /// Rotated files to keep (CIS 1.2.18 wants at least 10).
    #[serde(default = "default_max_backup")]
    pub max_backup: u32,
    /// Megabytes before rotation (CIS 1.2.19 wants at least 100).
    #[serde(default = "default_max_size")]
    pub max_size: u32,
}

fn default_audit_log_path() -> String {
    "/var/log/kubernetes/audit/audit.log".into()
}
fn default_max_age() -> u32 {
    30
}
fn default_max_backup() -> u32 {
    10
}
fn default_max_size() -> u32 {
    100
}

impl Default for AuditLog {
    fn default() -> Self {
        Self {
            policy: None,
            log_path: default_audit_log_path(),
            max_age: default_max_age(),
            max_backup: default_max_backup(),
            max_size: default_max_size(),
        }
    }
}

/// Encryption at rest of Secrets in etcd. The key itself is a cluster secret (`pki.encryptionKey`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Encryption {
    #[serde(default)]
    pub provider: EncryptionProvider,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncryptionProvider {
    /// XSalsa20 + Poly1305: authenticated, and the recommended local provider.
    #[default]
    Secretbox,
    /// AES-CBC with PKCS#7 padding.
    Aescbc,
}

impl EncryptionProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            EncryptionProvider::Secretbox => "secretbox",
            EncryptionProvider::Aescbc => "aescbc",
        }
    }
}

/// Admission plugins of kube-apiserver 1.34–1.36 a user may enable.
pub const KNOWN_ADMISSION_PLUGINS: &[&str] = &[
    "AlwaysDeny",
    "AlwaysPullImages",
    "CertificateApproval",
    "CertificateSigning",
    "CertificateSubjectRestriction",
    "ClusterTrustBundleAttest",
    "DefaultIngressClass",
    "DefaultStorageClass",
    "DefaultTolerationSeconds",
    "DenyServiceExternalIPs",
    "EventRateLimit",
    "ExtendedResourceToleration",
    "LimitPodHardAntiAffinityTopology",
    "LimitRanger",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionWebhook",
    "NamespaceAutoProvision",
    "NamespaceExists",
    "NamespaceLifecycle",
    "NodeRestriction",
    "OwnerReferencesPermissionEnforcement",
    "PersistentVolumeClaimResize",
    "PodNodeSelector",
    "PodSecurity",
    "PodTolerationRestriction",
    "PodTopologyLabels",
    "Priority",
    "ResourceQuota",
    "RuntimeClass",
    "ServiceAccount",
    "StorageObjectInUseProtection",
    "TaintNodesByCondition",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionWebhook",
];

/// Why an admission plugin that exists is refused anyway.
const REFUSED_ADMISSION_PLUGINS: &[(&str, &str)] = &[
    ("AlwaysAdmit", "admits everything (CIS 1.2.10)"),
    (
        "ImagePolicyWebhook",
        "needs a webhook configuration kubeboot does not write",
    ),
];

const AUTHORIZATION_MODES: &[&str] = &[
    "Node",
    "RBAC",
    "Webhook",
    "ABAC",
    "AlwaysDeny",
    "AlwaysAllow",
];

/// kube-apiserver flags `extraArgs` may not set, with the field that controls each instead.
/// kubeadm sets the first group from its own configuration (certificates, etcd, networking);
/// kubeboot sets the rest for the hardened defaults; the last group would undo one of those
/// from another flag. The agent's tests derive the flags actually written (kubeboot's and
/// kubeadm's) and check each is refused here, so the list cannot fall behind.
pub const MANAGED_FLAGS: &[(&str, &str)] = &[
    (
        "advertise-address",
        "set by kubeadm from the node's address",
    ),
    ("allow-privileged", "set by kubeadm"),
    ("client-ca-file", "set by kubeadm (cluster CA)"),
    (
        "enable-bootstrap-token-auth",
        "set by kubeadm (nodes join with bootstrap tokens)",
    ),
    ("etcd-cafile", "set by kubeadm (etcd CA)"),
    ("etcd-certfile", "set by kubeadm"),
    ("etcd-keyfile", "set by kubeadm"),
    ("etcd-servers", "set by kubeadm"),
    ("kubelet-client-certificate", "set by kubeadm"),
    ("kubelet-client-key", "set by kubeadm"),
    ("kubelet-preferred-address-types", "set by kubeadm"),
    ("proxy-client-cert-file", "set by kubeadm (front-proxy CA)"),
    ("proxy-client-key-file", "set by kubeadm"),
    (
        "requestheader-allowed-names",
        "set by kubeadm (front-proxy client)",
    ),
    ("requestheader-client-ca-file", "set by kubeadm"),
    ("requestheader-extra-headers-prefix", "set by kubeadm"),
    ("requestheader-group-headers", "set by kubeadm"),
    ("requestheader-username-headers", "set by kubeadm"),
    (
        "secure-port",
        "set by kubeadm from the control-plane endpoint",
    ),
    ("service-account-issuer", "set by kubeadm"),
    (
        "service-account-key-file",
        "set by kubeadm (shared service-account key)",
    ),
    ("service-account-signing-key-file", "set by kubeadm"),
    ("service-cluster-ip-range", "set from network.serviceCIDR"),
    ("tls-cert-file", "set by kubeadm"),
    ("tls-private-key-file", "set by kubeadm"),
    ("admission-control", "use apiServer.admissionPlugins"),
    (
        "admission-control-config-file",
        "written by kubeboot (apiServer.podSecurity, EventRateLimit)",
    ),
    ("enable-admission-plugins", "use apiServer.admissionPlugins"),
    ("authorization-mode", "use apiServer.authorizationModes"),
    ("audit-policy-file", "use apiServer.audit.policy"),
    ("audit-log-path", "use apiServer.audit.logPath"),
    ("audit-log-maxage", "use apiServer.audit.maxAge"),
    ("audit-log-maxbackup", "use apiServer.audit.maxBackup"),
    ("audit-log-maxsize", "use apiServer.audit.maxSize"),
    ("encryption-provider-config", "use apiServer.encryption"),
    ("oidc-issuer-url", "use apiServer.oidc.issuerURL"),
    ("oidc-client-id", "use apiServer.oidc.clientID"),
    ("oidc-username-claim", "use apiServer.oidc.usernameClaim"),
    ("oidc-username-prefix", "use apiServer.oidc.usernamePrefix"),
    ("oidc-groups-claim", "use apiServer.oidc.groupsClaim"),
    ("oidc-groups-prefix", "use apiServer.oidc.groupsPrefix"),
    ("oidc-ca-file", "use apiServer.oidc.caPEM"),
    ("profiling", "kept off (CIS 1.2.15)"),
    (
        "tls-cipher-suites",
        "kubeboot offers only strong suites (CIS 1.2.29)",
    ),
    ("tls-min-version", "kept at VersionTLS12"),
    ("token-auth-file", "static tokens are refused (CIS 1.2.2)"),
    (
        "service-account-extend-token-expiration",
        "kept false (CIS 1.2.30)",
    ),
    ("service-account-lookup", "kept true (CIS 1.2.21)"),
    (
        "authorization-config",
        "replaces --authorization-mode; use apiServer.authorizationModes",
    ),
    (
        "authentication-config",
        "cannot be combined with the --oidc-* flags; use apiServer.oidc",
    ),
    ("contention-profiling", "profiling is kept off (CIS 1.2.15)"),
    ("etcd-servers-overrides", "kubeadm sets etcd-servers"),
    (
        "requestheader-uid-headers",
        "kubeadm sets the request headers",
    ),
];

/// Admission plugins CIS requires to stay enabled; `disable-admission-plugins` may not list them.
const REQUIRED_ADMISSION_PLUGINS: &[&str] = &[
    "ServiceAccount",
    "NamespaceLifecycle",
    "NodeRestriction",
    "PodSecurity",
];

impl ApiServer {
    /// Refuses `extraArgs` flags and `feature-gates` entries that the API server of `version`
    /// no longer knows (removed in its minor or an earlier one): it would not start.
    pub fn check_for_version(
        &self,
        at: &str,
        version: &crate::KubernetesVersion,
    ) -> Result<(), FieldError> {
        let minor = version.minor();
        let removed_in = |pick: fn(&crate::releases::Release) -> &'static [&'static str],
                          name: &str| {
            crate::releases::RELEASES
                .iter()
                .filter(|r| r.minor <= minor)
                .find(|r| pick(r).contains(&name))
                .map(|r| r.minor)
        };
        for (name, value) in &self.extra_args {
            let field = format!("{at}.extraArgs.{name}");
            if let Some(gone) = removed_in(|r| r.removed_apiserver_flags, name) {
                return Err(FieldError::new(
                    field,
                    format!(
                        "kube-apiserver 1.{gone} removed this flag ({version} would not start)"
                    ),
                ));
            }
            if name != "feature-gates" {
                continue;
            }
            for gate in value.split(',').filter_map(|g| g.split('=').next()) {
                let gate = gate.trim();
                if let Some(gone) = removed_in(|r| r.removed_feature_gates, gate) {
                    return Err(FieldError::new(
                        field,
                        format!("Kubernetes 1.{gone} removed the feature gate {gate} ({version} would not start)"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks the settings and returns every problem; `at` is the path of this section
    /// (`spec.apiServer` or `apiServer`).
    pub fn validate(&self, at: &str) -> Result<(), Vec<FieldError>> {
        let mut problems = Vec::new();
        let mut err = |field: String, msg: String| {
            problems.push(FieldError::new(format!("{at}.{field}"), msg))
        };
        for (i, san) in self.cert_sans.iter().enumerate() {
            let ok = san.parse::<std::net::IpAddr>().is_ok()
                || crate::labels::is_dns_subdomain(san.trim_start_matches("*."));
            if !ok {
                err(
                    format!("certSANs[{i}]"),
                    format!("{san:?} is neither an IP address nor a DNS name"),
                );
            }
        }
        for (name, value) in &self.extra_args {
            let field = format!("extraArgs.{name}");
            if name.starts_with('-') {
                err(field, "write the flag name without leading dashes".into());
                continue;
            }
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                err(
                    field,
                    "is not a kube-apiserver flag name (lowercase letters, digits, dashes)".into(),
                );
                continue;
            }
            if let Some((_, why)) = MANAGED_FLAGS.iter().find(|(f, _)| f == name) {
                err(field, format!("is managed by kubeboot: {why}"));
                continue;
            }
            if value.contains('\n') {
                err(field, "a flag value cannot contain a newline".into());
                continue;
            }
            if name == "disable-admission-plugins" {
                if let Some(p) = value
                    .split(',')
                    .map(str::trim)
                    .find(|p| REQUIRED_ADMISSION_PLUGINS.contains(p))
                {
                    err(field, format!("{p} must stay enabled"));
                    continue;
                }
            }
            if name == "anonymous-auth" && value != "true" {
                err(field, "kubeadm's join discovery and the API server's health probes need anonymous access to a few paths; leave it on (RBAC grants anonymous nothing else)".into());
            }
        }
        for (i, plugin) in self.admission_plugins.iter().enumerate() {
            let field = format!("admissionPlugins[{i}]");
            if let Some((_, why)) = REFUSED_ADMISSION_PLUGINS.iter().find(|(p, _)| p == plugin) {
                err(field, format!("{plugin} is refused: {why}"));
                continue;
            }
            if !KNOWN_ADMISSION_PLUGINS.contains(&plugin.as_str()) {
                err(
                    field,
                    format!(
                        "unknown admission plugin {plugin:?} (known: {})",
                        KNOWN_ADMISSION_PLUGINS.join(", ")
                    ),
                );
            }
        }
        for (i, mode) in self.authorization_modes.iter().enumerate() {
            let field = format!("authorizationModes[{i}]");
            if !AUTHORIZATION_MODES.contains(&mode.as_str()) {
                err(
                    field,
                    format!(
                        "unknown authorization mode {mode:?} (known: {})",
                        AUTHORIZATION_MODES.join(", ")
                    ),
                );
                continue;
            }
            if mode == "AlwaysAllow" {
                err(field, "AlwaysAllow is refused (CIS 1.2.6)".into());
                continue;
            }
            if self.authorization_modes[..i].contains(mode) {
                err(field, format!("{mode} is listed twice"));
            }
        }
        for required in ["Node", "RBAC"] {
            if !self.authorization_modes.iter().any(|m| m == required) {
                err(
                    "authorizationModes".into(),
                    format!("must include {required} (CIS 1.2.7, 1.2.8)"),
                );
            }
        }
        if let Some(oidc) = &self.oidc {
            // A URL with credentials is named without echoing it.
            let https_rest = oidc.issuer_url.strip_prefix("https://");
            if let Err(m) = crate::check_no_userinfo(&oidc.issuer_url) {
                err("oidc.issuerURL".into(), m);
            } else if !https_rest
                .is_some_and(|rest| !rest.is_empty() && !rest.contains(['#', '?', ' ']))
            {
                err(
                    "oidc.issuerURL".into(),
                    format!(
                        "{:?} must be an https:// URL without query or fragment",
                        oidc.issuer_url
                    ),
                );
            }
            if oidc.client_id.trim().is_empty() {
                err("oidc.clientID".into(), "must not be empty".into());
            }
            if oidc.username_claim.trim().is_empty() {
                err("oidc.usernameClaim".into(), "must not be empty".into());
            }
            if let Some(Err(m)) = oidc
                .ca_pem
                .as_deref()
                .map(crate::pem::check_certificate_bundle)
            {
                err("oidc.caPEM".into(), m);
            }
        }
        let audit = &self.audit;
        if !audit.log_path.starts_with('/')
            || audit.log_path.ends_with('/')
            || audit.log_path.contains("..")
        {
            err(
                "audit.logPath".into(),
                format!("{:?} must be an absolute file path", audit.log_path),
            );
        }
        for (field, value, min, item) in [
            ("maxAge", audit.max_age, 30, "1.2.17"),
            ("maxBackup", audit.max_backup, 10, "1.2.18"),
            ("maxSize", audit.max_size, 100, "1.2.19"),
        ] {
            if value < min {
                err(
                    format!("audit.{field}"),
                    format!("{value} is below {min} (CIS {item})"),
                );
            }
        }
        if let Some(Err(m)) = audit.policy.as_deref().map(check_audit_policy) {
            err("audit.policy".into(), m);
        }
        match problems.is_empty() {
            true => Ok(()),
            false => Err(problems),
        }
    }
}

fn check_audit_policy(text: &str) -> Result<(), String> {
    let value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    let get = |k: &str| value.get(k).and_then(|v| v.as_str());
    if get("apiVersion") != Some("audit.k8s.io/v1") || get("kind") != Some("Policy") {
        return Err("must be an audit.k8s.io/v1 Policy".into());
    }
    match value.get("rules").and_then(|r| r.as_sequence()) {
        Some(rules) if !rules.is_empty() => Ok(()),
        _ => Err("needs at least one rule".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(edit: impl FnOnce(&mut ApiServer)) -> String {
        let mut api = ApiServer::default();
        edit(&mut api);
        let problems = api.validate("spec.apiServer").unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        problems[0].to_string()
    }

    #[test]
    fn defaults_are_valid_and_hardened() {
        let api = ApiServer::default();
        api.validate("apiServer").unwrap();
        assert_eq!(api.authorization_modes, ["Node", "RBAC"]);
        assert_eq!(
            (api.audit.max_age, api.audit.max_backup, api.audit.max_size),
            (30, 10, 100)
        );
        assert_eq!(api.encryption.provider, EncryptionProvider::Secretbox);
        // An empty section deserialises to the same defaults.
        let parsed: ApiServer = serde_yaml_ng::from_str("{}").unwrap();
        assert_eq!(parsed, api);
    }

    #[test]
    fn refuses_managed_conflicting_and_unknown_settings() {
        let arg = |k: &str, v: &str| {
            let (k, v) = (k.to_string(), v.to_string());
            refused(move |a| {
                a.extra_args.insert(k, v);
            })
        };
        assert_eq!(arg("authorization-mode", "AlwaysAllow"), "spec.apiServer.extraArgs.authorization-mode: is managed by kubeboot: use apiServer.authorizationModes");
        assert!(arg("etcd-servers", "x").contains("set by kubeadm"));
        assert!(arg("tls-min-version", "VersionTLS10").contains("is managed by kubeboot"));
        assert!(arg("authorization-config", "/etc/authz.yaml").contains("authorizationModes"));
        assert!(arg("--v", "2").contains("without leading dashes"));
        assert!(arg("Bad_Flag", "2").contains("not a kube-apiserver flag name"));
        assert!(arg(
            "disable-admission-plugins",
            "DefaultStorageClass,PodSecurity"
        )
        .contains("PodSecurity must stay enabled"));
        assert!(arg("anonymous-auth", "false").contains("anonymous"));
        assert!(
            refused(|a| a.admission_plugins = vec!["AlwaysAdmit".into()])
                .contains("admissionPlugins[0]: AlwaysAdmit is refused")
        );
        assert!(
            refused(|a| a.admission_plugins = vec!["PodSecurityPolicy".into()])
                .contains("unknown admission plugin")
        );
        assert!(refused(
            |a| a.authorization_modes = vec!["Node".into(), "RBAC".into(), "AlwaysAllow".into()]
        )
        .contains("authorizationModes[2]"));
        assert!(
            refused(|a| a.authorization_modes = vec!["RBAC".into()]).contains("must include Node")
        );
        assert!(refused(
            |a| a.authorization_modes = vec!["Node".into(), "RBAC".into(), "RBAC".into()]
        )
        .contains("twice"));
        assert!(refused(|a| a.audit.max_age = 7).contains("audit.maxAge: 7 is below 30"));
        assert!(refused(|a| a.audit.log_path = "audit.log".into()).contains("audit.logPath"));
        assert!(refused(|a| a.audit.policy = Some("kind: Policy".into())).contains("audit.policy"));
        assert!(refused(|a| a.cert_sans = vec!["bad name!".into()]).contains("certSANs[0]"));
        let oidc = Oidc {
            issuer_url: "http://issuer".into(),
            client_id: "k".into(),
            username_claim: "sub".into(),
            username_prefix: None,
            groups_claim: None,
            groups_prefix: None,
            ca_pem: None,
        };
        assert!(refused(|a| a.oidc = Some(oidc.clone())).contains("oidc.issuerURL"));
        let ok = ApiServer {
            oidc: Some(Oidc {
                issuer_url: "https://login.example.com/tenant".into(),
                ..oidc
            }),
            admission_plugins: vec!["AlwaysPullImages".into()],
            cert_sans: vec!["10.0.0.1".into(), "api.example.com".into()],
            extra_args: [("request-timeout".to_string(), "300s".to_string())].into(),
            ..ApiServer::default()
        };
        ok.validate("spec.apiServer").unwrap();
    }
}

#[cfg(test)]
mod key_tests {
    #[test]
    fn encryption_key_is_32_bytes_of_base64() {
        use crate::check_encryption_key;
        check_encryption_key("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
        assert!(check_encryption_key("AAAA")
            .unwrap_err()
            .contains("found 3 bytes"));
        assert!(check_encryption_key("not base64!")
            .unwrap_err()
            .contains("not base64"));
    }
}
