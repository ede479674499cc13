//! Reading and writing a Key Vault secret as this VM: an access token for the system-assigned
//! identity from IMDS (`/metadata/identity/oauth2/token`, `Metadata: true`), then
//! `GET /secrets/<name>` or `PUT /secrets/<name>` with `{"value": ...}` (Set Secret:
//! learn.microsoft.com/rest/api/keyvault/secrets/set-secret/set-secret) over HTTPS with it. Every answer the cloud can change its mind about (no token yet, 401/403 while a
//! role assignment propagates, 404 before the secret is written, 429, 5xx, timeouts) is retried
//! until it works, reporting why; an answer that can never parse is not.

use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use kubeboot_nodeconfig::Secret;
use reqwest::blocking::{Client, Response};
use serde::Deserialize;

use super::environment::Environment;
use crate::provider::{http_error, not_json, Report};
use crate::retry::{retry_after_seconds, Backoff, Failure};

const IDENTITY_API_VERSION: &str = "2018-02-01";
const KEY_VAULT_API_VERSION: &str = "7.4";

pub struct KeyVault<'a> {
    env: &'a Environment,
    imds: Client,
    https: Client,
    backoff: Backoff,
}

#[derive(Deserialize)]
struct IdentityToken {
    access_token: Secret,
}

#[derive(Deserialize)]
struct SecretBundle {
    value: Secret,
}

impl<'a> KeyVault<'a> {
    pub fn new(env: &'a Environment, backoff: Backoff, timeout: Duration) -> Result<Self> {
        Ok(Self {
            env,
            imds: env.imds_client(timeout)?,
            https: env.https_client(timeout)?,
            backoff,
        })
    }

    /// The value of secret `name` in `vault`, once `parse` accepts it; waits as long as it takes.
    pub fn get<T>(
        &self,
        vault: &str,
        name: &str,
        parse: impl Fn(Secret) -> Result<T>,
        report: Report,
    ) -> Result<T> {
        let url = self.secret_url(vault, name);
        self.backoff
            .retry_reporting(
                |_| -> Result<T, Failure> {
                    let token = self.identity_token()?;
                    let response = self
                        .https
                        .get(&url)
                        .bearer_auth(token.expose())
                        .send()
                        .map_err(|e| http_error(&format!("Key Vault {vault}"), &e))?;
                    let bundle: SecretBundle = json(
                        check(
                            response,
                            &format!("Key Vault {vault}, secret {name}"),
                            "read",
                        )?,
                        &format!("secret {name}"),
                    )?;
                    parse(bundle.value).map_err(|e| {
                        Failure::permanent(e.context(format!("secret {name} in vault {vault}")))
                    })
                },
                report,
            )
            .with_context(|| format!("reading secret {name} from Key Vault {vault}"))
    }

    /// Writes `value` as the new version of secret `name` in `vault`; waits as long as it takes
    /// (a 403 too: the role assignment may still be propagating).
    pub fn set(&self, vault: &str, name: &str, value: &Secret, report: Report) -> Result<()> {
        let url = self.secret_url(vault, name);
        let body = serde_json::json!({ "value": value.expose() }).to_string();
        self.backoff
            .retry_reporting(
                |_| -> Result<(), Failure> {
                    let token = self.identity_token()?;
                    let response = self
                        .https
                        .put(&url)
                        .bearer_auth(token.expose())
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.clone())
                        .send()
                        .map_err(|e| http_error(&format!("Key Vault {vault}"), &e))?;
                    check(
                        response,
                        &format!("Key Vault {vault}, secret {name}"),
                        "write",
                    )?;
                    Ok(())
                },
                report,
            )
            .with_context(|| format!("writing secret {name} to Key Vault {vault}"))
    }

    fn secret_url(&self, vault: &str, name: &str) -> String {
        format!(
            "{}/secrets/{name}?api-version={KEY_VAULT_API_VERSION}",
            self.env.vault_url(vault)
        )
    }

    /// An access token for Key Vault as this VM's system-assigned identity.
    fn identity_token(&self) -> Result<Secret, Failure> {
        let response = self
            .imds
            .get(format!("{}/metadata/identity/oauth2/token", self.env.imds))
            .query(&[
                ("api-version", IDENTITY_API_VERSION),
                ("resource", self.env.key_vault_resource.as_str()),
            ])
            .header("Metadata", "true")
            .send()
            .map_err(|e| http_error("IMDS identity endpoint", &e))?;
        let token: IdentityToken = json(
            check(
                response,
                "IMDS identity endpoint (is a system-assigned identity enabled?)",
                "use",
            )?,
            "identity token",
        )?;
        Ok(token.access_token)
    }
}

/// A success passes; any other status is worth retrying (the cloud can still change: identities
/// get assigned, role assignments propagate, secrets get written), honouring `Retry-After`.
/// Except 400 (IMDS or Key Vault): a request the server calls malformed stays malformed (the
/// unit's restart still tries again later). `access` (read, write) words the 403.
fn check(response: Response, what: &str, access: &str) -> Result<Response, Failure> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let after = retry_after_seconds(
        response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
    );
    let hint = match status.as_u16() {
        401 => ": the token was not accepted".to_string(),
        403 => format!(": this VM's identity lacks the role to {access} it (role assignments can take minutes to apply)"),
        404 => ": not found (not written yet?)".to_string(),
        429 => ": throttled".to_string(),
        _ => String::new(),
    };
    let error = anyhow!("{what} answered {status}{hint}");
    match status.as_u16() {
        400 => Err(Failure::permanent(error)),
        _ => Err(Failure::Transient { error, after }),
    }
}

/// A body that does not parse will not parse next time either.
fn json<T: serde::de::DeserializeOwned>(response: Response, what: &str) -> Result<T, Failure> {
    let body = response
        .bytes()
        .map_err(|e| http_error(&format!("reading the {what}"), &e))?;
    serde_json::from_slice(&body).map_err(|e| Failure::permanent(not_json(what, &e)))
}
