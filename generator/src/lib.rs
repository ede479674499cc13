//! kubeboot-gen: renders a cluster from one spec.

pub mod spec;
