//! Accuracy against the corpus ground truth: `scangate sbom oci:DIR` on each
//! corpus image built by `../shared/corpus/build.sh`, scored by the corpus's
//! own `score.py` (recall and precision per image).

use std::process::Command;

use integration_tests::corpus;

/// Images whose ecosystems scangate catalogues today. Each must score
/// recall ≥ 0.99 and precision ≥ 0.99, the bar syft and trivy set on them
/// (../shared/corpus/peers/RECALL.md).
const IMAGES: [&str; 4] = ["debian-base", "alpine-like", "python-app", "node-app"];

fn score(name: &str) -> (f64, f64, String) {
    let dir = corpus::ensure_corpus(&[name]).expect("building the corpus");
    let out_dir = tempfile::tempdir().unwrap();
    let sbom = out_dir.path().join(format!("{name}.cdx.json"));
    let run = Command::new(corpus::scangate_bin())
        .args([
            "sbom",
            &format!("oci:{}", dir.join(name).display()),
            "--output",
        ])
        .arg(&sbom)
        .output()
        .expect("running scangate sbom");
    assert!(
        run.status.success(),
        "scangate sbom {name}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let scored = Command::new("python3")
        .arg(corpus::shared_dir().join("corpus/score.py"))
        .arg(corpus::expected_path(name))
        .arg(&sbom)
        .output()
        .expect("running score.py");
    let text = String::from_utf8_lossy(&scored.stdout).into_owned();
    let last = text.lines().last().unwrap_or_default();
    let num = |key: &str| -> f64 {
        last.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in score.py output:\n{text}"))
    };
    (num("recall="), num("precision="), text)
}

#[test]
fn corpus_images_score_at_least_99_percent() {
    let mut failures = Vec::new();
    for name in IMAGES {
        let (recall, precision, text) = score(name);
        eprintln!("{name}: recall={recall:.4} precision={precision:.4}");
        if recall < 0.99 || precision < 0.99 {
            failures.push(format!("{name}:\n{text}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
