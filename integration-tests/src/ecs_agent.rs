//! An emulated ECS container agent: the task scale-in protection endpoint
//! a worker on ECS calls through `$ECS_AGENT_URI` (Amazon ECS developer
//! guide, "Amazon ECS task scale-in protection endpoint").
//!
//! `PUT {uri}/task-protection/v1/state` takes `{"ProtectionEnabled":bool}`
//! (required) and `"ExpiresInMinutes"` (1 to 2880, optional), and answers
//! `{"protection":{"ExpirationDate","ProtectionEnabled","TaskArn"}}`; `GET`
//! answers the current state. A malformed request gets 400 with an `error`
//! object, as from the agent. Every PUT is recorded, in order, for tests.
//! [`EcsAgent::refuse`] makes it answer like ECS refusing the change (the
//! task role lacking `ecs:UpdateTaskProtection`), [`EcsAgent::stall`] never
//! answer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::put;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const TASK_ARN: &str =
    "arn:aws:ecs:us-east-1:123456789012:task/scangate/0123456789abcdef0123456789abcdef";
const MAX_MINUTES: u64 = 2880;
const DEFAULT_MINUTES: u64 = 120;

/// One PUT the agent received.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtectionCall {
    pub enabled: bool,
    pub expires_in_minutes: Option<u64>,
    /// Whether the agent answered success.
    pub accepted: bool,
    pub at: Instant,
}

#[derive(Default)]
struct Inner {
    calls: Mutex<Vec<ProtectionCall>>,
    protected_until: Mutex<Option<Instant>>,
    refuse: AtomicBool,
    stall: AtomicBool,
}

pub struct EcsAgent {
    /// What ECS puts in `ECS_AGENT_URI`: `http://HOST/api/TASK-ID`.
    pub uri: String,
    inner: Arc<Inner>,
    task: JoinHandle<()>,
}

impl EcsAgent {
    pub async fn start() -> std::io::Result<EcsAgent> {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route(
                "/api/{task}/task-protection/v1/state",
                put(update).get(current),
            )
            .with_state(inner.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(EcsAgent {
            uri: format!("http://{addr}/api/0123456789abcdef-task"),
            inner,
            task,
        })
    }

    /// The PUTs so far, in order of arrival.
    pub fn calls(&self) -> Vec<ProtectionCall> {
        self.inner.calls.lock().unwrap().clone()
    }

    /// Whether the task is protected now.
    pub fn protected(&self) -> bool {
        self.inner
            .protected_until
            .lock()
            .unwrap()
            .is_some_and(|t| t > Instant::now())
    }

    /// Answer every change like ECS refusing it.
    pub fn refuse(&self, on: bool) {
        self.inner.refuse.store(on, Ordering::SeqCst);
    }

    /// Take every change and never answer, as a hung agent.
    pub fn stall(&self, on: bool) {
        self.inner.stall.store(on, Ordering::SeqCst);
    }

    /// Waits until `n` calls were recorded; false on timeout.
    pub async fn wait_for_calls(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.calls().len() >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

impl Drop for EcsAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn error(code: &str, message: &str) -> (StatusCode, axum::Json<Value>) {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": { "Arn": TASK_ARN, "Code": code, "Message": message } })),
    )
}

/// The request as the agent validates it: a JSON object with a boolean
/// ProtectionEnabled, an optional integer ExpiresInMinutes in range, and
/// nothing else.
fn parse(body: &[u8]) -> Result<(bool, Option<u64>), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = v.as_object().ok_or("the body is not a JSON object")?;
    if let Some(k) = obj
        .keys()
        .find(|k| *k != "ProtectionEnabled" && *k != "ExpiresInMinutes")
    {
        return Err(format!("unknown field {k:?}"));
    }
    let enabled = obj
        .get("ProtectionEnabled")
        .and_then(Value::as_bool)
        .ok_or("ProtectionEnabled is required and must be a boolean")?;
    let minutes = match obj.get("ExpiresInMinutes") {
        None => None,
        Some(m) => Some(
            m.as_u64()
                .filter(|m| (1..=MAX_MINUTES).contains(m))
                .ok_or("ExpiresInMinutes must be an integer from 1 to 2880")?,
        ),
    };
    Ok((enabled, minutes))
}

async fn update(
    State(inner): State<Arc<Inner>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, axum::Json<Value>) {
    let json_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let parsed = if json_type {
        parse(&body)
    } else {
        Err("Content-Type must be application/json".into())
    };
    let (enabled, minutes) = match parsed {
        Ok(p) => p,
        Err(e) => return error("InvalidParameterException", &e),
    };
    let refused = inner.refuse.load(Ordering::SeqCst);
    let stalled = inner.stall.load(Ordering::SeqCst);
    inner.calls.lock().unwrap().push(ProtectionCall {
        enabled,
        expires_in_minutes: minutes,
        accepted: !refused && !stalled,
        at: Instant::now(),
    });
    if stalled {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    if refused {
        // What the agent relays when ECS denies UpdateTaskProtection.
        return (
            StatusCode::OK,
            axum::Json(
                json!({ "failure": { "Arn": TASK_ARN, "Reason": "AccessDeniedException", "Detail": "not authorized to perform ecs:UpdateTaskProtection" } }),
            ),
        );
    }
    let until = enabled
        .then(|| Instant::now() + Duration::from_secs(60 * minutes.unwrap_or(DEFAULT_MINUTES)));
    *inner.protected_until.lock().unwrap() = until;
    (StatusCode::OK, axum::Json(state_json(enabled, minutes)))
}

fn state_json(enabled: bool, minutes: Option<u64>) -> Value {
    let expiration = enabled.then(|| {
        let at = time::OffsetDateTime::now_utc()
            + time::Duration::minutes(minutes.unwrap_or(DEFAULT_MINUTES) as i64);
        at.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    });
    json!({ "protection": { "ExpirationDate": expiration, "ProtectionEnabled": enabled, "TaskArn": TASK_ARN } })
}

async fn current(State(inner): State<Arc<Inner>>) -> axum::Json<Value> {
    let protected = inner
        .protected_until
        .lock()
        .unwrap()
        .is_some_and(|t| t > Instant::now());
    axum::Json(state_json(protected, None))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn validates_like_the_agent() {
        assert_eq!(parse(br#"{"ProtectionEnabled":true}"#), Ok((true, None)));
        assert_eq!(
            parse(br#"{"ProtectionEnabled":true,"ExpiresInMinutes":56}"#),
            Ok((true, Some(56)))
        );
        for bad in [
            &br#"{}"#[..],
            br#"{"ProtectionEnabled":"true"}"#,
            br#"{"ProtectionEnabled":true,"ExpiresInMinutes":0}"#,
            br#"{"ProtectionEnabled":true,"ExpiresInMinutes":2881}"#,
            br#"{"protectionEnabled":true}"#,
            b"[]",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
