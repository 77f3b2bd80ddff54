//! `scangate jobs list` / `scangate jobs show`: operator inspection of the
//! reports store (DESIGN.md, "Reports store"), and of CodePipeline for a job
//! that has no record yet.
//!
//! `list` reads the index (`index/{pipeline}/{stamp}-{id}.json`, each a copy
//! of the job's record). The stamp is the finish time in RFC 3339 without
//! colons, so keys sort by time: `--since` becomes an S3 `StartAfter`, and
//! only the records that will be printed are fetched.

pub mod cfg;

use std::io::Write as _;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::report::read::{ReadError, S3_PAGE_SIZE};
use crate::report::{ReportError, ReportStore, terminal_safe, valid_job_id, valid_pipeline};
pub use cfg::{JobsCommand, ListFormat, ShowFormat, VerdictFilter};

/// Records fetched at once while listing.
const FETCH_CONCURRENCY: usize = 8;
/// How long `jobs show` waits for CodePipeline before giving up on it.
const CODEPIPELINE_TIMEOUT: Duration = Duration::from_secs(20);
/// Findings shown when a job has findings.json but no report.md.
const SUMMARY_FINDINGS: usize = 20;
/// The width `jobs list` fits by default (`--wide`: no limit).
pub const TABLE_WIDTH: usize = 120;
/// Jobs an ambiguous id prefix names in its error.
const MAX_CANDIDATES: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error(transparent)]
    Store(#[from] ReportError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(
        "{0:?} is not a CodePipeline job id (letters, digits, '-' and '_', at most 128 characters)"
    )]
    BadJobId(String),
    #[error("{0:?} is not a pipeline name (letters, digits, '.', '@', '-' and '_')")]
    BadPipeline(String),
    #[error("no record of job {id} in {reports}{note}")]
    NoRecord {
        id: String,
        reports: String,
        note: String,
    },
    #[error("{uri} is not a job record: {message}")]
    BadRecord { uri: String, message: String },
    #[error("writing the output: {0}")]
    Output(std::io::Error),
    #[error("{0} is not a directory (give a reports directory, file:///dir or s3://bucket/prefix)")]
    NoSuchDir(String),
    #[error(
        "job id prefix {prefix:?} matches more than one job in {reports}: {candidates}; give more of the id"
    )]
    Ambiguous {
        prefix: String,
        reports: String,
        /// The matching ids, comma-separated (`...` when there are more).
        candidates: String,
    },
}

/// One line of the index, from its key alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub key: String,
    /// `_` for jobs whose pipeline name was unknown.
    pub pipeline: String,
    pub finished: OffsetDateTime,
    pub job_id: String,
}

/// `index/{pipeline}/{stamp}-{id}.json` as `ReportStore::save` writes it.
pub fn parse_index_key(key: &str) -> Option<IndexEntry> {
    let rest = key.strip_prefix("index/")?;
    let (pipeline, file) = rest.split_once('/')?;
    let file = file.strip_suffix(".json")?;
    // The stamp is UTC and ends with `Z`; job ids contain no `Z-`… but a
    // pipeline-chosen id might, so split at the first one after the date.
    let z = file.get(10..)?.find("Z-")? + 10;
    let finished = parse_stamp(&file[..=z])?;
    let job_id = &file[z + 2..];
    if pipeline.is_empty() || job_id.is_empty() {
        return None;
    }
    Some(IndexEntry {
        key: key.to_owned(),
        pipeline: pipeline.to_owned(),
        finished,
        job_id: job_id.to_owned(),
    })
}

/// `2026-12-02T021156.5Z`: RFC 3339 with the colons taken out (they are
/// awkward in S3 keys and file names).
fn parse_stamp(s: &str) -> Option<OffsetDateTime> {
    let (hm, rest) = (s.get(..13)?, s.get(13..)?);
    let full = format!("{hm}:{}:{}", rest.get(..2)?, rest.get(2..)?);
    OffsetDateTime::parse(&full, &Rfc3339).ok()
}

/// The whole-second prefix of a stamp (`2026-12-02T021156`): every key of
/// that second or later sorts after it.
fn stamp_prefix(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// What `jobs list` asks for.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub pipeline: Option<String>,
    /// 0: no limit.
    pub limit: usize,
    pub since: Option<OffsetDateTime>,
    pub verdict: Option<VerdictFilter>,
}

/// A listed job: its record (as indexed) and where its files are.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub record: Value,
    pub record_uri: String,
    /// `report.md`; none for jobs that ended in an error.
    pub report_uri: Option<String>,
}

#[derive(Debug, Default)]
pub struct Listed {
    pub rows: Vec<JobRow>,
    /// Index entries that could not be read as records.
    pub warnings: Vec<String>,
}

/// Jobs newest first, `page_size` keys per listing call (S3's maximum in
/// production; small in tests to exercise the paging).
pub async fn list(store: &ReportStore, q: &Query, page_size: i32) -> Result<Listed, JobsError> {
    let pipelines = match &q.pipeline {
        Some(p) if !valid_pipeline(p) => return Err(JobsError::BadPipeline(p.clone())),
        Some(p) => vec![p.clone()],
        None => store
            .list_all("index/", None, page_size)
            .await?
            .dirs
            .iter()
            .filter_map(|d| d.strip_prefix("index/")?.strip_suffix('/'))
            .map(str::to_owned)
            .collect(),
    };
    let mut out = Listed::default();
    let mut entries = Vec::new();
    for p in &pipelines {
        let dir = format!("index/{p}/");
        // One second early: the prefix of the cutoff's own second sorts
        // before its keys, and the exact cut is made below.
        let start_after = q
            .since
            .map(|t| format!("{dir}{}", stamp_prefix(t - Duration::from_secs(1))));
        for key in store
            .list_all(&dir, start_after.as_deref(), page_size)
            .await?
            .keys
        {
            match parse_index_key(&key) {
                Some(e) if q.since.is_none_or(|s| e.finished >= s) => entries.push(e),
                Some(_) => {}
                None => out
                    .warnings
                    .push(format!("{}: not an index entry", store.uri_of(&key))),
            }
        }
    }
    entries.sort_by(|a, b| {
        b.finished
            .cmp(&a.finished)
            .then_with(|| b.job_id.cmp(&a.job_id))
    });
    let mut fetched = futures_util::stream::iter(entries)
        .map(|e| async move {
            let body = store.get(&e.key).await;
            (e, body)
        })
        .buffered(FETCH_CONCURRENCY);
    while let Some((e, body)) = fetched.next().await {
        if q.limit != 0 && out.rows.len() >= q.limit {
            break;
        }
        // Gone between the listing and the read: a lifecycle rule expired
        // it. Nothing to show.
        let Some(body) = body? else { continue };
        let record = match serde_json::from_slice::<Value>(&body) {
            Ok(v) if v.is_object() => v,
            Ok(_) => {
                out.warnings
                    .push(format!("{}: not a JSON object", store.uri_of(&e.key)));
                continue;
            }
            Err(err) => {
                out.warnings
                    .push(format!("{}: {err}", store.uri_of(&e.key)));
                continue;
            }
        };
        if let Some(v) = q.verdict
            && record["verdict"].as_str() != Some(v.as_str())
        {
            continue;
        }
        out.rows.push(row(store, &e.job_id, record));
    }
    Ok(out)
}

fn row(store: &ReportStore, fallback_id: &str, record: Value) -> JobRow {
    let id = record["job_id"].as_str().unwrap_or(fallback_id).to_owned();
    // An error record with a `remedy` has its own report.html (what went
    // wrong, what to do); older error records have none.
    let scanned = matches!(record["verdict"].as_str(), Some("PASS" | "FAIL"))
        || record.get("remedy").is_some();
    JobRow {
        record_uri: store.uri_of(&format!("jobs/{id}/record.json")),
        report_uri: scanned.then(|| store.uri_of(&format!("jobs/{id}/report.html"))),
        record,
    }
}

fn s<'a>(v: &'a Value, fallback: &'a str) -> &'a str {
    v.as_str().filter(|s| !s.is_empty()).unwrap_or(fallback)
}

fn counts(r: &Value) -> String {
    let c = &r["counts"];
    if !c.is_object() {
        return "-".into();
    }
    ["critical", "high", "medium", "low", "other"]
        .iter()
        .map(|k| c[k].as_u64().map_or("?".to_owned(), |n| n.to_string()))
        .collect::<Vec<_>>()
        .join("/")
}

fn image(r: &Value) -> String {
    let i = &r["image"];
    let reference = s(&i["reference"], "-");
    match i["digest"].as_str() {
        Some(d) if !reference.contains('@') => {
            // The algorithm and 12 hex digits identify an image to a person.
            let short = d.get(..19).unwrap_or(d);
            format!("{reference}@{short}")
        }
        _ => reference.to_owned(),
    }
}

/// An aligned text table; the last column is not padded. Cells are shown
/// with control characters escaped: records hold text from images and
/// registries, and a terminal must not interpret it.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| terminal_safe(c).into_owned()).collect())
        .collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &mut dyn Iterator<Item = &str>, out: &mut String| {
        let cells: Vec<&str> = cells.collect();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(c);
                out.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        out.push('\n');
    };
    line(&mut header.iter().copied(), &mut out);
    for r in rows {
        line(&mut r.iter().map(String::as_str), &mut out);
    }
    out
}

/// `jobs list --format table`.
pub fn render_table(rows: &[JobRow]) -> String {
    if rows.is_empty() {
        return "no jobs recorded\n".into();
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let r = &row.record;
            let finished = s(&r["finished"], "-");
            vec![
                // Seconds are enough to tell jobs apart for a person.
                finished
                    .get(..19)
                    .map_or(finished.to_owned(), |t| format!("{t}Z")),
                s(&r["job_id"], "-").to_owned(),
                format!(
                    "{}/{}/{}",
                    s(&r["pipeline"], "-"),
                    s(&r["stage"], "-"),
                    s(&r["action"], "-")
                ),
                image(r),
                s(&r["verdict"], "-").to_owned(),
                counts(r),
                s(&r["failure_type"], "-").to_owned(),
                row.report_uri
                    .clone()
                    .unwrap_or_else(|| row.record_uri.clone()),
            ]
        })
        .collect();
    table(
        &[
            "FINISHED",
            "JOB",
            "PIPELINE/STAGE/ACTION",
            "IMAGE",
            "VERDICT",
            "C/H/M/L/O",
            "FAILURE",
            "REPORT",
        ],
        &cells,
    )
}

/// `jobs list` by default: what tells jobs apart, within `width` columns.
/// Job ids are cut to the shortest prefix (8 characters or more) that is
/// unique in the listing, which `jobs show` accepts; the image column gets
/// what the others leave, losing first the digest, then the start of the
/// name (the tag matters more than the registry's name).
pub fn render_narrow(rows: &[JobRow], width: usize) -> String {
    if rows.is_empty() {
        return "no jobs recorded\n".into();
    }
    let ids: Vec<String> = rows
        .iter()
        .map(|r| terminal_safe(s(&r.record["job_id"], "-")).into_owned())
        .collect();
    let id_len = unique_prefix_len(&ids, 8);
    let mut cells: Vec<Vec<String>> = rows
        .iter()
        .zip(&ids)
        .map(|(row, id)| {
            let r = &row.record;
            let finished = s(&r["finished"], "-");
            vec![
                // Minutes, as a person reads a log: `jobs show` has the rest.
                finished
                    .get(..16)
                    .map_or(finished.to_owned(), |t| t.replacen('T', " ", 1)),
                id.chars().take(id_len).collect(),
                cut_end(&terminal_safe(s(&r["pipeline"], "-")), 24),
                terminal_safe(&image(r)).into_owned(),
                s(&r["verdict"], "-").chars().take(7).collect(),
                counts(r),
            ]
        })
        .collect();
    let header = [
        "FINISHED",
        "JOB",
        "PIPELINE",
        "IMAGE",
        "VERDICT",
        "C/H/M/L/O",
    ];
    // Every column but the image at its widest, two spaces between columns.
    let others: usize = (0..header.len())
        .filter(|&i| i != 3)
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .sum::<usize>()
        + 2 * (header.len() - 1);
    let image_width = width.saturating_sub(others).max(16);
    for (c, row) in cells.iter_mut().zip(rows) {
        if c[3].chars().count() > image_width {
            // The digest goes first (`jobs show` has it), then the start of
            // the name.
            let name = terminal_safe(s(&row.record["image"]["reference"], "-")).into_owned();
            c[3] = cut_start(&name, image_width);
        }
    }
    table(&header, &cells)
}

/// The shortest prefix length, `min` or more, that tells all `ids` apart.
fn unique_prefix_len(ids: &[String], min: usize) -> usize {
    let longest = ids.iter().map(|i| i.chars().count()).max().unwrap_or(0);
    let mut n = min.min(longest);
    while n < longest {
        let mut seen = std::collections::HashSet::new();
        let distinct = ids
            .iter()
            .map(|i| i.chars().take(n).collect::<String>())
            .all(|p| seen.insert(p));
        if distinct {
            break;
        }
        n += 1;
    }
    n
}

/// At most `max` characters, the end replaced by `…` when cut.
fn cut_end(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// At most `max` characters, the start replaced by `…` when cut.
fn cut_start(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_owned();
    }
    let mut out = String::from("…");
    out.extend(s.chars().skip(n - max.saturating_sub(1)));
    out
}

/// Text for a terminal: each line with its control characters escaped
/// (records hold text that came from images and registries).
fn safe_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        out.push_str(&terminal_safe(line));
        out.push('\n');
    }
    out
}

/// `jobs list --format json`: the records, each with its URIs.
pub fn render_json(rows: &[JobRow]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                let mut v = r.record.clone();
                v["record_uri"] = json!(r.record_uri);
                v["report_uri"] = json!(r.report_uri);
                v
            })
            .collect(),
    )
}

/// Everything the store holds about one job.
#[derive(Debug, Clone)]
pub struct Shown {
    pub job_id: String,
    /// None: no record yet.
    pub record: Option<Value>,
    /// URIs of every file under `jobs/{id}/`.
    pub files: Vec<String>,
    pub report_md: Option<String>,
    /// When there is no report.md but there are findings.
    pub findings_summary: Option<String>,
}

pub async fn show(store: &ReportStore, id: &str) -> Result<Shown, JobsError> {
    if !valid_job_id(id) {
        return Err(JobsError::BadJobId(id.to_owned()));
    }
    let dir = format!("jobs/{id}/");
    let files: Vec<String> = store
        .list_all(&dir, None, S3_PAGE_SIZE)
        .await?
        .keys
        .iter()
        .map(|k| store.uri_of(k))
        .collect();
    let record_key = format!("{dir}record.json");
    let record = match store.get(&record_key).await? {
        None => None,
        Some(b) => Some(
            serde_json::from_slice::<Value>(&b)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| JobsError::BadRecord {
                    uri: store.uri_of(&record_key),
                    message: "not a JSON object".into(),
                })?,
        ),
    };
    let report_md = store
        .get(&format!("{dir}report.md"))
        .await?
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let findings_summary = if report_md.is_none() {
        store
            .get(&format!("{dir}findings.json"))
            .await?
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| summarize_findings(&v))
    } else {
        None
    };
    Ok(Shown {
        job_id: id.to_owned(),
        record,
        files,
        report_md,
        findings_summary,
    })
}

/// The job a possibly shortened id names: the id itself when the store has
/// files under `jobs/{id}/`, else the one job whose id starts with it.
/// Nothing matching: the id as given (CodePipeline may know it).
pub async fn resolve_id(store: &ReportStore, id: &str) -> Result<String, JobsError> {
    if !valid_job_id(id) {
        return Err(JobsError::BadJobId(id.to_owned()));
    }
    let exact = store
        .list_page(&format!("jobs/{id}/"), None, None, 1)
        .await?;
    if !exact.keys.is_empty() || !exact.dirs.is_empty() {
        return Ok(id.to_owned());
    }
    let found = ids_starting_with(store, id).await?;
    match found.as_slice() {
        [] => Ok(id.to_owned()),
        [one] => Ok(one.clone()),
        many => {
            let mut candidates = many
                .iter()
                .take(MAX_CANDIDATES)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            if many.len() > MAX_CANDIDATES {
                candidates.push_str(", ...");
            }
            Err(JobsError::Ambiguous {
                prefix: id.to_owned(),
                reports: store.uri_of(""),
                candidates,
            })
        }
    }
}

/// Job ids under `jobs/` that start with `prefix`, at most one more than
/// [`MAX_CANDIDATES`]: keys sort, so the listing starts right before the
/// prefix and stops at the first id past it (cheap on a large bucket).
async fn ids_starting_with(store: &ReportStore, prefix: &str) -> Result<Vec<String>, JobsError> {
    let from = format!("jobs/{prefix}");
    let mut found = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = store
            .list_page("jobs/", Some(&from), token.as_deref(), 100)
            .await?;
        for d in &page.dirs {
            let Some(id) = d.strip_prefix("jobs/").and_then(|d| d.strip_suffix('/')) else {
                continue;
            };
            if !id.starts_with(prefix) || found.len() > MAX_CANDIDATES {
                return Ok(found);
            }
            found.push(id.to_owned());
        }
        match page.next {
            Some(t) if token.as_deref() != Some(t.as_str()) => token = Some(t),
            _ => return Ok(found),
        }
    }
}

/// The worst findings of a `findings.json`, one line each.
fn summarize_findings(v: &Value) -> Option<String> {
    // findings.json is `{"vulnerabilities": [...], "risks": [...]}`; jobs
    // written before the risks existed hold the bare list.
    let list = v.as_array().or_else(|| v["vulnerabilities"].as_array())?;
    let rank = |f: &Value| match f["severity"].as_str().unwrap_or("") {
        "CRITICAL" => 0,
        "HIGH" => 1,
        "MEDIUM" => 2,
        "LOW" => 3,
        _ => 4,
    };
    let mut sorted: Vec<&Value> = list.iter().collect();
    sorted.sort_by_key(|f| rank(f));
    let mut out = format!("{} findings", list.len());
    if list.len() > SUMMARY_FINDINGS {
        out.push_str(&format!(", the {SUMMARY_FINDINGS} worst"));
    }
    out.push_str(":\n");
    for f in sorted.into_iter().take(SUMMARY_FINDINGS) {
        out.push_str(&format!(
            "  {:<9} {:<20} {} {}{}\n",
            s(&f["severity"], "?"),
            s(&f["id"], "?"),
            s(&f["package"], "?"),
            s(&f["version"], ""),
            f["fixed_version"]
                .as_str()
                .map_or(String::new(), |x| format!(" (fixed in {x})"))
        ));
    }
    Some(out)
}

/// What CodePipeline says about a job (GetJobDetails): for jobs the store
/// has no record of yet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LiveJob {
    pub pipeline: String,
    pub stage: String,
    pub action: String,
    pub pipeline_execution_id: Option<String>,
    /// The `ImageUrl` property, the only configuration value shown: the
    /// others are policy knobs, and the artifact credentials are secret.
    pub image_url: Option<String>,
}

/// `Ok(None)`: CodePipeline does not know the job (or no longer does).
pub async fn live_job(sdk: &aws_config::SdkConfig, id: &str) -> Result<Option<LiveJob>, String> {
    use aws_sdk_codepipeline::error::{ProvideErrorMetadata as _, SdkError};
    let client = aws_sdk_codepipeline::Client::new(sdk);
    let answer = tokio::time::timeout(
        CODEPIPELINE_TIMEOUT,
        client.get_job_details().job_id(id).send(),
    )
    .await
    .map_err(|_| format!("no answer within {}s", CODEPIPELINE_TIMEOUT.as_secs()))?;
    match answer {
        Ok(out) => Ok(out.job_details().map(|d| {
            let data = d.data();
            let place = crate::job::Place::of(data);
            LiveJob {
                pipeline: place.pipeline,
                stage: place.stage,
                action: place.action,
                pipeline_execution_id: place.pipeline_execution_id,
                image_url: data
                    .and_then(|d| d.action_configuration())
                    .and_then(|c| c.configuration())
                    .and_then(|c| c.get("ImageUrl"))
                    .cloned(),
            }
        })),
        Err(SdkError::ServiceError(se))
            if matches!(
                se.err().code(),
                Some("JobNotFoundException" | "ValidationException")
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(crate::inspector::describe(&e)),
    }
}

/// Runs a `jobs` command, printing to stdout.
pub async fn run(mut cmd: JobsCommand) -> Result<(), JobsError> {
    let store_args = match &mut cmd {
        JobsCommand::List(a) => &mut a.store,
        JobsCommand::Show(a) => &mut a.store,
    };
    store_args.reports = store_uri(&store_args.reports)?;
    match cmd {
        JobsCommand::List(a) => {
            let store = open(&a.store).await?;
            let q = Query {
                pipeline: a.pipeline,
                limit: a.limit,
                since: a.since.map(|d| OffsetDateTime::now_utc() - d),
                verdict: a.verdict,
            };
            let listed = list(&store, &q, S3_PAGE_SIZE).await?;
            for w in &listed.warnings {
                let _ = writeln!(std::io::stderr(), "warning: {}", terminal_safe(w));
            }
            let text = match a.format {
                ListFormat::Table if a.wide => render_table(&listed.rows),
                ListFormat::Table => render_narrow(&listed.rows, TABLE_WIDTH),
                ListFormat::Json => pretty(&render_json(&listed.rows)),
            };
            emit(&text)
        }
        JobsCommand::Show(mut a) => {
            let store = open(&a.store).await?;
            a.job_id = resolve_id(&store, &a.job_id).await?;
            let shown = show(&store, &a.job_id).await?;
            let live = if shown.record.is_none() {
                let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                Some(live_job(&sdk, &a.job_id).await)
            } else {
                None
            };
            let live = match live {
                None => None,
                Some(Ok(Some(j))) => Some(j),
                Some(other) => {
                    let mut note = String::new();
                    if !shown.files.is_empty() {
                        note.push_str(&format!(
                            " (it has {} file(s) there but no record.json: its worker is writing them now or stopped while writing)",
                            shown.files.len()
                        ));
                    }
                    match other {
                        Ok(_) => note.push_str("; CodePipeline does not know it either"),
                        Err(e) => note.push_str(&format!("; CodePipeline could not be asked: {e}")),
                    }
                    return Err(JobsError::NoRecord {
                        id: a.job_id,
                        reports: a.store.reports,
                        note,
                    });
                }
            };
            let text = match a.format {
                ShowFormat::Text => {
                    safe_lines(&render_show(&shown, live.as_ref(), &a.store.reports))
                }
                ShowFormat::Json => pretty(&json!({
                    "job_id": shown.job_id,
                    "record": shown.record,
                    "files": shown.files,
                    "report_md": shown.report_md,
                    "findings_summary": shown.findings_summary,
                    "codepipeline": live,
                })),
            };
            emit(&text)
        }
    }
}

/// `--reports` as a store URI: a plain path (the demo's
/// `scangate-demo-reports`) is the `file://` URI of that directory.
pub fn store_uri(reports: &str) -> Result<String, JobsError> {
    if reports.contains("://") {
        return Ok(reports.to_owned());
    }
    let path = std::path::Path::new(reports);
    if !path.is_dir() {
        return Err(JobsError::NoSuchDir(reports.to_owned()));
    }
    let abs = std::path::absolute(path).map_err(|_| JobsError::NoSuchDir(reports.to_owned()))?;
    Ok(format!("file://{}", abs.display()))
}

async fn open(a: &cfg::StoreArgs) -> Result<ReportStore, JobsError> {
    // Only S3 needs the SDK settings; a file:// store must work with no AWS
    // configuration at all.
    let sdk = if a.reports.starts_with("s3://") {
        aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
    } else {
        aws_config::SdkConfig::builder().build()
    };
    Ok(ReportStore::open(&a.reports, &sdk, a.s3_force_path_style)?)
}

fn pretty(v: &Value) -> String {
    // A Value always serialises.
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn emit(text: &str) -> Result<(), JobsError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(JobsError::Output),
    }
}

/// `jobs show --format text`.
pub fn render_show(shown: &Shown, live: Option<&LiveJob>, reports: &str) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let Some(r) = &shown.record else {
        let _ = writeln!(o, "job {}: no record in {reports} yet", shown.job_id);
        if let Some(j) = live {
            let _ = writeln!(
                o,
                "CodePipeline has it: pipeline {}, stage {}, action {}{}",
                j.pipeline,
                j.stage,
                j.action,
                j.pipeline_execution_id
                    .as_deref()
                    .map_or(String::new(), |e| format!(" (execution {e})"))
            );
            if let Some(i) = &j.image_url {
                let _ = writeln!(o, "image: {i}");
            }
            let _ = writeln!(
                o,
                "It is still running, or it ended without a record (a worker without SCANGATE_REPORTS, or one that could not write to the store: see its log)."
            );
        }
        if !shown.files.is_empty() {
            let _ = writeln!(o, "\nfiles so far:");
            for f in &shown.files {
                let _ = writeln!(o, "  {f}");
            }
        }
        return o;
    };
    let field = |o: &mut String, name: &str, value: &str| {
        let _ = writeln!(o, "{name:<10}{value}");
    };
    field(&mut o, "job", s(&r["job_id"], &shown.job_id));
    field(
        &mut o,
        "pipeline",
        &format!(
            "{} / {} / {}",
            s(&r["pipeline"], "-"),
            s(&r["stage"], "-"),
            s(&r["action"], "-")
        ),
    );
    if let Some(e) = r["pipeline_execution_id"].as_str() {
        field(&mut o, "execution", e);
    }
    field(&mut o, "finished", s(&r["finished"], "-"));
    field(&mut o, "image", s(&r["image"]["reference"], "-"));
    if let Some(d) = r["image"]["digest"].as_str() {
        field(&mut o, "digest", d);
    }
    let verdict = s(&r["verdict"], "-");
    match r["failure_type"].as_str() {
        Some(f) => field(&mut o, "verdict", &format!("{verdict} ({f})")),
        None => field(&mut o, "verdict", verdict),
    }
    if r["counts"].is_object() {
        field(
            &mut o,
            "counts",
            &format!("{} (critical/high/medium/low/other)", counts(r)),
        );
    }
    if let Some(m) = r["message"].as_str() {
        field(&mut o, "message", m);
    }
    field(
        &mut o,
        "worker",
        &format!(
            "{} (scangate {})",
            s(&r["worker_id"], "-"),
            s(&r["version"], "?")
        ),
    );
    let _ = writeln!(o, "\nfiles:");
    for f in &shown.files {
        let _ = writeln!(o, "  {f}");
    }
    if let Some(md) = &shown.report_md {
        let _ = writeln!(o, "\n{}", md.trim_end());
    } else if let Some(sum) = &shown.findings_summary {
        let _ = write!(o, "\n{sum}");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::read::tests::store;

    #[test]
    fn index_keys_parse_back_to_time_and_id() {
        let e = parse_index_key(
            "index/app-pipeline/2026-12-02T021156.123456Z-0b6c6f9e-1f2a-4c3d-9e8f-001122334455.json",
        )
        .unwrap();
        assert_eq!(e.pipeline, "app-pipeline");
        assert_eq!(e.job_id, "0b6c6f9e-1f2a-4c3d-9e8f-001122334455");
        assert_eq!(
            e.finished,
            OffsetDateTime::parse("2026-12-02T02:11:56.123456Z", &Rfc3339).unwrap()
        );
        let whole = parse_index_key("index/_/2026-12-02T021156Z-x.json").unwrap();
        assert_eq!(whole.job_id, "x");
        for bad in [
            "index/app/notes.txt",
            "index/app/garbage.json",
            "index/app/2026-13-02T021156Z-x.json",
            "index/2026-12-02T021156Z-x.json",
            "index/app/2026-12-02T021156Z-.json",
            "index/app/é.json",
        ] {
            assert_eq!(parse_index_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn stamps_round_trip_with_what_save_writes() {
        let t = OffsetDateTime::parse("2026-03-04T05:06:07.5Z", &Rfc3339).unwrap();
        // What ReportStore::finish does: RFC 3339, colons removed.
        let written = t.format(&Rfc3339).unwrap().replace(':', "");
        assert_eq!(parse_stamp(&written), Some(t));
        assert!(written.starts_with(&stamp_prefix(t)));
        assert_eq!(stamp_prefix(t), "2026-03-04T050607");
    }

    fn rec(id: &str, pipeline: &str, finished: &str, verdict: &str) -> (String, String) {
        let stamp = finished.replace(':', "");
        let key = format!("index/{pipeline}/{stamp}-{id}.json");
        let mut r = json!({
            "job_id": id, "pipeline": pipeline, "stage": "Scan", "action": "ImageScan",
            "finished": finished, "verdict": verdict,
            "image": { "reference": "r.example/app:1", "digest": "sha256:0123456789abcdef0123" },
        });
        if verdict == "ERROR" {
            r["failure_type"] = json!("ConfigurationError");
            r["message"] = json!("bad threshold");
            r["image"] = json!({ "reference": null });
        } else {
            r["counts"] = json!({"critical": 0, "high": 1, "medium": 1, "low": 0, "other": 7});
        }
        (key, r.to_string())
    }

    /// A store with five jobs over two pipelines (plus one unparseable
    /// entry), written the way `save` lays them out.
    fn fixture() -> (crate::report::read::tests::Scratch, ReportStore) {
        let jobs = [
            rec("a1", "app", "2026-01-01T10:00:00Z", "PASS"),
            rec("a2", "app", "2026-01-02T10:00:00.25Z", "FAIL"),
            rec("a3", "app", "2026-01-03T10:00:00Z", "ERROR"),
            rec("w1", "web", "2026-01-02T12:00:00Z", "PASS"),
            rec("w2", "web", "2026-01-04T09:00:00Z", "FAIL"),
        ];
        let mut names: Vec<&str> = jobs.iter().map(|(k, _)| k.as_str()).collect();
        names.push("index/web/README.json");
        let (d, s) = store(&names);
        for (k, body) in &jobs {
            std::fs::write(d.0.join(k), body).unwrap();
        }
        std::fs::write(d.0.join("index/web/README.json"), "{}").unwrap();
        (d, s)
    }

    fn ids(l: &Listed) -> Vec<&str> {
        l.rows
            .iter()
            .map(|r| r.record["job_id"].as_str().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn all_pipelines_newest_first_with_any_page_size() {
        let (_d, s) = fixture();
        for page in [1, 2, 1000] {
            let l = list(&s, &Query::default(), page).await.unwrap();
            assert_eq!(ids(&l), ["w2", "a3", "w1", "a2", "a1"], "page size {page}");
            assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
            assert!(l.warnings[0].contains("README.json"));
        }
    }

    #[tokio::test]
    async fn filters_pipeline_verdict_since_and_limit() {
        let (_d, s) = fixture();
        let q = |f: fn(&mut Query)| {
            let mut q = Query::default();
            f(&mut q);
            q
        };
        let app = list(&s, &q(|q| q.pipeline = Some("app".into())), 1)
            .await
            .unwrap();
        assert_eq!(ids(&app), ["a3", "a2", "a1"]);
        let fail = list(&s, &q(|q| q.verdict = Some(VerdictFilter::Fail)), 2)
            .await
            .unwrap();
        assert_eq!(ids(&fail), ["w2", "a2"]);
        let since = list(
            &s,
            &q(|q| {
                q.since = Some(OffsetDateTime::parse("2026-01-02T10:00:00.25Z", &Rfc3339).unwrap())
            }),
            1,
        )
        .await
        .unwrap();
        assert_eq!(
            ids(&since),
            ["w2", "a3", "w1", "a2"],
            "the cutoff is inclusive"
        );
        let limited = list(
            &s,
            &q(|q| {
                q.limit = 1;
                q.verdict = Some(VerdictFilter::Pass);
            }),
            1,
        )
        .await
        .unwrap();
        assert_eq!(ids(&limited), ["w1"]);
        let none = list(&s, &q(|q| q.pipeline = Some("nope".into())), 10)
            .await
            .unwrap();
        assert!(none.rows.is_empty());
        assert!(matches!(
            list(&s, &q(|q| q.pipeline = Some("../jobs".into())), 10).await,
            Err(JobsError::BadPipeline(_))
        ));
    }

    #[tokio::test]
    async fn table_and_json_show_what_an_operator_needs() {
        let (_d, s) = fixture();
        let l = list(&s, &Query::default(), 1000).await.unwrap();
        let t = render_table(&l.rows);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("FINISHED"), "{t}");
        assert!(lines[1].contains("w2") && lines[1].contains("web/Scan/ImageScan"));
        assert!(
            lines[1].contains("r.example/app:1@sha256:0123456789ab "),
            "{t}"
        );
        assert!(lines[1].contains("0/1/1/0/7"));
        assert!(lines[1].ends_with("/jobs/w2/report.html"), "{t}");
        let err = lines[2];
        assert!(
            err.contains("ERROR") && err.contains("ConfigurationError"),
            "{t}"
        );
        assert!(err.ends_with("/jobs/a3/record.json"), "{t}");
        // Columns line up: VERDICT starts at the same place on every line.
        let col = lines[0].find("VERDICT").unwrap();
        for l in &lines[1..] {
            assert!(
                ["PASS", "FAIL", "ERROR"]
                    .iter()
                    .any(|v| l[col..].starts_with(v)),
                "{l}"
            );
        }
        let j = render_json(&l.rows);
        assert_eq!(j[0]["job_id"], "w2");
        assert!(j[0]["report_uri"].as_str().unwrap().starts_with("file:///"));
        assert_eq!(j[1]["report_uri"], Value::Null);
        assert_eq!(render_table(&[]), "no jobs recorded\n");
    }

    #[tokio::test]
    async fn show_reads_record_report_and_file_list() {
        let (d, s) = store(&[
            "jobs/j1/record.json",
            "jobs/j1/report.md",
            "jobs/j1/sbom.cdx.json",
            "jobs/j2/findings.json",
        ]);
        std::fs::write(
            d.0.join("jobs/j1/record.json"),
            json!({"job_id": "j1", "verdict": "FAIL", "failure_type": "JobFailed",
                   "counts": {"critical": 1, "high": 0, "medium": 0, "low": 0, "other": 0}})
            .to_string(),
        )
        .unwrap();
        std::fs::write(d.0.join("jobs/j1/report.md"), "# scangate: x — FAIL\n").unwrap();
        let shown = show(&s, "j1").await.unwrap();
        assert_eq!(shown.files.len(), 3);
        assert!(shown.files.iter().all(|f| f.starts_with("file:///")));
        let text = render_show(&shown, None, "file:///r");
        assert!(text.contains("FAIL (JobFailed)"), "{text}");
        assert!(text.contains("1/0/0/0/0"), "{text}");
        assert!(text.contains("# scangate: x — FAIL"), "{text}");
        assert!(text.contains("/jobs/j1/sbom.cdx.json"), "{text}");

        // Files but no record: still being written, or abandoned.
        std::fs::write(
            d.0.join("jobs/j2/findings.json"),
            json!([{"id": "CVE-1", "severity": "LOW", "package": "p", "version": "1"},
                   {"id": "CVE-2", "severity": "CRITICAL", "package": "q", "version": "2",
                    "fixed_version": "3"}])
            .to_string(),
        )
        .unwrap();
        let pending = show(&s, "j2").await.unwrap();
        assert!(pending.record.is_none());
        let sum = pending.findings_summary.unwrap();
        assert!(
            sum.find("CVE-2").unwrap() < sum.find("CVE-1").unwrap(),
            "worst first: {sum}"
        );
        assert!(sum.contains("(fixed in 3)"));

        let unknown = show(&s, "nope").await.unwrap();
        assert!(unknown.record.is_none() && unknown.files.is_empty());
        assert!(matches!(
            show(&s, "../../etc").await,
            Err(JobsError::BadJobId(_))
        ));
    }

    #[tokio::test]
    async fn the_default_table_fits_120_columns() {
        let (_d, s) = fixture();
        let mut rows = list(&s, &Query::default(), 1000).await.unwrap().rows;
        rows[0].record["image"]["reference"] = json!(format!("r.example/{}:1", "x".repeat(200)));
        let t = render_narrow(&rows, TABLE_WIDTH);
        for l in t.lines() {
            assert!(
                l.chars().count() <= TABLE_WIDTH,
                "{}: {l}",
                l.chars().count()
            );
        }
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[1].starts_with("2026-01-04 09:00  w2  "), "{t}");
        assert!(
            lines[1].contains("  …xxx") && lines[1].contains("xxx:1  FAIL"),
            "{t}"
        );
        assert!(
            lines[3].contains("r.example/app:1@sha256:0123456789ab "),
            "{t}"
        );
        assert_eq!(
            unique_prefix_len(&["abcdefgh-1".into(), "abcdefgh-2".into()], 8),
            10
        );
        assert_eq!(unique_prefix_len(&["ab".into()], 8), 2);
        assert_eq!(cut_start("abcdef", 4), "…def");
        assert_eq!(cut_end("abcdef", 4), "abc…");
    }
}
