//! Process exit codes of both kubeboot binaries, in one table (docs/cli.md#exit-codes), so a
//! script or systemd can tell a failure that a retry may fix from input that no retry changes.

/// The command did what it was asked (for `kubeboot-agent run`: every applicable phase is done).
pub const OK: u8 = 0;
/// The command failed: a phase failed, `check` or `audit` found a problem, an I/O error.
pub const FAILED: u8 = 1;
/// Bad input: an invalid spec or NodeConfig, an unreadable input file, a bad command line.
pub const BAD_INPUT: u8 = 2;
/// `kubeboot-agent`: this machine cannot host the node (below the minimums preflight checks).
pub const UNSUPPORTED: u8 = 3;
/// `kubeboot-agent status`: the node's last run stopped at a failed phase.
pub const PHASE_FAILED: u8 = 4;

/// Every code, as the table in docs/cli.md lists them.
pub const ALL: [u8; 5] = [OK, FAILED, BAD_INPUT, UNSUPPORTED, PHASE_FAILED];

#[cfg(test)]
mod tests {
    /// The documented table has one row per code, and no other.
    #[test]
    fn the_docs_table_lists_every_code() {
        let doc = include_str!("../../docs/cli.md");
        let section = doc
            .split("## Exit codes")
            .nth(1)
            .expect("docs/cli.md has an Exit codes section");
        let documented: Vec<u8> = section
            .lines()
            .take_while(|l| !l.starts_with("## "))
            .filter_map(|l| l.strip_prefix("| `")?.split('`').next()?.parse().ok())
            .collect();
        assert_eq!(documented, super::ALL);
    }
}
