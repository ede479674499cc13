//! Bootstrap tokens as a real cluster keeps them: Secrets of type `bootstrap.kubernetes.io/token` named
//! `bootstrap-token-<id>` in kube-system (kubernetes.io/docs/reference/access-authn-authz/bootstrap-tokens/).
//! Each reader follows its upstream counterpart in kubernetes/kubernetes:
//! - [`authenticate`]: the API server's authenticator (plugin/pkg/auth/authenticator/token/bootstrap/bootstrap.go);
//! - [`signing_tokens`]: the bootstrapsigner that puts `jws-kubeconfig-<id>` into cluster-info
//!   (pkg/controller/bootstrap/util.go, validateSecretForSigning);
//! - [`kubeadm_secret`]: kubeadm's BootstrapTokenToSecret (cmd/kubeadm/app/apis/bootstraptoken/v1/utils.go) with
//!   the v1beta4 defaults (ttl 24h, usages signing+authentication, group
//!   system:bootstrappers:kubeadm:default-node-token; `ttl: 0` = no expiration).
use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::jws::BootstrapToken;
use crate::kubeadm::config::{self, BootstrapTokenSpec};

pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
const NAME_PREFIX: &str = "bootstrap-token-";
const DEFAULT_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
const DEFAULT_USAGES: &[&str] = &["signing", "authentication"];
const DEFAULT_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
/// The group every bootstrap token authenticates as (cluster-bootstrap's BootstrapDefaultGroup).
const BOOTSTRAPPERS: &str = "system:bootstrappers";

/// The state key (see `State::objects`) of the Secret for token `id`.
pub fn secret_key(id: &str) -> String {
    format!("v1/Secret/kube-system/{NAME_PREFIX}{id}")
}

/// One decoded data value, "" when absent or undecodable (cluster-bootstrap's GetData).
fn data(secret: &Value, key: &str) -> String {
    secret["data"][key]
        .as_str()
        .and_then(|v| B64.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok())
        .unwrap_or_default()
}

/// cluster-bootstrap's HasExpired: no expiration never expires; an unparsable one counts as expired.
fn has_expired(secret: &Value, now: OffsetDateTime) -> bool {
    let expiration = data(secret, "expiration");
    !expiration.is_empty()
        && OffsetDateTime::parse(&expiration, &Rfc3339).map_or(true, |at| at <= now)
}

/// RFC 3339 in UTC with whole seconds, as Go's `time.RFC3339` formats it.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .expect("0 is a valid nanosecond")
        .format(&Rfc3339)
        .expect("a UTC time formats as RFC 3339")
}

fn token_secrets(objects: &BTreeMap<String, Value>) -> impl Iterator<Item = &Value> {
    objects
        .iter()
        .filter(|(k, _)| k.starts_with(&secret_key("")))
        .map(|(_, v)| v)
        .filter(|s| s["type"] == SECRET_TYPE)
}

/// The authenticator: `Some(groups)` when `token` matches a valid token Secret — the right type, token-id and
/// token-secret equal, not expired, `usage-bootstrap-authentication` "true", valid `auth-extra-groups`.
pub fn authenticate(
    objects: &BTreeMap<String, Value>,
    token: &BootstrapToken,
    now: OffsetDateTime,
) -> Option<Vec<String>> {
    let secret = objects.get(&secret_key(&token.id))?;
    if secret["type"] != SECRET_TYPE || !secret["data"].is_object() {
        return None;
    }
    let full = format!(
        "{}.{}",
        data(secret, "token-id"),
        data(secret, "token-secret")
    );
    if full != token.full()
        || has_expired(secret, now)
        || data(secret, "usage-bootstrap-authentication") != "true"
    {
        return None;
    }
    let mut groups = vec![BOOTSTRAPPERS.to_string()];
    let extra = data(secret, "auth-extra-groups");
    if !extra.is_empty() {
        for g in extra.split(',') {
            if !config::is_bootstrap_group(g) {
                return None;
            }
            groups.push(g.to_string());
        }
    }
    groups.sort();
    groups.dedup();
    Some(groups)
}

/// The tokens cluster-info is signed with: name `bootstrap-token-<token-id>`, a token-secret, not expired,
/// `usage-bootstrap-signing` "true".
pub fn signing_tokens(
    objects: &BTreeMap<String, Value>,
    now: OffsetDateTime,
) -> Vec<BootstrapToken> {
    token_secrets(objects)
        .filter(|s| {
            s["metadata"]["name"].as_str() == Some(&format!("{NAME_PREFIX}{}", data(s, "token-id")))
                && !has_expired(s, now)
                && data(s, "usage-bootstrap-signing") == "true"
        })
        .filter_map(|s| {
            BootstrapToken::parse(&format!(
                "{}.{}",
                data(s, "token-id"),
                data(s, "token-secret")
            ))
            .ok()
        })
        .collect()
}

/// The Secret `kubeadm init` stores for a configured token (state key, object).
pub fn kubeadm_secret(spec: &BootstrapTokenSpec, now: OffsetDateTime) -> Result<(String, Value)> {
    let token = BootstrapToken::parse(&spec.token)?;
    let (id, secret) = spec.token.split_once('.').expect("parsed");
    let mut d: BTreeMap<String, String> = BTreeMap::new();
    d.insert("token-id".into(), id.into());
    d.insert("token-secret".into(), secret.into());
    let expiration = match (&spec.expires, &spec.ttl) {
        (Some(at), _) => Some(rfc3339(
            OffsetDateTime::parse(at, &Rfc3339).with_context(|| format!("expires {at:?}"))?,
        )),
        (None, ttl) => {
            let ttl = match ttl {
                Some(t) => config::go_duration(t).with_context(|| format!("ttl {t:?}"))?,
                None => DEFAULT_TTL,
            };
            (!ttl.is_zero()).then(|| rfc3339(now + ttl))
        }
    };
    if let Some(e) = expiration {
        d.insert("expiration".into(), e);
    }
    let usages: Vec<&str> = if spec.usages.is_empty() {
        DEFAULT_USAGES.to_vec()
    } else {
        spec.usages.iter().map(String::as_str).collect()
    };
    for u in usages {
        d.insert(format!("usage-bootstrap-{u}"), "true".into());
    }
    let groups = if spec.groups.is_empty() {
        DEFAULT_GROUP.to_string()
    } else {
        spec.groups.join(",")
    };
    d.insert("auth-extra-groups".into(), groups);
    let data: serde_json::Map<String, Value> = d
        .into_iter()
        .map(|(k, v)| (k, json!(B64.encode(v))))
        .collect();
    let mut obj = json!({"apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE,
        "metadata": {"name": format!("{NAME_PREFIX}{}", token.id), "namespace": "kube-system"},
        "data": data});
    super::resources::stamp(&mut obj);
    Ok((secret_key(&token.id), obj))
}

/// A bootstrap token as a test may see it: everything but the token secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapTokenInfo {
    /// The public token id (`[a-z0-9]{6}`), from `token-id`.
    pub id: String,
    /// `expiration` exactly as stored (RFC 3339); `None` when the Secret has none (never expires).
    pub expiration: Option<String>,
    /// The usages set to "true" (`usage-bootstrap-<usage>`), sorted: e.g. `["authentication", "signing"]`.
    pub usages: Vec<String>,
    /// `auth-extra-groups`, split on commas.
    pub groups: Vec<String>,
    /// `description`, "" when absent.
    pub description: String,
    /// The Secret's labels (e.g. `app.kubernetes.io/managed-by`).
    pub labels: BTreeMap<String, String>,
    /// Whether the API server accepts the token now as a bearer (the authenticator's checks).
    pub authenticates: bool,
    /// Whether cluster-info carries a JWS signature with it now (the bootstrapsigner's checks).
    pub signs: bool,
}

/// Every token Secret in kube-system, by id.
pub fn infos(objects: &BTreeMap<String, Value>, now: OffsetDateTime) -> Vec<BootstrapTokenInfo> {
    let signing: Vec<String> = signing_tokens(objects, now)
        .into_iter()
        .map(|t| t.id)
        .collect();
    token_secrets(objects)
        .map(|s| {
            let id = data(s, "token-id");
            let keys: Vec<&String> = s["data"]
                .as_object()
                .map(|m| m.keys().collect())
                .unwrap_or_default();
            let usages = keys
                .iter()
                .filter_map(|k| k.strip_prefix("usage-bootstrap-"))
                .filter(|u| data(s, &format!("usage-bootstrap-{u}")) == "true")
                .map(str::to_string)
                .collect();
            let groups = data(s, "auth-extra-groups");
            let expiration = data(s, "expiration");
            let authenticates = BootstrapToken::parse(&format!("{id}.{}", data(s, "token-secret")))
                .is_ok_and(|t| authenticate(objects, &t, now).is_some());
            BootstrapTokenInfo {
                signs: signing.contains(&id),
                authenticates,
                id,
                expiration: (!expiration.is_empty()).then_some(expiration),
                usages,
                groups: groups
                    .split(',')
                    .filter(|g| !g.is_empty())
                    .map(str::to_string)
                    .collect(),
                description: data(s, "description"),
                labels: serde_json::from_value(s["metadata"]["labels"].clone()).unwrap_or_default(),
            }
        })
        .collect()
}

/// Sets token `id`'s `expiration` to `at` (written as kubeadm writes it).
pub fn set_expiration(
    objects: &mut BTreeMap<String, Value>,
    id: &str,
    at: OffsetDateTime,
) -> Result<()> {
    let Some(secret) = objects.get_mut(&secret_key(id)) else {
        bail!("no bootstrap token Secret {NAME_PREFIX}{id} in kube-system");
    };
    secret["data"]["expiration"] = json!(B64.encode(rfc3339(at)));
    super::resources::stamp(secret);
    Ok(())
}
