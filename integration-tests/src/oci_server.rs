//! A small read-only OCI distribution server held in memory: enough of the
//! pull side of the distribution spec (`/v2/`, manifests by tag or digest,
//! blobs, HEAD) for `scangate demo` to stream a bundled image through the
//! same registry code path as production, where no `docker-registry` binary
//! exists (the release container). It also answers the OCI 1.1 referrers
//! API (`GET /v2/<name>/referrers/<digest>`), which the Debian
//! `docker-registry` 2.8 lacks, for the signature tests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

/// A stored manifest: media type and bytes.
type Manifest = (String, Arc<Vec<u8>>);

#[derive(Default)]
struct Store {
    blobs: HashMap<String, Arc<Vec<u8>>>,
    /// (repository, tag or digest) → (media type, bytes)
    manifests: HashMap<(String, String), Manifest>,
    /// Answer the referrers API with 404, as registries without it do.
    no_referrers_api: bool,
}

#[derive(Clone, Default)]
pub struct OciServer {
    store: Arc<RwLock<Store>>,
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl OciServer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a blob and returns its digest.
    pub fn add_blob(&self, bytes: Vec<u8>) -> String {
        let digest = sha256_digest(&bytes);
        self.store
            .write()
            .expect("store lock")
            .blobs
            .insert(digest.clone(), Arc::new(bytes));
        digest
    }

    /// Adds a manifest under `tag` (and its digest); returns the digest.
    pub fn add_manifest(&self, repo: &str, tag: &str, media_type: &str, bytes: Vec<u8>) -> String {
        let digest = sha256_digest(&bytes);
        let entry = (media_type.to_owned(), Arc::new(bytes));
        let mut s = self.store.write().expect("store lock");
        s.manifests
            .insert((repo.to_owned(), tag.to_owned()), entry.clone());
        s.manifests.insert((repo.to_owned(), digest.clone()), entry);
        digest
    }

    /// Makes the referrers API answer 404 (a registry that predates OCI
    /// 1.1), so that clients fall back to the referrers tag.
    pub fn disable_referrers_api(&self) {
        self.store.write().expect("store lock").no_referrers_api = true;
    }

    /// Serves on `addr` until the process ends; returns the bound address.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let app = Router::new()
            .route("/v2/", get(|| async { StatusCode::OK }))
            .route("/v2/{*rest}", get(dispatch).head(dispatch))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(bound)
    }
}

fn error(status: StatusCode, code: &str) -> Response {
    let body = serde_json::json!({"errors": [{"code": code, "message": code.to_lowercase()}]});
    (status, axum::Json(body)).into_response()
}

async fn dispatch(
    State(server): State<OciServer>,
    method: Method,
    Path(rest): Path<String>,
) -> Response {
    // Repository names contain slashes, so split from the right.
    let parts: Vec<&str> = rest.rsplitn(3, '/').collect();
    let [reference, kind, repo] = parts.as_slice() else {
        return error(StatusCode::NOT_FOUND, "NAME_UNKNOWN");
    };
    let store = server.store.read().expect("store lock");
    if *kind == "referrers" {
        if store.no_referrers_api {
            return error(StatusCode::NOT_FOUND, "NOT_FOUND");
        }
        return referrers(&store, repo, reference);
    }
    let (media_type, bytes) = match *kind {
        "manifests" => match store
            .manifests
            .get(&((*repo).to_owned(), (*reference).to_owned()))
        {
            Some((m, b)) => (m.clone(), b.clone()),
            None => return error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
        },
        "blobs" => match store.blobs.get(*reference) {
            Some(b) => ("application/octet-stream".to_owned(), b.clone()),
            None => return error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
        },
        _ => return error(StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
    };
    drop(store);
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&media_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&sha256_digest(&bytes)) {
        headers.insert("docker-content-digest", v);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    if method == Method::HEAD {
        return (StatusCode::OK, headers).into_response();
    }
    (StatusCode::OK, headers, Body::from(bytes.as_ref().clone())).into_response()
}

/// The referrers of `digest` in `repo`: an OCI index of the manifests whose
/// `subject` is that digest, with their `artifactType` and annotations, as
/// the distribution spec (v1.1) describes the answer.
fn referrers(store: &Store, repo: &str, digest: &str) -> Response {
    let mut manifests = Vec::new();
    for ((r, key), (media_type, bytes)) in &store.manifests {
        if r != repo || !key.starts_with("sha256:") {
            continue;
        }
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(bytes) else {
            continue;
        };
        if doc["subject"]["digest"].as_str() != Some(digest) {
            continue;
        }
        let artifact_type = doc["artifactType"]
            .as_str()
            .or(doc["config"]["mediaType"].as_str())
            .unwrap_or_default();
        let mut entry = serde_json::json!({
            "mediaType": media_type,
            "digest": key,
            "size": bytes.len(),
            "artifactType": artifact_type,
        });
        if let Some(a) = doc.get("annotations") {
            entry["annotations"] = a.clone();
        }
        manifests.push(entry);
    }
    manifests.sort_by(|a, b| a["digest"].as_str().cmp(&b["digest"].as_str()));
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/vnd.oci.image.index.v1+json",
        )],
        body.to_string(),
    )
        .into_response()
}
