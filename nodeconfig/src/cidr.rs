//! CIDR fields. kubeboot clusters are IPv4 only: an IPv6 or dual-stack range is told so, rather
//! than getting ipnet's "invalid IP address syntax". Used by the NodeConfig and the cluster spec.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{de::Error, Deserialize, Deserializer};

pub fn parse_ipv4_cidr(text: &str) -> Result<Ipv4Net, String> {
    if let Ok(net) = text.parse::<Ipv4Net>() {
        return Ok(net);
    }
    if text.contains(',') {
        Err(format!(
            "{text:?} is dual-stack; kubeboot clusters are IPv4 only"
        ))
    } else if text.parse::<Ipv6Net>().is_ok() {
        Err(format!("{text:?} is IPv6; kubeboot clusters are IPv4 only"))
    } else {
        Err(format!(
            "invalid IPv4 CIDR {text:?} (expected address/prefix like 10.244.0.0/16)"
        ))
    }
}

/// `#[serde(deserialize_with)]` for an `Ipv4Net` field.
pub fn ipv4<'de, D: Deserializer<'de>>(d: D) -> Result<Ipv4Net, D::Error> {
    parse_ipv4_cidr(&String::deserialize(d)?).map_err(D::Error::custom)
}

/// `#[serde(deserialize_with)]` for an optional `Ipv4Net` field (with `default`).
pub fn optional_ipv4<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Ipv4Net>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|text| parse_ipv4_cidr(&text).map_err(D::Error::custom))
        .transpose()
}

/// `#[serde(deserialize_with)]` for an `IpNet` field that must hold an IPv4 range.
pub fn ipv4_net<'de, D: Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
    ipv4(d).map(IpNet::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_and_dual_stack_are_named() {
        assert!(parse_ipv4_cidr("10.244.0.0/16").is_ok());
        assert!(parse_ipv4_cidr("fd00::/48")
            .unwrap_err()
            .contains("is IPv6; kubeboot clusters are IPv4 only"));
        assert!(parse_ipv4_cidr("10.244.0.0/16,fd00::/48")
            .unwrap_err()
            .contains("dual-stack"));
        assert!(parse_ipv4_cidr("10.244.0.0/33")
            .unwrap_err()
            .starts_with("invalid IPv4 CIDR"));
    }
}
