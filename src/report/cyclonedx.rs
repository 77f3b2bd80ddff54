//! `scangate scan --format cyclonedx`: our SBOM with Inspector's findings as
//! CycloneDX 1.5 `vulnerabilities`, each affecting our own bom-refs.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::inspector::findings::percent_decode;
use crate::pipeline::ScanReport;

/// CycloneDX 1.5 rating methods; anything else is `other`.
const METHODS: [&str; 7] = [
    "CVSSv2", "CVSSv3", "CVSSv31", "CVSSv4", "OWASP", "SSVC", "other",
];

pub fn render(r: &ScanReport) -> Value {
    let mut bom = r.sbom.clone();
    let mut refs: HashMap<String, String> = HashMap::new();
    fn walk(v: &Value, out: &mut HashMap<String, String>) {
        for c in v["components"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            if let (Some(p), Some(b)) = (c["purl"].as_str(), c["bom-ref"].as_str()) {
                out.entry(percent_decode(p)).or_insert_with(|| b.to_owned());
            }
            walk(c, out);
        }
    }
    walk(&bom, &mut refs);
    let mut order: Vec<&str> = Vec::new();
    let mut vulns: HashMap<&str, Value> = HashMap::new();
    for f in &r.result.findings {
        let v = vulns.entry(&f.id).or_insert_with(|| {
            order.push(&f.id);
            let mut ratings = Vec::new();
            if f.cvss_score.is_some() || f.severity_source.is_some() {
                let method = f
                    .cvss_method
                    .as_deref()
                    .filter(|m| METHODS.contains(m))
                    .unwrap_or("other");
                let mut rating = json!({
                    "severity": f.severity.as_str().to_ascii_lowercase().replace("other", "unknown"),
                    "method": method,
                });
                if let Some(s) = f.cvss_score {
                    rating["score"] = json!(s);
                }
                if let Some(v) = &f.cvss_vector {
                    rating["vector"] = json!(v);
                }
                if let Some(n) = &f.severity_source {
                    rating["source"] = json!({ "name": n });
                }
                ratings.push(rating);
            }
            if let Some(e) = f.epss {
                ratings.push(json!({ "source": { "name": "EPSS" }, "score": e, "severity": "none", "method": "other" }));
            }
            let mut v = json!({
                "bom-ref": format!("vuln-{}", order.len()),
                "id": f.id,
                "ratings": ratings,
                "affects": [],
                "properties": [],
            });
            if let Some(u) = &f.url {
                v["source"] = json!({ "url": iri(u) });
            }
            if !f.description.is_empty() {
                v["description"] = json!(f.description);
            }
            if !f.cwes.is_empty() {
                v["cwes"] = json!(f.cwes);
            }
            if !f.references.is_empty() {
                v["advisories"] = json!(f.references.iter().map(|u| json!({ "url": iri(u) })).collect::<Vec<_>>());
            }
            for (k, val) in [("published", &f.published), ("updated", &f.updated)] {
                if let Some(t) = val {
                    v[k] = json!(t);
                }
            }
            v
        });
        let Some(bref) = refs.get(&f.purl) else {
            continue;
        };
        if let Some(a) = v["affects"].as_array_mut() {
            a.push(json!({ "ref": bref }));
        }
        let props = v["properties"].as_array_mut();
        if let Some(props) = props {
            if let Some(fx) = &f.fixed_version {
                props
                    .push(json!({ "name": format!("scangate:fixed_version:{bref}"), "value": fx }));
            }
            if let Some(s) = super::suppression_of(&r.decision, f) {
                props.push(
                    json!({ "name": format!("scangate:suppressed:{bref}"), "value": s.reason }),
                );
            }
            if let Some(k) = &f.kev_date_added
                && !props
                    .iter()
                    .any(|p| p["name"] == "scangate:cisa_kev_date_added")
            {
                props.push(json!({ "name": "scangate:cisa_kev_date_added", "value": k }));
            }
        }
    }
    let list: Vec<Value> = order
        .iter()
        .filter_map(|id| vulns.remove(id))
        // A vulnerability of a component our SBOM does not have (the
        // service's own OS or Dockerfile entries) has nothing to point at.
        .filter(|v| v["affects"].as_array().is_some_and(|a| !a.is_empty()))
        .map(|mut v| {
            if v["properties"].as_array().is_some_and(Vec::is_empty)
                && let Some(o) = v.as_object_mut()
            {
                o.remove("properties");
            }
            v
        })
        .collect();
    bom["vulnerabilities"] = json!(list);
    bom
}

/// CycloneDX wants IRI references; Inspector's advisory URLs can carry raw
/// spaces (`…/Arm Security Center/…`), so characters an IRI cannot hold are
/// percent-encoded.
fn iri(u: &str) -> String {
    let mut out = String::with_capacity(u.len());
    for c in u.chars() {
        if c.is_control() || " \"<>\\^`{|}".contains(c) {
            let mut b = [0; 4];
            for byte in c.encode_utf8(&mut b).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}
