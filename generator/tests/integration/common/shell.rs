//! The shell in a Markdown document (```sh blocks, and inline `code` in prose), and checks of
//! the `kubeboot-gen` / `kubeboot-agent` command lines in it against the real command lines:
//! `kubeboot-gen --help` of the built binary, the agent's clap definition. Used by the tests of
//! docs/azure.md and docs/operations.md.

use std::collections::{BTreeMap, BTreeSet};

use clap::CommandFactory;
use kubeboot_agent::cli::Cli as AgentCli;

use super::gen;
use kubeboot_test_kit::output::stdout;

/// The shell parts of a runbook: command lines (continuations joined, comments and here-document
/// bodies left out) and here-document bodies by the file they are written to.
#[derive(Default)]
pub struct Shell {
    pub lines: Vec<String>,
    pub heredocs: BTreeMap<String, String>,
}

impl Shell {
    pub fn parse(doc: &str) -> Self {
        let mut shell = Shell::default();
        let mut in_block = false;
        let mut pending = String::new();
        let mut heredoc: Option<(String, String, String)> = None; // (file, delimiter, body)
        for line in doc.lines() {
            if line.trim_start().starts_with("```") {
                in_block = !in_block && line.trim() == "```sh";
                continue;
            }
            if !in_block {
                continue;
            }
            if let Some((file, delimiter, body)) = &mut heredoc {
                if line == delimiter {
                    shell.heredocs.insert(file.clone(), std::mem::take(body));
                    heredoc = None;
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
                continue;
            }
            if let Some(continued) = line.strip_suffix('\\') {
                pending.push_str(continued);
                continue;
            }
            pending.push_str(line);
            let full = std::mem::take(&mut pending);
            if full.trim().is_empty() || full.trim_start().starts_with('#') {
                continue;
            }
            let w = words(&full);
            if let Some(i) = w.iter().position(|w| w == "<<") {
                let file = w[..i].iter().rev().find(|w| *w != ">").cloned();
                heredoc = Some((
                    file.expect("a here-document written to a file"),
                    w[i + 1].clone(),
                    String::new(),
                ));
            }
            shell.lines.push(full);
        }
        assert!(heredoc.is_none(), "unterminated here-document");
        shell
    }

    /// `NAME=value` lines with a literal value: the runbook's settings.
    /// `seed`: values the document reads from elsewhere (e.g. `az account show`).
    pub fn variables(&self, seed: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut vars: BTreeMap<String, String> = seed
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for line in &self.lines {
            if let [word] = words(line).as_slice() {
                if let Some((name, value)) = word.split_once('=') {
                    if name
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                    {
                        vars.insert(name.to_string(), value.to_string());
                    }
                }
            }
        }
        vars
    }

    /// Every invocation of `program` (a word in command position, a path's last part counts):
    /// its arguments up to the next shell operator.
    pub fn invocations(&self, program: &str) -> Vec<Vec<String>> {
        let mut found = Vec::new();
        for line in &self.lines {
            let w = words(line);
            for (i, word) in w.iter().enumerate() {
                let command_position = i == 0
                    || is_operator(&w[i - 1])
                    || matches!(
                        w[i - 1].as_str(),
                        "sudo" | "until" | "while" | "do" | "then" | "if" | "!"
                    );
                if command_position && word.rsplit('/').next() == Some(program) {
                    let args = w[i + 1..]
                        .iter()
                        .take_while(|a| !is_operator(a))
                        .cloned()
                        .collect();
                    found.push(args);
                }
            }
        }
        found
    }
}

pub fn is_operator(word: &str) -> bool {
    matches!(
        word,
        "|" | "||" | ";" | "&" | "&&" | "(" | "$(" | ")" | ">" | "<" | "<<"
    )
}

/// Splits a command line into words as the shell would, without expanding anything: quotes are
/// removed (a quoted stretch stays in its word), `|;&()<>` are words of their own.
pub fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false; // the current word has a quoted part (so "" is a word)
    let mut chars = line.chars().peekable();
    let flush = |word: &mut String, quoted: &mut bool, out: &mut Vec<String>| {
        if !word.is_empty() || *quoted {
            out.push(std::mem::take(word));
        }
        *quoted = false;
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '"' => {
                quoted = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' if matches!(chars.peek(), Some('"' | '\\' | '$' | '`')) => {
                            word.push(chars.next().unwrap())
                        }
                        _ => word.push(c),
                    }
                }
            }
            '\\' => word.extend(chars.next()),
            c if c.is_whitespace() => flush(&mut word, &mut quoted, &mut out),
            '|' | ';' | '&' | '(' | ')' | '<' | '>' => {
                // A doubled operator is one word, and so is `$(` (a command substitution).
                let substitution = c == '(' && word.ends_with('$');
                if substitution {
                    word.pop();
                }
                flush(&mut word, &mut quoted, &mut out);
                let mut op = if substitution {
                    "$".to_string()
                } else {
                    String::new()
                };
                op.push(c);
                if chars.peek() == Some(&c) && c != '(' && c != ')' {
                    op.push(chars.next().unwrap());
                }
                out.push(op);
            }
            _ => word.push(c),
        }
    }
    flush(&mut word, &mut quoted, &mut out);
    out
}

/// Subcommands (`Commands:` section) or long options (`--x` in lines starting with `-`) of a
/// `kubeboot-gen ... --help` text.
pub fn gen_help(args: &[&str]) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut full: Vec<&str> = args.to_vec();
    full.push("--help");
    let out = gen(&full);
    assert!(out.status.success(), "kubeboot-gen {full:?} failed");
    let help = stdout(&out);
    let mut commands = BTreeSet::new();
    let mut flags = BTreeSet::new();
    let mut section = "";
    for line in help.lines() {
        if !line.starts_with(' ') {
            section = line;
            continue;
        }
        let trimmed = line.trim_start();
        if section == "Commands:" && line.starts_with("  ") && !line.starts_with("   ") {
            commands.extend(trimmed.split_whitespace().next().map(str::to_string));
        }
        if section == "Options:" && trimmed.starts_with('-') {
            for token in trimmed.split_whitespace() {
                if let Some(flag) = token.strip_prefix("--") {
                    flags.insert(format!("--{}", flag.trim_end_matches(',')));
                }
            }
        }
    }
    (commands, flags)
}

/// The problems with one `kubeboot-agent` command line (subcommand and options, not values).
pub fn agent_command_problems(args: &[String]) -> Vec<String> {
    let cli = AgentCli::command();
    let Some(sub) = args.first() else {
        return vec!["kubeboot-agent without a subcommand".into()];
    };
    let Some(command) = cli.find_subcommand(sub) else {
        return vec![format!("kubeboot-agent has no subcommand {sub:?}")];
    };
    let mut problems = Vec::new();
    for arg in &args[1..] {
        let known = if let Some(long) = arg.strip_prefix("--") {
            let long = long.split('=').next().unwrap();
            long == "help" || command.get_arguments().any(|a| a.get_long() == Some(long))
        } else if let Some(short) = arg.strip_prefix('-').filter(|s| s.chars().count() == 1) {
            let short = short.chars().next().unwrap();
            short == 'h'
                || command
                    .get_arguments()
                    .any(|a| a.get_short() == Some(short))
        } else {
            true // a value
        };
        if !known {
            problems.push(format!("kubeboot-agent {sub} has no option {arg}"));
        }
    }
    problems
}

impl Shell {
    /// The lines of a Markdown document outside its fenced code blocks.
    pub fn prose(doc: &str) -> impl Iterator<Item = &str> {
        let mut in_block = false;
        doc.lines().filter(move |line| {
            if line.trim_start().starts_with("```") {
                in_block = !in_block;
                return false;
            }
            !in_block
        })
    }

    /// Inline code spans of the prose of more than one word, each as a command line (a lone word
    /// names a program, it is not a command).
    pub fn inline_code(doc: &str) -> Self {
        let lines = Self::prose(doc)
            .flat_map(|line| line.split('`').skip(1).step_by(2))
            .filter(|code| words(code).len() > 1)
            .map(String::from)
            .collect();
        Shell {
            lines,
            ..Shell::default()
        }
    }
}

/// Every problem with the `kubeboot-gen` and `kubeboot-agent` command lines of `shell`: an
/// unknown subcommand or option (values are not checked).
pub fn kubeboot_command_problems(shell: &Shell) -> Vec<String> {
    let mut problems = Vec::new();
    let (subcommands, _) = gen_help(&[]);
    for args in shell.invocations("kubeboot-gen") {
        let Some(sub) = args.first() else {
            problems.push("kubeboot-gen without a subcommand".into());
            continue;
        };
        if !subcommands.contains(sub) {
            problems.push(format!(
                "kubeboot-gen has no subcommand {sub:?} ({subcommands:?})"
            ));
            continue;
        }
        let (_, flags) = gen_help(&[sub]);
        for arg in args.iter().filter(|a| a.starts_with("--")) {
            let flag = arg.split('=').next().unwrap();
            if !flags.contains(flag) {
                problems.push(format!(
                    "kubeboot-gen {sub} has no option {flag} ({flags:?})"
                ));
            }
        }
    }
    for args in shell.invocations("kubeboot-agent") {
        problems.extend(agent_command_problems(&args));
    }
    problems
}
