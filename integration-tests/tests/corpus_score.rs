//! Accuracy against the corpus ground truth: `scangate sbom` on every corpus
//! image built by `../shared/corpus/build.sh`, scored by the corpus's own
//! `score.py` (recall and precision per image and per package type).
//!
//! Every image is read from its OCI layout; a few are also read from their
//! `docker save` tarball, which must give the same score (same code path
//! after the blob source).

use integration_tests::corpus;

/// Every image in the corpus, with the recall syft and trivy reach on it
/// (../shared/corpus/peers/RECALL.md; syft 1.18.1, trivy 0.76.0). scangate
/// must reach recall ≥ 0.99, precision ≥ 0.99, and at least each peer's
/// recall.
const IMAGES: [(&str, f64, f64); 9] = [
    ("debian-base", 1.000, 1.000),
    ("alpine-like", 1.000, 1.000),
    ("python-app", 1.000, 1.000),
    ("node-app", 1.000, 1.000),
    ("polyglot", 0.973, 0.529),
    ("distroless-like", 1.000, 1.000),
    ("rpm-bdb", 1.000, 1.000),
    ("rpm-ndb", 1.000, 1.000),
    ("rpm-sqlite", 1.000, 1.000),
];

/// Every image is also read from its `NAME.tar` (`docker save`): the same
/// score is required through both sources.
const DOCKER_ARCHIVES: [&str; 9] = [
    "debian-base",
    "alpine-like",
    "python-app",
    "node-app",
    "polyglot",
    "distroless-like",
    "rpm-bdb",
    "rpm-ndb",
    "rpm-sqlite",
];

fn score(name: &str, source: &str) -> corpus::Score {
    corpus::score(source, &corpus::expected_path(name), false)
}

#[test]
fn corpus_images_score_at_least_99_percent_and_at_least_the_peers() {
    let names: Vec<&str> = IMAGES.iter().map(|(n, _, _)| *n).collect();
    let dir = corpus::ensure_corpus(&names).expect("building the corpus");
    let mut failures = Vec::new();
    for (name, syft, trivy) in IMAGES {
        let s = score(name, &format!("oci:{}", dir.join(name).display()));
        eprintln!(
            "{name}: recall={:.4} precision={:.4} (syft recall {syft:.3}, trivy {trivy:.3})",
            s.recall, s.precision
        );
        if s.recall < 0.99 || s.precision < 0.99 || s.recall < syft || s.recall < trivy {
            failures.push(format!("{name} (oci):\n{}", s.text));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn docker_archives_score_like_their_oci_layouts() {
    let dir = corpus::ensure_corpus(&DOCKER_ARCHIVES).expect("building the corpus");
    for name in DOCKER_ARCHIVES {
        let oci = score(name, &format!("oci:{}", dir.join(name).display()));
        let tar = score(
            name,
            &format!(
                "docker-archive:{}",
                dir.join(format!("{name}.tar")).display()
            ),
        );
        assert_eq!(
            (tar.recall, tar.precision),
            (oci.recall, oci.precision),
            "{name}: docker-archive scored\n{}\nOCI layout scored\n{}",
            tar.text,
            oci.text
        );
        assert!(
            tar.recall >= 0.99 && tar.precision >= 0.99,
            "{name}:\n{}",
            tar.text
        );
    }
}
