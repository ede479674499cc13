//! kubeboot-gen: renders a cluster from one spec.

pub mod arm;
pub mod names;
pub mod spec;
