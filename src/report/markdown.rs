//! `report.md`: what an operator reads first.
//!
//! Every string from the image, Inspector, the policy file or the job goes
//! through [`md`] (or [`code`]): it renders as the text it is, never as
//! HTML, a link, an image or a broken table row.

use std::fmt::Write as _;

use super::escape_markdown as md;
use super::{OTHER_MEANING, epss_text, installed_text, rule_line, upgrades};
use crate::pipeline::ScanReport;
use crate::policy::Decision;

/// Upgrades listed in the markdown report; the HTML report lists them all.
const MAX_UPGRADES: usize = 20;

/// The policy that decided: source, thresholds, gates and fired rules.
fn policy(s: &mut String, r: &ScanReport) {
    let p = &r.decision.policy;
    let _ = writeln!(s, "## Policy\n");
    let _ = writeln!(s, "- source: {}", md(&p.source.describe()));
    let _ = writeln!(s, "- thresholds: {}", md(&p.thresholds_text()));
    let _ = writeln!(s, "- gates: {}", md(&p.gates().join("; ")));
    if !r.decision.rules.is_empty() {
        let _ = writeln!(s, "\n### Rules that decided\n");
        for x in &r.decision.rules {
            let _ = writeln!(s, "- {}", md(&rule_line(x)));
        }
    }
    s.push('\n');
}

pub fn render(job_id: &str, r: &ScanReport) -> String {
    let d = &r.decision;
    let mut s = String::new();
    summary(&mut s, job_id, r);
    policy(&mut s, r);
    if d.counts.other > 0 {
        let _ = writeln!(s, "> {}\n", md(OTHER_MEANING));
    }
    upgrades_section(&mut s, r);
    findings_table(&mut s, r);
    base_image(&mut s, r);
    s.push_str(&super::risks::markdown(r));
    suppressed(&mut s, d);
    rules_to_review(&mut s, d);
    if !r.warnings.is_empty() {
        let _ = writeln!(s, "\n## Warnings\n");
        for w in &r.warnings {
            let _ = writeln!(s, "- {}", md(w));
        }
    }
    s
}

/// Title, what was scanned, the counts per severity and why a FAIL failed:
/// the part an operator reads before deciding to read on.
fn summary(s: &mut String, job_id: &str, r: &ScanReport) {
    let d = &r.decision;
    let c = d.counts;
    let _ = writeln!(s, "# scangate: {} — {}\n", md(&r.image), d.verdict);
    let _ = writeln!(s, "- job: {}", code(job_id));
    let _ = writeln!(s, "- digest: {}", code(&r.manifest_digest));
    if let Some(os) = &r.os {
        let _ = writeln!(s, "- OS: {}", md(os));
    }
    let _ = writeln!(s, "- packages: {}", r.packages);
    let _ = writeln!(
        s,
        "\n| critical | high | medium | low | other |\n|---:|---:|---:|---:|---:|"
    );
    let _ = writeln!(
        s,
        "| {} | {} | {} | {} | {} |\n",
        c.critical, c.high, c.medium, c.low, c.other
    );
    if !d.violations.is_empty() {
        let _ = writeln!(s, "## Why it failed\n");
        for v in &d.violations {
            let _ = writeln!(s, "- {}", md(&v.to_string()));
        }
        s.push('\n');
    }
}

/// "Upgrade X to Y fixes N findings", capped at [`MAX_UPGRADES`]: what a
/// developer acts on.
fn upgrades_section(s: &mut String, r: &ScanReport) {
    let ups = upgrades(&r.result.findings);
    if ups.is_empty() {
        return;
    }
    let _ = writeln!(s, "## Upgrades that fix findings\n");
    for u in ups.iter().take(MAX_UPGRADES) {
        let _ = writeln!(
            s,
            "- upgrade {} (installed: {}) to {}: fixes {} findings ({})",
            md(u.package),
            md(&u.installed),
            md(u.to),
            u.fixes.len(),
            u.by_severity()
        );
    }
    if ups.len() > MAX_UPGRADES {
        let _ = writeln!(s, "- … and {} more upgrades", ups.len() - MAX_UPGRADES);
    }
    s.push('\n');
}

/// One table row per finding, every cell escaped.
fn findings_table(s: &mut String, r: &ScanReport) {
    if r.result.findings.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "## Findings\n\n| severity | id | matched package | installed in the image | fixed in | EPSS |\n|---|---|---|---|---|---|"
    );
    for f in &r.result.findings {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            f.severity.as_str(),
            md(&f.id),
            md(&format!("{} {}", f.package, f.version)),
            md(&installed_text(f)),
            md(f.fixed_version.as_deref().unwrap_or("")),
            md(&epss_text(f).unwrap_or_default())
        );
    }
}

/// What the image inherited from its base, apart from what its own layers
/// added.
fn base_image(s: &mut String, r: &ScanReport) {
    let Some(b) = &r.decision.base_image else {
        return;
    };
    let _ = writeln!(s, "\n## Base image\n");
    let _ = writeln!(
        s,
        "- base: {} ({} of the image's {} layers)",
        md(b.reference.as_deref().unwrap_or("not named")),
        b.matched_layers,
        b.image_layers
    );
    if let Some(w) = &b.warning {
        let _ = writeln!(s, "- {}", md(w));
    }
    let _ = writeln!(
        s,
        "- {} findings inherited from the base image ({}), {} added by this image's own layers",
        b.inherited.len(),
        if b.applied {
            "judged by the base_image thresholds"
        } else {
            "judged by the main thresholds"
        },
        r.result.findings.len().saturating_sub(b.inherited.len())
    );
    if b.inherited.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\n| severity | id | package | layers |\n|---|---|---|---|"
    );
    for f in &b.inherited {
        let layers: Vec<String> = f.layers.iter().map(usize::to_string).collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            f.severity.as_str(),
            md(&f.id),
            md(&f.package),
            layers.join(", ")
        );
    }
}

/// Findings an ignore rule suppressed, with reason and expiry, so a
/// suppression stays visible.
fn suppressed(s: &mut String, d: &Decision) {
    if d.suppressions.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\n## Suppressed\n\n| id | package | reason | expires |\n|---|---|---|---|"
    );
    for x in &d.suppressions {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            md(&x.id),
            md(&x.package),
            md(&x.reason),
            md(x.expires.as_deref().unwrap_or("never"))
        );
    }
}

/// Ignore rules that expired or matched nothing: upkeep for the policy's
/// owner.
fn rules_to_review(s: &mut String, d: &Decision) {
    if d.expired_rules.is_empty() && d.stale_rules.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n## Ignore rules to review\n");
    for x in &d.expired_rules {
        let _ = writeln!(s, "- expired, no longer applied: {}", md(&x.to_string()));
    }
    for x in &d.stale_rules {
        let _ = writeln!(s, "- matched no finding: {}", md(&x.to_string()));
    }
}

/// A code span for identifiers (job id, digest) when the value is plain;
/// anything else is escaped text, since a backtick or line break inside
/// would end the span.
fn code(s: &str) -> String {
    let plain = !s.is_empty()
        && s.len() <= 256
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '-' | '_' | '@' | '/'));
    if plain { format!("`{s}`") } else { md(s) }
}
