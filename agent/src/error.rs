//! Failures that map to a documented exit code (`kubeboot_nodeconfig::exit`) other than "failed".

use kubeboot_nodeconfig::exit;

/// An error that is not the phase's own failure but a reason to stop with a specific exit code.
/// Phases return it inside `anyhow::Error`; the CLI finds it with `downcast_ref`.
#[derive(Debug, thiserror::Error)]
pub enum Stop {
    /// The NodeConfig contradicts itself or the machine it landed on.
    #[error("bad config: {0}")]
    BadConfig(String),
    /// The machine does not meet the minimums for this node.
    #[error("unsupported environment: {0}")]
    Unsupported(String),
}

/// The exit code for an error from any subcommand.
pub fn exit_code_for(err: &anyhow::Error) -> u8 {
    let stop = err.chain().find_map(|e| e.downcast_ref::<Stop>());
    let bad_config = err.chain().any(|e| {
        e.downcast_ref::<kubeboot_nodeconfig::FieldError>()
            .is_some()
    });
    match stop {
        Some(Stop::BadConfig(_)) => exit::BAD_INPUT,
        Some(Stop::Unsupported(_)) => exit::UNSUPPORTED,
        None if bad_config => exit::BAD_INPUT,
        None => exit::FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn maps_errors_to_exit_codes() {
        let unsupported: anyhow::Error = Stop::Unsupported("1 CPU".into()).into();
        assert_eq!(exit_code_for(&unsupported.context("phase preflight")), 3);
        let field = kubeboot_nodeconfig::FieldError::new("cluster.name", "bad");
        let wrapped: anyhow::Result<()> = Err(field).context("reading node.yaml");
        assert_eq!(exit_code_for(&wrapped.unwrap_err()), 2);
        assert_eq!(exit_code_for(&anyhow::anyhow!("kubeadm exited 1")), 1);
    }

    /// The unit restarts the agent after any failure a retry can fix, and only after those.
    #[test]
    fn the_unit_restarts_every_failure_but_the_unfixable_ones() {
        let unit = include_str!("../../units/kubeboot-agent.service");
        let value = |key: &str| {
            let found: Vec<&str> = unit
                .lines()
                .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .collect();
            assert_eq!(found.len(), 1, "{key} is set once");
            found[0].trim()
        };
        assert_eq!(value("Restart"), "on-failure");
        assert!(value("RestartSec").parse::<u32>().unwrap() > 0);
        let prevented: Vec<u8> = value("RestartPreventExitStatus")
            .split_whitespace()
            .map(|c| c.parse().unwrap())
            .collect();
        assert_eq!(prevented, [exit::BAD_INPUT, exit::UNSUPPORTED]);
        assert!(!prevented.contains(&exit::FAILED));
    }
}
