//! The fuzz corpora replayed on stable: every file under
//! `fuzz/corpus/<target>/` (seeds and what fuzzing kept) and
//! `fuzz/regressions/<target>/` (crashes, timeouts and out-of-memory inputs
//! found by `integration-tests/scripts/fuzz.sh`) goes through the target's
//! entry point in a child process of this test binary, under a time limit
//! and an address-space limit, so that a blow-up fails this test instead of
//! taking the CI machine down with it.
//!
//! Findings that are not fixed yet are listed in `fuzz/regressions/open.txt`
//! (`target/file  owner: what`): `replay_corpora` skips them and says so,
//! `replay_open_findings` (ignored) runs only them. Fixing one means
//! deleting its line.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// Per input, in a debug build (release under libFuzzer gets 10 s).
const TIME_LIMIT: Duration = Duration::from_secs(60);
/// Address space of a replay child: far above what any input legitimately
/// needs in a debug build, far below what the blow-ups found reach.
const MEMORY_LIMIT_KIB: u64 = 3 << 20;
/// Set in a replay child: `TARGET=PATH` of the one input it runs.
const CHILD_ENV: &str = "SCANGATE_FUZZ_REPLAY";

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// `target/file` entries of `fuzz/regressions/open.txt`.
fn open_findings() -> Vec<String> {
    let text = std::fs::read_to_string(fuzz_dir().join("regressions/open.txt")).unwrap_or_default();
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Every (target, file) of the corpora and regressions, sorted.
fn inputs() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for kind in ["corpus", "regressions"] {
        let Ok(dirs) = std::fs::read_dir(fuzz_dir().join(kind)) else {
            continue;
        };
        for dir in dirs.map(Result::unwrap).filter(|d| d.path().is_dir()) {
            let target = dir.file_name().to_string_lossy().into_owned();
            assert!(
                run(&target).is_some(),
                "fuzz/{kind}/{target}: no such fuzz target in src/fuzzing.rs"
            );
            for f in std::fs::read_dir(dir.path()).unwrap().map(Result::unwrap) {
                if f.path().is_file() {
                    out.push((target.clone(), f.path()));
                }
            }
        }
    }
    out.sort();
    out
}

fn key(target: &str, file: &Path) -> String {
    format!("{target}/{}", file.file_name().unwrap().to_string_lossy())
}

/// Runs one input in a child under the limits; `Err` says what went wrong.
fn replay_in_child(target: &str, file: &Path) -> Result<Duration, String> {
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let mut child = Command::new("/bin/sh")
        .args(["-c", r#"ulimit -v "$1" && shift && exec "$@""#, "sh"])
        .arg(MEMORY_LIMIT_KIB.to_string())
        .arg(exe)
        .args(["--exact", "fuzzing::tests::replay_child", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(CHILD_ENV, format!("{target}={}", file.display()))
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // stderr is drained on a thread, so a chatty child cannot block on a
    // full pipe while we wait for it.
    let mut stderr = child.stderr.take().unwrap();
    let drain = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("still running after {TIME_LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = started.elapsed();
    let stderr = drain.join().unwrap();
    if status.success() {
        return Ok(elapsed);
    }
    let tail: String = stderr
        .lines()
        .rev()
        .take(12)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    Err(format!("{status} after {elapsed:?}\n{tail}"))
}

fn replay(filter: impl Fn(&str) -> bool) -> usize {
    let mut failures = Vec::new();
    let mut count = 0;
    for (target, file) in inputs() {
        let k = key(&target, &file);
        if !filter(&k) {
            continue;
        }
        count += 1;
        match replay_in_child(&target, &file) {
            Ok(t) if t > Duration::from_secs(5) => eprintln!("fuzz replay: {k}: slow ({t:?})"),
            Ok(_) => {}
            Err(e) => failures.push(format!("{k}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "fuzz replay failures:\n\n{}",
        failures.join("\n\n")
    );
    count
}

/// The child side of [`replay_in_child`]; a no-op in the ordinary run.
#[test]
fn replay_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (target, path) = spec.split_once('=').unwrap();
    let data = std::fs::read(path).unwrap();
    run(target).unwrap()(&data);
}

#[test]
fn replay_corpora() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let open = open_findings();
    for k in &open {
        eprintln!("fuzz replay: {k}: skipped, an open finding (fuzz/regressions/open.txt)");
    }
    let n = replay(|k| !open.iter().any(|o| o == k));
    assert!(
        n >= TARGETS.len(),
        "only {n} corpus files for {} targets",
        TARGETS.len()
    );
}

/// The open findings: fails until each is fixed (then delete its line in
/// `fuzz/regressions/open.txt`).
#[test]
#[ignore = "open fuzz findings (fuzz/regressions/open.txt), failing until fixed"]
fn replay_open_findings() {
    let open = open_findings();
    replay(|k| open.iter().any(|o| o == k));
}

/// Every target has its fuzz target file and a seed corpus.
#[test]
fn every_target_has_a_fuzz_target_and_seeds() {
    for (name, _) in TARGETS {
        let src = fuzz_dir().join(format!("fuzz_targets/{name}.rs"));
        let text =
            std::fs::read_to_string(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        assert!(
            text.contains(&format!("scangate::fuzzing::{name}(")),
            "{} does not call scangate::fuzzing::{name}",
            src.display()
        );
        let seeds = std::fs::read_dir(fuzz_dir().join("corpus").join(name))
            .map(|d| d.count())
            .unwrap_or(0);
        assert!(seeds > 0, "fuzz/corpus/{name} has no seeds");
    }
}

/// A cataloger target's path is one its cataloger really reads, and the
/// seeds give packages: otherwise the target fuzzes nothing.
#[test]
fn catalog_targets_reach_their_cataloger() {
    for (target, path, mode) in CATALOG_PATHS {
        let mut seeds: Vec<PathBuf> = std::fs::read_dir(fuzz_dir().join("corpus").join(target))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        seeds.sort();
        let found = seeds.iter().any(|s| {
            let data = std::fs::read(s).unwrap();
            cataloger_target(target, &data).is_some_and(|c| {
                if *target == "os_release" {
                    c.os.is_some()
                } else {
                    c.packages.iter().any(|p| p.location == *path)
                }
            })
        });
        assert!(
            found,
            "no seed of {target} gives a package at /{path} (mode {mode:o})"
        );
    }
}

#[test]
fn minimal_elf_carries_a_cargo_auditable_section() {
    use std::io::Write as _;
    let json = br#"{"packages":[{"name":"serde","version":"1.0.200","source":"crates.io"},{"name":"app","version":"0.1.0","source":"local","root":true}]}"#;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(json).unwrap();
    let section = z.finish().unwrap();
    let c = cataloger_target("cargo_auditable", &section).unwrap();
    let names: Vec<_> = c
        .packages
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_str()))
        .collect();
    assert_eq!(names, [("serde", "1.0.200")], "{:?}", c.warnings);
}
