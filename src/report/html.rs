//! `report.html`: one self-contained page (inline CSS and JS, no external
//! asset, a CSP that forbids loading any) for people reading a job's result.
//!
//! The CSP admits exactly our own `<style>` and `<script>` by their SHA-256
//! (no `'unsafe-inline'`): should escaping ever fail, an injected script,
//! handler attribute or style does not run. So the page carries no `style=`
//! or `on…=` attributes of its own.
//!
//! Every row is rendered on the server, escaped, so the page reads without
//! JS; the script only sorts and filters. Text from the answer or the image
//! is never put inside `<script>`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::{
    Meta, OTHER_MEANING, Status, epss_text, escape_markup as e, installed_text, ratings_text,
    rule_line, safe_url, status_of, suppression_of, upgrades,
};
use crate::inspector::Finding;
use crate::inspector::Severity;
use crate::inspector::findings::NoteKind;
use crate::pipeline::ScanReport;
use crate::policy::explain::Effect;
use crate::policy::{Decision, Verdict};

const CSS: &str = r#"
:root{--crit:#7b1fa2;--high:#c62828;--med:#ef6c00;--low:#1565c0;--oth:#757575;--ok:#2e7d32}
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:0 auto;max-width:1400px;padding:1rem 2rem;color:#212121}
h1{font-size:1.4rem;word-break:break-all}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #eee;vertical-align:top}
th[data-key]{cursor:pointer;user-select:none;white-space:nowrap}th[data-key]:after{content:" \2195";color:#aaa}
th.asc:after{content:" \2191";color:#000}th.desc:after{content:" \2193";color:#000}
.verdict{display:inline-block;padding:.1rem .6rem;border-radius:4px;color:#fff;font-weight:700}
.PASS{background:var(--ok)}.FAIL{background:var(--high)}
.sev{font-weight:600}.CRITICAL{color:var(--crit)}.HIGH{color:var(--high)}.MEDIUM{color:var(--med)}.LOW{color:var(--low)}.OTHER{color:var(--oth)}
tr.violating td:first-child{border-left:4px solid var(--high)}tr.suppressed{opacity:.6}
.controls{display:flex;gap:1rem;margin:.5rem 0;flex-wrap:wrap;align-items:center}
code,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em;word-break:break-all}
details summary{cursor:pointer}.muted{color:#757575}
svg text{font:12px system-ui,sans-serif}svg{max-width:100%;height:auto}
.scroll{overflow-x:auto;max-width:100%}td{overflow-wrap:break-word}td.mono{word-break:normal}
#findings-table{min-width:64rem}#upgrades table{min-width:40rem}#findings-table td:nth-child(2){white-space:nowrap}#policy td{overflow-wrap:anywhere}
details p,details li{max-width:60rem;overflow-wrap:anywhere}details ul{padding-left:1.2rem}
.note{border-left:4px solid var(--oth);padding:.3rem .8rem;background:#f5f5f5}
ul.rules li.fail{color:var(--high)}ul.rules li.suppress{color:#616161}
td.ids{font-size:.85em}
@media (max-width:700px){body{padding:.5rem}table{font-size:12px}th,td{padding:.2rem .3rem}}
rect.bar.CRITICAL{fill:var(--crit)}rect.bar.HIGH{fill:var(--high)}rect.bar.MEDIUM{fill:var(--med)}rect.bar.LOW{fill:var(--low)}rect.bar.OTHER{fill:var(--oth)}
"#;

const JS: &str = r#"
(function(){
  var table=document.getElementById('findings-table');
  if(!table)return;
  var body=table.tBodies[0], rows=Array.prototype.slice.call(body.rows);
  var q=document.getElementById('filter-text'), sev=document.getElementById('filter-sev'),
      st=document.getElementById('filter-status'), shown=document.getElementById('shown');
  function apply(){
    var t=q.value.toLowerCase(), s=sev.value, g=st.value, n=0;
    rows.forEach(function(r){
      var ok=(!t||r.textContent.toLowerCase().indexOf(t)>=0)&&(!s||r.dataset.sev===s)&&(!g||r.dataset.status===g);
      r.hidden=!ok; if(ok)n++;
    });
    shown.textContent=n+' of '+rows.length+' findings shown';
  }
  function sortBy(th){
    var key=th.dataset.key, dir=th.classList.contains('asc')?-1:1, num=th.dataset.type==='num';
    Array.prototype.forEach.call(table.tHead.rows[0].cells,function(c){c.classList.remove('asc','desc');});
    th.classList.add(dir===1?'asc':'desc');
    rows.sort(function(a,b){
      var x=a.dataset[key]||'', y=b.dataset[key]||'';
      if(num){x=parseFloat(x);y=parseFloat(y);if(isNaN(x))x=-1;if(isNaN(y))y=-1;return (x-y)*dir;}
      return x.localeCompare(y)*dir;
    });
    rows.forEach(function(r){body.appendChild(r);});
  }
  Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th){
    if(th.dataset.key)th.addEventListener('click',function(){sortBy(th);});
  });
  [q,sev,st].forEach(function(el){el.addEventListener('input',apply);el.addEventListener('change',apply);});
  // #q=…&sev=HIGH&status=violating pre-sets the filters (shareable links).
  var h=new URLSearchParams(location.hash.slice(1));
  if(h.get('q'))q.value=h.get('q');if(h.get('sev'))sev.value=h.get('sev');if(h.get('status'))st.value=h.get('status');
  apply();
})();
"#;

/// `'sha256-…'` of an inline element's exact content, as CSP matches it.
fn csp_hash(content: &str) -> String {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(content.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// Computed once from the very constants the page embeds, so the hashes
/// cannot drift from the code.
pub static CSP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "default-src 'none'; style-src {}; script-src {}; img-src data:; base-uri 'none'; form-action 'none'",
        csp_hash(CSS),
        csp_hash(JS)
    )
});

fn sev_class(s: Severity) -> &'static str {
    s.as_str()
}

fn link(url: Option<&str>, text: &str) -> String {
    match url.and_then(safe_url) {
        Some(u) => format!(
            r#"<a href="{}" rel="noopener noreferrer">{}</a>"#,
            e(&u),
            e(text)
        ),
        None => e(text),
    }
}

fn chart(r: &ScanReport) -> String {
    let c = r.decision.counts;
    let max = Severity::ALL_DESC
        .iter()
        .map(|s| c.get(*s))
        .max()
        .unwrap_or(0)
        .max(1);
    let (bar_h, gap, label_w, width) = (22u64, 8u64, 80u64, 420u64);
    let h = 5 * (bar_h + gap);
    let mut s = format!(
        r#"<svg role="img" aria-label="findings per severity" width="{}" height="{h}" viewBox="0 0 {} {h}">"#,
        label_w + width + 60,
        label_w + width + 60
    );
    for (i, sev) in Severity::ALL_DESC.iter().enumerate() {
        let n = c.get(*sev);
        let y = i as u64 * (bar_h + gap);
        let w = if n == 0 { 0 } else { (n * width / max).max(2) };
        let _ = write!(
            s,
            r#"<text x="0" y="{}">{}</text><rect class="bar {}" data-sev="{}" x="{label_w}" y="{y}" width="{w}" height="{bar_h}"/><text x="{}" y="{}">{n}</text>"#,
            y + bar_h / 2 + 4,
            sev.as_str(),
            sev.as_str(),
            sev.as_str(),
            label_w + w + 6,
            y + bar_h / 2 + 4
        );
    }
    s.push_str("</svg>");
    s
}

/// Components of our SBOM, flattened: (name, version, type, purl, path, layer).
fn components(sbom: &Value) -> Vec<[String; 6]> {
    fn prop(c: &Value, name: &str) -> String {
        c["properties"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"].as_str() == Some(name)))
            .and_then(|p| p["value"].as_str())
            .unwrap_or_default()
            .to_owned()
    }
    fn walk(v: &Value, out: &mut Vec<[String; 6]>) {
        for c in v["components"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            out.push([
                s("name"),
                s("version"),
                s("type"),
                s("purl"),
                prop(c, "amazon:inspector:sbom_generator:source_path"),
                prop(c, "scangate:layer"),
            ]);
            walk(c, out);
        }
    }
    let mut out = Vec::new();
    walk(sbom, &mut out);
    out
}

/// The policy that decided: where it came from, what was in force, and
/// every rule that applied (why it failed, or why a PASS passed).
fn policy(s: &mut String, r: &ScanReport) {
    let d = &r.decision;
    let p = &d.policy;
    let _ = writeln!(
        s,
        r#"<section id="policy"><h2>Policy</h2><div class="scroll"><table><tr><th>source</th><td>{}</td></tr><tr><th>thresholds</th><td>{}</td></tr><tr><th>gates</th><td>{}</td></tr></table></div>"#,
        e(&p.source.describe()),
        e(&p.thresholds_text()),
        e(&p.gates().join("; "))
    );
    if !d.rules.is_empty() {
        let _ = writeln!(s, r#"<h3>Rules that decided</h3><ul class="rules">"#);
        for x in &d.rules {
            let class = match x.effect {
                Effect::Fail => "fail",
                Effect::Pass => "pass",
                Effect::Suppress => "suppress",
            };
            let _ = writeln!(s, r#"<li class="{class}">{}</li>"#, e(&rule_line(x)));
        }
        let _ = writeln!(s, "</ul>");
    }
    if d.counts.other > 0 {
        let _ = writeln!(
            s,
            r#"<p class="note" id="other-meaning">{}</p>"#,
            e(OTHER_MEANING)
        );
    }
    let _ = writeln!(s, "</section>");
}

/// "Upgrade X to Y fixes N findings": what a developer acts on.
fn upgrades_section(s: &mut String, r: &ScanReport) {
    let ups = upgrades(&r.result.findings);
    if ups.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        r#"<section id="upgrades"><h2>Upgrades that fix findings ({})</h2><div class="scroll"><table><thead><tr><th>upgrade</th><th>installed in the image</th><th>to</th><th>fixes</th><th>ids</th></tr></thead><tbody>"#,
        ups.len()
    );
    for u in &ups {
        let ids: Vec<&str> = u.fixes.iter().map(|x| x.0).collect();
        let unfixed = if u.unfixed > 0 {
            format!(
                r#"<br><span class="muted">{} more without a fix yet</span>"#,
                u.unfixed
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            r#"<tr class="upgrade"><td>upgrade <strong>{}</strong> {}</td><td class="mono">{}</td><td class="mono">{}</td><td><span class="sev {}">{} finding{}</span> ({}){unfixed}</td><td class="ids">{}</td></tr>"#,
            e(u.package),
            e(u.version),
            e(&u.installed),
            e(u.to),
            u.worst().as_str(),
            u.fixes.len(),
            if u.fixes.len() == 1 { "" } else { "s" },
            e(&u.by_severity()),
            e(&ids.join(", "))
        );
    }
    let _ = writeln!(s, "</tbody></table></div></section>");
}

/// The folded part of a finding's row: description, ratings, EPSS model,
/// CWEs, and references folded again (some vulnerabilities have dozens).
fn details(f: &Finding) -> String {
    let mut d = String::from("<details><summary>more</summary>");
    if !f.description.is_empty() {
        d.push_str(&format!("<p>{}</p>", e(&f.description)));
    }
    if let Some(v) = &f.cvss_vector {
        d.push_str(&format!(
            "<p><code>{}</code> ({})</p>",
            e(v),
            e(f.severity_source.as_deref().unwrap_or(""))
        ));
    }
    if f.severity == crate::inspector::Severity::Other {
        d.push_str(&format!("<p>ratings: {}</p>", e(&ratings_text(f))));
    }
    if let (Some(x), Some(m)) = (epss_text(f), &f.epss_model) {
        d.push_str(&format!(
            "<p>EPSS {} <span class=\"muted\">({})</span></p>",
            e(&x),
            e(m)
        ));
    }
    if let Some(src) = &f.source_package {
        d.push_str(&format!("<p>source package: {}</p>", e(src)));
    }
    if !f.cwes.is_empty() {
        let cwes: Vec<String> = f.cwes.iter().map(|c| format!("CWE-{c}")).collect();
        d.push_str(&format!("<p>{}</p>", cwes.join(", ")));
    }
    if !f.references.is_empty() {
        d.push_str(&format!(
            "<details><summary>references ({})</summary><ul>",
            f.references.len()
        ));
        for u in &f.references {
            d.push_str(&format!("<li>{}</li>", link(Some(u), u)));
        }
        d.push_str("</ul></details>");
    }
    d.push_str("</details>");
    d
}

pub fn render(meta: &Meta, r: &ScanReport) -> String {
    let mut s = String::with_capacity(64 * 1024);
    head(&mut s, r);
    summary(&mut s, meta, r);
    policy(&mut s, r);
    upgrades_section(&mut s, r);
    let _ = writeln!(
        s,
        r#"<section id="chart"><h2>Findings per severity</h2>{}</section>"#,
        chart(r)
    );
    findings_section(&mut s, r);
    base_image_section(&mut s, r);
    suppressed_section(&mut s, &r.decision);
    rules_to_review(&mut s, &r.decision);
    s.push_str(&super::risks::html(r));
    warnings_section(&mut s, r);
    components_section(&mut s, r);
    let _ = writeln!(s, "<script>{JS}</script>\n</body></html>");
    s
}

/// The document head (CSP, inline CSS) and the title line with the
/// verdict, the first thing a reader sees.
fn head(s: &mut String, r: &ScanReport) {
    let d = &r.decision;
    let title = format!("scangate: {} — {}", r.image, d.verdict);
    let _ = write!(
        s,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{}</title><style>{CSS}</style></head><body>
"#,
        e(&title),
        csp = &*CSP
    );
    let _ = writeln!(
        s,
        r#"<h1>{} <span id="verdict" class="verdict {v}">{v}</span></h1>"#,
        e(&r.image),
        v = d.verdict
    );
}

/// What was scanned and the counts, then why a FAIL failed: the section a
/// reader of a red stage needs first.
fn summary(s: &mut String, meta: &Meta, r: &ScanReport) {
    let d = &r.decision;
    let c = d.counts;
    let _ = writeln!(s, r#"<section id="summary"><table>"#);
    let mut row = |k: &str, v: String| {
        let _ = writeln!(s, "<tr><th>{}</th><td>{v}</td></tr>", e(k));
    };
    row("image", e(&r.image));
    row("digest", format!("<code>{}</code>", e(&r.manifest_digest)));
    if let Some(i) = &r.index_digest {
        row("index digest", format!("<code>{}</code>", e(i)));
    }
    if let Some(os) = &r.os {
        row("OS", e(os));
    }
    row("packages", r.packages.to_string());
    row(
        "findings",
        format!(
            "{} critical, {} high, {} medium, {} low, {} other (distinct ids); {} suppressed",
            c.critical, c.high, c.medium, c.low, c.other, d.suppressed
        ),
    );
    row("job", format!("<code>{}</code>", e(meta.job_id)));
    row("generated", e(meta.generated));
    let _ = writeln!(s, "</table>");
    if d.verdict == Verdict::Fail {
        let _ = writeln!(s, r#"<h2>Why it failed</h2><ul id="reasons">"#);
        for v in &d.violations {
            let _ = writeln!(s, "<li>{}</li>", e(&v.to_string()));
        }
        let _ = writeln!(s, "</ul>");
    }
    let _ = writeln!(s, "</section>");
}

/// The findings table with its filter controls; rows carry `data-*` keys
/// the script sorts and filters on.
fn findings_section(s: &mut String, r: &ScanReport) {
    let findings = &r.result.findings;
    let _ = writeln!(
        s,
        r#"<section id="findings"><h2>Findings ({})</h2>
<div class="controls"><input id="filter-text" type="search" placeholder="filter: id, package, text…" aria-label="filter">
<select id="filter-sev" aria-label="severity"><option value="">all severities</option>{}</select>
<select id="filter-status" aria-label="status"><option value="">any status</option><option value="violating">violating</option><option value="suppressed">suppressed</option><option value="passing">passing</option></select>
<span id="shown" class="muted">{n} findings</span></div>
<div class="scroll"><table id="findings-table"><thead><tr><th data-key="sevrank" data-type="num">severity</th><th data-key="id">id</th><th data-key="pkg">matched package</th><th>installed in the image</th><th>fixed in</th><th data-key="cvss" data-type="num">CVSS</th><th data-key="epss" data-type="num" title="probability of exploitation in the next 30 days (FIRST EPSS); Inspector gives no percentile">EPSS</th><th>exploit / KEV</th><th data-key="status">gate</th><th>location</th><th>details</th></tr></thead><tbody>"#,
        findings.len(),
        Severity::ALL_DESC
            .iter()
            .map(|x| format!(r#"<option value="{0}">{0}</option>"#, x.as_str()))
            .collect::<String>(),
        n = findings.len()
    );
    for f in findings {
        finding_row(s, r, f);
    }
    let _ = writeln!(s, "</tbody></table></div></section>");
}

/// One finding's row: every cell escaped here, so the page reads without JS.
fn finding_row(s: &mut String, r: &ScanReport, f: &Finding) {
    let d = &r.decision;
    let st = status_of(d, f, r.fixable_only);
    let gate = match (st, suppression_of(d, f)) {
        (Status::Suppressed, Some(x)) => {
            format!(
                r#"suppressed <span class="muted">({})</span>"#,
                e(&x.reason)
            )
        }
        _ => st.as_str().to_owned(),
    };
    let details = details(f);
    let _ = writeln!(
        s,
        r#"<tr class="finding {st}" data-sevrank="{rank}" data-sev="{sev}" data-id="{id}" data-pkg="{pkg}" data-cvss="{cvss}" data-epss="{epss}" data-status="{st}"><td class="sev {sev}">{sev}</td><td>{idlink}</td><td title="{purl}">{pkgtext}</td><td class="mono">{ver}</td><td class="mono">{fixed}</td><td>{cvsstext}</td><td>{epsstext}</td><td>{exploit}</td><td>{gate}</td><td>{loc}</td><td>{details}</td></tr>"#,
        st = st.as_str(),
        rank = f.severity as u8,
        sev = sev_class(f.severity),
        id = e(&f.id),
        pkg = e(&f.package),
        cvss = f.cvss_score.map_or(String::new(), |x| x.to_string()),
        epss = f.epss.map_or(String::new(), |x| x.to_string()),
        idlink = link(f.url.as_deref(), &f.id),
        purl = e(&f.purl),
        pkgtext = e(&format!("{} {}", f.package, f.version)),
        ver = e(&installed_text(f)),
        fixed = e(f.fixed_version.as_deref().unwrap_or("—")),
        cvsstext = f.cvss_score.map_or(String::new(), |x| format!("{x:.1}")),
        epsstext = e(&epss_text(f).unwrap_or_default()),
        exploit = e(&exploit_text(f)),
        loc = location(f),
    );
}

/// "CISA KEV since …; exploit available": the urgency signals, unescaped
/// (the caller escapes).
fn exploit_text(f: &Finding) -> String {
    let mut exploit = Vec::new();
    if let Some(k) = &f.kev_date_added {
        let mut t = format!("CISA KEV since {}", k.get(..10).unwrap_or(k));
        if let Some(due) = &f.kev_date_due {
            t.push_str(&format!(", due {}", due.get(..10).unwrap_or(due)));
        }
        exploit.push(t);
    }
    if f.exploit_available {
        exploit.push("exploit available".to_owned());
    }
    exploit.join("; ")
}

/// Where in the image a finding is: its path and (shortened) layer, as
/// escaped markup.
fn location(f: &Finding) -> String {
    let mut loc = String::new();
    if let Some(p) = &f.path {
        loc.push_str(&format!("<code>{}</code>", e(p)));
    }
    if let Some(l) = &f.layer {
        loc.push_str(&format!(
            r#"<br><span class="muted">layer <code>{}</code></span>"#,
            e(l.get(..19).unwrap_or(l))
        ));
    }
    loc
}

/// What the image inherited, apart from what its own layers added.
fn base_image_section(s: &mut String, r: &ScanReport) {
    let Some(b) = &r.decision.base_image else {
        return;
    };
    let _ = writeln!(
        s,
        r#"<section id="base-image"><h2>Base image</h2><p>base: {} ({} of the image's {} layers); {} findings inherited ({}), {} added by this image's own layers</p>"#,
        e(b.reference.as_deref().unwrap_or("not named")),
        b.matched_layers,
        b.image_layers,
        b.inherited.len(),
        if b.applied {
            "judged by the base_image thresholds"
        } else {
            "judged by the main thresholds"
        },
        r.result.findings.len().saturating_sub(b.inherited.len())
    );
    if let Some(w) = &b.warning {
        let _ = writeln!(s, "<p>{}</p>", e(w));
    }
    if !b.inherited.is_empty() {
        let _ = writeln!(
            s,
            r#"<div class="scroll"><table><thead><tr><th>severity</th><th>id</th><th>package</th><th>layers</th></tr></thead><tbody>"#
        );
        for f in &b.inherited {
            let layers: Vec<String> = f.layers.iter().map(usize::to_string).collect();
            let _ = writeln!(
                s,
                r#"<tr><td class="sev {sev}">{sev}</td><td>{}</td><td title="{}">{}</td><td>{}</td></tr>"#,
                e(&f.id),
                e(&f.purl),
                e(&f.package),
                layers.join(", "),
                sev = f.severity.as_str()
            );
        }
        let _ = writeln!(s, "</tbody></table></div>");
    }
    let _ = writeln!(s, "</section>");
}

/// Findings an ignore rule suppressed, with the reason and expiry, so a
/// suppression stays visible and reviewable.
fn suppressed_section(s: &mut String, d: &Decision) {
    let _ = writeln!(
        s,
        r#"<section id="suppressed"><h2>Suppressed findings ({})</h2>"#,
        d.suppressions.len()
    );
    if !d.suppressions.is_empty() {
        let _ = writeln!(
            s,
            r#"<div class="scroll"><table><thead><tr><th>id</th><th>severity</th><th>package</th><th>reason</th><th>expires</th></tr></thead><tbody>"#
        );
        for x in &d.suppressions {
            let _ = writeln!(
                s,
                r#"<tr><td>{}</td><td class="sev {sev}">{sev}</td><td title="{}">{}</td><td>{}</td><td>{}</td></tr>"#,
                e(&x.id),
                e(&x.purl),
                e(&x.package),
                e(&x.reason),
                e(x.expires.as_deref().unwrap_or("never")),
                sev = x.severity.as_str()
            );
        }
        let _ = writeln!(s, "</tbody></table></div>");
    }
    let _ = writeln!(s, "</section>");
}

/// Ignore rules that expired or matched nothing: policy upkeep the owner
/// should do.
fn rules_to_review(s: &mut String, d: &Decision) {
    if d.expired_rules.is_empty() && d.stale_rules.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        r#"<section id="rules"><h2>Ignore rules to review</h2><ul>"#
    );
    for x in &d.expired_rules {
        let _ = writeln!(
            s,
            "<li>expired, no longer applied: {} — {}</li>",
            e(&x.to_string()),
            e(&x.reason)
        );
    }
    for x in &d.stale_rules {
        let _ = writeln!(
            s,
            "<li>matched no finding: {} — {}</li>",
            e(&x.to_string()),
            e(&x.reason)
        );
    }
    let _ = writeln!(s, "</ul></section>");
}

/// Scan warnings, then Inspector's notes grouped by message (one note per
/// component would bury the page).
fn warnings_section(s: &mut String, r: &ScanReport) {
    let _ = writeln!(s, r#"<section id="warnings"><h2>Warnings</h2>"#);
    if r.warnings.is_empty() {
        let _ = writeln!(s, r#"<p class="muted">none</p>"#);
    } else {
        let _ = writeln!(s, "<ul>");
        for w in &r.warnings {
            let _ = writeln!(s, "<li>{}</li>", e(w));
        }
        let _ = writeln!(s, "</ul>");
    }
    let mut by_msg: BTreeMap<(NoteKind, &str), Vec<&str>> = BTreeMap::new();
    for n in &r.result.notes {
        let who = if n.purl.is_empty() {
            n.component.as_str()
        } else {
            n.purl.as_str()
        };
        by_msg.entry((n.kind, &n.message)).or_default().push(who);
    }
    for ((kind, msg), who) in &by_msg {
        let _ = writeln!(
            s,
            "<details><summary>{}: {} ({} components)</summary><ul>{}</ul></details>",
            match kind {
                NoteKind::EndOfLife => "end of life",
                NoteKind::Warning => "warning",
                NoteKind::Info => "info",
            },
            e(msg),
            who.len(),
            who.iter()
                .map(|w| format!("<li><code>{}</code></li>", e(w)))
                .collect::<String>()
        );
    }
    let _ = writeln!(s, "</section>");
}

/// Every component of the SBOM, folded: what the scan saw, for a reader
/// asking "was X even found?".
fn components_section(s: &mut String, r: &ScanReport) {
    let comps = components(&r.sbom);
    let _ = writeln!(
        s,
        r#"<section id="components"><h2>Components ({})</h2><details><summary>show</summary><div class="scroll"><table><thead><tr><th>name</th><th>version</th><th>type</th><th>purl</th><th>path</th><th>layer</th></tr></thead><tbody>"#,
        comps.len()
    );
    for c in &comps {
        let _ = writeln!(
            s,
            r#"<tr><td>{}</td><td class="mono">{}</td><td>{}</td><td class="mono">{}</td><td class="mono">{}</td><td>{}</td></tr>"#,
            e(&c[0]),
            e(&c[1]),
            e(&c[2]),
            e(&c[3]),
            e(&c[4]),
            e(&c[5])
        );
    }
    let _ = writeln!(s, "</tbody></table></div></details></section>");
}

/// `report.html` of a job that ended in an error (no scan result): what
/// went wrong and what to do, from the job's `record.json`. The action's
/// execution link points here, so a red stage always has a page to open.
pub fn render_error(meta: &Meta, record: &Value, remedy: &[String]) -> String {
    let field = |k: &str| record[k].as_str().unwrap_or("").to_owned();
    let image = record["image"]["reference"]
        .as_str()
        .unwrap_or("(not known)");
    let kind = field("failure_type");
    let mut s = String::with_capacity(8 * 1024);
    let _ = write!(
        s,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{}</title><style>{CSS}</style></head><body>
<h1>{} <span id="verdict" class="verdict FAIL">ERROR</span></h1>
"#,
        e(&format!("scangate: {image} — ERROR ({kind})")),
        e(image),
        csp = &*CSP
    );
    let _ = writeln!(
        s,
        r#"<section id="error"><h2>What went wrong</h2><p id="failure-type"><strong>{}</strong></p><p id="message">{}</p></section>"#,
        e(&kind),
        e(&field("message"))
    );
    let _ = writeln!(s, r#"<section id="remedy"><h2>What to do</h2><ol>"#);
    for step in remedy {
        let _ = writeln!(s, "<li>{}</li>", e(step));
    }
    let _ = writeln!(s, "</ol></section>");
    let _ = writeln!(
        s,
        r#"<section id="summary"><h2>Job</h2><div class="scroll"><table>"#
    );
    for (k, v) in [
        ("image", image.to_owned()),
        ("job", meta.job_id.to_owned()),
        ("pipeline", field("pipeline")),
        ("stage", field("stage")),
        ("action", field("action")),
        ("pipeline execution", field("pipeline_execution_id")),
        ("worker", field("worker_id")),
        ("scangate version", field("version")),
        ("finished", meta.generated.to_owned()),
    ] {
        let _ = writeln!(s, "<tr><th>{}</th><td>{}</td></tr>", e(k), e(&v));
    }
    let _ = writeln!(s, "</table></div></section>\n</body></html>");
    s
}
