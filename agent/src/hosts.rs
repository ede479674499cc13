//! A managed block in `/etc/hosts`. Azure load balancers do not hairpin: a master cannot reach
//! itself through the load balancer's frontend, so masters resolve the control-plane endpoint name
//! to their own address (as other Azure installers do).

use std::net::IpAddr;

use anyhow::Result;

use crate::context::Context;
use crate::paths::HOSTS_FILE;
use crate::root::Root;

const BEGIN: &str =
    "# BEGIN kubeboot: control-plane endpoint on this master (Azure LBs do not hairpin)";
const END: &str = "# END kubeboot";

/// `text` with the managed block set to `address name` (replacing any earlier block).
pub fn with_mapping(text: &str, name: &str, address: IpAddr) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        match line {
            BEGIN => inside = true,
            END if inside => inside = false,
            _ if !inside => {
                out.push_str(line);
                out.push('\n');
            }
            _ => {}
        }
    }
    out.push_str(&format!("{BEGIN}\n{address} {name}\n{END}\n"));
    out
}

/// Maps `name` to `address` in the root's /etc/hosts; returns whether the file changed.
pub fn map_endpoint(root: &Root, name: &str, address: IpAddr) -> Result<bool> {
    let path = root.path(HOSTS_FILE);
    let current = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e.into()),
    };
    root.write_if_changed(
        HOSTS_FILE,
        with_mapping(&current, name, address).as_bytes(),
        0o644,
    )
}

/// On a master: resolve the control-plane endpoint name to this node's own address.
pub fn map_endpoint_to_this_master(ctx: &Context) -> Result<()> {
    let facts = ctx.facts()?;
    match (
        ctx.config.cluster.control_plane_endpoint.name(),
        facts.address,
    ) {
        (Some(name), Some(address)) => {
            if map_endpoint(&ctx.root, name, address)? {
                tracing::info!(
                    phase = ctx.phase(),
                    "{HOSTS_FILE}: {name} -> {address} (this master)"
                );
            }
        }
        (None, _) => tracing::info!(
            phase = ctx.phase(),
            "endpoint is an address; {HOSTS_FILE} unchanged"
        ),
        (Some(name), None) => tracing::warn!(
            phase = ctx.phase(),
            "no address known for this node; {name} not mapped"
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_is_replaced_not_repeated() {
        let base = "127.0.0.1 localhost\n";
        let once = with_mapping(base, "api.example", "10.0.0.4".parse().unwrap());
        assert!(once.starts_with(base));
        let twice = with_mapping(&once, "api.example", "10.0.0.4".parse().unwrap());
        assert_eq!(once, twice);
        let moved = with_mapping(&once, "api.example", "10.0.0.5".parse().unwrap());
        assert_eq!(moved.matches("api.example").count(), 1);
        assert!(moved.contains("10.0.0.5 api.example"));
    }

    #[test]
    fn writes_only_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let ip = "10.0.0.4".parse().unwrap();
        assert!(map_endpoint(&root, "api.example", ip).unwrap());
        assert!(!map_endpoint(&root, "api.example", ip).unwrap());
    }
}
