//! HTTPS client for the stand-ins talking to the (stand-in) API server, with the trust kubeadm's
//! discovery steps use: none at all (first cluster-info fetch), or only the pinned cluster CA.
use std::time::Duration;

use anyhow::{bail, Context, Result};
use reqwest::blocking::{Client as Http, RequestBuilder};
use reqwest::Method;

pub enum Trust<'a> {
    /// Accept any server certificate (kubeadm's first, unauthenticated cluster-info fetch).
    Insecure,
    /// Only this CA, with host name verification.
    Ca(&'a str),
}

pub enum Auth<'a> {
    None,
    ClientCert { cert_pem: &'a str, key_pem: &'a str },
    Bearer(&'a str),
}

pub struct Client {
    http: Http,
    base: String,
    bearer: Option<String>,
}

impl Client {
    /// A client that trusts only the kubeconfig's CA and presents its client certificate.
    pub fn from_credentials(creds: &crate::kubeconfig::Credentials) -> Result<Client> {
        Client::new(
            &creds.server,
            Trust::Ca(&creds.ca_pem),
            Auth::ClientCert {
                cert_pem: &creds.client_cert_pem,
                key_pem: &creds.client_key_pem,
            },
        )
    }

    pub fn new(server: &str, trust: Trust, auth: Auth) -> Result<Client> {
        let base = if server.starts_with("https://") {
            server.trim_end_matches('/').to_string()
        } else {
            format!("https://{server}")
        };
        let mut b = Http::builder()
            .use_rustls_tls()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .tls_built_in_root_certs(false);
        b = match trust {
            Trust::Insecure => b.danger_accept_invalid_certs(true),
            Trust::Ca(pem) => b.add_root_certificate(
                reqwest::Certificate::from_pem(pem.as_bytes())
                    .context("cluster CA is not a PEM certificate")?,
            ),
        };
        let mut bearer = None;
        match auth {
            Auth::None => {}
            Auth::ClientCert { cert_pem, key_pem } => {
                b = b.identity(
                    reqwest::Identity::from_pem(format!("{cert_pem}\n{key_pem}").as_bytes())
                        .context("client certificate/key")?,
                );
            }
            Auth::Bearer(t) => bearer = Some(t.to_string()),
        }
        Ok(Client {
            http: b.build()?,
            base,
            bearer,
        })
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Accept", "application/json");
        match &self.bearer {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends a request; returns the status and the parsed JSON body (Null when empty or not JSON).
    pub fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, serde_json::Value)> {
        let mut r = self.request(method.clone(), path);
        if let Some(body) = body {
            r = r.json(body);
        }
        let resp = r
            .send()
            .with_context(|| format!("{method} {}{path}", self.base))?;
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        ))
    }

    /// GET that must answer 200.
    pub fn get(&self, path: &str) -> Result<serde_json::Value> {
        let (status, body) = self.call(Method::GET, path, None)?;
        if status != 200 {
            bail!(
                "GET {path}: HTTP {status}: {}",
                body.get("message")
                    .and_then(|m| m.as_str())
                    .unwrap_or_default()
            );
        }
        Ok(body)
    }
}
