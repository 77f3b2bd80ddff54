//! Jar bombs in an image (issue 9, defect 8), through the real binary:
//! `scangate sbom oci:DIR` on an image whose jar points 20,000
//! central-directory records at one 1 MiB deflate stream (~20 GiB if each
//! were inflated). The jar is skipped with a warning, the rest of the image
//! is still catalogued, in bounded memory and time.

use std::io::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use integration_tests::corpus;
use integration_tests::images::{ImageBuilder, Layer};
use integration_tests::process::run_measured;
use serde_json::Value;

/// A Gradle-style jar (fixture of the java cataloger): named
/// `com.example/greeter` 1.4.2 by its Automatic-Module-Name.
const GREETER: &[u8] = include_bytes!("../../src/catalog/java/fixtures/greeter-1.4.2.jar");

/// CRC-32 (IEEE), bit by bit.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & 0u32.wrapping_sub(crc & 1));
        }
    }
    !crc
}

/// One local file (`inflated` zeros, deflated) and `n` central-directory
/// records pointing at it under distinct pom.properties names.
fn overlap_bomb(n: u16, inflated: usize) -> Vec<u8> {
    let plain = vec![b'0'; inflated];
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&plain).unwrap();
    let data = enc.finish().unwrap();
    let crc = crc32(&plain);
    let name = |i: u16| format!("META-INF/maven/bomb/a{i}/pom.properties");
    let sizes = |out: &mut Vec<u8>, name_len: usize| {
        out.extend(crc.to_le_bytes());
        out.extend((data.len() as u32).to_le_bytes());
        out.extend((inflated as u32).to_le_bytes());
        out.extend((name_len as u16).to_le_bytes());
        out.extend(0u16.to_le_bytes());
    };
    let common = [20u8, 0, 0, 0, 8, 0, 0, 0, 0x21, 0];
    let mut out = b"PK\x03\x04".to_vec();
    out.extend(common);
    sizes(&mut out, name(0).len());
    out.extend(name(0).as_bytes());
    out.extend(&data);
    let cd_start = out.len();
    for i in 0..n {
        out.extend(b"PK\x01\x02\x14\x03");
        out.extend(common);
        sizes(&mut out, name(i).len());
        out.extend([0u8; 10]);
        out.extend(0u32.to_le_bytes());
        out.extend(name(i).as_bytes());
    }
    let cd_len = out.len() - cd_start;
    out.extend(b"PK\x05\x06\0\0\0\0");
    out.extend(n.to_le_bytes());
    out.extend(n.to_le_bytes());
    out.extend((cd_len as u32).to_le_bytes());
    out.extend((cd_start as u32).to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

#[test]
fn overlapping_entry_jar_bomb_is_skipped_in_bounded_memory_and_time() {
    let bomb = overlap_bomb(20_000, 1 << 20);
    assert!(bomb.len() < 2 << 20, "{} bytes", bomb.len());
    let image = ImageBuilder::new()
        .layer(
            Layer::new()
                .file("opt/app/lib/bomb-1.0.jar", bomb.clone())
                .file("opt/app/lib/greeter-1.4.2.jar", GREETER),
        )
        // the same bomb nested in a war, stored
        .layer(Layer::new().file("opt/app/app.war", {
            let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            w.start_file("WEB-INF/lib/bomb-2.0.jar", opts).unwrap();
            w.write_all(&bomb).unwrap();
            w.finish().unwrap().into_inner()
        }))
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("image");
    image.write_oci_layout(&layout, Some("latest")).unwrap();
    let out_path = dir.path().join("sbom.json");

    let mut cmd = Command::new(corpus::scangate_bin());
    cmd.arg("sbom")
        .arg(format!("oci:{}", layout.display()))
        .arg("--output")
        .arg(&out_path)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let started = Instant::now();
    let (out, max_rss_kib) = run_measured(cmd);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("jar bomb: {took:?}, peak RSS {max_rss_kib} KiB");

    assert!(out.status.success(), "{stderr}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(max_rss_kib < 200 * 1024, "{max_rss_kib} KiB");
    for jar in [
        "/opt/app/lib/bomb-1.0.jar",
        "/opt/app/app.war: WEB-INF/lib/bomb-2.0.jar",
    ] {
        assert!(
            stderr.contains(&format!("{jar}: skipped, overlapping entries")),
            "no warning for {jar} in:\n{stderr}"
        );
    }
    let sbom: Value = serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    let purls: Vec<&str> = sbom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["purl"].as_str())
        .collect();
    assert_eq!(purls, ["pkg:maven/com.example/greeter@1.4.2"]);
}

/// A stored jar of `n` empty class entries and one pom.properties.
fn many_entries_jar(n: usize, artifact: &str) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(false);
    let pom = format!("META-INF/maven/com.example/{artifact}/pom.properties");
    w.start_file(pom, opts).unwrap();
    write!(
        w,
        "groupId=com.example\nartifactId={artifact}\nversion=1.0\n"
    )
    .unwrap();
    for i in 0..n {
        w.start_file(format!("c/{i:07}.class"), opts).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[test]
fn entry_count_is_capped_and_a_jar_at_the_cap_fits_in_memory() {
    // 200,000 entries in all (the cap) is read; one more is refused before
    // the zip reader allocates anything per entry.
    let at_cap = many_entries_jar(199_999, "at-cap");
    let over = many_entries_jar(200_000, "over-cap");
    assert!(over.len() < 48 << 20, "{} bytes", over.len());
    let image = ImageBuilder::new()
        .layer(
            Layer::new()
                .file("opt/app/at-cap.jar", at_cap)
                .file("opt/app/over-cap.jar", over),
        )
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("image");
    image.write_oci_layout(&layout, Some("latest")).unwrap();
    let out_path = dir.path().join("sbom.json");
    let mut cmd = Command::new(corpus::scangate_bin());
    cmd.arg("sbom")
        .arg(format!("oci:{}", layout.display()))
        .arg("--output")
        .arg(&out_path)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let started = Instant::now();
    let (out, max_rss_kib) = run_measured(cmd);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("200k-entry jars: {took:?}, peak RSS {max_rss_kib} KiB");
    assert!(out.status.success(), "{stderr}");
    assert!(max_rss_kib < 200 * 1024, "{max_rss_kib} KiB");
    assert!(
        stderr.contains("/opt/app/over-cap.jar: skipped, 200001 entries"),
        "{stderr}"
    );
    let sbom: Value = serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    let purls: Vec<&str> = sbom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["purl"].as_str())
        .collect();
    assert_eq!(purls, ["pkg:maven/com.example/at-cap@1.0"]);
}
