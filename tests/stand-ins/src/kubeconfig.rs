//! kubeconfig files: writing them as kubeadm does and reading the parts a client needs.
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::{fsx, Root};

#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(rename_all = "kebab-case")]
pub struct KubeConfig {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub clusters: Vec<Named<Cluster>>,
    #[serde(default)]
    pub users: Vec<Named<User>>,
    #[serde(default)]
    pub contexts: Vec<Named<ContextEntry>>,
    #[serde(default)]
    pub current_context: String,
}

#[derive(Serialize, Deserialize, Debug, Default)]
pub struct Named<T> {
    pub name: String,
    #[serde(flatten)]
    pub item: T,
}

#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(rename_all = "kebab-case")]
pub struct Cluster {
    pub cluster: ClusterBody,
}

#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(rename_all = "kebab-case")]
pub struct ClusterBody {
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Default)]
pub struct User {
    pub user: UserBody,
}

#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(rename_all = "kebab-case")]
pub struct UserBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Default)]
pub struct ContextEntry {
    pub context: ContextBody,
}

#[derive(Serialize, Deserialize, Debug, Default)]
pub struct ContextBody {
    pub cluster: String,
    pub user: String,
}

impl KubeConfig {
    /// A kubeconfig with only the cluster (what kubeadm publishes in `cluster-info`).
    pub fn cluster_only(server: &str, ca_pem: &str) -> KubeConfig {
        KubeConfig {
            api_version: "v1".into(),
            kind: "Config".into(),
            clusters: vec![Named {
                name: String::new(),
                item: Cluster {
                    cluster: ClusterBody {
                        server: server.into(),
                        certificate_authority_data: Some(B64.encode(ca_pem)),
                        certificate_authority: None,
                    },
                },
            }],
            ..Default::default()
        }
    }

    pub fn with_user(
        cluster_name: &str,
        server: &str,
        ca_pem: &str,
        user_name: &str,
        user: UserBody,
    ) -> KubeConfig {
        let mut kc = KubeConfig::cluster_only(server, ca_pem);
        kc.clusters[0].name = cluster_name.into();
        let context = format!("{user_name}@{cluster_name}");
        kc.users.push(Named {
            name: user_name.into(),
            item: User { user },
        });
        kc.contexts.push(Named {
            name: context.clone(),
            item: ContextEntry {
                context: ContextBody {
                    cluster: cluster_name.into(),
                    user: user_name.into(),
                },
            },
        });
        kc.current_context = context;
        kc
    }

    pub fn embedded_client(cert_pem: &str, key_pem: &str) -> UserBody {
        UserBody {
            client_certificate_data: Some(B64.encode(cert_pem)),
            client_key_data: Some(B64.encode(key_pem)),
            ..Default::default()
        }
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("kubeconfig serialises")
    }

    pub fn parse(text: &str) -> Result<KubeConfig> {
        let kc: KubeConfig = serde_yaml_ng::from_str(text).context("not a kubeconfig")?;
        if kc.kind != "Config" || kc.api_version != "v1" {
            bail!("kubeconfig must be apiVersion v1, kind Config");
        }
        Ok(kc)
    }

    /// The first cluster's server and CA PEM (`certificate-authority` paths resolve under `root`).
    pub fn cluster(&self, root: &Root, base: &Path) -> Result<(String, String)> {
        let cluster = &self
            .clusters
            .first()
            .ok_or_else(|| anyhow!("kubeconfig has no cluster"))?
            .item
            .cluster;
        let ca = data_or_file(
            &cluster.certificate_authority_data,
            &cluster.certificate_authority,
            root,
            base,
        )
        .context("certificate-authority")?
        .ok_or_else(|| anyhow!("kubeconfig cluster has no certificate authority"))?;
        Ok((cluster.server.clone(), ca))
    }
}

/// What a client needs from a kubeconfig.
pub struct Credentials {
    pub server: String,
    pub ca_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

/// Reads `path` (a node path, under `root`) and the files it names; the current context's user needs a
/// client certificate, and a key file it names must be private.
pub fn load_credentials(root: &Root, path: &str) -> Result<Credentials> {
    let file = root.path(path);
    let kc = KubeConfig::parse(&fsx::read(&file)?).with_context(|| path.to_string())?;
    let base = Path::new(path).parent().unwrap_or(Path::new("/"));
    let (server, ca_pem) = kc.cluster(root, base).with_context(|| path.to_string())?;
    let user_name = kc
        .contexts
        .iter()
        .find(|c| c.name == kc.current_context)
        .map(|c| c.item.context.user.clone())
        .ok_or_else(|| {
            anyhow!(
                "{path}: current-context {:?} is not defined",
                kc.current_context
            )
        })?;
    let user = &kc
        .users
        .iter()
        .find(|u| u.name == user_name)
        .ok_or_else(|| anyhow!("{path}: user {user_name:?} is not defined"))?
        .item
        .user;
    if let Some(key_file) = &user.client_key {
        fsx::check_private(&root.path(base.join(key_file)), "client key")?;
    }
    let client_cert_pem = data_or_file(
        &user.client_certificate_data,
        &user.client_certificate,
        root,
        base,
    )?
    .ok_or_else(|| anyhow!("{path}: user {user_name:?} has no client certificate"))?;
    let client_key_pem = data_or_file(&user.client_key_data, &user.client_key, root, base)?
        .ok_or_else(|| anyhow!("{path}: user {user_name:?} has no client key"))?;
    Ok(Credentials {
        server,
        ca_pem,
        client_cert_pem,
        client_key_pem,
    })
}

fn data_or_file(
    data: &Option<String>,
    file: &Option<String>,
    root: &Root,
    base: &Path,
) -> Result<Option<String>> {
    match (data, file) {
        (Some(d), _) => Ok(Some(
            String::from_utf8(B64.decode(d.trim()).context("invalid base64")?)
                .context("not UTF-8 PEM")?,
        )),
        (None, Some(f)) => Ok(Some(fsx::read(&root.path(base.join(f)))?)),
        (None, None) => Ok(None),
    }
}
