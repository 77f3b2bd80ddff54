//! The Docker CLI's credential configuration (`config.json`): inline
//! `auths`, per-registry `credHelpers` and the default `credsStore`, and
//! the credential-helper protocol (`docker-credential-NAME get`, the server
//! URL on stdin, `{"Username": …, "Secret": …}` on stdout).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{AuthMethod, Resolved, Secret};
use crate::image::error::FailureClass;
use crate::image::reference::DOCKER_HUB_REGISTRY;
use crate::image::registry::Credentials;

/// A config.json is a few KiB; anything far larger is not one.
const MAX_CONFIG_BYTES: u64 = 4 << 20;
const MAX_HELPER_OUTPUT: u64 = 1 << 20;
/// The key Docker uses for Docker Hub in `auths` and with helpers.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";
/// Helpers say this (docker-credential-helpers' `ErrCredentialsNotFound`)
/// when they hold nothing for the server: anonymous, not a failure.
const NOT_FOUND_MESSAGE: &str = "credentials not found";

#[derive(Debug, thiserror::Error)]
pub(crate) enum DockerConfigError {
    #[error("cannot read it: {0}")]
    Read(std::io::Error),
    #[error("it is larger than {MAX_CONFIG_BYTES} bytes")]
    TooLarge,
    #[error("it is not valid JSON: {0}")]
    Parse(serde_json::Error),
    #[error("the auths entry for {key:?} has an auth field that is not base64 of USER:PASSWORD")]
    BadAuth { key: String },
    #[error(
        "docker-credential-{name} is not on PATH ({config} names it in {field}); install it or \
         remove it from the Docker config"
    )]
    HelperMissing {
        name: String,
        config: PathBuf,
        field: &'static str,
    },
    #[error("running docker-credential-{name}: {source}")]
    HelperSpawn {
        name: String,
        source: std::io::Error,
    },
    #[error("docker-credential-{name} did not answer within {timeout:?}")]
    HelperTimeout { name: String, timeout: Duration },
    #[error("docker-credential-{name} failed ({status}){}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    HelperFailed {
        name: String,
        status: String,
        message: String,
    },
    #[error("docker-credential-{name} answered something that is not its JSON: {detail}")]
    HelperOutput { name: String, detail: String },
}

impl DockerConfigError {
    pub fn class(&self) -> FailureClass {
        match self {
            Self::HelperTimeout { .. } => FailureClass::Unavailable,
            _ => FailureClass::Configuration,
        }
    }
}

/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub(crate) fn default_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".docker/config.json"))
}

#[derive(Debug, Default, serde::Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Default, serde::Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

impl std::fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthEntry(<redacted>)")
    }
}

#[derive(Debug)]
pub(crate) struct DockerConfig {
    path: PathBuf,
    file: ConfigFile,
}

/// The form registry names are compared in: no scheme, no path, lowercase,
/// and every Docker Hub alias as one name.
fn canonical_host(key: &str) -> String {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let k = k.split('/').next().unwrap_or(k).to_ascii_lowercase();
    match k.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB_REGISTRY.to_owned()
        }
        _ => k,
    }
}

impl DockerConfig {
    /// `Ok(None)` when there is no file: nothing configured.
    pub fn load(path: &Path) -> Result<Option<DockerConfig>, DockerConfigError> {
        let f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(DockerConfigError::Read(e)),
        };
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(f, MAX_CONFIG_BYTES + 1),
            &mut bytes,
        )
        .map_err(DockerConfigError::Read)?;
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(DockerConfigError::TooLarge);
        }
        let file = serde_json::from_slice(&bytes).map_err(DockerConfigError::Parse)?;
        Ok(Some(DockerConfig {
            path: path.to_owned(),
            file,
        }))
    }

    /// The credentials for `registry` (`host[:port]`), the way the Docker
    /// CLI picks them: a `credHelpers` entry, else `credsStore`, else the
    /// `auths` entry. A helper that holds nothing for the registry falls
    /// through to `auths`, then anonymous.
    pub async fn credentials_for(
        &self,
        registry: &str,
        timeout: Duration,
    ) -> Result<Resolved, (AuthMethod, DockerConfigError)> {
        let host = canonical_host(registry);
        let helper = self
            .file
            .cred_helpers
            .iter()
            .find(|(k, _)| canonical_host(k) == host)
            .map(|(_, v)| (v.as_str(), "credHelpers"))
            .or_else(|| self.file.creds_store.as_deref().map(|s| (s, "credsStore")))
            .filter(|(name, _)| !name.is_empty());
        if let Some((name, field)) = helper {
            let method = AuthMethod::CredentialHelper(name.to_owned());
            let server = if host == DOCKER_HUB_REGISTRY {
                DOCKER_HUB_KEY.to_owned()
            } else {
                host.clone()
            };
            match run_helper(name, &server, timeout, &self.path, field).await {
                Ok(Some(secret)) => {
                    return Ok(Resolved {
                        secret: Some(secret),
                        method,
                    });
                }
                Ok(None) => {}
                Err(e) => return Err((method, e)),
            }
        }
        let method = AuthMethod::DockerConfig(self.path.clone());
        let Some((key, entry)) = self
            .file
            .auths
            .iter()
            .find(|(k, _)| canonical_host(k) == host)
        else {
            return Ok(Resolved::anonymous());
        };
        if let Some(t) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Resolved {
                secret: Some(Secret::IdentityToken(t.to_owned())),
                method,
            });
        }
        let creds = match (&entry.auth, &entry.username, &entry.password) {
            (Some(a), _, _) if !a.is_empty() => Some(decode_auth(a).ok_or_else(|| {
                (
                    method.clone(),
                    DockerConfigError::BadAuth { key: key.clone() },
                )
            })?),
            (_, Some(u), Some(p)) if !u.is_empty() => Some(Credentials {
                username: u.clone(),
                password: p.clone(),
            }),
            // An entry with only an email, or written by a credsStore.
            _ => None,
        };
        Ok(match creds {
            Some(c) => Resolved {
                secret: Some(Secret::Basic(c)),
                method,
            },
            None => Resolved::anonymous(),
        })
    }
}

fn decode_auth(auth: &str) -> Option<Credentials> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    (!u.is_empty()).then(|| Credentials {
        username: u.to_owned(),
        password: p.to_owned(),
    })
}

/// Runs `docker-credential-NAME get`. `Ok(None)`: it has nothing for
/// `server`.
async fn run_helper(
    name: &str,
    server: &str,
    timeout: Duration,
    config: &Path,
    field: &'static str,
) -> Result<Option<Secret>, DockerConfigError> {
    // A helper name is a file-name suffix, never a path.
    if name.contains('/') || name.contains('\0') {
        return Err(DockerConfigError::HelperMissing {
            name: name.to_owned(),
            config: config.to_owned(),
            field,
        });
    }
    let program = format!("docker-credential-{name}");
    tracing::debug!(helper = %program, %server, "asking a credential helper");
    let mut child = match tokio::process::Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DockerConfigError::HelperMissing {
                name: name.to_owned(),
                config: config.to_owned(),
                field,
            });
        }
        Err(e) => {
            return Err(DockerConfigError::HelperSpawn {
                name: name.to_owned(),
                source: e,
            });
        }
    };
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let talk = async {
        if let Some(mut s) = stdin.take() {
            // A helper that exits without reading its input is its business.
            let _ = s.write_all(server.as_bytes()).await;
            let _ = s.shutdown().await;
        }
        let mut out = Vec::new();
        let mut err = Vec::new();
        let read_out = async {
            if let Some(s) = stdout.take() {
                let _ = s.take(MAX_HELPER_OUTPUT).read_to_end(&mut out).await;
            }
        };
        let read_err = async {
            if let Some(s) = stderr.take() {
                let _ = s.take(MAX_HELPER_OUTPUT).read_to_end(&mut err).await;
            }
        };
        tokio::join!(read_out, read_err);
        let status = child.wait().await;
        (status, out, err)
    };
    let (status, out, err) = match tokio::time::timeout(timeout, talk).await {
        Ok(r) => r,
        Err(_) => {
            // kill_on_drop ends the helper when `child` goes.
            return Err(DockerConfigError::HelperTimeout {
                name: name.to_owned(),
                timeout,
            });
        }
    };
    let status = status.map_err(|e| DockerConfigError::HelperSpawn {
        name: name.to_owned(),
        source: e,
    })?;
    if !status.success() {
        // Helpers print their error on stdout (the protocol) or stderr; it
        // is a message, never the secret, but quote only a little of it.
        let msg = String::from_utf8_lossy(if out.is_empty() { &err } else { &out })
            .trim()
            .chars()
            .take(300)
            .collect::<String>();
        if msg.to_ascii_lowercase().contains(NOT_FOUND_MESSAGE) {
            return Ok(None);
        }
        return Err(DockerConfigError::HelperFailed {
            name: name.to_owned(),
            status: status.to_string(),
            message: msg,
        });
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let a: Answer = serde_json::from_slice(&out).map_err(|e| DockerConfigError::HelperOutput {
        name: name.to_owned(),
        // serde's message quotes no input, only a position.
        detail: e.to_string(),
    })?;
    if a.secret.is_empty() {
        return Ok(None);
    }
    // The helper protocol's marker for an identity (refresh) token.
    if a.username == "<token>" {
        return Ok(Some(Secret::IdentityToken(a.secret)));
    }
    Ok(Some(Secret::Basic(Credentials {
        username: a.username,
        password: a.secret,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory removed on drop (no tempfile in this crate).
    struct Scratch(PathBuf);
    impl Scratch {
        fn new() -> Self {
            let p =
                std::env::temp_dir().join(format!("scangate-dockercfg-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir(&p).unwrap();
            Scratch(p)
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn config(json: &str) -> (Scratch, DockerConfig) {
        let dir = Scratch::new();
        let p = dir.path().join("config.json");
        std::fs::write(&p, json).unwrap();
        let c = DockerConfig::load(&p).unwrap().unwrap();
        (dir, c)
    }

    const T: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn auths_entries_by_host_and_hub_alias() {
        let (_d, c) = config(
            r#"{"auths": {
                "https://index.docker.io/v1/": {"auth": "aHViOmh1Yi1wdw=="},
                "http://registry.example:5000/": {"username": "u", "password": "p"},
                "tokens.example": {"identitytoken": "refresh"},
                "email-only.example": {"email": "x@example.com"}
            }}"#,
        );
        let r = c.credentials_for("registry-1.docker.io", T).await.unwrap();
        let b = r.basic().unwrap();
        assert_eq!(
            (b.username.as_str(), b.password.as_str()),
            ("hub", "hub-pw")
        );
        assert!(matches!(r.method, AuthMethod::DockerConfig(_)));
        let r = c.credentials_for("REGISTRY.example:5000", T).await.unwrap();
        assert_eq!(r.basic().unwrap().username, "u");
        let r = c.credentials_for("tokens.example", T).await.unwrap();
        assert!(matches!(r.secret, Some(Secret::IdentityToken(ref t)) if t == "refresh"));
        for anon in ["email-only.example", "registry.example", "other.example"] {
            let r = c.credentials_for(anon, T).await.unwrap();
            assert_eq!(r.method, AuthMethod::Anonymous, "{anon}");
        }
    }

    #[tokio::test]
    async fn malformed_configs_are_errors_not_panics() {
        let dir = Scratch::new();
        let p = dir.path().join("config.json");
        assert!(DockerConfig::load(&p).unwrap().is_none());
        for bad in ["{", "\"a string\"", r#"{"auths": {"x": 1}}"#, "\u{0}\u{1}"] {
            std::fs::write(&p, bad).unwrap();
            assert!(
                matches!(DockerConfig::load(&p), Err(DockerConfigError::Parse(_))),
                "{bad}"
            );
        }
        let (_d, c) = config(r#"{"auths": {"x.example": {"auth": "!!!"}}}"#);
        let (m, e) = c.credentials_for("x.example", T).await.unwrap_err();
        assert!(matches!(m, AuthMethod::DockerConfig(_)));
        assert!(matches!(e, DockerConfigError::BadAuth { .. }));
    }

    #[tokio::test]
    async fn a_missing_helper_is_named() {
        let (_d, c) = config(
            r#"{"credHelpers": {"x.example": "scangate-no-such-helper"}, "auths": {"x.example": {"auth": "dTpw"}}}"#,
        );
        let (m, e) = c.credentials_for("x.example", T).await.unwrap_err();
        assert_eq!(
            m,
            AuthMethod::CredentialHelper("scangate-no-such-helper".into())
        );
        let msg = e.to_string();
        assert!(
            msg.contains("docker-credential-scangate-no-such-helper is not on PATH"),
            "{msg}"
        );
        assert!(msg.contains("credHelpers"), "{msg}");
        // Other hosts do not use that helper.
        let r = c.credentials_for("y.example", T).await.unwrap();
        assert_eq!(r.method, AuthMethod::Anonymous);
    }
}
