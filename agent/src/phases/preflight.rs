//! `preflight`: refuse clearly, before touching anything, when this machine cannot be the node the
//! NodeConfig describes.
//!
//! Inputs: the NodeConfig; CPU count, memory, kernel release (sysinfo) and free disk space under
//! `/var/lib`; cgroup v2 (`/sys/fs/cgroup/cgroup.controllers`); the version of the containerd that
//! will run (the release `artifacts.containerd` names, else `containerd --version` of the image's,
//! `/usr/local/bin` before `/usr/bin`). Outputs: none (read-only). Done-marker:
//! `phases/preflight.done`.
//! Minimums are kubeadm's: masters need 2 CPUs and 1700 MB of memory. The cgroup and containerd
//! minimums come from the Kubernetes minor's entry in `kubeboot_nodeconfig::releases`.

use std::path::Path;

use anyhow::Result;
use kubeboot_nodeconfig::releases::{ComponentVersion, Support};
use kubeboot_nodeconfig::{KubernetesVersion, NodeConfig, ProviderName};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

use crate::context::Context;
use crate::error::Stop;
use crate::exec::{deadline, DeadlineExceeded};
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

/// Present exactly when the unified (v2) cgroup hierarchy is mounted.
pub const CGROUP_V2_MARKER: &str = "/sys/fs/cgroup/cgroup.controllers";
/// Where an image's containerd is looked for, in the order systemd's PATH would find it.
pub const IMAGE_CONTAINERD: [&str; 2] = ["/usr/local/bin/containerd", "/usr/bin/containerd"];
/// How the user replaces a containerd that is too old.
const CONTAINERD_FIX: &str =
    "set spec.artifacts.containerd (NodeConfig artifacts.containerd) to install a newer release";

/// The container runtime side of the machine: what the runtime checks look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    pub cgroup_v2: bool,
    /// The containerd that will run, `None` when there is none.
    pub containerd: Option<Containerd>,
}

/// A containerd version and where it was read (a binary's path, or the NodeConfig field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Containerd {
    pub version: ComponentVersion,
    pub from: String,
}

impl Runtime {
    pub fn of_this_machine(ctx: &Context) -> Result<Self> {
        let containerd = match &ctx.config.artifacts.containerd {
            // It will be installed by the container-runtime phase, replacing the image's.
            Some(tool) => Some(Containerd {
                version: ComponentVersion::find_in(&tool.version).ok_or_else(|| {
                    Stop::BadConfig(format!(
                        "artifacts.containerd.version: {:?} is not a version",
                        tool.version
                    ))
                })?,
                from: "artifacts.containerd".into(),
            }),
            None => IMAGE_CONTAINERD
                .iter()
                .map(|node_path| (*node_path, ctx.root.path(node_path)))
                .find(|(_, path)| path.is_file())
                .map(|(node_path, path)| image_containerd(ctx, node_path, &path))
                .transpose()?,
        };
        Ok(Self {
            cgroup_v2: ctx.root.path(CGROUP_V2_MARKER).exists(),
            containerd,
        })
    }
}

/// The version `containerd --version` of the image's binary at `path` reports. A binary that
/// answers nothing usable makes the machine unsupported; one that hangs past its deadline fails
/// the phase (retried), since the next try may well answer.
fn image_containerd(ctx: &Context, node_path: &str, path: &Path) -> Result<Containerd> {
    let unreadable = |why: String| {
        Stop::Unsupported(format!(
            "cannot tell the version of {node_path} ({why}); {CONTAINERD_FIX}"
        ))
    };
    let output = ctx
        .runner
        .query(ctx.phase(), path, &["--version"], deadline::VERSION_QUERY)
        .map_err(|e| match e.downcast_ref::<DeadlineExceeded>() {
            Some(_) => e,
            None => unreadable(format!("{e:#}")).into(),
        })?;
    let version = ComponentVersion::find_in(&output)
        .ok_or_else(|| unreadable(format!("`--version` printed {:?}", output.trim())))?;
    Ok(Containerd {
        version,
        from: node_path.into(),
    })
}

/// Whether this machine can run `version`'s kubelet: Err with every reason as one line; Ok with a
/// warning when the containerd works but is older than the minor recommends.
pub fn check_runtime(version: &KubernetesVersion, r: &Runtime) -> Result<Option<String>, Stop> {
    let release = version.release().map_err(Stop::BadConfig)?;
    let minor = format!("1.{}", release.minor);
    let mut problems = Vec::new();
    if release.requires_cgroup_v2 && !r.cgroup_v2 {
        problems.push(format!(
            "Kubernetes {minor} needs cgroup v2, but {CGROUP_V2_MARKER} is missing (the node runs \
             cgroup v1; use an image that boots with the unified hierarchy)"
        ));
    }
    let mut warning = None;
    match &r.containerd {
        None => problems.push(format!(
            "no containerd at {}; install it in the image or {CONTAINERD_FIX}",
            IMAGE_CONTAINERD.join(" or ")
        )),
        Some(c) if c.version < release.min_containerd => problems.push(format!(
            "containerd {} ({}) is older than {}, the oldest Kubernetes {minor} runs with; \
             {CONTAINERD_FIX}",
            c.version, c.from, release.min_containerd
        )),
        Some(c) if c.version < release.recommended_containerd => {
            warning = Some(format!(
                "containerd {} ({}) is older than {}, which Kubernetes {minor} recommends (the \
                 kubelet's support for it is going away); {CONTAINERD_FIX}",
                c.version, c.from, release.recommended_containerd
            ))
        }
        Some(_) => {}
    }
    if problems.is_empty() {
        Ok(warning)
    } else {
        Err(Stop::Unsupported(problems.join("; ")))
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
        "check CPUs, memory, disk, kernel, cgroup v2, containerd's version and the NodeConfig's \
         role and version"
    }
    fn run(&self, ctx: &Context) -> Result<()> {
        check_config(&ctx.config)?;
        warn_past_end_of_life(&ctx.config.cluster.kubernetes_version);
        let resources = Resources::of_this_machine(ctx)?;
        tracing::info!(
            phase = self.name(),
            "{} CPUs, {} MB memory, {} MB free disk, kernel {}",
            resources.cpus,
            resources.memory_mb,
            resources.free_disk_mb,
            resources.kernel
        );
        check_resources(&ctx.config, &resources)?;
        let runtime = Runtime::of_this_machine(ctx)?;
        tracing::info!(
            phase = self.name(),
            "cgroup v2: {}; containerd: {}",
            if runtime.cgroup_v2 { "yes" } else { "no" },
            runtime
                .containerd
                .as_ref()
                .map_or("none".to_string(), |c| format!(
                    "{} ({})",
                    c.version, c.from
                ))
        );
        if let Some(warning) = check_runtime(&ctx.config.cluster.kubernetes_version, &runtime)? {
            tracing::warn!("{warning}");
        }
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
    use crate::fsx;
    use crate::testing::{fixture, Sandbox};

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

    fn runtime(cgroup_v2: bool, containerd: Option<(u64, u64, u64)>) -> Runtime {
        Runtime {
            cgroup_v2,
            containerd: containerd.map(|(a, b, c)| Containerd {
                version: ComponentVersion(a, b, c),
                from: "/usr/bin/containerd".into(),
            }),
        }
    }

    #[test]
    fn containerd_below_the_minimum_is_refused_below_the_recommended_warned() {
        let v137: KubernetesVersion = "v1.37.1".parse().unwrap();
        let release = v137.release().unwrap();
        let ComponentVersion(min_major, min_minor, _) = release.min_containerd;
        let ComponentVersion(rec_major, rec_minor, _) = release.recommended_containerd;
        assert_eq!(
            check_runtime(&v137, &runtime(true, Some((rec_major, rec_minor, 0)))).unwrap(),
            None
        );
        assert_eq!(
            check_runtime(&v137, &runtime(true, Some((9, 0, 0)))).unwrap(),
            None
        );
        let warning = check_runtime(&v137, &runtime(true, Some((min_major, min_minor, 24))))
            .unwrap()
            .expect("a warning below the recommended version");
        assert!(warning.contains("artifacts.containerd"), "{warning}");
        let older = Some((min_major, min_minor.saturating_sub(1), 20));
        let error = check_runtime(&v137, &runtime(true, older))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(&format!(
                "containerd {min_major}.{}.20 ",
                min_minor.saturating_sub(1)
            )) && error.contains(&release.min_containerd.to_string())
                && error.contains("/usr/bin/containerd")
                && error.contains("spec.artifacts.containerd")
                && !error.contains('\n'),
            "{error}"
        );
        let error = check_runtime(&v137, &runtime(true, None))
            .unwrap_err()
            .to_string();
        assert!(error.contains("no containerd"), "{error}");
    }

    #[test]
    fn cgroup_v1_is_refused_where_the_minor_requires_v2() {
        let v137: KubernetesVersion = "v1.37.1".parse().unwrap();
        let recent = Some((2, 1, 4));
        let error = check_runtime(&v137, &runtime(false, recent))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("cgroup v2") && error.contains(CGROUP_V2_MARKER),
            "{error}"
        );
        // Both problems in one line.
        let error = check_runtime(&v137, &runtime(false, Some((1, 0, 0))))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("cgroup v2") && error.contains("containerd 1.0.0"),
            "{error}"
        );
        assert!(matches!(
            check_runtime(&v137, &runtime(false, recent)),
            Err(Stop::Unsupported(_))
        ));
        // 1.34 (past its end of life, still booted) did not refuse cgroup v1 yet.
        let v134: KubernetesVersion = "v1.34.3".parse().unwrap();
        assert!(!v134.release().unwrap().requires_cgroup_v2);
        assert_eq!(check_runtime(&v134, &runtime(false, recent)).unwrap(), None);
    }

    #[test]
    fn the_containerd_that_will_run_is_the_named_release_else_the_images() {
        let sandbox = Sandbox::new("node-1");
        let root = sandbox.root();
        // A machine without the image's containerd nor cgroup v2, to start with.
        for node_path in ["/usr/bin/containerd", CGROUP_V2_MARKER] {
            root.remove_file(node_path).unwrap();
        }
        let mut config = fixture::worker();
        let ctx = sandbox.context(config.clone());
        assert_eq!(
            Runtime::of_this_machine(&ctx).unwrap(),
            runtime(false, None)
        );
        let write_containerd = |node_path: &str, version: &str| {
            let script = format!("#!/bin/sh\necho 'containerd containerd.io {version} x'\n");
            fsx::write_atomic(&root.path(node_path), script.as_bytes(), 0o755).unwrap();
        };
        write_containerd("/usr/bin/containerd", "1.7.24~ds1");
        fsx::write_atomic(&root.path(CGROUP_V2_MARKER), b"cpu memory\n", 0o444).unwrap();
        assert_eq!(
            Runtime::of_this_machine(&ctx).unwrap(),
            runtime(true, Some((1, 7, 24)))
        );
        // /usr/local/bin comes first, as on systemd's PATH.
        write_containerd("/usr/local/bin/containerd", "v2.1.4");
        let found = Runtime::of_this_machine(&ctx).unwrap().containerd.unwrap();
        assert_eq!(found.version, ComponentVersion(2, 1, 4));
        assert_eq!(found.from, "/usr/local/bin/containerd");
        // A named release will replace the image's: its version counts.
        config.artifacts.containerd = Some(crate::artifacts::upstream_containerd("2.2.0"));
        let named = Runtime::of_this_machine(&sandbox.context(config))
            .unwrap()
            .containerd
            .unwrap();
        assert_eq!(named.version, ComponentVersion(2, 2, 0));
        assert_eq!(named.from, "artifacts.containerd");
        // A binary that does not say its version stops the node with that reason.
        write_containerd("/usr/local/bin/containerd", "unknown");
        let error = Runtime::of_this_machine(&ctx).unwrap_err().to_string();
        assert!(error.contains("/usr/local/bin/containerd"), "{error}");
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
