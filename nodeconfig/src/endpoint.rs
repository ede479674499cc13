//! The control-plane endpoint: `host:port` (`[v6]:port` for an IPv6 address) every node uses to
//! reach the API server. Parsed and checked here only; on the wire it is that one string.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ControlPlaneEndpoint {
    host: Host,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A DNS name (RFC 1123, any case).
    Name(String),
    Ip(IpAddr),
}

impl ControlPlaneEndpoint {
    pub fn host(&self) -> &Host {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host when it is a name (an IP endpoint needs no name mapped).
    pub fn name(&self) -> Option<&str> {
        match &self.host {
            Host::Name(name) => Some(name),
            Host::Ip(_) => None,
        }
    }
}

impl fmt::Display for Host {
    /// The host as certificates name it (an IPv6 address without brackets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(name) => f.write_str(name),
            Self::Ip(ip) => ip.fmt(f),
        }
    }
}

impl fmt::Display for ControlPlaneEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            _ => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

impl FromStr for ControlPlaneEndpoint {
    type Err = String;
    fn from_str(endpoint: &str) -> Result<Self, String> {
        let (host, port) = endpoint
            .rsplit_once(':')
            .ok_or_else(|| format!("{endpoint:?} needs a port (host:port)"))?;
        let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => v6.parse().ok().map(|ip| Host::Ip(IpAddr::V6(ip))),
            None => match host.parse() {
                Ok(v4) => Some(Host::Ip(IpAddr::V4(v4))),
                Err(_) => crate::labels::is_dns_subdomain(&host.to_ascii_lowercase())
                    .then(|| Host::Name(host.to_string())),
            },
        }
        .ok_or_else(|| format!("{endpoint:?} has no valid host"))?;
        match port.parse::<u16>() {
            Ok(port) if port > 0 => Ok(Self { host, port }),
            _ => Err(format!("{endpoint:?} has an invalid port")),
        }
    }
}

impl TryFrom<String> for ControlPlaneEndpoint {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<ControlPlaneEndpoint> for String {
    fn from(endpoint: ControlPlaneEndpoint) -> String {
        endpoint.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ControlPlaneEndpoint, String> {
        text.parse()
    }

    #[test]
    fn round_trips_names_and_addresses() {
        for text in [
            "demo.westeurope.cloudapp.azure.com:6443",
            "10.0.0.4:6443",
            "[fd00::1]:6443",
            "API.example.com:443",
        ] {
            assert_eq!(parse(text).unwrap().to_string(), text);
        }
        let endpoint = parse("[fd00::1]:6443").unwrap();
        assert_eq!(
            (endpoint.host().to_string(), endpoint.port()),
            ("fd00::1".into(), 6443)
        );
    }

    #[test]
    fn only_a_name_has_a_name() {
        assert_eq!(
            parse("demo.westeurope.cloudapp.azure.com:6443")
                .unwrap()
                .name(),
            Some("demo.westeurope.cloudapp.azure.com")
        );
        assert_eq!(parse("10.0.0.4:6443").unwrap().name(), None);
        assert_eq!(parse("[fd00::1]:6443").unwrap().name(), None);
    }

    #[test]
    fn refuses_what_no_node_can_reach() {
        for (text, why) in [
            ("api.example.com", "needs a port"),
            ("10.0.0.1:99999", "invalid port"),
            ("10.0.0.1:0", "invalid port"),
            (":6443", "no valid host"),
            ("fd00::1:6443", "no valid host"),
            ("[fd00::zz]:6443", "no valid host"),
            ("bad_host!:6443", "no valid host"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(why), "{text}: {error}");
        }
    }
}
