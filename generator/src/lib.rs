//! kubeboot-gen: renders a cluster from one spec.

pub mod names;
pub mod spec;
