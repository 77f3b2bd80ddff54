//! The test harness itself: real registry, our push client, skopeo, the
//! corpus build, and the images planted from Inspector fixtures.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use integration_tests::corpus::{self, ensure_corpus, push_oci_layout};
use integration_tests::images::{
    self, ImageBuilder, Layer, MANIFEST_ACCEPT, big_dpkg_image, debian_os_release, dpkg_status,
    image_from_inspector_fixture, multi_platform_index, read_inspector_fixture, sha256_digest,
};
use integration_tests::registry::{Credentials, Registry};
use serde_json::Value;

fn sample_image() -> ImageBuilder {
    ImageBuilder::new()
        .layer(
            Layer::new()
                .dir("etc")
                .file("etc/debian_version", "12.5\n")
                .dir("usr/lib")
                .file("usr/lib/os-release", debian_os_release())
                .symlink("etc/os-release", "../usr/lib/os-release")
                .dir("usr/bin")
                .file_mode("usr/bin/perl", "#!perl", 0o755)
                .hardlink("usr/bin/perl5.36.0", "usr/bin/perl")
                .dir("var/lib/dpkg")
                .file(
                    "var/lib/dpkg/status",
                    dpkg_status(&[("libacl1", "2.3.1-3", "amd64", "acl")]),
                )
                .dir("opt/old")
                .file("opt/old/a", "a"),
        )
        .layer(
            Layer::new()
                .whiteout("usr/bin/perl5.36.0")
                .opaque("opt/old")
                .file("opt/old/b", "b"),
        )
        .cmd(&["bash"])
}

async fn get(
    registry: &Registry,
    path: &str,
    accept: Option<&str>,
    creds: Option<&Credentials>,
) -> reqwest::Response {
    let mut r = reqwest::Client::new().get(format!("{}{path}", registry.url()));
    if let Some(a) = accept {
        r = r.header("Accept", a);
    }
    if let Some(c) = creds {
        r = r.basic_auth(&c.username, Some(&c.password));
    }
    r.send().await.expect("request")
}

fn process_alive(pid: u32) -> bool {
    // a zombie still has /proc/PID; its state letter is Z
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn group_members(pgid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // fields after "(comm)": state ppid pgrp
            let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
            let f: Vec<&str> = rest.split_whitespace().collect();
            if f.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid) && process_alive(pid) {
                v.push(pid);
            }
        }
    }
    v
}

#[tokio::test]
async fn registry_push_and_fetch_back_by_digest() {
    let registry = Registry::start().expect("registry");
    let img = sample_image().build().unwrap();
    let digest = img.push_to(&registry, "scangate/sample:v1").await.unwrap();
    assert_eq!(digest, img.manifest_digest);
    // second push: every blob HEADs as present
    assert_eq!(
        img.push_to(&registry, "scangate/sample:v1").await.unwrap(),
        digest
    );

    for reference in [digest.as_str(), "v1"] {
        let r = get(
            &registry,
            &format!("/v2/scangate/sample/manifests/{reference}"),
            Some(MANIFEST_ACCEPT),
            None,
        )
        .await;
        assert_eq!(r.status(), 200, "{reference}");
        assert_eq!(
            r.headers()["content-type"],
            images::OCI_MANIFEST,
            "{reference}"
        );
        assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
        let body = r.bytes().await.unwrap();
        assert_eq!(body.as_ref(), img.manifest_bytes.as_slice());
        assert_eq!(sha256_digest(&body), digest);
    }
    for l in &img.layers {
        let r = get(
            &registry,
            &format!("/v2/scangate/sample/blobs/{}", l.digest),
            None,
            None,
        )
        .await;
        assert_eq!(r.status(), 200);
        assert_eq!(sha256_digest(&r.bytes().await.unwrap()), l.digest);
    }
    // the layer tars carry what the builder was told
    let names: Vec<String> = tar::Archive::new(img.layers[1].tar.as_slice())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "usr/bin/.wh.perl5.36.0",
            "opt/old/",
            "opt/old/.wh..wh..opq",
            "opt/old/b"
        ]
    );
    // reproducible: same recipe, same digest
    assert_eq!(sample_image().build().unwrap().manifest_digest, digest);
}

#[tokio::test]
async fn registry_process_dies_with_its_handle() {
    let mut registry = Registry::start().unwrap();
    let pgid = registry.pgid();
    let members = group_members(pgid);
    assert!(members.len() >= 2, "watchdog + registry: {members:?}");
    registry.stop();
    // SIGKILL is delivered at once, but a killed process leaves the
    // process table only when it is reaped: allow it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut left = group_members(pgid);
    while !left.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        left = group_members(pgid);
    }
    assert!(left.is_empty(), "left running after 5 s: {left:?}");
    // Whether the port still answers is not asked: a registry another test
    // of this binary starts in parallel may be given the freed port.
    drop(registry);
}

#[tokio::test]
async fn basic_auth_registry_rejects_anonymous_and_accepts_credentials() {
    let registry = Registry::start_with_auth("ci-user", "s3cret pass").unwrap();
    let creds = registry.credentials.clone().unwrap();
    let anon = get(&registry, "/v2/", None, None).await;
    assert_eq!(anon.status(), 401);
    assert!(
        anon.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic"),
    );
    let wrong = Credentials::new("ci-user", "nope");
    assert_eq!(
        get(&registry, "/v2/", None, Some(&wrong)).await.status(),
        401
    );
    assert_eq!(
        get(&registry, "/v2/", None, Some(&creds)).await.status(),
        200
    );

    let img = sample_image().build().unwrap();
    let err = img
        .push(&registry.addr, "private/app:1", None)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("401"), "{err:#}");
    let digest = img.push_to(&registry, "private/app:1").await.unwrap();
    let path = format!("/v2/private/app/manifests/{digest}");
    assert_eq!(
        get(&registry, &path, Some(MANIFEST_ACCEPT), None)
            .await
            .status(),
        401
    );
    assert_eq!(
        get(&registry, &path, Some(MANIFEST_ACCEPT), Some(&creds))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn multi_platform_index_and_docker_media_types() {
    let registry = Registry::start().unwrap();
    let index = multi_platform_index(&sample_image()).unwrap();
    let digest = index.push_to(&registry, "multi/app:latest").await.unwrap();
    let r = get(
        &registry,
        "/v2/multi/app/manifests/latest",
        Some(MANIFEST_ACCEPT),
        None,
    )
    .await;
    assert_eq!(r.headers()["content-type"], images::OCI_INDEX);
    assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
    let idx: Value = r.json().await.unwrap();
    let plats: Vec<String> = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(plats, ["linux/amd64", "linux/arm64"]);
    let arm = index.image_for("linux", "arm64").unwrap();
    assert_eq!(arm.config["architecture"], "arm64");
    assert_eq!(arm.config["variant"], "v8");
    let r = get(
        &registry,
        &format!("/v2/multi/app/manifests/{}", arm.manifest_digest),
        Some(MANIFEST_ACCEPT),
        None,
    )
    .await;
    assert_eq!(r.status(), 200);

    let docker = sample_image().docker_media_types().build().unwrap();
    docker.push_to(&registry, "docker/app:1").await.unwrap();
    let r = get(
        &registry,
        "/v2/docker/app/manifests/1",
        Some(MANIFEST_ACCEPT),
        None,
    )
    .await;
    assert_eq!(r.headers()["content-type"], images::DOCKER_MANIFEST);
}

#[tokio::test]
async fn oci_layout_and_docker_archive_push_with_skopeo() {
    let registry = Registry::start_with_auth("u", "p").unwrap();
    let tmp = tempfile::tempdir().unwrap();

    let img = sample_image().build().unwrap();
    let dir = tmp.path().join("layout");
    img.write_oci_layout(&dir, Some("latest")).unwrap();
    let digest = push_oci_layout(&registry, &dir, "layout/app:1").unwrap();
    assert_eq!(digest, img.manifest_digest, "skopeo kept the digest");

    let index = multi_platform_index(&sample_image()).unwrap();
    let idir = tmp.path().join("index-layout");
    index.write_oci_layout(&idir, Some("latest")).unwrap();
    let digest = push_oci_layout(&registry, &idir, "layout/multi:1").unwrap();
    assert_eq!(digest, index.digest);

    let archive = tmp.path().join("image.tar");
    img.write_docker_archive(&archive, "corpus/sample:latest")
        .unwrap();
    let digest = corpus::push_docker_archive(&registry, &archive, "archive/app:1").unwrap();
    let creds = registry.credentials.clone().unwrap();
    let r = get(
        &registry,
        &format!("/v2/archive/app/manifests/{digest}"),
        Some(MANIFEST_ACCEPT),
        Some(&creds),
    )
    .await;
    assert_eq!(r.status(), 200);
    let m: Value = r.json().await.unwrap();
    // skopeo recompresses the layers, but the config (diff_ids) is ours
    assert_eq!(m["config"]["digest"], img.config_digest.as_str());
}

/// `dpkg-query` reading the status file is the best evidence that it looks real.
fn dpkg_query(status: &str) -> Option<Vec<String>> {
    if Command::new("dpkg-query")
        .arg("--version")
        .output()
        .is_err()
    {
        return None;
    }
    let admin = tempfile::tempdir().unwrap();
    std::fs::write(admin.path().join("status"), status).unwrap();
    std::fs::create_dir(admin.path().join("info")).unwrap();
    std::fs::create_dir(admin.path().join("updates")).unwrap();
    let out = Command::new("dpkg-query")
        .arg(format!("--admindir={}", admin.path().display()))
        .args([
            "-W",
            "-f",
            "${Package} ${Version} ${Architecture} ${source:Package} ${source:Version} ${db:Status-Abbrev}\n",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.trim_end().to_owned())
            .collect(),
    )
}

#[test]
fn dpkg_status_reads_back_with_dpkg_query() {
    let s = dpkg_status(&[
        ("libc6", "2.36-9+deb12u4", "amd64", "glibc"),
        ("bash", "5.2.15-2+b2", "amd64", "bash (5.2.15-2)"),
        ("zlib1g", "1:1.2.13.dfsg-1", "amd64", "zlib"),
        ("tzdata", "2024a-0+deb12u1", "all", ""),
    ]);
    let Some(rows) = dpkg_query(&s) else {
        eprintln!("dpkg-query not available; skipped");
        return;
    };
    let mut rows = rows;
    rows.sort();
    assert_eq!(
        rows,
        [
            "bash 5.2.15-2+b2 amd64 bash 5.2.15-2 ii",
            "libc6 2.36-9+deb12u4 amd64 glibc 2.36-9+deb12u4 ii",
            "tzdata 2024a-0+deb12u1 all tzdata 2024a-0+deb12u1 ii",
            "zlib1g 1:1.2.13.dfsg-1 amd64 zlib 1:1.2.13.dfsg-1 ii",
        ]
    );
}

fn layer_file(img: &images::BuiltImage, path: &str) -> Option<Vec<u8>> {
    use std::io::Read;
    for l in img.layers.iter().rev() {
        let mut a = tar::Archive::new(l.tar.as_slice());
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap() == Path::new(path) {
                let mut v = Vec::new();
                e.read_to_end(&mut v).unwrap();
                return Some(v);
            }
        }
    }
    None
}

#[test]
fn inspector_fixture_images_plant_exactly_the_fixture_packages() {
    let sboms = corpus::inspector_fixtures_dir().join("sboms");
    let path = sboms.join("debian_latest.json");
    let fx = read_inspector_fixture(&path).unwrap();
    assert_eq!(
        (fx.distro.as_str(), fx.distro_release.as_str()),
        ("debian", "bookworm")
    );

    // every leaf deb component of the fixture is an installed package
    let bom: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let mut leaves = BTreeMap::new();
    for c in bom["components"].as_array().unwrap() {
        let kids = c["components"].as_array().cloned().unwrap_or_default();
        let list = if kids.is_empty() {
            vec![c.clone()]
        } else {
            kids
        };
        for k in list {
            if let Some(p) = k["purl"].as_str().filter(|p| p.starts_with("pkg:deb/")) {
                leaves.insert(k["name"].as_str().unwrap().to_owned(), p.to_owned());
            }
        }
    }
    assert_eq!(leaves.len(), fx.packages.len());

    let img = image_from_inspector_fixture(&path).unwrap();
    let status = String::from_utf8(layer_file(&img, "var/lib/dpkg/status").unwrap()).unwrap();
    assert_eq!(
        String::from_utf8(layer_file(&img, "usr/lib/os-release").unwrap()).unwrap(),
        debian_os_release()
    );
    if let Some(rows) = dpkg_query(&status) {
        assert_eq!(rows.len(), leaves.len());
        assert!(
            rows.contains(&"libgmp10 2:6.2.1+dfsg1-1.1 amd64 gmp 2:6.2.1+dfsg1-1.1 ii".to_owned()),
            "{rows:#?}"
        );
        assert!(rows.contains(&"libstdc++6 12.2.0-14 amd64 gcc-12 12.2.0-14 ii".to_owned()));
        assert!(rows.contains(&"bash 5.2.15-2 amd64 bash 5.2.15-2 ii".to_owned()));
    }

    // the other distributions the fixtures cover build too
    for f in [
        "ubuntu_latest.json",
        "alpine_latest.json",
        "debian_stable-20240130.json",
        "python_latest.json",
    ] {
        let img =
            image_from_inspector_fixture(&sboms.join(f)).unwrap_or_else(|e| panic!("{f}: {e:#}"));
        assert_eq!(img.layers.len(), 1);
    }
    let ubuntu = read_inspector_fixture(&sboms.join("ubuntu_latest.json")).unwrap();
    let libacl = ubuntu
        .packages
        .iter()
        .find(|p| p.name == "libacl1")
        .unwrap();
    assert_eq!(libacl.source.as_deref(), Some("acl"));
    assert!(!ubuntu.packages.iter().any(|p| p.name == "glibc"));
}

#[tokio::test]
async fn big_dpkg_image_has_n_packages_with_distinct_sources() {
    let img = big_dpkg_image(5_600).unwrap();
    let status = String::from_utf8(layer_file(&img, "var/lib/dpkg/status").unwrap()).unwrap();
    assert_eq!(status.matches("\nPackage: ").count() + 1, 5_600);
    let sources: std::collections::HashSet<&str> = status
        .lines()
        .filter(|l| l.starts_with("Source: "))
        .collect();
    assert_eq!(sources.len(), 5_600);
    if let Some(rows) = dpkg_query(&status) {
        assert_eq!(rows.len(), 5_600);
        assert_eq!(rows[0], "sgpkg00000 1.0-1+b1 amd64 sgsrc00000 1.0-1 ii");
    }
    let registry = Registry::start().unwrap();
    img.push_to(&registry, "big/dpkg:5600").await.unwrap();
}

/// Builds (once, cached in target/corpus) and pushes the real debian-base
/// corpus image. Needs root and the Debian mirror; `.ci/run` prebuilds it.
#[tokio::test]
async fn corpus_debian_base_builds_and_pushes_with_skopeo() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root && std::env::var_os("CI").is_none() {
        eprintln!("not root: corpus build skipped (runs in CI)");
        return;
    }
    let dir = ensure_corpus(&["debian-base"]).unwrap();
    let layout = dir.join("debian-base");
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();

    let registry = Registry::start().unwrap();
    let digest = push_oci_layout(&registry, &layout, "corpus/debian-base:latest").unwrap();
    assert_eq!(digest, manifest_digest);
    let r = get(
        &registry,
        &format!("/v2/corpus/debian-base/manifests/{digest}"),
        Some(MANIFEST_ACCEPT),
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["layers"].as_array().unwrap().len(), 3);
    assert!(corpus::expected_path("debian-base").is_file());
}

#[tokio::test]
async fn moto_s3_server_starts_and_stores_objects() {
    use integration_tests::process::MotoServer;
    if MotoServer::binary().is_none() && std::env::var_os("CI").is_none() {
        eprintln!("moto_server not installed (run .ci/run): skipped");
        return;
    }
    let s3 = MotoServer::start().unwrap();
    // moto does not check signatures, but treats unsigned GETs as anonymous
    // (403); any SigV4-shaped header will do here, the SDK signs for real
    let auth = "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";
    let http = reqwest::Client::new();
    let send = |method: reqwest::Method, path: &str, body: &'static str| {
        http.request(method, format!("{}{path}", s3.endpoint))
            .header("Authorization", auth)
            .header("Content-Type", "application/octet-stream")
            .body(body)
            .send()
    };
    let put = send(reqwest::Method::PUT, "/reports", "").await.unwrap();
    assert_eq!(put.status(), 200);
    let put = send(
        reqwest::Method::PUT,
        "/reports/jobs/1/record.json",
        "{\"v\":1}",
    )
    .await
    .unwrap();
    assert_eq!(put.status(), 200);
    let got = send(reqwest::Method::GET, "/reports/jobs/1/record.json", "")
        .await
        .unwrap();
    assert_eq!(got.status(), 200, "{}", s3.log_tail(2000));
    assert_eq!(got.text().await.unwrap(), "{\"v\":1}");
}
