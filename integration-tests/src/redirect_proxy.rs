//! A registry front that sends blob downloads elsewhere, the way registries
//! backed by S3 or a CDN do: `GET /v2/NAME/blobs/DIGEST` is answered `307`
//! with a `Location` on another port (another origin), where a small blob
//! server serves the blob from the registry's storage and records whether
//! the request carried an `Authorization` header. Everything else is
//! passed to the registry unchanged, credentials included.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::task::JoinHandle;

/// A request the proxy or the blob server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub path: String,
    pub authorization: bool,
}

#[derive(Default)]
struct Log {
    proxied: Vec<Seen>,
    blob_server: Vec<Seen>,
}

pub struct RedirectProxy {
    /// `127.0.0.1:PORT` of the registry front.
    pub addr: SocketAddr,
    /// `127.0.0.1:PORT` of the blob server redirects point to.
    pub blob_addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for RedirectProxy {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    /// `scheme://host:port` redirects point to.
    redirect_base: String,
    http: reqwest::Client,
    log: Arc<Mutex<Log>>,
}

#[derive(Clone)]
struct BlobState {
    storage: PathBuf,
    log: Arc<Mutex<Log>>,
}

impl RedirectProxy {
    /// In front of the registry at `upstream` (`127.0.0.1:PORT`), whose
    /// filesystem storage is `storage` (distribution's layout).
    pub async fn start(upstream: &str, storage: PathBuf) -> Result<Self> {
        Self::start_redirecting_to(upstream, storage, None).await
    }

    /// Like [`RedirectProxy::start`], but redirects name `redirect_base`
    /// (`http://HOST[:PORT]`, e.g. a metadata address, or
    /// `http://localhost:{blob_port}` where `{blob_port}` becomes the blob
    /// server's port) instead of `http://127.0.0.1:BLOB_PORT`.
    pub async fn start_redirecting_to(
        upstream: &str,
        storage: PathBuf,
        redirect_base: Option<String>,
    ) -> Result<Self> {
        let log = Arc::new(Mutex::new(Log::default()));
        let blob_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let blob_addr = blob_listener.local_addr()?;
        let blobs = Router::new()
            .route("/blobs/{digest}", get(serve_blob))
            .with_state(BlobState {
                storage,
                log: log.clone(),
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let proxy = Router::new().fallback(forward).with_state(ProxyState {
            upstream: format!("http://{upstream}"),
            redirect_base: redirect_base
                .map(|b| b.replace("{blob_port}", &blob_addr.port().to_string()))
                .unwrap_or_else(|| format!("http://{blob_addr}")),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            log: log.clone(),
        });
        let tasks = vec![
            tokio::spawn(async move {
                let _ = axum::serve(blob_listener, blobs).await;
            }),
            tokio::spawn(async move {
                let _ = axum::serve(listener, proxy).await;
            }),
        ];
        Ok(RedirectProxy {
            addr,
            blob_addr,
            log,
            tasks,
        })
    }

    /// Requests the proxy passed to the registry.
    pub fn proxied(&self) -> Vec<Seen> {
        self.log.lock().unwrap().proxied.clone()
    }

    /// Requests that reached the blob server (after a redirect).
    pub fn blob_requests(&self) -> Vec<Seen> {
        self.log.lock().unwrap().blob_server.clone()
    }
}

async fn forward(
    State(st): State<ProxyState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let authorization = headers.contains_key("authorization");
    st.log.lock().unwrap().proxied.push(Seen {
        path: path.clone(),
        authorization,
    });
    // Only an authorised blob GET is redirected: the registry still decides
    // who may read, as it does when it signs an S3 URL.
    if method == Method::GET
        && authorization
        && let Some((_, digest)) = path.split_once("/blobs/")
        && path.starts_with("/v2/")
    {
        let probe = st
            .http
            .head(format!("{}{path}", st.upstream))
            .headers(headers.clone())
            .send()
            .await;
        if matches!(&probe, Ok(r) if r.status().is_success()) {
            return (
                StatusCode::TEMPORARY_REDIRECT,
                [(
                    "location",
                    format!("{}/blobs/{digest}?X-Signature=test", st.redirect_base),
                )],
            )
                .into_response();
        }
    }
    let target = format!(
        "{}{}",
        st.upstream,
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut req = st.http.request(method, target).body(body);
    for (k, v) in &headers {
        if k != "host" {
            req = req.header(k, v);
        }
    }
    match req.send().await {
        Ok(resp) => {
            let mut out = Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                out = out.header(k, v);
            }
            // Whole bodies: manifests and small test blobs.
            match resp.bytes().await {
                Ok(b) => out
                    .body(Body::from(b))
                    .unwrap_or_else(|e| (StatusCode::BAD_GATEWAY, e.to_string()).into_response()),
                Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
            }
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

async fn serve_blob(
    State(st): State<BlobState>,
    UrlPath(digest): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    st.log.lock().unwrap().blob_server.push(Seen {
        path: format!("/blobs/{digest}"),
        authorization: headers.contains_key("authorization"),
    });
    let Some(hex) = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let p = st
        .storage
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    match tokio::fs::read(&p).await {
        Ok(data) => ([("content-type", "application/octet-stream")], data).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}
