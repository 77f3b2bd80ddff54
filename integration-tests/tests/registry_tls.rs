//! HTTPS registries: the real `docker-registry` serving TLS with a
//! certificate from a private CA. scangate trusts it through the standard
//! `SSL_CERT_FILE`, and refuses it (with a hint) when the CA is unknown.

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use integration_tests::corpus;
use integration_tests::process::{BackgroundProcess, free_port};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn https_registry_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=scangate-test-ca",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    let port = free_port().unwrap();
    let addr = format!("127.0.0.1:{port}");
    std::fs::create_dir(d.join("storage")).unwrap();
    std::fs::write(
        d.join("config.yml"),
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {s}\nhttp:\n  addr: {addr}\n  tls:\n    certificate: {c}\n    key: {k}\n",
            s = d.join("storage").display(),
            c = d.join("cert.pem").display(),
            k = d.join("key.pem").display(),
        ),
    )
    .unwrap();
    let _registry = BackgroundProcess::spawn(
        Path::new("/usr/bin/docker-registry"),
        &["serve", d.join("config.yml").to_str().unwrap()],
        &d.join("registry.log"),
    )
    .expect("docker-registry");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "registry did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    // A small image of our own, pushed by skopeo over TLS.
    let layout = d.join("layout");
    integration_tests::images::ImageBuilder::new()
        .layer(integration_tests::images::dpkg_layer(
            &integration_tests::images::debian_os_release(),
            &integration_tests::images::dpkg_status(&[(
                "libc6",
                "2.36-9+deb12u4",
                "amd64",
                "glibc",
            )]),
        ))
        .build()
        .unwrap()
        .write_oci_layout(&layout, Some("1"))
        .unwrap();
    // skopeo trusts the `*.crt` files of its cert dir.
    std::fs::create_dir(d.join("certs")).unwrap();
    std::fs::copy(d.join("ca.pem"), d.join("certs/ca.crt")).unwrap();
    let pushed = Command::new("skopeo")
        .args(["copy", "-q", "--insecure-policy"])
        .arg(format!("--dest-cert-dir={}", d.join("certs").display()))
        .arg(format!("oci:{}:1", layout.display()))
        .arg(format!("docker://{addr}/tls/app:1"))
        .output()
        .unwrap();
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );

    let sbom = |ca: Option<&Path>| {
        let mut c = Command::new(corpus::scangate_bin());
        c.args(["sbom", &format!("{addr}/tls/app:1"), "-o"])
            .arg(d.join("sbom.json"))
            // A TLS registry on loopback that no operator setting names.
            .env("SCANGATE_ALLOW_LOCAL_REGISTRIES", "true")
            .env_remove("SSL_CERT_FILE");
        if let Some(ca) = ca {
            c.env("SSL_CERT_FILE", ca);
        }
        c.output().unwrap()
    };
    let trusted = sbom(Some(&d.join("ca.pem")));
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    let bom: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("sbom.json")).unwrap()).unwrap();
    assert!(
        bom.to_string().contains("pkg:deb/debian/glibc@2.36-9"),
        "{bom}"
    );

    let untrusted = sbom(None);
    assert_eq!(untrusted.status.code(), Some(2));
    let err = String::from_utf8_lossy(&untrusted.stderr);
    assert!(err.contains("trust store"), "{err}");
}
