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

/// Screenshots at the two widths people read reports at (a laptop, a
/// phone), and the layout measured in the same browser: with every
/// `<details>` opened and an unbroken 600-character token in a description,
/// the page's scroll width must not exceed the viewport (wide tables scroll
/// inside their own box, not the page).
///
/// Headless Chromium will not make a window narrower than 500 px, so the
/// report is shown in a borderless iframe exactly `width` px wide (its
/// layout viewport is then `width`, as on a phone), and the screenshot of
/// that many pixels holds exactly the report.
#[test]
fn the_report_fits_1280_and_390_pixels_with_everything_unfolded() {
    if !chromium_present() {
        return;
    }
    let html = std::fs::read_to_string(report()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let long = "A".repeat(600);
    let probed = probe(&html.replacen("<p>The iconv()", &format!("<p>{long} The iconv()"), 1));
    assert!(probed.contains(&long));
    std::fs::write(dir.path().join("probe.html"), probed).unwrap();
    std::fs::copy(report(), dir.path().join("report.html")).unwrap();
    for width in [1280u32, 390] {
        // The screenshot of the report as shipped.
        let png = dir.path().join(format!("report-{width}.png"));
        let shown = framed(dir.path(), "report.html", width, "");
        chromium(&[
            &format!("--screenshot={}", png.display()),
            &format!("--window-size={width},2000"),
            &shown,
        ]);
        let bytes = std::fs::read(&png).expect("the screenshot");
        assert_eq!(&bytes[1..4], b"PNG");
        let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((w, h), (width, 2000), "the screenshot's size");
        // A blank page compresses to a few kilobytes.
        assert!(bytes.len() > 20_000, "{width}px: {} bytes", bytes.len());
        if let Some(keep) = std::env::var_os("SCANGATE_SCREENSHOTS") {
            std::fs::copy(&png, Path::new(&keep).join(format!("report-{width}.png"))).unwrap();
        }

        // The same page, measured: the probe (admitted by its own hash, the
        // CSP otherwise unchanged) opens every <details> and posts the
        // widths to the frame's parent, which writes them into its DOM.
        let listen = "<script>window.addEventListener('message',function(m){document.body.setAttribute('data-probe',m.data);});</script>";
        let measured = framed(dir.path(), "probe.html", width, listen);
        let dom = String::from_utf8(chromium(&[
            &format!("--window-size={width},2000"),
            "--virtual-time-budget=5000",
            "--dump-dom",
            &measured,
        ]))
        .unwrap();
        let probe = dom
            .split("data-probe=\"")
            .nth(1)
            .and_then(|p| p.split('"').next())
            .unwrap_or_else(|| panic!("{width}px: the probe did not report: {dom}"));
        let parts: Vec<&str> = probe.split('|').collect();
        let num = |i: usize| -> u32 { parts[i].parse().unwrap() };
        let (scroll, viewport, opened) = (num(0), num(1), num(2));
        eprintln!("{width}px: scrollWidth {scroll}, viewport {viewport}, {opened} details opened");
        assert_eq!(viewport, width, "the report's layout viewport");
        assert!(opened > 9, "every finding's details opened: {opened}");
        assert!(
            scroll <= viewport,
            "{width}px: the page is {scroll}px wide, wider than the {viewport}px viewport"
        );
        assert_eq!(
            parts[3], "9 of 9 findings shown",
            "our own script ran under the CSP"
        );
    }
}

/// A page holding `page` (in `dir`) in a borderless iframe `width` px wide.
fn framed(dir: &Path, page: &str, width: u32, script: &str) -> String {
    let name = format!("frame-{width}-{page}");
    std::fs::write(
        dir.join(&name),
        format!(
            "<!DOCTYPE html><html><body style=\"margin:0\">{script}<iframe src=\"{page}\" style=\"border:0;display:block;width:{width}px;height:2000px\"></iframe></body></html>"
        ),
    )
    .unwrap();
    format!("file://{}", dir.join(name).display())
}

const PROBE: &str = "document.querySelectorAll('details').forEach(function(d){d.open=true;});parent.postMessage([document.documentElement.scrollWidth,window.innerWidth,document.querySelectorAll('details[open]').length,document.getElementById('shown').textContent].join('|'),'*');";

/// The report with [`PROBE`] before `</body>` and its hash added to the
/// CSP's script-src.
fn probe(html: &str) -> String {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};
    let hash = format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(PROBE.as_bytes()))
    );
    let html = html.replacen("script-src ", &format!("script-src {hash} "), 1);
    html.replacen("</body>", &format!("<script>{PROBE}</script></body>"), 1)
}

/// Runs headless chromium with the flags every call needs; its stdout.
fn chromium(args: &[&str]) -> Vec<u8> {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .output()
        .expect("running chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
