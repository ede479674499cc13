//! Test helpers: NodeConfigs for each node kind and a temporary root with the few files a node
//! has before the agent runs.

pub mod fixture;

use std::collections::BTreeMap;

use kubeboot_nodeconfig::NodeConfig;
use kubeboot_test_kit::snapshot;

use crate::context::Context;
use crate::facts::{NodeFacts, NodeKind};
use crate::fsx;
use crate::root::Root;

/// A temporary node root with a hostname, an empty /proc/swaps and an fstab.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new(hostname: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let write =
            |p: &str, text: &str| fsx::write_atomic(&root.path(p), text.as_bytes(), 0o644).unwrap();
        write("/proc/sys/kernel/hostname", &format!("{hostname}\n"));
        write(
            "/proc/swaps",
            "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n",
        );
        write("/etc/fstab", "UUID=1234 / ext4 defaults 0 1\n");
        write("/etc/hosts", "127.0.0.1 localhost\n");
        Self { dir }
    }

    pub fn root(&self) -> Root {
        Root::new(self.dir.path())
    }

    /// A dry-run context: phases write files but run no command.
    pub fn context(&self, config: NodeConfig) -> Context {
        Context::new(self.root(), config, true)
    }

    /// Writes node facts as the metadata phase would for provider none.
    pub fn with_facts(&self, config: &NodeConfig, kind: NodeKind) {
        let facts = NodeFacts {
            node_name: "node-1".into(),
            kind,
            provider: "none".into(),
            provider_id: None,
            address: Some("10.0.0.4".parse().unwrap()),
            labels: BTreeMap::from([("kubeboot.io/pool".to_string(), config.node.pool.clone())]),
            taints: config.node.taints.clone(),
            azure: None,
        };
        crate::markers::write_json(&self.root().path(crate::paths::FACTS_FILE), &facts).unwrap();
    }
}

/// Runs `phase` twice and asserts the second run changed nothing on disk.
pub fn assert_idempotent(phase: &dyn crate::phases::Phase, ctx: &Context) {
    phase.run(ctx).unwrap();
    let first = snapshot::take(ctx.root.dir());
    phase.run(ctx).unwrap();
    assert_eq!(
        first,
        snapshot::take(ctx.root.dir()),
        "phase {} changed files on its second run",
        phase.name()
    );
}
