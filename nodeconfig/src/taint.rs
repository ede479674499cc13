//! Node taints as users write them (`key=value:Effect` or `key:Effect`).

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Taint {
    pub key: String,
    pub value: Option<String>,
    pub effect: TaintEffect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl TaintEffect {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoSchedule => "NoSchedule",
            Self::PreferNoSchedule => "PreferNoSchedule",
            Self::NoExecute => "NoExecute",
        }
    }
}

impl FromStr for Taint {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let (kv, effect) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("taint {text:?} must look like key=value:Effect"))?;
        let effect = match effect {
            "NoSchedule" => TaintEffect::NoSchedule,
            "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
            "NoExecute" => TaintEffect::NoExecute,
            other => {
                return Err(format!(
                "taint {text:?}: effect {other:?} is not NoSchedule, PreferNoSchedule or NoExecute"
            ))
            }
        };
        let (key, value) = match kv.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (kv, None),
        };
        crate::labels::check_qualified_name(key).map_err(|e| format!("taint {text:?}: key {e}"))?;
        if let Some(v) = &value {
            crate::labels::check_label_value(v)
                .map_err(|e| format!("taint {text:?}: value {e}"))?;
        }
        Ok(Self {
            key: key.to_string(),
            value,
            effect,
        })
    }
}

impl fmt::Display for Taint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={}:{}", self.key, v, self.effect.as_str()),
            None => write!(f, "{}:{}", self.key, self.effect.as_str()),
        }
    }
}

impl TryFrom<String> for Taint {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<Taint> for String {
    fn from(taint: Taint) -> String {
        taint.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let t: Taint = "nvidia.com/gpu=present:NoSchedule".parse().unwrap();
        assert_eq!(t.key, "nvidia.com/gpu");
        assert_eq!(t.value.as_deref(), Some("present"));
        assert_eq!(t.to_string(), "nvidia.com/gpu=present:NoSchedule");
        assert!("dedicated:NoExecute".parse::<Taint>().is_ok());
        assert!("x=y:Sometimes".parse::<Taint>().is_err());
        assert!("no-effect".parse::<Taint>().is_err());
        assert!("bad key!=v:NoSchedule".parse::<Taint>().is_err());
    }
}
