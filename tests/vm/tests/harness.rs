//! The VM harness's own pieces, without VMs: the fake IMDS, the mirror, the evidence parser.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine;
use kubeboot_vm_e2e::{evidence, imds, mirror, secrets};
use sha2::{Digest, Sha256};

/// A raw HTTP/1.0 GET (the harness has no HTTP client dependency); returns status and body.
fn get(port: u16, path: &str, headers: &[&str]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: x\r\n");
    for h in headers {
        request += &format!("{h}\r\n");
    }
    request += "\r\n";
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, response[split + 4..].to_vec())
}

fn instance() -> imds::Instance {
    imds::Instance {
        subscription_id: "sub".into(),
        resource_group: "rg".into(),
        location: "westeurope".into(),
        vm_scale_set: "c-master".into(),
        computer_name_prefix: "c-master-".into(),
        ordinal: 2,
        zone: "3".into(),
        private_ip: "10.0.0.5".into(),
    }
}

#[test]
fn imds_answers_only_like_azure_does() {
    let server = imds::start(instance());
    let path = "/metadata/instance?api-version=2021-02-01";
    assert_eq!(get(server.port, path, &[]).0, 400, "no Metadata header");
    assert_eq!(
        get(server.port, "/metadata/instance", &["Metadata: true"]).0,
        400,
        "no api-version"
    );
    assert_eq!(
        get(
            server.port,
            path,
            &["Metadata: true", "X-Forwarded-For: 10.1.1.1"]
        )
        .0,
        400,
        "proxied"
    );
    let (status, body) = get(server.port, path, &["Metadata: true"]);
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["compute"]["name"], "c-master_2");
    assert_eq!(
        doc["compute"]["osProfile"]["computerName"],
        "c-master-000002"
    );
    assert_eq!(doc["compute"]["vmScaleSetName"], "c-master");
    assert_eq!(doc["compute"]["zone"], "3");
    assert_eq!(
        instance().provider_id(),
        "azure:///subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/c-master/virtualMachines/2"
    );
    let statuses: Vec<u16> = server.hits().iter().map(|h| h.status).collect();
    assert_eq!(statuses.len(), 4);
}

#[test]
fn mirror_serves_the_release_layout_and_corrupts_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("tool");
    std::fs::write(&source, vec![7u8; 1000]).unwrap();
    let tree = dir.path().join("tree");
    mirror::build_release_tree(&tree, "v1.37.1", &[("kubelet", source.clone())]).unwrap();
    let base = "/release/v1.37.1/bin/linux/amd64";
    let good = mirror::start(tree.clone(), mirror::Behaviour::default());
    let (status, body) = get(good.port, &format!("{base}/kubelet"), &[]);
    assert_eq!(status, 200);
    let (_, sum) = get(good.port, &format!("{base}/kubelet.sha256"), &[]);
    assert_eq!(
        String::from_utf8(sum).unwrap(),
        hex::encode(Sha256::digest(&body))
    );
    assert_eq!(get(good.port, "/release/../tool", &[]).0, 404);

    let bad = mirror::start(
        tree,
        mirror::Behaviour {
            corrupt: Some("kubelet".into()),
            ..Default::default()
        },
    );
    let (_, corrupted) = get(bad.port, &format!("{base}/kubelet"), &[]);
    assert_eq!(corrupted.len(), body.len());
    assert_ne!(corrupted, body);
}

/// What the faults run relies on to reboot a worker in the middle of a download.
#[test]
fn a_slowed_mirror_paces_its_answer_and_logs_it_in_progress_until_sent() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("tool");
    std::fs::write(&source, vec![7u8; 200_000]).unwrap();
    let tree = dir.path().join("tree");
    mirror::build_release_tree(&tree, "v1.37.1", &[("kubelet", source)]).unwrap();
    let server = mirror::start(
        tree,
        mirror::Behaviour {
            bytes_per_second: Some(400_000),
            ..Default::default()
        },
    );
    let port = server.port;
    let started = Instant::now();
    let fetch =
        std::thread::spawn(move || get(port, "/release/v1.37.1/bin/linux/amd64/kubelet", &[]));
    std::thread::sleep(Duration::from_millis(200));
    let during = server.hits();
    let (status, body) = fetch.join().unwrap();
    let took = started.elapsed();
    assert_eq!((status, body.len()), (200, 200_000));
    assert!(
        took >= Duration::from_millis(400),
        "200 kB at 400 kB/s in {took:?}"
    );
    assert_eq!(during.len(), 1);
    assert_eq!(during[0].status, 0, "still being sent after 200 ms");
    let deadline = Instant::now() + Duration::from_secs(2);
    while server.hits()[0].status != 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(server.hits()[0].status, 200);
}

fn section(name: &str, data: &[u8]) -> String {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
    let lines: Vec<String> = encoded
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    format!(
        "KBE2E-BEGIN {name}\r\n{}\r\nKBE2E-END {name}\r\n",
        lines.join("\r\n")
    )
}

#[test]
fn evidence_stream_parses_per_boot_and_drops_cut_sections() {
    let big = vec![b'x'; 5000];
    let stream = format!(
        "noise\r\nKBE2E boot 1 abc 12.5\r\nKBE2E settled 80.25\r\n{}KBE2E-BEGIN journal\r\nAAAA\r\n\
         KBE2E boot 2 def 3.0\r\n{}KBE2E dumped 2 99.0\r\n",
        section("unit", b"ActiveState=active\nResult=success\n"),
        section("journal", &big),
    );
    let boots = evidence::parse(&stream).unwrap();
    assert_eq!(boots.len(), 2);
    assert_eq!(boots[0].number, 1);
    assert_eq!(boots[0].event_uptime("settled"), Some(80.25));
    assert_eq!(boots[0].unit().unwrap()["ActiveState"], "active");
    assert!(
        !boots[0].sections.contains_key("journal"),
        "cut short by the reset"
    );
    assert!(!boots[0].is_dumped());
    assert_eq!(boots[1].sections["journal"], big);
    assert!(boots[1].is_dumped());
}

#[test]
fn secrets_are_found_by_any_pem_body_line() {
    let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\nAAAA\n-----END PRIVATE KEY-----\n";
    let needles = vec![secrets::pem_needle("ca.key", pem)];
    assert!(secrets::find(
        &needles,
        b"log: MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7 end"
    )
    .is_some());
    assert!(secrets::find(&needles, b"AAAA and -----BEGIN PRIVATE KEY-----").is_none());
}

/// An Ethernet frame carrying an IPv4 packet (20-byte header) with a TCP/UDP destination port.
fn frame(to: [u8; 4], protocol: u8, port: u16) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0u8; 20];
    ip[0] = 0x45;
    ip[9] = protocol;
    ip[16..20].copy_from_slice(&to);
    f.extend(ip);
    f.extend([0x12, 0x34]);
    f.extend(port.to_be_bytes());
    f
}

#[test]
fn capture_lists_packets_to_one_address() {
    use kubeboot_vm_e2e::capture::{parse, Packet};
    let imds = [169, 254, 169, 254];
    let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    pcap.extend([0u8; 16]);
    for f in [
        frame(imds, 6, 80),
        frame([169, 254, 169, 250], 6, 80),
        frame(imds, 17, 53),
        frame(imds, 6, 443),
    ] {
        pcap.extend([0u8; 8]);
        pcap.extend((f.len() as u32).to_le_bytes());
        pcap.extend((f.len() as u32).to_le_bytes());
        pcap.extend(f);
    }
    let found = parse(&pcap, imds.into()).unwrap();
    assert_eq!(
        found,
        vec![
            Packet {
                protocol: 6,
                port: 80
            },
            Packet {
                protocol: 17,
                port: 53
            },
            Packet {
                protocol: 6,
                port: 443
            },
        ]
    );
    assert!(parse(b"not a pcap file at all, no", imds.into()).is_err());
}
