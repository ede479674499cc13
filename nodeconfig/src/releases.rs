//! Everything kubeboot knows that differs per Kubernetes minor, in one table.
//!
//! Adding a minor is one entry in [`RELEASES`] plus the stand-ins' key trees and facts for it
//! (`tests/data/upstream/`); `tests::every_release_is_complete` and the per-minor agent tests fail
//! while either is missing. Where a fact could not be confirmed from an upstream source, the entry
//! says so in `unconfirmed` (and the README lists it). Sources: `docs/releases.md`.

use std::fmt;

use time::macros::date;
use time::Date;

use crate::KubernetesVersion;

/// A version `MAJOR.MINOR.PATCH` of a component other than Kubernetes (containerd, runc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ComponentVersion(pub u64, pub u64, pub u64);

impl fmt::Display for ComponentVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl ComponentVersion {
    /// Finds the first `[v]X.Y.Z` in a `--version` line, e.g. `containerd github.com/containerd/containerd
    /// v1.7.24 ...` (upstream) or `containerd containerd.io 1.7.24~ds1 ...` (Debian).
    pub fn find_in(text: &str) -> Option<Self> {
        text.split(|c: char| c.is_whitespace())
            .filter_map(|word| Self::parse_prefix(word.strip_prefix('v').unwrap_or(word)))
            .next()
    }

    fn parse_prefix(word: &str) -> Option<Self> {
        let mut numbers = word.splitn(3, '.').map(|part| {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            (!digits.is_empty())
                .then(|| digits.parse::<u64>().ok())
                .flatten()
        });
        let (major, minor, patch) = (numbers.next()??, numbers.next()??, numbers.next()??);
        Some(Self(major, minor, patch))
    }
}

/// cloud-provider-azure's images for a minor (`mcr.microsoft.com/oss/v2/kubernetes/...:TAG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloudProviderAzure {
    pub tag: &'static str,
}

/// What kubeboot needs to know about one Kubernetes minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    pub minor: u64,
    /// Upstream's end of life (kubernetes.io/releases): from the day after, kubeboot-gen refuses the
    /// minor unless told `--allow-end-of-life`.
    pub end_of_life: Date,
    /// kubeadm's config apiVersion kubeboot writes.
    pub kubeadm_api_version: &'static str,
    /// The sandbox image kubeadm of this minor pins (`constants.PauseVersion`); containerd must use
    /// the same or kubeadm's preflight warns and the kubelet pulls two.
    pub pause_image: &'static str,
    /// Images kubeadm pins (`constants.SupportedEtcdVersion`, `CoreDNSVersion`): what an air-gapped
    /// registry must mirror (`kubeboot-gen releases`).
    pub etcd_tag: &'static str,
    pub coredns_tag: &'static str,
    pub cloud_provider_azure: CloudProviderAzure,
    /// cluster-autoscaler's tag (`registry.k8s.io/autoscaling/cluster-autoscaler:TAG`): released per
    /// Kubernetes minor, and upstream supports it only with the matching minor.
    pub cluster_autoscaler: &'static str,
    /// Component feature gates removed in this minor: kube-apiserver refuses them in
    /// `--feature-gates` from this minor on.
    pub removed_feature_gates: &'static [&'static str],
    /// kube-apiserver flags removed in this minor: the API server refuses to start with them.
    pub removed_apiserver_flags: &'static [&'static str],
    /// The kubelet refuses cgroup v1 by default (`failCgroupV1: true` since 1.35) and kubeadm's
    /// preflight errors on it: the agent's preflight refuses a node without cgroup v2.
    pub requires_cgroup_v2: bool,
    /// Oldest containerd this minor's kubelet runs with; preflight refuses older ones.
    pub min_containerd: ComponentVersion,
    /// containerd below this works but the kubelet warns (its support is going away).
    pub recommended_containerd: ComponentVersion,
    /// Facts of this entry that could not be confirmed from an upstream source.
    pub unconfirmed: &'static [&'static str],
}

const KUBEADM_V1BETA4: &str = "kubeadm.k8s.io/v1beta4";
const CONTAINERD_1_7: ComponentVersion = ComponentVersion(1, 7, 0);
const CONTAINERD_2_0: ComponentVersion = ComponentVersion(2, 0, 0);

/// Every minor kubeboot knows, oldest first. A minor past its end of life stays here so that its
/// refusal can name the date and an opted-in cluster keeps working.
pub static RELEASES: &[Release] = &[
    Release {
        minor: 34,
        end_of_life: date!(2026 - 10 - 27),
        kubeadm_api_version: KUBEADM_V1BETA4,
        pause_image: "registry.k8s.io/pause:3.10.1",
        etcd_tag: "3.6.4-0",
        coredns_tag: "v1.12.1",
        cloud_provider_azure: CloudProviderAzure { tag: "v1.34.10" },
        cluster_autoscaler: "v1.34.4",
        removed_feature_gates: &[],
        removed_apiserver_flags: &[],
        requires_cgroup_v2: false,
        min_containerd: CONTAINERD_1_7,
        recommended_containerd: CONTAINERD_1_7,
        unconfirmed: &["etcd_tag", "coredns_tag"],
    },
    Release {
        minor: 35,
        end_of_life: date!(2027 - 02 - 28),
        kubeadm_api_version: KUBEADM_V1BETA4,
        pause_image: "registry.k8s.io/pause:3.10.1",
        etcd_tag: "3.6.6-0",
        coredns_tag: "v1.12.4",
        cloud_provider_azure: CloudProviderAzure { tag: "v1.35.5" },
        cluster_autoscaler: "v1.35.2",
        removed_feature_gates: &[
            "ComponentSLIs",
            "SizeMemoryBackedVolumes",
            "StrictCostEnforcementForVAP",
            "StrictCostEnforcementForWebhooks",
            "UserNamespacesPodSecurityStandards",
        ],
        removed_apiserver_flags: &[],
        requires_cgroup_v2: true,
        min_containerd: CONTAINERD_1_7,
        recommended_containerd: CONTAINERD_2_0,
        unconfirmed: &[],
    },
    Release {
        minor: 36,
        end_of_life: date!(2027 - 06 - 28),
        kubeadm_api_version: KUBEADM_V1BETA4,
        pause_image: "registry.k8s.io/pause:3.10.2",
        etcd_tag: "3.6.8-0",
        coredns_tag: "v1.14.2",
        cloud_provider_azure: CloudProviderAzure { tag: "v1.36.2" },
        cluster_autoscaler: "v1.36.1",
        removed_feature_gates: &[
            "CSIMigrationPortworx",
            "HonorPVReclaimPolicy",
            "InTreePluginPortworxUnregister",
            "WatchFromStorageWithoutResourceVersion",
        ],
        removed_apiserver_flags: &[],
        requires_cgroup_v2: true,
        min_containerd: CONTAINERD_1_7,
        recommended_containerd: CONTAINERD_2_0,
        unconfirmed: &[],
    },
    Release {
        minor: 37,
        end_of_life: date!(2027 - 10 - 28),
        kubeadm_api_version: KUBEADM_V1BETA4,
        pause_image: "registry.k8s.io/pause:3.10.2",
        etcd_tag: "3.7.0-0",
        coredns_tag: "v1.14.3",
        cloud_provider_azure: CloudProviderAzure { tag: "v1.37.5" },
        cluster_autoscaler: "v1.37.0",
        removed_feature_gates: &[
            "APIServerTracing",
            "AnonymousAuthConfigurableEndpoints",
            "AnyVolumeDataSource",
            "AuthorizeNodeWithSelectors",
            "AuthorizeWithSelectors",
            "BtreeWatchCache",
            "ConsistentListFromCache",
            "GangScheduling",
            "JobBackoffLimitPerIndex",
            "JobPodReplacementPolicy",
            "JobSuccessPolicy",
            "LogarithmicScaleDown",
            "OrderedNamespaceDeletion",
            "PodLifecycleSleepAction",
            "PodLifecycleSleepActionAllowZero",
            "PreventStaticPodAPIReferences",
            "RelaxedDNSSearchValidation",
            "ResilientWatchCacheInitialization",
            "RetryGenerateName",
            "SchedulerQueueingHints",
            "SidecarContainers",
            "StreamingCollectionEncodingToJSON",
            "StreamingCollectionEncodingToProtobuf",
            "StructuredAuthenticationConfiguration",
            "WorkloadAwarePreemption",
        ],
        removed_apiserver_flags: &[],
        requires_cgroup_v2: true,
        min_containerd: CONTAINERD_1_7,
        recommended_containerd: CONTAINERD_2_0,
        unconfirmed: &[
            "pause_image",
            "etcd_tag",
            "coredns_tag",
            "cloud_provider_azure",
            "cluster_autoscaler",
        ],
    },
];

/// The entry for `minor`, if kubeboot knows it.
pub fn release(minor: u64) -> Option<&'static Release> {
    RELEASES.iter().find(|r| r.minor == minor)
}

/// Minors kubeboot renders without an opt-in on `today`: known and not past their end of life.
pub fn supported_minors(today: Date) -> impl Iterator<Item = u64> {
    RELEASES
        .iter()
        .filter(move |r| today <= r.end_of_life)
        .map(|r| r.minor)
}

/// What the lifecycle rules say about a version on a given day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    Supported(&'static Release),
    /// Known, but upstream's support ended on the date in the release.
    EndOfLife(&'static Release),
}

impl KubernetesVersion {
    /// The release entry of this version's minor, or why there is none (one line).
    pub fn release(&self) -> Result<&'static Release, String> {
        let known = || {
            let first = RELEASES.first().map_or(0, |r| r.minor);
            let last = RELEASES.last().map_or(0, |r| r.minor);
            format!("Kubernetes {self} is not a release kubeboot knows (it knows v1.{first} to v1.{last})")
        };
        if self.major() != 1 {
            return Err(known());
        }
        release(self.minor()).ok_or_else(known)
    }

    /// The release entry, and whether upstream still supports it on `today`.
    pub fn support(&self, today: Date) -> Result<Support, String> {
        let release = self.release()?;
        Ok(if today > release.end_of_life {
            Support::EndOfLife(release)
        } else {
            Support::Supported(release)
        })
    }
}

impl Release {
    /// The one line that says this minor's support has ended.
    pub fn end_of_life_message(&self) -> String {
        format!(
            "Kubernetes 1.{} reached its end of life on {}",
            self.minor, self.end_of_life
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> KubernetesVersion {
        text.parse().unwrap()
    }

    #[test]
    fn every_release_is_complete() {
        let mut previous = None;
        for r in RELEASES {
            if let Some(p) = previous {
                assert_eq!(r.minor, p + 1, "RELEASES must list consecutive minors");
            }
            previous = Some(r.minor);
            assert!(r.pause_image.starts_with("registry.k8s.io/pause:"));
            assert!(r.kubeadm_api_version.starts_with("kubeadm.k8s.io/"));
            assert!(r
                .cloud_provider_azure
                .tag
                .starts_with(&format!("v1.{}.", r.minor)));
            assert!(r
                .cluster_autoscaler
                .starts_with(&format!("v1.{}.", r.minor)));
            assert!(!r.etcd_tag.is_empty() && r.coredns_tag.starts_with('v'));
            assert!(r.min_containerd <= r.recommended_containerd);
        }
    }

    #[test]
    fn end_of_life_is_decided_by_the_date() {
        let v134 = v("v1.34.3");
        assert!(matches!(
            v134.support(date!(2026 - 10 - 27)),
            Ok(Support::Supported(_))
        ));
        let Ok(Support::EndOfLife(release)) = v134.support(date!(2026 - 10 - 28)) else {
            panic!("1.34 is past its end of life on 2026-10-28");
        };
        assert_eq!(
            release.end_of_life_message(),
            "Kubernetes 1.34 reached its end of life on 2026-10-27"
        );
        assert!(v("v1.33.0")
            .release()
            .unwrap_err()
            .contains("not a release kubeboot knows"));
        assert!(v("v2.35.0").release().is_err());
        let on = |d| supported_minors(d).collect::<Vec<_>>();
        assert_eq!(on(date!(2026 - 12 - 04)), [35, 36, 37]);
    }

    #[test]
    fn finds_containerd_versions_in_version_lines() {
        let upstream = "containerd github.com/containerd/containerd/v2 v2.1.4 75cb2b7193e4e490e9fbdc236c0e811ccaba3376";
        assert_eq!(
            ComponentVersion::find_in(upstream),
            Some(ComponentVersion(2, 1, 4))
        );
        let debian = "containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6+b4";
        assert_eq!(
            ComponentVersion::find_in(debian),
            Some(ComponentVersion(1, 7, 24))
        );
        assert_eq!(ComponentVersion::find_in("containerd dev"), None);
    }
}
