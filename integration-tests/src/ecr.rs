//! An emulator of Amazon ECR (awsJson1_1, `X-Amz-Target:
//! AmazonEC2ContainerRegistry_V20150921.OPERATION`) for tests:
//!
//! - `GetAuthorizationToken`: a token for a fixed user and password (the
//!   pair a test registry's htpasswd accepts), valid for a chosen time;
//!   calls are counted so that tests can see the client's cache at work.
//! - `StartImageScan` and `DescribeImageScanFindings` for images the test
//!   registers ([`EcrEmulator::add_image`]): a basic scan is IN_PROGRESS
//!   for a chosen number of polls, then COMPLETE (or FAILED); findings are
//!   paged with `nextToken`; a second StartImageScan of an image within 24
//!   hours is `LimitExceededException`, as ECR's one-scan-per-day quota
//!   answers. Images of an enhanced-scanning registry answer PENDING, then
//!   ACTIVE with `enhancedFindings`, without a StartImageScan.
//!
//! It can be told to refuse everything (`AccessDeniedException`) or to
//! throttle the next calls (`ThrottlingException`). Shapes and error codes
//! follow the SDK's ECR model (2015-09-21); timestamps are epoch seconds.

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

const PREFIX: &str = "AmazonEC2ContainerRegistry_V20150921.";
/// ECR's documented default and maximum page size of DescribeImageScanFindings.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;
/// Basic scanning allows one scan per image per 24 hours.
const SCAN_QUOTA_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// One call as the emulator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrCall {
    pub registry_ids: Vec<String>,
    /// The region of the SigV4 credential scope (which regional endpoint
    /// the client believed it was calling).
    pub signed_region: Option<String>,
}

/// Which scanning the image's registry is configured for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanKind {
    Basic,
    Enhanced,
}

/// What a registered image's scan will say.
#[derive(Debug, Clone)]
pub struct ScanSetup {
    pub kind: ScanKind,
    /// `ImageScanFinding`s (basic) or `EnhancedImageScanFinding`s, as JSON.
    pub findings: Vec<Value>,
    /// DescribeImageScanFindings calls answered IN_PROGRESS (basic) or
    /// PENDING (enhanced) before the scan is done.
    pub polls_before_complete: u32,
    /// The scan ends FAILED with this description instead.
    pub failure: Option<String>,
}

impl ScanSetup {
    pub fn basic(findings: Vec<Value>) -> Self {
        ScanSetup {
            kind: ScanKind::Basic,
            findings,
            polls_before_complete: 1,
            failure: None,
        }
    }

    pub fn enhanced(findings: Vec<Value>) -> Self {
        ScanSetup {
            kind: ScanKind::Enhanced,
            ..ScanSetup::basic(findings)
        }
    }
}

/// A scan operation as the emulator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanCall {
    pub operation: String,
    pub repository: String,
    pub image_digest: Option<String>,
    pub image_tag: Option<String>,
    pub next_token: Option<String>,
    pub signed_region: Option<String>,
}

struct Image {
    repository: String,
    digest: String,
    tags: Vec<String>,
    setup: ScanSetup,
    scan_started: Option<SystemTime>,
    polls: u32,
}

struct Inner {
    username: String,
    password: String,
    lifetime: Duration,
    deny: bool,
    throttle: u32,
    page_size: usize,
    registry_id: String,
    calls: Vec<EcrCall>,
    scan_calls: Vec<ScanCall>,
    images: Vec<Image>,
}

/// The JSON files of `assets/ecr`: realistic DescribeImageScanFindings
/// finding lists (`basic-findings.json`, `enhanced-findings.json`).
pub fn fixture(name: &str) -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/ecr")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
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
            throttle: 0,
            page_size: DEFAULT_PAGE,
            registry_id: "123456789012".into(),
            calls: Vec::new(),
            scan_calls: Vec::new(),
            images: Vec::new(),
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

    /// Answer the next `n` calls (any operation) with `ThrottlingException`.
    pub fn throttle(&self, n: u32) {
        self.inner.lock().unwrap().throttle = n;
    }

    /// At most this many findings per DescribeImageScanFindings page, even
    /// when the client asks for more (to exercise pagination).
    pub fn set_page_size(&self, n: usize) {
        self.inner.lock().unwrap().page_size = n.clamp(1, MAX_PAGE);
    }

    /// Registers an image (`repository`, manifest `digest`, tags) and what
    /// its scan will find.
    pub fn add_image(&self, repository: &str, digest: &str, tags: &[&str], setup: ScanSetup) {
        self.inner.lock().unwrap().images.push(Image {
            repository: repository.into(),
            digest: digest.into(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            setup,
            scan_started: None,
            polls: 0,
        });
    }

    /// StartImageScan and DescribeImageScanFindings calls, in order.
    pub fn scan_calls(&self) -> Vec<ScanCall> {
        self.inner.lock().unwrap().scan_calls.clone()
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
    let operation = target.strip_prefix(PREFIX).unwrap_or_default().to_owned();
    if !matches!(
        operation.as_str(),
        "GetAuthorizationToken" | "StartImageScan" | "DescribeImageScanFindings"
    ) {
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
    if operation != "GetAuthorizationToken" {
        return scan_operation(&inner, &operation, &request, signed_region);
    }
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
    if i.throttle > 0 {
        i.throttle -= 1;
        return throttled();
    }
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

fn throttled() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "ThrottlingException",
        "Rate exceeded",
    )
}

fn epoch(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn answer(body: Value) -> Response {
    (
        [("content-type", "application/x-amz-json-1.1")],
        body.to_string(),
    )
        .into_response()
}

/// ECR's `ImageIdentifier` rendering in its error messages.
fn image_id_text(digest: Option<&str>, tag: Option<&str>) -> String {
    format!(
        "{{imageDigest:'{}', imageTag:'{}'}}",
        digest.unwrap_or("null"),
        tag.unwrap_or("null")
    )
}

fn scan_operation(
    inner: &Mutex<Inner>,
    operation: &str,
    request: &Value,
    signed_region: Option<String>,
) -> Response {
    let repository = request["repositoryName"].as_str().unwrap_or_default();
    let digest = request["imageId"]["imageDigest"].as_str();
    let tag = request["imageId"]["imageTag"].as_str();
    let next_token = request["nextToken"].as_str();
    let mut i = inner.lock().unwrap();
    i.scan_calls.push(ScanCall {
        operation: operation.to_owned(),
        repository: repository.to_owned(),
        image_digest: digest.map(str::to_owned),
        image_tag: tag.map(str::to_owned),
        next_token: next_token.map(str::to_owned),
        signed_region,
    });
    if i.throttle > 0 {
        i.throttle -= 1;
        return throttled();
    }
    if i.deny {
        return error(
            StatusCode::BAD_REQUEST,
            "AccessDeniedException",
            &format!(
                "User: arn:aws:sts::123456789012:assumed-role/worker is not authorized to perform: \
                 ecr:{operation} on resource: arn:aws:ecr:us-east-1:123456789012:repository/{repository}"
            ),
        );
    }
    if repository.is_empty() || (digest.is_none() && tag.is_none()) {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterException",
            "repositoryName and imageId are required",
        );
    }
    let registry_id = request["registryId"]
        .as_str()
        .map_or_else(|| i.registry_id.clone(), str::to_owned);
    if !i.images.iter().any(|m| m.repository == repository) {
        return error(
            StatusCode::BAD_REQUEST,
            "RepositoryNotFoundException",
            &format!(
                "The repository with name '{repository}' does not exist in the registry with id '{registry_id}'"
            ),
        );
    }
    let page_size = i.page_size;
    let Some(img) = i.images.iter_mut().find(|m| {
        m.repository == repository
            && digest.is_none_or(|d| d == m.digest)
            && tag.is_none_or(|t| m.tags.iter().any(|x| x == t))
    }) else {
        return error(
            StatusCode::BAD_REQUEST,
            "ImageNotFoundException",
            &format!(
                "The image with imageId {} does not exist within the repository with name '{repository}' in the registry with id '{registry_id}'",
                image_id_text(digest, tag)
            ),
        );
    };
    let image_id = json!({
        "imageDigest": img.digest,
        "imageTag": tag.or(img.tags.first().map(String::as_str)),
    });
    match operation {
        "StartImageScan" => {
            let now = SystemTime::now();
            if img.setup.kind == ScanKind::Enhanced {
                // Enhanced scanning is continuous: ECR refuses on-demand scans.
                return error(
                    StatusCode::BAD_REQUEST,
                    "ValidationException",
                    "This operation is not supported for registries with enhanced scanning enabled",
                );
            }
            if let Some(t) = img.scan_started
                && now.duration_since(t).unwrap_or_default() < SCAN_QUOTA_WINDOW
            {
                return error(
                    StatusCode::BAD_REQUEST,
                    "LimitExceededException",
                    "The scan quota per image has been exceeded. Wait and try again.",
                );
            }
            img.scan_started = Some(now);
            img.polls = 0;
            answer(json!({
                "registryId": registry_id,
                "repositoryName": repository,
                "imageId": image_id,
                "imageScanStatus": {"status": "IN_PROGRESS", "description": "The scan is in progress."},
            }))
        }
        _ => describe_findings(img, &registry_id, image_id, next_token, request, page_size),
    }
}

fn describe_findings(
    img: &mut Image,
    registry_id: &str,
    image_id: Value,
    next_token: Option<&str>,
    request: &Value,
    page_size: usize,
) -> Response {
    let enhanced = img.setup.kind == ScanKind::Enhanced;
    if !enhanced && img.scan_started.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "ScanNotFoundException",
            &format!(
                "Image scan does not exist for the image with '{}' in the repository with name '{}' in the registry with id '{registry_id}'",
                image_id_text(Some(&img.digest), None),
                img.repository
            ),
        );
    }
    let base = json!({
        "registryId": registry_id,
        "repositoryName": img.repository,
        "imageId": image_id,
    });
    let with = |mut v: Value, status: Value, findings: Option<Value>| {
        v["imageScanStatus"] = status;
        if let Some(f) = findings {
            v["imageScanFindings"] = f;
        }
        v
    };
    if next_token.is_none() {
        img.polls += 1;
    }
    if img.polls <= img.setup.polls_before_complete {
        let status = if enhanced {
            json!({"status": "PENDING", "description": "Amazon Inspector is scanning the image."})
        } else {
            json!({"status": "IN_PROGRESS", "description": "The scan is in progress."})
        };
        return answer(with(base, status, None));
    }
    if let Some(why) = &img.setup.failure {
        return answer(with(
            base,
            json!({"status": "FAILED", "description": why}),
            None,
        ));
    }
    let start = match next_token.map(|t| {
        t.strip_prefix("page-")
            .and_then(|n| n.parse::<usize>().ok())
    }) {
        None => 0,
        Some(Some(n)) if n <= img.setup.findings.len() => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterException",
                "Invalid parameter at 'nextToken' failed to satisfy constraint: 'Invalid token'",
            );
        }
    };
    let asked = request["maxResults"]
        .as_u64()
        .map_or(DEFAULT_PAGE, |n| n as usize)
        .clamp(1, MAX_PAGE);
    let end = (start + asked.min(page_size)).min(img.setup.findings.len());
    let page = &img.setup.findings[start..end];
    let mut counts = serde_json::Map::new();
    for f in &img.setup.findings {
        let sev = f["severity"].as_str().unwrap_or("UNDEFINED").to_owned();
        let n = counts.get(&sev).and_then(Value::as_u64).unwrap_or(0) + 1;
        counts.insert(sev, json!(n));
    }
    let now = epoch(SystemTime::now());
    let mut findings = json!({
        "imageScanCompletedAt": now,
        "vulnerabilitySourceUpdatedAt": now - 3600.0,
        "findingSeverityCounts": counts,
    });
    findings[if enhanced {
        "enhancedFindings"
    } else {
        "findings"
    }] = json!(page);
    let status = if enhanced {
        json!({"status": "ACTIVE", "description": "Continuous scan is selected for image."})
    } else {
        json!({"status": "COMPLETE", "description": "The scan was completed successfully."})
    };
    let mut out = with(base, status, Some(findings));
    if end < img.setup.findings.len() {
        out["nextToken"] = json!(format!("page-{end}"));
    }
    answer(out)
}
