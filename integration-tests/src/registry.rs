//! A real OCI registry for tests: Debian's `docker-registry` (CNCF
//! distribution 2.8) on 127.0.0.1, with its own storage in a temp dir and
//! optional htpasswd Basic auth or token auth (Bearer tokens from a token
//! service, e.g. [`crate::token_server`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::process::{BackgroundProcess, free_port, wait_http};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    pub fn new(username: &str, password: &str) -> Self {
        Self {
            username: username.to_owned(),
            password: password.to_owned(),
        }
    }

    /// `user:pass`, the form skopeo's `--dest-creds` takes.
    pub fn colon_joined(&self) -> String {
        format!("{}:{}", self.username, self.password)
    }
}

/// `auth: token` settings of distribution: where clients get tokens, and
/// how the registry checks them (issuer, audience, signing certificate).
#[derive(Debug, Clone)]
pub struct TokenAuth {
    pub realm: String,
    pub service: String,
    pub issuer: String,
    /// PEM certificate(s) the token signatures must chain to.
    pub rootcertbundle: PathBuf,
}

#[derive(Debug, Clone)]
enum AuthConfig {
    None,
    Htpasswd(Credentials),
    Token(TokenAuth),
}

/// A running registry; the process is killed when this is dropped (and, via
/// the watchdog in [`crate::process`], when the test binary dies).
#[derive(Debug)]
pub struct Registry {
    /// `127.0.0.1:PORT`
    pub addr: String,
    /// Set when the registry requires auth: the Basic credentials, or those
    /// its token service accepts.
    pub credentials: Option<Credentials>,
    process: BackgroundProcess,
    // Dropped after `process` (field order), so the storage outlives the server.
    dir: tempfile::TempDir,
}

impl Registry {
    /// An anonymous registry (push and pull without credentials).
    pub fn start() -> Result<Self> {
        Self::start_inner(AuthConfig::None, None)
    }

    /// A registry that answers 401 unless the request carries these Basic credentials.
    pub fn start_with_auth(username: &str, password: &str) -> Result<Self> {
        let c = Credentials::new(username, password);
        Self::start_inner(AuthConfig::Htpasswd(c.clone()), Some(c))
    }

    /// A registry that takes only Bearer tokens signed for `token.issuer`.
    /// `push_credentials` are what the token service accepts; they become
    /// [`Registry::credentials`], so [`crate::corpus::skopeo_copy`] pushes
    /// through the token flow with them.
    pub fn start_with_token_auth(token: &TokenAuth, push_credentials: Credentials) -> Result<Self> {
        Self::start_inner(AuthConfig::Token(token.clone()), Some(push_credentials))
    }

    fn start_inner(auth: AuthConfig, credentials: Option<Credentials>) -> Result<Self> {
        let bin = Path::new(REGISTRY_BIN);
        if !bin.exists() {
            bail!("docker-registry not installed: run .ci/run or apt-get install docker-registry");
        }
        let mut last_err = None;
        // A free port can be taken by a parallel test between our probe and
        // the registry's bind; a few attempts make that race harmless.
        for _ in 0..5 {
            match Self::try_start(bin, &auth, credentials.clone()) {
                Ok(r) => return Ok(r),
                Err(e) if format!("{e:#}").contains("address already in use") => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap())
    }

    fn try_start(bin: &Path, auth: &AuthConfig, credentials: Option<Credentials>) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("scangate-registry-")
            .tempdir()?;
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage)?;
        let mut yaml = config_yaml(&addr, &storage);
        match auth {
            AuthConfig::None => {}
            AuthConfig::Htpasswd(c) => {
                let p = dir.path().join("htpasswd");
                std::fs::write(&p, htpasswd_line(c)?)?;
                let _ = write!(
                    yaml,
                    "auth:\n  htpasswd:\n    realm: scangate-test\n    path: {}\n",
                    p.display()
                );
            }
            AuthConfig::Token(t) => {
                let _ = write!(
                    yaml,
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    t.realm,
                    t.service,
                    t.issuer,
                    t.rootcertbundle.display()
                );
            }
        }
        let config = dir.path().join("config.yml");
        std::fs::write(&config, yaml)?;
        let log = dir.path().join("registry.log");
        let mut process =
            BackgroundProcess::spawn(bin, &["serve", config.to_str().unwrap()], &log)?;
        wait_http(&mut process, &addr, "/v2/", Duration::from_secs(20))
            .context("waiting for docker-registry")?;
        Ok(Self {
            addr,
            credentials,
            process,
            dir,
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT/repo:tag`, the reference form scangate and skopeo use.
    pub fn reference(&self, repo_and_tag: &str) -> String {
        format!("{}/{}", self.addr, repo_and_tag)
    }

    /// Where the registry keeps its blobs (for tests that corrupt or delete them).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    pub fn log_tail(&self, max: usize) -> String {
        self.process.log_tail(max)
    }

    /// Process group of the server (watchdog + registry), to check for leftovers.
    pub fn pgid(&self) -> u32 {
        self.process.pgid()
    }

    /// Stops the server now (tests of "registry unreachable"). The address
    /// stays reserved by nobody afterwards, so connections are refused.
    pub fn stop(&mut self) {
        self.process.kill();
    }
}

/// bcrypt is the only scheme distribution's htpasswd accepts. Cost 4 (the
/// minimum) because the registry verifies the hash on every request.
fn htpasswd_line(c: &Credentials) -> Result<String> {
    if c.username.contains(':') {
        bail!("htpasswd user names cannot contain ':'");
    }
    let hash = bcrypt::hash_with_result(&c.password, 4)
        .context("bcrypt")?
        .format_for_version(bcrypt::Version::TwoY);
    Ok(format!("{}:{}\n", c.username, hash))
}

fn config_yaml(addr: &str, storage: &Path) -> String {
    format!(
        "version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {addr}
  secret: scangate-test-secret
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: false
",
        storage = storage.display()
    )
}
