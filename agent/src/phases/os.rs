//! `os`: kernel modules, sysctls and swap, now and on every boot.
//!
//! Inputs: `/proc/swaps`, `/etc/fstab`. Outputs: `/etc/modules-load.d/kubeboot.conf`,
//! `/etc/sysctl.d/90-kubeboot.conf`, the same sysctls applied through `/proc/sys`, swap off
//! (swapoff(2)), swap entries commented out of `/etc/fstab` and `swap.target` masked.
//! Done-marker: `phases/os.done`; re-verified on every run: swap is still off.
//!
//! Modules are loaded with `modprobe` (the interface to the kernel's module dependencies);
//! sysctls and swap use files and syscalls, no shell. Under a test root (not `/`) the kernel is not
//! touched: `/proc/sys` files under the root are written instead and swapoff is not called (the
//! swap devices of a fake `/proc/swaps` are not this machine's).

use std::ffi::CString;
use std::io::Write;

use anyhow::{bail, Context as _, Result};
use tracing::info;

use crate::context::Context;
use crate::exec::{deadline, Cmd, Program};
use crate::paths;
use crate::phases::Phase;
use crate::root::Root;

pub struct Os;

pub const MODULES: &[&str] = &["overlay", "br_netfilter"];
pub const SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv4.ip_forward", "1"),
    ("net.bridge.bridge-nf-call-iptables", "1"),
    ("net.bridge.bridge-nf-call-ip6tables", "1"),
    // The kubelet runs with protectKernelDefaults and refuses to start unless these hold.
    ("vm.overcommit_memory", "1"),
    ("vm.panic_on_oom", "0"),
    ("kernel.panic", "10"),
    ("kernel.panic_on_oops", "1"),
    ("kernel.keys.root_maxkeys", "1000000"),
    ("kernel.keys.root_maxbytes", "25000000"),
];
const SWAP_DISABLED_PREFIX: &str = "# disabled by kubeboot (the kubelet needs swap off): ";

/// Active swap areas listed in `/proc/swaps` (under the root).
pub fn active_swaps(root: &Root) -> Result<Vec<String>> {
    let path = root.path("/proc/swaps");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    // The kernel escapes spaces in paths as \040.
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(|p| p.replace("\\040", " "))
        .collect())
}

/// `fstab` with every active swap line commented out.
pub fn without_swap(fstab: &str) -> String {
    fstab
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let is_swap = !line.trim_start().starts_with('#') && fields.get(2) == Some(&"swap");
            if is_swap {
                format!("{SWAP_DISABLED_PREFIX}{line}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect()
}

fn apply_sysctl(ctx: &Context, key: &str, value: &str) -> Result<()> {
    let node_path = format!("/proc/sys/{}", key.replace('.', "/"));
    let path = ctx.root.live_path(&node_path);
    // procfs files exist already and cannot be replaced by rename: written in place, as `sysctl`
    // does. Under a test root too, where the file may have to be created: a staging file there
    // would be left behind by a kill, and the staging sweep does not walk /proc.
    let mut file = std::fs::OpenOptions::new();
    file.write(true);
    if !ctx.root.is_system() {
        std::fs::create_dir_all(path.parent().expect("a sysctl has a directory"))?;
        file.create(true).truncate(true);
    }
    file.open(&path)
        .and_then(|mut f| f.write_all(format!("{value}\n").as_bytes()))
        .with_context(|| format!("setting {key} through {}", path.display()))
}

fn swapoff(ctx: &Context, device: &str) -> Result<()> {
    if ctx.dry_run() || !ctx.root.is_system() {
        info!(
            phase = "os",
            "would turn swap off on {device} (not the system root or dry run)"
        );
        return Ok(());
    }
    info!(phase = "os", "turning swap off on {device}");
    let c = CString::new(device)?;
    // SAFETY: swapoff(2) only reads the NUL-terminated path.
    if unsafe { nix::libc::swapoff(c.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("swapoff {device}"));
    }
    Ok(())
}

impl Phase for Os {
    fn name(&self) -> &'static str {
        "os"
    }
    fn description(&self) -> &'static str {
        "load and persist kernel modules, set sysctls, turn swap off for good"
    }
    fn run(&self, ctx: &Context) -> Result<()> {
        let modules: String = MODULES.iter().map(|m| format!("{m}\n")).collect();
        ctx.root
            .write_if_changed(paths::MODULES_FILE, modules.as_bytes(), 0o644)?;
        for module in MODULES {
            ctx.exec(&Cmd::new(
                Program::System("modprobe"),
                [*module],
                deadline::MODPROBE,
            ))?;
        }
        let sysctls: String = SYSCTLS
            .iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect();
        ctx.root
            .write_if_changed(paths::SYSCTL_FILE, sysctls.as_bytes(), 0o644)?;
        if ctx.dry_run() {
            info!(
                phase = self.name(),
                "would apply {} sysctls through /proc/sys",
                SYSCTLS.len()
            );
        } else {
            for (key, value) in SYSCTLS {
                apply_sysctl(ctx, key, value)?;
            }
        }
        for device in active_swaps(&ctx.root)? {
            swapoff(ctx, &device)?;
        }
        if let Ok(text) = std::fs::read_to_string(ctx.root.path(paths::FSTAB)) {
            ctx.root
                .write_if_changed(paths::FSTAB, without_swap(&text).as_bytes(), 0o644)?;
        }
        // Masking swap.target keeps systemd from activating any swap unit at boot. Swap is off
        // now, so the mask only matters from the next boot on: no daemon reload (it took ~6 s of
        // a ~90 s boot-to-done in the VM test, most of the gap to a shell script).
        ctx.exec(&Cmd::systemctl(["mask", "--no-reload", "swap.target"]))?;
        Ok(())
    }
    fn verify(&self, ctx: &Context) -> Result<()> {
        let swaps = active_swaps(&ctx.root)?;
        if !swaps.is_empty() {
            bail!("swap is on again ({})", swaps.join(", "));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsx;
    use crate::testing::{assert_idempotent, fixture, Sandbox};

    #[test]
    fn comments_out_swap_lines_once() {
        let fstab =
            "UUID=1 / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n# /old none swap sw 0 0\n";
        let once = without_swap(fstab);
        assert!(once.contains(&format!("{SWAP_DISABLED_PREFIX}/swapfile none swap sw 0 0")));
        assert!(once.contains("\n# /old none swap sw 0 0\n"));
        assert_eq!(without_swap(&once), once);
    }

    #[test]
    fn writes_modules_sysctls_and_is_idempotent() {
        let sandbox = Sandbox::new("node-1");
        let ctx = sandbox.context(fixture::worker());
        assert_idempotent(&Os, &ctx);
        let root = sandbox.root();
        assert_eq!(
            std::fs::read_to_string(root.path(paths::MODULES_FILE)).unwrap(),
            "overlay\nbr_netfilter\n"
        );
        assert!(std::fs::read_to_string(root.path(paths::SYSCTL_FILE))
            .unwrap()
            .contains("net.ipv4.ip_forward = 1\n"));
        assert!(Os.verify(&ctx).is_ok());
    }

    #[test]
    fn applies_sysctls_under_the_root_when_not_dry_run() {
        let sandbox = Sandbox::new("node-1");
        let ctx = Context::new(sandbox.root(), fixture::worker());
        for (k, v) in SYSCTLS {
            apply_sysctl(&ctx, k, v).unwrap();
        }
        let forward = sandbox.root().path("/proc/sys/net/ipv4/ip_forward");
        assert_eq!(std::fs::read_to_string(forward).unwrap(), "1\n");
    }

    #[test]
    fn swap_that_is_on_fails_verification_and_leaves_a_fake_root_alone() {
        let sandbox = Sandbox::new("node-1");
        let root = sandbox.root();
        fsx::write_atomic(
            &root.path("/proc/swaps"),
            b"Filename Type Size Used Priority\n/swap\\040file file 1024 0 -2\n",
            0o644,
        )
        .unwrap();
        fsx::write_atomic(
            &root.path(paths::FSTAB),
            b"/swap\\040file none swap sw 0 0\n",
            0o644,
        )
        .unwrap();
        let ctx = sandbox.context(fixture::worker());
        assert_eq!(active_swaps(&root).unwrap(), vec!["/swap file".to_string()]);
        Os.run(&ctx).unwrap();
        assert!(std::fs::read_to_string(root.path(paths::FSTAB))
            .unwrap()
            .starts_with(SWAP_DISABLED_PREFIX));
        let err = Os.verify(&ctx).unwrap_err().to_string();
        assert!(err.contains("swap is on again (/swap file)"), "{err}");
    }
}
