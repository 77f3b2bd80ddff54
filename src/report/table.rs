//! The terminal table of `scangate scan` (the default format).
//!
//! Every string from the image, Inspector or the policy goes through
//! [`t`]: a package name holding ESC sequences must not repaint the
//! terminal, nor a CR or newline forge a line of the verdict.

use std::fmt::Write as _;

use super::terminal_safe as t;
use crate::inspector::Severity;
use crate::pipeline::ScanReport;
use crate::policy::Verdict;

/// ANSI colours, only when asked for: the caller decides (a TTY and no
/// `NO_COLOR`), so files and pipes never get escape codes.
fn paint(on: bool, code: &str, text: &str) -> String {
    if on {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

fn severity_code(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "1;31",
        Severity::High => "31",
        Severity::Medium => "33",
        Severity::Low => "36",
        Severity::Other => "2",
    }
}

pub fn render(r: &ScanReport, color: bool) -> String {
    let d = &r.decision;
    let c = d.counts;
    let mut s = String::new();
    let _ = writeln!(s, "{}@{}", t(&r.image), t(&r.manifest_digest));
    let verdict = match d.verdict {
        Verdict::Pass => paint(color, "1;32", "PASS"),
        Verdict::Fail => paint(color, "1;31", "FAIL"),
    };
    let _ = writeln!(
        s,
        "{verdict} — {} critical, {} high, {} medium, {} low, {} other in {} packages",
        c.critical, c.high, c.medium, c.low, c.other, r.packages
    );
    let _ = writeln!(s, "  policy: {}", t(&d.policy.source.describe()));
    let _ = writeln!(s, "  thresholds: {}", d.policy.thresholds_text());
    for v in &d.violations {
        let _ = writeln!(s, "  violated: {}", t(&v.to_string()));
    }
    // Why what did not fail passed: a PASS with findings explains itself.
    for x in d
        .rules
        .iter()
        .filter(|x| x.effect == crate::policy::explain::Effect::Pass)
    {
        let _ = writeln!(s, "  passed: {}", t(&x.text));
    }
    if c.other > 0 {
        let _ = writeln!(
            s,
            "  OTHER = not rated yet by NVD, the distribution or Inspector; gate them with --other-threshold N"
        );
    }
    for x in &d.suppressions {
        let _ = writeln!(
            s,
            "  suppressed: {} in {}: {}",
            t(&x.id),
            t(&x.package),
            t(&x.reason)
        );
    }
    for r in &d.expired_rules {
        let _ = writeln!(
            s,
            "  expired ignore rule, no longer applied: {}",
            t(&r.to_string())
        );
    }
    for r in &d.stale_rules {
        let _ = writeln!(s, "  ignore rule matched nothing: {}", t(&r.to_string()));
    }
    for w in &r.warnings {
        let _ = writeln!(s, "  warning: {}", t(w));
    }
    s.push_str(&super::risks::table(r));
    if !r.result.findings.is_empty() {
        let _ = writeln!(
            s,
            "\n{:<9} {:<20} {:<24} {:<28} FIXED",
            "SEVERITY", "ID", "PACKAGE", "INSTALLED"
        );
        for f in &r.result.findings {
            // Pad before painting: escape codes have no width.
            let sev = format!("{:<9}", f.severity.as_str());
            let mut line = format!(
                "{} {:<20} {:<24} {:<28} {}",
                paint(color, severity_code(f.severity), &sev),
                t(&f.id),
                t(&f.package),
                t(&f.version),
                t(f.fixed_version.as_deref().unwrap_or("-"))
            );
            match super::status_of(d, f, r.fixable_only) {
                super::Status::Suppressed => line.push_str("  (suppressed)"),
                super::Status::Violating => line.push_str(&paint(color, "1", "  ✗")),
                super::Status::Passing => {}
            }
            let _ = writeln!(s, "{line}");
        }
    }
    s
}
