//! Which registry hosts a credential may be sent to.
//!
//! `SCANGATE_REGISTRY_USERNAME` / `_PASSWORD` are not tied to a host by
//! themselves, and the host a job pulls from is chosen by whoever writes the
//! pipeline (`ImageUrl`, `imageDetail.json`) or even by the image
//! (`org.opencontainers.image.base.name`). Without a list, any of them could
//! name a host of their own and collect the password from the 401 dance. So
//! the operator lists the hosts (`SCANGATE_REGISTRY_HOSTS`), and a host is
//! compared in the form references are normalised to: lowercase, no
//! scheme, the port kept (`registry:5000` is not `registry`), Docker Hub's
//! aliases as one host.

use std::fmt;

use crate::image::reference::{DOCKER_HUB_REGISTRY, normalize_registry};

/// The environment variable (and `--registry-hosts` flag) that lists them.
pub const HOSTS_ENV: &str = "SCANGATE_REGISTRY_HOSTS";

/// Docker Hub's token service; Docker Hub's registry sends its clients
/// there, so credentials for Docker Hub may go there too.
const DOCKER_HUB_AUTH: &str = "auth.docker.io";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HostListError {
    #[error(
        "{HOSTS_ENV}: {entry:?} is not a registry host (host[:port], e.g. registry.example.com or registry.example.com:5000)"
    )]
    BadEntry { entry: String },
}

/// A normalised list of `host[:port]`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegistryHosts {
    hosts: Vec<String>,
}

impl fmt::Debug for RegistryHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.hosts).finish()
    }
}

impl RegistryHosts {
    /// Parses the entries of a comma list (already split, or not).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, HostListError> {
        let mut hosts = Vec::new();
        for raw in entries.iter().flat_map(|e| e.as_ref().split(',')) {
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            let h = canonical(raw).ok_or_else(|| HostListError::BadEntry {
                entry: raw.to_owned(),
            })?;
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
        Ok(RegistryHosts { hosts })
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Whether `host` (`host[:port]` as a reference or URL names it) is
    /// listed. Exact: no wildcard, no suffix match, the port counts.
    pub fn contains(&self, host: &str) -> bool {
        canonical(host).is_some_and(|h| self.hosts.contains(&h))
    }
}

/// `host[:port]` in the form references use, with every Docker Hub alias
/// as [`DOCKER_HUB_REGISTRY`]; `None` when it is not a host. A scheme and a
/// trailing `/` are tolerated (people paste URLs), a path is not.
pub(crate) fn canonical(host: &str) -> Option<String> {
    let h = host.trim();
    let h = h
        .strip_prefix("https://")
        .or_else(|| h.strip_prefix("http://"))
        .unwrap_or(h);
    let h = h.strip_suffix('/').unwrap_or(h);
    if h.is_empty() || h.contains(['/', '@', '?', '#']) {
        return None;
    }
    let h = normalize_registry(h).ok()?;
    Some(match h.as_str() {
        "docker.io" | "index.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB_REGISTRY.to_owned()
        }
        _ => h,
    })
}

/// Whether the token service at `realm_host` (`host[:port]` of the realm
/// URL) may receive the credentials meant for `registry`: when it is the
/// registry's own host, Docker Hub's token service for Docker Hub, or a
/// host the operator listed. Docker and containerd send credentials to
/// whatever realm a registry names; a hostile registry (or a redirecting
/// one) would then receive the password of another, so this is stricter.
pub(crate) fn realm_may_receive(realm_host: &str, registry: &str, listed: &RegistryHosts) -> bool {
    let (Some(realm), Some(registry)) = (canonical(realm_host), canonical(registry)) else {
        return false;
    };
    realm == registry
        || (registry == DOCKER_HUB_REGISTRY && realm == DOCKER_HUB_AUTH)
        || listed.hosts.contains(&realm)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(s: &str) -> RegistryHosts {
        RegistryHosts::parse(&[s]).unwrap()
    }

    #[test]
    fn entries_are_normalised_like_references() {
        let h = hosts(" Registry.Example.com:5000 , https://ghcr.io/ ,docker.io,,");
        assert!(h.contains("registry.example.com:5000"));
        assert!(h.contains("REGISTRY.EXAMPLE.COM:5000"));
        assert!(h.contains("ghcr.io"));
        // Docker Hub's aliases are one host.
        for alias in [
            "docker.io",
            "index.docker.io",
            "registry-1.docker.io",
            "registry.hub.docker.com",
        ] {
            assert!(h.contains(alias), "{alias}");
        }
        assert!(hosts("index.docker.io").contains("registry-1.docker.io"));
        assert!(hosts("[::1]:5000").contains("[::1]:5000"));
        assert!(hosts("127.0.0.1:5000").contains("127.0.0.1:5000"));
    }

    #[test]
    fn matching_is_exact() {
        let h = hosts("registry.example.com:5000,ghcr.io");
        // The port counts, both ways.
        assert!(!h.contains("registry.example.com"));
        assert!(!h.contains("registry.example.com:5001"));
        assert!(!h.contains("ghcr.io:443"));
        // No suffix, prefix or look-alike match.
        assert!(!h.contains("evil-ghcr.io"));
        assert!(!h.contains("ghcr.io.evil.example"));
        assert!(!h.contains("sub.ghcr.io"));
        assert!(!h.contains("ghcr.io@evil.example"));
        assert!(!h.contains(""));
        assert!(!hosts("").contains("docker.io"));
        assert!(hosts("").is_empty());
    }

    #[test]
    fn bad_entries_are_refused_with_the_variable_named() {
        for bad in [
            "registry.example.com/team",
            "user@registry.example.com",
            "registry.example.com:port",
            "registry.example.com:99999",
            "-bad.example",
            "a b",
        ] {
            let e = RegistryHosts::parse(&[bad]).unwrap_err();
            assert!(e.to_string().contains(HOSTS_ENV), "{e}");
            assert!(e.to_string().contains("host[:port]"), "{e}");
        }
    }

    #[test]
    fn realms_get_credentials_only_on_allowed_hosts() {
        let none = RegistryHosts::default();
        assert!(realm_may_receive("ghcr.io", "ghcr.io", &none));
        assert!(realm_may_receive(
            "registry.example.com:5000",
            "Registry.Example.com:5000",
            &none
        ));
        assert!(realm_may_receive(
            "auth.docker.io",
            "registry-1.docker.io",
            &none
        ));
        // Docker Hub's token service is for Docker Hub only.
        assert!(!realm_may_receive("auth.docker.io", "ghcr.io", &none));
        // Another host, or another port of the same host: not unless listed.
        assert!(!realm_may_receive("evil.example", "ghcr.io", &none));
        assert!(!realm_may_receive(
            "127.0.0.1:9000",
            "127.0.0.1:5000",
            &none
        ));
        let listed = hosts("127.0.0.1:5000,127.0.0.1:9000");
        assert!(realm_may_receive(
            "127.0.0.1:9000",
            "127.0.0.1:5000",
            &listed
        ));
        assert!(!realm_may_receive(
            "127.0.0.1:9001",
            "127.0.0.1:5000",
            &listed
        ));
        assert!(!realm_may_receive("not a host", "ghcr.io", &listed));
    }
}
