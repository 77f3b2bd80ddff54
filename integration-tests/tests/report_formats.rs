//! Report formats against their official schemas, offline: SARIF 2.1.0
//! (OASIS) for `report.sarif`, CycloneDX 1.5 for the SBOM `scangate sbom`
//! writes and for `scan --format cyclonedx`; `junit.xml` parsed as XML.
//! The reports checked are the snapshots rendered from real ScanSbom answers
//! (`src/report/snapshots`, kept current by the unit tests).

use std::path::{Path, PathBuf};
use std::process::Command;

use integration_tests::corpus;
use jsonschema::{Retrieve, Uri, Validator};
use serde_json::Value;

fn schemas() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

fn snapshots() -> PathBuf {
    corpus::workspace_dir().join("src/report/snapshots")
}

/// Resolves `$ref`s to the vendored copies by file name; never the network.
struct Vendored;

impl Retrieve for Vendored {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let name = uri.as_str().rsplit('/').next().unwrap_or_default();
        let name = name.split('#').next().unwrap_or_default();
        if !["spdx.schema.json", "jsf-0.82.schema.json"].contains(&name) {
            return Err(format!("no vendored schema for {uri}").into());
        }
        Ok(serde_json::from_slice(&std::fs::read(
            schemas().join(name),
        )?)?)
    }
}

fn validator(file: &str) -> Validator {
    let schema: Value =
        serde_json::from_slice(&std::fs::read(schemas().join(file)).unwrap()).unwrap();
    jsonschema::options()
        .with_retriever(Vendored)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn check(v: &Validator, path: &Path) {
    let doc: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let errors: Vec<String> = v
        .iter_errors(&doc)
        .take(10)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{}:\n{}",
        path.display(),
        errors.join("\n")
    );
}

fn files(ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(snapshots())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no *{ext} in {}", snapshots().display());
    v
}

#[test]
fn sarif_reports_are_valid_sarif_2_1_0() {
    let v = validator("sarif-schema-2.1.0.json");
    for p in files(".sarif") {
        check(&v, &p);
        let doc: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        // GitHub's own rules beyond the schema: every result has a location
        // and every rule a security-severity it can parse.
        for r in doc["runs"][0]["results"].as_array().unwrap() {
            assert!(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].is_string());
        }
        for rule in doc["runs"][0]["tool"]["driver"]["rules"]
            .as_array()
            .unwrap()
        {
            if let Some(s) = rule["properties"]["security-severity"].as_str() {
                let x: f64 = s.parse().unwrap();
                assert!((0.0..=10.0).contains(&x), "{s}");
            }
        }
    }
    // The schema does reject what it should.
    let bad = serde_json::json!({"version": "2.1.0", "runs": [{"tool": {}}]});
    assert!(!v.is_valid(&bad));
}

#[test]
fn cyclonedx_with_vulnerabilities_is_valid_cyclonedx_1_5() {
    let v = validator("bom-1.5.schema.json");
    for p in files(".cdx.json") {
        check(&v, &p);
    }
}

#[test]
fn sbom_of_a_corpus_image_is_valid_cyclonedx_1_5() {
    let dir = corpus::ensure_corpus(&["debian-base"]).expect("building the corpus");
    let out = tempfile::tempdir().unwrap();
    let sbom = out.path().join("sbom.json");
    let status = Command::new(corpus::scangate_bin())
        .arg("sbom")
        .arg(format!("oci:{}", dir.join("debian-base").display()))
        .arg("--output")
        .arg(&sbom)
        .status()
        .unwrap();
    assert!(status.success());
    check(&validator("bom-1.5.schema.json"), &sbom);
}

#[test]
fn junit_reports_are_well_formed_with_consistent_counts() {
    for p in files(".junit.xml") {
        let text = std::fs::read_to_string(&p).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{p:?}: {e}"));
        let suite = doc
            .descendants()
            .find(|n| n.has_tag_name("testsuite"))
            .unwrap();
        let cases: Vec<_> = suite
            .children()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        let count = |tag: &str| {
            cases
                .iter()
                .filter(|c| c.children().any(|x| x.has_tag_name(tag)))
                .count()
        };
        let attr = |k: &str| suite.attribute(k).unwrap().parse::<usize>().unwrap();
        assert_eq!(attr("tests"), cases.len(), "{p:?}");
        assert_eq!(attr("failures"), count("failure"), "{p:?}");
        assert_eq!(attr("skipped"), count("skipped"), "{p:?}");
        assert_eq!(attr("errors"), 0);
    }
}
