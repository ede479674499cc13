//! What kubeboot chooses for the components it configures, where a choice is a security policy
//! rather than a file layout (`paths`) or part of the NodeConfig contract (`kubeboot_nodeconfig`).

/// Admission plugins kubeboot always enables (kubeadm's NodeRestriction, plus CIS 1.2.3 and 1.2.9).
pub const DEFAULT_ADMISSION_PLUGINS: &[&str] = &[
    "NodeRestriction",
    "EventRateLimit",
    "DenyServiceExternalIPs",
];

/// TLS 1.2 suites with forward secrecy and AEAD only, for the API server and the kubelet (TLS 1.3
/// suites are not configurable). ChaCha20 goes by its short name: CIS 4.2.12 (kubelet) lists only
/// that spelling, CIS 1.2.29 (API server) both, and Go maps both to the same suite.
pub const TLS_CIPHER_SUITES: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
];
