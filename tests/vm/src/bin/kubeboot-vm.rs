//! Boots the test image once from a NoCloud seed with the e2e test's launcher (`qemu.rs`, the
//! repository's only one) and waits for the guest to power off: the image boot test runs it, and
//! so can anyone checking an image by hand (e.g. one from `packer/build-qemu.sh`).
//!
//! Exit status 0 when the guest powered off (or rebooted, which ends the VM) before the timeout.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use kubeboot_vm_e2e::cluster::DISK_GB;
use kubeboot_vm_e2e::qemu::{Image, Vm, VmConfig};
use kubeboot_vm_e2e::seed::{self, Seed};

#[derive(Parser)]
#[command(about = "Boot the kubeboot test image once under QEMU until the guest powers off")]
struct Args {
    /// Directory with vmlinuz, initrd.img and root.img (images/build-image.sh or
    /// packer/build-qemu.sh --out); the image is never written.
    #[arg(long)]
    image: PathBuf,
    /// The seed's user data, as given (e.g. tests/vm/image-check/user-data).
    #[arg(long)]
    user_data: PathBuf,
    /// The guest's host name; its instance id is i-<hostname>.
    #[arg(long)]
    hostname: String,
    /// Where the seed, the disk overlay and the logs go; the console is <hostname>.console.log.
    #[arg(long)]
    workdir: PathBuf,
    /// Wall-clock limit for the boot, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    #[arg(long, default_value_t = 2048)]
    memory_mb: u32,
    #[arg(long, default_value_t = 2)]
    cpus: u32,
}

fn boot(args: &Args) -> Result<bool> {
    std::fs::create_dir_all(&args.workdir)
        .with_context(|| format!("create {}", args.workdir.display()))?;
    let iso = args.workdir.join(format!("{}.seed.iso", args.hostname));
    seed::build(
        &Seed {
            user_data: &args.user_data,
            instance_id: &format!("i-{}", args.hostname),
            hostname: &args.hostname,
            network_config: None,
            vendor_data: None,
            payload: Vec::new(),
        },
        &iso,
    )?;
    let config = VmConfig {
        name: args.hostname.clone(),
        memory_mb: args.memory_mb,
        cpus: args.cpus,
        seed_iso: iso,
        uplink_mac: "52:54:00:12:34:56".into(),
        forwards: Vec::new(),
        private_link: None,
        disk_gb: DISK_GB,
        timeout: Duration::from_secs(args.timeout),
        exit_on_reboot: true,
    };
    let vm = Vm::start(&Image::in_dir(&args.image), &config, &args.workdir)?;
    let console = vm.console.clone();
    let status = vm.wait()?;
    if status.success() {
        return Ok(true);
    }
    eprintln!(
        "kubeboot-vm: QEMU ended with {status} (124: the {} s timeout); console: {}",
        args.timeout,
        console.display()
    );
    Ok(false)
}

fn main() -> ExitCode {
    match boot(&Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("kubeboot-vm: {e:#}");
            ExitCode::from(2)
        }
    }
}
