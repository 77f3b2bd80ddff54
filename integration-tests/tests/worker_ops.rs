//! Operating the worker on AWS (DESIGN.md, Operations), end to end with the
//! real `scangate worker` binary, the CodePipeline and Inspector emulators,
//! the real `docker-registry` and an emulated ECS agent:
//!
//! - the CloudWatch EMF lines on stdout follow the EMF specification, carry
//!   every metric and dimension set `cdk/lib/operations.json` promises the
//!   stack, and the job lines carry every field its Logs Insights queries
//!   read;
//! - `/healthz` (and `scangate healthcheck`) fail after 3 consecutive failed
//!   polls and recover on the next successful one;
//! - ECS task scale-in protection is set while jobs are in flight and
//!   cleared when the worker is idle, and a refusing agent fails no job.

// the EMF schema is one json! literal, deeper than the default limit
#![recursion_limit = "256"]

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::codepipeline::{JobResult, JobSnapshot};
use integration_tests::corpus;
use integration_tests::ecs_agent::EcsAgent;
use integration_tests::faults::{FaultKind, FaultRule};
use serde_json::Value;
use support::{RunningWorker, Worker, WorkerEnv as Env};

/// The EMF lines among the worker's stdout, where its JSON logs are too
/// (DESIGN, Operations): every line must be one JSON object.
fn emf_lines(w: &RunningWorker) -> Vec<Value> {
    w.stdout()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("stdout line is not one JSON object ({e}): {l}"))
        })
        .filter(|l| l.get("_aws").is_some())
        .collect()
}

fn job_lines(w: &RunningWorker) -> Vec<Value> {
    emf_lines(w)
        .into_iter()
        .filter(|l| l["event"] == "job_finished")
        .collect()
}

/// A worker on the env's registry and reports directory, its stdout apart
/// (every line of it is parsed as JSON) and at the level an operator runs
/// it at (`info`: the lines checked are the ones CloudWatch gets).
fn worker(env: &Env) -> Worker {
    env.worker().rust_log("info").stdout_apart()
}

/// Amazon's SBOM of debian:latest as an image: the Inspector emulator
/// answers it with 0 critical, 1 high. Returns its reference.
async fn push_debian_fixture(env: &Env) -> String {
    env.push_debian_fixture("2024").await;
    env.registry.reference("fixture/debian:2024")
}

fn result_kind(s: &JobSnapshot) -> String {
    match &s.result {
        Some(JobResult::Success(_)) => "success".into(),
        Some(JobResult::Failure(f)) => format!("{:?}", f.failure_type),
        None => "none".into(),
    }
}

async fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------- EMF ----

/// The EMF document structure (CloudWatch user guide, "Specification:
/// Embedded metric format") as a JSON schema: `_aws` with a numeric
/// `Timestamp` and `CloudWatchMetrics` directives of `Namespace`,
/// `Dimensions` (sets of at most 30 names) and `Metrics` (at most 100
/// definitions of `Name`, optional `Unit` from CloudWatch's list and
/// `StorageResolution` 1 or 60); the spec's objects admit no other members.
fn emf_schema() -> Value {
    serde_json::json!({
        "type": "object",
        "required": ["_aws"],
        "properties": {
            "_aws": {
                "type": "object",
                "required": ["Timestamp", "CloudWatchMetrics"],
                "additionalProperties": false,
                "properties": {
                    "Timestamp": { "type": "integer", "minimum": 0 },
                    "CloudWatchMetrics": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["Namespace", "Dimensions", "Metrics"],
                            "additionalProperties": false,
                            "properties": {
                                "Namespace": { "type": "string", "minLength": 1, "maxLength": 1024 },
                                "Dimensions": {
                                    "type": "array",
                                    "items": {
                                        "type": "array",
                                        "maxItems": 30,
                                        "uniqueItems": true,
                                        "items": { "type": "string", "minLength": 1, "maxLength": 250 }
                                    }
                                },
                                "Metrics": {
                                    "type": "array",
                                    "maxItems": 100,
                                    "items": {
                                        "type": "object",
                                        "required": ["Name"],
                                        "additionalProperties": false,
                                        "properties": {
                                            "Name": { "type": "string", "minLength": 1, "maxLength": 1024 },
                                            "Unit": { "enum": [
                                                "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes",
                                                "Megabytes", "Gigabytes", "Terabytes", "Bits", "Kilobits",
                                                "Megabits", "Gigabits", "Terabits", "Percent", "Count",
                                                "Bytes/Second", "Kilobytes/Second", "Megabytes/Second",
                                                "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
                                                "Kilobits/Second", "Megabits/Second", "Gigabits/Second",
                                                "Terabits/Second", "Count/Second", "None"
                                            ] },
                                            "StorageResolution": { "enum": [1, 60] }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// The rules a schema cannot express: every referenced name is a root
/// member, a dimension's value a non-empty ASCII string of at most 1024
/// characters, a metric's value a number (or an array of at most 100), and
/// the timestamp recent (CloudWatch drops events older than two weeks or
/// more than two hours ahead).
fn check_emf_references(line: &Value) -> Result<(), String> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let ts = line["_aws"]["Timestamp"].as_i64().unwrap_or(0);
    if (now_ms - ts).abs() > 2 * 3600 * 1000 {
        return Err(format!("Timestamp {ts} is not now ({now_ms})"));
    }
    for d in line["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
        for set in d["Dimensions"].as_array().unwrap() {
            for name in set.as_array().unwrap() {
                let name = name.as_str().unwrap();
                match line.get(name) {
                    Some(Value::String(v))
                        if !v.trim().is_empty() && v.len() <= 1024 && v.is_ascii() => {}
                    other => return Err(format!("dimension {name} has value {other:?}")),
                }
            }
        }
        for m in d["Metrics"].as_array().unwrap() {
            let name = m["Name"].as_str().unwrap();
            match line.get(name) {
                Some(Value::Number(_)) => {}
                Some(Value::Array(a)) if a.len() <= 100 && a.iter().all(Value::is_number) => {}
                other => return Err(format!("metric {name} has value {other:?}")),
            }
        }
    }
    Ok(())
}

fn validate_emf(lines: &[Value]) {
    let schema = jsonschema::validator_for(&emf_schema()).expect("the EMF schema compiles");
    for l in lines.iter().filter(|l| l.get("_aws").is_some()) {
        let errors: Vec<String> = schema.iter_errors(l).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?} in {l}");
        check_emf_references(l).unwrap_or_else(|e| panic!("{e} in {l}"));
    }
}

/// `(metric, sorted dimension set)` pairs a set of EMF lines publishes.
fn published(lines: &[Value]) -> BTreeSet<(String, Vec<String>)> {
    let mut out = BTreeSet::new();
    for l in lines.iter().filter(|l| l.get("_aws").is_some()) {
        for d in l["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
            assert_eq!(d["Namespace"], "ScanGate");
            for set in d["Dimensions"].as_array().unwrap() {
                let mut dims: Vec<String> = set
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap().to_owned())
                    .collect();
                dims.sort();
                for m in d["Metrics"].as_array().unwrap() {
                    out.insert((m["Name"].as_str().unwrap().to_owned(), dims.clone()));
                }
            }
        }
    }
    out
}

fn operations_contract() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cdk/lib/operations.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// The log fields a Logs Insights query reads: its identifiers, less the
/// commands, operators and functions of the query language, `@` fields
/// (CloudWatch's own), quoted strings and the aliases it defines.
fn query_fields(query: &str) -> BTreeSet<String> {
    const WORDS: &[&str] = &[
        "fields", "filter", "stats", "sort", "limit", "by", "as", "desc", "asc", "and", "or",
        "not", "like", "in", "display", "parse", "dedup",
    ];
    let mut unquoted = String::new();
    let mut quote = None;
    for c in query.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) => unquoted.push(c),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    let tokens: Vec<(usize, &str)> = unquoted
        .match_indices(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '@' || c == '.'))
        .map(|(i, _)| i)
        .scan(0, |start, end| {
            let t = (*start, &unquoted[*start..end]);
            *start = end + 1;
            Some(t)
        })
        .filter(|(_, t)| !t.is_empty())
        .collect();
    let aliases: BTreeSet<&str> = tokens
        .windows(2)
        .filter(|w| w[0].1 == "as")
        .map(|w| w[1].1)
        .collect();
    for (at, t) in &tokens {
        let next = unquoted[at + t.len()..].trim_start().chars().next();
        let alias = aliases.contains(t);
        let number = t.chars().all(|c| c.is_ascii_digit());
        if t.starts_with('@') || WORDS.contains(t) || next == Some('(') || alias || number {
            continue;
        }
        out.insert((*t).to_owned());
    }
    out
}

#[test]
fn query_fields_are_the_identifiers() {
    let f = query_fields(
        "filter ispresent(failure_type) | stats count(*) as jobs by failure_type, pipeline | sort jobs desc",
    );
    assert_eq!(f, ["failure_type", "pipeline"].map(String::from).into());
    let f = query_fields(
        "fields @timestamp, image, job_id | filter event = \"job_finished\" | limit 20",
    );
    assert_eq!(f, ["event", "image", "job_id"].map(String::from).into());
}

/// A PASS, a policy FAIL and a ConfigurationError job: the worker's stdout
/// is valid EMF with the contract's metrics and dimension sets, the job
/// lines say JobsCompleted by Result, and carry the queries' fields.
#[tokio::test(flavor = "multi_thread")]
async fn emf_lines_follow_the_spec_and_the_stack_contract() {
    let env = Env::new().await;
    let image = push_debian_fixture(&env).await;
    let w = worker(&env)
        .envs(&[
            ("SCANGATE_METRICS_SERVICE", "TeamGate"),
            ("SCANGATE_METRICS_INTERVAL", "300ms"),
        ])
        .spawn();
    let pass = env.job(&[("ImageUrl", &image), ("HighThreshold", "1")]);
    let fail = env.job(&[("ImageUrl", &image), ("HighThreshold", "0")]);
    let config = env.job(&[("HighThreshold", "nonsense")]);
    for (id, want) in [
        (&pass, "success"),
        (&fail, "JobFailed"),
        (&config, "ConfigurationError"),
    ] {
        assert_eq!(result_kind(&env.result(id, &w).await), want, "{}", w.log());
    }
    // the job lines are written before the next poll; gauges keep coming
    wait_until(
        "three job lines and gauges after them",
        Duration::from_secs(10),
        || {
            let lines = emf_lines(&w);
            let jobs = lines
                .iter()
                .filter(|l| l["event"] == "job_finished")
                .count();
            let last_gauge = lines.iter().rposition(|l| l["event"] == "worker_metrics");
            let last_job = lines.iter().rposition(|l| l["event"] == "job_finished");
            jobs == 3 && last_gauge > last_job
        },
    )
    .await;
    let lines = emf_lines(&w);
    validate_emf(&lines);
    let size = |event: &str| {
        lines
            .iter()
            .filter(|l| l["event"] == event)
            .map(|l| l.to_string().len())
            .max()
            .unwrap_or(0)
    };
    eprintln!(
        "measured: {} EMF lines, job line at most {} bytes, gauge line {} bytes",
        lines.len(),
        size("job_finished"),
        size("worker_metrics")
    );
    // The JSON logs share stdout with the EMF lines (CloudWatch Logs
    // extracts metrics only from lines with `_aws`).
    assert!(lines.iter().all(|l| l.get("_aws").is_some()));

    let contract = operations_contract();
    assert_eq!(contract["namespace"], "ScanGate");
    let out = published(&lines);
    for m in contract["metrics"].as_array().unwrap() {
        for set in m["dimensions"].as_array().unwrap() {
            let mut dims: Vec<String> = set
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_owned())
                .collect();
            dims.sort();
            let key = (m["name"].as_str().unwrap().to_owned(), dims);
            assert!(out.contains(&key), "{key:?} not published; got {out:?}");
        }
    }
    for l in &lines {
        assert_eq!(l["Service"], "TeamGate");
    }
    let gauge = lines
        .iter()
        .find(|l| l["event"] == "worker_metrics")
        .unwrap();
    assert_eq!(gauge["Slots"], 2);

    let jobs = job_lines(&w);
    let by_id = |id: &str| jobs.iter().find(|l| l["job_id"] == id).unwrap().clone();
    let (p, f, c) = (by_id(&pass), by_id(&fail), by_id(&config));
    assert_eq!(
        [&p["Result"], &f["Result"], &c["Result"]],
        ["PASS", "FAIL", "ConfigurationError"]
    );
    for l in [&p, &f, &c] {
        assert_eq!(l["JobsCompleted"], 1);
        assert!(l["JobDurationSeconds"].as_f64().unwrap() > 0.0, "{l}");
        assert_eq!(l["pipeline"], "app-pipeline");
    }
    assert_eq!(f["verdict"], "FAIL");
    assert_eq!(f["failure_type"], "JobFailed");
    assert_eq!(p["verdict"], "PASS");
    assert!(p.get("failure_type").is_none(), "{p}");
    assert!(p["digest"].as_str().unwrap().starts_with("sha256:"));
    assert!(
        c.get("verdict").is_none() && c.get("image").is_none(),
        "{c}"
    );

    // Every field of every query is in the job line of a scanned FAIL; a
    // PASS has all but failure_type, the configuration error at least the
    // failure's.
    for q in contract["queries"].as_array().unwrap() {
        let fields = query_fields(q["query"].as_str().unwrap());
        assert!(!fields.is_empty(), "{q}");
        for field in &fields {
            assert!(f.get(field).is_some(), "query {q}: {field} not in {f}");
            if field != "failure_type" {
                assert!(p.get(field).is_some(), "query {q}: {field} not in {p}");
            }
        }
    }
    for field in [
        "failure_type",
        "result",
        "pipeline",
        "job_id",
        "duration_seconds",
    ] {
        assert!(c.get(field).is_some(), "{field} not in {c}");
    }
}

// ------------------------------------------------------------- health ----

/// Access denied on every poll: `/healthz` and `scangate healthcheck` fail
/// after the third, PollErrors counts them, and the first successful poll
/// makes the worker healthy again.
#[tokio::test(flavor = "multi_thread")]
async fn healthz_fails_after_three_failed_polls_and_recovers() {
    let env = Env::new().await;
    env.emus
        .faults
        .set(vec![FaultRule::new("PollForJobs", FaultKind::AccessDenied)])
        .unwrap();
    let w = worker(&env)
        .health()
        .env("SCANGATE_METRICS_INTERVAL", "300ms")
        .spawn();
    let addr = w.health_addr().to_owned();
    let client = reqwest::Client::new();
    let healthz = || {
        let (client, url) = (client.clone(), format!("http://{addr}/healthz"));
        async move {
            match client.get(&url).send().await {
                Ok(r) => Some((r.status().as_u16(), r.text().await.unwrap_or_default())),
                Err(_) => None,
            }
        }
    };
    let healthcheck = || {
        Command::new(corpus::scangate_bin())
            .args(["healthcheck", "--addr", &addr])
            .env_clear()
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .code()
    };

    let started = Instant::now();
    let body = loop {
        assert!(started.elapsed() < Duration::from_secs(30), "{}", w.log());
        let polls = env
            .emus
            .codepipeline
            .calls()
            .iter()
            .filter(|c| c.operation == "PollForJobs")
            .count();
        if let Some((503, body)) = healthz().await {
            assert!(polls >= 3, "unhealthy after {polls} polls");
            eprintln!(
                "measured: /healthz 503 after {polls} polls, {:?}",
                started.elapsed()
            );
            break body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        body.contains("consecutive failed polls") && body.contains("AccessDenied"),
        "{body}"
    );
    assert_eq!(healthcheck(), Some(1), "scangate healthcheck must fail");
    wait_until("PollErrors in a gauge line", Duration::from_secs(5), || {
        emf_lines(&w)
            .iter()
            .any(|l| l["PollErrors"].as_u64().unwrap_or(0) > 0)
    })
    .await;

    env.emus.faults.clear();
    let cleared = Instant::now();
    let deadline = cleared + Duration::from_secs(30);
    loop {
        if let Some((200, _)) = healthz().await {
            eprintln!(
                "measured: healthy again {:?} after the fault was lifted",
                cleared.elapsed()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never healthy again\n{}",
            w.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(healthcheck(), Some(0));
}

// ---------------------------------------------------- task protection ----

/// Two overlapping jobs: protection is set when the first starts, renewed
/// when the second starts, and cleared once, after both results were sent.
#[tokio::test(flavor = "multi_thread")]
async fn task_protection_spans_overlapping_jobs() {
    let env = Env::new().await;
    let image = push_debian_fixture(&env).await;
    let agent = EcsAgent::start().await.unwrap();
    // Slow scans, so the jobs overlap.
    env.emus
        .faults
        .set(vec![FaultRule::new(
            "ScanSbom",
            FaultKind::Delay { ms: 2500 },
        )])
        .unwrap();
    let w = worker(&env)
        .envs(&[
            ("ECS_AGENT_URI", &agent.uri),
            ("SCANGATE_JOB_TIMEOUT", "20m"),
            ("SCANGATE_RESULT_RETRY", "5m"),
        ])
        .spawn();
    // No job, no call.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(agent.calls().is_empty(), "{:?}", agent.calls());

    let first = env.job(&[("ImageUrl", &image), ("HighThreshold", "1")]);
    assert!(
        agent.wait_for_calls(1, Duration::from_secs(30)).await,
        "{}",
        w.log()
    );
    assert!(agent.protected());
    let second = env.job(&[("ImageUrl", &image), ("HighThreshold", "1")]);
    assert!(
        agent.wait_for_calls(2, Duration::from_secs(30)).await,
        "{}",
        w.log()
    );
    // renewed while the first job still runs: the jobs overlap
    let first_done = env
        .emus
        .codepipeline
        .job(&first)
        .is_some_and(|j| j.result.is_some());
    assert!(!first_done, "the first job ended before the second started");
    let r1 = env.result(&first, &w).await;
    let r2 = env.result(&second, &w).await;
    assert_eq!(
        (result_kind(&r1), result_kind(&r2)),
        ("success".into(), "success".into())
    );
    assert!(
        agent.wait_for_calls(3, Duration::from_secs(15)).await,
        "{}",
        w.log()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    let calls = agent.calls();
    let seq: Vec<(bool, Option<u64>)> = calls
        .iter()
        .map(|c| (c.enabled, c.expires_in_minutes))
        .collect();
    // 20 min deadline + 5 min of result retries + 1 = 26 minutes
    assert_eq!(
        seq,
        [(true, Some(26)), (true, Some(26)), (false, None)],
        "{}",
        w.log()
    );
    assert!(!agent.protected());
    // The second enable came while the first job was still running, and
    // the release only after the second result reached CodePipeline.
    let done = |id: &str| {
        env.emus
            .codepipeline
            .calls()
            .iter()
            .filter(|c| c.operation.starts_with("PutJob") && c.request.to_string().contains(id))
            .count()
    };
    assert_eq!((done(&first), done(&second)), (1, 1));
    assert!(calls.iter().all(|c| c.accepted));
}

/// An agent that refuses (the task role lacks the right): the jobs still
/// pass, and the worker says why protection is missing.
#[tokio::test(flavor = "multi_thread")]
async fn refused_task_protection_fails_no_job() {
    let env = Env::new().await;
    let image = push_debian_fixture(&env).await;
    let agent = EcsAgent::start().await.unwrap();
    agent.refuse(true);
    let w = worker(&env).env("ECS_AGENT_URI", &agent.uri).spawn();
    let id = env.job(&[("ImageUrl", &image), ("HighThreshold", "1")]);
    assert_eq!(result_kind(&env.result(&id, &w).await), "success");
    assert!(agent.wait_for_calls(2, Duration::from_secs(15)).await);
    assert!(agent.calls().iter().all(|c| !c.accepted));
    wait_until("the refusal in the log", Duration::from_secs(5), || {
        w.log()
            .contains("could not change the task's scale-in protection")
    })
    .await;
    assert!(w.log().contains("AccessDeniedException"), "{}", w.log());

    // An agent that is not there at all: no hang, no failed job.
    drop(agent);
    let id = env.job(&[("ImageUrl", &image), ("HighThreshold", "1")]);
    assert_eq!(result_kind(&env.result(&id, &w).await), "success");
}

/// A hung agent: no job waits for it (the calls are made beside the jobs,
/// and each gives up after 10 s).
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_agent_delays_no_job() {
    let env = Env::new().await;
    let image = push_debian_fixture(&env).await;
    let agent = EcsAgent::start().await.unwrap();
    agent.stall(true);
    let w = worker(&env).env("ECS_AGENT_URI", &agent.uri).spawn();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let id = env.job(&[("ImageUrl", &image), ("HighThreshold", "1")]);
    assert_eq!(result_kind(&env.result(&id, &w).await), "success");
    let took = started.elapsed();
    eprintln!("measured: job with a hung agent: {took:?} from enqueue to result");
    assert!(agent.wait_for_calls(1, Duration::from_secs(5)).await);
    // one call to the agent would have taken its 10 s timeout
    assert!(took < Duration::from_secs(8), "the job took {took:?}");
    // the release follows once the stalled call gave up
    assert!(
        agent.wait_for_calls(2, Duration::from_secs(20)).await,
        "{}",
        w.log()
    );
    assert!(!agent.calls()[1].enabled);
}
