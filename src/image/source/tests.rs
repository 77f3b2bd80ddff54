//! Local sources: OCI layouts and `docker save` archives built in a temp
//! directory, plus the debian-base corpus image when CI has built it.

use std::path::{Path, PathBuf};

use super::*;
use crate::image::layer::tests::{E, digest, gzip, tar_bytes, zstd};
use crate::image::manifest::{OCI_INDEX, OCI_MANIFEST};

/// A directory removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!("scangate-src-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn want_all() -> Wants {
    Arc::new(|_: &str| true)
}

fn config_json(diff_ids: &[String], arch: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

/// Uncompressed tars of a three-layer image: the second whites out
/// `etc/gone` and makes `opt` opaque; the third replaces a file.
fn layer_tars() -> Vec<Vec<u8>> {
    vec![
        tar_bytes(&[
            E::Dir("etc"),
            E::File("etc/gone", b"old"),
            E::File("etc/keep", b"v1"),
            E::File("opt/a", b"a"),
            E::Sym("bin", "usr/bin"),
        ]),
        tar_bytes(&[
            E::File("etc/.wh.gone", b""),
            E::File("opt/.wh..wh..opq", b""),
            E::File("opt/b", b"b"),
        ]),
        tar_bytes(&[E::File("etc/keep", b"v2")]),
    ]
}

fn check_squashed(files: &FileTree) {
    assert!(!files.files.contains_key("etc/gone"), "whiteout ignored");
    assert!(!files.files.contains_key("opt/a"), "opaque dir ignored");
    assert_eq!(files.files["opt/b"].data, b"b");
    assert_eq!(files.files["etc/keep"].data, b"v2");
    assert_eq!(files.files["etc/keep"].layer, 2);
    assert_eq!(files.symlinks["bin"], "usr/bin");
}

struct Oci {
    dir: PathBuf,
}

impl Oci {
    fn new(dir: &Path) -> Oci {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Oci {
            dir: dir.to_owned(),
        }
    }

    fn blob(&self, bytes: &[u8]) -> String {
        let d = digest(bytes);
        std::fs::write(self.path(&d), bytes).unwrap();
        d
    }

    fn path(&self, digest: &str) -> PathBuf {
        self.dir
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap())
    }

    /// Writes an image (layers compressed as given) and returns the
    /// manifest's digest and size.
    fn image(&self, blobs: &[(Vec<u8>, &str)], diff_ids: &[String], arch: &str) -> (String, usize) {
        let config = config_json(diff_ids, arch);
        let cd = self.blob(&config);
        let layers: Vec<_> = blobs
            .iter()
            .map(|(b, mt)| {
                serde_json::json!({"mediaType": mt, "digest": self.blob(b), "size": b.len()})
            })
            .collect();
        let m = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": cd, "size": config.len()},
            "layers": layers,
        }))
        .unwrap();
        (self.blob(&m), m.len())
    }

    fn index(&self, entries: serde_json::Value) {
        let i =
            serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
        std::fs::write(self.dir.join("index.json"), serde_json::to_vec(&i).unwrap()).unwrap();
    }
}

/// Three layers, gzip, zstd and uncompressed, tagged `v1`.
fn simple_oci(dir: &Path) -> (Oci, String) {
    let oci = Oci::new(dir);
    let tars = layer_tars();
    let diff_ids: Vec<String> = tars.iter().map(|t| digest(t)).collect();
    let blobs = vec![
        (
            gzip(&tars[0]),
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
        (
            zstd(&tars[1]),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
        (tars[2].clone(), "application/vnd.oci.image.layer.v1.tar"),
    ];
    let (md, size) = oci.image(&blobs, &diff_ids, "amd64");
    oci.index(serde_json::json!([{
        "mediaType": OCI_MANIFEST, "digest": md, "size": size,
        "annotations": {REF_NAME: "v1"},
    }]));
    (oci, md)
}

#[test]
fn parses_and_displays_sources() {
    let cases = [
        ("oci:/tmp/x", "oci:/tmp/x"),
        ("oci:/tmp/x:v1", "oci:/tmp/x:v1"),
        ("docker-archive:/tmp/a.tar", "docker-archive:/tmp/a.tar"),
        ("alpine:3.20", "docker.io/library/alpine:3.20"),
    ];
    for (input, shown) in cases {
        let s: ImageSource = input.parse().unwrap();
        let shown_ref: ImageSource = shown.parse().unwrap();
        assert_eq!(s, shown_ref, "{input}");
        if !input.starts_with("alpine") {
            assert_eq!(s.to_string(), shown);
        }
    }
    assert_eq!(
        "oci:/tmp/x:v1".parse::<ImageSource>().unwrap(),
        ImageSource::OciLayout {
            dir: "/tmp/x".into(),
            tag: Some("v1".into())
        }
    );
    // A colon followed by a path is part of the directory.
    assert_eq!(
        "oci:./a:b/c".parse::<ImageSource>().unwrap(),
        ImageSource::OciLayout {
            dir: "./a:b/c".into(),
            tag: None
        }
    );
    assert!(matches!(
        "alpine".parse::<ImageSource>().unwrap(),
        ImageSource::Registry(_)
    ));
    for bad in ["oci:", "docker-archive:", "oci::v1"] {
        let e = bad.parse::<ImageSource>().unwrap_err();
        assert!(
            matches!(
                &e,
                ImageError::InvalidReference {
                    problem: ReferenceProblem::BadLocalSource(_),
                    ..
                }
            ),
            "{bad}: {e}"
        );
    }
}

#[tokio::test]
async fn oci_layout_with_whiteouts_and_all_compressions() {
    let tmp = TempDir::new();
    let (oci, md) = simple_oci(&tmp.0);
    for tag in [Some("v1".to_owned()), None] {
        let source = ImageSource::OciLayout {
            dir: oci.dir.clone(),
            tag,
        };
        let p = pull_source(&source, &PullOptions::default(), want_all())
            .await
            .unwrap();
        check_squashed(&p.files);
        assert_eq!(p.manifest_digest, md);
        assert_eq!(p.index_digest, None);
        assert_eq!(p.layers.len(), 3);
        assert_eq!(p.platform.to_string(), "linux/amd64");
        assert_eq!(p.reference, source);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }

    let source = ImageSource::OciLayout {
        dir: oci.dir.clone(),
        tag: Some("nope".into()),
    };
    let e = pull_source(&source, &PullOptions::default(), want_all())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ImageError::NotFound { what, .. } if what.contains("v1")),
        "{e}"
    );

    // Two tagged images: without a tag the choice is refused.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(oci.dir.join("index.json")).unwrap()).unwrap();
    let mut second = index["manifests"][0].clone();
    second["annotations"][REF_NAME] = "v2".into();
    oci.index(serde_json::json!([index["manifests"][0].clone(), second]));
    let source = ImageSource::OciLayout {
        dir: oci.dir.clone(),
        tag: None,
    };
    let e = pull_source(&source, &PullOptions::default(), want_all())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("tags: v1, v2"), "{e}");
    let source = ImageSource::OciLayout {
        dir: oci.dir.clone(),
        tag: Some("v2".into()),
    };
    pull_source(&source, &PullOptions::default(), want_all())
        .await
        .unwrap();

    let source = ImageSource::OciLayout {
        dir: tmp.0.join("missing"),
        tag: None,
    };
    let e = pull_source(&source, &PullOptions::default(), want_all())
        .await
        .unwrap_err();
    assert!(matches!(e, ImageError::NotFound { .. }), "{e}");
}

#[tokio::test]
async fn oci_layout_tampered_blobs_are_refused() {
    let tmp = TempDir::new();
    let (oci, _) = simple_oci(&tmp.0);
    let source = ImageSource::OciLayout {
        dir: oci.dir.clone(),
        tag: None,
    };
    // Same length, one byte changed, in the zstd layer.
    let zstd_tar = zstd(&layer_tars()[1]);
    let path = oci.path(&digest(&zstd_tar));
    let mut tampered = zstd_tar.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0xff;
    std::fs::write(&path, &tampered).unwrap();
    let e = pull_source(&source, &PullOptions::default(), want_all())
        .await
        .unwrap_err();
    assert!(matches!(e, ImageError::DigestMismatch { .. }), "{e}");
    std::fs::write(&path, &zstd_tar).unwrap();
    pull_source(&source, &PullOptions::default(), want_all())
        .await
        .unwrap();

    // A tampered manifest blob.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(oci.dir.join("index.json")).unwrap()).unwrap();
    let md = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let mut m = std::fs::read(oci.path(&md)).unwrap();
    m.push(b' ');
    std::fs::write(oci.path(&md), &m).unwrap();
    let e = pull_source(&source, &PullOptions::default(), want_all())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ImageError::DigestMismatch { what, .. } if what.contains("manifest")),
        "{e}"
    );
}

#[tokio::test]
async fn oci_layout_nested_index_picks_the_platform() {
    let tmp = TempDir::new();
    let oci = Oci::new(&tmp.0);
    let amd = tar_bytes(&[E::File("arch", b"amd64")]);
    let arm = tar_bytes(&[E::File("arch", b"arm64")]);
    let (amd_m, amd_size) = oci.image(
        &[(gzip(&amd), "application/vnd.oci.image.layer.v1.tar+gzip")],
        &[digest(&amd)],
        "amd64",
    );
    let (arm_m, arm_size) = oci.image(
        &[(gzip(&arm), "application/vnd.oci.image.layer.v1.tar+gzip")],
        &[digest(&arm)],
        "arm64",
    );
    let nested = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": amd_m, "size": amd_size,
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": OCI_MANIFEST, "digest": arm_m, "size": arm_size,
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        ]
    }))
    .unwrap();
    let nd = oci.blob(&nested);
    oci.index(serde_json::json!([{
        "mediaType": OCI_INDEX, "digest": nd, "size": nested.len(),
        "annotations": {REF_NAME: "multi"},
    }]));
    let source: ImageSource = format!("oci:{}:multi", tmp.0.display()).parse().unwrap();
    let opts = PullOptions {
        platform: "linux/arm64".parse().unwrap(),
        ..PullOptions::default()
    };
    let p = pull_source(&source, &opts, want_all()).await.unwrap();
    assert_eq!(p.files.files["arch"].data, b"arm64");
    assert_eq!(p.manifest_digest, arm_m);
    assert_eq!(p.index_digest.as_deref(), Some(nd.as_str()));
    let p = pull_source(&source, &PullOptions::default(), want_all())
        .await
        .unwrap();
    assert_eq!(p.files.files["arch"].data, b"amd64");

    let opts = PullOptions {
        platform: "linux/s390x".parse().unwrap(),
        ..PullOptions::default()
    };
    let e = pull_source(&source, &opts, want_all()).await.unwrap_err();
    assert!(matches!(e, ImageError::PlatformNotFound { .. }), "{e}");
}

/// A `docker save` archive; `manifest.json` last, as the corpus has it,
/// so that reading it needs the offset index.
fn write_archive(path: &Path, layer_files: &[Vec<u8>], diff_ids: &[String]) -> String {
    let config = config_json(diff_ids, "amd64");
    let config_hex = hex::encode(sha2::Sha256::digest(&config));
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    let mut names = Vec::new();
    for (i, l) in layer_files.iter().enumerate() {
        let name = format!("{i:064x}/layer.tar");
        add(&name, l);
        names.push(name);
    }
    add(&format!("{config_hex}.json"), &config);
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": format!("{config_hex}.json"),
        "RepoTags": ["test/app:1"],
        "Layers": names,
    }]))
    .unwrap();
    add("manifest.json", &manifest);
    b.into_inner().unwrap();
    format!("sha256:{config_hex}")
}

use sha2::Digest as _;

#[tokio::test]
async fn docker_archive_with_whiteouts() {
    let tmp = TempDir::new();
    let tars = layer_tars();
    let diff_ids: Vec<String> = tars.iter().map(|t| digest(t)).collect();
    // Uncompressed, as docker save writes them, and one gzip layer.
    let files = vec![tars[0].clone(), gzip(&tars[1]), tars[2].clone()];
    let path = tmp.0.join("image.tar");
    let config_digest = write_archive(&path, &files, &diff_ids);
    let source: ImageSource = format!("docker-archive:{}", path.display())
        .parse()
        .unwrap();
    let p = pull_source(&source, &PullOptions::default(), want_all())
        .await
        .unwrap();
    check_squashed(&p.files);
    assert_eq!(p.config_digest, config_digest);
    assert_eq!(p.manifest_digest, config_digest);
    let digests: Vec<String> = p.layers.iter().map(|l| l.digest.clone()).collect();
    assert_eq!(digests, files.iter().map(|f| digest(f)).collect::<Vec<_>>());
    assert_eq!(
        p.layers
            .iter()
            .map(|l| l.diff_id.clone())
            .collect::<Vec<_>>(),
        diff_ids
    );
    assert_eq!(
        p.layers[1].media_type,
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    assert!(p.warnings[0].contains("config digest"), "{:?}", p.warnings);

    // The same image from an OCI layout reads the same files.
    let (oci, _) = simple_oci(&tmp.0.join("oci"));
    let from_oci = pull_source(
        &ImageSource::OciLayout {
            dir: oci.dir.clone(),
            tag: None,
        },
        &PullOptions::default(),
        want_all(),
    )
    .await
    .unwrap();
    assert_eq!(from_oci.files.files.len(), p.files.files.len());
    assert_eq!(from_oci.config.diff_ids, p.config.diff_ids);
}

#[tokio::test]
async fn docker_archive_tampering_is_refused() {
    let tmp = TempDir::new();
    let tars = layer_tars();
    let diff_ids: Vec<String> = tars.iter().map(|t| digest(t)).collect();
    let path = tmp.0.join("image.tar");

    // A layer whose content does not match its diff_id (gzip and plain).
    for gz in [false, true] {
        let mut bad = tars[1].clone();
        bad[0] ^= 1;
        let files = vec![
            tars[0].clone(),
            if gz { gzip(&bad) } else { bad },
            tars[2].clone(),
        ];
        write_archive(&path, &files, &diff_ids);
        let source = ImageSource::DockerArchive { path: path.clone() };
        let e = pull_source(&source, &PullOptions::default(), want_all())
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ImageError::DigestMismatch { digest, .. } if *digest == diff_ids[1]),
            "{e}"
        );
    }

    // A config that is not the one its name promises.
    let config_digest = write_archive(&path, &tars, &diff_ids);
    let hex = config_digest.strip_prefix("sha256:").unwrap();
    let tampered = tmp.0.join("tampered.tar");
    {
        let mut out = tar::Builder::new(std::fs::File::create(&tampered).unwrap());
        let mut ar = tar::Archive::new(std::fs::File::open(&path).unwrap());
        for entry in ar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            if name == format!("{hex}.json") {
                data = config_json(&diff_ids, "arm64");
            }
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            h.set_cksum();
            out.append_data(&mut h, &name, &data[..]).unwrap();
        }
        out.into_inner().unwrap();
    }
    let e = pull_source(
        &ImageSource::DockerArchive { path: tampered },
        &PullOptions::default(),
        want_all(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, ImageError::DigestMismatch { what, .. } if what.contains("config")),
        "{e}"
    );

    // Not a docker save archive.
    let plain = tmp.0.join("plain.tar");
    std::fs::write(&plain, &tars[0]).unwrap();
    let e = pull_source(
        &ImageSource::DockerArchive { path: plain },
        &PullOptions::default(),
        want_all(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("manifest.json"), "{e}");
}

/// The debian-base corpus image, as CI builds it (`SCANGATE_CORPUS_DIR`),
/// read from both local formats: the same files and the expected packages.
#[tokio::test]
async fn corpus_debian_base_oci_and_archive_agree() {
    let (Some(root), Some(shared)) = (
        std::env::var_os("SCANGATE_CORPUS_DIR"),
        std::env::var_os("SCANGATE_SHARED_DIR"),
    ) else {
        eprintln!(
            "skipping: SCANGATE_CORPUS_DIR and SCANGATE_SHARED_DIR are not set (.ci/run sets them)"
        );
        return;
    };
    let root = Path::new(&root);
    let dir = root.join("debian-base");
    let tar = root.join("debian-base.tar");
    let expected = Path::new(&shared).join("corpus/expected/debian-base.json");
    let expected = expected.as_path();
    if !dir.join("index.json").exists() || !tar.exists() || !expected.exists() {
        eprintln!("skipping: the debian-base corpus is not built (run the CI corpus script)");
        return;
    }
    let wants: Wants = Arc::new(crate::catalog::Selector);
    let opts = PullOptions::default();
    let oci = pull_source(
        &ImageSource::OciLayout { dir, tag: None },
        &opts,
        wants.clone(),
    )
    .await
    .unwrap();
    let archive = pull_source(&ImageSource::DockerArchive { path: tar }, &opts, wants)
        .await
        .unwrap();
    assert_eq!(oci.config_digest, archive.config_digest);
    assert_eq!(oci.config.diff_ids, archive.config.diff_ids);
    let names = |p: &PulledImage| p.files.files.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&oci), names(&archive));
    for (path, f) in &oci.files.files {
        assert_eq!(f.data, archive.files.files[path].data, "{path}");
    }
    let pkgs = |p: &PulledImage| {
        let mut v: Vec<(String, String)> = crate::catalog::run(&p.files)
            .packages
            .into_iter()
            .map(|p| (p.name, p.version))
            .collect();
        v.sort();
        v
    };
    let (a, b) = (pkgs(&oci), pkgs(&archive));
    assert_eq!(a, b);
    let want: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(expected).unwrap()).unwrap();
    assert_eq!(
        a.len(),
        want.len(),
        "package count vs expected/debian-base.json"
    );
}

#[tokio::test]
async fn oci_layout_diff_ids_are_checked_and_foreign_layers_skipped() {
    let tars = layer_tars();
    let diff_ids: Vec<String> = tars.iter().map(|t| digest(t)).collect();
    let gz = "application/vnd.oci.image.layer.v1.tar+gzip";

    // A config whose diff_id for layer 2 is not that layer's tar: every
    // blob matches its digest, so only the diff_id check catches it.
    let tmp = TempDir::new();
    let oci = Oci::new(&tmp.0);
    let mut lying = diff_ids.clone();
    lying[1] = digest(b"some other layer");
    let blobs: Vec<_> = tars.iter().map(|t| (gzip(t), gz)).collect();
    let (md, size) = oci.image(&blobs, &lying, "amd64");
    oci.index(serde_json::json!([{"mediaType": OCI_MANIFEST, "digest": md, "size": size}]));
    let source = ImageSource::OciLayout {
        dir: oci.dir.clone(),
        tag: None,
    };
    let e = pull_source(&source, &PullOptions::default(), want_all())
        .await
        .unwrap_err();
    match &e {
        ImageError::DigestMismatch {
            what,
            digest: expected,
            actual,
        } => {
            assert!(what.contains("uncompressed content of layer"), "{e}");
            assert_eq!(*expected, lying[1]);
            assert_eq!(*actual, diff_ids[1]);
        }
        other => panic!("expected a diff_id mismatch, got {other}"),
    }

    // A non-distributable middle layer whose blob is absent: skipped with
    // a warning, the others read and squashed as usual.
    let tmp = TempDir::new();
    let oci = Oci::new(&tmp.0);
    let nondist = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    let absent = gzip(&tars[1]);
    let blobs = vec![
        (gzip(&tars[0]), gz),
        (absent.clone(), nondist),
        (gzip(&tars[2]), gz),
    ];
    let (md, size) = oci.image(&blobs, &diff_ids, "amd64");
    std::fs::remove_file(oci.path(&digest(&absent))).unwrap();
    oci.index(serde_json::json!([{"mediaType": OCI_MANIFEST, "digest": md, "size": size}]));
    let source = ImageSource::OciLayout {
        dir: oci.dir.clone(),
        tag: None,
    };
    let p = pull_source(&source, &PullOptions::default(), want_all())
        .await
        .unwrap();
    assert_eq!(p.layers.len(), 3);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.starts_with("layer 2 (") && w.contains(nondist) && w.contains("skipped")),
        "{:?}",
        p.warnings
    );
    assert!(p.files.files.contains_key("etc/keep"));
}

/// Reads `source` on a thread and fails the test if that takes more than
/// ten seconds: the read of a FIFO must be refused, not block forever.
fn pull_within_timeout(source: ImageSource) -> Result<PulledImage, ImageError> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(pull_local(&source, &PullOptions::default(), &*want_all()));
    });
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .expect("the read of a hostile local image hung")
}

fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo").arg(path).status();
    assert!(made.unwrap().success());
}

/// The local-image error of a refused file, with its message.
fn refused(r: Result<PulledImage, ImageError>) -> String {
    match r {
        Err(ImageError::LocalImage { detail, .. }) => detail,
        Err(e) => panic!("expected a local image error, got {e}"),
        Ok(_) => panic!("a hostile layout was read"),
    }
}

/// Blobs are read only from regular files under the layout: a FIFO layer
/// (which blocked the open forever), a link to `/dev/zero` or to the right
/// bytes elsewhere, a manifest reached through a link, and a `blobs`
/// directory linked out of the layout are all refused at once.
#[test]
fn oci_layout_refuses_fifos_links_and_devices() {
    let tmp = TempDir::new();
    let (oci, md) = simple_oci(&tmp.0);
    let source = ImageSource::OciLayout {
        dir: oci.dir.clone(),
        tag: None,
    };
    let layer = oci.path(&digest(&layer_tars()[2]));
    let good = std::fs::read(&layer).unwrap();
    let elsewhere = TempDir::new();
    let outside = elsewhere.0.clone();

    std::fs::remove_file(&layer).unwrap();
    mkfifo(&layer);
    let started = std::time::Instant::now();
    let e = refused(pull_within_timeout(source.clone()));
    assert!(e.contains("not a regular file but a FIFO"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    std::fs::remove_file(&layer).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &layer).unwrap();
    let e = refused(pull_within_timeout(source.clone()));
    assert!(e.contains("not a regular file but a symbolic link"), "{e}");

    // A link to the very bytes the digest names is still refused.
    std::fs::remove_file(&layer).unwrap();
    std::fs::write(outside.join("layer"), &good).unwrap();
    std::os::unix::fs::symlink(outside.join("layer"), &layer).unwrap();
    let e = refused(pull_within_timeout(source.clone()));
    assert!(e.contains("symbolic link"), "{e}");
    std::fs::remove_file(&layer).unwrap();
    std::fs::write(&layer, &good).unwrap();
    pull_within_timeout(source.clone()).unwrap();

    let manifest = oci.path(&md);
    std::fs::rename(&manifest, outside.join("manifest")).unwrap();
    std::os::unix::fs::symlink(outside.join("manifest"), &manifest).unwrap();
    let e = refused(pull_within_timeout(source.clone()));
    assert!(e.contains("symbolic link"), "{e}");
    std::fs::remove_file(&manifest).unwrap();
    std::fs::rename(outside.join("manifest"), &manifest).unwrap();

    let index = oci.dir.join("index.json");
    std::fs::rename(&index, outside.join("index.json")).unwrap();
    mkfifo(&index);
    let e = refused(pull_within_timeout(source.clone()));
    assert!(e.contains("FIFO"), "{e}");
    std::fs::remove_file(&index).unwrap();
    std::fs::rename(outside.join("index.json"), &index).unwrap();

    std::fs::rename(oci.dir.join("blobs"), outside.join("blobs")).unwrap();
    std::os::unix::fs::symlink(outside.join("blobs"), oci.dir.join("blobs")).unwrap();
    let e = refused(pull_within_timeout(source));
    assert!(e.contains("outside the layout"), "{e}");
}

/// A `docker save` path the user names may be a link, but a FIFO (or a
/// link to one) is refused instead of blocking the read.
#[test]
fn docker_archive_refuses_a_fifo() {
    let tmp = TempDir::new();
    let fifo = tmp.0.join("image.tar");
    mkfifo(&fifo);
    let link = tmp.0.join("link.tar");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    for path in [fifo, link] {
        let e = refused(pull_within_timeout(ImageSource::DockerArchive { path }));
        assert!(e.contains("FIFO"), "{e}");
    }
    let e = refused(pull_within_timeout(ImageSource::DockerArchive {
        path: "/dev/zero".into(),
    }));
    assert!(e.contains("a device"), "{e}");
}

/// A `cosign save` layout lists the image untagged beside its signature,
/// attestation and SBOM manifests (`kind: dev.cosignproject.cosign/…`);
/// `cosign sign` tags `sha256-HEX.sig`; Notation and oras list referrers
/// (a `subject`, an `artifactType`) untagged. Without a tag the image is
/// still the one read; two untagged images are still refused.
#[test]
fn oci_layout_without_tag_skips_signatures_and_referrers() {
    let tmp = TempDir::new();
    let (oci, md) = simple_oci(&tmp.0);
    let image_size = std::fs::read(oci.path(&md)).unwrap().len();
    let image = serde_json::json!({"mediaType": OCI_MANIFEST, "digest": md, "size": image_size});
    // Companion manifests: ordinary image manifests by their shape.
    let companion = |payload: &[u8], extra: serde_json::Value| {
        let tar = tar_bytes(&[E::File("payload", payload)]);
        let (d, size) = oci.image(
            &[(tar.clone(), "application/vnd.oci.image.layer.v1.tar")],
            &[digest(&tar)],
            "amd64",
        );
        let mut m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(oci.path(&d)).unwrap()).unwrap();
        let edited = !extra.is_null();
        if edited {
            m.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
        }
        let bytes = serde_json::to_vec(&m).unwrap();
        let d = if edited { oci.blob(&bytes) } else { d };
        let size = if edited { bytes.len() } else { size };
        serde_json::json!({"mediaType": OCI_MANIFEST, "digest": d, "size": size})
    };
    let kind = |k: &str| {
        let mut e = companion(k.as_bytes(), serde_json::Value::Null);
        e["annotations"] = serde_json::json!({"kind": format!("dev.cosignproject.cosign/{k}")});
        e
    };
    let subject = serde_json::json!({"mediaType": OCI_MANIFEST, "digest": md, "size": image_size});
    let notation = companion(
        b"jws",
        serde_json::json!({"artifactType": "application/vnd.cncf.notary.signature",
                           "subject": subject}),
    );
    let sbom = companion(
        b"spdx",
        serde_json::json!({"artifactType": "application/spdx+json"}),
    );
    let mut sig_tag = companion(b"sig", serde_json::Value::Null);
    sig_tag["annotations"] =
        serde_json::json!({REF_NAME: format!("{}.sig", md.replacen(':', "-", 1))});

    let mut image_kind = image.clone();
    image_kind["annotations"] = serde_json::json!({"kind": "dev.cosignproject.cosign/image"});
    oci.index(serde_json::json!([
        kind("sigs"),
        image_kind,
        kind("atts"),
        kind("sboms"),
        notation,
        sbom,
        sig_tag
    ]));
    let source = ImageSource::OciLayout {
        dir: oci.dir.clone(),
        tag: None,
    };
    let p = pull_within_timeout(source.clone()).unwrap();
    assert_eq!(p.manifest_digest, md);
    check_squashed(&p.files);

    // Only companions: no image to pick, said so.
    oci.index(serde_json::json!([kind("sigs"), kind("atts")]));
    let e = refused(pull_within_timeout(source.clone()));
    assert!(e.contains("only signatures"), "{e}");

    // A second plain untagged image: which one is meant cannot be guessed.
    let other = companion(b"other image", serde_json::Value::Null);
    oci.index(serde_json::json!([image, other, kind("sigs")]));
    let e = refused(pull_within_timeout(source));
    assert!(e.contains("lists 2 images"), "{e}");
}
