//! `kubeadm reset -f`: undo what init/join wrote (the contents of the manifests, kubelet and PKI dirs, the
//! kubeconfigs, etcd data) and stop the API server it started.
use std::path::Path;

use anyhow::{bail, Result};

use super::config::{self, Purpose};
use super::controlplane;
use crate::apiserver::state;
use crate::flags::Parsed;
use crate::version::KubeVersion;
use crate::Root;

pub fn run(root: &Root, flags: &Parsed) -> Result<()> {
    if !flags.is_true("force") {
        bail!("reset asks for confirmation on a terminal; kubeboot must pass -f/--force");
    }
    if let Some(path) = flags.last("config") {
        config::load(
            Path::new(path),
            Purpose::Reset,
            KubeVersion::own()?.as_ref(),
        )?;
    }
    let cert_dir = flags.last("cert-dir").unwrap_or("/etc/kubernetes/pki");
    println!("[reset] Stopping the control plane");
    controlplane::stop_apiserver(root)?;
    for dir in [
        "/etc/kubernetes/manifests",
        "/var/lib/kubelet",
        cert_dir,
        "/var/lib/etcd",
        state::DIR,
    ] {
        let dir = root.path(dir);
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = entry.path();
            let res = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            res.map_err(|e| anyhow::anyhow!("removing {}: {e}", p.display()))?;
        }
    }
    println!("[reset] Deleting contents of directories: [/etc/kubernetes/manifests /var/lib/kubelet {cert_dir}]");
    for f in [
        "admin.conf",
        "super-admin.conf",
        "kubelet.conf",
        "bootstrap-kubelet.conf",
        "controller-manager.conf",
        "scheduler.conf",
    ] {
        let p = root.path(Path::new("/etc/kubernetes").join(f));
        if p.exists() {
            std::fs::remove_file(&p)?;
        }
    }
    println!("[reset] Deleting files: [/etc/kubernetes/admin.conf /etc/kubernetes/super-admin.conf /etc/kubernetes/kubelet.conf /etc/kubernetes/bootstrap-kubelet.conf /etc/kubernetes/controller-manager.conf /etc/kubernetes/scheduler.conf]");
    Ok(())
}
