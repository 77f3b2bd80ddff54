//! End to end: jobs run by the real `scangate worker` (emulators, the real
//! docker-registry), their reports in moto S3 or a directory, then read back
//! by the real `scangate jobs list` / `scangate jobs show`.

mod support;

use serde_json::Value;
use support::{Env, failure, success};

const REPORTS: &str = "s3://reports/scangate";

fn json(out: &support::Output) -> Value {
    assert_eq!(out.code, Some(0), "{out:?}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// Three jobs over two pipelines (PASS, FAIL, a configuration error), in
/// S3: listed newest first with the filters, shown with every stored file;
/// unknown and not-yet-recorded jobs and a missing bucket say so clearly.
#[tokio::test(flavor = "multi_thread")]
async fn list_and_show_jobs_stored_in_s3() {
    let env = Env::new(true).await;
    let s3 = env.s3().await;
    s3.create_bucket().bucket("reports").send().await.unwrap();
    let digest = env.push_debian_fixture("2024").await;
    let image = env.registry.reference("fixture/debian:2024");
    let w = env.worker(REPORTS);
    // One at a time, so that their finish times (and the order) are known.
    let pass = env.enqueue(
        "app-pipeline",
        &[("ImageUrl", &image), ("HighThreshold", "5")],
        None,
    );
    assert_eq!(success(&env.result(&pass, &w).await)["VERDICT"], "PASS");
    let fail = env.enqueue("app-pipeline", &[("ImageUrl", &image)], None);
    assert_eq!(failure(&env.result(&fail, &w).await).0, "JobFailed");
    let error = env.enqueue(
        "web-pipeline",
        &[("ImageUrl", &image), ("HighThreshold", "lots")],
        None,
    );
    assert_eq!(
        failure(&env.result(&error, &w).await).0,
        "ConfigurationError"
    );
    drop(w);

    // All pipelines, newest first, with URIs.
    let all = json(&env.cli(&["jobs", "list", "--reports", REPORTS, "--format", "json"]));
    let rows = all.as_array().unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r["job_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [error.as_str(), fail.as_str(), pass.as_str()]);
    assert_eq!(rows[0]["verdict"], "ERROR");
    assert_eq!(rows[0]["failure_type"], "ConfigurationError");
    // An error has its report too: what went wrong and what to do.
    assert_eq!(
        rows[0]["report_uri"],
        format!("{REPORTS}/jobs/{error}/report.html")
    );
    assert_eq!(
        rows[0]["record_uri"],
        format!("{REPORTS}/jobs/{error}/record.json")
    );
    assert_eq!(rows[1]["verdict"], "FAIL");
    assert_eq!(rows[2]["verdict"], "PASS");
    assert_eq!(rows[2]["image"]["digest"], digest.as_str());
    assert_eq!(rows[2]["counts"]["other"], 7);
    assert_eq!(
        rows[2]["report_uri"],
        format!("{REPORTS}/jobs/{pass}/report.html")
    );

    // One pipeline, one verdict: the table an operator reads, every column.
    let t = env.cli(&[
        "jobs",
        "list",
        "--reports",
        REPORTS,
        "--pipeline",
        "app-pipeline",
        "--verdict",
        "FAIL",
        "--wide",
    ]);
    assert_eq!(t.code, Some(0), "{t:?}");
    let lines: Vec<&str> = t.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", t.stdout);
    assert!(lines[0].starts_with("FINISHED"), "{}", t.stdout);
    for want in [
        fail.as_str(),
        "app-pipeline/Scan/ImageScan",
        &format!("{image}@{}", &digest[..19]),
        "FAIL",
        "0/1/1/0/7",
        "JobFailed",
        &format!("{REPORTS}/jobs/{fail}/report.html"),
    ] {
        assert!(lines[1].contains(want), "{want} missing from {}", lines[1]);
    }
    let newest = json(&env.cli(&[
        "jobs",
        "list",
        "--reports",
        REPORTS,
        "--limit",
        "1",
        "--format",
        "json",
    ]));
    assert_eq!(newest.as_array().unwrap().len(), 1);
    assert_eq!(newest[0]["job_id"], error.as_str());
    let recent = json(&env.cli(&[
        "jobs",
        "list",
        "--reports",
        REPORTS,
        "--since",
        "1h",
        "--pipeline",
        "web-pipeline",
        "--format",
        "json",
    ]));
    assert_eq!(recent.as_array().unwrap().len(), 1);
    let none = env.cli(&["jobs", "list", "--reports", REPORTS, "--pipeline", "other"]);
    assert_eq!(
        (none.code, none.stdout.as_str()),
        (Some(0), "no jobs recorded\n")
    );

    // show: record, report and every stored file.
    let shown = env.cli(&["jobs", "show", "--reports", REPORTS, &pass]);
    assert_eq!(shown.code, Some(0), "{shown:?}");
    for f in ["record.json", "sbom.cdx.json", "findings.json", "report.md"] {
        let uri = format!("{REPORTS}/jobs/{pass}/{f}");
        assert!(
            shown.stdout.contains(&uri),
            "{uri} missing:\n{}",
            shown.stdout
        );
    }
    for want in [
        &digest,
        "PASS",
        "app-pipeline / Scan / ImageScan",
        "# scangate:",
        "CVE-2023-50387",
    ] {
        assert!(
            shown.stdout.contains(want),
            "{want} missing:\n{}",
            shown.stdout
        );
    }
    let err = json(&env.cli(&[
        "jobs",
        "show",
        "--reports",
        REPORTS,
        &error,
        "--format",
        "json",
    ]));
    assert_eq!(err["record"]["failure_type"], "ConfigurationError");
    assert!(
        err["record"]["message"]
            .as_str()
            .unwrap()
            .contains("HighThreshold"),
        "{err}"
    );
    assert_eq!(err["report_md"], Value::Null);
    // record.json and the error's report.html (what went wrong, what to do).
    let files = err["files"].to_string();
    assert_eq!(err["files"].as_array().unwrap().len(), 2, "{files}");
    assert!(
        files.contains("record.json") && files.contains("report.html"),
        "{files}"
    );

    // A job CodePipeline has handed out but nobody has recorded yet.
    let waiting = env.enqueue("app-pipeline", &[("ImageUrl", &image)], None);
    let pending = env.cli(&["jobs", "show", "--reports", REPORTS, &waiting]);
    assert_eq!(pending.code, Some(0), "{pending:?}");
    assert!(
        pending
            .stdout
            .contains(&format!("job {waiting}: no record in {REPORTS} yet")),
        "{}",
        pending.stdout
    );
    assert!(
        pending
            .stdout
            .contains("CodePipeline has it: pipeline app-pipeline, stage Scan, action ImageScan"),
        "{}",
        pending.stdout
    );
    assert!(pending.stdout.contains(&image), "{}", pending.stdout);

    let unknown = "00000000-0000-4000-8000-000000000000";
    let out = env.cli(&["jobs", "show", "--reports", REPORTS, unknown]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("no record of job {unknown} in {REPORTS}")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("CodePipeline does not know it either"),
        "{}",
        out.stderr
    );

    let out = env.cli(&["jobs", "list", "--reports", "s3://no-such-bucket/x"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("\"no-such-bucket\" does not exist"),
        "{}",
        out.stderr
    );
    let out = env.cli(&["jobs", "list", "--reports", "https://example.com/reports"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("is not supported: use s3://bucket/prefix or file:///absolute/dir"),
        "{}",
        out.stderr
    );
}

/// A file:// store needs no AWS setting at all to be read.
#[tokio::test(flavor = "multi_thread")]
async fn list_and_show_jobs_stored_in_a_directory() {
    let env = Env::new(false).await;
    let dir = tempfile::tempdir().unwrap();
    let reports = support::reports_dir_uri(dir.path());
    env.push_debian_fixture("2024").await;
    let image = env.registry.reference("fixture/debian:2024");
    let w = env.worker(&reports);
    let a = env.enqueue(
        "app-pipeline",
        &[("ImageUrl", &image), ("HighThreshold", "5")],
        None,
    );
    env.result(&a, &w).await;
    let b = env.enqueue("", &[("ImageUrl", &image), ("HighThreshold", "5")], None);
    env.result(&b, &w).await;
    drop(w);

    let run = |args: &[&str]| {
        let out = std::process::Command::new(integration_tests::corpus::scangate_bin())
            .args(args)
            .env_clear()
            .env("SCANGATE_REPORTS", &reports)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&["jobs", "list", "--wide"]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[1].contains(&b) && lines[1].contains("-/Scan/ImageScan"),
        "{out}"
    );
    assert!(lines[2].contains(&a), "{out}");
    assert!(
        lines[2].contains(&format!("{reports}/jobs/{a}/report.html")),
        "{out}"
    );
    let (code, out, err) = run(&["jobs", "list", "--pipeline", "_", "--format", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["job_id"], b.as_str());

    let (code, out, err) = run(&["jobs", "show", &a]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(&format!("{reports}/jobs/{a}/sbom.cdx.json")),
        "{out}"
    );
    assert!(out.contains("PASS"), "{out}");

    // Without CodePipeline settings the fallback fails, and says why.
    let (code, _, err) = run(&["jobs", "show", "11111111-2222-4333-8444-555555555555"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("no record of job 11111111-2222-4333-8444-555555555555 in file://"),
        "{err}"
    );
    assert!(err.contains("CodePipeline could not be asked"), "{err}");
    let (code, _, err) = run(&["jobs", "show", "../../etc/passwd"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("is not a CodePipeline job id"), "{err}");
}

/// The demo's kind of store: a plain directory given as a path, job ids
/// shortened to a unique prefix (an ambiguous one lists the candidates), a
/// table that fits 120 columns unless `--wide`, and a record's hostile
/// text shown escaped, never interpreted by the terminal.
#[test]
fn plain_directories_id_prefixes_and_a_narrow_table() {
    let cwd = tempfile::tempdir().unwrap();
    let root = cwd.path().join("reports");
    let long_image = "registry.example.com/platform-team/services/payments/settlement-reconciler:2026.12.03-build.4567";
    let jobs = [
        (
            "abc11111-aaaa-4aaa-8aaa-000000000001",
            "payments-settlement-reconciler-pipeline",
            "2026-12-01T10:00:00.5Z",
            "PASS",
            long_image.to_owned(),
        ),
        (
            "abc22222-bbbb-4bbb-8bbb-000000000002",
            "web",
            "2026-12-02T10:00:00Z",
            "FAIL",
            "r.example/web:1".to_owned(),
        ),
        (
            "def33333-cccc-4ccc-8ccc-000000000003",
            "web",
            "2026-12-03T10:00:00Z",
            "FAIL",
            "r.example/x\u{1b}[2J:1".to_owned(),
        ),
    ];
    for (id, pipeline, finished, verdict, image) in &jobs {
        let record = serde_json::json!({
            "job_id": id, "pipeline": pipeline, "stage": "Scan", "action": "ImageScan",
            "finished": finished, "verdict": verdict,
            "image": {"reference": image, "digest": "sha256:0123456789abcdef0123456789abcdef"},
            "counts": {"critical": 0, "high": 12, "medium": 340, "low": 5, "other": 7},
        })
        .to_string();
        let job_dir = root.join("jobs").join(id);
        std::fs::create_dir_all(&job_dir).unwrap();
        std::fs::write(job_dir.join("record.json"), &record).unwrap();
        std::fs::write(job_dir.join("report.md"), "# scangate: report\n").unwrap();
        let index = root.join("index").join(pipeline);
        std::fs::create_dir_all(&index).unwrap();
        std::fs::write(
            index.join(format!("{}-{id}.json", finished.replace(':', ""))),
            &record,
        )
        .unwrap();
    }
    let run = |args: &[&str]| {
        let out = std::process::Command::new(integration_tests::corpus::scangate_bin())
            .args(args)
            .current_dir(cwd.path())
            .env_clear()
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (code, out, err) = run(&["jobs", "list", "--reports", "reports"]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("FINISHED          JOB       PIPELINE                  IMAGE   ")
            && lines[0].ends_with("  VERDICT  C/H/M/L/O"),
        "{out}"
    );
    assert_eq!(lines.len(), 4, "{out}");
    for l in &lines {
        assert!(
            l.chars().count() <= 120,
            "{} columns: {l}",
            l.chars().count()
        );
    }
    assert!(!out.contains('\u{1b}'), "{out:?}");
    assert!(
        lines[1].starts_with("2026-12-03 10:00  def33333  web  ")
            && lines[1].contains("r.example/x\\u{1b}[2J:1@sha256:0123456789ab")
            && lines[1].ends_with("FAIL     0/12/340/5/7"),
        "{out}"
    );
    // The long image loses its digest and its start, keeps its tag; the
    // long pipeline name loses its end.
    assert!(
        lines[3].contains("  payments-settlement-rec…  …")
            && lines[3].contains("-reconciler:2026.12.03-build.4567  PASS"),
        "{out}"
    );

    let (code, out, _) = run(&["jobs", "list", "--reports", "reports", "--wide"]);
    assert_eq!(code, Some(0));
    let abs = std::fs::canonicalize(&root).unwrap();
    assert!(
        out.contains("abc11111-aaaa-4aaa-8aaa-000000000001"),
        "{out}"
    );
    assert!(out.contains(long_image), "{out}");
    assert!(
        out.contains(&format!(
            "file://{}/jobs/def33333-cccc-4ccc-8ccc-000000000003/report.html",
            abs.display()
        )),
        "{out}"
    );

    let (code, out, err) = run(&["jobs", "show", "--reports", "reports", "def"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("job       def33333-cccc-4ccc-8ccc-000000000003\n"),
        "{out}"
    );
    assert!(
        out.contains("image     r.example/x\\u{1b}[2J:1\n") && !out.contains('\u{1b}'),
        "{out:?}"
    );
    let (code, _, err) = run(&["jobs", "show", "--reports", "reports", "abc"]);
    assert_eq!(code, Some(2));
    assert_eq!(
        err,
        format!(
            "error: job id prefix \"abc\" matches more than one job in file://{}/: \
             abc11111-aaaa-4aaa-8aaa-000000000001, abc22222-bbbb-4bbb-8bbb-000000000002; \
             give more of the id\n",
            abs.display()
        )
    );
    let (code, out, err) = run(&["jobs", "show", "--reports", "reports", "abc2"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("abc22222-bbbb-4bbb-8bbb-000000000002"),
        "{out}"
    );

    let (code, _, err) = run(&["jobs", "list", "--reports", "no-such-dir"]);
    assert_eq!(code, Some(2));
    assert_eq!(
        err,
        "error: no-such-dir is not a directory (give a reports directory, file:///dir or s3://bucket/prefix)\n"
    );
}
