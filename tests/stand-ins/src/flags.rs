//! A strict command-line parser with pflag's syntax (`--name=value`, `--name value`, `--bool`,
//! `-s value`), used so each stand-in accepts exactly the flags of the real program.
use anyhow::{bail, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    Bool,
    Value,
    /// pflag's NoOptDefVal: `--flag` alone means "true", `--flag=x` sets x (e.g. `--version=raw`).
    Optional,
}

#[derive(Clone, Copy, Debug)]
pub struct Flag {
    pub name: &'static str,
    pub short: Option<char>,
    pub arity: Arity,
}

pub const fn value(name: &'static str) -> Flag {
    Flag {
        name,
        short: None,
        arity: Arity::Value,
    }
}

pub const fn optional(name: &'static str) -> Flag {
    Flag {
        name,
        short: None,
        arity: Arity::Optional,
    }
}

pub const fn boolean(name: &'static str) -> Flag {
    Flag {
        name,
        short: None,
        arity: Arity::Bool,
    }
}

impl Flag {
    pub const fn short(mut self, c: char) -> Flag {
        self.short = Some(c);
        self
    }
}

#[derive(Debug, Default)]
pub struct Parsed {
    /// Flags in command-line order, by long name.
    pub flags: Vec<(String, String)>,
    pub positionals: Vec<String>,
}

impl Parsed {
    pub fn last(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn is_true(&self, name: &str) -> bool {
        self.last(name) == Some("true")
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.flags.iter().map(|(n, _)| n.as_str())
    }
}

fn bool_value(name: &str, v: &str) -> Result<String> {
    match v {
        "true" | "1" | "t" | "T" | "TRUE" | "True" => Ok("true".into()),
        "false" | "0" | "f" | "F" | "FALSE" | "False" => Ok("false".into()),
        _ => bail!("invalid argument {v:?} for \"--{name}\" flag: strconv.ParseBool: parsing {v:?}: invalid syntax"),
    }
}

pub fn parse(args: &[String], spec: &[Flag]) -> Result<Parsed> {
    let mut out = Parsed::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            out.positionals.extend(it.by_ref().cloned());
            break;
        }
        let (flag, inline) = if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let Some(flag) = spec.iter().find(|f| f.name == name) else {
                bail!("unknown flag: --{name}");
            };
            (flag, inline)
        } else if let Some(short) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            let c = short.chars().next().expect("non-empty");
            let Some(flag) = spec.iter().find(|f| f.short == Some(c)) else {
                bail!("unknown shorthand flag: '{c}' in {arg}");
            };
            let rest = &short[c.len_utf8()..];
            let inline = match rest.strip_prefix('=') {
                Some(v) => Some(v.to_string()),
                None if rest.is_empty() => None,
                None if flag.arity == Arity::Value => Some(rest.to_string()),
                None => bail!(
                    "unknown shorthand flag: '{}' in {arg}",
                    rest.chars().next().expect("non-empty")
                ),
            };
            (flag, inline)
        } else {
            out.positionals.push(arg.clone());
            continue;
        };
        let value = match (flag.arity, inline) {
            (Arity::Bool | Arity::Optional, None) => "true".to_string(),
            (Arity::Optional, Some(v)) => v,
            (Arity::Bool, Some(v)) => bool_value(flag.name, &v)?,
            (Arity::Value, Some(v)) => v,
            (Arity::Value, None) => match it.next() {
                Some(v) => v.clone(),
                None => bail!("flag needs an argument: --{}", flag.name),
            },
        };
        out.flags.push((flag.name.to_string(), value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    const SPEC: &[Flag] = &[
        value("config"),
        boolean("force").short('f'),
        value("v").short('v'),
    ];

    #[test]
    fn accepts_pflag_forms() {
        let p = parse(&args(&["--config", "a", "-f", "--v=3", "pos", "-v4"]), SPEC).unwrap();
        assert_eq!(p.last("config"), Some("a"));
        assert!(p.is_true("force"));
        assert_eq!(p.all("v"), vec!["3", "4"]);
        assert_eq!(p.positionals, vec!["pos"]);
    }

    #[test]
    fn rejects_unknown_and_incomplete_flags() {
        assert_eq!(
            parse(&args(&["--nope"]), SPEC).unwrap_err().to_string(),
            "unknown flag: --nope"
        );
        assert!(parse(&args(&["-x"]), SPEC)
            .unwrap_err()
            .to_string()
            .contains("unknown shorthand flag: 'x'"));
        assert!(parse(&args(&["--config"]), SPEC)
            .unwrap_err()
            .to_string()
            .contains("needs an argument"));
        assert!(parse(&args(&["--force=maybe"]), SPEC).is_err());
    }
}
