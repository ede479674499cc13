//! Stand-in for kube-apiserver (tests only), started by the kubeadm stand-in from its static pod manifest.
use kubeboot_stand_ins::{apiserver, Invocation};

fn main() {
    Invocation::begin("kube-apiserver").run(|inv| apiserver::run(inv.root.clone(), &inv.args))
}
