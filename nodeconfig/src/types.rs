//! The NodeConfig document and its semantic checks.

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::releases::ComponentVersion;
use crate::{
    check_no_userinfo, ApiServer, ControlPlaneEndpoint, FieldError, KubernetesVersion, Secret,
    Taint,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeConfig {
    pub api_version: String,
    pub kind: String,
    pub cluster: ClusterInfo,
    pub node: NodeInfo,
    pub provider: ProviderConfig,
    pub bootstrap: Bootstrap,
    /// Shared cluster PKI; present on masters only (extra masters join with the same CAs), and
    /// absent when `secrets.keyVault` is given (the vault is then its only source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pki: Option<SharedPki>,
    /// Where the cluster secrets live when they are not inline (Azure only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Secrets>,
    #[serde(default)]
    pub artifacts: Artifacts,
    /// API server settings; used on masters only, so a worker's NodeConfig leaves them out.
    #[serde(default, skip_serializing_if = "ApiServer::is_default")]
    pub api_server: ApiServer,
    #[serde(default)]
    pub addons: Addons,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterInfo {
    /// Cluster name: kubeadm's clusterName, the cloud controller's --cluster-name, the Azure LB name.
    pub name: String,
    pub kubernetes_version: KubernetesVersion,
    /// `host:port` every node uses to reach the API server.
    pub control_plane_endpoint: ControlPlaneEndpoint,
    #[serde(rename = "podCIDR", deserialize_with = "crate::cidr::ipv4_net")]
    pub pod_cidr: IpNet,
    #[serde(rename = "serviceCIDR", deserialize_with = "crate::cidr::ipv4_net")]
    pub service_cidr: IpNet,
    #[serde(default = "default_dns_domain")]
    pub dns_domain: String,
    /// Node name of the master that runs `kubeadm init`. When absent the provider decides
    /// (Azure: the master scale set's instance with ordinal 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_node: Option<String>,
    /// Port each master's API server listens on (kubeadm's `localAPIEndpoint.bindPort`); the load
    /// balancer forwards the endpoint's port to it.
    #[serde(default = "default_api_server_bind_port")]
    pub api_server_bind_port: u16,
}

pub const DEFAULT_API_SERVER_BIND_PORT: u16 = 6443;

fn default_api_server_bind_port() -> u16 {
    DEFAULT_API_SERVER_BIND_PORT
}

pub fn default_dns_domain() -> String {
    "cluster.local".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Master,
    Worker,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeInfo {
    pub pool: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderName {
    Azure,
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderConfig {
    pub name: ProviderName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureProvider>,
}

/// What the agent needs to know about Azure beyond IMDS: what it expects IMDS to confirm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AzureProvider {
    pub subscription_id: String,
    pub resource_group: String,
    pub location: String,
    /// Where the user data put cloud-provider-azure's cloud config.
    #[serde(default = "default_cloud_config_path")]
    pub cloud_config_path: String,
    /// The Azure environment: which host names serve Key Vault and which audience its tokens name.
    #[serde(default)]
    pub cloud: AzureCloud,
    /// Endpoints of a `Custom` cloud (Azure Stack Hub, or any endpoint set given explicitly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_cloud: Option<CustomCloud>,
}

/// Azure environments by the names cloud-provider-azure's `cloud` key uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AzureCloud {
    #[default]
    AzurePublicCloud,
    #[serde(rename = "AzureUSGovernmentCloud")]
    AzureUsGovernmentCloud,
    AzureChinaCloud,
    /// Endpoints from `customCloud`.
    Custom,
}

/// Endpoints of an Azure environment that is not one of the known clouds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomCloud {
    /// DNS suffix of vault host names: a vault is `https://<name>.<suffix>`.
    pub key_vault_dns_suffix: String,
    /// Audience (`resource`) of the access tokens Key Vault accepts, e.g. `https://vault.azure.net`.
    pub key_vault_resource: String,
    /// Base URL of the instance metadata service; absent means the link-local one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imds_endpoint: Option<String>,
    /// PEM certificates trusted in addition to the system roots (for Key Vault over TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
}

/// Where cluster secrets are read from instead of this document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Secrets {
    pub key_vault: KeyVaultSecrets,
}

/// An Azure Key Vault holding the cluster secrets, read with the VM's system-assigned identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyVaultSecrets {
    /// Vault name (the first label of its host name).
    pub name: String,
    /// Secret whose value is the bootstrap token, `<id>.<secret>`.
    pub join_token_secret: String,
    /// Secret whose value is the JSON of [`SharedPki`]; masters only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pki_secret: Option<String>,
}

pub fn default_cloud_config_path() -> String {
    "/etc/kubernetes/azure.json".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Bootstrap {
    /// kubeadm bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}`; absent when `secrets.keyVault` holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// kubeadm's token TTL (Go duration), e.g. `24h`.
    #[serde(default = "default_token_ttl")]
    pub token_ttl: String,
    /// `sha256:<hex>` pins of the cluster CA's SubjectPublicKeyInfo.
    pub ca_cert_hashes: Vec<String>,
}

pub fn default_token_ttl() -> String {
    "24h".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyPair {
    /// PEM certificate (for a CA) or PEM public key (for the service-account key).
    pub public: String,
    /// PEM private key.
    pub private: Secret,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SharedPki {
    pub ca: KeyPair,
    #[serde(rename = "frontProxyCA")]
    pub front_proxy_ca: KeyPair,
    #[serde(rename = "etcdCA")]
    pub etcd_ca: KeyPair,
    pub service_account: KeyPair,
    /// base64 of the 32-byte key that encrypts Secrets at rest (see `apiServer.encryption`). Not a
    /// key pair, but the same kind of master-only cluster secret, so it travels with them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key: Option<Secret>,
}

impl SharedPki {
    /// Each pair with the field name used in errors, the file stem kubeadm expects under
    /// /etc/kubernetes/pki (private key `.key`) and what its public half is.
    pub fn pairs(&self) -> [(&'static str, &'static str, PublicPart, &KeyPair); 4] {
        use PublicPart::{Certificate, Key};
        [
            ("ca", "ca", Certificate, &self.ca),
            (
                "frontProxyCA",
                "front-proxy-ca",
                Certificate,
                &self.front_proxy_ca,
            ),
            ("etcdCA", "etcd/ca", Certificate, &self.etcd_ca),
            ("serviceAccount", "sa", Key, &self.service_account),
        ]
    }
}

/// The public half of a key pair: a CA's is its certificate; the service-account pair is a bare
/// key pair (kubeadm reads `sa.pub`, not a certificate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicPart {
    Certificate,
    Key,
}

impl PublicPart {
    /// The extension of the file kubeadm reads it from (`ca.crt`, `sa.pub`).
    pub fn extension(self) -> &'static str {
        match self {
            PublicPart::Certificate => "crt",
            PublicPart::Key => "pub",
        }
    }

    fn check(self, pem: &str) -> Result<(), String> {
        match self {
            PublicPart::Certificate => crate::pem::check_certificate(pem),
            PublicPart::Key => crate::pem::check_public_key(pem),
        }
    }
}

/// Where the agent gets kubelet, kubeadm, kubectl, crictl, the CNI plugins, and (when the image's are
/// too old) containerd and runc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Artifacts {
    /// Base URL with the upstream release layout (`<base>/release/<version>/bin/linux/<arch>/...`).
    #[serde(default = "default_release_base_url")]
    pub release_base_url: String,
    #[serde(default)]
    pub crictl: Option<ToolRelease>,
    #[serde(default)]
    pub cni_plugins: Option<ToolRelease>,
    /// containerd's upstream release (`containerd-<V>-linux-<arch>.tar.gz`): installed into
    /// /usr/local/bin with its own systemd unit, replacing the image's containerd.
    #[serde(default)]
    pub containerd: Option<ToolRelease>,
    /// runc's upstream release (`runc.<arch>`), installed into /usr/local/bin.
    #[serde(default)]
    pub runc: Option<ToolRelease>,
}

impl Default for Artifacts {
    fn default() -> Self {
        Self {
            release_base_url: default_release_base_url(),
            crictl: None,
            cni_plugins: None,
            containerd: None,
            runc: None,
        }
    }
}

impl Artifacts {
    /// Every mirror is an http(s) or file URL without credentials (they would be in user data and
    /// every log line naming the URL); containerd's and runc's versions are upstream release
    /// versions (`[v]X.Y.Z[-suffix]`: they become part of the download URLs), and a containerd
    /// release must be one the kubelet of `kubernetes` runs with. `prefix` is where these
    /// artifacts sit (`spec.artifacts`). Every problem, in field order.
    pub fn problems(&self, prefix: &str, kubernetes: &KubernetesVersion) -> Vec<FieldError> {
        let mut problems = Vec::new();
        let tools = [
            ("crictl", &self.crictl),
            ("cniPlugins", &self.cni_plugins),
            ("containerd", &self.containerd),
            ("runc", &self.runc),
        ];
        let tool_urls = tools.iter().filter_map(|(field, tool)| {
            Some((format!("{field}.baseUrl"), &tool.as_ref()?.base_url))
        });
        for (field, url) in [("releaseBaseUrl".to_string(), &self.release_base_url)]
            .into_iter()
            .chain(tool_urls)
        {
            if let Err(m) = check_mirror_url(url) {
                problems.push(FieldError::new(format!("{prefix}.{field}"), m));
            }
        }
        for (field, tool) in [("containerd", &self.containerd), ("runc", &self.runc)] {
            if let Some(tool) = tool.as_ref().filter(|t| !is_release_version(&t.version)) {
                problems.push(FieldError::new(
                    format!("{prefix}.{field}.version"),
                    format!("{:?} is not a release version (vX.Y.Z)", tool.version),
                ));
            }
        }
        if let (Some(containerd), Ok(release)) = (&self.containerd, kubernetes.release()) {
            match ComponentVersion::find_in(&containerd.version) {
                Some(v) if v < release.min_containerd => problems.push(FieldError::new(
                    format!("{prefix}.containerd.version"),
                    format!(
                        "containerd {v} is older than {}, the oldest Kubernetes 1.{} runs with",
                        release.min_containerd, release.minor
                    ),
                )),
                _ => {}
            }
        }
        problems
    }
}

/// `[v]X.Y.Z` with an optional `-suffix` of letters, digits and dots (`v2.1.0-rc.1`).
fn is_release_version(text: &str) -> bool {
    let text = text.strip_prefix('v').unwrap_or(text);
    let (numbers, suffix) = text.split_once('-').unwrap_or((text, ""));
    let parts: Vec<&str> = numbers.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && (!text.contains('-')
            || (!suffix.is_empty()
                && suffix
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.')))
}

fn default_release_base_url() -> String {
    "https://dl.k8s.io".into()
}

/// A tool shipped as an upstream release (a tarball or binary with its checksum file beside it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToolRelease {
    pub version: String,
    /// Directory URL that holds the tarball and its checksum file.
    pub base_url: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cni {
    #[default]
    Flannel,
    /// No CNI applied by the agent (bring your own).
    None,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Addons {
    #[serde(default)]
    pub cni: Cni,
    /// Deploy cluster-autoscaler (first master; Azure only): it discovers the pools to scale by
    /// their scale sets' tags, so the NodeConfig says only whether it runs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster_autoscaler: bool,
    /// Deploy the Azure Disk CSI driver and make a StorageClass of this kind the default (first
    /// master; Azure only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_disk: Option<AzureDisk>,
}

/// The default StorageClass's managed disks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AzureDisk {
    pub sku_name: DiskSku,
    /// The zones the StorageClass allows, as the driver's topology values (`<location>-<zone>`):
    /// the worker pools' zones when every worker pool is zonal; empty (any topology) otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
}

/// Managed disk kinds a default StorageClass may use (zonal, locally redundant).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DiskSku {
    #[default]
    #[serde(rename = "StandardSSD_LRS")]
    StandardSsdLrs,
    #[serde(rename = "Premium_LRS")]
    PremiumLrs,
}

impl DiskSku {
    /// The driver's `skuName` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskSku::StandardSsdLrs => "StandardSSD_LRS",
            DiskSku::PremiumLrs => "Premium_LRS",
        }
    }
}

impl NodeConfig {
    /// Semantic checks the types alone cannot express. The first problem is returned.
    pub fn validate(&self) -> Result<(), FieldError> {
        let c = &self.cluster;
        c.kubernetes_version
            .release()
            .map_err(|m| FieldError::new("cluster.kubernetesVersion", m))?;
        if !crate::labels::is_dns_subdomain(&c.dns_domain) {
            return Err(FieldError::new(
                "cluster.dnsDomain",
                format!("{:?} must be a lowercase DNS name", c.dns_domain),
            ));
        }
        if !crate::labels::is_dns_subdomain(&c.name) || c.name.len() > 63 {
            return Err(FieldError::new(
                "cluster.name",
                format!(
                    "{:?} must be a lowercase DNS label of at most 63 characters",
                    c.name
                ),
            ));
        }
        if c.api_server_bind_port == 0 {
            return Err(FieldError::new(
                "cluster.apiServerBindPort",
                "must be a port in 1-65535",
            ));
        }
        if c.pod_cidr.contains(&c.service_cidr.network())
            || c.service_cidr.contains(&c.pod_cidr.network())
        {
            return Err(FieldError::new(
                "cluster.serviceCIDR",
                "overlaps cluster.podCIDR",
            ));
        }
        for (key, value) in &self.node.labels {
            crate::labels::check_node_label(key, value)
                .map_err(|m| FieldError::new(format!("node.labels.{key}"), m))?;
        }
        match (self.provider.name, &self.provider.azure) {
            (ProviderName::Azure, None) => {
                return Err(FieldError::new(
                    "provider.azure",
                    "required when provider.name is azure",
                ))
            }
            (ProviderName::None, Some(_)) => {
                return Err(FieldError::new(
                    "provider.azure",
                    "only allowed when provider.name is azure",
                ))
            }
            (ProviderName::Azure, Some(azure)) => azure.validate("provider.azure")?,
            (ProviderName::None, None) => {}
        }
        self.check_addons()?;
        let key_vault = self.secrets.as_ref().map(|s| &s.key_vault);
        if let Some(vault) = key_vault {
            self.check_key_vault(vault)?;
        }
        match (&self.bootstrap.token, key_vault) {
            (Some(token), None) => {
                check_token(token.expose()).map_err(|m| FieldError::new("bootstrap.token", m))?
            }
            (None, None) => {
                return Err(FieldError::new(
                    "bootstrap.token",
                    "required unless secrets.keyVault is given",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(FieldError::new(
                    "bootstrap.token",
                    "must be absent when secrets.keyVault is given (the vault is its only source)",
                ))
            }
            (None, Some(_)) => {}
        }
        check_token_ttl(&self.bootstrap.token_ttl)
            .map_err(|m| FieldError::new("bootstrap.tokenTtl", m))?;
        if self.bootstrap.ca_cert_hashes.is_empty() {
            return Err(FieldError::new(
                "bootstrap.caCertHashes",
                "at least one CA pin is required",
            ));
        }
        for (i, pin) in self.bootstrap.ca_cert_hashes.iter().enumerate() {
            check_ca_pin(pin)
                .map_err(|m| FieldError::new(format!("bootstrap.caCertHashes[{i}]"), m))?;
        }
        if let Err(problems) = self.api_server.validate("apiServer") {
            // The agent reports one line; the generator, which checks the same section of
            // the spec, reports them all.
            return Err(problems.into_iter().next().expect("an error has a problem"));
        }
        self.api_server
            .check_for_version("apiServer", &c.kubernetes_version)?;
        if let Some(first) = self
            .artifacts
            .problems("artifacts", &c.kubernetes_version)
            .into_iter()
            .next()
        {
            return Err(first);
        }
        match (self.node.role, &self.pki) {
            (_, Some(_)) if key_vault.is_some() => {
                return Err(FieldError::new(
                    "pki",
                    "must be absent when secrets.keyVault is given (the vault is its only source)",
                ))
            }
            (Role::Master, None) if key_vault.is_some() => {}
            (Role::Master, None) => return Err(FieldError::new("pki", "required on a master")),
            (Role::Worker, Some(_)) => {
                return Err(FieldError::new(
                    "pki",
                    "must not be given to a worker (it would leak the CA keys)",
                ))
            }
            (Role::Master, Some(pki)) => {
                pki.validate("pki")?;
            }
            (Role::Worker, None) => {}
        }
        Ok(())
    }

    /// cluster-autoscaler and the disk driver's controller run on the masters with their Azure
    /// identity; the first master applies them.
    fn check_addons(&self) -> Result<(), FieldError> {
        let set = [
            ("addons.clusterAutoscaler", self.addons.cluster_autoscaler),
            ("addons.azureDisk", self.addons.azure_disk.is_some()),
        ];
        for (at, _) in set.iter().filter(|(_, on)| *on) {
            if self.provider.name != ProviderName::Azure {
                return Err(FieldError::new(
                    *at,
                    "only allowed when provider.name is azure",
                ));
            }
            if !self.is_master() {
                return Err(FieldError::new(
                    *at,
                    "only allowed on a master (it runs there)",
                ));
            }
        }
        if let (Some(disk), Some(azure)) = (&self.addons.azure_disk, &self.provider.azure) {
            for (i, zone) in disk.zones.iter().enumerate() {
                let ok = zone
                    .strip_prefix(&format!("{}-", azure.location))
                    .is_some_and(|z| matches!(z, "1" | "2" | "3"));
                if !ok {
                    return Err(FieldError::new(
                        format!("addons.azureDisk.zones[{i}]"),
                        format!(
                            "{zone:?} is not a zone of {0} (`{0}-1` to `{0}-3`)",
                            azure.location
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The vault is read with the VM's Azure identity, so it needs provider azure; a worker
    /// names the join secret only, a master the PKI secret too.
    fn check_key_vault(&self, vault: &KeyVaultSecrets) -> Result<(), FieldError> {
        const AT: &str = "secrets.keyVault";
        if self.provider.name != ProviderName::Azure {
            return Err(FieldError::new(
                AT,
                "only allowed when provider.name is azure",
            ));
        }
        check_vault_name(&vault.name).map_err(|m| FieldError::new(format!("{AT}.name"), m))?;
        check_vault_secret_name(&vault.join_token_secret)
            .map_err(|m| FieldError::new(format!("{AT}.joinTokenSecret"), m))?;
        match (self.node.role, &vault.pki_secret) {
            (Role::Master, None) => Err(FieldError::new(
                format!("{AT}.pkiSecret"),
                "required on a master",
            )),
            (Role::Worker, Some(_)) => Err(FieldError::new(
                format!("{AT}.pkiSecret"),
                "must not be given to a worker (it may read the join secret only)",
            )),
            (Role::Master, Some(name)) => check_vault_secret_name(name)
                .map_err(|m| FieldError::new(format!("{AT}.pkiSecret"), m)),
            (Role::Worker, None) => Ok(()),
        }
    }

    pub fn is_master(&self) -> bool {
        self.node.role == Role::Master
    }
}

impl SharedPki {
    /// Every key pair is PEM and the encryption key, if any, has the right length. Used for the
    /// inline `pki` and for the PKI read from a vault alike; `at` names where it came from.
    pub fn validate(&self, at: &str) -> Result<(), FieldError> {
        for (field, _, public, pair) in self.pairs() {
            public
                .check(&pair.public)
                .map_err(|m| FieldError::new(format!("{at}.{field}.public"), m))?;
            crate::pem::check_private_key(pair.private.expose())
                .map_err(|m| FieldError::new(format!("{at}.{field}.private"), m))?;
        }
        if let Some(key) = &self.encryption_key {
            check_encryption_key(key.expose())
                .map_err(|m| FieldError::new(format!("{at}.encryptionKey"), m))?;
        }
        Ok(())
    }
}

impl AzureProvider {
    /// `cloud` and `customCloud` agree; `at` is where the fields sit (the generator checks a
    /// spec's `spec.azure` with the same rules).
    pub fn validate(&self, at: &str) -> Result<(), FieldError> {
        match (self.cloud, &self.custom_cloud) {
            (AzureCloud::Custom, None) => Err(FieldError::new(
                format!("{at}.customCloud"),
                "required when cloud is Custom",
            )),
            (AzureCloud::Custom, Some(custom)) => custom.validate(&format!("{at}.customCloud")),
            (_, Some(_)) => Err(FieldError::new(
                format!("{at}.customCloud"),
                "only allowed when cloud is Custom",
            )),
            (_, None) => Ok(()),
        }
    }
}

impl CustomCloud {
    fn validate(&self, at: &str) -> Result<(), FieldError> {
        if !crate::labels::is_dns_subdomain(&self.key_vault_dns_suffix) {
            return Err(FieldError::new(
                format!("{at}.keyVaultDnsSuffix"),
                format!(
                    "{:?} must be a lowercase DNS name",
                    self.key_vault_dns_suffix
                ),
            ));
        }
        check_url(&self.key_vault_resource, &["https"])
            .map_err(|m| FieldError::new(format!("{at}.keyVaultResource"), m))?;
        if let Some(imds) = &self.imds_endpoint {
            check_url(imds, &["http", "https"])
                .map_err(|m| FieldError::new(format!("{at}.imdsEndpoint"), m))?;
        }
        if let Some(bundle) = &self.ca_bundle {
            crate::pem::check_certificate_bundle(bundle)
                .map_err(|m| FieldError::new(format!("{at}.caBundle"), m))?;
        }
        Ok(())
    }
}

/// Azure's rule for vault names: 3-24 characters of letters, digits and hyphens, starting with a
/// letter, ending with a letter or digit, no two hyphens in a row.
pub fn check_vault_name(name: &str) -> Result<(), String> {
    let ok = (3..=24).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !name.contains("--");
    match ok {
        true => Ok(()),
        false => Err(format!(
            "{name:?} must be 3-24 letters, digits and single hyphens, starting with a letter and ending with a letter or digit"
        )),
    }
}

/// Azure's rule for secret names: 1-127 letters, digits and hyphens.
pub fn check_vault_secret_name(name: &str) -> Result<(), String> {
    match (1..=127).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        true => Ok(()),
        false => Err(format!(
            "{name:?} must be 1-127 letters, digits and hyphens"
        )),
    }
}

/// `<scheme>://<host>[:port][/path]` with one of the given schemes and a non-empty host.
fn check_url(url: &str, schemes: &[&str]) -> Result<(), String> {
    check_no_userinfo(url)?;
    check_url_shape(url, schemes)
}

/// `url` starts with one of `schemes` and names a host (its userinfo is checked by the caller).
fn check_url_shape(url: &str, schemes: &[&str]) -> Result<(), String> {
    let rest = schemes
        .iter()
        .find_map(|s| url.strip_prefix(s).and_then(|r| r.strip_prefix("://")))
        .ok_or_else(|| format!("{url:?} must start with {}://", schemes.join(":// or ")))?;
    let host = rest.split(['/', ':', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?} has no valid host"));
    }
    Ok(())
}

/// A release mirror the agent can fetch from: http(s) with a host, or (air-gapped nodes) a
/// `file://` URL of an absolute directory.
fn check_mirror_url(url: &str) -> Result<(), String> {
    check_no_userinfo(url)?;
    match url.strip_prefix("file://") {
        Some(path) if path.starts_with('/') && !path.chars().any(char::is_control) => Ok(()),
        Some(_) => Err(format!(
            "{url:?} must name an absolute directory (file:///srv/mirror)"
        )),
        None => check_url_shape(url, &["http", "https"]).map_err(|m| format!("{m} (or file://)")),
    }
}

/// kubeadm's bootstrap token format: `[a-z0-9]{6}.[a-z0-9]{16}`.
pub fn check_token(token: &str) -> Result<(), String> {
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    match token.split_once('.') {
        Some((id, secret)) if ok(id, 6) && ok(secret, 16) => Ok(()),
        _ => Err("must match [a-z0-9]{6}.[a-z0-9]{16}".into()),
    }
}

/// kubeadm's bootstrap token TTL: a positive Go duration (`24h`, `1h30m`). kubeadm reads `0` as
/// "never expires", which would leave a join credential valid for ever; it is refused.
pub fn check_token_ttl(ttl: &str) -> Result<(), String> {
    // Longest first, so "ms" is not read as "m" followed by "s".
    const UNITS: &[&str] = &["ns", "us", "µs", "ms", "h", "m", "s"];
    let refuse = || {
        Err(format!(
            "{ttl:?} is not a positive duration like 24h or 1h30m (units {})",
            UNITS.join(", ")
        ))
    };
    let mut rest = ttl;
    let mut positive = false;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let Ok(number) = rest[..number_len].parse::<f64>() else {
            return refuse();
        };
        rest = &rest[number_len..];
        let Some(unit) = UNITS.iter().find(|u| rest.starts_with(**u)) else {
            return refuse();
        };
        rest = &rest[unit.len()..];
        positive |= number > 0.0;
    }
    match positive {
        true => Ok(()),
        false => refuse(),
    }
}

/// Length in bytes of the Secrets encryption key (aescbc and secretbox both take 32).
pub const ENCRYPTION_KEY_BYTES: usize = 32;

/// base64 (standard alphabet, padded) of exactly `ENCRYPTION_KEY_BYTES` bytes.
pub fn check_encryption_key(key: &str) -> Result<(), String> {
    use base64::Engine;
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(bytes) if bytes.len() == ENCRYPTION_KEY_BYTES => Ok(()),
        Ok(bytes) => Err(format!(
            "must be {ENCRYPTION_KEY_BYTES} bytes, base64-encoded (found {} bytes)",
            bytes.len()
        )),
        Err(_) => Err("is not base64".into()),
    }
}

/// `sha256:` followed by 64 lowercase hex digits, as kubeadm writes CA pins.
pub fn check_ca_pin(pin: &str) -> Result<(), String> {
    match pin.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(())
        }
        _ => Err(format!("{pin:?} is not sha256:<64 lowercase hex digits>")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(containerd: &str, runc: &str) -> Artifacts {
        let tool = |version: &str| {
            Some(ToolRelease {
                version: version.into(),
                base_url: "https://example.test".into(),
            })
        };
        Artifacts {
            containerd: tool(containerd),
            runc: tool(runc),
            ..Artifacts::default()
        }
    }

    #[test]
    fn mirrors_are_http_or_local_directories() {
        assert!(check_mirror_url("https://dl.k8s.io").is_ok());
        assert!(check_mirror_url("http://10.0.0.5:8080/k8s").is_ok());
        assert!(check_mirror_url("file:///srv/mirror").is_ok());
        assert!(check_mirror_url("file://srv/mirror").is_err());
        assert!(check_mirror_url("ftp://mirror.example").is_err());
        assert!(check_mirror_url("https://").is_err());
    }

    #[test]
    fn container_runtime_versions_are_release_versions_the_kubelet_runs_with() {
        let v137: KubernetesVersion = "v1.37.1".parse().unwrap();
        let min = v137.release().unwrap().min_containerd;
        assert!(with("v2.1.4", "1.3.0").problems("a", &v137).is_empty());
        assert!(with("2.2.0-rc.1", "v1.3.0").problems("a", &v137).is_empty());
        assert!(Artifacts::default().problems("a", &v137).is_empty());
        for (containerd, runc, field) in [
            ("2.1", "v1.3.0", "a.containerd.version"),
            ("v2.1.4/../x", "v1.3.0", "a.containerd.version"),
            ("v2.1.4", "latest", "a.runc.version"),
            ("v2.1.4-", "v1.3.0", "a.containerd.version"),
        ] {
            let problems = with(containerd, runc).problems("a", &v137);
            let paths: Vec<&str> = problems.iter().map(|e| e.path.as_str()).collect();
            assert_eq!(paths, [field], "{containerd} {runc}");
        }
        let older = format!("v{}.{}.{}", min.0, min.1.saturating_sub(1), 9);
        let error = &with(&older, "v1.3.0").problems("a", &v137)[0];
        assert!(
            error.message.contains(&min.to_string()),
            "{}",
            error.message
        );
    }
    #[test]
    fn every_artifact_problem_is_reported_with_credentials_checked_once() {
        let v137: KubernetesVersion = "v1.37.1".parse().unwrap();
        let mut artifacts = with("latest", "v1.3.0");
        artifacts.release_base_url = "ftp://mirror.example".into();
        artifacts.runc.as_mut().unwrap().base_url = "https://user:pw@mirror.example/runc".into();
        artifacts.crictl = Some(ToolRelease {
            version: "v1.35.0".into(),
            base_url: "file://user:pw@/srv/crictl".into(),
        });
        let problems = artifacts.problems("a", &v137);
        let paths: Vec<&str> = problems.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "a.releaseBaseUrl",
                "a.crictl.baseUrl",
                "a.runc.baseUrl",
                "a.containerd.version"
            ]
        );
        for at in [1, 2] {
            assert!(
                problems[at]
                    .message
                    .starts_with("must not hold credentials"),
                "{}",
                problems[at].message
            );
        }
    }
}
