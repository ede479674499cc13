//! Rendering: spec + secrets -> per-pool NodeConfig, user data, custom data and azure.json, all in
//! memory. Deterministic: the same spec and secrets give byte-identical output.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use base64::Engine;
use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use ipnet::IpNet;
use kubeboot_nodeconfig::{
    default_dns_domain, default_token_ttl, Addons, ApiServer, AzureDisk, AzureProvider, Bootstrap,
    ClusterInfo, KeyVaultSecrets, NodeConfig, NodeInfo, ProviderConfig, ProviderName, Role,
    Secrets, API_VERSION, DEFAULT_PATH, KIND,
};
use tera::Tera;

use crate::azure_json::AzureCloudConfig;
use crate::names::{JOIN_TOKEN_SECRET, PKI_SECRET};
use crate::secrets::ClusterSecrets;
use crate::spec::PoolSpec;
use crate::tree::Tree;
use crate::validate::ValidSpec;

/// The agent's unit, baked into the image.
pub const AGENT_UNIT: &str = "kubeboot-agent.service";
/// Azure's custom data limit. It applies to the DECODED bytes, not the base64 text: "The base-64
/// encoded string is decoded to a binary array that is saved as a file on the Virtual Machine.
/// The maximum length of the binary array is 65535 bytes." (Azure Compute REST API, OSProfile /
/// VirtualMachineScaleSetOSProfile `customData`). Our decoded bytes are the gzip stream.
pub const CUSTOM_DATA_LIMIT: usize = 65_535;
pub const AZURE_JSON: &str = "azure.json";
pub const USER_DATA: &str = "user-data.yaml";
pub const CUSTOM_DATA: &str = "custom-data.b64";
/// The effective spec the output was rendered from (`check` re-validates it and walks the ARM
/// template against it).
pub const EFFECTIVE_SPEC: &str = "cluster.yaml";
const USER_DATA_TEMPLATE: &str = "user-data.yaml";

pub fn pool_dir(pool: &str) -> PathBuf {
    Path::new("pools").join(pool)
}

/// The rendered output and each pool's custom data size (decoded bytes).
#[derive(Debug, Clone)]
pub struct Rendered {
    pub tree: Tree,
    pub custom_data_sizes: Vec<(String, usize)>,
}

/// The templates, compiled once per process; embedded so the binary is self-contained.
fn templates() -> &'static Tera {
    static TERA: OnceLock<Tera> = OnceLock::new();
    TERA.get_or_init(|| {
        let mut tera = Tera::default();
        tera.register_filter("indent", indent_block);
        tera.add_raw_template(
            USER_DATA_TEMPLATE,
            include_str!("../templates/user-data.yaml.tera"),
        )
        .expect("the embedded template compiles");
        tera
    })
}

/// Indents every non-empty line by six spaces: the body of a `content: |` block scalar in a
/// `write_files` entry. The trailing newline is left to the template.
fn indent_block(
    value: &tera::Value,
    _: &HashMap<String, tera::Value>,
) -> tera::Result<tera::Value> {
    let text = value
        .as_str()
        .ok_or_else(|| tera::Error::msg("indent expects a string"))?;
    let indented: Vec<String> = text
        .trim_end_matches('\n')
        .split('\n')
        .map(|line| {
            if line.is_empty() {
                String::new()
            } else {
                format!("      {line}")
            }
        })
        .collect();
    Ok(tera::Value::String(indented.join("\n")))
}

pub fn render(spec: &ValidSpec, secrets: &ClusterSecrets) -> Result<Rendered> {
    let tera = templates();
    let ca_hash = secrets.ca_cert_hash()?;
    let azure_json = AzureCloudConfig::from_spec(spec).map(|c| c.to_json());
    let mut tree = Tree::default();
    if let Some(json) = &azure_json {
        tree.add(AZURE_JSON, json.clone().into_bytes());
    }
    let mut custom_data_sizes = Vec::new();
    let mut custom_data = BTreeMap::new();
    for (i, pool) in spec.cluster.spec.pools.iter().enumerate() {
        let config = node_config(spec, secrets, &ca_hash, pool);
        let user_data = render_user_data(tera, spec, &config, azure_json.as_deref())?;
        let gzipped = gzip(user_data.as_bytes());
        if gzipped.len() > CUSTOM_DATA_LIMIT {
            bail!(
                "spec.pools[{i}]: custom data is {} bytes gzip-compressed, over Azure's {CUSTOM_DATA_LIMIT}-byte limit",
                gzipped.len()
            );
        }
        custom_data_sizes.push((pool.name.clone(), gzipped.len()));
        let dir = pool_dir(&pool.name);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&gzipped);
        tree.add(dir.join(USER_DATA), user_data.into_bytes());
        tree.add(dir.join(CUSTOM_DATA), format!("{b64}\n").into_bytes());
        custom_data.insert(pool.name.clone(), b64);
    }
    if spec.cluster.spec.azure.is_some() {
        let arm = crate::arm::render(
            &spec.cluster,
            &crate::arm::ArmSecrets {
                ssh_public_key: secrets.ssh.public.trim_end(),
                custom_data: &custom_data,
                join_token: &secrets.bootstrap_token,
                pki: &secrets.shared_pki(),
            },
        )?;
        tree.add(crate::arm::TEMPLATE_FILE, arm.template.into_bytes());
        tree.add(crate::arm::PARAMETERS_FILE, arm.parameters.into_bytes());
    }
    tree.add(EFFECTIVE_SPEC, spec.effective_yaml().into_bytes());
    Ok(Rendered {
        tree,
        custom_data_sizes,
    })
}

/// The NodeConfig of one pool: cluster-wide facts, the pool's identity and where its secrets
/// come from. On Azure that is the cluster's Key Vault (the join token for every pool, the
/// shared PKI for masters), so the NodeConfig — and the custom data carrying it — holds no
/// secret. Plain VMs get the token and, on masters, the PKI inline: the operator hands them the
/// file.
pub fn node_config(
    spec: &ValidSpec,
    secrets: &ClusterSecrets,
    ca_hash: &str,
    pool: &PoolSpec,
) -> NodeConfig {
    let s = &spec.cluster.spec;
    let master = pool.role == Role::Master;
    // Workers run no API server, so their NodeConfig carries none of its settings.
    let api_server = if master {
        let mut api_server = s.api_server.clone();
        let host = spec.control_plane_endpoint.host().to_string();
        if !api_server.cert_sans.contains(&host) {
            api_server.cert_sans.insert(0, host);
        }
        api_server
    } else {
        ApiServer::default()
    };
    let (provider, vault) = match &s.azure {
        Some(azure) => (
            ProviderConfig {
                name: ProviderName::Azure,
                azure: Some(azure_provider(azure)),
            },
            Some(KeyVaultSecrets {
                name: spec
                    .names()
                    .key_vault(&azure.subscription_id, &azure.resource_group),
                join_token_secret: JOIN_TOKEN_SECRET.into(),
                pki_secret: master.then(|| PKI_SECRET.into()),
            }),
        ),
        None => (
            ProviderConfig {
                name: ProviderName::None,
                azure: None,
            },
            None,
        ),
    };
    let inline = vault.is_none();
    NodeConfig {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        cluster: ClusterInfo {
            name: spec.name().to_string(),
            kubernetes_version: s.kubernetes_version.clone(),
            control_plane_endpoint: spec.control_plane_endpoint.clone(),
            pod_cidr: IpNet::V4(s.network.pod_cidr),
            service_cidr: IpNet::V4(s.network.service_cidr),
            dns_domain: default_dns_domain(),
            init_node: s.init_node.clone(),
            api_server_bind_port: kubeboot_nodeconfig::DEFAULT_API_SERVER_BIND_PORT,
        },
        node: NodeInfo {
            pool: pool.name.clone(),
            role: pool.role,
            labels: pool.labels.clone(),
            taints: pool.taints.clone(),
        },
        provider,
        bootstrap: Bootstrap {
            token: inline.then(|| secrets.bootstrap_token.clone()),
            token_ttl: default_token_ttl(),
            ca_cert_hashes: vec![ca_hash.to_string()],
        },
        pki: (inline && master).then(|| secrets.shared_pki()),
        secrets: vault.map(|key_vault| Secrets { key_vault }),
        artifacts: s.artifacts.clone(),
        api_server,
        addons: Addons {
            cni: s.addons.cni,
            cluster_autoscaler: master && s.pools.iter().any(|p| p.autoscaling.is_some()),
            azure_disk: s
                .addons
                .azure_disk(s.azure.is_some())
                .filter(|_| master)
                .map(|disk| AzureDisk {
                    sku_name: disk.sku_name,
                    zones: disk_zones(s),
                }),
        },
    }
}

/// The zones the StorageClass allows, as the disk driver's topology values (`<location>-<zone>`),
/// sorted: those of the worker pools, where volumes' pods run, when every worker pool is zonal.
/// With a regional pool, none: its nodes have no zone, and a restriction would strand its pods.
fn disk_zones(spec: &crate::spec::Spec) -> Vec<String> {
    let Some(azure) = &spec.azure else {
        return Vec::new();
    };
    let workers: Vec<_> = spec
        .pools
        .iter()
        .filter(|p| p.role == Role::Worker)
        .collect();
    if workers.iter().any(|p| p.zones.is_empty()) {
        return Vec::new();
    }
    let zones: std::collections::BTreeSet<&String> =
        workers.iter().flat_map(|p| &p.zones).collect();
    zones
        .into_iter()
        .map(|z| format!("{}-{z}", azure.location))
        .collect()
}

/// What a node must know about Azure: where it runs and which environment's endpoints to use.
pub fn azure_provider(azure: &crate::spec::AzureSpec) -> AzureProvider {
    AzureProvider {
        subscription_id: azure.subscription_id.clone(),
        resource_group: azure.resource_group.clone(),
        location: azure.location.clone(),
        cloud_config_path: kubeboot_nodeconfig::default_cloud_config_path(),
        cloud: azure.cloud,
        custom_cloud: azure.custom_cloud.clone(),
    }
}

fn render_user_data(
    tera: &Tera,
    spec: &ValidSpec,
    config: &NodeConfig,
    azure_json: Option<&str>,
) -> Result<String> {
    let mut ctx = tera::Context::new();
    ctx.insert("cluster", spec.name());
    ctx.insert("pool", &config.node.pool);
    ctx.insert("role", &config.node.role);
    ctx.insert("node_config_path", DEFAULT_PATH);
    ctx.insert("node_config", &config.to_yaml());
    ctx.insert("azure_json", &azure_json);
    ctx.insert(
        "azure_json_path",
        &config.provider.azure.as_ref().map(|a| &a.cloud_config_path),
    );
    ctx.insert("agent_unit", AGENT_UNIT);
    tera.render(USER_DATA_TEMPLATE, &ctx)
        .with_context(|| format!("rendering the user data of pool {}", config.node.pool))
}

/// gzip with a zero timestamp and no file name, so equal input gives equal bytes.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder: GzEncoder<Vec<u8>> = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::best());
    encoder
        .write_all(data)
        .expect("gzip into memory cannot fail");
    encoder.finish().expect("gzip into memory cannot fail")
}
