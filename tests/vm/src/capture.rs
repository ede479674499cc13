//! Reads the uplink capture QEMU's `filter-dump` writes (classic pcap, Ethernet frames) to list
//! the IPv4 packets a guest sent to one address: which protocol and port it tried to reach.

use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// One IPv4 packet to the address asked for: IP protocol number (6 TCP, 17 UDP, 1 ICMP) and
/// destination port (0 when the protocol has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub protocol: u8,
    pub port: u16,
}

pub fn packets_to(pcap: &Path, to: Ipv4Addr) -> Result<Vec<Packet>> {
    let data = std::fs::read(pcap).with_context(|| format!("{}", pcap.display()))?;
    parse(&data, to)
}

pub fn parse(data: &[u8], to: Ipv4Addr) -> Result<Vec<Packet>> {
    if data.len() < 24 || data[..4] != [0xd4, 0xc3, 0xb2, 0xa1] {
        bail!("not a little-endian pcap file");
    }
    let u32_at = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
    let mut packets = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let captured = u32_at(at + 8);
        let frame = &data[at + 16..(at + 16 + captured).min(data.len())];
        at += 16 + captured;
        // Ethernet II carrying IPv4, with the destination address captured.
        if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
            continue;
        }
        let ip = &frame[14..];
        if ip[16..20] != to.octets() {
            continue;
        }
        let header = usize::from(ip[0] & 0x0f) * 4;
        let protocol = ip[9];
        let port = match ip.get(header + 2..header + 4) {
            Some(p) if protocol == 6 || protocol == 17 => u16::from_be_bytes([p[0], p[1]]),
            _ => 0,
        };
        packets.push(Packet { protocol, port });
    }
    Ok(packets)
}
