//! `report.html` in a real browser: headless Debian chromium loads the
//! report rendered from a real ScanSbom answer, runs its script, and the
//! dumped DOM must show every finding row and the script's filtering.
//!
//! Skipped (with a message) only when chromium is absent and `CI` is unset;
//! under CI it must run.

use std::path::{Path, PathBuf};
use std::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";

fn report() -> PathBuf {
    integration_tests::corpus::workspace_dir().join("src/report/snapshots/debian.html")
}

fn chromium_present() -> bool {
    if Path::new(CHROMIUM).exists() {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    assert!(
        !ci,
        "{CHROMIUM} is missing and CI is set: install the chromium package"
    );
    eprintln!(
        "SKIPPED: {CHROMIUM} is not installed (apt-get install chromium); set CI=true to make this a failure"
    );
    false
}

/// The DOM after the page's script ran.
fn dump_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("running chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn finding_rows(dom: &str) -> Vec<&str> {
    dom.split("<tr ")
        .skip(1)
        .filter(|r| r.starts_with("class=\"finding "))
        .collect()
}

#[test]
fn findings_table_renders_every_row_and_the_script_filters_them() {
    if !chromium_present() {
        return;
    }
    let path = report();
    let html = std::fs::read_to_string(&path).unwrap();
    let want = html.matches("<tr class=\"finding ").count();
    assert_eq!(want, 9, "the Debian answer has 9 findings");

    let url = format!("file://{}", path.display());
    let dom = dump_dom(&url);
    let rows = finding_rows(&dom);
    assert_eq!(rows.len(), want);
    assert!(rows.iter().all(|r| !r.contains(" hidden")));
    // Text only the script writes.
    assert!(
        dom.contains(&format!("{want} of {want} findings shown")),
        "the script did not run"
    );
    assert!(dom.contains("id=\"verdict\" class=\"verdict FAIL\""));

    // The script's filters, preset from the URL fragment.
    let dom = dump_dom(&format!("{url}#status=violating"));
    let rows = finding_rows(&dom);
    assert_eq!(rows.len(), want);
    let visible: Vec<&&str> = rows.iter().filter(|r| !r.contains(" hidden")).collect();
    assert_eq!(visible.len(), 1, "one violating finding (gcc-12)");
    assert!(visible[0].contains("CVE-2023-4039"));
    assert!(dom.contains(&format!("1 of {want} findings shown")));
}

/// The CSP admits scripts by hash only: the page's own script runs (above),
/// a script injected into the page, or ours altered by one byte, does not.
#[test]
fn the_csp_blocks_any_script_but_our_own() {
    if !chromium_present() {
        return;
    }
    let html = std::fs::read_to_string(report()).unwrap();
    assert!(!html.contains("unsafe-inline"));
    let dir = tempfile::tempdir().unwrap();
    // An injected script and handler, as a failure of escaping would let in:
    // each would write a marker into the page.
    let injected = html.replace(
        "<section id=\"summary\">",
        "<script>document.title='INJECTED-SCRIPT'</script><img src=x onerror=\"document.title='INJECTED-HANDLER'\"><section id=\"summary\">",
    );
    let p = dir.path().join("injected.html");
    std::fs::write(&p, injected).unwrap();
    let dom = dump_dom(&format!("file://{}", p.display()));
    assert!(!dom.contains("<title>INJECTED"), "an injected script ran");
    assert!(
        dom.contains("9 of 9 findings shown"),
        "our own script still runs"
    );
    // Our script with one byte changed no longer matches its hash.
    let altered = html.replacen("(function(){", "(function(){ ", 1);
    assert_ne!(altered, html);
    let p = dir.path().join("altered.html");
    std::fs::write(&p, altered).unwrap();
    let dom = dump_dom(&format!("file://{}", p.display()));
    // (The script's source, in the DOM too, holds "' findings shown'".)
    assert!(
        !dom.contains("9 of 9 findings shown") && dom.contains(">9 findings</span>"),
        "a script that does not match the hash ran"
    );
}
