//! ECS task scale-in protection while jobs are in flight (DESIGN.md,
//! Operations).
//!
//! A scan can take longer than the 120 s Fargate allows between SIGTERM
//! and SIGKILL, so scale-in and rolling deployments must not pick a busy
//! worker. The ECS agent endpoint does it for the task it serves (Amazon
//! ECS developer guide, "Amazon ECS task scale-in protection endpoint"):
//! `PUT $ECS_AGENT_URI/task-protection/v1/state` with
//! `{"ProtectionEnabled":true,"ExpiresInMinutes":N}` protects the task for N
//! minutes (1 to 2880), `{"ProtectionEnabled":false}` releases it. The task
//! role needs `ecs:UpdateTaskProtection`; the CDK grants it.
//!
//! Every job start (re)sets protection, so the expiry always covers the
//! newest job's deadline; the last job to finish clears it. The calls are
//! made by one background task, in order, always sending the newest wanted
//! state (states that changed again during a call are skipped): a job never
//! waits on the agent, and a release never overtakes a newer protection.
//! The SIGTERM drain stays as the fallback: a failed call is logged and
//! never fails a job, and without ECS_AGENT_URI (not on ECS) no call is made.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

/// What the agent accepts for ExpiresInMinutes.
const MAX_MINUTES: u64 = 2880;
/// One call to the agent, a local endpoint; a stalled one is given up.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The agent's answer is small; a larger one is not read.
const MAX_ANSWER: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ProtectionError {
    #[error("ECS_AGENT_URI {0:?} is not an http(s) URL")]
    BadUri(String),
    #[error("cannot build the HTTP client for the ECS agent: {0}")]
    Client(String),
    #[error("the ECS agent did not answer: {0}")]
    Request(String),
    #[error("the ECS agent answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the ECS agent refused: {0}")]
    Refused(String),
}

struct Agent {
    url: String,
    client: reqwest::Client,
    expires_minutes: u64,
}

/// The state the task should be in. `generation` changes on every job
/// start, so a renewal is a change even while already protected.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Wanted {
    generation: u64,
    enabled: bool,
    in_flight: u32,
}

/// Scale-in protection of this task; a no-op off ECS.
pub struct TaskProtection {
    wanted: Option<watch::Sender<Wanted>>,
    in_flight: Mutex<u32>,
}

impl TaskProtection {
    /// `agent_uri` is `$ECS_AGENT_URI`; `covers` the longest a job may hold
    /// its slot (its deadline and the time its result is retried). With an
    /// agent, starts the task that calls it (so: inside a Tokio runtime).
    pub fn new(agent_uri: Option<&str>, covers: Duration) -> Result<Self, ProtectionError> {
        let wanted = match agent_uri.map(str::trim).filter(|u| !u.is_empty()) {
            None => None,
            Some(uri) => {
                let agent = Agent::new(uri, expires_minutes(covers))?;
                let (tx, rx) = watch::channel(Wanted::default());
                tokio::spawn(agent.follow(rx));
                Some(tx)
            }
        };
        Ok(TaskProtection {
            wanted,
            in_flight: Mutex::new(0),
        })
    }

    pub fn enabled(&self) -> bool {
        self.wanted.is_some()
    }

    /// A job was acknowledged: protect the task for the job's whole time.
    pub fn job_started(&self) {
        let mut n = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        *n += 1;
        self.want(true, *n);
    }

    /// A job's result was sent (or left pending): release the task once no
    /// job is in flight.
    pub fn job_finished(&self) {
        let mut n = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.want(false, 0);
        }
    }

    fn want(&self, enabled: bool, in_flight: u32) {
        if let Some(tx) = &self.wanted {
            tx.send_modify(|w| {
                w.generation += 1;
                w.enabled = enabled;
                w.in_flight = in_flight;
            });
        }
    }
}

impl Agent {
    fn new(uri: &str, expires_minutes: u64) -> Result<Agent, ProtectionError> {
        if !(uri.starts_with("http://") || uri.starts_with("https://")) {
            return Err(ProtectionError::BadUri(uri.to_owned()));
        }
        let client = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            // the agent is link-local: never through a proxy, never elsewhere
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ProtectionError::Client(e.to_string()))?;
        Ok(Agent {
            url: format!("{}/task-protection/v1/state", uri.trim_end_matches('/')),
            client,
            expires_minutes,
        })
    }

    /// Sends each newest wanted state until the worker drops its sender.
    async fn follow(self, mut rx: watch::Receiver<Wanted>) {
        while rx.changed().await.is_ok() {
            let w = *rx.borrow_and_update();
            match self.put(w.enabled).await {
                Ok(()) if w.enabled => tracing::info!(
                    in_flight = w.in_flight,
                    expires_in_minutes = self.expires_minutes,
                    "task scale-in protection set"
                ),
                Ok(()) => tracing::info!("task scale-in protection cleared"),
                Err(e) => tracing::warn!(
                    error = %e,
                    protection = w.enabled,
                    "could not change the task's scale-in protection; the SIGTERM drain remains"
                ),
            }
        }
    }

    async fn put(&self, enabled: bool) -> Result<(), ProtectionError> {
        let body = if enabled {
            serde_json::json!({ "ProtectionEnabled": true, "ExpiresInMinutes": self.expires_minutes })
        } else {
            serde_json::json!({ "ProtectionEnabled": false })
        };
        let resp = self
            .client
            .put(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(|e| ProtectionError::Request(e.to_string()))?;
        let status = resp.status();
        let text = read_bounded(resp).await;
        if !status.is_success() {
            return Err(ProtectionError::Status {
                status: status.as_u16(),
                body: crate::util::truncate_chars(&text, 300),
            });
        }
        refusal(&text).map_or(Ok(()), |r| Err(ProtectionError::Refused(r)))
    }
}

/// The agent answers 200 with `{"protection":{...}}`, or with a `failure`
/// or `error` object when ECS refused (e.g. the task role lacks the right).
fn refusal(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    ["failure", "error"]
        .iter()
        .find_map(|k| v.get(*k).filter(|x| !x.is_null()))
        .map(|x| crate::util::truncate_chars(&x.to_string(), 300))
}

async fn read_bounded(mut resp: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = MAX_ANSWER - buf.len();
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= MAX_ANSWER {
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Whole minutes covering `d`, plus one for the calls around it, within
/// what the agent accepts.
fn expires_minutes(d: Duration) -> u64 {
    (d.as_secs().div_ceil(60) + 1).clamp(1, MAX_MINUTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_covers_the_job_within_the_agent_limits() {
        // the defaults: 45 min deadline + 10 min result retries
        assert_eq!(expires_minutes(Duration::from_secs(55 * 60)), 56);
        assert_eq!(expires_minutes(Duration::from_secs(61)), 3);
        assert_eq!(expires_minutes(Duration::ZERO), 1);
        assert_eq!(expires_minutes(Duration::from_secs(90 * 3600)), 2880);
    }

    #[test]
    fn refusals_are_recognised() {
        assert_eq!(
            refusal(r#"{"protection":{"ProtectionEnabled":true,"TaskArn":"arn"}}"#),
            None
        );
        assert!(
            refusal(r#"{"failure":{"Arn":"arn","Reason":"TASK_NOT_VALID"}}"#)
                .unwrap()
                .contains("TASK_NOT_VALID")
        );
        assert!(
            refusal(r#"{"error":{"Code":"AccessDeniedException","Message":"no"}}"#)
                .unwrap()
                .contains("AccessDenied")
        );
        assert_eq!(refusal("not json"), None);
    }

    #[tokio::test]
    async fn no_agent_no_calls_and_a_bad_uri_is_refused() {
        let p = TaskProtection::new(None, Duration::from_secs(60)).unwrap();
        assert!(!p.enabled());
        p.job_started();
        p.job_finished();
        assert!(matches!(
            TaskProtection::new(Some("file:///etc/passwd"), Duration::from_secs(60)),
            Err(ProtectionError::BadUri(_))
        ));
    }
}
