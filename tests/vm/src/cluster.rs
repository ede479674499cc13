//! The pieces of a test run above single VMs: building the image, rendering a
//! cluster with `kubeboot-gen`, and booting one node of it with its own host services.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::evidence::{self, Boot};
use crate::http::{Answer, LoopbackServer};
use crate::qemu::{self, Image, PrivateLink, Vm, VmConfig};
use crate::seed::{self, Instrumentation, Nic};
use crate::{imds, mirror, workspace_root};

/// The Kubernetes version the specs under `specs/` ask for; the mirror serves it.
pub const KUBERNETES_VERSION: &str = "v1.37.1";
/// The upgrade run's cluster boots at this version (the mirror serves it too) and moves to
/// `KUBERNETES_VERSION`.
pub const UPGRADE_FROM: &str = "v1.36.2";
pub const AGENT_UNIT: &str = "kubeboot-agent.service";
/// A node's disk: the agent's preflight wants 2 GiB free under /var/lib.
pub const DISK_GB: u32 = 5;

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("{what}: start"))?;
    if !out.status.success() {
        bail!(
            "{what}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The agent's .deb (packaging/build-deb.sh) baked into the test image (images/build-image.sh,
/// whose expensive Debian base is cached by content), as the Packer path installs it. The agent is
/// the release build users get, unless `KUBEBOOT_E2E_AGENT` names another binary (e.g. the debug
/// build, to save the release build's minutes while working on a test).
pub fn build_image(out: &Path) -> Result<Image> {
    if let Some(prebuilt) = std::env::var_os("KUBEBOOT_E2E_IMAGE") {
        return Ok(Image::in_dir(Path::new(&prebuilt)));
    }
    let root = workspace_root();
    std::fs::create_dir_all(out)?;
    let agent = std::env::var_os("KUBEBOOT_E2E_AGENT").map_or_else(
        || kubeboot_test_kit::binaries::release_agent().to_path_buf(),
        PathBuf::from,
    );
    let agent = stripped(&agent, out)?;
    let deb = run(
        Command::new(root.join("packaging/build-deb.sh"))
            .arg("--binary")
            .arg(agent)
            .arg("--out")
            .arg(out),
        "packaging/build-deb.sh",
    )?;
    run(
        Command::new(root.join("images/build-image.sh"))
            .arg("--deb")
            .arg(deb.trim())
            .arg("--out")
            .arg(out),
        "images/build-image.sh",
    )?;
    Ok(Image::in_dir(out))
}

/// A copy of a binary without its debug info (a debug build: 10x smaller, less to download in the VM).
pub fn stripped(binary: &Path, dir: &Path) -> Result<PathBuf> {
    let out = dir.join(binary.file_name().unwrap_or_default());
    run(
        Command::new("strip").arg("-o").arg(&out).arg(binary),
        "strip",
    )?;
    Ok(out)
}

/// `kubeboot-gen render --spec <spec> --out <out>`.
pub fn render(bin: &Path, spec: &Path, out: &Path) -> Result<()> {
    run(
        Command::new(bin.join("kubeboot-gen"))
            .args(["render", "--spec"])
            .arg(spec)
            .arg("--out")
            .arg(out),
        "kubeboot-gen render",
    )?;
    Ok(())
}

pub fn user_data(rendered: &Path, pool: &str) -> PathBuf {
    rendered.join("pools").join(pool).join("user-data.yaml")
}

/// What the host does for one VM.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub hostname: String,
    pub pool: String,
    pub cpus: u32,
    pub memory_mb: u32,
    /// Index used to derive MAC addresses.
    pub index: u8,
    /// Static address on the private link (`192.168.100.x/24`) and the link's UDP ports.
    pub link: Option<(String, u16, u16)>,
    pub mirror: mirror::Behaviour,
    pub imds: Option<imds::Instance>,
    /// More host services the guest reaches through `guestfwd`: (`ip:port` in the guest, host
    /// loopback port), e.g. the fake Key Vault.
    pub forwards: Vec<(String, u16)>,
    pub instrumentation: Instrumentation,
    /// Programs the seed carries for the vendor data to install (see `seed::vendor_data`).
    pub payload: Vec<(String, PathBuf)>,
    pub timeout: Duration,
}

/// A running node and the host services that only it talks to.
pub struct Node {
    pub spec: NodeSpec,
    pub vm: Vm,
    pub mirror: LoopbackServer,
    pub imds: LoopbackServer,
    pub user_data_sha256: String,
}

impl Node {
    pub fn start(
        image: &Image,
        user_data: &Path,
        release_tree: &Path,
        spec: NodeSpec,
        workdir: &Path,
    ) -> Result<Self> {
        let uplink_mac = format!("52:54:00:10:00:{:02x}", spec.index);
        let link_mac = format!("52:54:00:20:00:{:02x}", spec.index);
        let mut nics = vec![Nic {
            name: "eth0",
            mac: &uplink_mac,
            address: None,
        }];
        if let Some((address, _, _)) = &spec.link {
            nics.push(Nic {
                name: "eth1",
                mac: &link_mac,
                address: Some(address),
            });
        }
        let iso = workdir.join(format!("{}.seed.iso", spec.hostname));
        let user_data_sha256 = seed::build(
            &seed::Seed {
                user_data,
                instance_id: &format!("i-{}", spec.hostname),
                hostname: &spec.hostname,
                network_config: Some(seed::network_config(&nics)),
                vendor_data: Some(seed::vendor_data(&spec.instrumentation)),
                payload: spec.payload.clone(),
            },
            &iso,
        )?;
        let mirror = mirror::start(release_tree.to_path_buf(), spec.mirror.clone());
        // Every VM gets an IMDS endpoint: a provider-none node must never call it (asserted).
        let imds = match &spec.imds {
            Some(instance) => imds::start(instance.clone()),
            None => LoopbackServer::start(|_| Answer::new(404, "text/plain", vec![])),
        };
        let config = VmConfig {
            name: spec.hostname.clone(),
            memory_mb: spec.memory_mb,
            cpus: spec.cpus,
            seed_iso: iso,
            uplink_mac: uplink_mac.clone(),
            forwards: [
                (qemu::IMDS_ADDR.into(), imds.port),
                (qemu::MIRROR_ADDR.into(), mirror.port),
            ]
            .into_iter()
            .chain(spec.forwards.iter().cloned())
            .collect(),
            private_link: spec.link.as_ref().map(|(_, local, remote)| PrivateLink {
                mac: link_mac.clone(),
                local_port: *local,
                remote_port: *remote,
            }),
            disk_gb: DISK_GB,
            timeout: spec.timeout,
            // The faults reboot the guest.
            exit_on_reboot: false,
        };
        let vm = Vm::start(image, &config, workdir)?;
        Ok(Self {
            spec,
            vm,
            mirror,
            imds,
            user_data_sha256,
        })
    }

    pub fn boots(&self) -> Result<Vec<Boot>> {
        evidence::parse(&self.vm.evidence_text())
    }

    /// Waits until boot number `n` has sent all its evidence.
    pub fn wait_dumped(&mut self, n: u32, timeout: Duration) -> Result<Boot> {
        self.wait_event(n, "dumped", timeout)
    }

    /// Waits until boot number `n` has sent the event `name` (with what it sent before it).
    pub fn wait_event(&mut self, n: u32, name: &str, timeout: Duration) -> Result<Boot> {
        self.vm
            .wait_for(&format!("{name} of boot {n}"), timeout, |text| {
                evidence::parse(text)
                    .ok()?
                    .into_iter()
                    .find(|b| b.number == n && b.event(name).is_some())
            })
    }
}

/// Two free UDP ports on loopback for a point-to-point socket netdev.
pub fn udp_port_pair() -> Result<(u16, u16)> {
    let a = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let b = std::net::UdpSocket::bind("127.0.0.1:0")?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}
