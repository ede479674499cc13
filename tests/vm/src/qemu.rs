//! The one QEMU launcher of the repository (the e2e test, the image boot test through the
//! `kubeboot-vm` binary, and by hand). Launches one test VM: direct kernel boot of the test image
//! (copy-on-write, the image stays pristine), a NoCloud seed, an uplink on QEMU user-mode networking whose only ways out are the
//! host services forwarded with `guestfwd`, an optional private link to the other VMs over a UDP
//! socket netdev, the console on ttyS0 and the evidence channel on ttyS1 (both to files), and an
//! HMP monitor socket to reboot or reset the guest. Every frame on the uplink is recorded (headers
//! only) so the test can tell where the guest tried to go. QEMU always runs under `timeout`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A bootable test image: kernel and initrd beside a raw root filesystem image.
#[derive(Debug, Clone)]
pub struct Image {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub disk: PathBuf,
}

impl Image {
    /// The image `images/build-image.sh --out DIR` or `packer/build-qemu.sh --out DIR` wrote.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd.img"),
            disk: dir.join("root.img"),
        }
    }
}

/// The guest kernel's command line. `no_timer_check`: on a loaded host the IO-APIC timer check
/// can fail under TCG and panic the boot. `panic=-1`: a kernel panic reboots at once (and ends
/// QEMU when the VM exits on reboot) instead of hanging until the timeout.
const KERNEL_COMMAND_LINE: &str =
    "root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=-1 systemd.show_status=false no_timer_check";

/// Names QEMU's accelerator: `tcg` (the default) or `kvm`.
pub const ACCEL_VARIABLE: &str = "KUBEBOOT_VM_ACCEL";

/// Chooses QEMU's accelerator from `KUBEBOOT_VM_ACCEL` (unset: `tcg`). TCG by default because
/// KVM cannot be probed reliably: this machine's /dev/kvm is nested PVM, where Debian's kernel
/// hangs; `kvm` opts in where KVM works.
fn accelerator(setting: Option<&str>) -> Result<&'static str> {
    match setting {
        None | Some("tcg") => Ok("tcg,thread=multi"),
        Some("kvm") => Ok("kvm"),
        Some(other) => bail!("{ACCEL_VARIABLE}={other}: expected tcg or kvm"),
    }
}

/// The uplink's addresses (QEMU user networking with `net=169.254.169.0/24`): the guest gets
/// `.15` by DHCP and the host is `.2`. The net must contain 169.254.169.254 so that IMDS
/// traffic is caught by `guestfwd` instead of being routed out of the host.
pub const UPLINK_NET: &str = "169.254.169.0/24";
pub const GUEST_UPLINK_IP: &str = "169.254.169.15";
pub const IMDS_ADDR: &str = "169.254.169.254:80";
/// Where the guest finds the artifact mirror (forwarded per VM, so each VM has its own server).
pub const MIRROR_ADDR: &str = "169.254.169.250:80";
/// Where the guest finds the fake Key Vault (HTTPS), for the names the seed maps to it.
pub const VAULT_ADDR: &str = "169.254.169.251:443";

#[derive(Debug, Clone)]
pub struct PrivateLink {
    pub mac: String,
    pub local_port: u16,
    pub remote_port: u16,
}

#[derive(Debug, Clone)]
pub struct VmConfig {
    pub name: String,
    pub memory_mb: u32,
    pub cpus: u32,
    pub seed_iso: PathBuf,
    pub uplink_mac: String,
    /// `(guest address:port, loopback port on the host)`.
    pub forwards: Vec<(String, u16)>,
    pub private_link: Option<PrivateLink>,
    /// Virtual size of the VM's disk (at least the image's).
    pub disk_gb: u32,
    pub timeout: Duration,
    /// A guest reboot ends QEMU (`-no-reboot`), for a VM that should boot once and power off.
    pub exit_on_reboot: bool,
}

pub struct Vm {
    pub name: String,
    pub console: PathBuf,
    pub evidence: PathBuf,
    /// pcap of the uplink's frames (first bytes of each), see `capture.rs`.
    pub uplink_capture: PathBuf,
    pub started: Instant,
    monitor: PathBuf,
    child: Child,
}

impl Vm {
    pub fn start(image: &Image, config: &VmConfig, workdir: &Path) -> Result<Self> {
        let accel = accelerator(std::env::var(ACCEL_VARIABLE).ok().as_deref())?;
        let console = workdir.join(format!("{}.console.log", config.name));
        let evidence = workdir.join(format!("{}.evidence.log", config.name));
        let monitor = workdir.join(format!("{}.monitor.sock", config.name));
        let uplink_capture = workdir.join(format!("{}.uplink.pcap", config.name));
        // A throw-away copy-on-write disk over the pristine image, larger than the image as a cloud
        // VM's disk is; cloud-init's resizefs grows the root filesystem into it at first boot.
        let overlay = workdir.join(format!("{}.disk.qcow2", config.name));
        let _ = std::fs::remove_file(&overlay);
        let out = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(&image.disk)
            .arg(&overlay)
            .arg(format!("{}G", config.disk_gb))
            .output()
            .context("qemu-img create")?;
        if !out.status.success() {
            bail!("qemu-img create: {}", String::from_utf8_lossy(&out.stderr));
        }
        let mut uplink = format!("user,id=up,net={UPLINK_NET}");
        for (guest, host_port) in &config.forwards {
            uplink += &format!(",guestfwd=tcp:{guest}-cmd:socat STDIO TCP:127.0.0.1:{host_port}");
        }
        let mut cmd = Command::new("timeout");
        cmd.arg("--kill-after=10")
            .arg(config.timeout.as_secs().to_string())
            .arg("qemu-system-x86_64")
            .args(["-accel", accel, "-nodefaults", "-display", "none"])
            .args(["-m", &config.memory_mb.to_string()])
            .args(["-smp", &config.cpus.to_string()])
            .arg("-kernel")
            .arg(&image.kernel)
            .arg("-initrd")
            .arg(&image.initrd)
            .args(["-append", KERNEL_COMMAND_LINE])
            .args([
                "-drive",
                &format!("file={},format=qcow2,if=virtio", overlay.display()),
            ])
            .args([
                "-drive",
                &format!(
                    "file={},format=raw,if=virtio,readonly=on",
                    config.seed_iso.display()
                ),
            ])
            .args(["-netdev", &uplink])
            .args([
                "-object",
                &format!(
                    "filter-dump,id=upcap,netdev=up,maxlen=96,file={}",
                    uplink_capture.display()
                ),
            ])
            .args([
                "-device",
                &format!("virtio-net-pci,netdev=up,mac={}", config.uplink_mac),
            ]);
        if let Some(link) = &config.private_link {
            cmd.args([
                "-netdev",
                &format!(
                    "socket,id=link,udp=127.0.0.1:{},localaddr=127.0.0.1:{}",
                    link.remote_port, link.local_port
                ),
            ])
            .args([
                "-device",
                &format!("virtio-net-pci,netdev=link,mac={}", link.mac),
            ]);
        }
        if config.exit_on_reboot {
            cmd.arg("-no-reboot");
        }
        cmd.args(["-serial", &format!("file:{}", console.display())])
            .args(["-serial", &format!("file:{}", evidence.display())])
            .args([
                "-monitor",
                &format!("unix:{},server=on,wait=off", monitor.display()),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(
                workdir.join(format!("{}.qemu.log", config.name)),
            )?);
        let child = cmd
            .spawn()
            .context("start qemu-system-x86_64 under timeout")?;
        Ok(Self {
            name: config.name.clone(),
            console,
            evidence,
            uplink_capture,
            started: Instant::now(),
            monitor,
            child,
        })
    }

    /// Sends one HMP command (e.g. `system_reset`, `sendkey ctrl-alt-delete`, `quit`).
    pub fn monitor(&self, command: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stream = loop {
            match UnixStream::connect(&self.monitor) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => {
                    return Err(e).context(format!("{}: connect to the QEMU monitor", self.name))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        stream.set_read_timeout(Some(Duration::from_millis(500)))?;
        let mut banner = [0u8; 512];
        let _ = stream.read(&mut banner);
        stream.write_all(format!("{command}\n").as_bytes())?;
        let _ = stream.read(&mut banner);
        Ok(())
    }

    /// A clean reboot, as pressing Ctrl-Alt-Del: systemd shuts down and the VM boots again.
    pub fn reboot(&self) -> Result<()> {
        self.monitor("sendkey ctrl-alt-delete")
    }

    /// A hard reset, as a power cut: nothing is flushed.
    pub fn reset(&self) -> Result<()> {
        self.monitor("system_reset")
    }

    pub fn evidence_text(&self) -> String {
        std::fs::read(&self.evidence)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until `done` holds for the evidence received so far; fails if QEMU exits first.
    pub fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&str) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = done(&self.evidence_text()) {
                return Ok(found);
            }
            if !self.is_running() {
                bail!(
                    "{}: QEMU exited while waiting for {what} (console: {})",
                    self.name,
                    self.console.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: no {what} after {timeout:?} (console: {})",
                    self.name,
                    self.console.display()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Waits until QEMU exits: the guest powered off (success) or `timeout` ended it (124).
    pub fn wait(mut self) -> Result<ExitStatus> {
        self.child
            .wait()
            .with_context(|| format!("{}: wait for QEMU", self.name))
    }

    /// Powers the VM off. SIGTERM goes to `timeout`, which passes it on to QEMU (a SIGKILL to
    /// `timeout` would orphan QEMU).
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if !self.is_running() {
            return;
        }
        let _ = self.monitor("quit");
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.is_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if self.is_running() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.terminate();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcg_unless_kvm_is_asked_for() {
        assert_eq!(accelerator(None).unwrap(), "tcg,thread=multi");
        assert_eq!(accelerator(Some("tcg")).unwrap(), "tcg,thread=multi");
        assert_eq!(accelerator(Some("kvm")).unwrap(), "kvm");
        let err = accelerator(Some("KVM")).unwrap_err().to_string();
        assert!(err.contains("KUBEBOOT_VM_ACCEL=KVM"), "{err}");
    }
}
