//! NoCloud seeds. The `user-data` file is byte for byte the generator's rendered
//! `pools/<pool>/user-data.yaml` (what Azure would get as custom data); everything the test
//! environment adds travels in the seed's other files, which stand for what a provider supplies:
//! `meta-data` (instance id, hostname), `network-config` (the private link's static address) and
//! `vendor-data` (the test's evidence collector, see `guest/`). Without a network config the guest
//! configures its first NIC by DHCP (cloud-init's fallback).

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

pub struct Seed<'a> {
    pub user_data: &'a Path,
    pub instance_id: &'a str,
    pub hostname: &'a str,
    pub network_config: Option<String>,
    pub vendor_data: Option<String>,
    /// Programs the vendor data installs from the seed (`(name on the seed, host file)`).
    pub payload: Vec<(String, std::path::PathBuf)>,
}

/// Writes `iso` (volume label `cidata`) and returns the sha256 of the user data it carries.
pub fn build(seed: &Seed, iso: &Path) -> Result<String> {
    let staging = tempfile::tempdir()?;
    let dir = staging.path();
    let user_data = fs::read(seed.user_data)
        .with_context(|| format!("read rendered user data {}", seed.user_data.display()))?;
    fs::write(dir.join("user-data"), &user_data)?;
    fs::write(
        dir.join("meta-data"),
        format!(
            "instance-id: {}\nlocal-hostname: {}\n",
            seed.instance_id, seed.hostname
        ),
    )?;
    let mut names = vec!["user-data", "meta-data"];
    for (name, text) in [
        ("network-config", &seed.network_config),
        ("vendor-data", &seed.vendor_data),
    ] {
        if let Some(text) = text {
            fs::write(dir.join(name), text)?;
            names.push(name);
        }
    }
    for (name, source) in &seed.payload {
        fs::copy(source, dir.join(name)).with_context(|| format!("{}", source.display()))?;
        names.push(name);
    }
    let out = Command::new("genisoimage")
        .args(["-quiet", "-volid", "cidata", "-joliet", "-rock", "-output"])
        .arg(iso)
        .args(&names)
        .current_dir(dir)
        .output()
        .context("run genisoimage (apt-get install genisoimage)")?;
    if !out.status.success() {
        bail!("genisoimage: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(crate::secrets::sha256_hex(&user_data))
}

/// A NIC the network config names by MAC address: DHCP on the uplink, a static address on the
/// private link between the VMs (what a provider's network would give them).
pub struct Nic<'a> {
    pub name: &'a str,
    pub mac: &'a str,
    /// `None`: DHCP. `Some("192.168.100.10/24")`: static.
    pub address: Option<&'a str>,
}

pub fn network_config(nics: &[Nic]) -> String {
    let mut out = String::from("version: 1\nconfig:\n");
    for nic in nics {
        out += &format!(
            "  - type: physical\n    name: {}\n    mac_address: \"{}\"\n    subnets:\n",
            nic.name, nic.mac
        );
        out += &match nic.address {
            None => "      - type: dhcp\n".to_string(),
            Some(address) => format!("      - type: static\n        address: {address}\n"),
        };
    }
    out
}

/// What the guest-side evidence collector does (see `guest/evidence.sh`).
#[derive(Debug, Clone)]
pub struct Instrumentation {
    /// The node is set up by the agent's unit, or (baseline) by a shell script in the user data.
    pub baseline: bool,
    pub agent_unit: String,
    pub deadline_seconds: u64,
    /// Fault: SIGKILL the agent once `kubeadm init` is seen half-way (the API server it started is
    /// up, init has not returned).
    pub kill_agent_during_kubeadm_init: bool,
    /// Files dumped on every boot, changed or not (e.g. the stand-in API server's records).
    pub extra_files: Vec<String>,
    /// `(address, name)` lines the environment's name resolution provides (appended to
    /// /etc/hosts), e.g. the fake Key Vault's host name: the product never learns them.
    pub hosts: Vec<(String, String)>,
    /// Once the node is done: `kubeboot-agent upgrade --to` this version, retried while it waits
    /// for another node (see `guest/evidence.sh`).
    pub upgrade_to: Option<String>,
    /// After its own upgrade, this node drains that node for the operator (a worker's own
    /// credentials may not evict its pods).
    pub drain_after_upgrade: Option<String>,
}

/// Vendor data: a boothook (run by cloud-init early at boot, before user data's `write_files`)
/// that installs the evidence collector as a unit enabled for every boot and starts it.
pub fn vendor_data(settings: &Instrumentation) -> String {
    let script = include_str!("../guest/evidence.sh");
    format!(
        "#cloud-boothook\n#!/bin/sh\n\
         # VM e2e test instrumentation (vendor data; the user data is the rendered one, untouched).\n\
         mkdir -p /etc/kubeboot-e2e /usr/local/lib/kubeboot-e2e\n\
         {hosts}\
         cat > /etc/kubeboot-e2e/settings <<'KBE2E_SETTINGS'\n\
         MODE={mode}\nAGENT_UNIT={unit}\nDEADLINE_SECONDS={deadline}\n\
         KILL_AGENT_DURING_KUBEADM_INIT={kill}\nEXTRA_FILES='{extra}'\n\
         UPGRADE_TO='{upgrade_to}'\nDRAIN_AFTER_UPGRADE='{drain}'\n\
         KBE2E_SETTINGS\n\
         cat > /usr/local/lib/kubeboot-e2e/evidence.sh <<'KBE2E_SCRIPT'\n{script}KBE2E_SCRIPT\n\
         chmod 0755 /usr/local/lib/kubeboot-e2e/evidence.sh\n\
         if [ ! -x /usr/local/lib/kubeboot-e2e/kubeboot-e2e-sampler ]; then\n\
           mkdir -p /run/kubeboot-e2e-seed && mount -o ro LABEL=cidata /run/kubeboot-e2e-seed\n\
           install -m 0755 /run/kubeboot-e2e-seed/kubeboot-e2e-sampler /usr/local/lib/kubeboot-e2e/\n\
           # The control-plane \"image\": on a real cluster containerd pulls it from a registry.\n\
           if [ -f /run/kubeboot-e2e-seed/kube-apiserver ]; then\n\
             install -m 0755 /run/kubeboot-e2e-seed/kube-apiserver /usr/local/bin/\n\
           fi\n\
           umount /run/kubeboot-e2e-seed\n\
         fi\n\
         cat > /etc/systemd/system/kubeboot-e2e-evidence.service <<'KBE2E_UNIT'\n\
         [Unit]\nDescription=kubeboot VM e2e evidence collector (test instrumentation)\n\
         [Service]\nType=simple\nExecStart=/usr/local/lib/kubeboot-e2e/evidence.sh\n\
         [Install]\nWantedBy=multi-user.target\n\
         KBE2E_UNIT\n\
         systemctl daemon-reload\n\
         systemctl enable kubeboot-e2e-evidence.service\n\
         systemctl start --no-block kubeboot-e2e-evidence.service\n",
        mode = if settings.baseline { "baseline" } else { "agent" },
        unit = settings.agent_unit,
        deadline = settings.deadline_seconds,
        kill = u8::from(settings.kill_agent_during_kubeadm_init),
        extra = settings.extra_files.join(" "),
        upgrade_to = settings.upgrade_to.as_deref().unwrap_or_default(),
        drain = settings.drain_after_upgrade.as_deref().unwrap_or_default(),
        // Once only: a boothook runs again on every boot.
        hosts = settings
            .hosts
            .iter()
            .map(|(address, name)| {
                format!("grep -q ' {name}$' /etc/hosts || echo '{address} {name}' >> /etc/hosts\n")
            })
            .collect::<String>(),
    )
}
