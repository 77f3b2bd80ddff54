//! A newcomer's first hour with the real `scangate` binary (issue 12): no
//! AWS settings at all, a local image given without its transport, an
//! unreachable endpoint, `demo` and `demo --serve`. Each test checks the
//! exact message and exit status a person or a script sees, and how long
//! it took where the complaint was the wait.

mod support;

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use integration_tests::corpus;
use integration_tests::images::{ImageBuilder, Layer};

/// What a run printed, and how long it took.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// `scangate ARGS…` with nothing from this machine's environment but
/// `PATH` and the given variables; `HOME` is an empty folder, so no
/// `~/.aws` either.
fn scangate(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Run {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(corpus::scangate_bin());
    cmd.args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let out = cmd.output().expect("running scangate");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// A TCP listener that counts the connections made to it (and answers
/// none): proof that nothing was sent.
struct Counter {
    addr: String,
    accepted: Arc<AtomicUsize>,
}

impl Counter {
    fn start() -> Counter {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let n = accepted.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                n.fetch_add(1, Ordering::SeqCst);
                drop(c);
            }
        });
        Counter { addr, accepted }
    }

    fn count(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

const NO_ACCOUNT: &str = "  No AWS account? `scangate demo --serve` runs a local simulation to scan against (see README, \"Your first hour\").\n";

/// No region anywhere: exit 2 at once, before the image is pulled, saying
/// what to set; not 40–54 s of retries ending in "Inspector is
/// unavailable".
#[test]
fn scan_without_a_region_fails_at_once_saying_what_to_set() {
    let target = Counter::start();
    let image = format!("{}/app:1", target.addr);
    let cwd = tempfile::tempdir().unwrap();
    for env in [
        vec![("AWS_EC2_METADATA_DISABLED", "true")],
        // The instance-metadata probe itself is bounded too.
        vec![],
        // Keys but no region: the region is still missing.
        vec![
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
        ],
    ] {
        let run = scangate(
            &["scan", &image, "--insecure-registries", &target.addr],
            &env,
            cwd.path(),
        );
        assert_eq!(run.code, Some(2), "{env:?}: {run:?}");
        assert_eq!(
            run.stderr,
            format!(
                "error: no AWS region is set, and Amazon Inspector is regional.\n  \
                 Set one: --region us-east-1, or export AWS_REGION=us-east-1, or `region = us-east-1` \
                 in the profile named by AWS_PROFILE (~/.aws/config).\n{NO_ACCOUNT}"
            ),
            "{env:?}"
        );
        assert!(run.stdout.is_empty(), "{run:?}");
        assert!(
            run.elapsed < Duration::from_secs(2),
            "{env:?}: took {:?}",
            run.elapsed
        );
    }
    assert_eq!(target.count(), 0, "nothing may be pulled or sent");
}

/// A region but no credentials: exit 2 in under 2 s with where it looked
/// and how to set them, and not one connection to the registry or to
/// Inspector (both point at a counting listener).
#[test]
fn scan_without_credentials_fails_before_any_request() {
    let target = Counter::start();
    let endpoint = format!("http://{}", target.addr);
    let image = format!("{}/app:1", target.addr);
    let cwd = tempfile::tempdir().unwrap();
    let head = "error: no AWS credentials found (looked at AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, \
                the profile \"default\" in ~/.aws/credentials and ~/.aws/config, web identity, ECS \
                and EC2 instance metadata";
    let tail = format!(
        ").\n  Set them: export AWS_PROFILE=NAME for a profile in ~/.aws/config (aws configure, aws \
         sso login), or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN \
         for temporary keys). The identity needs the IAM permission inspector-scan:ScanSbom.\n\
         {NO_ACCOUNT}"
    );
    for (args, env) in [
        (
            vec!["scan", &image, "--insecure-registries", &target.addr],
            vec![
                ("AWS_REGION", "eu-west-1"),
                ("AWS_ENDPOINT_URL_INSPECTOR_SCAN", endpoint.as_str()),
                ("AWS_EC2_METADATA_DISABLED", "true"),
            ],
        ),
        (
            vec![
                "scan",
                &image,
                "--insecure-registries",
                &target.addr,
                "--region",
                "eu-west-1",
            ],
            vec![("AWS_ENDPOINT_URL_INSPECTOR_SCAN", endpoint.as_str())],
        ),
    ] {
        let run = scangate(&args, &env, cwd.path());
        assert_eq!(run.code, Some(2), "{run:?}");
        if env.contains(&("AWS_EC2_METADATA_DISABLED", "true")) {
            assert_eq!(run.stderr, format!("{head}{tail}"));
        } else {
            // Instance metadata was asked, and off EC2 it answers with an
            // error (refused, or a proxy's 403) that is quoted.
            assert!(
                run.stderr.starts_with(head) && run.stderr.ends_with(&tail),
                "{}",
                run.stderr
            );
        }
        assert!(
            run.elapsed < Duration::from_secs(2),
            "{env:?}: took {:?}",
            run.elapsed
        );
    }
    assert_eq!(
        target.count(),
        0,
        "fails before any request, so before any retry"
    );
}

/// An endpoint nobody listens on is not throttling: a few quick attempts,
/// then a message naming the endpoint, the cause and the CLI's bound; the
/// retry warnings on a non-terminal stderr carry no colour codes.
#[test]
fn an_unreachable_endpoint_is_named_and_the_wait_bounded() {
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    ImageBuilder::new()
        .layer(Layer::new().file("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n"))
        .build()
        .unwrap()
        .write_oci_layout(&layout, Some("1"))
        .unwrap();
    let endpoint = format!("http://{closed}");
    let run = scangate(
        &["scan", &format!("oci:{}:1", layout.display())],
        &[
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_ENDPOINT_URL_INSPECTOR_SCAN", &endpoint),
        ],
        dir.path(),
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    let error = run
        .stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {run:?}"));
    let (head, tail) = error
        .split_once(" (3 attempts in ")
        .unwrap_or_else(|| panic!("{error}"));
    assert_eq!(
        head,
        format!(
            "error: cannot reach Amazon Inspector at {endpoint}: Connection refused (os error 111)"
        )
    );
    let (_elapsed, rest) = tail.split_once(';').unwrap_or_else(|| panic!("{error}"));
    assert_eq!(
        rest,
        " scangate scan gives up after 20 s in all). Check the region (AWS_REGION), \
         AWS_ENDPOINT_URL_INSPECTOR_SCAN if it is set, and that this machine can reach the \
         endpoint (proxy, firewall, VPC endpoint)"
    );
    assert!(
        run.elapsed < Duration::from_secs(20),
        "took {:?}",
        run.elapsed
    );
    assert!(
        run.stderr.contains("ScanSbom failed, retrying"),
        "the retries are logged: {}",
        run.stderr
    );
    assert!(
        !run.stderr.contains('\u{1b}'),
        "no ANSI codes in a non-terminal log: {:?}",
        run.stderr
    );
}

/// `scan app.tar`, `scan ./dir`, `scan /abs/missing.tar`: a hint with the
/// transport, exit 2, and no Docker Hub lookup (there is no network here
/// to look anything up in, and no AWS setting: the check comes first).
#[test]
fn local_paths_without_a_transport_get_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.tar"), b"not really a tar").unwrap();
    std::fs::create_dir(dir.path().join("layout")).unwrap();
    let missing = dir.path().join("gone.tar").display().to_string();
    for (cmd, arg, want) in [
        (
            "scan",
            "app.tar",
            "error: \"app.tar\" is a file here, not an image reference: for a `docker save` archive write docker-archive:app.tar\n".to_owned(),
        ),
        (
            "sbom",
            "./layout",
            "error: \"./layout\" is a directory here, not an image reference: for an OCI image layout write oci:./layout\n".to_owned(),
        ),
        (
            "scan",
            "layout",
            "error: \"layout\" is a directory here, not an image reference: for an OCI image layout write oci:layout (to pull the registry image instead, write docker.io/library/layout:latest)\n".to_owned(),
        ),
        (
            "scan",
            missing.as_str(),
            format!("error: \"{missing}\" looks like a file path, not an image reference: for a `docker save` archive write docker-archive:{missing} (there is no such file here yet)\n"),
        ),
        (
            "scan",
            "./\u{1b}[31mred",
            "error: \"./\\u{1b}[31mred\" looks like a local path, not an image reference: write oci:./\\u{1b}[31mred for an OCI image layout directory, or docker-archive:FILE.tar for a `docker save` archive (there is nothing at that path)\n".to_owned(),
        ),
    ] {
        let run = scangate(&[cmd, arg], &[], dir.path());
        assert_eq!(run.code, Some(2), "{arg}: {run:?}");
        assert_eq!(run.stderr, want, "{arg}");
        assert!(
            run.elapsed < Duration::from_secs(2),
            "{arg}: {:?}",
            run.elapsed
        );
    }
}

/// `--exit-code 0` would make a failure pass, `--exit-code 2` look like an
/// error: both refused as usage errors (exit 2), saying why.
#[test]
fn exit_codes_that_collide_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (value, why) in [
        (
            "0",
            "0 would make a policy failure look like a pass; to report without failing, raise the thresholds (e.g. --critical-threshold unlimited --high-threshold unlimited)",
        ),
        (
            "2",
            "2 is the exit status of an error; a policy failure must be told apart from one: use 1 or 3 to 255",
        ),
    ] {
        let run = scangate(
            &["scan", "docker-archive:x.tar", "--exit-code", value],
            &[],
            dir.path(),
        );
        assert_eq!(run.code, Some(2), "{run:?}");
        let first = run.stderr.lines().next().unwrap_or_default();
        assert_eq!(
            first,
            format!("error: invalid value '{value}' for '--exit-code <N>': {why}")
        );
    }
}

/// `demo --serve` prints the variables that make `scangate scan` use its
/// emulators, labelled as a simulation; a scan with exactly those (and
/// nothing else from this machine) fails the bundled image on its real
/// recorded HIGH finding.
#[tokio::test(flavor = "multi_thread")]
async fn demo_serve_lets_scan_run_against_the_emulators() {
    let cwd = tempfile::tempdir().unwrap();
    let mut child = Command::new(corpus::scangate_bin())
        .args(["demo", "--serve"])
        .current_dir(cwd.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "SCANGATE_SHARED_DIR",
            corpus::shared_dir().display().to_string(),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Killed and reaped however the test ends, like a worker.
    let child = support::ChildGuard::new(child);
    let mut lines = Vec::new();
    let mut reader = BufReader::new(stdout);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut l = String::new();
        if reader.read_line(&mut l).unwrap() == 0 || Instant::now() > deadline {
            panic!("demo --serve ended early: {lines:#?}");
        }
        let l = l.trim_end().to_owned();
        let done = l == "Serving until Ctrl-C.";
        lines.push(l);
        if done {
            break;
        }
    }
    let text = lines.join("\n");
    assert_eq!(
        lines[0], "scangate demo --serve: a SIMULATION, not Amazon Inspector.",
        "{text}"
    );
    assert!(
        text.contains("vulnerability knowledge is a fixed sample")
            && text.contains("a PASS here says nothing about an image's real risk"),
        "{text}"
    );
    let env: Vec<(String, String)> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "AWS_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_EC2_METADATA_DISABLED",
            "AWS_ENDPOINT_URL_INSPECTOR_SCAN",
            "AWS_ENDPOINT_URL_CODEPIPELINE",
            "SCANGATE_INSECURE_REGISTRIES",
        ]
    );
    for (_, v) in &env {
        assert!(!v.contains("amazonaws.com"), "nothing real: {v}");
    }
    let scan_line = lines
        .iter()
        .find_map(|l| l.strip_prefix("scangate scan "))
        .unwrap_or_else(|| panic!("no scan command: {text}"));
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let args = ["scan", scan_line, "--format", "json"];
    let run = tokio::task::spawn_blocking({
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let env: Vec<(String, String)> = env_refs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let cwd = cwd.path().to_owned();
        move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            scangate(&args, &env, &cwd)
        }
    })
    .await
    .unwrap();
    assert_eq!(
        run.code,
        Some(1),
        "the default policy fails a HIGH: {run:?}"
    );
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["verdict"], "FAIL");
    assert!(
        run.stdout.contains("CVE-2023-50387"),
        "the bundled answer's HIGH: {}",
        run.stdout
    );
    drop(child);
}

/// `demo` runs its three jobs and then says how to look at them; the
/// commands it prints work as printed: `jobs list` on the plain directory
/// fits 120 columns, `jobs show` takes the printed id prefix.
#[test]
fn demo_says_what_to_do_next_and_it_works() {
    let cwd = tempfile::tempdir().unwrap();
    let run = scangate(&["demo"], &[], cwd.path());
    assert_eq!(run.code, Some(0), "{run:?}");
    for want in [
        "job strict (",
        "job lenient (",
        "job broken (",
        "Next:",
        "  list the jobs:  scangate jobs list --reports scangate-demo-reports",
        "  scan yourself:  scangate demo --serve   (then scangate scan against its emulators)",
    ] {
        assert!(run.stdout.contains(want), "{want} missing:\n{}", run.stdout);
    }
    let report = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("  open a report:  file://"))
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(Path::new(report).is_file(), "{report}");
    let show = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("  show one job:   scangate "))
        .unwrap_or_else(|| panic!("{}", run.stdout));
    let list = scangate(
        &["jobs", "list", "--reports", "scangate-demo-reports"],
        &[],
        cwd.path(),
    );
    assert_eq!(list.code, Some(0), "{list:?}");
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", list.stdout);
    for l in &lines {
        assert!(
            l.chars().count() <= 120,
            "{} columns: {l}",
            l.chars().count()
        );
    }
    assert!(lines[0].starts_with("FINISHED"), "{}", list.stdout);
    let args: Vec<&str> = show.split(' ').collect();
    let shown = scangate(&args, &[], cwd.path());
    assert_eq!(shown.code, Some(0), "{shown:?}");
    assert!(
        shown.stdout.contains("demo-strict / Scan / ScanGate")
            || shown.stdout.contains("demo-lenient / Scan / ScanGate")
            || shown.stdout.contains("demo-broken / Scan / ScanGate"),
        "{}",
        shown.stdout
    );
}
