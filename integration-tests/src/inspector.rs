//! Inspector Scan emulator: `POST /scan/sbom` (restJson1), answered the way
//! the real service answers, from what [`VulnDb`] learnt of real answers.
//!
//! What the real answers show and this reproduces:
//! - bom-refs renumbered `comp-1`, `comp-2`, … in document order (a parent
//!   before its nested components, which stay nested); `metadata.component`
//!   is dropped and not counted;
//! - components that inspector-sbomgen marked `is_duplicate_package` dropped;
//! - name and version taken from the purl, purls re-encoded (`~` → `%7E`);
//! - generator properties replaced by scanner ones: `path` for language
//!   packages, one info or warning per component without findings;
//! - vulnerabilities `vuln-N`, one per id, `affects` pointing to the new refs,
//!   `fixed_version:<new ref>` properties;
//! - summary counts in `metadata.properties` (see [`crate::vulndb::severity_of`]).

use std::collections::HashMap;
use std::future::Future as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::faults::{
    ConnectionAbort, FaultAction, FaultError, FaultRule, Faults, abort_connection,
};
use crate::vulndb::{
    FIXED_VERSION_PROP, GENERATOR_PROP, INFO_NO_RULES, INFO_SCANNED, Purl, SCANNER_PROP,
    SeverityCounts, VulnDb, VulnDbError, VulnDbStats, WARN_INVALID_PURL, WARN_NO_PURL,
    deciding_rating,
};
use crate::{CallLog, CallRecord, now_rfc3339};

/// Components per ScanSbom call, nested ones included. The API reference
/// says 2,000; scangate's contract, and the service today, allow 5,000.
pub const DEFAULT_MAX_COMPONENTS: usize = 5_000;
/// `metadata.tools.services` of the real answers.
pub const SERVICE_NAME: &str = "Amazon Inspector Scan SBOM API";
pub const SERVICE_VERSION: &str = "77f08c14+799c166d+fb1e16f3";

/// Requests larger than this are refused before parsing.
const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct InspectorOptions {
    pub max_components: usize,
    /// Folder of `*.json.scan` answers to learn from; `None`: the
    /// `SCANGATE_EMULATOR_FIXTURES` folder or the repository's fixtures.
    pub fixtures_dir: Option<PathBuf>,
    /// A database already loaded (wins over `fixtures_dir`).
    pub vulndb: Option<Arc<VulnDb>>,
    pub max_recorded_calls: usize,
}

impl Default for InspectorOptions {
    fn default() -> Self {
        InspectorOptions {
            max_components: DEFAULT_MAX_COMPONENTS,
            fixtures_dir: None,
            vulndb: None,
            max_recorded_calls: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum OutputFormat {
    #[default]
    #[serde(rename = "CYCLONE_DX_1_5")]
    CycloneDx15,
    #[serde(rename = "INSPECTOR")]
    Inspector,
    #[serde(rename = "INSPECTOR_ALT")]
    InspectorAlt,
}

impl OutputFormat {
    fn parse(s: &str) -> Option<OutputFormat> {
        match s {
            "CYCLONE_DX_1_5" => Some(OutputFormat::CycloneDx15),
            "INSPECTOR" => Some(OutputFormat::Inspector),
            "INSPECTOR_ALT" => Some(OutputFormat::InspectorAlt),
            _ => None,
        }
    }
}

/// `ValidationExceptionReason` of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ValidationReason {
    UnknownOperation,
    CannotParse,
    FieldValidationFailed,
    UnsupportedSbomType,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationField {
    pub name: String,
    pub message: String,
}

/// A `ValidationException` the emulator answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    pub reason: ValidationReason,
    pub message: String,
    pub fields: Vec<ValidationField>,
}

impl ValidationError {
    fn new(reason: ValidationReason, message: impl Into<String>) -> Self {
        ValidationError {
            reason,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    fn field(name: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ValidationError {
            reason: ValidationReason::FieldValidationFailed,
            fields: vec![ValidationField {
                name: name.to_string(),
                message: message.clone(),
            }],
            message,
        }
    }
}

#[derive(Debug, Clone)]
pub struct InspectorEmulator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    max_components: usize,
    db: Arc<VulnDb>,
    faults: Faults,
    calls: CallLog,
}

impl InspectorEmulator {
    /// Loads the vulnerability knowledge unless `opts.vulndb` brings it.
    pub fn new(opts: InspectorOptions) -> Result<Self, VulnDbError> {
        Self::with_faults(opts, Faults::new())
    }

    pub(crate) fn with_faults(opts: InspectorOptions, faults: Faults) -> Result<Self, VulnDbError> {
        let db = match (opts.vulndb, opts.fixtures_dir) {
            (Some(db), _) => db,
            (None, Some(dir)) => Arc::new(VulnDb::load_dir(&dir)?),
            (None, None) => VulnDb::shared_default()?,
        };
        Ok(InspectorEmulator {
            inner: Arc::new(Inner {
                max_components: opts.max_components,
                db,
                faults,
                calls: CallLog::new(opts.max_recorded_calls),
            }),
        })
    }

    /// ScanSbom without HTTP or faults: `request` is the request body
    /// (`{"sbom": …, "outputFormat": …}`), the result the response body.
    pub fn scan(&self, request: &Value) -> Result<Value, ValidationError> {
        scan_sbom(&self.inner.db, request, self.inner.max_components)
    }

    pub fn db(&self) -> &VulnDb {
        &self.inner.db
    }

    pub fn calls(&self) -> Vec<CallRecord> {
        self.inner.calls.snapshot()
    }

    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// Replace the fault rules (shared with CodePipeline under [`crate::start`]).
    pub fn set_faults(&self, rules: Vec<FaultRule>) -> Result<(), FaultError> {
        self.inner.faults.set(rules)
    }

    /// Forget recorded calls.
    pub fn reset(&self) {
        self.inner.calls.clear();
    }

    /// `POST /scan/sbom`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/scan/sbom", post(scan_handler))
            .with_state(self.clone())
    }

    /// To be nested at `/admin/inspector`: `GET /calls`, `GET /knowledge`,
    /// `GET /knowledge/vulnerable-purls`, `POST /reset`.
    pub fn admin_router(&self) -> Router {
        Router::new()
            .route("/calls", get(admin_calls))
            .route("/knowledge", get(admin_knowledge))
            .route("/knowledge/vulnerable-purls", get(admin_vulnerable_purls))
            .route("/reset", post(admin_reset))
            .with_state(self.clone())
    }
}

async fn admin_calls(State(emu): State<InspectorEmulator>) -> Json<Vec<CallRecord>> {
    Json(emu.calls())
}

async fn admin_knowledge(State(emu): State<InspectorEmulator>) -> Json<VulnDbStats> {
    Json(emu.db().stats())
}

async fn admin_vulnerable_purls(State(emu): State<InspectorEmulator>) -> Json<Vec<String>> {
    Json(emu.db().vulnerable_purls())
}

async fn admin_reset(State(emu): State<InspectorEmulator>) -> StatusCode {
    emu.reset();
    StatusCode::NO_CONTENT
}

// ---------------------------------------------------------------------------
// HTTP

fn error_response(
    status: StatusCode,
    error_type: &str,
    body: Value,
    retry_after: Option<u32>,
) -> Response {
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(error_type) {
        headers.insert("x-amzn-errortype", v);
    }
    if let Some(secs) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn validation_response(e: &ValidationError) -> Response {
    let mut body = json!({ "message": e.message, "reason": e.reason });
    if !e.fields.is_empty() {
        body["fields"] = json!(e.fields);
    }
    error_response(StatusCode::BAD_REQUEST, "ValidationException", body, None)
}

/// What the call log keeps of a request: SBOMs are too big to keep whole.
fn summarize(request: Option<&Value>, bytes: usize) -> Value {
    let Some(request) = request else {
        return json!({ "bytes": bytes, "parsed": false });
    };
    let sbom = request.get("sbom");
    let components = sbom
        .and_then(|s| s.get("components"))
        .and_then(Value::as_array)
        .map_or(0, |c| count_components(c));
    json!({
        "outputFormat": request.get("outputFormat"),
        "bomFormat": sbom.and_then(|s| s.get("bomFormat")),
        "specVersion": sbom.and_then(|s| s.get("specVersion")),
        "componentCount": components,
        "bytes": bytes,
    })
}

async fn scan_handler(State(emu): State<InspectorEmulator>, req: Request) -> Response {
    let started = Instant::now();
    let at = now_rfc3339();
    let abort = req.extensions().get::<ConnectionAbort>().cloned();
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return validation_response(&ValidationError::new(
                ValidationReason::CannotParse,
                "The request body could not be read or is too large.",
            ));
        }
    };
    let parsed: Result<Value, _> = serde_json::from_slice(&body);
    let mut record = CallRecord {
        seq: 0,
        operation: "ScanSbom".into(),
        at,
        request: summarize(parsed.as_ref().ok(), body.len()),
        status: None,
        error_type: None,
        fault: None,
        duration_ms: 0,
    };

    let decision = emu.inner.faults.decide("ScanSbom");
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    record.fault = decision.action.map(|a| a.as_str().to_string());
    let (response, error_type) = match decision.action {
        Some(FaultAction::Drop | FaultAction::DropAnswer) => {
            record.duration_ms = started.elapsed().as_millis() as u64;
            emu.inner.calls.push(record);
            return abort_connection(abort).await;
        }
        Some(FaultAction::Throttle) => (
            error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "ThrottlingException",
                json!({ "message": "Rate exceeded" }),
                Some(1),
            ),
            Some("ThrottlingException"),
        ),
        Some(FaultAction::Error5xx) => (
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerException",
                json!({ "message": "Internal service error", "reason": "OTHER" }),
                Some(1),
            ),
            Some("InternalServerException"),
        ),
        Some(FaultAction::AccessDenied) => (
            error_response(
                StatusCode::FORBIDDEN,
                "AccessDeniedException",
                json!({ "message": "User is not authorized to perform: inspector-scan:ScanSbom" }),
                None,
            ),
            Some("AccessDeniedException"),
        ),
        None => {
            let result = match &parsed {
                Ok(request) => emu.scan(request),
                Err(e) => Err(ValidationError::new(
                    ValidationReason::CannotParse,
                    format!("The request body is not valid JSON: {e}"),
                )),
            };
            match result {
                Ok(answer) if decision.pad > 0 || !decision.trickle.is_zero() => {
                    (shaped_answer(answer, decision.pad, decision.trickle), None)
                }
                Ok(answer) => (Json(answer).into_response(), None),
                Err(e) => (validation_response(&e), Some("ValidationException")),
            }
        }
    };
    record.status = Some(response.status().as_u16());
    record.error_type = error_type.map(str::to_string);
    record.duration_ms = started.elapsed().as_millis() as u64;
    tracing::debug!(status = ?record.status, error = ?record.error_type, "ScanSbom");
    emu.inner.calls.push(record);
    let mut response = response;
    if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        response.headers_mut().insert("x-amzn-requestid", id);
    }
    response
}

/// A real answer made at least `pad` bytes long (a property of the answer's
/// SBOM metadata holds the padding) and streamed in chunks without a
/// `Content-Length`, spread over `trickle`.
fn shaped_answer(mut answer: Value, pad: u64, trickle: Duration) -> Response {
    if pad > 0
        && let Some(sbom) = answer.get_mut("sbom").and_then(Value::as_object_mut)
    {
        let meta = sbom.entry("metadata").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            let props = meta.entry("properties").or_insert_with(|| json!([]));
            if let Some(props) = props.as_array_mut() {
                props.push(property(
                    "amazon:inspector:sbom_scanner:padding",
                    "x".repeat(pad as usize),
                ));
            }
        }
    }
    let body = serde_json::to_vec(&answer).unwrap_or_default();
    const CHUNKS: usize = 16;
    let chunk = body.len().div_ceil(CHUNKS).max(1);
    let pieces: Vec<Vec<u8>> = body.chunks(chunk).map(<[u8]>::to_vec).collect();
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(axum::body::Body::new(Shaped {
            pieces: pieces.into_iter(),
            pause: trickle / CHUNKS as u32,
            sleep: None,
        }))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// A body sent piece by piece, `pause` apart, with no length announced.
struct Shaped {
    pieces: std::vec::IntoIter<Vec<u8>>,
    pause: Duration,
    sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl hyper::body::Body for Shaped {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        if !self.pause.is_zero() {
            let pause = self.pause;
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(pause)));
            std::task::ready!(sleep.as_mut().poll(cx));
            self.sleep = None;
        }
        std::task::Poll::Ready(
            self.pieces
                .next()
                .map(|p| Ok(hyper::body::Frame::data(p.into()))),
        )
    }
}

// ---------------------------------------------------------------------------
// the scan

fn count_components(components: &[Value]) -> usize {
    components
        .iter()
        .map(|c| {
            1 + c
                .get("components")
                .and_then(Value::as_array)
                .map_or(0, |n| count_components(n))
        })
        .sum()
}

fn prop<'a>(component: &'a Value, name: &str) -> Option<&'a str> {
    component
        .get("properties")?
        .as_array()?
        .iter()
        .find(|p| p.get("name").and_then(Value::as_str) == Some(name))?
        .get("value")?
        .as_str()
}

fn property(name: impl Into<String>, value: impl Into<String>) -> Value {
    json!({ "name": name.into(), "value": value.into() })
}

/// Where a vulnerability applies, for both output formats.
#[derive(Debug)]
struct Affect {
    bom_ref: String,
    fixed_version: Option<String>,
    target: Target,
}

/// What the INSPECTOR format names in `affects`.
#[derive(Debug)]
enum Target {
    /// The purl as answered (`installed_version`).
    Package(String),
    /// A Dockerfile and the `a-b` line range of the finding.
    File {
        name: String,
        lines: String,
    },
    OperatingSystem {
        name: Value,
        version: Value,
    },
}

#[derive(Debug)]
struct Finding<'a> {
    template: &'a Value,
    affects: Vec<Affect>,
}

struct Scan<'a> {
    db: &'a VulnDb,
    next_ref: usize,
    findings: Vec<Finding<'a>>,
    finding_by_id: HashMap<String, usize>,
    /// INSPECTOR format `messages`.
    messages: Vec<Value>,
}

impl<'a> Scan<'a> {
    fn affect(&mut self, id: &str, template: &'a Value, affect: Affect) {
        let i = *self.finding_by_id.entry(id.to_string()).or_insert_with(|| {
            self.findings.push(Finding {
                template,
                affects: Vec::new(),
            });
            self.findings.len() - 1
        });
        self.findings[i].affects.push(affect);
    }

    fn message(&mut self, kind: &str, text: &str, purl: Option<&str>, component: &Value) {
        let mut m = Map::new();
        let key = if kind == "warning" {
            "warning_message"
        } else {
            "info_message"
        };
        m.insert(key.into(), json!(text));
        match purl {
            Some(p) => {
                m.insert("purl".into(), json!(p));
            }
            None => {
                for k in ["name", "version"] {
                    if let Some(v) = component.get(k) {
                        m.insert(k.into(), v.clone());
                    }
                }
            }
        }
        self.messages.push(Value::Object(m));
    }

    fn components(&mut self, input: &[Value]) -> Vec<Value> {
        input.iter().filter_map(|c| self.component(c)).collect()
    }

    fn component(&mut self, c: &Value) -> Option<Value> {
        let obj = c.as_object()?;
        if prop(c, &format!("{GENERATOR_PROP}is_duplicate_package")) == Some("true") {
            return None;
        }
        self.next_ref += 1;
        let bom_ref = format!("comp-{}", self.next_ref);
        let mut out = Map::new();
        out.insert("bom-ref".into(), json!(bom_ref));
        let ctype = obj.get("type").and_then(Value::as_str).unwrap_or("");
        if let Some(t) = obj.get("type") {
            out.insert("type".into(), t.clone());
        }
        let mut props = Vec::new();
        let mut status: Option<(&str, &str)> = None;
        let mut answered_purl = None;

        match obj.get("purl").and_then(Value::as_str) {
            None => {
                for k in ["name", "version"] {
                    if let Some(v) = obj.get(k) {
                        out.insert(k.into(), v.clone());
                    }
                }
                match ctype {
                    "operating-system" => {
                        let name = obj.get("name").and_then(Value::as_str).unwrap_or("");
                        let version = obj.get("version").and_then(Value::as_str).unwrap_or("");
                        if let Some(eol) = self.db.os_end_of_life(name, version) {
                            props.push(property(format!("{SCANNER_PROP}end_of_life"), eol));
                            self.message("info", &format!("Component end-of-life: {eol}"), None, c);
                        }
                        let db = self.db;
                        for hit in db.os_findings(name, version) {
                            self.affect(
                                &hit.id,
                                db.template(hit.template),
                                Affect {
                                    bom_ref: bom_ref.clone(),
                                    fixed_version: None,
                                    target: Target::OperatingSystem {
                                        name: json!(name),
                                        version: json!(version),
                                    },
                                },
                            );
                        }
                    }
                    // Dockerfile components carry their findings instead.
                    "file" => {}
                    _ => status = Some(("warning", WARN_NO_PURL)),
                }
            }
            Some(text) => {
                let purl_type = text
                    .split_once(':')
                    .map_or("", |(_, r)| r.trim_start_matches('/'))
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if !matches!(purl_type.as_str(), "deb" | "rpm" | "apk")
                    && let Some(path) = prop(c, &format!("{GENERATOR_PROP}source_path"))
                {
                    props.push(property(format!("{SCANNER_PROP}path"), path));
                }
                match Purl::parse(text) {
                    Err(_) => {
                        out.insert("purl".into(), json!(text));
                        answered_purl = Some(text.to_string());
                        status = Some(("warning", WARN_INVALID_PURL));
                    }
                    Ok(purl) => {
                        let service_purl = purl.to_service_string();
                        out.insert("name".into(), json!(purl.service_name()));
                        out.insert("purl".into(), json!(service_purl));
                        if let Some(v) = purl
                            .service_version()
                            .map(Value::from)
                            .or_else(|| obj.get("version").cloned())
                        {
                            out.insert("version".into(), v);
                        }
                        let hits = self.db.lookup(&purl);
                        if !hits.is_empty() {
                            for hit in hits {
                                self.affect(
                                    &hit.id,
                                    self.db.template(hit.template),
                                    Affect {
                                        bom_ref: bom_ref.clone(),
                                        fixed_version: hit.fixed_version.clone(),
                                        target: Target::Package(service_purl.clone()),
                                    },
                                );
                            }
                        } else if purl.purl_type == "maven" && purl.namespace.is_empty() {
                            // Without a group id no Maven rule can apply; the
                            // service says so as a warning.
                            status = Some(("warning", INFO_NO_RULES));
                        } else if self.db.has_rules(&purl) {
                            status = Some(("info", INFO_SCANNED));
                        } else {
                            status = Some(("info", INFO_NO_RULES));
                        }
                        answered_purl = Some(service_purl);
                    }
                }
            }
        }

        let finding_prefix = format!("{GENERATOR_PROP}dockerfile_finding:");
        let findings: Vec<(String, String)> = obj
            .get("properties")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let id = p.get("name")?.as_str()?.strip_prefix(&finding_prefix)?;
                Some((id.to_string(), p.get("value")?.as_str()?.to_string()))
            })
            .collect();
        for (id, value) in findings {
            props.push(property(
                format!("{SCANNER_PROP}dockerfile_finding:{id}"),
                value.clone(),
            ));
            if let Some(template) = self.db.dockerfile_finding(&id) {
                let name = obj
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let lines = value
                    .strip_prefix("affected_lines:")
                    .unwrap_or(&value)
                    .to_string();
                self.affect(
                    &id,
                    template,
                    Affect {
                        bom_ref: bom_ref.clone(),
                        fixed_version: None,
                        target: Target::File { name, lines },
                    },
                );
            }
        }

        if let Some((kind, text)) = status {
            props.push(property(format!("{SCANNER_PROP}{kind}"), text));
            self.message(kind, text, answered_purl.as_deref(), c);
        }
        if let Some(nested) = obj.get("components").and_then(Value::as_array) {
            let nested = self.components(nested);
            if !nested.is_empty() {
                out.insert("components".into(), Value::Array(nested));
            }
        }
        if !props.is_empty() {
            out.insert("properties".into(), Value::Array(props));
        }
        Some(Value::Object(out))
    }

    fn cyclonedx_vulnerabilities(&self) -> Vec<Value> {
        self.findings
            .iter()
            .enumerate()
            .map(|(n, f)| {
                let mut v = f.template.clone();
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("bom-ref".into(), json!(format!("vuln-{}", n + 1)));
                    let affects: Vec<Value> = f
                        .affects
                        .iter()
                        .map(|a| json!({ "ref": a.bom_ref }))
                        .collect();
                    obj.insert("affects".into(), Value::Array(affects));
                    let fixed: Vec<Value> = f
                        .affects
                        .iter()
                        .filter_map(|a| {
                            let fv = a.fixed_version.as_ref()?;
                            Some(property(
                                format!("{FIXED_VERSION_PROP}{}", a.bom_ref),
                                fv.clone(),
                            ))
                        })
                        .collect();
                    if !fixed.is_empty()
                        && let Some(props) = obj
                            .entry("properties")
                            .or_insert_with(|| Value::Array(Vec::new()))
                            .as_array_mut()
                    {
                        props.extend(fixed);
                    }
                }
                v
            })
            .collect()
    }
}

/// ScanSbom on a request body, answering a response body.
pub fn scan_sbom(
    db: &VulnDb,
    request: &Value,
    max_components: usize,
) -> Result<Value, ValidationError> {
    let request = request.as_object().ok_or_else(|| {
        ValidationError::new(
            ValidationReason::CannotParse,
            "The request body must be a JSON object.",
        )
    })?;
    let format = match request.get("outputFormat") {
        None | Some(Value::Null) => OutputFormat::CycloneDx15,
        Some(Value::String(s)) => OutputFormat::parse(s).ok_or_else(|| {
            ValidationError::field(
                "outputFormat",
                format!("Value '{s}' at 'outputFormat' failed to satisfy constraint: Member must satisfy enum value set: [CYCLONE_DX_1_5, INSPECTOR, INSPECTOR_ALT]"),
            )
        })?,
        Some(_) => {
            return Err(ValidationError::new(
                ValidationReason::CannotParse,
                "outputFormat must be a string.",
            ));
        }
    };
    let sbom = match request.get("sbom") {
        None | Some(Value::Null) => {
            return Err(ValidationError::field("sbom", "sbom must not be null"));
        }
        Some(Value::Object(sbom)) => sbom,
        Some(_) => {
            return Err(ValidationError::new(
                ValidationReason::CannotParse,
                "sbom must be a JSON object.",
            ));
        }
    };
    let bom_format = sbom.get("bomFormat").and_then(Value::as_str);
    let spec_version = sbom.get("specVersion").and_then(Value::as_str);
    if bom_format != Some("CycloneDX") || spec_version != Some("1.5") {
        return Err(ValidationError::new(
            ValidationReason::UnsupportedSbomType,
            format!(
                "Unsupported SBOM: bomFormat {} specVersion {}; only CycloneDX 1.5 is supported.",
                bom_format.unwrap_or("(none)"),
                spec_version.unwrap_or("(none)"),
            ),
        ));
    }
    let components = match sbom.get("components") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(c)) => c.as_slice(),
        Some(_) => {
            return Err(ValidationError::field(
                "sbom.components",
                "components must be an array",
            ));
        }
    };
    let count = count_components(components);
    if count > max_components {
        return Err(ValidationError::field(
            "sbom.components",
            format!(
                "The SBOM has {count} components; at most {max_components} are allowed per request."
            ),
        ));
    }

    let mut scan = Scan {
        db,
        next_ref: 0,
        findings: Vec::new(),
        finding_by_id: HashMap::new(),
        messages: Vec::new(),
    };
    let components = scan.components(components);
    let vulnerabilities = scan.cyclonedx_vulnerabilities();
    let counts = SeverityCounts::of(&vulnerabilities);

    let sbom = match format {
        OutputFormat::CycloneDx15 => json!({
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "serialNumber": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            "metadata": {
                "tools": { "services": [{ "name": SERVICE_NAME, "version": SERVICE_VERSION }] },
                "properties": [
                    property(format!("{SCANNER_PROP}critical_vulnerabilities"), counts.critical.to_string()),
                    property(format!("{SCANNER_PROP}high_vulnerabilities"), counts.high.to_string()),
                    property(format!("{SCANNER_PROP}medium_vulnerabilities"), counts.medium.to_string()),
                    property(format!("{SCANNER_PROP}low_vulnerabilities"), counts.low.to_string()),
                    property(format!("{SCANNER_PROP}other_vulnerabilities"), counts.other.to_string()),
                ],
                "timestamp": now_rfc3339(),
            },
            "components": components,
            "vulnerabilities": vulnerabilities,
        }),
        // No INSPECTOR_ALT answer has been seen; the INSPECTOR layout is the
        // closest known.
        OutputFormat::Inspector | OutputFormat::InspectorAlt => json!({
            "messages": scan.messages,
            "vulnerabilities": scan
                .findings
                .iter()
                .zip(&vulnerabilities)
                .map(|(f, v)| inspector_vulnerability(v, &f.affects))
                .collect::<Vec<_>>(),
            "vulnerability_count": {
                "critical": counts.critical,
                "high": counts.high,
                "low": counts.low,
                "medium": counts.medium,
                "other": counts.other,
            },
        }),
    };
    Ok(json!({ "sbom": sbom }))
}

/// One vulnerability in the INSPECTOR layout (see
/// `dockerfile-checks-inspector-scan.json`).
fn inspector_vulnerability(v: &Value, affects: &[Affect]) -> Value {
    let mut out = Map::new();
    let affects: Vec<Value> = affects
        .iter()
        .map(|a| match &a.target {
            Target::File { name, lines } => json!({ "file": name, "lines": lines }),
            Target::OperatingSystem { name, version } => {
                json!({ "name": name, "version": version })
            }
            Target::Package(purl) => {
                let mut m = Map::new();
                if let Some(fv) = &a.fixed_version {
                    m.insert("fixed_version".into(), json!(fv));
                }
                m.insert("installed_version".into(), json!(purl));
                Value::Object(m)
            }
        })
        .collect();
    out.insert("affects".into(), Value::Array(affects));
    for k in ["created", "description", "id", "updated"] {
        if let Some(x) = v.get(k) {
            out.insert(k.into(), x.clone());
        }
    }
    let ratings = v
        .get("ratings")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut props = Map::new();
    let cvss: Vec<Value> = ratings
        .iter()
        .filter(|r| {
            r.get("method")
                .and_then(Value::as_str)
                .is_some_and(|m| m.starts_with("CVSS"))
        })
        .map(|r| {
            json!({
                "cvss_3_base_score": r.get("score"),
                "cvss_3_base_vector": r.get("vector"),
                "severity": r.get("severity"),
                "source": r.pointer("/source/name"),
            })
        })
        .collect();
    if !cvss.is_empty() {
        props.insert("cvss".into(), Value::Array(cvss));
    }
    if let Some(cwes) = v.get("cwes") {
        props.insert("cwes".into(), cwes.clone());
    }
    if let Some(epss) = ratings
        .iter()
        .find(|r| r.pointer("/source/name").and_then(Value::as_str) == Some("EPSS"))
        .and_then(|r| r.get("score"))
    {
        props.insert("epss".into(), epss.clone());
    }
    for p in v
        .get("properties")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(name), Some(value)) = (
            p.get("name").and_then(Value::as_str),
            p.get("value").and_then(Value::as_str),
        ) else {
            continue;
        };
        let Some(key) = name.strip_prefix(SCANNER_PROP) else {
            continue;
        };
        if key.starts_with("fixed_version:") {
            continue;
        }
        let value = match value {
            "true" => json!(true),
            "false" => json!(false),
            other => json!(other),
        };
        props.insert(key.into(), value);
    }
    out.insert("properties".into(), Value::Object(props));
    let references: Vec<Value> = v
        .get("advisories")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| a.get("url").cloned())
        .collect();
    if !references.is_empty() {
        out.insert("references".into(), Value::Array(references));
    }
    let related: Vec<Value> = v
        .get("references")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("id").cloned())
        .collect();
    if !related.is_empty() {
        out.insert("related".into(), Value::Array(related));
    }
    let severity = match deciding_rating(v) {
        Some((rating, _)) => rating.get("severity").cloned().unwrap_or(json!("unknown")),
        None => ratings
            .iter()
            .find(|r| r.pointer("/source/name").and_then(Value::as_str) == Some("AMAZON_INSPECTOR"))
            .and_then(|r| r.get("severity").cloned())
            .unwrap_or(json!("unknown")),
    };
    out.insert("severity".into(), severity);
    if let Some(src) = v.pointer("/source/url") {
        out.insert("source".into(), src.clone());
    }
    Value::Object(out)
}
