//! A Docker token service (the `auth: token` realm of distribution) for
//! tests: checks Basic credentials or an OAuth2 refresh token and issues
//! JWTs signed RS256 with a key made by `openssl` at start, carrying the
//! signing certificate in `x5c`, which the registry checks against its
//! `rootcertbundle`. Every request is recorded (never the password).
//!
//! Unknown users get 401; anonymous requests get a token granting nothing,
//! as Docker Hub's service does, so the registry itself refuses the pull.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::registry::{Credentials, TokenAuth};

pub const SERVICE: &str = "scangate-test-registry";
pub const ISSUER: &str = "scangate-test-issuer";

/// One token request as the service saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// `GET` (Basic or anonymous) or `POST` (refresh token).
    pub method: String,
    /// The Basic user, or the user a refresh token belongs to.
    pub user: Option<String>,
    pub scopes: Vec<String>,
    pub service: Option<String>,
    pub status: u16,
}

#[derive(Default)]
struct Inner {
    users: HashMap<String, String>,
    refresh_tokens: HashMap<String, String>,
    requests: Vec<TokenRequest>,
}

struct Shared {
    key: PathBuf,
    cert_der_b64: String,
    lifetime_secs: u64,
    inner: Mutex<Inner>,
}

pub struct TokenServer {
    pub addr: SocketAddr,
    /// What to configure the registry with.
    pub auth: TokenAuth,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("running openssl (Debian package openssl)")?;
    if !out.status.success() {
        bail!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

impl TokenServer {
    /// Serves `GET/POST /token` on 127.0.0.1; tokens live `lifetime_secs`.
    pub async fn start(lifetime_secs: u64) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("scangate-token-")
            .tempdir()?;
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "key.pem",
                "-out",
                "cert.pem",
                "-days",
                "2",
                "-subj",
                "/CN=scangate-test-token-issuer",
            ],
        )?;
        let pem = std::fs::read_to_string(d.join("cert.pem"))?;
        let b64: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .concat();
        // Decoded and re-encoded: x5c is standard base64 of the DER.
        let der = STANDARD.decode(b64.trim()).context("certificate PEM")?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            key: d.join("key.pem"),
            cert_der_b64: STANDARD.encode(der),
            lifetime_secs,
            inner: Mutex::default(),
        });
        let app = Router::new()
            .route("/token", get(token_get).post(token_post))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(TokenServer {
            addr,
            auth: TokenAuth {
                realm: format!("http://{addr}/token"),
                service: SERVICE.into(),
                issuer: ISSUER.into(),
                rootcertbundle: d.join("cert.pem"),
            },
            shared,
            task,
            _dir: dir,
        })
    }

    pub fn add_user(&self, c: &Credentials) {
        let mut i = self.shared.inner.lock().unwrap();
        i.users.insert(c.username.clone(), c.password.clone());
    }

    /// A refresh token (Docker config `identitytoken`) standing for `user`.
    pub fn add_refresh_token(&self, token: &str, user: &str) {
        let mut i = self.shared.inner.lock().unwrap();
        i.refresh_tokens.insert(token.into(), user.into());
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        self.shared.inner.lock().unwrap().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.shared.inner.lock().unwrap().requests.clear();
    }
}

fn basic_user(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get("authorization")?.to_str().ok()?;
    let b = v.strip_prefix("Basic ")?;
    let raw = String::from_utf8(STANDARD.decode(b.trim()).ok()?).ok()?;
    let (u, p) = raw.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

/// `repository:NAME:a,b` → the access entry granting those actions.
fn access_for(scopes: &[String]) -> Vec<serde_json::Value> {
    scopes
        .iter()
        .filter_map(|s| {
            let mut parts = s.splitn(3, ':');
            let (t, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(json!({
                "type": t,
                "name": name,
                "actions": actions.split(',').collect::<Vec<_>>(),
            }))
        })
        .collect()
}

async fn sign(
    shared: &Shared,
    user: Option<&str>,
    access: Vec<serde_json::Value>,
) -> Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [shared.cert_der_b64]});
    let claims = json!({
        "iss": ISSUER,
        "sub": user.unwrap_or(""),
        "aud": SERVICE,
        "exp": now + shared.lifetime_secs,
        "nbf": now.saturating_sub(10),
        "iat": now,
        "jti": uuid::Uuid::new_v4().to_string(),
        "access": access,
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut child = tokio::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(&shared.key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().context("stdin")?;
        stdin.write_all(input.as_bytes()).await?;
    }
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        bail!("openssl dgst failed");
    }
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(out.stdout)))
}

fn record(shared: &Shared, r: TokenRequest) {
    shared.inner.lock().unwrap().requests.push(r);
}

async fn issue(
    shared: &Shared,
    method: &str,
    user: Option<String>,
    scopes: Vec<String>,
    service: Option<String>,
    oauth: bool,
) -> Response {
    let access = if user.is_some() {
        access_for(&scopes)
    } else {
        Vec::new()
    };
    let token = match sign(shared, user.as_deref(), access).await {
        Ok(t) => t,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    record(
        shared,
        TokenRequest {
            method: method.into(),
            user,
            scopes,
            service,
            status: 200,
        },
    );
    // The OAuth2 endpoint answers `access_token` only; the GET endpoint
    // both, as distribution's token spec shows.
    let body = if oauth {
        json!({"access_token": token, "expires_in": shared.lifetime_secs, "token_type": "Bearer"})
    } else {
        json!({"token": token, "access_token": token, "expires_in": shared.lifetime_secs})
    };
    axum::Json(body).into_response()
}

fn refuse(shared: &Shared, method: &str, user: Option<String>, scopes: Vec<String>) -> Response {
    record(
        shared,
        TokenRequest {
            method: method.into(),
            user,
            scopes,
            service: None,
            status: 401,
        },
    );
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"details": "incorrect username or password"})),
    )
        .into_response()
}

async fn token_get(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let scopes: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    let service = q
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.clone());
    match basic_user(&headers) {
        None => issue(&shared, "GET", None, scopes, service, false).await,
        Some((u, p)) => {
            let ok = shared.inner.lock().unwrap().users.get(&u) == Some(&p);
            if ok {
                issue(&shared, "GET", Some(u), scopes, service, false).await
            } else {
                refuse(&shared, "GET", Some(u), scopes)
            }
        }
    }
}

async fn token_post(State(shared): State<Arc<Shared>>, body: String) -> Response {
    let dec = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    let form: Vec<(String, String)> = body
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (dec(k), dec(v)))
        .collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let scopes: Vec<String> = form
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    if get("grant_type").as_deref() != Some("refresh_token") {
        return refuse(&shared, "POST", None, scopes);
    }
    let user = get("refresh_token")
        .and_then(|t| shared.inner.lock().unwrap().refresh_tokens.get(&t).cloned());
    match user {
        Some(u) => issue(&shared, "POST", Some(u), scopes, get("service"), true).await,
        None => refuse(&shared, "POST", None, scopes),
    }
}
