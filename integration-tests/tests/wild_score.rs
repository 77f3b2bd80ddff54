//! Accuracy on the "wild" corpus (`integration-tests/wild/`): images laid out
//! the way other builders lay them out (uv's hard-linked cache, Go stamped by
//! `-ldflags -X` and VCS, setuptools eggs and `pip --target`, `npm -g` with
//! bundled dependencies, Spring Boot / WAR / shaded jars / Jenkins plugins,
//! the .NET runtime, package databases without os-release), each scored by
//! the shared `score.py` against ground truth from the real tools, through
//! the OCI layout and the `docker save` archive. scangate must reach recall
//! and precision ≥ 0.99 and at least syft's and trivy's recall
//! (`wild/peers/RECALL.md`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use integration_tests::corpus;
use serde_json::Value;

/// Every wild image with syft's and trivy's recall on it (wild/peers/RECALL.md).
const IMAGES: [(&str, f64, f64); 8] = [
    ("wild-uv-hardlinks", 1.0, 1.0),
    ("wild-go-stamped", 1.0, 0.25),
    ("wild-python-odd", 0.8, 1.0),
    ("wild-npm-global", 1.0, 1.0),
    ("wild-java-layouts", 1.0, 0.875),
    ("wild-dotnet-runtime", 0.0, 0.75),
    ("wild-apk-no-os-release", 0.0, 0.0),
    ("wild-rpm-no-os-release", 1.0, 0.0),
];

/// `SCANGATE_WILD_DIR`, else `<workspace>/target/wild`.
fn wild_dir() -> PathBuf {
    match std::env::var_os("SCANGATE_WILD_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => corpus::workspace_dir().join("target").join("wild"),
    }
}

/// Builds the wild corpus unless every image is there (under a lock: test
/// binaries run in parallel). Needs root and the package registries.
fn ensure_wild() -> PathBuf {
    let out = wild_dir();
    let built = |out: &Path| {
        IMAGES
            .iter()
            .all(|(n, _, _)| out.join(n).join("index.json").is_file())
    };
    if built(&out) {
        return out;
    }
    std::fs::create_dir_all(&out).unwrap();
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(out.join(".build.lock"))
        .unwrap();
    lock.lock().unwrap();
    if !built(&out) {
        let script = corpus::workspace_dir().join("integration-tests/wild/build.sh");
        let status = Command::new("bash")
            .arg(&script)
            .arg(&out)
            .env("SCANGATE_SHARED_DIR", corpus::shared_dir())
            .status()
            .expect("running wild/build.sh");
        assert!(status.success(), "{} failed ({status})", script.display());
    }
    out
}

fn score(dir: &Path, name: &str, source: &str) -> corpus::Score {
    let expected = dir.join("expected").join(format!("{name}.json"));
    corpus::score(source, &expected, true)
}

#[test]
fn wild_images_score_at_least_99_percent_and_at_least_the_peers() {
    let dir = ensure_wild();
    let mut failures = Vec::new();
    for (name, syft, trivy) in IMAGES {
        for source in [
            format!("oci:{}", dir.join(name).display()),
            format!(
                "docker-archive:{}",
                dir.join(format!("{name}.tar")).display()
            ),
        ] {
            let s = score(&dir, name, &source);
            eprintln!(
                "{source}: recall={:.4} precision={:.4} (syft {syft:.3}, trivy {trivy:.3})",
                s.recall, s.precision
            );
            if s.recall < 0.99 || s.precision < 0.99 || s.recall < syft || s.recall < trivy {
                failures.push(format!("{source}:\n{}", s.text));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn purls(sbom: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        for c in v.as_array().into_iter().flatten() {
            if let Some(p) = c["purl"].as_str() {
                out.push(p.to_owned());
            }
            walk(&c["components"], out);
        }
    }
    walk(&sbom["components"], &mut out);
    out
}

/// Class 7: with no os-release, packages of an apk or rpm database are
/// named after the distribution their database shows, never Debian's, and
/// never left without a namespace that Inspector needs to match them.
#[test]
fn databases_without_os_release_keep_their_own_distribution() {
    let dir = ensure_wild();
    for (name, namespace) in [
        ("wild-apk-no-os-release", "pkg:apk/alpine/"),
        // The namespace the same database gets beside RHEL's own os-release
        // (ID=rhel; the shared corpus's rpm-bdb image).
        ("wild-rpm-no-os-release", "pkg:rpm/rhel/"),
    ] {
        let s = score(&dir, name, &format!("oci:{}", dir.join(name).display()));
        let purls = purls(&s.sbom);
        assert!(!purls.is_empty(), "{name}: no packages");
        for p in &purls {
            assert!(!p.contains("debian"), "{name}: {p} is called Debian's");
            assert!(
                p.starts_with(namespace),
                "{name}: {p} is not under {namespace}"
            );
        }
    }
}
