//! kubeboot-agent: turns a VM into a Kubernetes master or worker from its NodeConfig.
//! The binary (`main.rs`) only calls into this library, so everything is testable without a VM.

pub mod artifacts;
/// The atomic-write helper lives in the contract crate so the generator shares it.
pub use kubeboot_nodeconfig::fsx;
pub mod apiserver;
pub mod audit;
pub mod root;
