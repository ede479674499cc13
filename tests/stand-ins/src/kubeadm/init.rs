//! `kubeadm init --config F`: validate, write what kubeadm writes, start the API server, register the node.
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;

use super::config::{self, ClusterConfiguration, InitConfiguration, Purpose, Taint};
use super::controlplane::{self, Node};
use super::{node_object, parse_labels, Preflight, CONTROL_PLANE_TAINT, MANIFESTS};
use crate::apiserver::state::{ClusterState, State};
use crate::apiserver::tokens;
use crate::client::Client;
use crate::flags::Parsed;
use crate::invocation::delay;
use crate::jws::BootstrapToken;
use crate::kubeconfig::load_credentials;
use crate::pki;
use crate::schema::Document;
use crate::version::KubeVersion;
use crate::{fsx, Root};

/// A validated `init` configuration and what every phase needs.
struct Init<'a> {
    root: &'a Root,
    flags: &'a Parsed,
    config_path: &'a str,
    init: InitConfiguration,
    cluster: ClusterConfiguration,
    kubelet: Option<Document>,
    version: KubeVersion,
}

fn load<'a>(root: &'a Root, flags: &'a Parsed) -> Result<Init<'a>> {
    let config_path = flags
        .last("config")
        .ok_or_else(|| anyhow!("kubeboot always passes --config"))?;
    let own = KubeVersion::own()?;
    let (cfg, version) = config::load(&root.arg_path(config_path), Purpose::Init, own.as_ref())?;
    Ok(Init {
        root,
        flags,
        config_path,
        init: cfg.init.expect("load checked it"),
        cluster: cfg.cluster.expect("load checked it"),
        kubelet: cfg.kubelet,
        version,
    })
}

/// `kubeadm init`: every phase in kubeadm's order, minus the skipped ones.
pub fn run(root: &Root, flags: &Parsed) -> Result<()> {
    let init = load(root, flags)?;
    let mut skip: Vec<String> = init.init.skip_phases.clone();
    skip.extend(
        flags
            .all("skip-phases")
            .iter()
            .flat_map(|s| s.split(','))
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    );
    let mut errs = Vec::new();
    config::validate_phases(&skip, config::INIT_PHASES, "--skip-phases", &mut errs);
    if !errs.is_empty() {
        bail!("{}", errs.join("; "));
    }
    println!("[init] Using Kubernetes version: {}", init.version);
    // Shared PKI and --dry-run are checked after preflight, as kubeadm reports preflight errors first.
    let skipped = |phase: &str| skip.iter().any(|s| s == phase);
    if !skipped("preflight") {
        init.phase("preflight")?;
    }
    controlplane::check_shared_pki(root, &init.cluster.certificates_dir)?;
    if flags.is_true("dry-run") {
        println!("[dryrun] The configuration is valid; --dry-run writes nothing in this stand-in");
        return Ok(());
    }
    for phase in config::INIT_PHASES
        .iter()
        .filter(|p| **p != "preflight" && !skipped(p))
    {
        delay();
        init.phase(phase)
            .with_context(|| format!("phase {phase}"))?;
    }
    Ok(())
}

/// `kubeadm init phase NAME [SUB] --config F`: one phase on its own (sub-phases run the whole phase).
pub fn run_phase(root: &Root, flags: &Parsed) -> Result<()> {
    let (name, sub) = match flags.positionals.as_slice() {
        [name] => (name.as_str(), None),
        [name, sub] => (name.as_str(), Some(sub.as_str())),
        _ => bail!("usage: kubeadm init phase NAME [SUB-PHASE] --config F"),
    };
    if !config::INIT_PHASES.contains(&name) {
        bail!(
            "unknown command {name:?} for \"kubeadm init phase\" (known: {})",
            config::INIT_PHASES.join(", ")
        );
    }
    if sub.is_some_and(|s| s.starts_with('-')) {
        bail!("unexpected argument {sub:?}");
    }
    let init = load(root, flags)?;
    if matches!(name, "certs" | "kubeconfig" | "control-plane" | "etcd") {
        controlplane::check_shared_pki(root, &init.cluster.certificates_dir)?;
    }
    init.phase(name)
}

impl Init<'_> {
    fn node(&self) -> Node<'_> {
        let ep = &self.init.local_api_endpoint;
        Node {
            root: self.root,
            cluster: &self.cluster,
            registration: &self.init.node_registration,
            advertise_address: ep.advertise_address.parse::<IpAddr>().expect("validated"),
            bind_port: u16::try_from(ep.bind_port).expect("validated"),
            version: &self.version,
        }
    }

    fn ca_pem(&self) -> Result<String> {
        fsx::read(
            &self
                .root
                .path(Path::new(&self.cluster.certificates_dir).join("ca.crt")),
        )
    }

    fn phase(&self, phase: &str) -> Result<()> {
        let root = self.root;
        let state = State::new(root);
        match phase {
            "preflight" => {
                println!("[preflight] Running pre-flight checks");
                let from_flags = self.flags.all("ignore-preflight-errors");
                let mut pf = Preflight::new(
                    root,
                    &self.init.node_registration.ignore_preflight_errors,
                    &from_flags,
                );
                pf.privileged();
                pf.static_pods_available();
                pf.port_available(self.node().bind_port);
                if let Some(local) = &self.cluster.etcd.local {
                    let dir = root.path(&local.data_dir);
                    if std::fs::read_dir(&dir)
                        .map(|mut d| d.next().is_some())
                        .unwrap_or(false)
                    {
                        pf.fail(
                            &format!("DirAvailable-{}", local.data_dir.replace('/', "-")),
                            format!("{} is not empty", local.data_dir),
                        );
                    }
                }
                pf.finish()
            }
            "certs" => self.node().write_certs(),
            "kubeconfig" => self.node().write_kubeconfigs(true),
            // The etcd manifest is written with the other static pods.
            "etcd" | "upload-certs" | "kubelet-finalize" | "addon" => Ok(()),
            // Writing the manifests is what makes the kubelet run the API server; the stand-in starts it itself.
            "control-plane" => {
                self.node().write_manifests()?;
                controlplane::start_apiserver(root, &self.version)
            }
            "kubelet-start" => {
                let yaml = kubelet_config_yaml(self.kubelet.as_ref(), &self.cluster)?;
                super::write_kubelet_files(root, &yaml, &self.init.node_registration)?;
                super::restart_kubelet();
                Ok(())
            }
            "wait-control-plane" => {
                let timeout = self
                    .init
                    .timeouts
                    .control_plane_component_health_check
                    .as_deref()
                    .and_then(config::go_duration)
                    .unwrap_or(Duration::from_secs(240));
                controlplane::wait_ready(root, self.node().bind_port, timeout)
            }
            "upload-config" => {
                state.set_cluster(&ClusterState {
                    git_version: self.version.to_string(),
                    cluster_name: self.cluster.cluster_name.clone(),
                    control_plane_endpoint: self.cluster.control_plane_endpoint.clone(),
                    cluster_configuration: cluster_configuration_yaml(
                        &self.root.arg_path(self.config_path),
                    )?,
                })?;
                state
                    .set_kubelet_config(&kubelet_config_yaml(self.kubelet.as_ref(), &self.cluster)?)
            }
            "mark-control-plane" => register_control_plane_node(root, &self.init),
            "bootstrap-token" => {
                // kubeadm creates each token's Secret, or updates it when a re-run finds it.
                let mut objects = state.objects()?;
                let now = time::OffsetDateTime::now_utc();
                let mut tokens = Vec::new();
                for spec in &self.init.bootstrap_tokens {
                    let (key, secret) = tokens::kubeadm_secret(spec, now)?;
                    objects.insert(key, secret);
                    tokens.push(BootstrapToken::parse(&spec.token)?);
                }
                state.set_objects(&objects)?;
                // Like kubeadm, the token is printed unless --skip-token-print.
                let shown = if self.flags.is_true("skip-token-print") {
                    "<value withheld>".to_string()
                } else {
                    tokens[0].full()
                };
                println!("[bootstrap-token] Using token: {shown}");
                Ok(())
            }
            "show-join-command" => print_join_command(
                &self.init,
                &self.cluster,
                &self.ca_pem()?,
                self.flags.is_true("skip-token-print"),
            ),
            other => bail!("unknown phase {other:?}"),
        }
    }
}

/// The KubeletConfiguration kubeadm hands the kubelet: the given document with kubeadm's cluster-wide defaults.
pub fn kubelet_config_yaml(
    doc: Option<&Document>,
    cluster: &ClusterConfiguration,
) -> Result<String> {
    let mut c = doc.map(Document::to_json).unwrap_or_else(
        || json!({"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration"}),
    );
    let obj = c
        .as_object_mut()
        .ok_or_else(|| anyhow!("KubeletConfiguration is not an object"))?;
    obj.entry("clusterDNS")
        .or_insert(json!([controlplane::dns_service_ip(cluster)?.to_string()]));
    obj.entry("clusterDomain")
        .or_insert(json!(cluster.networking.dns_domain));
    obj.entry("staticPodPath").or_insert(json!(MANIFESTS));
    obj.entry("cgroupDriver").or_insert(json!("systemd"));
    obj.entry("rotateCertificates").or_insert(json!(true));
    if c.pointer("/authentication/x509/clientCAFile").is_none() {
        let ca = Path::new(&cluster.certificates_dir)
            .join("ca.crt")
            .display()
            .to_string();
        c["authentication"]["x509"]["clientCAFile"] = json!(ca);
    }
    Ok(serde_yaml_ng::to_string(&c)?)
}

fn cluster_configuration_yaml(path: &Path) -> Result<String> {
    let text = fsx::read(path)?;
    let docs = crate::schema::parse_documents(&text).map_err(|e| anyhow!(e))?;
    let doc = docs
        .into_iter()
        .find(|d| d.kind == "ClusterConfiguration")
        .ok_or_else(|| anyhow!("no ClusterConfiguration"))?;
    Ok(serde_yaml_ng::to_string(&doc.value)?)
}

fn register_control_plane_node(root: &Root, init: &InitConfiguration) -> Result<()> {
    let nr = &init.node_registration;
    let creds = load_credentials(root, "/etc/kubernetes/admin.conf")?;
    let client = Client::from_credentials(&creds)?;
    let mut labels = parse_labels(nr.kubelet_arg("node-labels").unwrap_or_default());
    labels.insert(CONTROL_PLANE_TAINT.into(), String::new());
    labels.insert(
        "node.kubernetes.io/exclude-from-external-load-balancers".into(),
        String::new(),
    );
    let taints = nr.taints.clone().unwrap_or_else(|| {
        vec![Taint {
            key: CONTROL_PLANE_TAINT.into(),
            value: None,
            effect: "NoSchedule".into(),
        }]
    });
    let node = node_object(&nr.name, &labels, &taints, nr.kubelet_arg("provider-id"));
    super::register_node(&client, &node)?;
    println!(
        "[mark-control-plane] Marking the node {} as control-plane",
        nr.name
    );
    Ok(())
}

fn print_join_command(
    init: &InitConfiguration,
    cluster: &ClusterConfiguration,
    ca_pem: &str,
    skip_token: bool,
) -> Result<()> {
    let pin = pki::ca_pin(&pki::first_cert_der(ca_pem)?)?;
    let token = if skip_token {
        "<value withheld>".to_string()
    } else {
        init.bootstrap_tokens[0].token.clone()
    };
    println!("\nYour Kubernetes control-plane has initialized successfully!\n\nThen you can join any number of worker nodes by running the following on each as root:\n");
    println!(
        "kubeadm join {} --token {token} \\\n\t--discovery-token-ca-cert-hash {pin}",
        cluster.control_plane_endpoint
    );
    Ok(())
}
