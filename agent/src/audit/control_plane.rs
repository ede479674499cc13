//! CIS 1.2.x (API server), 1.3.x (controller manager), 1.4.x (scheduler) and 2.x (etcd): flags
//! of the static pods kubeadm runs, read from their manifests.

use std::collections::BTreeMap;

use kubeboot_nodeconfig::Role;
use serde::Deserialize;

use super::{manifest, verdict, Finding, Node, Status};
use crate::paths;

type Flags = BTreeMap<String, String>;

/// Strong TLS cipher suites CIS 1.2.29 accepts for the API server.
pub const APISERVER_STRONG_CIPHERS: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// Encryption-at-rest providers CIS 1.2.28 accepts (identity, i.e. plain text, is not one).
const STRONG_ENCRYPTION_PROVIDERS: &[&str] = &["aescbc", "kms", "secretbox"];

#[derive(Clone, Copy)]
enum Component {
    ApiServer,
    ControllerManager,
    Scheduler,
    Etcd,
}

impl Component {
    fn manifest(self) -> &'static str {
        match self {
            Component::ApiServer => paths::API_SERVER_MANIFEST,
            Component::ControllerManager => paths::CONTROLLER_MANAGER_MANIFEST,
            Component::Scheduler => paths::SCHEDULER_MANIFEST,
            Component::Etcd => paths::ETCD_MANIFEST,
        }
    }
}

/// What one item requires of the flags.
enum Rule {
    /// Every flag is set to a non-empty value.
    Set(&'static [&'static str]),
    Unset(&'static str),
    Is(&'static str, &'static str),
    /// Unset (the component's default is compliant) or set to this value.
    IsOrUnset(&'static str, &'static str),
    /// A comma-separated list flag that contains the item.
    Has(&'static str, &'static str),
    /// Unset, or a comma-separated list without the item.
    LacksOrUnset(&'static str, &'static str),
    AtLeast(&'static str, u64),
    /// Set, and every comma-separated element is in the allowed list.
    OnlyFrom(&'static str, &'static [&'static str]),
    /// Anything the flags alone cannot tell.
    Custom(fn(&Node, &Flags) -> (bool, String)),
}

struct FlagItem {
    id: &'static str,
    title: &'static str,
    component: Component,
    rule: Rule,
}

const fn item(id: &'static str, title: &'static str, component: Component, rule: Rule) -> FlagItem {
    FlagItem {
        id,
        title,
        component,
        rule,
    }
}

use Component::{ApiServer as Api, ControllerManager as Cm, Etcd, Scheduler as Sched};

const ITEMS: &[FlagItem] = &[
    item(
        "1.2.2",
        "--token-auth-file is not set",
        Api,
        Rule::Unset("token-auth-file"),
    ),
    item(
        "1.2.3",
        "The DenyServiceExternalIPs admission plugin is enabled",
        Api,
        Rule::Has("enable-admission-plugins", "DenyServiceExternalIPs"),
    ),
    item(
        "1.2.4",
        "--kubelet-client-certificate and --kubelet-client-key are set",
        Api,
        Rule::Set(&["kubelet-client-certificate", "kubelet-client-key"]),
    ),
    item(
        "1.2.6",
        "--authorization-mode is not AlwaysAllow",
        Api,
        Rule::Custom(authorization_not_always_allow),
    ),
    item(
        "1.2.7",
        "--authorization-mode includes Node",
        Api,
        Rule::Has("authorization-mode", "Node"),
    ),
    item(
        "1.2.8",
        "--authorization-mode includes RBAC",
        Api,
        Rule::Has("authorization-mode", "RBAC"),
    ),
    item(
        "1.2.9",
        "The EventRateLimit admission plugin is enabled",
        Api,
        Rule::Has("enable-admission-plugins", "EventRateLimit"),
    ),
    item(
        "1.2.10",
        "The AlwaysAdmit admission plugin is not enabled",
        Api,
        Rule::LacksOrUnset("enable-admission-plugins", "AlwaysAdmit"),
    ),
    item(
        "1.2.12",
        "The ServiceAccount admission plugin is not disabled",
        Api,
        Rule::LacksOrUnset("disable-admission-plugins", "ServiceAccount"),
    ),
    item(
        "1.2.13",
        "The NamespaceLifecycle admission plugin is not disabled",
        Api,
        Rule::LacksOrUnset("disable-admission-plugins", "NamespaceLifecycle"),
    ),
    item(
        "1.2.14",
        "The NodeRestriction admission plugin is enabled",
        Api,
        Rule::Has("enable-admission-plugins", "NodeRestriction"),
    ),
    item(
        "1.2.15",
        "API server --profiling is false",
        Api,
        Rule::Is("profiling", "false"),
    ),
    item(
        "1.2.16",
        "--audit-log-path is set",
        Api,
        Rule::Set(&["audit-log-path"]),
    ),
    item(
        "1.2.17",
        "--audit-log-maxage is 30 or more",
        Api,
        Rule::AtLeast("audit-log-maxage", 30),
    ),
    item(
        "1.2.18",
        "--audit-log-maxbackup is 10 or more",
        Api,
        Rule::AtLeast("audit-log-maxbackup", 10),
    ),
    item(
        "1.2.19",
        "--audit-log-maxsize is 100 or more",
        Api,
        Rule::AtLeast("audit-log-maxsize", 100),
    ),
    item(
        "1.2.21",
        "--service-account-lookup is true",
        Api,
        Rule::IsOrUnset("service-account-lookup", "true"),
    ),
    item(
        "1.2.22",
        "--service-account-key-file is set",
        Api,
        Rule::Set(&["service-account-key-file"]),
    ),
    item(
        "1.2.23",
        "--etcd-certfile and --etcd-keyfile are set",
        Api,
        Rule::Set(&["etcd-certfile", "etcd-keyfile"]),
    ),
    item(
        "1.2.24",
        "--tls-cert-file and --tls-private-key-file are set",
        Api,
        Rule::Set(&["tls-cert-file", "tls-private-key-file"]),
    ),
    item(
        "1.2.25",
        "--client-ca-file is set",
        Api,
        Rule::Set(&["client-ca-file"]),
    ),
    item(
        "1.2.26",
        "--etcd-cafile is set",
        Api,
        Rule::Set(&["etcd-cafile"]),
    ),
    item(
        "1.2.27",
        "--encryption-provider-config is set",
        Api,
        Rule::Set(&["encryption-provider-config"]),
    ),
    item(
        "1.2.28",
        "Encryption providers are appropriately configured",
        Api,
        Rule::Custom(encryption_provider_is_strong),
    ),
    item(
        "1.2.29",
        "The API server only uses strong cryptographic ciphers",
        Api,
        Rule::OnlyFrom("tls-cipher-suites", APISERVER_STRONG_CIPHERS),
    ),
    item(
        "1.2.30",
        "--service-account-extend-token-expiration is false",
        Api,
        Rule::Is("service-account-extend-token-expiration", "false"),
    ),
    item(
        "1.3.1",
        "--terminated-pod-gc-threshold is set",
        Cm,
        Rule::Set(&["terminated-pod-gc-threshold"]),
    ),
    item(
        "1.3.2",
        "Controller manager --profiling is false",
        Cm,
        Rule::Is("profiling", "false"),
    ),
    item(
        "1.3.3",
        "--use-service-account-credentials is true",
        Cm,
        Rule::Is("use-service-account-credentials", "true"),
    ),
    item(
        "1.3.4",
        "--service-account-private-key-file is set",
        Cm,
        Rule::Set(&["service-account-private-key-file"]),
    ),
    item(
        "1.3.5",
        "--root-ca-file is set",
        Cm,
        Rule::Set(&["root-ca-file"]),
    ),
    item(
        "1.3.6",
        "RotateKubeletServerCertificate is not disabled",
        Cm,
        Rule::LacksOrUnset("feature-gates", "RotateKubeletServerCertificate=false"),
    ),
    item(
        "1.3.7",
        "Controller manager --bind-address is 127.0.0.1",
        Cm,
        Rule::Is("bind-address", "127.0.0.1"),
    ),
    item(
        "1.4.1",
        "Scheduler --profiling is false",
        Sched,
        Rule::Is("profiling", "false"),
    ),
    item(
        "1.4.2",
        "Scheduler --bind-address is 127.0.0.1",
        Sched,
        Rule::Is("bind-address", "127.0.0.1"),
    ),
    item(
        "2.1",
        "etcd --cert-file and --key-file are set",
        Etcd,
        Rule::Set(&["cert-file", "key-file"]),
    ),
    item(
        "2.2",
        "etcd --client-cert-auth is true",
        Etcd,
        Rule::Is("client-cert-auth", "true"),
    ),
    item(
        "2.3",
        "etcd --auto-tls is not true",
        Etcd,
        Rule::IsOrUnset("auto-tls", "false"),
    ),
    item(
        "2.4",
        "etcd --peer-cert-file and --peer-key-file are set",
        Etcd,
        Rule::Set(&["peer-cert-file", "peer-key-file"]),
    ),
    item(
        "2.5",
        "etcd --peer-client-cert-auth is true",
        Etcd,
        Rule::Is("peer-client-cert-auth", "true"),
    ),
    item(
        "2.6",
        "etcd --peer-auto-tls is not true",
        Etcd,
        Rule::IsOrUnset("peer-auto-tls", "false"),
    ),
    item(
        "2.7",
        "A unique certificate authority is used for etcd",
        Etcd,
        Rule::Custom(etcd_ca_is_unique),
    ),
];

pub(super) fn checks(node: &Node, role: Role) -> Vec<Finding> {
    let flags_of = |c: Component| manifest::flags(node, c.manifest());
    let parsed = [Api, Cm, Sched, Etcd].map(|c| (c.manifest(), flags_of(c)));
    ITEMS
        .iter()
        .map(|item| {
            if role != Role::Master {
                return Finding::not_on_worker(item.id, item.title);
            }
            let manifest = item.component.manifest();
            let verdict = match &parsed
                .iter()
                .find(|(m, _)| *m == manifest)
                .expect("every component is parsed")
                .1
            {
                Err(e) => (Status::Fail, e.clone()),
                Ok(flags) => {
                    let (ok, evidence) = judge(node, flags, &item.rule);
                    (verdict(ok), evidence)
                }
            };
            Finding::new(item.id, item.title, verdict)
        })
        .collect()
}

fn shown(flags: &Flags, name: &str) -> String {
    match flags.get(name) {
        Some(v) => format!("--{name}={v}"),
        None => format!("--{name} not set"),
    }
}

fn list<'a>(flags: &'a Flags, name: &str) -> Vec<&'a str> {
    flags
        .get(name)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn judge(node: &Node, flags: &Flags, rule: &Rule) -> (bool, String) {
    match rule {
        Rule::Set(names) => (
            names
                .iter()
                .all(|n| flags.get(*n).is_some_and(|v| !v.is_empty())),
            names
                .iter()
                .map(|n| shown(flags, n))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        Rule::Unset(name) => (!flags.contains_key(*name), shown(flags, name)),
        Rule::Is(name, want) => (
            flags.get(*name).is_some_and(|v| v == want),
            shown(flags, name),
        ),
        Rule::IsOrUnset(name, want) => (
            flags.get(*name).is_none_or(|v| v == want),
            shown(flags, name),
        ),
        Rule::Has(name, want) => (list(flags, name).contains(want), shown(flags, name)),
        Rule::LacksOrUnset(name, unwanted) => {
            (!list(flags, name).contains(unwanted), shown(flags, name))
        }
        Rule::AtLeast(name, min) => (
            flags
                .get(*name)
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|v| v >= *min),
            shown(flags, name),
        ),
        Rule::OnlyFrom(name, allowed) => {
            let values = list(flags, name);
            let outside: Vec<&str> = values
                .iter()
                .copied()
                .filter(|v| !allowed.contains(v))
                .collect();
            let evidence = match outside.is_empty() {
                true => shown(flags, name),
                false => format!("{} (weak: {})", shown(flags, name), outside.join(",")),
            };
            (!values.is_empty() && outside.is_empty(), evidence)
        }
        Rule::Custom(check) => check(node, flags),
    }
}

fn authorization_not_always_allow(_: &Node, flags: &Flags) -> (bool, String) {
    // Unset means the API server's default, AlwaysAllow.
    let modes = list(flags, "authorization-mode");
    (
        !modes.is_empty() && !modes.contains(&"AlwaysAllow"),
        shown(flags, "authorization-mode"),
    )
}

#[derive(Deserialize)]
struct EncryptionConfiguration {
    #[serde(default)]
    resources: Vec<EncryptedResources>,
}

#[derive(Deserialize)]
struct EncryptedResources {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    providers: Vec<serde_yaml_ng::Mapping>,
}

/// The first provider listed for `secrets` is the one that encrypts new writes; it must be a
/// real cipher, not `identity`.
fn encryption_provider_is_strong(node: &Node, flags: &Flags) -> (bool, String) {
    let Some(path) = flags.get("encryption-provider-config") else {
        return (false, "--encryption-provider-config not set".into());
    };
    let config: EncryptionConfiguration = match node
        .read(path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_yaml_ng::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => return (false, format!("{path}: {e}")),
    };
    let first = config
        .resources
        .iter()
        .find(|r| r.resources.iter().any(|x| x == "secrets" || x == "*.*"))
        .and_then(|r| r.providers.first())
        .and_then(|p| p.keys().next())
        .and_then(|k| k.as_str().map(str::to_string));
    match first {
        Some(p) => (
            STRONG_ENCRYPTION_PROVIDERS.contains(&p.as_str()),
            format!("{path}: secrets are written with provider {p}"),
        ),
        None => (false, format!("{path}: no provider for secrets")),
    }
}

/// etcd must trust only its own CA, not the cluster CA that signs every client certificate.
fn etcd_ca_is_unique(node: &Node, flags: &Flags) -> (bool, String) {
    let Some(etcd_ca) = flags.get("trusted-ca-file") else {
        return (false, "--trusted-ca-file not set".into());
    };
    let cluster_ca = manifest::flags(node, paths::API_SERVER_MANIFEST)
        .ok()
        .and_then(|f| f.get("client-ca-file").cloned());
    let Some(cluster_ca) = cluster_ca else {
        return (false, "the API server's --client-ca-file is unknown".into());
    };
    match (node.read(etcd_ca), node.read(&cluster_ca)) {
        (Ok(a), Ok(b)) => (
            etcd_ca != &cluster_ca && a != b,
            format!(
                "etcd trusts {etcd_ca}, the cluster CA is {cluster_ca}: {}",
                if a == b {
                    "same certificate"
                } else {
                    "different certificates"
                }
            ),
        ),
        (Err(e), _) => (false, format!("{etcd_ca}: {e}")),
        (_, Err(e)) => (false, format!("{cluster_ca}: {e}")),
    }
}
