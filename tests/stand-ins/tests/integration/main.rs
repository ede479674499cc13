//! The stand-ins' integration tests, one binary (as ripgrep does): a module per concern, sharing `common`.

mod bootstrap_tokens;
mod common;
mod kill;
mod kubeadm_validation;
mod kubectl_apply;
mod kubelet_and_shims;
mod removals;
mod roundtrip;
