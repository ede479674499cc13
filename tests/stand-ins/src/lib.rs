//! Shared code of the test stand-ins for kubeadm, kubelet and kube-apiserver (and the systemctl/modprobe
//! shims). Never shipped: these programs exist so tests can check what kubeboot hands to the real tools.

pub mod apiserver;
pub mod client;
pub mod flags;
pub mod fsx;
pub mod invocation;
pub mod jws;
pub mod kubeadm;
pub mod kubeconfig;
pub mod kubelet;
pub mod pki;
pub mod schema;
pub mod version;

pub use invocation::{Invocation, Root};
