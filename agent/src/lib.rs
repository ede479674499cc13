//! kubeboot-agent: turns a VM into a Kubernetes master or worker from its NodeConfig.
//! The binary (`main.rs`) only calls into this library, so everything is testable without a VM.

pub mod artifacts;
pub mod fsx;
pub mod root;
