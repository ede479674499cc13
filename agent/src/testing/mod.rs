//! Test helpers: NodeConfigs for each node kind and a temporary root with the files a booted VM
//! has before the agent runs.

pub mod fixture;

use std::collections::BTreeMap;

use kubeboot_nodeconfig::NodeConfig;
use kubeboot_test_kit::fake_root::FakeRoot;
use kubeboot_test_kit::snapshot;

use crate::context::Context;
use crate::exec::Runner;
use crate::facts::{NodeFacts, NodeKind};
use crate::root::Root;

/// A temporary node root, as the test kit's `FakeRoot::booted_vm` makes it.
pub struct Sandbox {
    fs: FakeRoot,
}

impl Sandbox {
    pub fn new(hostname: &str) -> Self {
        Self {
            fs: FakeRoot::booted_vm(hostname),
        }
    }

    pub fn root(&self) -> Root {
        Root::new(self.fs.root())
    }

    /// A context whose phases write their files under the sandbox but run no command (the
    /// runner records them).
    pub fn context(&self, config: NodeConfig) -> Context {
        Context::with_runner(self.root(), config, Runner::recording(self.root()))
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
        crate::markers::write_json(&self.root(), crate::paths::FACTS_FILE, &facts).unwrap();
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

/// The rows of the table in docs/agent.md whose header line is `header` (`| a | b |`): per row,
/// the cells without backticks, the first also without its `|` and spaces (a phase's name).
pub fn agent_doc_table(header: &str) -> Vec<Vec<String>> {
    let doc = include_str!("../../../docs/agent.md");
    let table = doc
        .split_once(header)
        .unwrap_or_else(|| panic!("docs/agent.md has a table headed {header}"))
        .1;
    table
        .lines()
        .skip(2) // the rest of the header line and the separator
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let mut cells: Vec<String> = line.split(" | ").map(|c| c.replace('`', "")).collect();
            cells[0] = cells[0].replace(['|', ' '], "");
            cells
        })
        .collect()
}
