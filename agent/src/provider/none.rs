//! `provider: none`: no metadata service; the node is what the OS says it is.

use std::net::IpAddr;

use anyhow::{bail, Context as _, Result};
use kubeboot_nodeconfig::{NodeConfig, Secret, SharedPki};

use super::{inline_pki, inline_token, InstanceMetadata, Provider, Report};
use crate::root::Root;

pub struct NoCloud {
    root: Root,
}

impl NoCloud {
    pub fn new(root: Root) -> Self {
        Self { root }
    }
}

/// Plain VMs: the operator provides the NodeConfig file, secrets included.
impl Provider for NoCloud {
    fn join_token(&self, config: &NodeConfig, _: Report) -> Result<Secret> {
        inline_token(config)
    }

    fn shared_pki(&self, config: &NodeConfig, _: Report) -> Result<SharedPki> {
        inline_pki(config)
    }

    fn publish_join_token(&self, _: &NodeConfig, _: &Secret, _: Report) -> Result<()> {
        bail!("provider none has no vault to publish the join token to: the operator owns it")
    }

    fn fetch(&self, _: Report) -> Result<InstanceMetadata> {
        // The kernel's hostname, read through the root so tests can set it.
        let path = self.root.path("/proc/sys/kernel/hostname");
        let hostname = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the hostname from {}", path.display()))?;
        Ok(InstanceMetadata {
            computer_name: hostname.trim().to_string(),
            address: primary_address(),
            azure: None,
        })
    }
}

/// The first IPv4 address of an interface that is up and not loopback.
fn primary_address() -> Option<IpAddr> {
    use nix::net::if_::InterfaceFlags;
    nix::ifaddrs::getifaddrs().ok()?.find_map(|ifa| {
        let up = ifa.flags.contains(InterfaceFlags::IFF_UP)
            && !ifa.flags.contains(InterfaceFlags::IFF_LOOPBACK);
        let v4 = ifa.address?.as_sockaddr_in()?.ip();
        up.then_some(IpAddr::V4(v4))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_hostname_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        assert!(NoCloud::new(root.clone()).fetch(&|_| {}).is_err());
        crate::fsx::write_atomic(&root.path("/proc/sys/kernel/hostname"), b"Node-1\n", 0o644)
            .unwrap();
        let md = NoCloud::new(root).fetch(&|_| {}).unwrap();
        assert_eq!(md.computer_name, "Node-1");
        assert!(md.azure.is_none());
    }
}
