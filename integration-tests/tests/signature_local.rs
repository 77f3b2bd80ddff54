//! Signatures of local images through the real `scangate scan` binary: an
//! OCI image layout that carries its cosign signature (the `sha256-HEX.sig`
//! tag in its `index.json`, as `cosign sign` to an `oci-layout` writes it)
//! passes a policy requiring a signature; signed with another key it fails
//! INVALID; a `docker save` archive, which cannot carry signatures, fails
//! closed with NOT_CHECKED and says why. The Inspector emulator answers as
//! in scan_cli.rs (the alpine 3.18.2 fixture).

mod support;

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use integration_tests::images::{BuiltImage, ImageBuilder, OCI_MANIFEST, sha256_digest};
use serde_json::{Value, json};
use support::Env;

const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
    out.stdout
}

/// A P-256 key pair `DIR/NAME.key`, `DIR/NAME.pub` (cosign's default).
fn key_pair(dir: &Path, name: &str) -> (String, String) {
    let key = dir.join(format!("{name}.key")).display().to_string();
    let public = dir.join(format!("{name}.pub")).display().to_string();
    let curve = "ec_paramgen_curve:P-256";
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        curve,
        "-out",
        &key,
    ]);
    openssl(&["pkey", "-in", &key, "-pubout", "-out", &public]);
    (key, public)
}

fn write_blob(layout: &Path, bytes: &[u8]) -> (String, usize) {
    let digest = sha256_digest(bytes);
    let path = layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    std::fs::write(path, bytes).unwrap();
    (digest, bytes.len())
}

/// Signs `image` in the layout as cosign does: the simple-signing payload
/// (ECDSA over SHA-256, ASN.1 DER, base64 in the layer annotation) in a
/// manifest tagged `sha256-HEX.sig` in `index.json`.
fn cosign_sign_in_layout(layout: &Path, image: &BuiltImage, key: &str) {
    let tag = format!("{}.sig", image.manifest_digest.replacen(':', "-", 1));
    let entry = json!({"org.opencontainers.image.ref.name": tag});
    add_cosign_signature(layout, image, key, entry);
}

/// Adds a cosign signature manifest of `image` to the layout's
/// `index.json` with the entry annotations `annotations`.
fn add_cosign_signature(layout: &Path, image: &BuiltImage, key: &str, annotations: Value) {
    let digest = &image.manifest_digest;
    let payload = json!({
        "critical": {
            "identity": {"docker-reference": "local/app"},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature"
        },
        "optional": null
    })
    .to_string();
    let msg = layout.join("payload.tmp");
    std::fs::write(&msg, &payload).unwrap();
    let der = openssl(&["dgst", "-sha256", "-sign", key, &msg.display().to_string()]);
    std::fs::remove_file(&msg).unwrap();
    let (payload_digest, payload_size) = write_blob(layout, payload.as_bytes());
    let config = json!({"architecture": "", "os": "", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [payload_digest]}})
    .to_string();
    let (config_digest, config_size) = write_blob(layout, config.as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": SIMPLE_SIGNING, "digest": payload_digest, "size": payload_size,
                    "annotations": {"dev.cosignproject.cosign/signature": STANDARD.encode(der)}}]
    })
    .to_string();
    let (manifest_digest, manifest_size) = write_blob(layout, manifest.as_bytes());
    let index_path = layout.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    index["manifests"].as_array_mut().unwrap().push(json!({
        "mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": manifest_size,
        "annotations": annotations
    }));
    std::fs::write(&index_path, index.to_string()).unwrap();
}

fn scan(env: &Env, image: &str, policy: &str) -> (Option<i32>, Value, String) {
    let out = env.cli(&["scan", image, "--policy", policy, "--format", "json"]);
    let report = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    (out.code, report, out.stderr)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_oci_layout_passes_a_required_signature() {
    let env = Env::new(false).await;
    let dir = tempfile::tempdir().unwrap();
    let image = ImageBuilder::new()
        .layer(support::alpine_fixture_layer())
        .build()
        .unwrap();
    let layout = dir.path().join("layout");
    image.write_oci_layout(&layout, Some("v1")).unwrap();
    let (key, public) = key_pair(dir.path(), "cosign");
    let (_, stranger) = key_pair(dir.path(), "stranger");
    let policy = dir.path().join("policy.yaml").display().to_string();
    let write_policy = |key: &str| {
        std::fs::write(
            &policy,
            format!(
                "version: 1\nthresholds: {{ critical: null, high: null }}\n\
                 signature:\n  required: true\n  cosign:\n    keys: [{key}]\n"
            ),
        )
        .unwrap()
    };
    write_policy(&public);
    let source = format!("oci:{}:v1", layout.display());

    // unsigned: fails closed
    let (code, report, stderr) = scan(&env, &source, &policy);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(report["signature"], "UNSIGNED", "{report}");

    // signed in the layout: verified, and the gate passes
    cosign_sign_in_layout(&layout, &image, &key);
    let (code, report, stderr) = scan(&env, &source, &policy);
    assert_eq!(code, Some(0), "{report}\n{stderr}");
    assert_eq!(report["verdict"], "PASS");
    assert_eq!(report["signature"], "VERIFIED", "{report}");

    // a policy trusting another key: INVALID, with the reason
    write_policy(&stranger);
    let (code, report, _) = scan(&env, &source, &policy);
    assert_eq!(code, Some(1));
    assert_eq!(report["signature"], "INVALID", "{report}");
    assert!(
        report["violations"].to_string().contains("untrusted key"),
        "{report}"
    );

    // docker save cannot carry signatures: NOT_CHECKED, which fails
    write_policy(&public);
    let archive = dir.path().join("image.tar");
    image
        .write_docker_archive(&archive, "local/app:v1")
        .unwrap();
    let source = format!("docker-archive:{}", archive.display());
    let (code, report, _) = scan(&env, &source, &policy);
    assert_eq!(code, Some(1));
    assert_eq!(report["signature"], "NOT_CHECKED", "{report}");
    assert!(
        report["violations"]
            .to_string()
            .contains("a docker save archive cannot carry signatures"),
        "{report}"
    );
}

/// `cosign save` writes the image and its signature manifest untagged in
/// `index.json`, told apart only by `kind` annotations: `scangate scan
/// oci:DIR` (no tag) reads the image, not the signature, and verifies it.
#[tokio::test(flavor = "multi_thread")]
async fn a_cosign_saved_layout_scans_untagged_and_verifies() {
    let env = Env::new(false).await;
    let dir = tempfile::tempdir().unwrap();
    let image = ImageBuilder::new()
        .layer(support::alpine_fixture_layer())
        .build()
        .unwrap();
    let layout = dir.path().join("layout");
    image.write_oci_layout(&layout, None).unwrap();
    let index_path = layout.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    index["manifests"][0]["annotations"] = json!({"kind": "dev.cosignproject.cosign/image"});
    std::fs::write(&index_path, index.to_string()).unwrap();
    let (key, public) = key_pair(dir.path(), "cosign");
    let sigs = json!({"kind": "dev.cosignproject.cosign/sigs"});
    add_cosign_signature(&layout, &image, &key, sigs);
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "version: 1\nthresholds: {{ critical: null, high: null }}\n\
             signature:\n  required: true\n  cosign:\n    keys: [{public}]\n"
        ),
    )
    .unwrap();
    let source = format!("oci:{}", layout.display());
    let (code, report, stderr) = scan(&env, &source, &policy.display().to_string());
    assert_eq!(code, Some(0), "{report}\n{stderr}");
    assert_eq!(report["verdict"], "PASS", "{report}");
    assert_eq!(report["signature"], "VERIFIED", "{report}");
    assert_eq!(
        report["digest"].as_str(),
        Some(image.manifest_digest.as_str()),
        "{report}"
    );
}
