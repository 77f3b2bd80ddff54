//! The worker's figures as CloudWatch embedded-metric-format (EMF) lines on
//! stdout and as Prometheus text on `/metrics` (DESIGN.md, Operations).
//!
//! EMF, because on ECS stdout goes to CloudWatch Logs, which turns each
//! line that carries an `_aws` metadata object into metric values: no
//! CloudWatch API calls, no extra IAM, nothing to batch or retry. The
//! format (CloudWatch user guide, "Specification: Embedded metric format"):
//!
//! - the root is one JSON object on one line, with `_aws` holding
//!   `Timestamp` (milliseconds since the epoch) and `CloudWatchMetrics`, an
//!   array of directives;
//! - a directive has `Namespace`, `Dimensions` (an array of dimension sets,
//!   each an array of root member names whose values are strings) and
//!   `Metrics` (at most 100 definitions of `Name` and an optional `Unit`);
//! - every referenced name is a root member: metric values are numbers,
//!   dimension values strings; other root members are kept as log fields.
//!
//! Two kinds of line: a gauge line every interval (60 s), whose slot figures
//! drive the service's target tracking and whose `PollErrors` drives the
//! "no successful poll" alarm; and a job line when a job ends, which is also
//! the job's log record that the operator's Logs Insights queries read
//! (`job_id`, `pipeline`, `verdict`, `failure_type`, `duration_seconds`, …).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

/// The CloudWatch namespace; the CDK's alarms and scaling read it.
pub const NAMESPACE: &str = "ScanGate";
/// The `Service` dimension when SCANGATE_METRICS_SERVICE is not set.
pub const DEFAULT_SERVICE: &str = "scangate";
/// CloudWatch's limit on a dimension value.
const MAX_DIMENSION_VALUE: usize = 1024;
/// Free-text fields of a job line (image references come from the input
/// artifact) are cut to this: a log event must stay far below 256 KB.
const MAX_FIELD: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(
        "SCANGATE_METRICS_SERVICE {0:?} is not a CloudWatch dimension value: 1 to 1024 printable ASCII characters, not only spaces"
    )]
    BadService(String),
}

/// Checks SCANGATE_METRICS_SERVICE: CloudWatch drops a whole EMF event whose
/// dimension value it rejects, which would silently stop scaling and alarms.
pub fn parse_service(s: &str) -> Result<String, MetricsError> {
    let ok = !s.trim().is_empty()
        && s.len() <= MAX_DIMENSION_VALUE
        && s.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(MetricsError::BadService(s.to_owned()))
    }
}

/// The worker-wide figures at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gauges {
    pub slots: u32,
    /// The most jobs in flight at once since the last gauge line: a job
    /// shorter than the interval still shows as a busy slot.
    pub slots_busy: u32,
    /// Since its poll, of the oldest job in flight; 0 when idle.
    pub oldest_job_age: Duration,
    /// Failed polls since the last gauge line.
    pub poll_errors: u64,
}

/// A finished job, as its job line reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobEnd {
    pub job_id: String,
    pub pipeline: String,
    pub stage: String,
    pub action: String,
    pub execution_id: String,
    pub image: Option<String>,
    pub digest: Option<String>,
    /// The policy's verdict, PASS or FAIL, when the scan reached one.
    pub verdict: Option<String>,
    /// The `Result` dimension: PASS, FAIL or the failure type.
    pub result: String,
    /// CodePipeline's failure type when the job failed (FAIL is JobFailed).
    pub failure_type: Option<String>,
    pub duration: Duration,
}

fn timestamp_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn directive(dimensions: Value, metrics: &[(&str, &str)]) -> Value {
    json!({
        "Namespace": NAMESPACE,
        "Dimensions": dimensions,
        "Metrics": metrics
            .iter()
            .map(|(name, unit)| json!({ "Name": name, "Unit": unit }))
            .collect::<Vec<_>>(),
    })
}

/// The gauge line.
pub fn gauges_line(service: &str, at_ms: u64, g: &Gauges) -> String {
    let line = json!({
        "_aws": {
            "Timestamp": at_ms,
            "CloudWatchMetrics": [directive(
                json!([["Service"]]),
                &[
                    ("SlotsBusy", "Count"),
                    ("Slots", "Count"),
                    ("OldestJobAgeSeconds", "Seconds"),
                    ("PollErrors", "Count"),
                ],
            )],
        },
        "Service": service,
        "SlotsBusy": g.slots_busy,
        "Slots": g.slots,
        "OldestJobAgeSeconds": g.oldest_job_age.as_secs(),
        "PollErrors": g.poll_errors,
        "event": "worker_metrics",
    });
    line.to_string()
}

fn cut(s: &str) -> String {
    crate::util::truncate_chars(s, MAX_FIELD)
}

/// The job line: `JobsCompleted` and `JobDurationSeconds` by `Service` and
/// by `Service` + `Result`, and the job's fields for Logs Insights.
pub fn job_line(service: &str, at_ms: u64, j: &JobEnd) -> String {
    let mut line = json!({
        "_aws": {
            "Timestamp": at_ms,
            "CloudWatchMetrics": [directive(
                json!([["Service", "Result"], ["Service"]]),
                &[("JobsCompleted", "Count"), ("JobDurationSeconds", "Seconds")],
            )],
        },
        "Service": service,
        "Result": j.result,
        "JobsCompleted": 1,
        "JobDurationSeconds": round_ms(j.duration),
        "event": "job_finished",
        "job_id": cut(&j.job_id),
        "pipeline": cut(&j.pipeline),
        "stage": cut(&j.stage),
        "action": cut(&j.action),
        "execution_id": cut(&j.execution_id),
        "result": j.result,
        "duration_seconds": round_ms(j.duration),
    });
    let obj = line.as_object_mut().expect("a JSON object");
    // Absent rather than empty, so `ispresent()` in a query means something.
    let optional = [
        ("image", &j.image),
        ("digest", &j.digest),
        ("verdict", &j.verdict),
        ("failure_type", &j.failure_type),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            obj.insert(k.into(), Value::String(cut(v)));
        }
    }
    line.to_string()
}

fn round_ms(d: Duration) -> f64 {
    (d.as_millis() as f64) / 1000.0
}

/// Writes EMF lines, each whole, to stdout (or, in tests, a buffer).
pub struct Emitter {
    service: String,
    out: Mutex<Box<dyn std::io::Write + Send>>,
}

impl Emitter {
    pub fn stdout(service: String) -> Emitter {
        Emitter {
            service,
            out: Mutex::new(Box::new(std::io::stdout())),
        }
    }

    /// Discards the lines (a worker inside `scangate demo`).
    pub fn discard(service: String) -> Emitter {
        Emitter {
            service,
            out: Mutex::new(Box::new(std::io::sink())),
        }
    }

    #[cfg(test)]
    pub(crate) fn to(service: &str, out: Box<dyn std::io::Write + Send>) -> Emitter {
        Emitter {
            service: service.to_owned(),
            out: Mutex::new(out),
        }
    }

    pub fn gauges(&self, g: &Gauges) {
        self.write(gauges_line(&self.service, timestamp_ms(), g));
    }

    pub fn job(&self, j: &JobEnd) {
        self.write(job_line(&self.service, timestamp_ms(), j));
    }

    /// One `write_all` of line and newline under the lock: lines from
    /// concurrent jobs never interleave. A closed stdout loses metrics, not
    /// the job.
    fn write(&self, mut line: String) {
        line.push('\n');
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
            tracing::debug!(error = %e, "could not write an EMF line");
        }
    }
}

/// Counters and sums since the start, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub slots: u32,
    pub slots_busy: u32,
    pub oldest_job_age: Duration,
    pub polls: u64,
    pub poll_errors: u64,
    pub consecutive_poll_failures: u32,
    /// By `Result` (PASS, FAIL, failure type).
    pub completed: BTreeMap<String, u64>,
    pub duration_sum: Duration,
    pub duration_count: u64,
}

/// `/metrics`: the EMF figures in Prometheus text format 0.0.4. The older
/// names (`scangate_jobs_in_flight`, `scangate_jobs_total`, …) stay for
/// scrapers already using them.
pub fn prometheus(t: &Totals) -> String {
    let mut s = String::new();
    let mut gauge = |name: &str, help: &str, v: String| {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    };
    gauge(
        "scangate_slots",
        "Jobs this worker runs at once (Slots)",
        t.slots.to_string(),
    );
    gauge(
        "scangate_slots_busy",
        "Jobs in flight now (SlotsBusy)",
        t.slots_busy.to_string(),
    );
    gauge(
        "scangate_oldest_job_age_seconds",
        "Age of the oldest job in flight (OldestJobAgeSeconds)",
        t.oldest_job_age.as_secs().to_string(),
    );
    gauge(
        "scangate_consecutive_poll_failures",
        "Failed polls since the last successful one (/healthz fails at 3)",
        t.consecutive_poll_failures.to_string(),
    );
    gauge(
        "scangate_jobs_in_flight",
        "Jobs in flight now",
        t.slots_busy.to_string(),
    );
    gauge(
        "scangate_concurrency",
        "SCANGATE_CONCURRENCY",
        t.slots.to_string(),
    );
    let mut counter = |name: &str, help: &str, v: u64| {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
    };
    counter("scangate_polls_total", "Successful polls", t.polls);
    counter(
        "scangate_poll_errors_total",
        "Failed polls (PollErrors)",
        t.poll_errors,
    );
    let _ = writeln!(
        s,
        "# HELP scangate_jobs_completed_total Finished jobs by result (JobsCompleted)\n# TYPE scangate_jobs_completed_total counter"
    );
    for (result, n) in &t.completed {
        let _ = writeln!(
            s,
            "scangate_jobs_completed_total{{result=\"{result}\"}} {n}"
        );
    }
    let _ = writeln!(
        s,
        "# HELP scangate_job_duration_seconds Job duration from poll to result (JobDurationSeconds)\n# TYPE scangate_job_duration_seconds summary\nscangate_job_duration_seconds_sum {}\nscangate_job_duration_seconds_count {}",
        round_ms(t.duration_sum),
        t.duration_count
    );
    let _ = writeln!(s, "# TYPE scangate_jobs_total counter");
    let passed = t.completed.get("PASS").copied().unwrap_or(0);
    let _ = writeln!(s, "scangate_jobs_total{{result=\"success\"}} {passed}");
    // A policy FAIL is CodePipeline's JobFailed: one series for both.
    let mut failed: BTreeMap<&str, u64> = BTreeMap::new();
    for (result, n) in t.completed.iter().filter(|(r, _)| *r != "PASS") {
        let kind = if result == "FAIL" {
            "JobFailed"
        } else {
            result
        };
        *failed.entry(kind).or_default() += n;
    }
    for (kind, n) in failed {
        let _ = writeln!(
            s,
            "scangate_jobs_total{{result=\"failure\",failure_type=\"{kind}\"}} {n}"
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn sample_job() -> JobEnd {
        JobEnd {
            job_id: "j-1".into(),
            pipeline: "app".into(),
            stage: "Scan".into(),
            action: "Gate".into(),
            execution_id: "e-1".into(),
            image: Some("registry.example/app:1".into()),
            digest: None,
            verdict: Some("FAIL".into()),
            result: "FAIL".into(),
            failure_type: Some("JobFailed".into()),
            duration: Duration::from_millis(12_345),
        }
    }

    #[test]
    fn gauge_line_is_one_emf_document() {
        let g = Gauges {
            slots: 2,
            slots_busy: 1,
            oldest_job_age: Duration::from_secs(75),
            poll_errors: 3,
        };
        let line = gauges_line("gate", 1_700_000_000_123, &g);
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_123u64);
        let d = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(d["Namespace"], "ScanGate");
        assert_eq!(d["Dimensions"], json!([["Service"]]));
        let names: Vec<&str> = d["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["SlotsBusy", "Slots", "OldestJobAgeSeconds", "PollErrors"]
        );
        assert_eq!(v["Service"], "gate");
        assert_eq!(v["SlotsBusy"], 1);
        assert_eq!(v["Slots"], 2);
        assert_eq!(v["OldestJobAgeSeconds"], 75);
        assert_eq!(v["PollErrors"], 3);
    }

    #[test]
    fn job_line_carries_metrics_and_query_fields() {
        let v: Value = serde_json::from_str(&job_line("gate", 1, &sample_job())).unwrap();
        let d = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(d["Dimensions"], json!([["Service", "Result"], ["Service"]]));
        assert_eq!(v["Result"], "FAIL");
        assert_eq!(v["JobsCompleted"], 1);
        assert_eq!(v["JobDurationSeconds"], 12.345);
        for f in ["job_id", "pipeline", "verdict", "failure_type", "image"] {
            assert!(v[f].is_string(), "{f} in {v}");
        }
        assert_eq!(v["duration_seconds"], 12.345);
        // absent, not empty
        assert!(v.get("digest").is_none());
        let mut pass = sample_job();
        pass.failure_type = None;
        let v: Value = serde_json::from_str(&job_line("gate", 1, &pass)).unwrap();
        assert!(v.get("failure_type").is_none());
    }

    #[test]
    fn hostile_job_fields_stay_one_bounded_line() {
        let mut j = sample_job();
        j.image = Some(format!("evil\n{{\"_aws\":1}}\u{0}{}", "x".repeat(1 << 20)));
        j.pipeline = "p\r\n\"Result\":\"PASS\"".into();
        let line = job_line("gate", 1, &j);
        assert!(!line.contains('\n') && !line.contains('\r'));
        assert!(line.len() < 8 * 1024, "{}", line.len());
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["Result"], "FAIL");
        assert_eq!(v["pipeline"], "p\r\n\"Result\":\"PASS\"");
    }

    #[test]
    fn service_must_be_a_dimension_value() {
        assert_eq!(parse_service("ScanGate").unwrap(), "ScanGate");
        for bad in ["", "   ", "caf\u{e9}", "a\nb", &"x".repeat(1025)] {
            assert!(parse_service(bad).is_err(), "{bad:?}");
        }
    }

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn concurrent_lines_never_interleave() {
        let buf = Buf::default();
        let e = Arc::new(Emitter::to("gate", Box::new(buf.clone())));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let e = e.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let mut j = sample_job();
                        j.job_id = format!("job-{i}-{}", "y".repeat(500));
                        e.job(&j);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 400);
        for l in lines {
            serde_json::from_str::<Value>(l).unwrap();
        }
    }

    #[test]
    fn prometheus_text_has_the_same_figures() {
        let t = Totals {
            slots: 2,
            slots_busy: 1,
            oldest_job_age: Duration::from_secs(9),
            polls: 10,
            poll_errors: 4,
            consecutive_poll_failures: 0,
            completed: [
                ("PASS".to_string(), 3),
                ("FAIL".to_string(), 1),
                ("JobFailed".to_string(), 2),
            ]
            .into_iter()
            .collect(),
            duration_sum: Duration::from_millis(4500),
            duration_count: 4,
        };
        let p = prometheus(&t);
        for want in [
            "scangate_slots 2",
            "scangate_slots_busy 1",
            "scangate_oldest_job_age_seconds 9",
            "scangate_poll_errors_total 4",
            "scangate_jobs_completed_total{result=\"PASS\"} 3",
            "scangate_jobs_completed_total{result=\"FAIL\"} 1",
            "scangate_job_duration_seconds_sum 4.5",
            "scangate_job_duration_seconds_count 4",
            "scangate_jobs_total{result=\"success\"} 3",
            "scangate_jobs_total{result=\"failure\",failure_type=\"JobFailed\"} 3",
        ] {
            assert!(p.lines().any(|l| l == want), "{want} missing in\n{p}");
        }
        // every series once: a duplicate makes the whole scrape invalid
        let series: Vec<&str> = p
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.rsplit_once(' ').unwrap().0)
            .collect();
        let unique: std::collections::BTreeSet<&str> = series.iter().copied().collect();
        assert_eq!(unique.len(), series.len(), "{p}");
    }
}
