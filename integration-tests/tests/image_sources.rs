//! "Images from anywhere" end to end: the real `scangate sbom` binary
//! against the real Debian `docker-registry` on 127.0.0.1 with images this
//! harness builds and pushes itself: multi-platform OCI indexes and Docker
//! manifest lists, zstd / uncompressed / foreign layers, blobs corrupted in
//! the registry's storage, configs whose diff_ids lie, decompression bombs,
//! too many layers, and a blob download cut mid-way and resumed with a
//! `Range` request through a cutting TCP proxy.
//!
//! What `docker-registry` 2.8 refuses to store (schema 1 manifests, which
//! it no longer accepts; manifests over its own 4 MiB limit) is served by
//! the in-process distribution server instead.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use flate2::Compression;
use flate2::write::GzEncoder;
use integration_tests::corpus;
use integration_tests::images::{
    BuiltImage, DOCKER_LAYER_FOREIGN, DOCKER_MANIFEST, ImageBuilder, IndexBuilder, Layer,
    OCI_LAYER_GZIP, OCI_LAYER_NONDISTRIBUTABLE_GZIP, OCI_LAYER_TAR, OCI_LAYER_ZSTD, OCI_MANIFEST,
    Platform, debian_os_release, dpkg_layer, dpkg_status, push_blob, push_manifest, sha256_digest,
};
use integration_tests::oci_server::OciServer;
use integration_tests::registry::Registry;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Run {
    out: Output,
    sbom: Option<Value>,
    /// Peak resident set of the scangate process, in KiB.
    max_rss_kib: i64,
}

impl Run {
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    fn sbom(&self) -> &Value {
        assert!(
            self.out.status.success(),
            "scangate failed:\n{}",
            self.stderr()
        );
        self.sbom.as_ref().expect("an SBOM was written")
    }

    /// Exit 2 with an error containing every needle.
    fn assert_err(&self, needles: &[&str]) -> String {
        let err = self.stderr();
        assert_eq!(self.out.status.code(), Some(2), "{err}");
        for n in needles {
            assert!(err.contains(n), "expected {n:?} in:\n{err}");
        }
        err
    }
}

/// `scangate sbom IMAGE [args]` with a clean environment, the registry
/// `insecure` reached over plain HTTP and debug logs (where pull warnings
/// go) on stderr.
async fn sbom(image: &str, insecure: &str, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("sbom.json");
    let bin = corpus::scangate_bin().to_owned();
    let mut cmd = std::process::Command::new(bin);
    cmd.args(["sbom", image, "-o"])
        .arg(&out_path)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("SCANGATE_INSECURE_REGISTRIES", insecure)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "scangate=debug")
        .env("SCANGATE_LOG_FORMAT", "text");
    // A child of its own so that its rusage is read alone: tests in this
    // file run in parallel, and RUSAGE_CHILDREN would mix their children.
    let (out, max_rss_kib) =
        tokio::task::spawn_blocking(move || integration_tests::process::run_measured(cmd))
            .await
            .unwrap();
    let sbom = std::fs::read(&out_path)
        .ok()
        .map(|b| serde_json::from_slice(&b).expect("the SBOM is JSON"));
    Run {
        out,
        sbom,
        max_rss_kib,
    }
}

fn property<'a>(sbom: &'a Value, name: &str) -> Option<&'a str> {
    sbom["metadata"]["component"]["properties"]
        .as_array()
        .into_iter()
        .chain(sbom["metadata"]["properties"].as_array())
        .flatten()
        .find(|p| p["name"] == name)
        .and_then(|p| p["value"].as_str())
}

fn purls(sbom: &Value) -> Vec<String> {
    sbom["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["purl"].as_str())
        .map(str::to_owned)
        .collect()
}

fn has_purl(sbom: &Value, prefix: &str) -> bool {
    purls(sbom).iter().any(|p| p.starts_with(prefix))
}

fn debian_image(pkgs: &[(&str, &str, &str, &str)]) -> ImageBuilder {
    ImageBuilder::new().layer(dpkg_layer(&debian_os_release(), &dpkg_status(pkgs)))
}

const LIBC_AMD64: (&str, &str, &str, &str) = ("libc6", "2.36-9+deb12u4", "amd64", "glibc");
const ZLIB_ARM64: (&str, &str, &str, &str) = ("zlib1g", "1:1.2.13.dfsg-1", "arm64", "zlib");

/// An amd64 image with libc6 and an arm64/v8 image with zlib1g, as an OCI
/// index or a Docker manifest list.
fn two_platform_index(docker: bool) -> integration_tests::images::BuiltIndex {
    let mut amd = debian_image(&[LIBC_AMD64]);
    let mut arm = debian_image(&[ZLIB_ARM64]).platform(Platform::linux_arm64());
    let mut index = IndexBuilder::new();
    if docker {
        amd = amd.docker_media_types();
        arm = arm.docker_media_types();
        index = index.docker_media_types();
    }
    index
        .manifest(amd.build().unwrap())
        .manifest(arm.build().unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn multi_platform_index_and_manifest_list_pick_the_requested_platform() {
    let registry = Registry::start().unwrap();
    for (docker, repo) in [(false, "multi/oci:1"), (true, "multi/docker:1")] {
        let index = two_platform_index(docker);
        index.push_to(&registry, repo).await.unwrap();
        let arm = index.image_for("linux", "arm64").unwrap();
        let image = registry.reference(repo);

        let run = sbom(&image, &registry.addr, &["--platform", "linux/arm64/v8"]).await;
        let bom = run.sbom();
        assert!(has_purl(bom, "pkg:deb/debian/zlib@"), "{:?}", purls(bom));
        assert!(!has_purl(bom, "pkg:deb/debian/glibc@"), "{:?}", purls(bom));
        assert_eq!(
            property(bom, "scangate:image:digest"),
            Some(arm.manifest_digest.as_str()),
            "{docker}: the platform manifest's digest is the one scanned"
        );
        assert_eq!(
            property(bom, "scangate:image:index_digest"),
            Some(index.digest.as_str())
        );
        assert!(
            run.stderr().contains(&arm.manifest_digest),
            "{}",
            run.stderr()
        );

        // The default platform is linux/amd64.
        let run = sbom(&image, &registry.addr, &[]).await;
        let bom = run.sbom();
        assert!(has_purl(bom, "pkg:deb/debian/glibc@"), "{:?}", purls(bom));
        assert!(!has_purl(bom, "pkg:deb/debian/zlib@"), "{:?}", purls(bom));
        let amd = index.image_for("linux", "amd64").unwrap();
        assert_eq!(
            property(bom, "scangate:image:digest"),
            Some(amd.manifest_digest.as_str())
        );

        // A platform the index does not have: every available one named.
        let run = sbom(&image, &registry.addr, &["--platform", "linux/s390x"]).await;
        run.assert_err(&[
            "no manifest for platform linux/s390x",
            "available: linux/amd64, linux/arm64/v8",
        ]);
    }
}

#[tokio::test]
async fn zstd_uncompressed_and_foreign_layers() {
    let registry = Registry::start().unwrap();
    let zlib_amd64 = ("zlib1g", "1:1.2.13.dfsg-1", "amd64", "zlib");
    // OCI: a zstd base (os-release, libc6), a non-distributable layer, an
    // uncompressed top layer whose dpkg
    // status adds zlib1g.
    let oci = ImageBuilder::new()
        .layer(dpkg_layer(&debian_os_release(), &dpkg_status(&[LIBC_AMD64])).zstd())
        .layer(
            Layer::new()
                .file(
                    "var/lib/dpkg/status",
                    dpkg_status(&[("ghost", "1", "amd64", "")]),
                )
                .foreign(OCI_LAYER_NONDISTRIBUTABLE_GZIP),
        )
        .layer(
            Layer::new()
                .file(
                    "var/lib/dpkg/status",
                    dpkg_status(&[LIBC_AMD64, zlib_amd64]),
                )
                .uncompressed(),
        )
        .build()
        .unwrap();
    // Docker schema 2: a foreign layer between two gzip ones, the way
    // Windows images reference their base.
    let docker = ImageBuilder::new()
        .docker_media_types()
        .layer(dpkg_layer(
            &debian_os_release(),
            &dpkg_status(&[LIBC_AMD64]),
        ))
        .layer(
            Layer::new()
                .file(
                    "var/lib/dpkg/status",
                    dpkg_status(&[("ghost", "1", "amd64", "")]),
                )
                .foreign(DOCKER_LAYER_FOREIGN),
        )
        .layer(Layer::new().file(
            "var/lib/dpkg/status",
            dpkg_status(&[LIBC_AMD64, zlib_amd64]),
        ))
        .build()
        .unwrap();
    assert_eq!(oci.layers[0].media_type, OCI_LAYER_ZSTD);
    assert_eq!(oci.layers[2].media_type, OCI_LAYER_TAR);
    assert!(oci.layers[1].foreign && docker.layers[1].foreign);

    // docker-registry 2.8 as packaged wants every layer's blob present and
    // refuses Docker foreign layers outright (it has no `urls` allow list):
    // the OCI image goes to it with the blob there, the skip proved by its
    // access log; the Docker one is served in-process without the blob, so
    // a fetch would fail.
    push_blob(&registry, "layers/oci", &oci.layers[1].blob)
        .await
        .unwrap();
    oci.push_to(&registry, "layers/oci:1").await.unwrap();
    let server = OciServer::new();
    for l in docker.layers.iter().filter(|l| !l.foreign) {
        server.add_blob(l.blob.clone());
    }
    server.add_blob(docker.config_bytes.clone());
    server.add_manifest(
        "layers/docker",
        "1",
        &docker.media_type,
        docker.manifest_bytes.clone(),
    );
    let server_addr = server
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .to_string();

    let proxy = CuttingProxy::recording(&registry.addr).await;
    let proxy_addr = proxy.addr.to_string();
    for (built, image, insecure) in [
        (
            &oci,
            format!("{proxy_addr}/layers/oci:1"),
            proxy_addr.clone(),
        ),
        (
            &docker,
            format!("{server_addr}/layers/docker:1"),
            server_addr.clone(),
        ),
    ] {
        let run = sbom(&image, &insecure, &[]).await;
        let bom = run.sbom();
        assert!(has_purl(bom, "pkg:deb/debian/glibc@"), "{:?}", purls(bom));
        assert!(has_purl(bom, "pkg:deb/debian/zlib@"), "{:?}", purls(bom));
        assert!(!has_purl(bom, "pkg:deb/debian/ghost@"), "{:?}", purls(bom));
        let err = run.stderr();
        let l = &built.layers[1];
        let note = format!(
            "layer 2 ({}) is a foreign/non-distributable layer ({}); skipped",
            &l.digest[..19],
            l.media_type
        );
        assert!(err.contains(&note), "expected {note:?} in:\n{err}");
        // The SBOM still lists every layer of the manifest, in order.
        let layer_digests: Vec<&str> = bom["metadata"]["component"]["properties"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["name"] == "scangate:image:layer_digest")
            .filter_map(|p| p["value"].as_str())
            .collect();
        let expected: Vec<&str> = built.layers.iter().map(|l| l.digest.as_str()).collect();
        assert_eq!(layer_digests, expected);
    }
    assert!(
        !proxy.fetched(&oci.layers[1].digest),
        "the non-distributable layer was fetched"
    );
    assert!(
        proxy.fetched(&oci.layers[0].digest),
        "the proxy saw no blob GETs; the check above proves nothing"
    );
}

#[tokio::test]
async fn schema1_and_oversized_manifests_are_refused() {
    // docker-registry 2.8 no longer stores schema 1 manifests, and caps
    // manifests at 4 MiB itself: both are served by the in-process server.
    let server = OciServer::new();
    let schema1 = json!({
        "schemaVersion": 1, "name": "old/app", "tag": "1", "architecture": "amd64",
        "fsLayers": [{"blobSum": sha256_digest(b"x")}],
        "history": [{"v1Compatibility": "{}"}],
        "signatures": [],
    });
    server.add_manifest(
        "old/app",
        "1",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        serde_json::to_vec(&schema1).unwrap(),
    );
    let mut big = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256_digest(b"{}"), "size": 2},
        "layers": []});
    big["annotations"] = json!({"padding": "x".repeat(5 << 20)});
    server.add_manifest(
        "big/app",
        "1",
        OCI_MANIFEST,
        serde_json::to_vec(&big).unwrap(),
    );
    let addr = server
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .to_string();

    let run = sbom(&format!("{addr}/old/app:1"), &addr, &[]).await;
    run.assert_err(&["is not supported", "schema 1", "rebuild and push"]);

    let run = sbom(&format!("{addr}/big/app:1"), &addr, &[]).await;
    run.assert_err(&["exceeds a limit", "larger than 4194304 bytes"]);
}

#[tokio::test]
async fn a_blob_corrupted_in_registry_storage_is_named() {
    let registry = Registry::start().unwrap();
    let built = debian_image(&[LIBC_AMD64])
        .layer(Layer::new().file("opt/app/data", vec![7u8; 50_000]))
        .build()
        .unwrap();
    built.push_to(&registry, "corrupt/app:1").await.unwrap();
    let layer = &built.layers[1];
    let data = blob_data_path(&registry, &layer.digest);
    let mut bytes = std::fs::read(&data).unwrap();
    // Same length (the registry serves its stat size), different bytes.
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&data, &bytes).unwrap();

    let run = sbom(&registry.reference("corrupt/app:1"), &registry.addr, &[]).await;
    run.assert_err(&[
        &format!("digest mismatch for layer {}", layer.digest),
        &format!("expected {}", layer.digest),
        &sha256_digest(&bytes),
        "corrupted or altered",
    ]);
}

fn blob_data_path(registry: &Registry, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let p = registry
        .storage_dir()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    assert!(p.exists(), "{} not in the registry storage", p.display());
    p
}

/// Pushes `image` with its config's `rootfs.diff_ids` replaced by
/// `diff_ids`; returns the reference.
async fn push_with_diff_ids(
    registry: &Registry,
    repo: &str,
    image: &BuiltImage,
    diff_ids: Vec<String>,
) -> String {
    for l in image.layers.iter().filter(|l| !l.foreign) {
        push_blob(registry, repo, &l.blob).await.unwrap();
    }
    let mut config = image.config.clone();
    config["rootfs"]["diff_ids"] = json!(diff_ids);
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = push_blob(registry, repo, &config_bytes).await.unwrap();
    let mut manifest: Value = serde_json::from_slice(&image.manifest_bytes).unwrap();
    manifest["config"]["digest"] = json!(config_digest);
    manifest["config"]["size"] = json!(config_bytes.len());
    let bytes = serde_json::to_vec(&manifest).unwrap();
    push_manifest(registry, repo, "1", &image.media_type, &bytes)
        .await
        .unwrap();
    registry.reference(&format!("{repo}:1"))
}

#[tokio::test]
async fn a_config_whose_diff_ids_lie_is_refused() {
    let registry = Registry::start().unwrap();
    let image = debian_image(&[LIBC_AMD64])
        .docker_media_types()
        .layer(Layer::new().file("opt/app/data", "real"))
        .build()
        .unwrap();
    let wrong = sha256_digest(b"another layer");
    let diff_ids = vec![image.layers[0].diff_id.clone(), wrong.clone()];
    let reference = push_with_diff_ids(&registry, "liar/app", &image, diff_ids).await;
    let run = sbom(&reference, &registry.addr, &[]).await;
    run.assert_err(&[
        &format!(
            "digest mismatch for the uncompressed content of layer {}",
            image.layers[1].digest
        ),
        &format!("expected {wrong}"),
        &image.layers[1].diff_id,
    ]);

    // The honest config passes: the check is real, not a refusal of all.
    let diff_ids = image.layers.iter().map(|l| l.diff_id.clone()).collect();
    let reference = push_with_diff_ids(&registry, "honest/app", &image, diff_ids).await;
    let run = sbom(&reference, &registry.addr, &[]).await;
    assert!(has_purl(run.sbom(), "pkg:deb/debian/glibc@"));
}

/// A layer whose one file, `path`, is `size` zero bytes: a gzip stream of
/// concatenated members (one per MiB, each compressing the same MiB of
/// zeros), so a 1000:1 bomb is built in milliseconds. Returns the blob and
/// the diff_id.
fn zero_file_bomb(path: &str, size: u64) -> (Vec<u8>, String) {
    const MIB: usize = 1 << 20;
    assert_eq!(size % MIB as u64, 0);
    let gz = |data: &[u8]| {
        let mut e = GzEncoder::new(Vec::new(), Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let mut header = tar::Header::new_gnu();
    header.set_path(path).unwrap();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let zeros = vec![0u8; MIB];
    let end = [0u8; 1024];
    let mut blob = gz(header.as_bytes());
    let zeros_gz = gz(&zeros);
    let mut diff = Sha256::new();
    diff.update(header.as_bytes());
    // The hash of N MiB of zeros, without hashing N MiB: one MiB at a time
    // is what it takes; sha2 does ~hundreds of MiB/s even unoptimised.
    for _ in 0..size / MIB as u64 {
        blob.extend_from_slice(&zeros_gz);
        diff.update(&zeros);
    }
    blob.extend_from_slice(&gz(&end));
    diff.update(end);
    (blob, format!("sha256:{}", hex::encode(diff.finalize())))
}

#[tokio::test]
async fn a_gzip_bomb_with_an_oversized_wanted_file_stays_bounded() {
    let registry = Registry::start().unwrap();
    let repo = "bomb/app";
    // 256 MiB of "dpkg status" (a wanted path) from a ~300 KiB blob: over
    // the 64 MiB per-file limit, so skipped with a warning; the process
    // must stream it, never hold it.
    let size = 256u64 << 20;
    let (blob, diff_id) = zero_file_bomb("var/lib/dpkg/status", size);
    assert!(blob.len() < 1 << 20, "{}", blob.len());
    let base = debian_image(&[LIBC_AMD64]).build().unwrap();
    for l in &base.layers {
        push_blob(&registry, repo, &l.blob).await.unwrap();
    }
    let bomb_digest = push_blob(&registry, repo, &blob).await.unwrap();
    let mut config = base.config.clone();
    config["rootfs"]["diff_ids"] = json!([base.layers[0].diff_id, diff_id]);
    config["history"]
        .as_array_mut()
        .unwrap()
        .push(json!({"created_by": "bomb"}));
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = push_blob(&registry, repo, &config_bytes).await.unwrap();
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_bytes.len()},
        "layers": [base.layers[0].descriptor(),
                   {"mediaType": OCI_LAYER_GZIP, "digest": bomb_digest, "size": blob.len()}],
    });
    push_manifest(
        &registry,
        repo,
        "1",
        OCI_MANIFEST,
        &serde_json::to_vec(&manifest).unwrap(),
    )
    .await
    .unwrap();

    let run = sbom(&registry.reference("bomb/app:1"), &registry.addr, &[]).await;
    // The oversized status hides the base layer's (it replaced it), so no
    // dpkg packages; the run still succeeds and says why.
    let bom = run.sbom();
    assert!(!has_purl(bom, "pkg:deb/debian/glibc@"), "{:?}", purls(bom));
    let err = run.stderr();
    assert!(
        err.contains("var/lib/dpkg/status") && err.contains("limit"),
        "expected a per-file limit warning in:\n{err}"
    );
    eprintln!(
        "bomb: {} byte blob, {size} bytes decompressed, scangate peak RSS {} MiB",
        blob.len(),
        run.max_rss_kib / 1024
    );
    assert!(
        run.max_rss_kib < 200 * 1024,
        "peak RSS {} KiB for a 256 MiB file",
        run.max_rss_kib
    );
}

#[tokio::test]
async fn too_many_layers_are_refused_before_any_download() {
    let registry = Registry::start().unwrap();
    let repo = "deep/app";
    let base = debian_image(&[LIBC_AMD64])
        .docker_media_types()
        .build()
        .unwrap();
    let layer = &base.layers[0];
    push_blob(&registry, repo, &layer.blob).await.unwrap();
    let n = 257;
    let mut config = base.config.clone();
    config["rootfs"]["diff_ids"] = json!(vec![layer.diff_id.clone(); n]);
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = push_blob(&registry, repo, &config_bytes).await.unwrap();
    let manifest = json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": config_digest, "size": config_bytes.len()},
        "layers": vec![layer.descriptor(); n],
    });
    push_manifest(
        &registry,
        repo,
        "1",
        DOCKER_MANIFEST,
        &serde_json::to_vec(&manifest).unwrap(),
    )
    .await
    .unwrap();
    let proxy = CuttingProxy::recording(&registry.addr).await;
    let addr = proxy.addr.to_string();
    let run = sbom(&format!("{addr}/deep/app:1"), &addr, &[]).await;
    run.assert_err(&["exceeds a limit", "it has 257 layers; at most 256 are read"]);
    assert!(!proxy.fetched(&layer.digest), "a layer was downloaded");
    assert!(proxy.requests().contains("get /v2/deep/app/manifests/1 "));
}

// ------------------------------------------------------------------ Range resume

/// A TCP proxy in front of the registry that cuts the first response to a
/// GET of one blob after `cut_after` bytes, and records every request head
/// it forwards.
struct CuttingProxy {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<u8>>>,
    cut: Arc<AtomicBool>,
}

impl CuttingProxy {
    async fn start(upstream: &str, blob_path: String, cut_after: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let cut = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_owned();
        let (reqs, cut2) = (requests.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(proxy_connection(
                    client,
                    server,
                    blob_path.clone(),
                    cut_after,
                    reqs.clone(),
                    cut2.clone(),
                ));
            }
        });
        CuttingProxy {
            addr,
            requests,
            cut,
        }
    }

    /// A proxy that only records (it never cuts): to see which blobs a
    /// pull fetched (the registry's own access log is off).
    async fn recording(upstream: &str) -> Self {
        Self::start(upstream, "\0never".to_owned(), 0).await
    }

    fn fetched(&self, digest: &str) -> bool {
        self.requests()
            .lines()
            .any(|l| l.starts_with("get /v2/") && l.contains(&format!("/blobs/{digest} ")))
    }

    fn requests(&self) -> String {
        String::from_utf8_lossy(&self.requests.lock().unwrap()).to_ascii_lowercase()
    }
}

async fn proxy_connection(
    client: TcpStream,
    server: TcpStream,
    blob_path: String,
    cut_after: usize,
    requests: Arc<Mutex<Vec<u8>>>,
    cut: Arc<AtomicBool>,
) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    // Set by the request side when this connection carries the blob GET to
    // cut; the response side then forwards only `cut_after` more bytes.
    // HTTP/1.1 without pipelining: the bytes after that request are its
    // response.
    let armed = Arc::new(AtomicBool::new(false));
    let armed2 = armed.clone();
    let up = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 << 10];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            requests.lock().unwrap().extend_from_slice(chunk);
            let text = String::from_utf8_lossy(chunk);
            if text.starts_with("GET ")
                && text.contains(&blob_path)
                && !cut.swap(true, Ordering::SeqCst)
            {
                armed2.store(true, Ordering::SeqCst);
            }
            if sw.write_all(chunk).await.is_err() {
                break;
            }
        }
    });
    let mut buf = vec![0u8; 16 << 10];
    let mut left = cut_after;
    loop {
        let n = match sr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if armed.load(Ordering::SeqCst) {
            let take = n.min(left);
            let _ = cw.write_all(&buf[..take]).await;
            left -= take;
            if left == 0 {
                // Cut: both directions closed mid-body.
                break;
            }
            continue;
        }
        if cw.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    up.abort();
}

/// Bytes that do not compress (so the blob is as large as its content).
fn incompressible(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut block = Sha256::digest(b"scangate range resume");
    while out.len() < len {
        out.extend_from_slice(&block);
        block = Sha256::digest(block);
    }
    out.truncate(len);
    out
}

#[tokio::test]
async fn a_cut_blob_download_resumes_with_a_range_request() {
    let registry = Registry::start().unwrap();
    let built = debian_image(&[LIBC_AMD64])
        .layer(Layer::new().file("opt/app/blob.bin", incompressible(600 << 10)))
        .build()
        .unwrap();
    built.push_to(&registry, "resume/app:1").await.unwrap();
    let big = &built.layers[1];
    assert!(big.blob.len() > 500 << 10);
    let cut_after = 200 << 10;
    let proxy = CuttingProxy::start(
        &registry.addr,
        format!("/v2/resume/app/blobs/{}", big.digest),
        cut_after,
    )
    .await;
    let addr = proxy.addr.to_string();

    let run = sbom(&format!("{addr}/resume/app:1"), &addr, &[]).await;
    let bom = run.sbom();
    assert!(proxy.cut.load(Ordering::SeqCst), "the proxy never cut");
    assert!(has_purl(bom, "pkg:deb/debian/glibc@"), "{:?}", purls(bom));
    let requests = proxy.requests();
    let blob_gets = requests
        .matches(&format!("get /v2/resume/app/blobs/{} ", big.digest))
        .count();
    assert_eq!(blob_gets, 2, "one cut GET and one resume:\n{requests}");
    let ranges: Vec<u64> = requests
        .lines()
        .filter_map(|l| l.strip_prefix("range: bytes="))
        .filter_map(|r| r.trim().trim_end_matches('-').parse().ok())
        .collect();
    assert_eq!(ranges.len(), 1, "{requests}");
    // Resumed where the cut left the body: past the response head, within
    // what the proxy let through.
    assert!(
        ranges[0] > 0 && ranges[0] < cut_after as u64,
        "resumed at {}",
        ranges[0]
    );
    assert!(
        run.stderr().contains("resuming with a range request"),
        "{}",
        run.stderr()
    );
}
