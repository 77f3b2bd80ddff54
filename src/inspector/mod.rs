//! Amazon Inspector `inspector-scan:ScanSbom`: sends CycloneDX 1.5 SBOMs,
//! collects the vulnerabilities, retries throttling the way the service asks.

pub mod answer;
pub mod ecr;
pub mod findings;
pub mod setup;

use std::time::{Duration, Instant};

use aws_sdk_inspectorscan::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_inspectorscan::operation::scan_sbom::ScanSbomError;
use aws_sdk_inspectorscan::types::OutputFormat;
use aws_smithy_types::{Document, Number};
use serde_json::Value;

pub use findings::{Finding, Severity};

/// The service's limit on components per ScanSbom call (nested included).
pub const MAX_COMPONENTS: usize = 5_000;

#[derive(Debug, thiserror::Error)]
pub enum InspectorError {
    #[error(
        "Amazon Inspector denied ScanSbom: {0} (the worker's role needs inspector-scan:ScanSbom)"
    )]
    AccessDenied(String),
    #[error("Amazon Inspector rejected the SBOM: {0}")]
    Validation(String),
    #[error(
        "Amazon Inspector is throttling ScanSbom and still was after {attempts} attempts: {message}"
    )]
    Throttled { attempts: u32, message: String },
    #[error("Amazon Inspector is unavailable after {attempts} attempts: {message}")]
    Unavailable { attempts: u32, message: String },
    /// No connection at all (refused, DNS failure, connect timeout): not
    /// the service being busy, so it gets few attempts and says where it
    /// tried to connect.
    #[error(
        "cannot reach Amazon Inspector at {endpoint}: {message} ({attempts} attempts in {elapsed:.1?}{bound}). \
         Check the region (AWS_REGION), AWS_ENDPOINT_URL_INSPECTOR_SCAN if it is set, and that this \
         machine can reach the endpoint (proxy, firewall, VPC endpoint)"
    )]
    Unreachable {
        endpoint: String,
        attempts: u32,
        elapsed: Duration,
        message: String,
        /// `; … gives up after N s` when a total bound applies, else empty.
        bound: String,
    },
    #[error("Amazon Inspector answered without an SBOM")]
    EmptyAnswer,
    #[error(
        "Amazon Inspector's answer is larger than {} MiB, more than an SBOM of at most {MAX_COMPONENTS} components can have; it was not read further (is AWS_ENDPOINT_URL_INSPECTOR_SCAN Amazon Inspector?)",
        limit >> 20
    )]
    AnswerTooLarge { limit: u64 },
}

/// How hard to retry. Throttling is expected under load (many workers, one
/// account), so it gets more patience than other failures.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

/// How long one caller may keep retrying in all, beyond [`RetryPolicy`]:
/// the worker serves jobs and waits out an outage; a person at a terminal
/// or a CI step wants an answer.
#[derive(Debug, Clone, Default)]
pub struct RetryBudget {
    /// Stop retrying once the next wait would end past this (since the first
    /// attempt). `None`: only `max_attempts` bounds the retries.
    pub total: Option<Duration>,
    /// Attempts when no connection could be made at all; `None`: as many as
    /// `max_attempts`.
    pub unreachable_attempts: Option<u32>,
}

impl RetryBudget {
    /// `scangate scan`'s: 20 s in all, 3 attempts to connect.
    pub fn cli() -> Self {
        RetryBudget {
            total: Some(CLI_RETRY_TOTAL),
            unreachable_attempts: Some(3),
        }
    }
}

/// The documented bound on `scangate scan`'s retries (README, "Your first
/// hour").
pub const CLI_RETRY_TOTAL: Duration = Duration::from_secs(20);

impl RetryPolicy {
    /// Exponential backoff with full jitter, but never sooner than the
    /// service's Retry-After.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_delay);
        let jittered = exp.mul_f64(0.5 + rand::random::<f64>() * 0.5);
        retry_after.map_or(jittered, |ra| ra.max(jittered).min(self.max_delay.max(ra)))
    }
}

#[derive(Clone)]
pub struct Inspector {
    client: aws_sdk_inspectorscan::Client,
    retry: RetryPolicy,
    budget: RetryBudget,
    /// Where the calls go, for messages only.
    endpoint: String,
}

/// The answer to one SBOM (possibly sent in several parts).
#[derive(Debug, Clone, Default)]
pub struct ScanResult {
    pub findings: Vec<Finding>,
    /// Raw answers, one per call, kept for reports.
    pub answers: Vec<Value>,
    /// Per-component warnings Inspector attached (end-of-life OS, …).
    pub warnings: Vec<String>,
    /// Every per-component message (info, warning, end of life), for reports.
    pub notes: Vec<findings::ComponentNote>,
    pub calls: u32,
}

impl Inspector {
    pub fn new(sdk: &aws_config::SdkConfig, retry: RetryPolicy) -> Self {
        // The SDK's own retries are switched off: we retry ourselves so that
        // Retry-After is honoured and attempts are counted in one place.
        let conf = aws_sdk_inspectorscan::config::Builder::from(sdk)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_secs(120))
                    .connect_timeout(Duration::from_secs(10))
                    .build(),
            )
            .build();
        let endpoint = shown_endpoint(sdk);
        Inspector {
            client: aws_sdk_inspectorscan::Client::from_conf(conf),
            retry,
            budget: RetryBudget::default(),
            endpoint,
        }
    }

    /// The same client with a bound on the total retry time.
    pub fn with_budget(mut self, budget: RetryBudget) -> Self {
        self.budget = budget;
        self
    }

    /// Scans the parts of one SBOM (each within [`MAX_COMPONENTS`]) and
    /// merges the findings.
    pub async fn scan(&self, parts: &[Value]) -> Result<ScanResult, InspectorError> {
        let mut result = ScanResult::default();
        let mut all = Vec::new();
        for part in parts {
            let (answer, calls) = self.scan_one(part).await?;
            result.calls += calls;
            all.push(findings::from_answer(&answer));
            collect_warnings(&answer, &mut result.warnings);
            result.notes.extend(findings::component_notes(&answer));
            result.answers.push(answer);
        }
        result.findings = findings::merge(all);
        Ok(result)
    }

    async fn scan_one(&self, sbom: &Value) -> Result<(Value, u32), InspectorError> {
        let doc = to_document(sbom);
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let res = self
                .client
                .scan_sbom()
                .sbom(doc.clone())
                .output_format(OutputFormat::CycloneDx15)
                .customize()
                .interceptor(answer::CapAnswer(answer::MAX_ANSWER_BYTES))
                .send()
                .await;
            let mut unreachable = false;
            let (retry_after, message, throttled) = match res {
                Ok(out) => {
                    let sbom = out.sbom().ok_or(InspectorError::EmptyAnswer)?;
                    return Ok((from_document(sbom), attempt));
                }
                Err(SdkError::ServiceError(se)) => match se.err() {
                    ScanSbomError::ThrottlingException(e) => (
                        secs(e.retry_after_seconds()),
                        msg_or(e.message(), "throttled").to_owned(),
                        true,
                    ),
                    ScanSbomError::InternalServerException(e) => (
                        secs(e.retry_after_seconds()),
                        msg_or(e.message(), "internal error").to_owned(),
                        false,
                    ),
                    ScanSbomError::AccessDeniedException(e) => {
                        return Err(InspectorError::AccessDenied(
                            msg_or(e.message(), "access denied").to_owned(),
                        ));
                    }
                    ScanSbomError::ValidationException(e) => {
                        return Err(InspectorError::Validation(format!(
                            "{} ({})",
                            msg_or(e.message(), "validation failed"),
                            e.reason().as_str()
                        )));
                    }
                    other => {
                        let code = other.code().unwrap_or("unknown error");
                        let status = se.raw().status().as_u16();
                        let msg = format!(
                            "{code} (HTTP {status}): {}",
                            other.message().unwrap_or_default()
                        );
                        if status == 403
                            || code.contains("AccessDenied")
                            || code.contains("Unrecognized")
                        {
                            return Err(InspectorError::AccessDenied(msg));
                        }
                        if status < 500 && status != 429 {
                            return Err(InspectorError::Validation(msg));
                        }
                        (None, msg, status == 429)
                    }
                },
                // The same answer would come again: not retried.
                Err(e) if answer::too_large(&e) => {
                    return Err(InspectorError::AnswerTooLarge {
                        limit: answer::MAX_ANSWER_BYTES,
                    });
                }
                // No connection: refused, DNS, connect timeout. Worth a
                // retry or two (a network blip), not a long wait.
                Err(SdkError::DispatchFailure(d)) if d.is_io() || d.is_timeout() => {
                    unreachable = true;
                    (None, connect_failure(d.as_connector_error()), false)
                }
                // Timeouts, dropped connections mid-answer: worth retrying.
                Err(e) => (None, describe(&e), false),
            };
            let wait = self.retry.delay(attempt - 1, retry_after);
            if let Some(stop) = self.stop_reason(attempt, unreachable, started.elapsed() + wait) {
                return Err(self.give_up(
                    attempt,
                    started.elapsed(),
                    message,
                    throttled,
                    unreachable,
                    stop,
                ));
            }
            tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, throttled, %message, "ScanSbom failed, retrying");
            tokio::time::sleep(wait).await;
        }
    }
}

/// Where ScanSbom calls go, for messages: the endpoint settings the SDK
/// reads (service-specific first), else the regional default.
fn shown_endpoint(sdk: &aws_config::SdkConfig) -> String {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    var("AWS_ENDPOINT_URL_INSPECTOR_SCAN")
        .or_else(|| sdk.endpoint_url().map(str::to_owned))
        .or_else(|| var("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|| {
            let region = sdk.region().map_or("REGION", |r| r.as_ref());
            format!("https://inspector-scan.{region}.amazonaws.com")
        })
}

/// Why retrying stops now.
enum Stop {
    Attempts,
    /// The next wait would end past the total budget.
    Budget,
}

impl Inspector {
    fn stop_reason(&self, attempt: u32, unreachable: bool, after_wait: Duration) -> Option<Stop> {
        let max = match (unreachable, self.budget.unreachable_attempts) {
            (true, Some(n)) => n.min(self.retry.max_attempts),
            _ => self.retry.max_attempts,
        };
        if attempt >= max {
            return Some(Stop::Attempts);
        }
        match self.budget.total {
            Some(total) if after_wait > total => Some(Stop::Budget),
            _ => None,
        }
    }

    fn give_up(
        &self,
        attempts: u32,
        elapsed: Duration,
        mut message: String,
        throttled: bool,
        unreachable: bool,
        stop: Stop,
    ) -> InspectorError {
        let bound = self.budget.total.map_or(String::new(), |total| {
            format!(
                "; scangate scan gives up after {} s in all",
                total.as_secs()
            )
        });
        if unreachable {
            return InspectorError::Unreachable {
                endpoint: self.endpoint.clone(),
                attempts,
                elapsed,
                message,
                bound,
            };
        }
        if matches!(stop, Stop::Budget) {
            message.push_str(&format!(" (stopped after {elapsed:.1?}{bound})"));
        }
        if throttled {
            InspectorError::Throttled { attempts, message }
        } else {
            InspectorError::Unavailable { attempts, message }
        }
    }
}

/// The innermost cause of a failed connection ("Connection refused (os
/// error 111)", "failed to lookup address information: …"): the SDK's outer
/// layers only say "dispatch failure" and "io error".
fn connect_failure(e: Option<&aws_sdk_inspectorscan::error::ConnectorError>) -> String {
    let Some(e) = e else {
        return "no connection".to_owned();
    };
    let mut last = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        last = c.to_string();
        cur = c.source();
    }
    last
}

fn msg_or<'a>(m: &'a str, default: &'a str) -> &'a str {
    if m.is_empty() { default } else { m }
}

fn secs(s: Option<i32>) -> Option<Duration> {
    s.filter(|s| *s > 0).map(|s| Duration::from_secs(s as u64))
}

/// The full error chain: the SDK's Display alone says only "dispatch failure".
pub fn describe(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// At most this many distinct warnings are kept from Inspector's answers
/// (all parts of a split SBOM together): the answer is not ours, and a
/// warning per component of a 5,000-component part is not news to anyone.
const MAX_WARNINGS: usize = 200;

pub(crate) fn collect_warnings(answer: &Value, out: &mut Vec<String>) {
    // A set beside the list: `contains` on the list made this quadratic in
    // the answer's warnings (fuzzing found 40k warnings cost 25 s).
    let mut seen: std::collections::HashSet<String> = out.iter().cloned().collect();
    let mut dropped = 0usize;
    walk(answer, out, &mut seen, &mut dropped);
    if dropped > 0 {
        out.push(format!(
            "... and {dropped} more warnings from Inspector (only the first {MAX_WARNINGS} are kept)"
        ));
    }
}

fn walk(
    v: &Value,
    out: &mut Vec<String>,
    seen: &mut std::collections::HashSet<String>,
    dropped: &mut usize,
) {
    for c in v["components"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        for p in c["properties"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            let name = c["name"].as_str().unwrap_or("?");
            let value = p["value"].as_str().unwrap_or("");
            let w = match p["name"].as_str() {
                Some("amazon:inspector:sbom_scanner:warning") => format!("{name}: {value}"),
                // An unsupported OS gets no more fixes: worth a warning
                // even on a passing scan.
                Some("amazon:inspector:sbom_scanner:end_of_life") => format!(
                    "{name} {}: end of life since {}",
                    c["version"].as_str().unwrap_or(""),
                    value.get(..10).unwrap_or(value)
                ),
                _ => continue,
            };
            if seen.contains(&w) {
                continue;
            }
            if seen.len() >= MAX_WARNINGS {
                *dropped += 1;
                continue;
            }
            seen.insert(w.clone());
            out.push(w);
        }
        walk(c, out, seen, dropped);
    }
}

pub fn to_document(v: &Value) -> Document {
    match v {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            Number::Float(n.as_f64().unwrap_or(0.0))
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(a) => Document::Array(a.iter().map(to_document).collect()),
        Value::Object(o) => {
            Document::Object(o.iter().map(|(k, v)| (k.clone(), to_document(v))).collect())
        }
    }
}

pub fn from_document(d: &Document) -> Value {
    match d {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        Document::String(s) => Value::String(s.clone()),
        Document::Array(a) => Value::Array(a.iter().map(from_document).collect()),
        Document::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), from_document(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_round_trip() {
        let v = serde_json::json!({"a": [1, -2, 2.5, "x", null, true], "b": {"c": {}}});
        assert_eq!(from_document(&to_document(&v)), v);
    }

    #[test]
    fn retry_delay_honours_retry_after() {
        let p = RetryPolicy::default();
        let d = p.delay(0, Some(Duration::from_secs(3)));
        assert!(d >= Duration::from_secs(3));
        let d = p.delay(20, None);
        assert!(d <= p.max_delay);
    }

    #[test]
    fn many_warnings_are_collected_in_linear_time_and_capped() {
        let components: Vec<Value> = (0..40_000)
            .map(|i| {
                serde_json::json!({"name": format!("c{i}"), "properties": [
                    {"name": "amazon:inspector:sbom_scanner:warning", "value": "unsupported"}]})
            })
            .collect();
        let answer = serde_json::json!({ "components": components });
        let started = std::time::Instant::now();
        let mut out = Vec::new();
        collect_warnings(&answer, &mut out);
        collect_warnings(&answer, &mut out);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(out.len(), MAX_WARNINGS + 2);
        assert!(
            out[MAX_WARNINGS].starts_with("... and 39800 more"),
            "{}",
            out[MAX_WARNINGS]
        );
    }

    /// An Inspector client whose endpoint refuses connections.
    async fn refused(retry: RetryPolicy, budget: RetryBudget) -> (Inspector, String) {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let endpoint = format!("http://{closed}");
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .credentials_provider(aws_sdk_inspectorscan::config::Credentials::new(
                "AKIDTEST", "test", None, None, "test",
            ))
            .load()
            .await;
        (Inspector::new(&sdk, retry).with_budget(budget), endpoint)
    }

    fn quick(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(200),
        }
    }

    /// A refused connection is "unreachable", named with its endpoint: the
    /// command line's budget stops it after its few attempts, the worker's
    /// (no budget) only after all of `max_attempts`.
    #[tokio::test]
    async fn refused_connections_are_unreachable_and_bounded() {
        let sbom =
            serde_json::json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": []});
        let (cli, endpoint) = refused(quick(8), RetryBudget::cli()).await;
        match cli.scan(std::slice::from_ref(&sbom)).await {
            Err(InspectorError::Unreachable {
                endpoint: e,
                attempts,
                message,
                bound,
                ..
            }) => {
                assert_eq!((e.as_str(), attempts), (endpoint.as_str(), 3));
                assert!(message.contains("Connection refused"), "{message}");
                assert_eq!(bound, "; scangate scan gives up after 20 s in all");
            }
            other => panic!("{:?}", other.map(|r| r.calls)),
        }
        let (worker, _) = refused(quick(4), RetryBudget::default()).await;
        match worker.scan(std::slice::from_ref(&sbom)).await {
            Err(InspectorError::Unreachable {
                attempts, bound, ..
            }) => assert_eq!((attempts, bound.as_str()), (4, "")),
            other => panic!("{:?}", other.map(|r| r.calls)),
        }
    }

    /// The total bound wins over a generous attempt count.
    #[tokio::test]
    async fn the_total_budget_stops_retrying() {
        let sbom =
            serde_json::json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": []});
        let budget = RetryBudget {
            total: Some(Duration::from_millis(700)),
            unreachable_attempts: None,
        };
        let (client, _) = refused(quick(1000), budget).await;
        let started = std::time::Instant::now();
        let err = client.scan(&[sbom]).await.expect_err("nothing listens");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        match err {
            InspectorError::Unreachable {
                attempts, elapsed, ..
            } => {
                assert!((2..1000).contains(&attempts), "{attempts}");
                // No wait ends past the budget; the attempt that was under
                // way when it ran out may finish (a refused one is quick).
                assert!(elapsed < Duration::from_millis(1200), "{elapsed:?}");
            }
            other => panic!("{other}"),
        }
    }
}
