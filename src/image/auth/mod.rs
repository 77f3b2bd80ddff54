//! Where the credentials for a registry come from, decided per registry
//! host when the registry first asks for them (a 401), never before: an
//! anonymous pull from a public registry runs no credential helper and makes
//! no AWS call.
//!
//! Order (DESIGN.md, "Registry credentials"):
//! 1. ECR hosts (`ACCOUNT.dkr.ecr.REGION.amazonaws.com` and its FIPS,
//!    dual-stack and China forms): `ecr:GetAuthorizationToken` with the
//!    worker's AWS identity, cached per (account, region).
//! 2. `SCANGATE_REGISTRY_USERNAME` / `_PASSWORD`, only for the hosts listed
//!    in `SCANGATE_REGISTRY_HOSTS` ([`hosts`]): the host of a pull is chosen
//!    by the pipeline author or the image, who must not be able to collect
//!    the password by naming a server of their own. Never sent to ECR,
//!    whose tokens expire after 12 hours and could not be a static setting.
//! 3. The Docker config (`$DOCKER_CONFIG/config.json`, else
//!    `~/.docker/config.json`): `credHelpers` for the host, else
//!    `credsStore`, else the `auths` entry.
//! 4. Anonymous.
//!
//! A host named only by the image's own content (the base image of
//! `org.opencontainers.image.base.name`) is reached anonymously: the
//! caller does not resolve credentials for it at all (no helper run, no
//! AWS call).
//!
//! Secrets never reach a log line or an error message: [`AuthMethod`] names
//! where credentials came from, never what they are.

pub(crate) mod dockercfg;
pub(crate) mod ecr;
pub mod hosts;
pub(crate) mod token;

pub use hosts::{HostListError, RegistryHosts};

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::error::ImageError;
use super::registry::Credentials;

/// How long a credential helper may take before it is killed.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the credentials used with a registry came from; this is what
/// errors say was tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    Anonymous,
    /// `SCANGATE_REGISTRY_USERNAME` / `_PASSWORD` (or the library caller's
    /// [`super::PullOptions::credentials`]).
    Configured,
    /// An `auths` entry of this Docker config file.
    DockerConfig(PathBuf),
    /// `docker-credential-NAME`, named by `credHelpers` or `credsStore`.
    CredentialHelper(String),
    /// `ecr:GetAuthorizationToken`.
    Ecr,
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anonymous => f.write_str("anonymous"),
            Self::Configured => {
                f.write_str("basic credentials from SCANGATE_REGISTRY_USERNAME/PASSWORD")
            }
            Self::DockerConfig(p) => write!(f, "credentials from Docker config {}", p.display()),
            Self::CredentialHelper(n) => write!(f, "credential helper docker-credential-{n}"),
            Self::Ecr => f.write_str("ECR authorization token (ecr:GetAuthorizationToken)"),
        }
    }
}

/// `SCANGATE_REGISTRY_USERNAME` / `_PASSWORD` with the hosts they may be
/// offered to (`SCANGATE_REGISTRY_HOSTS`). `Debug` never shows the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCredentials {
    pub credentials: Credentials,
    pub hosts: RegistryHosts,
}

impl HostCredentials {
    /// The credentials when `registry` is one of their hosts.
    pub fn for_host(&self, registry: &str) -> Option<&Credentials> {
        self.hosts.contains(registry).then_some(&self.credentials)
    }
}

/// The secret half of what a source gave.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Secret {
    /// User and password: Basic auth, and Basic auth at token services.
    Basic(Credentials),
    /// An OAuth2 refresh token (Docker config `identitytoken`, or a helper
    /// answering user `<token>`): only token services take it.
    IdentityToken(String),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic(c) => write!(f, "Basic({c:?})"),
            Self::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// What resolution found for one registry host.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub secret: Option<Secret>,
    pub method: AuthMethod,
}

impl Resolved {
    pub fn anonymous() -> Self {
        Resolved {
            secret: None,
            method: AuthMethod::Anonymous,
        }
    }

    pub fn basic(&self) -> Option<&Credentials> {
        match &self.secret {
            Some(Secret::Basic(c)) => Some(c),
            _ => None,
        }
    }

    /// A key for caches that must not mix tokens of different identities;
    /// a digest, so the cache holds no second copy of a password.
    pub fn identity_key(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.method.to_string());
        match &self.secret {
            Some(Secret::Basic(c)) => {
                h.update([0]);
                h.update(&c.username);
                h.update([0]);
                h.update(&c.password);
            }
            Some(Secret::IdentityToken(t)) => {
                h.update([1]);
                h.update(t);
            }
            None => {}
        }
        hex::encode(&h.finalize()[..16])
    }
}

/// Where to look for the Docker config.
#[derive(Debug, Clone)]
enum DockerConfigLocation {
    /// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`,
    /// read when a registry first asks (so a changed file is seen).
    FromEnvironment,
    File(PathBuf),
    Disabled,
}

/// Registry credential resolution and its caches (ECR authorization
/// tokens, Bearer tokens), shared by every pull of a process: clones share
/// the caches.
#[derive(Clone)]
pub struct RegistryAuth {
    inner: Arc<Inner>,
}

struct Inner {
    docker_config: DockerConfigLocation,
    ecr: ecr::EcrAuth,
    tokens: token::TokenCache,
    helper_timeout: Duration,
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("docker_config", &self.inner.docker_config)
            .finish_non_exhaustive()
    }
}

impl Default for RegistryAuth {
    /// The standard sources: ECR with the default AWS configuration, the
    /// Docker config found through the environment.
    fn default() -> Self {
        Self::with(DockerConfigLocation::FromEnvironment, None)
    }
}

impl RegistryAuth {
    /// No Docker config (the library's tests, and callers that pass
    /// credentials explicitly); ECR still works.
    pub fn without_docker_config() -> Self {
        Self::with(DockerConfigLocation::Disabled, None)
    }

    /// This Docker config file instead of the environment's.
    pub fn with_docker_config(path: PathBuf) -> Self {
        Self::with(DockerConfigLocation::File(path), None)
    }

    /// ECR tokens from clients built on this AWS configuration (endpoint
    /// and credentials), instead of one loaded from the environment.
    pub fn with_aws_config(self, sdk: aws_config::SdkConfig) -> Self {
        Self::with(self.inner.docker_config.clone(), Some(sdk))
    }

    fn with(docker_config: DockerConfigLocation, sdk: Option<aws_config::SdkConfig>) -> Self {
        RegistryAuth {
            inner: Arc::new(Inner {
                docker_config,
                ecr: ecr::EcrAuth::new(sdk),
                tokens: token::TokenCache::default(),
                helper_timeout: HELPER_TIMEOUT,
            }),
        }
    }

    pub(crate) fn tokens(&self) -> &token::TokenCache {
        &self.inner.tokens
    }

    /// Finds the credentials for `registry` (`host[:port]`), in the order
    /// of the module documentation.
    pub(crate) async fn resolve(
        &self,
        registry: &str,
        configured: Option<&HostCredentials>,
    ) -> Result<Resolved, ImageError> {
        if let Some(host) = ecr::EcrHost::parse(registry) {
            let creds = self.inner.ecr.credentials(&host).await.map_err(|e| {
                ImageError::CredentialLookup {
                    registry: registry.to_owned(),
                    method: AuthMethod::Ecr.to_string(),
                    detail: e.to_string(),
                    class: e.class(),
                }
            })?;
            return Ok(Resolved {
                secret: Some(Secret::Basic(creds)),
                method: AuthMethod::Ecr,
            });
        }
        if let Some(c) = configured.and_then(|c| c.for_host(registry)) {
            return Ok(Resolved {
                secret: Some(Secret::Basic(c.clone())),
                method: AuthMethod::Configured,
            });
        }
        let path = match &self.inner.docker_config {
            DockerConfigLocation::Disabled => return Ok(Resolved::anonymous()),
            DockerConfigLocation::File(p) => Some(p.clone()),
            DockerConfigLocation::FromEnvironment => dockercfg::default_path(),
        };
        let Some(path) = path else {
            return Ok(Resolved::anonymous());
        };
        let lookup_error = |method: AuthMethod, e: dockercfg::DockerConfigError| {
            let class = e.class();
            ImageError::CredentialLookup {
                registry: registry.to_owned(),
                method: method.to_string(),
                detail: e.to_string(),
                class,
            }
        };
        let Some(config) = dockercfg::DockerConfig::load(&path)
            .map_err(|e| lookup_error(AuthMethod::DockerConfig(path.clone()), e))?
        else {
            return Ok(Resolved::anonymous());
        };
        config
            .credentials_for(registry, self.inner.helper_timeout)
            .await
            .map_err(|(method, e)| lookup_error(method, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_name_the_source_not_the_secret() {
        assert_eq!(AuthMethod::Anonymous.to_string(), "anonymous");
        assert_eq!(
            AuthMethod::CredentialHelper("ecr-login".into()).to_string(),
            "credential helper docker-credential-ecr-login"
        );
        let r = Resolved {
            secret: Some(Secret::IdentityToken("refresh-me".into())),
            method: AuthMethod::DockerConfig("/x/config.json".into()),
        };
        assert!(!format!("{r:?}").contains("refresh-me"));
        let r2 = Resolved {
            secret: Some(Secret::IdentityToken("other".into())),
            method: r.method.clone(),
        };
        assert_ne!(r.identity_key(), r2.identity_key());
        assert!(!r.identity_key().contains("refresh"));
    }

    #[tokio::test]
    async fn configured_credentials_go_only_to_listed_hosts() {
        let auth = RegistryAuth::without_docker_config();
        let c = Credentials {
            username: "u".into(),
            password: "p".into(),
        };
        let hc = HostCredentials {
            credentials: c.clone(),
            hosts: RegistryHosts::parse(&["registry.example:5000"]).unwrap(),
        };
        let r = auth
            .resolve("registry.example:5000", Some(&hc))
            .await
            .unwrap();
        assert_eq!(r.method, AuthMethod::Configured);
        assert_eq!(r.basic(), Some(&c));
        for other in [
            "registry.example:5001",
            "registry.example",
            "evil.example:5000",
            "registry-1.docker.io",
        ] {
            let r = auth.resolve(other, Some(&hc)).await.unwrap();
            assert_eq!(r.method, AuthMethod::Anonymous, "{other}");
            assert!(r.secret.is_none());
        }
        let r = auth.resolve("registry.example:5000", None).await.unwrap();
        assert_eq!(r.method, AuthMethod::Anonymous);
    }
}
