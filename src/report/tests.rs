//! Every report format rendered from real ScanSbom answers (and the real
//! inspector-sbomgen SBOMs they answered), compared with snapshots in
//! `snapshots/` (`UPDATE_SNAPSHOTS=1` rewrites them).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::*;
use crate::inspector::findings::{self, Finding};
use crate::inspector::{ScanResult, Severity};
use crate::pipeline::{ScanReport, Timings};
use crate::policy::{PolicyFile, PolicyOverrides};

const TODAY: time::Date = time::macros::date!(2026 - 06 - 15);
const META: Meta = Meta {
    job_id: "0f1e2d3c-4b5a-4678-9abc-def012345678",
    generated: "2026-06-15T12:00:00Z",
};

/// `SCANGATE_SHARED_DIR` when set (a worktree elsewhere than the main
/// checkout), else the `shared/` beside the checkout.
fn fixtures() -> PathBuf {
    std::env::var_os("SCANGATE_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
        .join("fixtures/inspector")
}

fn read(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// A report as the pipeline would build it from this answer and SBOM.
fn report(image: &str, answer: &str, sbom: &str, policy_yaml: &str) -> ScanReport {
    let answer = read(&fixtures().join(answer))["sbom"].clone();
    let sbom = read(&fixtures().join(sbom));
    let mut fs = findings::merge(vec![findings::from_answer(&answer)]);
    findings::attach_locations(&mut fs, &sbom);
    let policy = PolicyFile::parse("scangate.yaml", policy_yaml)
        .unwrap()
        .to_policy(&PolicyOverrides::default());
    let decision = policy.decide_on(&fs, TODAY);
    let mut warnings = Vec::new();
    crate::inspector::collect_warnings(&answer, &mut warnings);
    let packages = fs.len();
    ScanReport {
        image: image.to_owned(),
        manifest_digest: "sha256:4b1d3a6c0a3b0f0e2e8f8a5e6f0c6b1f1b6a3f0e9d8c7b6a5f4e3d2c1b0a9f8e"
            .into(),
        index_digest: None,
        config_digest: "sha256:00".into(),
        os: None,
        packages,
        sbom_components: 0,
        sbom,
        sbom_parts: 1,
        result: ScanResult {
            findings: fs,
            answers: vec![],
            warnings: warnings.clone(),
            notes: findings::component_notes(&answer),
            calls: 1,
        },
        decision,
        fixable_only: policy.fixable_only,
        warnings,
        timings: Timings::default(),
        report_uri: None,
        sbom_uri: None,
        risks: Default::default(),
    }
}

const DEBIAN_POLICY: &str = "version: 1
thresholds: { medium: 0 }
ignore:
  - id: CVE-2023-50387
    package: pkg:deb/debian/systemd
    reason: no DNSSEC validation in this image
    expires: 2026-12-31
  - id: CVE-2024-2961
    reason: iconv ISO-2022-CN-EXT is not reachable
    expires: 2026-01-01
  - id: CVE-1999-0001
    reason: left over from the old base image
";

fn debian() -> ScanReport {
    report(
        "registry.example.com/team/debian:12",
        "scans/debian_latest.json.scan",
        "sboms/debian_latest.json",
        DEBIAN_POLICY,
    )
}

fn ubuntu_eol() -> ScanReport {
    report(
        "registry.example.com/legacy/ubuntu:14.04",
        "dockerfile-checks-inspector-scan-cdx.json",
        "dockerfile-checks-sbom.json",
        "version: 1\nthresholds: { critical: null, high: null }\nfail_on_kev: true\n",
    )
}

fn alpine() -> ScanReport {
    report(
        "alpine:3.18.2",
        "scans/alpine_3.18.2.json.scan",
        "sboms/alpine_3.18.2.json",
        "version: 1\nthresholds: { critical: 5, high: 10 }\n",
    )
}

fn snapshot(name: &str, got: &str) {
    let path = PathBuf::from(file!())
        .with_file_name("snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path:?}: {e} (UPDATE_SNAPSHOTS=1 writes it)"));
    assert!(
        got == want,
        "{path:?} differs (UPDATE_SNAPSHOTS=1 rewrites it)"
    );
}

/// `large`: the text formats only, so the repository does not carry
/// megabytes of HTML and JSON for one answer (the 700-finding Ubuntu one).
fn all_formats(name: &str, r: &ScanReport, large: bool) {
    snapshot(&format!("{name}.md"), &markdown::render(META.job_id, r));
    snapshot(&format!("{name}.junit.xml"), &junit::render(&META, r));
    snapshot(&format!("{name}.table.txt"), &table::render(r, false));
    if large {
        return;
    }
    snapshot(&format!("{name}.html"), &html::render(&META, r));
    snapshot(
        &format!("{name}.sarif"),
        &(serde_json::to_string_pretty(&sarif::render(&META, r)).unwrap() + "\n"),
    );
    snapshot(
        &format!("{name}.cdx.json"),
        &(serde_json::to_string_pretty(&cyclonedx::render(r)).unwrap() + "\n"),
    );
}

#[test]
fn snapshots_debian_with_ignore_rules() {
    let r = debian();
    assert_eq!(r.decision.verdict, crate::policy::Verdict::Fail);
    assert_eq!(r.decision.suppressions.len(), 1);
    assert_eq!(r.decision.expired_rules.len(), 1);
    assert_eq!(r.decision.stale_rules.len(), 1);
    all_formats("debian", &r, false);
}

#[test]
fn snapshots_end_of_life_ubuntu_with_kev() {
    let r = ubuntu_eol();
    assert!(
        r.decision
            .violations
            .iter()
            .any(|v| v.to_string().contains("CVE-2021-3156")),
        "{:?}",
        r.decision.violations
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w == "Ubuntu 14.04: end of life since 2024-04-01"),
        "{:?}",
        r.warnings
    );
    all_formats("ubuntu-eol", &r, true);
}

#[test]
fn snapshots_alpine_passing() {
    let r = alpine();
    assert_eq!(r.decision.verdict, crate::policy::Verdict::Pass);
    all_formats("alpine", &r, false);
}

#[test]
fn status_follows_the_decision() {
    let r = debian();
    let d = &r.decision;
    let st = |id: &str, purl_part: &str| {
        let f = r
            .result
            .findings
            .iter()
            .find(|f| f.id == id && f.purl.contains(purl_part))
            .unwrap();
        status_of(d, f, r.fixable_only)
    };
    assert_eq!(st("CVE-2023-50387", "/systemd@"), Status::Suppressed);
    // medium: 0 makes the one MEDIUM id violate.
    assert_eq!(st("CVE-2023-4039", "/gcc-12@"), Status::Violating);
    // Its rule expired: counted again, but OTHER is unlimited.
    assert_eq!(st("CVE-2024-2961", "/glibc@"), Status::Passing);
}

#[test]
fn junit_counts_match_the_statuses_and_parse_shape() {
    let r = debian();
    let x = junit::render(&META, &r);
    let statuses: Vec<Status> = r
        .result
        .findings
        .iter()
        .map(|f| status_of(&r.decision, f, false))
        .collect();
    let fails = statuses.iter().filter(|s| **s == Status::Violating).count() + 1;
    let skips = statuses
        .iter()
        .filter(|s| **s == Status::Suppressed)
        .count();
    assert!(x.contains(&format!(
        r#"tests="{}" failures="{fails}" errors="0" skipped="{skips}""#,
        r.result.findings.len() + 1
    )));
    assert_eq!(x.matches("<testcase ").count(), r.result.findings.len() + 1);
    assert_eq!(x.matches("<failure ").count(), fails);
    assert_eq!(x.matches("<skipped ").count(), skips);
}

#[test]
fn sarif_has_one_rule_per_id_and_one_result_per_finding() {
    let r = ubuntu_eol();
    let s = sarif::render(&META, &r);
    let run = &s["runs"][0];
    let ids: std::collections::BTreeSet<&str> =
        r.result.findings.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(
        run["tool"]["driver"]["rules"].as_array().unwrap().len(),
        ids.len()
    );
    assert_eq!(
        run["results"].as_array().unwrap().len(),
        r.result.findings.len()
    );
    let sudo = run["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["ruleId"] == "CVE-2021-3156")
        .unwrap();
    assert_eq!(sudo["level"], "error");
    let rule = &run["tool"]["driver"]["rules"][sudo["ruleIndex"].as_u64().unwrap() as usize];
    assert_eq!(rule["id"], "CVE-2021-3156");
    assert_eq!(rule["properties"]["security-severity"], "7.8");
    // This SBOM names no database path for sudo: the image is the location.
    assert_eq!(
        sudo["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "registry.example.com/legacy/ubuntu:14.04"
    );
    assert_eq!(
        sudo["locations"][0]["logicalLocations"][0]["fullyQualifiedName"],
        "pkg:deb/ubuntu/sudo@1.8.9p5-1ubuntu1.4?arch=amd64&distro=14.04&epoch=0"
    );
    let s = sarif::render(&META, &debian());
    let gcc = s["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["ruleId"] == "CVE-2023-4039")
        .unwrap();
    assert_eq!(
        gcc["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "var/lib/dpkg/status"
    );
    assert_eq!(gcc["level"], "warning");
}

#[test]
fn security_severity_stays_in_the_band_of_our_severity() {
    assert_eq!(
        sarif::security_severity(Severity::High, Some(7.5)).as_deref(),
        Some("7.5")
    );
    // A distro's "medium" with CVSS 7.8 must not show as high on GitHub.
    assert_eq!(
        sarif::security_severity(Severity::Medium, Some(7.8)).as_deref(),
        Some("5.5")
    );
    assert_eq!(
        sarif::security_severity(Severity::Critical, None).as_deref(),
        Some("9.5")
    );
    assert_eq!(sarif::security_severity(Severity::Other, Some(5.0)), None);
}

#[test]
fn hostile_text_is_escaped_everywhere() {
    let mut r = alpine();
    let evil = Finding {
        id: "CVE-<script>alert(1)</script>".into(),
        severity: Severity::High,
        package: "pkg\"><img src=x onerror=alert(2)>".into(),
        version: "1\u{1}2".into(),
        purl: "pkg:apk/alpine/x@1".into(),
        description: "</script><script>alert(3)</script> | pipe\nnewline".into(),
        url: Some("javascript:alert(4)".into()),
        references: vec!["javascript:alert(5)".into()],
        ..Finding::default()
    };
    r.result.findings.push(evil);
    let h = html::render(&META, &r);
    assert!(!h.contains("<script>alert"), "script injected");
    assert!(!h.contains("<img src=x"), "attribute broken out of");
    assert!(!h.contains("href=\"javascript:"), "javascript: link");
    assert_eq!(h.matches("<script>").count(), 1, "only our own script");
    let x = junit::render(&META, &r);
    assert!(!x.contains('\u{1}') && x.contains("1\u{FFFD}2"));
    assert!(!x.contains("<script>"));
    let md = markdown::render("-", &r);
    assert!(md.contains("pipe newline") || !md.contains("\nnewline |"));
}

#[test]
fn table_is_plain_without_colour_and_painted_with_it() {
    let r = debian();
    assert!(!table::render(&r, false).contains('\x1b'));
    let c = table::render(&r, true);
    assert!(c.contains("\x1b[1;31mFAIL\x1b[0m"));
}

#[test]
fn reports_split_inherited_findings_from_the_image_own() {
    use crate::policy::{BaseImageDecision, BaseSource, Counts, InheritedFinding, Thresholds};
    let mut r = alpine();
    let f = r
        .result
        .findings
        .iter()
        .find(|f| f.severity == Severity::Critical)
        .unwrap()
        .clone();
    r.decision.base_image = Some(BaseImageDecision {
        reference: Some("public.ecr.aws/docker/library/alpine:3.18.2".into()),
        source: Some(BaseSource::Policy),
        digest: Some("sha256:0123".into()),
        base_layers: 1,
        matched_layers: 1,
        image_layers: 2,
        applied: true,
        warning: None,
        thresholds: Thresholds::default(),
        counts: Counts::default(),
        gated_counts: Counts::default(),
        inherited: vec![InheritedFinding {
            id: f.id.clone(),
            severity: f.severity,
            package: f.package.clone(),
            purl: f.purl.clone(),
            layers: vec![0],
        }],
    });
    let own = r.result.findings.len() - 1;
    let md = markdown::render(META.job_id, &r);
    assert!(md.contains("## Base image"), "{md}");
    assert!(md.contains("public.ecr.aws/docker/library/alpine:3.18.2 (1 of the image's 2 layers)"));
    assert!(md.contains(&format!(
        "1 findings inherited from the base image (judged by the base_image thresholds), {own} added"
    )));
    assert!(
        md.contains(&format!("| CRITICAL | {} | {} | 0 |", f.id, f.package)),
        "{md}"
    );
    let html = html::render(&META, &r);
    let section = &html[html
        .find(r#"<section id="base-image">"#)
        .expect("base-image section")..];
    let section = &section[..section.find("</section>").unwrap()];
    assert!(
        section.contains(&f.id) && section.contains(&format!("{own} added")),
        "{section}"
    );
}

/// One finding and one report where every string the image, Inspector, the
/// policy file or the job controls is an attack on the format it lands in.
fn hostile() -> ScanReport {
    let mut r = alpine();
    r.image = "evil\u{1b}]0;owned\u{7}<b>img</b>".into();
    r.warnings
        .push("layer 2: skipped etc/\u{1b}[2J\u{1b}[1;1HPASS\r\u{7}\u{202e}txt.exe".into());
    r.result.findings.push(Finding {
        id: "CVE-1<script>alert(1)</script>".into(),
        severity: Severity::High,
        package: "pkg|x\n| forged | row |<img src=x onerror=alert(2)>![i](http://e/x.png)[l](javascript:alert(3))<!-- c -->".into(),
        version: "1.0\u{1b}[31m\r\u{7}".into(),
        fixed_version: Some("2.0`code`".into()),
        purl: "pkg:apk/alpine/x@1".into(),
        path: Some("javascript:alert(8)".into()),
        description: "desc <script>alert(4)</script> [click](javascript:alert(5)) ![img](https://evil/x.png)\n# heading\n\n1. item\n\n> quote".into(),
        url: Some("javascript:alert(6)".into()),
        references: vec![
            "https://ok.example/a?b=1&c=2".into(),
            "javascript:alert(7)".into(),
            "https://x.example/\"><script>".into(),
        ],
        ..Finding::default()
    });
    r
}

const HOSTILE_PKG: &str = "pkg\\|x \\| forged \\| row \\|&lt;img src=x onerror=alert(2)&gt;\\!\\[i\\](http://e/x.png)\\[l\\](javascript:alert(3))&lt;\\!-- c --&gt; 1.0\u{FFFD}\\[31m \u{FFFD}";

/// The hostile finding's row: matched package, installed (the same: the
/// SBOM names no binaries for it), fixed version, no EPSS.
fn hostile_row() -> String {
    format!(
        "| HIGH | CVE-1&lt;script&gt;alert(1)&lt;/script&gt; | {HOSTILE_PKG} | {HOSTILE_PKG} | 2.0\\`code\\` |  |"
    )
}

/// Pipes that end a cell: not preceded by a backslash.
fn cell_pipes(line: &str) -> usize {
    let b = line.as_bytes();
    (0..b.len())
        .filter(|&i| b[i] == b'|' && (i == 0 || b[i - 1] != b'\\'))
        .count()
}

/// `markdown`: also no live `[…](javascript:…)` link (in HTML, markdown
/// syntax is just text).
fn assert_inert(what: &str, text: &str, markdown: bool) {
    for bad in ["<script", "<img", "<b>", "<!--", "<javascript:"] {
        assert!(!text.contains(bad), "{what}: {bad:?} survived");
    }
    // A markdown link needs an unescaped `](`.
    for (i, _) in text.match_indices("](javascript:").filter(|_| markdown) {
        assert!(
            i > 0 && &text[i - 1..i] == "\\",
            "{what}: a javascript: link survived"
        );
    }
    assert!(
        // HTML keeps tabs and CRs: whitespace there.
        !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && (markdown || !matches!(c, '\t' | '\r'))),
        "{what}: a control character survived"
    );
    assert!(
        !text.contains('\u{202e}'),
        "{what}: a bidi override survived"
    );
}

#[test]
fn markdown_keeps_hostile_text_as_text() {
    let md = markdown::render(META.job_id, &hostile());
    assert_inert("report.md", &md, true);
    assert!(md.contains(&format!("\n{}\n", hostile_row())), "{md}");
    assert!(
        md.starts_with("# scangate: evil\u{FFFD}\\]0;owned\u{FFFD}&lt;b&gt;img&lt;/b&gt; — PASS\n")
    );
    assert!(md.contains(
        "\n- layer 2: skipped etc/\u{FFFD}\\[2J\u{FFFD}\\[1;1HPASS \u{FFFD}\u{FFFD}txt.exe\n"
    ));
    // Every table row keeps its column count.
    for line in md.lines().filter(|l| l.starts_with('|')) {
        let header = md[..md.find(line).unwrap()]
            .lines()
            .rev()
            .take_while(|l| l.starts_with('|'))
            .last()
            .unwrap_or(line);
        assert_eq!(cell_pipes(line), cell_pipes(header), "broken row: {line}");
    }
    // A job id that is not plain is text, not a code span it could end.
    let md = markdown::render("a`b\n# x", &alpine());
    assert!(md.contains("- job: a\\`b # x\n"), "{md}");
    let md = markdown::render(META.job_id, &alpine());
    assert!(md.contains(&format!("- job: `{}`\n", META.job_id)), "{md}");
}

#[test]
fn sarif_messages_and_markdown_keep_hostile_text_as_text() {
    let r = hostile();
    let s = sarif::render(&META, &r);
    let run = &s["runs"][0];
    let rule = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == "CVE-1<script>alert(1)</script>")
        .unwrap();
    let md = rule["help"]["markdown"].as_str().unwrap();
    assert_inert("help.markdown", md, true);
    assert_eq!(
        md,
        "**CVE-1&lt;script&gt;alert(1)&lt;/script&gt;** (HIGH)\n\n\
         desc &lt;script&gt;alert(4)&lt;/script&gt; \\[click\\](javascript:alert(5)) \\!\\[img\\](https://evil/x.png) # heading\n\n\
         1\\. item\n\n&gt; quote\n\
         \n- javascript:alert(6)\
         \n- <https://ok.example/a?b=1&c=2>\
         \n- javascript:alert(7)\
         \n- <https://x.example/%22%3E%3Cscript%3E>"
    );
    assert!(rule.get("helpUri").is_none(), "javascript: is no help link");
    let text = rule["fullDescription"]["text"].as_str().unwrap();
    assert_eq!(
        text,
        "desc <script>alert(4)</script> \\[click\\](javascript:alert(5)) !\\[img\\](https://evil/x.png)\n# heading\n\n1. item\n\n> quote"
    );
    let res = run["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["ruleId"] == "CVE-1<script>alert(1)</script>")
        .unwrap();
    let msg = res["message"]["text"].as_str().unwrap();
    assert_eq!(
        msg,
        "HIGH CVE-1<script>alert(1)</script> in pkg|x\n| forged | row |<img src=x onerror=alert(2)>!\\[i\\](http://e/x.png)\\[l\\](javascript:alert(3))<!-- c --> 1.0\u{FFFD}\\[31m\u{FFFD}\u{FFFD} (fixed in 2.0`code`)"
    );
    assert_eq!(
        res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], "javascript%3Aalert(8)",
        "a path never reads as a URI scheme"
    );
    for v in [
        rule["shortDescription"]["text"].as_str().unwrap(),
        msg,
        text,
    ] {
        assert!(!v.chars().any(|c| c.is_control() && c != '\n'), "{v:?}");
    }
}

#[test]
fn junit_escapes_and_drops_what_xml_forbids() {
    let x = junit::render(&META, &hostile());
    assert!(!x.contains("<script") && !x.contains("<img") && !x.contains("<b>"));
    assert!(
        !x.chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')),
        "XML 1.0 forbids C0 controls"
    );
    assert!(x.contains(
        r#"<testcase classname="scangate.high" name="CVE-1&lt;script&gt;alert(1)&lt;/script&gt; in pkg|x
| forged | row |&lt;img src=x onerror=alert(2)&gt;![i](http://e/x.png)[l](javascript:alert(3))&lt;!-- c --&gt; 1.0"#
    ), "{x}");
    assert!(x.contains("1.0\u{FFFD}[31m\r\u{FFFD}"));
    assert!(
        x.contains(r#"<property name="image" value="evil&#xFFFD;"#)
            || x.contains("evil\u{FFFD}]0;owned\u{FFFD}&lt;b&gt;img&lt;/b&gt;")
    );
}

#[test]
fn terminal_table_shows_control_characters_escaped() {
    let r = hostile();
    for color in [false, true] {
        let t = table::render(&r, color);
        let ours = t
            .replace("\x1b[0m", "")
            .replace("\x1b[1;31m", "")
            .replace("\x1b[1;32m", "")
            .replace("\x1b[31m", "")
            .replace("\x1b[1m", "")
            .replace("\x1b[2m", "")
            .replace("\x1b[33m", "")
            .replace("\x1b[36m", "");
        assert!(
            !ours.chars().any(|c| c.is_control() && c != '\n'),
            "colour {color}: {ours:?}"
        );
        assert!(
            t.starts_with("evil\\u{1b}]0;owned\\u{7}<b>img</b>@sha256:"),
            "{t}"
        );
        assert!(t.contains(
            "  warning: layer 2: skipped etc/\\u{1b}[2J\\u{1b}[1;1HPASS\\u{d}\\u{7}\\u{202e}txt.exe\n"
        ));
        assert!(t.contains("pkg|x\\u{a}| forged | row |"), "{t}");
        assert!(t.contains("1.0\\u{1b}[31m\\u{d}\\u{7}"), "{t}");
    }
    assert_eq!(terminal_safe("plain"), "plain");
    assert_eq!(terminal_safe("a\u{1b}b\tc"), "a\\u{1b}b\\u{9}c");
}

#[test]
fn html_csp_admits_only_our_own_script_and_style_by_hash() {
    let h = html::render(&META, &hostile());
    assert!(!h.contains("unsafe-inline"), "no 'unsafe-inline'");
    let csp = &*html::CSP;
    assert!(h.contains(&format!(
        r#"<meta http-equiv="Content-Security-Policy" content="{csp}">"#
    )));
    assert!(
        csp.starts_with("default-src 'none'; style-src 'sha256-"),
        "{csp}"
    );
    assert!(csp.contains("; script-src 'sha256-"), "{csp}");
    // The page itself needs nothing the CSP blocks: no style or handler
    // attributes of its own.
    assert!(
        !h.contains(" style="),
        "style attributes are blocked by the CSP"
    );
    assert!(
        !h.contains(" onerror=") || !h.contains("<img"),
        "escaped only"
    );
    assert_inert(
        "report.html",
        &h.replace("<script>", "")
            .replace("</script>", "")
            .replace("<!DOCTYPE", ""),
        false,
    );
}

#[test]
fn store_keys_take_only_valid_job_ids_and_pipeline_names() {
    for id in ["../x", "a/b", "", "x\u{1b}", "..", "a b", &"a".repeat(129)] {
        assert!(!valid_job_id(id), "{id:?}");
    }
    assert!(valid_job_id("0f1e2d3c-4b5a-4678-9abc-def012345678"));
    for p in ["..", ".", "a/b", "a\\b", "x\n", "", &"p".repeat(101)] {
        assert!(!valid_pipeline(p), "{p:?}");
    }
    assert!(valid_pipeline("my-app.prod@eu_1"));
}

#[tokio::test]
async fn the_writer_refuses_ids_and_pipelines_that_leave_the_job_folder() {
    let dir = std::env::temp_dir().join(format!("scangate-report-names-{}", std::process::id()));
    let store = ReportStore::Dir(dir.join("store"));
    let job = |id: &str, pipeline: &str| crate::job::JobInfo {
        id: id.into(),
        nonce: "1".into(),
        account_id: None,
        pipeline: pipeline.into(),
        stage: "s".into(),
        action: "a".into(),
        pipeline_execution_id: None,
        action_execution_id: None,
        configuration: Default::default(),
        input_artifacts: vec![],
        output_artifacts: vec![],
        credentials: None,
        encryption_key: None,
        received: std::time::Instant::now(),
    };
    let r = alpine();
    for (id, pipeline, want) in [
        (
            "../../escaped",
            "app",
            "refusing to store a report for job id \"../../escaped\"",
        ),
        (
            "ok-id",
            "../../escaped",
            "refusing to store a report for pipeline name \"../../escaped\"",
        ),
        (
            "ok-id",
            "a/b",
            "refusing to store a report for pipeline name \"a/b\"",
        ),
        (
            "x\u{1b}[2J",
            "app",
            "refusing to store a report for job id \"x\\u{1b}[2J\"",
        ),
    ] {
        let e = store.save(&job(id, pipeline), "w", &r).await.err().unwrap();
        assert!(e.to_string().starts_with(want), "{e}");
        let e = store
            .save_failure(
                &job(id, pipeline),
                "w",
                &crate::pipeline::PipelineError::Internal("x".into()),
            )
            .await
            .err();
        assert!(e.is_some_and(|e| e.to_string().starts_with(want)));
    }
    assert!(
        !dir.join("escaped").exists() && !dir.join("store").exists(),
        "nothing written"
    );
    store.save(&job("good-id", ""), "w", &r).await.unwrap();
    assert!(dir.join("store/jobs/good-id/record.json").is_file());
    assert!(dir.join("store/index/_").is_dir());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn escaping_helpers() {
    assert_eq!(
        escape_markdown("fail_on_kev _x_ a|b"),
        "fail_on_kev \\_x\\_ a\\|b"
    );
    assert_eq!(
        escape_markdown_paragraphs("- a\n\n  # b\n\n12) c\n\nplain"),
        "\\- a\n\n\\# b\n\n12\\) c\n\nplain"
    );
    assert_eq!(
        safe_url("HTTPS://x.example/a b\"<>").as_deref(),
        Some("HTTPS://x.example/a%20b%22%3C%3E")
    );
    for bad in [
        "javascript:alert(1)",
        "data:text/html,x",
        " https://x",
        "//x.example",
    ] {
        assert_eq!(safe_url(bad), None, "{bad}");
    }
}

/// A PASS with findings says why in every format and in record.json: the
/// policy's source (the file and its SHA-256), the thresholds in force,
/// and per severity what was counted against what.
#[test]
fn a_pass_with_findings_explains_itself_everywhere() {
    let r = alpine();
    let d = &r.decision;
    assert_eq!(d.verdict, crate::policy::Verdict::Pass);
    let lines: Vec<String> = d.rules.iter().map(rule_line).collect();
    for want in [
        "pass [thresholds.critical]: 1 CRITICAL: 1 counted, at most 5 allowed",
        "pass [thresholds.high]: 1 HIGH: 1 counted, at most 10 allowed",
        "pass [thresholds.medium]: 7 MEDIUM: no MEDIUM threshold (unlimited)",
        "pass [thresholds.other]: 3 OTHER: no OTHER threshold (unlimited); set thresholds.other or --other-threshold to gate them; 1 of them have a public exploit and a fix",
    ] {
        assert!(
            lines.iter().any(|l| l == want),
            "{want:?} not in {lines:#?}"
        );
    }
    let source = d.policy.source.describe();
    assert!(
        source.starts_with("policy file scangate.yaml (sha256 "),
        "{source}"
    );
    let md = markdown::render(META.job_id, &r);
    let html = html::render(&META, &r);
    let junit = junit::render(&META, &r);
    let sarif = sarif::render(&META, &r);
    let props = &sarif["runs"][0]["properties"];
    for l in &lines {
        assert!(md.contains(&escape_markdown(l)), "report.md lacks {l}");
        assert!(html.contains(&escape_markup(l)), "report.html lacks {l}");
        assert!(junit.contains(&escape_markup(l)), "junit.xml lacks {l}");
        assert!(
            props["explanation"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == l.as_str()),
            "SARIF lacks {l}"
        );
    }
    assert_eq!(props["policy"]["thresholds"]["critical"], 5);
    assert_eq!(props["policy"]["source"]["kind"], "policy_file");
    assert_eq!(
        props["policy"]["source"]["file"]["sha256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    for text in [&md, &html, &junit] {
        assert!(
            text.contains("critical 5, high 10, medium unlimited, low unlimited, other unlimited"),
            "{text}"
        );
    }
    // OTHER is explained wherever there are OTHER findings.
    assert!(html.contains("OTHER means no severity rating"));
    assert!(md.contains("OTHER means no severity rating"));
}

/// A FAIL names the finding ids that made it fail, and a suppression names
/// its rule, reason and expiry.
#[test]
fn a_fail_names_the_ids_and_the_suppressions_their_rule() {
    let r = debian();
    let lines: Vec<String> = r.decision.rules.iter().map(rule_line).collect();
    assert!(
        lines.contains(
            &"FAIL [thresholds.medium]: 1 MEDIUM (threshold 0) — CVE-2023-4039".to_owned()
        ),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("suppressed [ignore[0]]: 1 finding(s) in systemd suppressed by ignore rule CVE-2023-50387 until 2026-12-31: no DNSSEC validation in this image — CVE-2023-50387")),
        "{lines:#?}"
    );
    // record.json carries the same.
    let job = crate::job::JobInfo {
        id: META.job_id.into(),
        nonce: String::new(),
        account_id: None,
        pipeline: "p".into(),
        stage: "s".into(),
        action: "a".into(),
        pipeline_execution_id: None,
        action_execution_id: None,
        configuration: Default::default(),
        input_artifacts: vec![],
        output_artifacts: vec![],
        credentials: None,
        encryption_key: None,
        received: std::time::Instant::now(),
    };
    let rec = ReportStore::record_of(&job, "w", &r);
    assert_eq!(rec["policy"]["thresholds"]["medium"], 0);
    assert_eq!(rec["policy"]["thresholds"]["low"], Value::Null);
    assert_eq!(rec["policy"]["ignore_rules"], 3);
    assert!(
        rec["policy"]["description"]
            .as_str()
            .unwrap()
            .starts_with("policy file scangate.yaml (sha256 ")
    );
    let expl: Vec<&str> = rec["explanation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(expl, lines.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(rec["rules"][0]["ids"][0], "CVE-2023-4039");
    assert_eq!(rec["suppressions"][0]["rule"], 0);
}

/// Findings name the installed binaries (libc6, libc-bin) beside the
/// source package Inspector matched (glibc), without `0:` epochs.
#[test]
fn findings_show_what_is_installed_and_fixed_versions_as_users_write_them() {
    let r = debian();
    let md = markdown::render(META.job_id, &r);
    let row = md
        .lines()
        .find(|l| l.contains("CVE-2024-33599"))
        .expect("the glibc finding");
    assert!(row.contains("| glibc 2.36-9+deb12u4 |"), "{row}");
    assert!(row.contains("libc6 2.36-9+deb12u4"), "{row}");
    assert!(row.contains("libc-bin 2.36-9+deb12u4"), "{row}");
    assert!(row.contains("| 2.36-9+deb12u7 |"), "{row}");
    assert!(row.contains("0.00043 (0.043 %)"), "{row}");
    for text in [md, html::render(&META, &r), table::render(&r, false)] {
        assert!(!text.contains("0:2.36"), "a 0: epoch survived");
    }
}

/// What a developer acts on: one upgrade per affected package, to the
/// highest fixed version, with the findings it fixes.
#[test]
fn upgrades_group_findings_by_the_version_that_fixes_them() {
    let r = debian();
    let ups = upgrades(&r.result.findings);
    let glibc = ups.iter().find(|u| u.package == "glibc").unwrap();
    assert_eq!(
        glibc.to, "2.36-9+deb12u7",
        "the highest of deb12u6 and deb12u7"
    );
    assert_eq!(glibc.fixes.len(), 5);
    assert_eq!(glibc.by_severity(), "5 OTHER");
    assert!(glibc.installed.contains("libc6"));
    assert!(
        ups.iter().all(|u| u.package != "systemd"),
        "no fixed version, no upgrade"
    );
    let html = html::render(&META, &r);
    assert!(
        html.contains("<td>upgrade <strong>glibc</strong> 2.36-9+deb12u4</td>"),
        "{html}"
    );
    use std::cmp::Ordering::*;
    for (a, b, o) in [
        ("2.36-9+deb12u6", "2.36-9+deb12u7", Less),
        ("2.36-9+deb12u10", "2.36-9+deb12u9", Greater),
        ("1.0~rc1", "1.0", Less),
        ("1.02", "1.2", Equal),
        ("3.0.13-r0", "3.0.8-r0", Greater),
    ] {
        assert_eq!(version_cmp(a, b), o, "{a} vs {b}");
    }
}

/// CVE-2024-2961 (glibc iconv) has a public exploit and a fix, yet is
/// OTHER: the real answer rates it only by EPSS, and Inspector's own
/// summary counts it as OTHER too (the severity rule reproduces every real
/// summary). The default gate lets it through; `thresholds.other` gates it.
#[test]
fn an_exploited_fixable_other_finding_passes_by_default_and_fails_with_other_threshold() {
    let r = report(
        "d",
        "scans/debian_latest.json.scan",
        "sboms/debian_latest.json",
        "version: 1\nthresholds: { high: null }\n",
    );
    let f = r
        .result
        .findings
        .iter()
        .find(|f| f.id == "CVE-2024-2961")
        .unwrap();
    assert_eq!(f.severity, Severity::Other);
    assert!(f.exploit_available && f.fixed_version.is_some());
    assert_eq!(ratings_text(f), "no severity rating (EPSS only)");
    assert_eq!(r.decision.verdict, crate::policy::Verdict::Pass);
    let r = report(
        "d",
        "scans/debian_latest.json.scan",
        "sboms/debian_latest.json",
        "version: 1\nthresholds: { high: null, other: 0 }\n",
    );
    assert_eq!(r.decision.verdict, crate::policy::Verdict::Fail);
    let fail = rule_line(&r.decision.rules[0]);
    assert!(
        fail.starts_with("FAIL [thresholds.other]: 7 OTHER (threshold 0) — ")
            && fail.contains("CVE-2024-2961"),
        "{fail}"
    );
}

/// The error page of a job that ended in an error: self-contained, the
/// message escaped, the steps listed.
#[test]
fn error_report_says_what_went_wrong_and_what_to_do() {
    let e = crate::pipeline::PipelineError::Inspector(
        crate::inspector::InspectorError::AccessDenied("<script>x</script>".into()),
    );
    let steps = remedy::remedy(&e);
    assert!(steps[0].contains("inspector-scan:ScanSbom"), "{steps:?}");
    assert!(steps.last().unwrap().contains("Retry"), "{steps:?}");
    let record = serde_json::json!({
        "failure_type": "PermissionError",
        "message": e.to_string(),
        "image": {"reference": "r/x:1"},
        "pipeline": "p",
    });
    let html = html::render_error(&META, &record, &steps);
    assert_inert("error page", &html.replace("<strong>", ""), false);
    assert!(html.contains("Amazon Inspector denied ScanSbom: &lt;script&gt;"));
    assert!(html.contains(r#"<p id="failure-type"><strong>PermissionError</strong></p>"#));
    assert!(html.contains(&*html::CSP));
}

/// The pipeline console's summary and failure message name the policy too,
/// and EPSS keeps its precision there.
#[test]
fn the_pipeline_result_names_the_policy() {
    use crate::job::outcome::Outcome;
    let Outcome::Success { summary, .. } = Outcome::from_report("j", &alpine()) else {
        panic!("alpine passes")
    };
    assert!(
        summary.contains("; policy: policy file scangate.yaml (sha256 ")
            && summary.contains("thresholds critical 5, high 10, medium unlimited")
            && summary.ends_with("(job j)"),
        "{summary}"
    );
    let Outcome::Failure { message, .. } = Outcome::from_report("j", &debian()) else {
        panic!("debian fails")
    };
    assert!(
        message.contains("\nPolicy: policy file scangate.yaml (sha256 "),
        "{message}"
    );
    assert!(
        message.contains(
            "- MEDIUM CVE-2023-4039 in gcc-12 12.2.0-14 → no fix yet, CVSS 4.8, EPSS 0.00046\n"
        ),
        "{message}"
    );
}

/// The largest real answer (node:latest, 721 vulnerability ids, 633 of
/// them OTHER): the explanation stays short (ids capped per rule) and the
/// pages stay linear in the findings.
#[test]
fn the_largest_real_answer_renders_fast_and_the_explanation_stays_short() {
    let r = report(
        "node:latest",
        "scans/node_latest.json.scan",
        "sboms/node_latest.json",
        "version: 1\n",
    );
    let n = r.result.findings.len();
    let t = std::time::Instant::now();
    let html = html::render(&META, &r);
    let md = markdown::render(META.job_id, &r);
    let ms = t.elapsed().as_millis();
    eprintln!(
        "node:latest: {n} findings, report.html {} KiB, report.md {} KiB, rendered in {ms} ms",
        html.len() / 1024,
        md.len() / 1024
    );
    assert!(n > 700, "{n}");
    // Most of the page is each finding's folded references and the
    // components table, both as the answer and the SBOM have them.
    let refs: usize = r.result.findings.iter().map(|f| f.references.len()).sum();
    eprintln!("{refs} references");
    assert!(html.len() < 5_000 * n, "{} bytes", html.len());
    for x in &r.decision.rules {
        assert!(x.ids.len() <= crate::policy::explain::MAX_IDS);
        assert!(rule_line(x).len() < 2000, "{}", rule_line(x));
    }
    let fail = r
        .decision
        .rules
        .iter()
        .find(|x| x.rule == "thresholds.high")
        .unwrap();
    assert!(
        fail.total > fail.ids.len(),
        "capped: {} of {}",
        fail.ids.len(),
        fail.total
    );
    assert!(rule_line(fail).contains(" more"), "{}", rule_line(fail));
    assert!(ms < 5_000, "{ms} ms");
}
