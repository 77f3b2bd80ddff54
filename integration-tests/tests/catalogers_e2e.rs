//! issue 10, classes 3–7, through the real binary and the real layer
//! reader: a docker-archive whose one layer holds the cataloger fixtures
//! (real files, see each cataloger's `fixtures/PROVENANCE.md`) where images
//! put them, with no os-release and a stray `etc/debian_version`.

use std::collections::BTreeSet;
use std::io::Read;
use std::process::Command;

use integration_tests::corpus;
use integration_tests::images::{ImageBuilder, Layer};

const CATALOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../src/catalog");

fn fixture(path: &str) -> Vec<u8> {
    let data = std::fs::read(format!("{CATALOG}/{path}")).expect(path);
    if !path.ends_with(".gz") {
        return data;
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&data[..])
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn every_class_is_reported_in_the_form_advisories_use() {
    let sp = "usr/local/lib/python3.11/site-packages";
    let fw = "usr/share/dotnet/shared/Microsoft.NETCore.App/8.0.1";
    let layer = Layer::new()
        .file(
            &format!("{sp}/Egg_Sample-1.4.2-py3.11.egg"),
            fixture("python/fixtures/Egg_Sample-1.4.2-py3.11.egg"),
        )
        .file(
            "app/vendor/setuptools-69.5.1.dist-info/METADATA",
            fixture("python/fixtures/setuptools-target-METADATA"),
        )
        .file_mode(
            "usr/local/bin/stamped",
            fixture("golang/fixtures/stamped-go.gz"),
            0o755,
        )
        .file_mode(
            "usr/local/bin/vcs",
            fixture("golang/fixtures/vcs-go.gz"),
            0o755,
        )
        .file(
            &format!("{fw}/Microsoft.NETCore.App.deps.json"),
            fixture("dotnet/fixtures/Microsoft.NETCore.App.deps.json"),
        )
        .file(
            &format!("{fw}/.version"),
            fixture("dotnet/fixtures/NETCore.version"),
        )
        .file(
            "app/webapp.deps.json",
            fixture("dotnet/fixtures/selfcontained-webapp.deps.json"),
        )
        .file(
            "usr/local/lib/node_modules/mkdirp/package.json",
            fixture("npm/fixtures/global-mkdirp-package.json"),
        )
        .file(
            "usr/local/lib/node_modules/mkdirp/node_modules/minimist/package.json",
            fixture("npm/fixtures/global-mkdirp-minimist-package.json"),
        )
        .file("lib/apk/db/installed", fixture("apk/fixtures/installed"))
        .file("etc/debian_version", "12.5\n");
    let image = ImageBuilder::new().layer(layer).build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("wild.tar");
    image.write_docker_archive(&archive, "wild:1").unwrap();

    let out = Command::new(corpus::scangate_bin())
        .arg("sbom")
        .arg(format!("docker-archive:{}", archive.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sbom: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let purls: BTreeSet<&str> = sbom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["purl"].as_str())
        .collect();
    for want in [
        // 3: the .NET runtime, shared framework and self-contained
        "pkg:nuget/Microsoft.NETCore.App.Runtime.linux-x64@8.0.1",
        "pkg:nuget/Microsoft.AspNetCore.App.Runtime.linux-x64@8.0.1",
        "pkg:nuget/Newtonsoft.Json@13.0.3",
        // 4: (devel) main modules stamped by -ldflags -X and by VCS
        "pkg:golang/example.com/stamped@v1.2.3",
        "pkg:golang/example.com/vcsstamped@v0.0.0-20240305102030-9bb3c423afb5",
        // 5: a zipped egg and a pip --target directory
        "pkg:pypi/egg-sample@1.4.2",
        "pkg:pypi/setuptools@69.5.1",
        // 6: a global install with its nested dependency
        "pkg:npm/mkdirp@0.5.6",
        "pkg:npm/minimist@1.2.8",
        // 7: apk without os-release, next to Debian evidence
        "pkg:apk/alpine/musl@1.2.3-r0?arch=x86_64",
    ] {
        assert!(purls.contains(want), "{want} not in {purls:#?}");
    }
    assert!(
        !purls
            .iter()
            .any(|p| p.starts_with("pkg:apk/debian") || p.contains("distro=12")),
        "{purls:#?}"
    );
}
