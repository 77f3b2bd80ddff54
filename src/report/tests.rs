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

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/inspector")
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
