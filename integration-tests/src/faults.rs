//! Fault injection for the emulators.
//!
//! A rule list decides, call by call, whether an operation is delayed,
//! throttled, failed, refused or dropped, or its answer padded or trickled.
//! Rules are checked in order; delay, pad and trickle rules add up, and the first other rule that fires decides the outcome, so
//! "delay every call and throttle the next two" is two rules.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// What a rule does to a call it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// CodePipeline: 400 `ThrottlingException`; Inspector: 429 with `Retry-After: 1`.
    Throttle,
    /// CodePipeline: 500 `InternalFailure`; Inspector: 500 `InternalServerException`.
    Error5xx,
    /// Answer normally, `ms` milliseconds later.
    Delay { ms: u64 },
    /// Close the connection without an answer, as a lost response looks to a client.
    Drop,
    /// CodePipeline: carry the call out, then close the connection without
    /// the answer (it took effect, the client cannot know). Inspector: as `Drop`.
    DropAnswer,
    /// CodePipeline: 400 `AccessDeniedException`; Inspector: 403 `AccessDeniedException`.
    AccessDenied,
    /// Inspector: answer normally, but padded to at least `bytes` (a long
    /// property in the answer's SBOM) and sent chunked, without a length,
    /// as a very large real answer could be. CodePipeline: no effect.
    Pad { bytes: u64 },
    /// Inspector: answer normally, but trickle the body out over `ms`
    /// milliseconds (a slow link). CodePipeline: no effect.
    Trickle { ms: u64 },
}

/// One fault rule. JSON: `{"operation":"ScanSbom","kind":"throttle","count":2}`,
/// `{"operation":"*","kind":"delay","ms":300,"probability":0.5}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    /// Operation name (`PollForJobs`, `ScanSbom`, …, case-insensitive) or `*`.
    pub operation: String,
    #[serde(flatten)]
    pub kind: FaultKind,
    /// Apply to the next `count` matching calls only (with `probability`, to
    /// the next `count` calls on which it fires).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Fire on each matching call with this probability (0.0–1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
}

impl FaultRule {
    /// A rule that applies to every matching call until replaced.
    pub fn new(operation: impl Into<String>, kind: FaultKind) -> Self {
        FaultRule {
            operation: operation.into(),
            kind,
            count: None,
            probability: None,
        }
    }

    /// Limit the rule to the next `n` matching calls.
    pub fn times(mut self, n: u32) -> Self {
        self.count = Some(n);
        self
    }

    /// Fire with probability `p` on each matching call.
    pub fn with_probability(mut self, p: f64) -> Self {
        self.probability = Some(p);
        self
    }

    fn matches(&self, operation: &str) -> bool {
        self.operation == "*" || self.operation.eq_ignore_ascii_case(operation)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    #[error("fault rule {index}: operation must not be empty")]
    EmptyOperation { index: usize },
    #[error("fault rule {index}: probability {probability} is not within 0.0..=1.0")]
    InvalidProbability { index: usize, probability: f64 },
}

/// A rule as currently held, with how often it fired and what is left of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultRuleState {
    #[serde(flatten)]
    pub rule: FaultRule,
    /// Calls it will still apply to; `None` when unlimited.
    pub remaining: Option<u32>,
    pub fired: u64,
}

/// The outcome of the rules for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultDecision {
    pub delay: Duration,
    /// Inspector: pad the answer to at least this many bytes (0: no).
    pub pad: u64,
    /// Inspector: send the answer's body over this long.
    pub trickle: Duration,
    pub action: Option<FaultAction>,
}

/// The non-delay outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    Throttle,
    Error5xx,
    Drop,
    DropAnswer,
    AccessDenied,
}

impl FaultAction {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultAction::Throttle => "throttle",
            FaultAction::Error5xx => "error5xx",
            FaultAction::Drop => "drop",
            FaultAction::DropAnswer => "drop_answer",
            FaultAction::AccessDenied => "access_denied",
        }
    }
}

/// A shared, mutable rule list. Cloning shares the list.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    rules: Arc<Mutex<Vec<FaultRuleState>>>,
}

impl Faults {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<FaultRuleState>> {
        // A panic while holding this lock cannot leave the list half-written
        // (every update is a single assignment), so a poisoned lock is usable.
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replace all rules.
    pub fn set(&self, rules: Vec<FaultRule>) -> Result<(), FaultError> {
        let states = rules
            .into_iter()
            .enumerate()
            .map(|(index, rule)| validate(index, rule))
            .collect::<Result<Vec<_>, _>>()?;
        *self.lock() = states;
        Ok(())
    }

    /// Append one rule after the existing ones.
    pub fn add(&self, rule: FaultRule) -> Result<(), FaultError> {
        let mut rules = self.lock();
        let state = validate(rules.len(), rule)?;
        rules.push(state);
        Ok(())
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    pub fn rules(&self) -> Vec<FaultRuleState> {
        self.lock().clone()
    }

    /// Decide the fate of one call to `operation`, consuming counted rules.
    pub fn decide(&self, operation: &str) -> FaultDecision {
        let mut decision = FaultDecision::default();
        let mut rules = self.lock();
        for state in rules.iter_mut() {
            if !state.rule.matches(operation) || state.remaining == Some(0) {
                continue;
            }
            if let Some(p) = state.rule.probability
                && rand::random::<f64>() >= p
            {
                continue;
            }
            if let Some(left) = state.remaining.as_mut() {
                *left -= 1;
            }
            state.fired += 1;
            let action = match state.rule.kind {
                FaultKind::Delay { ms } => {
                    decision.delay += Duration::from_millis(ms);
                    continue;
                }
                FaultKind::Pad { bytes } => {
                    decision.pad = decision.pad.max(bytes);
                    continue;
                }
                FaultKind::Trickle { ms } => {
                    decision.trickle += Duration::from_millis(ms);
                    continue;
                }
                FaultKind::Throttle => FaultAction::Throttle,
                FaultKind::Error5xx => FaultAction::Error5xx,
                FaultKind::Drop => FaultAction::Drop,
                FaultKind::DropAnswer => FaultAction::DropAnswer,
                FaultKind::AccessDenied => FaultAction::AccessDenied,
            };
            decision.action = Some(action);
            break;
        }
        decision
    }

    /// `GET|PUT|POST|DELETE /` on a router to be nested at `/admin/faults`.
    pub fn admin_router(&self) -> Router {
        Router::new()
            .route(
                "/",
                get(list_rules)
                    .put(replace_rules)
                    .post(add_rule)
                    .delete(clear_rules),
            )
            .with_state(self.clone())
    }
}

fn validate(index: usize, rule: FaultRule) -> Result<FaultRuleState, FaultError> {
    if rule.operation.trim().is_empty() {
        return Err(FaultError::EmptyOperation { index });
    }
    if let Some(p) = rule.probability
        && !(0.0..=1.0).contains(&p)
    {
        return Err(FaultError::InvalidProbability {
            index,
            probability: p,
        });
    }
    Ok(FaultRuleState {
        remaining: rule.count,
        rule,
        fired: 0,
    })
}

async fn list_rules(State(faults): State<Faults>) -> Json<Vec<FaultRuleState>> {
    Json(faults.rules())
}

async fn replace_rules(
    State(faults): State<Faults>,
    Json(rules): Json<Vec<FaultRule>>,
) -> Response {
    match faults.set(rules) {
        Ok(()) => Json(faults.rules()).into_response(),
        Err(e) => bad_request(e),
    }
}

async fn add_rule(State(faults): State<Faults>, Json(rule): Json<FaultRule>) -> Response {
    match faults.add(rule) {
        Ok(()) => (StatusCode::CREATED, Json(faults.rules())).into_response(),
        Err(e) => bad_request(e),
    }
}

async fn clear_rules(State(faults): State<Faults>) -> StatusCode {
    faults.clear();
    StatusCode::NO_CONTENT
}

fn bad_request(e: FaultError) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "message": e.to_string() })),
    )
        .into_response()
}

/// Lets a handler close its own connection without answering. The serving
/// loop puts one into each request's extensions.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectionAbort(pub(crate) Arc<Notify>);

/// Never returns: asks the serving loop to close the connection, then waits
/// to be dropped with it. Without a serving loop that honours it (a router
/// served some other way), the client simply waits until its own timeout.
pub(crate) async fn abort_connection(abort: Option<ConnectionAbort>) -> Response {
    if let Some(abort) = abort {
        abort.0.notify_one();
    }
    std::future::pending::<Response>().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_rules_run_out_and_delays_add_up() {
        let faults = Faults::new();
        faults
            .set(vec![
                FaultRule::new("*", FaultKind::Delay { ms: 5 }),
                FaultRule::new("scansbom", FaultKind::Throttle).times(2),
            ])
            .unwrap();
        for _ in 0..2 {
            let d = faults.decide("ScanSbom");
            assert_eq!(d.delay, Duration::from_millis(5));
            assert_eq!(d.action, Some(FaultAction::Throttle));
        }
        assert_eq!(faults.decide("ScanSbom").action, None);
        assert_eq!(faults.decide("PollForJobs").action, None);
        assert_eq!(faults.rules()[1].remaining, Some(0));
        assert_eq!(faults.rules()[1].fired, 2);
    }

    #[test]
    fn rules_round_trip_as_json() {
        let json = r#"[{"operation":"ScanSbom","kind":"throttle","count":2},
                       {"operation":"*","kind":"delay","ms":300,"probability":0.5}]"#;
        let rules: Vec<FaultRule> = serde_json::from_str(json).unwrap();
        assert_eq!(
            rules[0],
            FaultRule::new("ScanSbom", FaultKind::Throttle).times(2)
        );
        assert_eq!(
            rules[1],
            FaultRule::new("*", FaultKind::Delay { ms: 300 }).with_probability(0.5)
        );
        let back = serde_json::to_value(&rules[1]).unwrap();
        assert_eq!(back["kind"], "delay");
        assert_eq!(back["ms"], 300);
    }

    #[test]
    fn bad_probability_is_refused() {
        let faults = Faults::new();
        let err = faults
            .add(FaultRule::new("*", FaultKind::Drop).with_probability(1.5))
            .unwrap_err();
        assert!(matches!(err, FaultError::InvalidProbability { .. }));
        assert!(faults.rules().is_empty());
    }
}
