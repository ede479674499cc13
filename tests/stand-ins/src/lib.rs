//! Shared code of the test stand-ins for kubeadm, kubelet and kube-apiserver (and the systemctl/modprobe
//! shims). Never shipped: these programs exist so tests can check what kubeboot hands to the real tools.

pub mod apiserver;
pub mod client;
pub mod fake_azure;
pub mod flags;
pub mod fsx;
pub mod invocation;
pub mod jws;
pub mod kubeadm;
pub mod kubeconfig;
pub mod kubelet;
pub mod pki;
pub mod releases;
pub mod schema;
pub mod version;

pub use invocation::{Invocation, Root};

/// Where `.ci/install-deps` puts the kubectl the tests use (a supported minor), unless
/// `KUBEBOOT_TEST_KUBECTL` names another.
pub const TEST_KUBECTL: &str = "/usr/local/lib/kubeboot-tests/kubectl/bin/kubectl";

/// The real kubectl for tests; panics with what to do when it is missing.
pub fn test_kubectl() -> std::path::PathBuf {
    let path = std::env::var_os("KUBEBOOT_TEST_KUBECTL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| TEST_KUBECTL.into());
    assert!(
        path.is_file(),
        "kubectl for the tests is missing at {} (run .ci/install-deps)",
        path.display()
    );
    path
}
