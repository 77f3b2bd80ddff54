//! Amazon Inspector `inspector-scan:ScanSbom`: sends CycloneDX 1.5 SBOMs,
//! collects the vulnerabilities, retries throttling the way the service asks.

pub mod answer;
pub mod ecr;
pub mod findings;

use std::time::Duration;

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
        Inspector {
            client: aws_sdk_inspectorscan::Client::from_conf(conf),
            retry,
        }
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
                // Timeouts, dropped connections, DNS: worth retrying.
                Err(e) => (None, describe(&e), false),
            };
            if attempt >= self.retry.max_attempts {
                return Err(if throttled {
                    InspectorError::Throttled {
                        attempts: attempt,
                        message,
                    }
                } else {
                    InspectorError::Unavailable {
                        attempts: attempt,
                        message,
                    }
                });
            }
            let wait = self.retry.delay(attempt - 1, retry_after);
            tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, throttled, %message, "ScanSbom failed, retrying");
            tokio::time::sleep(wait).await;
        }
    }
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
}
