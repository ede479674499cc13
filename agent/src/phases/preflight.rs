//! `preflight`: refuse clearly, before touching anything, when this machine cannot be the node the
//! NodeConfig describes.
//!
//! Inputs: the NodeConfig; CPU count, memory, kernel release (sysinfo) and free disk space under
//! `/var/lib`. Outputs: none (read-only). Done-marker: `phases/preflight.done`.
//! Minimums are kubeadm's: masters need 2 CPUs and 1700 MB of memory.

use anyhow::Result;
use kubeboot_nodeconfig::releases::Support;
use kubeboot_nodeconfig::{KubernetesVersion, NodeConfig, ProviderName};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

use crate::context::Context;
use crate::error::Stop;
use crate::phases::Phase;

pub struct Preflight;

/// What the checks look at, gathered once so the rules can be tested with any numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub cpus: usize,
    pub memory_mb: u64,
    pub free_disk_mb: u64,
    /// `uname -r`, e.g. `6.1.0-26-amd64`.
    pub kernel: String,
}

pub const MASTER_MIN_CPUS: usize = 2;
pub const MASTER_MIN_MEMORY_MB: u64 = 1700;
/// Room for the Kubernetes binaries, images and etcd's first snapshots.
pub const MIN_FREE_DISK_MB: u64 = 2048;
/// kubeadm's system verification refuses older kernels.
pub const MIN_KERNEL: (u64, u64) = (4, 19);

impl Resources {
    pub fn of_this_machine(ctx: &Context) -> Result<Self> {
        let sys = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing())
                .with_memory(MemoryRefreshKind::nothing().with_ram()),
        );
        let mut dir = ctx.root.path("/var/lib");
        while !dir.exists() {
            dir = dir.parent().map(Into::into).unwrap_or_else(|| "/".into());
        }
        let stat = nix::sys::statvfs::statvfs(&dir)?;
        Ok(Self {
            cpus: sys.cpus().len(),
            memory_mb: sys.total_memory() / 1024 / 1024,
            free_disk_mb: stat.blocks_available() as u64 * stat.fragment_size() as u64
                / 1024
                / 1024,
            kernel: System::kernel_version().unwrap_or_default(),
        })
    }
}

/// The machine's shortcomings for this NodeConfig, as one message (Ok when there are none).
pub fn check_resources(config: &NodeConfig, r: &Resources) -> Result<(), Stop> {
    let mut problems = Vec::new();
    if config.is_master() {
        if r.cpus < MASTER_MIN_CPUS {
            problems.push(format!(
                "a master needs at least {MASTER_MIN_CPUS} CPUs, this machine has {}",
                r.cpus
            ));
        }
        if r.memory_mb < MASTER_MIN_MEMORY_MB {
            problems.push(format!("a master needs at least {MASTER_MIN_MEMORY_MB} MB of memory, this machine has {} MB", r.memory_mb));
        }
    }
    if r.free_disk_mb < MIN_FREE_DISK_MB {
        problems.push(format!(
            "at least {MIN_FREE_DISK_MB} MB must be free under /var/lib, {} MB are",
            r.free_disk_mb
        ));
    }
    match kernel_version(&r.kernel) {
        Some(v) if v >= MIN_KERNEL => {}
        _ => problems.push(format!(
            "kernel {:?} is older than {}.{} or unreadable",
            r.kernel, MIN_KERNEL.0, MIN_KERNEL.1
        )),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Stop::Unsupported(problems.join("; ")))
    }
}

/// Checks the NodeConfig makes sense for a node on its own (the parser checked its syntax and that
/// kubeboot knows its Kubernetes minor).
pub fn check_config(config: &NodeConfig) -> Result<(), Stop> {
    if config.is_master()
        && config.provider.name == ProviderName::None
        && config.cluster.init_node.is_none()
    {
        return Err(Stop::BadConfig(
            "cluster.initNode: required on masters when provider.name is none (nothing else can \
             tell which master runs kubeadm init)"
                .into(),
        ));
    }
    Ok(())
}

/// A node of a minor past its end of life still boots: a scale set rendered while the minor was
/// supported must keep scaling (kubeboot-gen is where new clusters are refused).
fn warn_past_end_of_life(version: &KubernetesVersion) {
    let today = time::OffsetDateTime::now_utc().date();
    if let Ok(Support::EndOfLife(release)) = version.support(today) {
        tracing::warn!(
            "{}; this node is set up anyway, but the cluster needs an upgrade",
            release.end_of_life_message()
        );
    }
}

fn kernel_version(release: &str) -> Option<(u64, u64)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

impl Phase for Preflight {
    fn name(&self) -> &'static str {
        "preflight"
    }
    fn description(&self) -> &'static str {
        "check CPUs, memory, disk, kernel and the NodeConfig's role and version"
    }
    fn run(&self, ctx: &Context) -> Result<()> {
        check_config(&ctx.config)?;
        warn_past_end_of_life(&ctx.config.cluster.kubernetes_version);
        let resources = Resources::of_this_machine(ctx)?;
        tracing::info!(phase = self.name(), "{resources:?}");
        check_resources(&ctx.config, &resources)?;
        let cloud_config = ctx
            .config
            .provider
            .azure
            .as_ref()
            .map(|a| ctx.root.path(&a.cloud_config_path));
        if let Some(path) = cloud_config.filter(|p| !p.exists()) {
            return Err(Stop::BadConfig(format!(
                "provider.azure.cloudConfigPath: {} does not exist (the user data writes it)",
                path.display()
            ))
            .into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fixture;

    fn machine(cpus: usize, memory_mb: u64) -> Resources {
        Resources {
            cpus,
            memory_mb,
            free_disk_mb: 50_000,
            kernel: "6.1.0-26-amd64".into(),
        }
    }

    #[test]
    fn masters_need_kubeadms_minimums() {
        let master = fixture::first_master();
        assert!(check_resources(&master, &machine(2, 1700)).is_ok());
        let err = check_resources(&master, &machine(1, 1024))
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 CPUs") && err.contains("1700 MB"), "{err}");
        let worker = fixture::worker();
        assert!(check_resources(&worker, &machine(1, 1024)).is_ok());
    }

    #[test]
    fn old_kernels_and_full_disks_are_refused() {
        let worker = fixture::worker();
        let old = Resources {
            kernel: "4.14.3".into(),
            ..machine(4, 8000)
        };
        assert!(check_resources(&worker, &old).is_err());
        let full = Resources {
            free_disk_mb: 100,
            ..machine(4, 8000)
        };
        assert!(check_resources(&worker, &full)
            .unwrap_err()
            .to_string()
            .contains("free"));
        assert_eq!(kernel_version("5.10.0-cloud"), Some((5, 10)));
    }

    #[test]
    fn masters_on_no_cloud_need_an_init_node() {
        let mut master = fixture::first_master();
        assert!(check_config(&master).is_ok());
        master.cluster.init_node = None;
        assert!(check_config(&master)
            .unwrap_err()
            .to_string()
            .contains("cluster.initNode"));
    }
}
