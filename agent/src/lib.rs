//! kubeboot-agent: turns a VM into a Kubernetes master or worker from its NodeConfig.
//! The binary (`main.rs`) only calls into this library, so everything is testable without a VM.

pub mod apiserver;
pub mod artifacts;
pub mod audit;
pub mod cli;
pub mod context;
pub mod error;
pub mod exec;
pub mod facts;
/// The atomic-write helper lives in the contract crate so the generator shares it.
pub use kubeboot_nodeconfig::fsx;
pub mod hosts;
pub mod join_token;
pub mod kubeadm;
pub mod kubeadm_node;
pub mod kubelet;
pub mod logging;
pub mod markers;
pub mod overlay;
pub mod paths;
pub mod phases;
pub mod policy;
pub mod provider;
pub mod retry;
pub mod root;
pub mod secrets;
#[cfg(test)]
pub mod testing;
pub mod upgrade;
pub mod workflow;
