//! Join-token rotation on masters: keeps the vault's join token valid for at least another hour,
//! so a node created on any day joins with what the vault holds. Used by the `join-token` phase
//! (once at boot) and by `kubeboot-agent rotate-join-token` (the systemd timer, every 10 min).
//!
//! Time is cut into one-hour windows, i = floor(unix seconds / 3600). Window i's token has an id
//! every master derives alike from i and a random secret; it expires at (i + 2) * 3600. One run:
//! (1) the window's bootstrap-token Secret: `kubectl get` it, or `kubectl create -f -` it (the
//! manifest on stdin) and, if that fails because another master created it first, get it again:
//! the API server creates a name once, so masters running at once converge on one token;
//! (2) the vault's join token, written if it differs (masters writing the same value at once is
//! harmless); (3) kubeboot's own token Secrets (by label) whose expiration has passed, deleted.
//! The token is never logged: it travels in kubectl's stdin and stdout only.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use base64::Engine as _;
use kubeboot_nodeconfig::{check_token, Secret};
use rand::Rng as _;
use serde::Deserialize;
use tracing::info;

use crate::context::Context;
use crate::exec::{deadline, Cmd, Program};
use crate::paths;

/// Length of a rotation window.
pub const WINDOW: Duration = Duration::from_secs(3600);
/// The label on every token Secret kubeboot creates: cleanup deletes only these.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by=kubeboot";
const NAMESPACE: &str = "kube-system";
/// Characters of a token id and secret (kubeadm's `[a-z0-9]`).
const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// One hour of time: window i covers [i * 3600, (i + 1) * 3600).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window(pub u64);

impl Window {
    pub fn at(time: SystemTime) -> Self {
        let seconds = time
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        Self(seconds / WINDOW.as_secs())
    }

    /// The window's token id: i in base 36, six digits. Every master derives the same one, and
    /// windows less than 36^6 hours (~250,000 years) apart never share one. Token ids are
    /// public (the Secret's name carries it); the secret part is what authenticates.
    pub fn token_id(self) -> String {
        let mut n = self.0 % (ALPHABET.len() as u64).pow(6);
        let mut id = [b'0'; 6];
        for digit in id.iter_mut().rev() {
            *digit = ALPHABET[(n % ALPHABET.len() as u64) as usize];
            n /= ALPHABET.len() as u64;
        }
        String::from_utf8(id.to_vec()).expect("ASCII")
    }

    /// When the window's token expires: the end of the next window, so a token read from the
    /// vault during its window is good for at least one more hour.
    pub fn expiration(self) -> SystemTime {
        UNIX_EPOCH + WINDOW * (self.0 as u32 + 2)
    }
}

/// 16 characters of `[a-z0-9]` from the operating system's CSPRNG.
fn random_token_secret() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..16)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// The bootstrap-token Secret of `window` with `token_secret`, for `kubectl create -f -`.
pub fn manifest(window: Window, token_secret: &str) -> Result<Secret> {
    let mut vars = tera::Context::new();
    vars.insert("window", &window.0);
    vars.insert("token_id", &window.token_id());
    vars.insert("token_secret", token_secret);
    vars.insert("expiration", &rfc3339(window.expiration()));
    let text = tera::Tera::one_off(
        include_str!("../manifests/bootstrap-token.yaml"),
        &vars,
        false,
    )?;
    Ok(Secret::new(text))
}

/// A bootstrap-token Secret as `kubectl get -o json` shows it (values base64 in `data`).
#[derive(Deserialize)]
struct TokenSecret {
    metadata: Metadata,
    #[serde(default)]
    data: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Metadata {
    name: String,
}

#[derive(Deserialize)]
struct SecretList {
    items: Vec<TokenSecret>,
}

impl TokenSecret {
    fn field(&self, key: &str) -> Option<String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.data.get(key)?)
            .ok()?;
        String::from_utf8(bytes).ok()
    }

    /// Its expiration (RFC 3339 in UTC, as the bootstrap-token docs ask and kubeadm and kubeboot
    /// write it); None when it has none or one that does not parse: such a token is not valid
    /// for rotation, and not kubeboot's to clean up.
    fn expiration(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339(&self.field("expiration")?).ok()
    }

    /// `<id>.<secret>` when the Secret holds a well-formed token that has not expired at `now`.
    fn valid_token(&self, now: SystemTime) -> Option<Secret> {
        let token = format!(
            "{}.{}",
            self.field("token-id")?,
            self.field("token-secret")?
        );
        let unexpired = self.expiration().is_some_and(|at| at > now);
        (check_token(&token).is_ok() && unexpired).then(|| Secret::new(token))
    }
}

/// Where the JSON of a kubectl answer failed to parse (serde's message may quote the token).
fn parse<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| crate::provider::not_json(what, &e))
}

/// What one rotation did, for the log and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub window: Window,
    /// This run created the window's token (false: another run had).
    pub created: bool,
    /// This run wrote the vault (false: it already held the token).
    pub published: bool,
    /// Expired kubeboot token Secrets this run deleted.
    pub deleted: Vec<String>,
}

/// kubectl as root on this master.
fn kubectl(ctx: &Context, args: &[&str]) -> Cmd {
    let admin_conf = ctx.arg_path(paths::ADMIN_CONF);
    Cmd::new(
        Program::Kube("kubectl"),
        ["--kubeconfig", admin_conf.as_str()]
            .into_iter()
            .chain(args.iter().copied()),
        deadline::KUBECTL_REQUEST,
    )
}

/// The window's token Secret in the cluster, as found at `now`.
enum Found {
    Absent,
    Valid(Secret),
    /// There, but not a valid token (edited by hand, or expired).
    Invalid,
}

fn get_window_token(ctx: &Context, name: &str, now: SystemTime) -> Result<Found> {
    let json = ctx.exec(
        &kubectl(
            ctx,
            &[
                "get",
                "secret",
                "--namespace",
                NAMESPACE,
                name,
                "--ignore-not-found",
                "--output",
                "json",
            ],
        )
        .with_secret_stdout(),
    )?;
    if json.trim().is_empty() {
        return Ok(Found::Absent);
    }
    let secret: TokenSecret = parse(&format!("Secret {name}"), &json)?;
    Ok(match secret.valid_token(now) {
        Some(token) => Found::Valid(token),
        None => Found::Invalid,
    })
}

fn delete(ctx: &Context, name: &str) -> Result<()> {
    ctx.exec(&kubectl(
        ctx,
        &[
            "delete",
            "secret",
            "--namespace",
            NAMESPACE,
            name,
            "--ignore-not-found",
        ],
    ))?;
    Ok(())
}

/// Step (1): the window's token, created unless a master already did.
fn window_token(ctx: &Context, window: Window, now: SystemTime) -> Result<(Secret, bool)> {
    let name = format!("bootstrap-token-{}", window.token_id());
    match get_window_token(ctx, &name, now)? {
        Found::Valid(token) => return Ok((token, false)),
        // Replaced (only then: deleting on "absent" could delete what another master just made).
        Found::Invalid => delete(ctx, &name)?,
        Found::Absent => {}
    }
    let token_secret = random_token_secret();
    let create =
        kubectl(ctx, &["create", "--filename", "-"]).with_stdin(manifest(window, &token_secret)?);
    match ctx.exec(&create) {
        Ok(_) => Ok((
            Secret::new(format!("{}.{token_secret}", window.token_id())),
            true,
        )),
        // Most likely AlreadyExists: another master won the race. Its token is the window's.
        Err(create_error) => match get_window_token(ctx, &name, now)? {
            Found::Valid(token) => Ok((token, false)),
            Found::Absent | Found::Invalid => {
                Err(create_error.context(format!("creating Secret {name}")))
            }
        },
    }
}

/// Step (3): kubeboot's token Secrets whose expiration has passed at `now`.
fn delete_expired(ctx: &Context, now: SystemTime) -> Result<Vec<String>> {
    let json = ctx.exec(
        &kubectl(
            ctx,
            &[
                "get",
                "secrets",
                "--namespace",
                NAMESPACE,
                "--selector",
                MANAGED_BY,
                "--output",
                "json",
            ],
        )
        .with_secret_stdout(),
    )?;
    let list: SecretList = parse("list of kubeboot's token Secrets", &json)?;
    let mut deleted = Vec::new();
    for secret in list.items {
        if secret.expiration().is_some_and(|at| at <= now) {
            delete(ctx, &secret.metadata.name)?;
            deleted.push(secret.metadata.name);
        }
    }
    Ok(deleted)
}

/// One rotation at `now` (see the module's comment). Needs a vault: without one the operator
/// owns the token.
pub fn rotate(ctx: &Context, now: SystemTime) -> Result<Rotation> {
    if ctx.config.secrets.is_none() {
        bail!("join-token rotation needs secrets.keyVault: without a vault the operator owns the join token");
    }
    let window = Window::at(now);
    if ctx.dry_run() {
        println!(
            "[dry-run] {}: would keep the join token of window {} (id {}) in the vault",
            ctx.phase(),
            window.0,
            window.token_id()
        );
        return Ok(Rotation {
            window,
            created: false,
            published: false,
            deleted: Vec::new(),
        });
    }
    let (token, created) = window_token(ctx, window, now)?;
    let provider = ctx.provider();
    let in_vault = ctx.waiting_on(|report| provider.join_token(&ctx.config, report))?;
    let published = in_vault != token;
    if published {
        ctx.waiting_on(|report| provider.publish_join_token(&ctx.config, &token, report))?;
    }
    let deleted = delete_expired(ctx, now)?;
    let rotation = Rotation {
        window,
        created,
        published,
        deleted,
    };
    info!(
        phase = ctx.phase(),
        "join token of window {} (id {}): {}, vault {}, expired tokens deleted: {:?}",
        window.0,
        window.token_id(),
        if created { "created" } else { "already there" },
        if published {
            "updated"
        } else {
            "already current"
        },
        rotation.deleted
    );
    Ok(rotation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_always_gets_the_same_id_and_neighbours_differ() {
        let now = UNIX_EPOCH + Duration::from_secs(1_796_400_000);
        let window = Window::at(now);
        // Anywhere within the hour: the same window, the same id.
        assert_eq!(Window::at(now + Duration::from_secs(1)), window);
        let start = UNIX_EPOCH + WINDOW * window.0 as u32;
        assert_eq!(Window::at(start).token_id(), window.token_id());
        assert_eq!(
            Window::at(start + WINDOW - Duration::from_secs(1)).token_id(),
            window.token_id()
        );
        assert_ne!(Window::at(start + WINDOW).token_id(), window.token_id());
        assert_ne!(
            Window::at(start - Duration::from_secs(1)).token_id(),
            window.token_id()
        );
        // A year of windows: every id well-formed and distinct.
        let ids: std::collections::BTreeSet<String> = (window.0..window.0 + 24 * 366)
            .map(|i| Window(i).token_id())
            .collect();
        assert_eq!(ids.len(), 24 * 366);
        for id in &ids {
            assert!(
                check_token(&format!("{id}.{}", "a".repeat(16))).is_ok(),
                "{id}"
            );
        }
    }

    #[test]
    fn a_token_expires_at_the_end_of_the_next_window() {
        let window = Window(499_000);
        assert_eq!(
            window.expiration(),
            UNIX_EPOCH + Duration::from_secs(499_002 * 3600)
        );
        assert_eq!(rfc3339(Window(0).expiration()), "1970-01-01T02:00:00Z");
    }

    #[test]
    fn secrets_are_random_and_well_formed() {
        let (a, b) = (random_token_secret(), random_token_secret());
        assert_ne!(a, b);
        for secret in [a, b] {
            assert!(check_token(&format!("abcdef.{secret}")).is_ok(), "{secret}");
        }
    }

    #[test]
    fn the_manifest_is_the_documented_bootstrap_token_secret() {
        let window = Window(499_000);
        let manifest = manifest(window, "0123456789abcdef").unwrap();
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(manifest.expose()).unwrap();
        let id = window.token_id();
        assert_eq!(doc["type"], "bootstrap.kubernetes.io/token");
        assert_eq!(
            doc["metadata"]["name"].as_str(),
            Some(format!("bootstrap-token-{id}").as_str())
        );
        assert_eq!(doc["metadata"]["namespace"], "kube-system");
        assert_eq!(
            doc["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "kubeboot"
        );
        let data = &doc["stringData"];
        assert_eq!(data["token-id"].as_str(), Some(id.as_str()));
        assert_eq!(data["token-secret"], "0123456789abcdef");
        assert_eq!(data["expiration"], "2026-12-04T18:00:00Z");
        assert_eq!(data["usage-bootstrap-authentication"], "true");
        assert_eq!(data["usage-bootstrap-signing"], "true");
        assert_eq!(
            data["auth-extra-groups"],
            "system:bootstrappers:kubeadm:default-node-token"
        );
    }

    fn token_secret(id: &str, secret: &str, expiration: &str) -> TokenSecret {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("bootstrap-token-{id}")},
            "data": {"token-id": b64(id), "token-secret": b64(secret), "expiration": b64(expiration)}
        }))
        .unwrap()
    }

    #[test]
    fn only_a_well_formed_unexpired_token_is_valid() {
        let now = UNIX_EPOCH + Duration::from_secs(1_796_400_000); // 2026-12-04T16:00:00Z
        let good = token_secret("abc123", "0123456789abcdef", "2026-12-04T17:00:00Z");
        assert_eq!(
            good.valid_token(now).map(|t| t.expose().to_string()),
            Some("abc123.0123456789abcdef".into())
        );
        let expired = token_secret("abc123", "0123456789abcdef", "2026-12-04T16:00:00Z");
        assert!(expired.valid_token(now).is_none());
        assert_eq!(expired.expiration(), Some(now));
        let malformed = token_secret("abc123", "short", "2026-12-04T17:00:00Z");
        assert!(malformed.valid_token(now).is_none());
        let no_expiration = token_secret("abc123", "0123456789abcdef", "soon");
        assert!(no_expiration.valid_token(now).is_none());
        assert_eq!(no_expiration.expiration(), None);
    }
}
