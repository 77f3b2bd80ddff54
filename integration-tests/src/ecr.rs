//! An emulator of Amazon ECR's `GetAuthorizationToken` (awsJson1_1,
//! `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken`)
//! for tests: answers a token for a fixed user and password (the pair a
//! test registry's htpasswd accepts), valid for a chosen time, and counts
//! calls so that tests can see the client's cache at work. It can be told
//! to refuse (`AccessDeniedException`).
//!
//! Shapes follow the SDK's ECR model (`registryIds` in, `authorizationData`
//! with `authorizationToken`, `expiresAt` in epoch seconds and
//! `proxyEndpoint` out).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

const TARGET: &str = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken";

/// One call as the emulator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrCall {
    pub registry_ids: Vec<String>,
    /// The region of the SigV4 credential scope (which regional endpoint
    /// the client believed it was calling).
    pub signed_region: Option<String>,
}

struct Inner {
    username: String,
    password: String,
    lifetime: Duration,
    deny: bool,
    calls: Vec<EcrCall>,
}

pub struct EcrEmulator {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    task: JoinHandle<()>,
}

impl Drop for EcrEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EcrEmulator {
    /// Tokens are `base64(username:password)`, expiring `lifetime` after
    /// each call.
    pub async fn start(username: &str, password: &str, lifetime: Duration) -> Result<Self> {
        let inner = Arc::new(Mutex::new(Inner {
            username: username.into(),
            password: password.into(),
            lifetime,
            deny: false,
            calls: Vec::new(),
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/", post(handle))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(EcrEmulator { addr, inner, task })
    }

    /// For `AWS_ENDPOINT_URL_ECR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn calls(&self) -> Vec<EcrCall> {
        self.inner.lock().unwrap().calls.clone()
    }

    /// From now on, answer `AccessDeniedException`.
    pub fn deny(&self) {
        self.inner.lock().unwrap().deny = true;
    }
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amzn-errortype", kind),
        ],
        json!({"__type": kind, "message": message}).to_string(),
    )
        .into_response()
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if target != TARGET {
        return error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            &format!("unsupported target {target:?}"),
        );
    }
    // `AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/ecr/aws4_request, …`
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !auth.starts_with("AWS4-HMAC-SHA256 ") {
        return error(
            StatusCode::BAD_REQUEST,
            "MissingAuthenticationTokenException",
            "the request is not signed",
        );
    }
    let signed_region = auth
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split(['/', ',']).nth(2))
        .map(str::to_owned);
    let request: Value = match serde_json::from_str(if body.is_empty() { "{}" } else { &body }) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "SerializationException",
                &e.to_string(),
            );
        }
    };
    let registry_ids: Vec<String> = request["registryIds"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut i = inner.lock().unwrap();
    i.calls.push(EcrCall {
        registry_ids: registry_ids.clone(),
        signed_region: signed_region.clone(),
    });
    if i.deny {
        return error(
            StatusCode::BAD_REQUEST,
            "AccessDeniedException",
            "User: arn:aws:sts::123456789012:assumed-role/worker is not authorized to perform: \
             ecr:GetAuthorizationToken",
        );
    }
    let token =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", i.username, i.password));
    let expires = SystemTime::now() + i.lifetime;
    let expires_at = expires
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    let region = signed_region.unwrap_or_else(|| "us-east-1".into());
    let data: Vec<Value> = if registry_ids.is_empty() {
        vec!["000000000000".to_owned()]
    } else {
        registry_ids
    }
    .iter()
    .map(|id| {
        json!({
            "authorizationToken": token,
            "expiresAt": expires_at,
            "proxyEndpoint": format!("https://{id}.dkr.ecr.{region}.amazonaws.com"),
        })
    })
    .collect();
    (
        [("content-type", "application/x-amz-json-1.1")],
        json!({"authorizationData": data}).to_string(),
    )
        .into_response()
}
