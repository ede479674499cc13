//! What init and `join` of a control-plane node share: the pre-written shared PKI check, the certificates,
//! kubeconfigs and static pod manifests kubeadm writes, and running the stand-in API server.
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use ipnet::IpNet;

use super::config::{Arg, ClusterConfiguration, NodeRegistration, Volume};
use super::MANIFESTS;
use crate::apiserver::state::State;
use crate::client::{Auth, Client, Trust};
use crate::kubeconfig::KubeConfig;
use crate::pki::{Ca, Leaf};
use crate::version::KubeVersion;
use crate::{fsx, Root};

/// The key pairs kubeboot writes before `kubeadm init`/`join` of a master (so all masters share them).
pub const SHARED_PKI: &[(&str, &str)] = &[
    ("ca.crt", "ca.key"),
    ("sa.pub", "sa.key"),
    ("front-proxy-ca.crt", "front-proxy-ca.key"),
    ("etcd/ca.crt", "etcd/ca.key"),
];

pub fn check_shared_pki(root: &Root, cert_dir: &str) -> Result<()> {
    let mut errs = Vec::new();
    for (public, private) in SHARED_PKI {
        let dir = Path::new(cert_dir);
        if let Err(e) = fsx::require_file(&root.path(dir.join(public)), "shared PKI file") {
            errs.push(format!("{e:#}"));
        }
        if let Err(e) = fsx::check_private(&root.path(dir.join(private)), "shared PKI key") {
            errs.push(format!("{e:#}"));
        }
    }
    if !errs.is_empty() {
        bail!(
            "kubeboot pre-writes the shared PKI before kubeadm runs:\n  {}",
            errs.join("\n  ")
        );
    }
    Ok(())
}

/// One control-plane node: where it listens and what it is called.
pub struct Node<'a> {
    pub root: &'a Root,
    pub cluster: &'a ClusterConfiguration,
    pub registration: &'a NodeRegistration,
    pub advertise_address: IpAddr,
    pub bind_port: u16,
    pub version: &'a KubeVersion,
}

fn first_service_ip(cluster: &ClusterConfiguration, nth: u32) -> Result<IpAddr> {
    let net: IpNet = cluster
        .networking
        .service_subnet
        .split(',')
        .next()
        .unwrap_or_default()
        .parse()?;
    Ok(match net {
        IpNet::V4(n) => IpAddr::V4((u32::from(n.network()) + nth).into()),
        IpNet::V6(n) => IpAddr::V6((u128::from(n.network()) + u128::from(nth)).into()),
    })
}

/// The cluster DNS service IP kubeadm puts in the kubelet config (the 10th service address).
pub fn dns_service_ip(cluster: &ClusterConfiguration) -> Result<IpAddr> {
    first_service_ip(cluster, 10)
}

impl Node<'_> {
    fn pki(&self, name: &str) -> PathBuf {
        self.root
            .path(Path::new(&self.cluster.certificates_dir).join(name))
    }

    fn node_pki(&self, name: &str) -> String {
        Path::new(&self.cluster.certificates_dir)
            .join(name)
            .display()
            .to_string()
    }

    fn ca(&self, name: &str) -> Result<Ca> {
        Ca::load(
            &self.pki(&format!("{name}.crt")),
            &self.pki(&format!("{name}.key")),
        )
    }

    fn issue(&self, ca: &Ca, name: &str, leaf: Leaf) -> Result<()> {
        let (cert, key) = ca.issue(&leaf, &self.cluster.encryption_algorithm)?;
        fsx::write(&self.pki(&format!("{name}.crt")), cert, 0o644)?;
        fsx::write(&self.pki(&format!("{name}.key")), key, 0o600)
    }

    fn endpoint_host(&self) -> String {
        super::config::parse_host_port(&self.cluster.control_plane_endpoint)
            .map(|(h, _)| h)
            .unwrap_or_default()
    }

    /// The serving, client and etcd certificates kubeadm's `certs` phase issues from the shared CAs.
    pub fn write_certs(&self) -> Result<()> {
        let ca = self.ca("ca")?;
        let mut dns = vec![
            self.registration.name.clone(),
            "kubernetes".into(),
            "kubernetes.default".into(),
            "kubernetes.default.svc".into(),
            format!(
                "kubernetes.default.svc.{}",
                self.cluster.networking.dns_domain
            ),
        ];
        let mut ips = vec![
            first_service_ip(self.cluster, 1)?,
            self.advertise_address,
            IpAddr::from([127, 0, 0, 1]),
        ];
        for san in self
            .cluster
            .api_server
            .cert_sans
            .iter()
            .cloned()
            .chain([self.endpoint_host()])
        {
            match san.parse::<IpAddr>() {
                Ok(ip) => ips.push(ip),
                Err(_) => dns.push(san),
            }
        }
        dns.dedup();
        ips.dedup();
        self.issue(
            &ca,
            "apiserver",
            Leaf {
                common_name: "kube-apiserver".into(),
                organizations: vec![],
                dns_names: dns,
                ips,
                server: true,
                client: false,
            },
        )?;
        self.issue(
            &ca,
            "apiserver-kubelet-client",
            Leaf::client("kube-apiserver-kubelet-client", &["kubeadm:cluster-admins"]),
        )?;
        let front_proxy = self.ca("front-proxy-ca")?;
        self.issue(
            &front_proxy,
            "front-proxy-client",
            Leaf::client("front-proxy-client", &[]),
        )?;
        let etcd = self.ca("etcd/ca")?;
        let etcd_dns = vec![self.registration.name.clone(), "localhost".to_string()];
        let etcd_ips = vec![self.advertise_address, IpAddr::from([127, 0, 0, 1])];
        for (name, server) in [("etcd/server", true), ("etcd/peer", true)] {
            self.issue(
                &etcd,
                name,
                Leaf {
                    common_name: self.registration.name.clone(),
                    organizations: vec![],
                    dns_names: etcd_dns.clone(),
                    ips: etcd_ips.clone(),
                    server,
                    client: true,
                },
            )?;
        }
        self.issue(
            &etcd,
            "etcd/healthcheck-client",
            Leaf::client("kube-etcd-healthcheck-client", &[]),
        )?;
        self.issue(
            &etcd,
            "apiserver-etcd-client",
            Leaf::client("kube-apiserver-etcd-client", &[]),
        )?;
        println!(
            "[certs] Using certificateDir folder {:?}",
            self.cluster.certificates_dir
        );
        Ok(())
    }

    /// admin.conf, super-admin.conf, kubelet.conf, controller-manager.conf, scheduler.conf (all 0600).
    pub fn write_kubeconfigs(&self, with_super_admin: bool) -> Result<()> {
        let ca = self.ca("ca")?;
        let cluster_server = format!("https://{}", self.cluster.control_plane_endpoint);
        let local_server = format!(
            "https://{}",
            host_port(self.advertise_address, self.bind_port)
        );
        let node_user = format!("system:node:{}", self.registration.name);
        let mut files = vec![
            (
                "admin.conf",
                "kubernetes-admin",
                vec!["kubeadm:cluster-admins"],
                cluster_server.clone(),
            ),
            (
                "kubelet.conf",
                node_user.as_str(),
                vec!["system:nodes"],
                cluster_server.clone(),
            ),
            (
                "controller-manager.conf",
                "system:kube-controller-manager",
                vec![],
                local_server.clone(),
            ),
            (
                "scheduler.conf",
                "system:kube-scheduler",
                vec![],
                local_server.clone(),
            ),
        ];
        if with_super_admin {
            files.push((
                "super-admin.conf",
                "kubernetes-super-admin",
                vec!["system:masters"],
                cluster_server.clone(),
            ));
        }
        for (file, user, groups, server) in files {
            let (cert, key) = ca.issue(
                &Leaf::client(user, &groups),
                &self.cluster.encryption_algorithm,
            )?;
            let kc = KubeConfig::with_user(
                &self.cluster.cluster_name,
                &server,
                &ca.cert_pem,
                user,
                KubeConfig::embedded_client(&cert, &key),
            );
            fsx::write(
                &self.root.path(Path::new("/etc/kubernetes").join(file)),
                kc.to_yaml(),
                0o600,
            )?;
            println!("[kubeconfig] Writing {file:?} kubeconfig file");
        }
        Ok(())
    }

    /// The kube-apiserver flags kubeadm generates, with v1beta4 extraArgs overriding same-named defaults.
    pub fn apiserver_args(&self) -> Vec<Arg> {
        let pki = |n: &str| self.node_pki(n);
        let defaults: Vec<(&str, String)> = vec![
            ("advertise-address", self.advertise_address.to_string()),
            ("allow-privileged", "true".into()),
            ("authorization-mode", "Node,RBAC".into()),
            ("client-ca-file", pki("ca.crt")),
            ("enable-admission-plugins", "NodeRestriction".into()),
            ("enable-bootstrap-token-auth", "true".into()),
            ("etcd-cafile", pki("etcd/ca.crt")),
            ("etcd-certfile", pki("apiserver-etcd-client.crt")),
            ("etcd-keyfile", pki("apiserver-etcd-client.key")),
            ("etcd-servers", "https://127.0.0.1:2379".into()),
            (
                "kubelet-client-certificate",
                pki("apiserver-kubelet-client.crt"),
            ),
            ("kubelet-client-key", pki("apiserver-kubelet-client.key")),
            (
                "kubelet-preferred-address-types",
                "InternalIP,ExternalIP,Hostname".into(),
            ),
            ("proxy-client-cert-file", pki("front-proxy-client.crt")),
            ("proxy-client-key-file", pki("front-proxy-client.key")),
            ("requestheader-allowed-names", "front-proxy-client".into()),
            ("requestheader-client-ca-file", pki("front-proxy-ca.crt")),
            (
                "requestheader-extra-headers-prefix",
                "X-Remote-Extra-".into(),
            ),
            ("requestheader-group-headers", "X-Remote-Group".into()),
            ("requestheader-username-headers", "X-Remote-User".into()),
            ("secure-port", self.bind_port.to_string()),
            (
                "service-account-issuer",
                format!(
                    "https://kubernetes.default.svc.{}",
                    self.cluster.networking.dns_domain
                ),
            ),
            ("service-account-key-file", pki("sa.pub")),
            ("service-account-signing-key-file", pki("sa.key")),
            (
                "service-cluster-ip-range",
                self.cluster.networking.service_subnet.clone(),
            ),
            ("tls-cert-file", pki("apiserver.crt")),
            ("tls-private-key-file", pki("apiserver.key")),
        ];
        merge_args(defaults, &self.cluster.api_server.extra_args)
    }

    fn default_volumes(&self) -> Vec<Volume> {
        let v = |name: &str, path: &str| Volume {
            name: name.into(),
            host_path: path.into(),
            mount_path: path.into(),
            read_only: true,
            path_type: "DirectoryOrCreate".into(),
        };
        vec![
            v("ca-certs", "/etc/ssl/certs"),
            v("etc-ca-certificates", "/etc/ca-certificates"),
            v("k8s-certs", &self.cluster.certificates_dir),
            v(
                "usr-local-share-ca-certificates",
                "/usr/local/share/ca-certificates",
            ),
            v("usr-share-ca-certificates", "/usr/share/ca-certificates"),
        ]
    }

    /// Static pod manifests for etcd, kube-apiserver, kube-controller-manager and kube-scheduler.
    pub fn write_manifests(&self) -> Result<Vec<Arg>> {
        let api_args = self.apiserver_args();
        let mut api_volumes = self.default_volumes();
        api_volumes.extend(self.cluster.api_server.extra_volumes.iter().cloned());
        check_files_mounted(self.root, &api_args, &api_volumes)?;
        let pki = |n: &str| self.node_pki(n);
        let net = &self.cluster.networking;
        let mut cm_defaults: Vec<(&str, String)> = vec![
            (
                "authentication-kubeconfig",
                "/etc/kubernetes/controller-manager.conf".into(),
            ),
            (
                "authorization-kubeconfig",
                "/etc/kubernetes/controller-manager.conf".into(),
            ),
            ("bind-address", "127.0.0.1".into()),
            ("client-ca-file", pki("ca.crt")),
            ("cluster-name", self.cluster.cluster_name.clone()),
            ("cluster-signing-cert-file", pki("ca.crt")),
            ("cluster-signing-key-file", pki("ca.key")),
            ("controllers", "*,bootstrapsigner,tokencleaner".into()),
            (
                "kubeconfig",
                "/etc/kubernetes/controller-manager.conf".into(),
            ),
            ("leader-elect", "true".into()),
            ("requestheader-client-ca-file", pki("front-proxy-ca.crt")),
            ("root-ca-file", pki("ca.crt")),
            ("service-account-private-key-file", pki("sa.key")),
            ("service-cluster-ip-range", net.service_subnet.clone()),
            ("use-service-account-credentials", "true".into()),
        ];
        if !net.pod_subnet.is_empty() {
            cm_defaults.push(("allocate-node-cidrs", "true".into()));
            cm_defaults.push(("cluster-cidr", net.pod_subnet.clone()));
        }
        let sched_defaults: Vec<(&str, String)> = vec![
            (
                "authentication-kubeconfig",
                "/etc/kubernetes/scheduler.conf".into(),
            ),
            (
                "authorization-kubeconfig",
                "/etc/kubernetes/scheduler.conf".into(),
            ),
            ("bind-address", "127.0.0.1".into()),
            ("kubeconfig", "/etc/kubernetes/scheduler.conf".into()),
            ("leader-elect", "true".into()),
        ];
        let ip = self.advertise_address;
        let local = self.cluster.etcd.local.clone().unwrap_or_default();
        // kubeadm's etcd phase creates the data directory 0700 before writing etcd's manifest.
        let data_dir = self.root.path(&local.data_dir);
        std::fs::create_dir_all(&data_dir)
            .and_then(|_| {
                std::fs::set_permissions(
                    &data_dir,
                    <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o700),
                )
            })
            .with_context(|| format!("creating the etcd data directory {}", local.data_dir))?;
        let etcd_defaults: Vec<(&str, String)> = vec![
            (
                "advertise-client-urls",
                format!("https://{}", host_port(ip, 2379)),
            ),
            ("cert-file", pki("etcd/server.crt")),
            ("client-cert-auth", "true".into()),
            ("data-dir", local.data_dir.clone()),
            (
                "initial-advertise-peer-urls",
                format!("https://{}", host_port(ip, 2380)),
            ),
            (
                "initial-cluster",
                format!("{}=https://{}", self.registration.name, host_port(ip, 2380)),
            ),
            ("key-file", pki("etcd/server.key")),
            (
                "listen-client-urls",
                format!("https://127.0.0.1:2379,https://{}", host_port(ip, 2379)),
            ),
            (
                "listen-peer-urls",
                format!("https://{}", host_port(ip, 2380)),
            ),
            ("name", self.registration.name.clone()),
            ("peer-cert-file", pki("etcd/peer.crt")),
            ("peer-client-cert-auth", "true".into()),
            ("peer-key-file", pki("etcd/peer.key")),
            ("peer-trusted-ca-file", pki("etcd/ca.crt")),
            ("trusted-ca-file", pki("etcd/ca.crt")),
        ];
        let k8s = |n: &str| format!("{}/{n}:{}", self.cluster.image_repository, self.version);
        let mut cm_volumes = self.default_volumes();
        cm_volumes.extend(
            self.cluster
                .controller_manager
                .extra_volumes
                .iter()
                .cloned(),
        );
        let mut sched_volumes = vec![];
        sched_volumes.extend(self.cluster.scheduler.extra_volumes.iter().cloned());
        let pods = [
            (
                "kube-apiserver",
                k8s("kube-apiserver"),
                api_args.clone(),
                api_volumes,
            ),
            (
                "kube-controller-manager",
                k8s("kube-controller-manager"),
                merge_args(cm_defaults, &self.cluster.controller_manager.extra_args),
                cm_volumes,
            ),
            (
                "kube-scheduler",
                k8s("kube-scheduler"),
                merge_args(sched_defaults, &self.cluster.scheduler.extra_args),
                sched_volumes,
            ),
            (
                "etcd",
                format!("{}/etcd:3.6.5-0", self.cluster.image_repository),
                merge_args(etcd_defaults, &local.extra_args),
                vec![],
            ),
        ];
        for (name, image, args, volumes) in pods {
            let yaml = pod_manifest(name, &image, &args, &volumes);
            fsx::write(
                &self
                    .root
                    .path(Path::new(MANIFESTS).join(format!("{name}.yaml"))),
                yaml,
                0o600,
            )?;
            println!("[control-plane] Creating static Pod manifest for {name:?}");
        }
        Ok(api_args)
    }
}

pub fn host_port(ip: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

fn merge_args(defaults: Vec<(&str, String)>, extra: &[Arg]) -> Vec<Arg> {
    let mut out: Vec<Arg> = defaults
        .into_iter()
        .filter(|(n, _)| !extra.iter().any(|e| e.name == *n))
        .map(|(n, v)| Arg {
            name: n.into(),
            value: v,
        })
        .collect();
    out.extend(extra.iter().cloned());
    out
}

/// The kube-apiserver pod sees only its volumes: a file flag outside every mount would crash-loop it.
fn check_files_mounted(root: &Root, args: &[Arg], volumes: &[Volume]) -> Result<()> {
    let mut errs = Vec::new();
    for a in args
        .iter()
        .filter(|a| crate::apiserver::flags::is_input_file_flag(&a.name))
    {
        let path = Path::new(&a.value);
        let Some(v) = volumes.iter().find(|v| path.starts_with(&v.mount_path)) else {
            errs.push(format!("--{}={}: not inside any volume mounted into the kube-apiserver pod (add an apiServer.extraVolumes entry)", a.name, a.value));
            continue;
        };
        let host = Path::new(&v.host_path).join(path.strip_prefix(&v.mount_path).unwrap_or(path));
        if !root.path(&host).is_file() {
            errs.push(format!(
                "--{}={}: the file {} does not exist on the host",
                a.name,
                a.value,
                host.display()
            ));
        }
    }
    if !errs.is_empty() {
        bail!(
            "the kube-apiserver static pod would not start:\n  {}",
            errs.join("\n  ")
        );
    }
    Ok(())
}

fn pod_manifest(name: &str, image: &str, args: &[Arg], volumes: &[Volume]) -> String {
    let mut command = vec![name.to_string()];
    command.extend(args.iter().map(|a| format!("--{}={}", a.name, a.value)));
    let mounts: Vec<serde_json::Value> =
        volumes.iter().map(|v| serde_json::json!({"name": v.name, "mountPath": v.mount_path, "readOnly": v.read_only})).collect();
    let vols: Vec<serde_json::Value> = volumes
        .iter()
        .map(|v| serde_json::json!({"name": v.name, "hostPath": {"path": v.host_path, "type": if v.path_type.is_empty() { "DirectoryOrCreate" } else { v.path_type.as_str() }}}))
        .collect();
    let pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "kube-system", "labels": {"component": name, "tier": "control-plane"}},
        "spec": {
            "hostNetwork": true,
            "priorityClassName": "system-node-critical",
            "containers": [{"name": name, "image": image, "command": command, "volumeMounts": mounts}],
            "volumes": vols,
        },
    });
    serde_yaml_ng::to_string(&pod).expect("manifest serialises")
}

/// Reads the command of a static pod manifest back (used to start the API server from what was written).
pub fn manifest_args(root: &Root, name: &str) -> Result<Vec<String>> {
    let path = root.path(Path::new(MANIFESTS).join(format!("{name}.yaml")));
    let pod: serde_json::Value = serde_yaml_ng::from_str(&fsx::read(&path)?)?;
    let command = pod
        .pointer("/spec/containers/0/command")
        .and_then(|c| c.as_array())
        .ok_or_else(|| anyhow!("{}: no command", path.display()))?;
    Ok(command
        .iter()
        .skip(1)
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect())
}

/// The stand-in kube-apiserver: beside this executable, else on PATH.
fn apiserver_exe() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let sibling = exe.with_file_name("kube-apiserver");
    if sibling.is_file() {
        return Ok(sibling);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("kube-apiserver"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!(
                "kube-apiserver not found beside {} or on PATH",
                exe.display()
            )
        })
}

/// Starts the API server in the background as the kubelet would run the static pod. On a systemd host
/// (root `/`) it runs as a transient unit so it outlives the unit that ran kubeadm; otherwise it is a
/// detached process. Either way its pid goes to the state dir's pid file.
pub fn start_apiserver(root: &Root, version: &KubeVersion) -> Result<()> {
    let state = State::new(root);
    stop_apiserver(root)?;
    let args = manifest_args(root, "kube-apiserver")?;
    let exe = apiserver_exe()?;
    std::fs::create_dir_all(state.path(""))?;
    let log = state.log_file();
    if runs_under_systemd(root) {
        let unit = APISERVER_UNIT;
        let status = std::process::Command::new("systemd-run")
            .args([
                format!("--unit={unit}"),
                "--collect".into(),
                "--quiet".into(),
            ])
            .arg(format!(
                "--property=StandardOutput=append:{}",
                log.display()
            ))
            .arg(format!("--property=StandardError=append:{}", log.display()))
            .arg(format!("--setenv=STANDIN_KUBERNETES_VERSION={version}"))
            .arg("--")
            .arg(&exe)
            .args(&args)
            .status()
            .context("systemd-run")?;
        if !status.success() {
            bail!("systemd-run of kube-apiserver failed: {status}");
        }
        let out = std::process::Command::new("systemctl")
            .args(["show", "-p", "MainPID", "--value", unit])
            .output()?;
        fsx::write(
            &state.pid_file(),
            String::from_utf8_lossy(&out.stdout).trim(),
            0o644,
        )?;
    } else {
        use std::os::unix::process::CommandExt;
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let child = std::process::Command::new(&exe)
            .args(&args)
            .env("STANDIN_KUBERNETES_VERSION", version.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        fsx::write(&state.pid_file(), child.id().to_string(), 0o644)?;
    }
    Ok(())
}

/// The transient unit the API server runs in when this is a real systemd host (a VM).
const APISERVER_UNIT: &str = "stand-in-kube-apiserver";

fn runs_under_systemd(root: &Root) -> bool {
    root.is_host()
        && Path::new("/run/systemd/system").exists()
        && std::env::var_os("STANDIN_ROOT").is_none()
}

/// Whether the API server this node's kubeadm started is running.
pub fn apiserver_running(root: &Root) -> bool {
    running_pid(root).is_some()
}

fn running_pid(root: &Root) -> Option<nix::unistd::Pid> {
    let text = std::fs::read_to_string(State::new(root).pid_file()).ok()?;
    let pid = nix::unistd::Pid::from_raw(text.trim().parse().ok().filter(|p| *p > 0)?);
    nix::sys::signal::kill(pid, None)
        .ok()
        .filter(|_| !is_zombie(pid))
        .map(|_| pid)
}

/// Stops the API server recorded in the pid file (SIGTERM, then SIGKILL after 5 s); under systemd
/// also its unit, which is running without a pid file when kubeadm was killed right after
/// starting it (as `kubeadm reset` removes the control plane's containers whatever it recorded).
pub fn stop_apiserver(root: &Root) -> Result<()> {
    let state = State::new(root);
    if runs_under_systemd(root) {
        // Fails harmlessly when the unit is not loaded.
        let _ = std::process::Command::new("systemctl")
            .args(["stop", APISERVER_UNIT])
            .status();
    }
    if let Some(pid) = running_pid(root) {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while running_pid(root).is_some() {
            if Instant::now() > deadline {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = std::fs::remove_file(state.pid_file());
    Ok(())
}

fn is_zombie(pid: nix::unistd::Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

/// Waits until `https://127.0.0.1:<port>/readyz` answers 200 to admin.conf's credentials, trusting only the cluster CA.
pub fn wait_ready(root: &Root, port: u16, timeout: Duration) -> Result<()> {
    println!("[wait-control-plane] Waiting for the API server at https://127.0.0.1:{port}/readyz (timeout {timeout:?})");
    let admin = crate::kubeconfig::load_credentials(root, "/etc/kubernetes/admin.conf")?;
    let auth = Auth::ClientCert {
        cert_pem: &admin.client_cert_pem,
        key_pem: &admin.client_key_pem,
    };
    let client = Client::new(&format!("127.0.0.1:{port}"), Trust::Ca(&admin.ca_pem), auth)?;
    let deadline = Instant::now() + timeout;
    loop {
        let last = match client.call(reqwest::Method::GET, "/readyz", None) {
            Ok((200, _)) => return Ok(()),
            Ok((status, _)) => format!("HTTP {status}"),
            Err(e) => format!("{e:#}"),
        };
        if running_pid(root).is_none() {
            let log = std::fs::read_to_string(State::new(root).log_file()).unwrap_or_default();
            let tail: Vec<&str> = log
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            bail!(
                "kube-apiserver exited; its log ends with:\n  {}",
                tail.join("\n  ")
            );
        }
        if Instant::now() > deadline {
            bail!("the API server did not become ready within {timeout:?}: {last}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
