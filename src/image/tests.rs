//! End-to-end tests of `pull` against an in-process fake registry that
//! speaks just enough HTTP/1.1 and distribution API to exercise the auth
//! flows, retries, platform selection, layer merging and error mapping.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::layer::tests::{E, digest, gzip, tar_bytes};
use super::manifest::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
use super::*;

const LAYER_GZ: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

#[derive(Clone, Debug)]
struct Req {
    path: String,
    headers: HashMap<String, String>,
}

#[derive(Clone)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    delay: Duration,
    /// Claim this many more bytes than sent, then close: a cut download.
    truncate: bool,
}

impl Resp {
    fn new(status: u16, body: impl Into<Vec<u8>>) -> Resp {
        Resp {
            status,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
            truncate: false,
        }
    }

    fn header(mut self, k: &str, v: &str) -> Resp {
        self.headers.push((k.into(), v.into()));
        self
    }

    fn json_error(status: u16, code: &str, message: &str) -> Resp {
        Resp::new(
            status,
            format!(r#"{{"errors":[{{"code":"{code}","message":"{message}"}}]}}"#),
        )
        .header("Content-Type", "application/json")
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Auth {
    None,
    Basic,
    Bearer,
    Forbidden,
}

/// A registry for repository `test/app` holding manifests and blobs.
#[derive(Default)]
struct Fake {
    manifests: HashMap<String, (String, Vec<u8>)>,
    blobs: HashMap<String, Vec<u8>>,
    /// Bytes served for a blob instead of the real ones.
    tampered: HashMap<String, Vec<u8>>,
    delays: HashMap<String, Duration>,
    /// Per path: how many of the first requests fail with 503 / are cut.
    unavailable: HashMap<String, usize>,
    truncated: HashMap<String, usize>,
    hits: HashMap<String, usize>,
    log: Vec<Req>,
    ranges: Ranges,
}

/// How the fake answers `Range` requests for blobs.
#[derive(Default, Clone, Copy, PartialEq)]
enum Ranges {
    /// No `Accept-Ranges`; a `Range` header is ignored.
    #[default]
    Off,
    /// `Accept-Ranges: bytes` and 206 partial answers.
    Honour,
    /// `Accept-Ranges: bytes`, but the whole blob (200) on a range request.
    IgnoreRequest,
    /// 206 answers that start at byte 0 whatever was asked.
    WrongStart,
}

struct Server {
    addr: String,
    fake: Arc<Mutex<Fake>>,
    auth: Auth,
}

const USER: &str = "ci";
const PASS: &str = "pa55";
const TOKEN: &str = "tok-123";

fn b64(input: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn handle(fake: &Mutex<Fake>, auth: Auth, addr: &str, req: &Req) -> Resp {
    let mut f = fake.lock().unwrap();
    f.log.push(req.clone());
    let path = req.path.split('?').next().unwrap().to_owned();
    *f.hits.entry(path.clone()).or_default() += 1;
    let basic_ok = req.headers.get("authorization")
        == Some(&format!(
            "Basic {}",
            b64(format!("{USER}:{PASS}").as_bytes())
        ));
    if path == "/token" {
        return if basic_ok {
            Resp::new(200, format!(r#"{{"token":"{TOKEN}","expires_in":300}}"#))
        } else {
            Resp::json_error(401, "UNAUTHORIZED", "bad credentials")
        };
    }
    match auth {
        Auth::None => {}
        Auth::Forbidden => {
            return Resp::json_error(403, "DENIED", "requested access to the resource is denied");
        }
        Auth::Basic if !basic_ok => {
            return Resp::json_error(401, "UNAUTHORIZED", "authentication required")
                .header("WWW-Authenticate", r#"Basic realm="fake""#);
        }
        Auth::Bearer if req.headers.get("authorization") != Some(&format!("Bearer {TOKEN}")) => {
            return Resp::json_error(401, "UNAUTHORIZED", "authentication required").header(
                "WWW-Authenticate",
                &format!(
                    r#"Bearer realm="http://{addr}/token",service="fake",scope="repository:test/app:pull""#
                ),
            );
        }
        _ => {}
    }
    if let Some(n) = f.unavailable.get_mut(&path)
        && *n > 0
    {
        *n -= 1;
        return Resp::new(503, "busy").header("Retry-After", "0");
    }
    let truncate = match f.truncated.get_mut(&path) {
        Some(n) if *n > 0 => {
            *n -= 1;
            true
        }
        _ => false,
    };
    let delay = f.delays.get(&path).copied().unwrap_or_default();
    if let Some(r) = path.strip_prefix("/v2/test/app/manifests/") {
        return match f.manifests.get(r) {
            Some((ct, body)) => Resp::new(200, body.clone())
                .header("Content-Type", ct)
                .header("Docker-Content-Digest", &digest(body)),
            None => Resp::json_error(404, "MANIFEST_UNKNOWN", "manifest unknown"),
        };
    }
    if let Some(d) = path.strip_prefix("/v2/test/app/blobs/") {
        let body = f.tampered.get(d).or_else(|| f.blobs.get(d)).cloned();
        return match body {
            Some(body) => {
                let from = req
                    .headers
                    .get("range")
                    .and_then(|r| r.strip_prefix("bytes="))
                    .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok())
                    .filter(|n| *n < body.len());
                let total = body.len();
                let mut resp = match (f.ranges, from) {
                    (Ranges::Honour, Some(n)) => Resp::new(206, body[n..].to_vec())
                        .header("Content-Range", &format!("bytes {n}-{}/{total}", total - 1)),
                    (Ranges::WrongStart, Some(n)) => Resp::new(206, body[n..].to_vec()).header(
                        "Content-Range",
                        &format!("bytes 0-{}/{total}", total - n - 1),
                    ),
                    _ => Resp::new(200, body),
                };
                if f.ranges != Ranges::Off {
                    resp = resp.header("Accept-Ranges", "bytes");
                }
                Resp {
                    delay,
                    truncate,
                    ..resp
                }
            }
            None => Resp::json_error(404, "BLOB_UNKNOWN", "blob unknown to registry"),
        };
    }
    Resp::json_error(404, "NAME_UNKNOWN", "repository name not known to registry")
}

async fn start(fake: Fake, auth: Auth) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let fake = Arc::new(Mutex::new(fake));
    let (f2, a2) = (fake.clone(), addr.clone());
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let (f, a) = (f2.clone(), a2.clone());
            tokio::spawn(async move {
                let (rd, mut wr) = sock.into_split();
                let mut rd = BufReader::new(rd);
                let mut line = String::new();
                if rd.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let mut headers = HashMap::new();
                loop {
                    let mut h = String::new();
                    if rd.read_line(&mut h).await.unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                    }
                }
                let resp = handle(&f, auth, &a, &Req { path, headers });
                tokio::time::sleep(resp.delay).await;
                let len = resp.body.len() + if resp.truncate { 1000 } else { 0 };
                let sent = if resp.truncate {
                    &resp.body[..resp.body.len() / 2]
                } else {
                    &resp.body[..]
                };
                let mut out = format!(
                    "HTTP/1.1 {} X\r\nContent-Length: {len}\r\nConnection: close\r\n",
                    resp.status
                );
                for (k, v) in &resp.headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                let _ = wr.write_all(out.as_bytes()).await;
                let _ = wr.write_all(sent).await;
                let _ = wr.shutdown().await;
            });
        }
    });
    Server { addr, fake, auth }
}

struct Built {
    manifest: Vec<u8>,
    manifest_digest: String,
    config_digest: String,
    layer_digests: Vec<String>,
}

/// Adds an image (layers as uncompressed tars) to `fake`; returns digests.
fn add_image(fake: &mut Fake, arch: &str, layers: &[Vec<u8>], media_type: &str) -> Built {
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    let mut layer_digests = Vec::new();
    for tar in layers {
        let gz = gzip(tar);
        let d = digest(&gz);
        descs.push(format!(
            r#"{{"mediaType":"{LAYER_GZ}","digest":"{d}","size":{}}}"#,
            gz.len()
        ));
        diff_ids.push(format!("\"{}\"", digest(tar)));
        layer_digests.push(d.clone());
        fake.blobs.insert(d, gz);
    }
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","created":"2024-05-01T00:00:00Z",
        "config":{{"Labels":{{"org.opencontainers.image.title":"app"}}}},
        "rootfs":{{"type":"layers","diff_ids":[{}]}},
        "history":[{{"created_by":"base"}}]}}"#,
        diff_ids.join(",")
    );
    let config_digest = digest(config.as_bytes());
    fake.blobs
        .insert(config_digest.clone(), config.into_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{media_type}",
        "config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{config_digest}","size":1}},
        "layers":[{}]}}"#,
        descs.join(",")
    )
    .into_bytes();
    let manifest_digest = digest(&manifest);
    fake.manifests.insert(
        manifest_digest.clone(),
        (media_type.to_owned(), manifest.clone()),
    );
    Built {
        manifest,
        manifest_digest,
        config_digest,
        layer_digests,
    }
}

fn simple_layers() -> Vec<Vec<u8>> {
    vec![
        tar_bytes(&[
            E::File("usr/lib/os-release", b"ID=debian\nVERSION_ID=\"12\"\n"),
            E::Sym("etc/os-release", "../usr/lib/os-release"),
            E::File("var/lib/dpkg/status", b"Package: base\n"),
            E::File("var/lib/dpkg/status-old", b"old"),
            E::File("usr/bin/unwanted", b"binary"),
        ]),
        tar_bytes(&[
            E::File("var/lib/dpkg/.wh.status-old", b""),
            E::File("var/lib/dpkg/status", b"Package: base\n\nPackage: curl\n"),
        ]),
    ]
}

fn simple_fake() -> (Fake, Built) {
    let mut fake = Fake::default();
    let built = add_image(&mut fake, "amd64", &simple_layers(), DOCKER_MANIFEST);
    let entry = (DOCKER_MANIFEST.to_owned(), built.manifest.clone());
    fake.manifests.insert("1.0".into(), entry);
    (fake, built)
}

fn opts(server: &Server) -> PullOptions {
    PullOptions {
        insecure_registries: vec![server.addr.clone()],
        limits: Limits {
            retry_base_delay: Duration::from_millis(1),
            ..Limits::default()
        },
        credentials: (server.auth != Auth::None).then(|| HostCredentials {
            credentials: Credentials {
                username: USER.into(),
                password: PASS.into(),
            },
            hosts: RegistryHosts::parse(&[&server.addr]).unwrap(),
        }),
        ..PullOptions::default()
    }
}

fn image(server: &Server, tag: &str) -> ImageRef {
    format!("{}/test/app:{tag}", server.addr).parse().unwrap()
}

fn wants() -> Wants {
    Arc::new(|p: &str| p.ends_with("os-release") || p.starts_with("var/lib/dpkg/"))
}

#[tokio::test]
async fn pulls_a_single_platform_image() {
    let (fake, built) = simple_fake();
    let server = start(fake, Auth::None).await;
    let img = pull(&image(&server, "1.0"), &opts(&server), wants())
        .await
        .unwrap();
    assert_eq!(img.manifest_digest, built.manifest_digest);
    assert_eq!(img.index_digest, None);
    assert_eq!(img.config_digest, built.config_digest);
    assert_eq!(img.platform.to_string(), "linux/amd64");
    assert_eq!(img.layers.len(), 2);
    assert_eq!(img.layers[1].digest, built.layer_digests[1]);
    assert_eq!(img.layers[0].media_type, LAYER_GZ);
    assert_eq!(img.config.labels["org.opencontainers.image.title"], "app");
    let (path, f) = img.files.get("etc/os-release").unwrap();
    assert_eq!(path, "usr/lib/os-release");
    assert_eq!(f.layer, 0);
    let status = &img.files.files["var/lib/dpkg/status"];
    assert_eq!(status.layer, 1);
    assert!(String::from_utf8_lossy(&status.data).contains("curl"));
    assert!(!img.files.files.contains_key("var/lib/dpkg/status-old"));
    assert!(!img.files.files.contains_key("usr/bin/unwanted"));
    assert!(img.warnings.is_empty(), "{:?}", img.warnings);

    // By digest too; `resolve` gives the same metadata without layers.
    let by_digest: ImageRef = format!("{}/test/app@{}", server.addr, built.manifest_digest)
        .parse()
        .unwrap();
    let r = resolve(&by_digest, &opts(&server)).await.unwrap();
    assert_eq!(r.manifest_digest, built.manifest_digest);
    assert_eq!(r.layers, img.layers);
}

#[tokio::test]
async fn selects_platform_from_an_index() {
    let mut fake = Fake::default();
    let amd = add_image(&mut fake, "amd64", &simple_layers(), OCI_MANIFEST);
    let arm = add_image(
        &mut fake,
        "arm64",
        &[tar_bytes(&[E::File("usr/lib/os-release", b"ID=arm\n")])],
        OCI_MANIFEST,
    );
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
        {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{},"platform":{{"os":"linux","architecture":"amd64"}}}},
        {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{},"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
        {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"unknown","architecture":"unknown"}},
          "annotations":{{"vnd.docker.reference.type":"attestation-manifest"}}}}]}}"#,
        amd.manifest_digest,
        amd.manifest.len(),
        arm.manifest_digest,
        arm.manifest.len(),
        amd.manifest_digest,
    );
    let index_digest = digest(index.as_bytes());
    fake.manifests
        .insert("multi".into(), (OCI_INDEX.into(), index.into_bytes()));
    let server = start(fake, Auth::None).await;

    let mut o = opts(&server);
    o.platform = "linux/arm64".parse().unwrap();
    let img = pull(&image(&server, "multi"), &o, wants()).await.unwrap();
    assert_eq!(img.manifest_digest, arm.manifest_digest);
    assert_eq!(img.index_digest.as_deref(), Some(index_digest.as_str()));
    assert_eq!(img.platform.to_string(), "linux/arm64/v8");
    assert_eq!(
        img.files.get("usr/lib/os-release").unwrap().1.data,
        b"ID=arm\n"
    );

    let img = pull(&image(&server, "multi"), &opts(&server), wants())
        .await
        .unwrap();
    assert_eq!(img.manifest_digest, amd.manifest_digest);

    o.platform = "linux/s390x".parse().unwrap();
    let err = pull(&image(&server, "multi"), &o, wants())
        .await
        .unwrap_err();
    assert_eq!(err.failure_class(), FailureClass::Configuration);
    let msg = err.to_string();
    assert!(msg.contains("linux/s390x"), "{msg}");
    assert!(
        msg.contains("available: linux/amd64, linux/arm64/v8"),
        "{msg}"
    );
}

#[tokio::test]
async fn docker_manifest_list_is_an_index_too() {
    let mut fake = Fake::default();
    let amd = add_image(&mut fake, "amd64", &simple_layers(), DOCKER_MANIFEST);
    let list = format!(
        r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[
        {{"mediaType":"{DOCKER_MANIFEST}","digest":"{}","size":{},"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
        amd.manifest_digest,
        amd.manifest.len()
    );
    fake.manifests.insert(
        "list".into(),
        (DOCKER_MANIFEST_LIST.into(), list.into_bytes()),
    );
    let server = start(fake, Auth::None).await;
    let img = pull(&image(&server, "list"), &opts(&server), wants())
        .await
        .unwrap();
    assert_eq!(img.manifest_digest, amd.manifest_digest);
    assert!(img.index_digest.is_some());
}

#[tokio::test]
async fn bearer_token_flow_fetches_one_token_per_scope() {
    let (fake, _) = simple_fake();
    let server = start(fake, Auth::Bearer).await;
    pull(&image(&server, "1.0"), &opts(&server), wants())
        .await
        .unwrap();
    {
        let f = server.fake.lock().unwrap();
        assert_eq!(f.hits["/token"], 1);
        let token_req = f.log.iter().find(|r| r.path.starts_with("/token")).unwrap();
        assert!(
            token_req.path.contains("service=fake"),
            "{}",
            token_req.path
        );
        assert!(
            token_req
                .path
                .contains("scope=repository%3Atest%2Fapp%3Apull"),
            "{}",
            token_req.path
        );
    }
    let mut o = opts(&server);
    o.credentials.as_mut().unwrap().credentials.password = "wrong".into();
    let err = pull(&image(&server, "1.0"), &o, wants()).await.unwrap_err();
    assert_eq!(err.failure_class(), FailureClass::Permission);
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "registry {} denied access to repo test/app (HTTP 401)",
            server.addr
        )),
        "{msg}"
    );
    assert!(
        msg.contains("check the worker's registry credentials"),
        "{msg}"
    );
    assert!(!msg.contains("wrong"), "{msg}");
}

#[tokio::test]
async fn basic_auth_and_missing_credentials() {
    let (fake, _) = simple_fake();
    let server = start(fake, Auth::Basic).await;
    pull(&image(&server, "1.0"), &opts(&server), wants())
        .await
        .unwrap();

    let mut o = opts(&server);
    o.credentials = None;
    let err = pull(&image(&server, "1.0"), &o, wants()).await.unwrap_err();
    assert_eq!(err.failure_class(), FailureClass::Permission);
    assert!(
        err.to_string().contains("the worker has no credentials"),
        "{err}"
    );
}

#[tokio::test]
async fn forbidden_is_denied() {
    let (fake, _) = simple_fake();
    let server = start(fake, Auth::Forbidden).await;
    let err = pull(&image(&server, "1.0"), &opts(&server), wants())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImageError::Denied { status: 403, .. }),
        "{err}"
    );
    assert_eq!(err.failure_class(), FailureClass::Permission);
}

#[tokio::test]
async fn missing_tag_is_not_found() {
    let (fake, _) = simple_fake();
    let server = start(fake, Auth::None).await;
    let err = pull(&image(&server, "missing"), &opts(&server), wants())
        .await
        .unwrap_err();
    assert_eq!(err.failure_class(), FailureClass::NotFound);
    assert_eq!(
        err.to_string(),
        format!(
            "image not found: {}/test/app:missing (manifest unknown)",
            server.addr
        )
    );

    let other: ImageRef = format!("{}/other/repo:1", server.addr).parse().unwrap();
    let err = pull(&other, &opts(&server), wants()).await.unwrap_err();
    assert!(err.to_string().contains("(repository unknown)"), "{err}");
}

#[tokio::test]
async fn transient_failures_are_retried_then_reported() {
    let (mut fake, built) = simple_fake();
    fake.unavailable
        .insert("/v2/test/app/manifests/1.0".into(), 2);
    // A layer download cut in the middle, once.
    fake.truncated
        .insert(format!("/v2/test/app/blobs/{}", built.layer_digests[0]), 1);
    let server = start(fake, Auth::None).await;
    let img = pull(&image(&server, "1.0"), &opts(&server), wants())
        .await
        .unwrap();
    assert!(img.files.get("etc/os-release").is_some());
    {
        let f = server.fake.lock().unwrap();
        assert_eq!(f.hits["/v2/test/app/manifests/1.0"], 3);
        assert_eq!(
            f.hits[&format!("/v2/test/app/blobs/{}", built.layer_digests[0])],
            2
        );
    }

    server
        .fake
        .lock()
        .unwrap()
        .unavailable
        .insert("/v2/test/app/manifests/1.0".into(), 100);
    let err = pull(&image(&server, "1.0"), &opts(&server), wants())
        .await
        .unwrap_err();
    assert_eq!(err.failure_class(), FailureClass::Unavailable);
    assert!(err.to_string().contains("after 4 attempt(s)"), "{err}");
    assert!(err.to_string().contains("HTTP 503"), "{err}");

    // Nothing listening.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    let r: ImageRef = format!("{addr}/test/app:1").parse().unwrap();
    let mut o = opts(&server);
    o.insecure_registries = vec![addr];
    let err = pull(&r, &o, wants()).await.unwrap_err();
    assert_eq!(err.failure_class(), FailureClass::Unavailable, "{err}");
}

#[tokio::test]
async fn https_to_a_plain_http_registry_hints_at_insecure_registries() {
    let (fake, _) = simple_fake();
    let server = start(fake, Auth::None).await;
    let mut o = opts(&server);
    o.insecure_registries.clear();
    // The test registry is on loopback and no longer operator-listed.
    o.allow_loopback_redirects = true;
    o.limits.max_attempts = 1;
    let err = pull(&image(&server, "1.0"), &o, wants()).await.unwrap_err();
    assert_eq!(err.failure_class(), FailureClass::Unavailable, "{err}");
    assert!(
        err.to_string().contains("SCANGATE_INSECURE_REGISTRIES"),
        "{err}"
    );
}

#[tokio::test]
async fn tampered_and_corrupt_content_is_rejected() {
    // Layer bytes that do not match the manifest.
    let (mut fake, built) = simple_fake();
    fake.tampered
        .insert(built.layer_digests[1].clone(), gzip(b"other bytes"));
    let server = start(fake, Auth::None).await;
    let err = pull(&image(&server, "1.0"), &opts(&server), wants())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ImageError::DigestMismatch { digest, .. } if *digest == built.layer_digests[1]),
        "{err}"
    );
    assert_eq!(err.failure_class(), FailureClass::Corrupt);

    // A manifest that is not the one the digest reference names.
    let (fake, _) = simple_fake();
    let server = start(fake, Auth::None).await;
    let wrong = format!("sha256:{}", "0".repeat(64));
    {
        let mut f = server.fake.lock().unwrap();
        let m = f.manifests["1.0"].clone();
        f.manifests.insert(wrong.clone(), m);
    }
    let r: ImageRef = format!("{}/test/app@{wrong}", server.addr).parse().unwrap();
    let err = pull(&r, &opts(&server), wants()).await.unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");

    // A corrupt gzip layer whose digest is right: the layer itself is bad.
    let mut fake = Fake::default();
    let mut bad = gzip(&tar_bytes(&[E::File("f", &[1u8; 20_000])]));
    let n = bad.len();
    bad[n / 2] ^= 0xff;
    bad[n / 2 + 1] ^= 0xff;
    let d = digest(&bad);
    fake.blobs.insert(d.clone(), bad.clone());
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{d}"]}}}}"#
    );
    let cd = digest(config.as_bytes());
    fake.blobs.insert(cd.clone(), config.into_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{cd}","size":1}},
        "layers":[{{"mediaType":"{LAYER_GZ}","digest":"{d}","size":{n}}}]}}"#
    );
    fake.manifests
        .insert("bad".into(), (OCI_MANIFEST.into(), manifest.into_bytes()));
    let server = start(fake, Auth::None).await;
    let err = pull(
        &image(&server, "bad"),
        &opts(&server),
        Arc::new(|_: &str| true),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ImageError::CorruptLayer { digest, .. } if *digest == d),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("layer {d} is corrupt")),
        "{err}"
    );
}

#[tokio::test]
async fn unsupported_and_oversized_manifests() {
    let mut fake = Fake::default();
    fake.manifests.insert(
        "v1".into(),
        (
            "application/vnd.docker.distribution.manifest.v1+prettyjws".into(),
            br#"{"schemaVersion":1,"fsLayers":[]}"#.to_vec(),
        ),
    );
    let big = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","annotations":{{"x":"{}"}}}}"#,
        "a".repeat(5 << 20)
    );
    fake.manifests
        .insert("big".into(), (OCI_MANIFEST.into(), big.into_bytes()));
    let zstd_layer = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{}","size":1}},
        "layers":[{{"mediaType":"application/vnd.cncf.helm.chart.content.v1.tar+gzip","digest":"{}","size":1}}]}}"#,
        digest(b"c"),
        digest(b"l")
    );
    fake.manifests.insert(
        "zstd".into(),
        (OCI_MANIFEST.into(), zstd_layer.into_bytes()),
    );
    let server = start(fake, Auth::None).await;

    let err = pull(&image(&server, "v1"), &opts(&server), wants())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("schema 1"), "{err}");
    assert_eq!(err.failure_class(), FailureClass::Corrupt);

    let err = pull(&image(&server, "big"), &opts(&server), wants())
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::LimitExceeded { .. }), "{err}");

    let err = pull(&image(&server, "zstd"), &opts(&server), wants())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ImageError::Unsupported { detail, .. } if detail.contains("not a filesystem layer")),
        "{err}"
    );

    let (fake, _) = simple_fake();
    let server = start(fake, Auth::None).await;
    let mut o = opts(&server);
    o.limits.max_layers = 1;
    let err = pull(&image(&server, "1.0"), &o, wants()).await.unwrap_err();
    assert!(err.to_string().contains("2 layers"), "{err}");
}

/// Later layers finish downloading first; the merge must still follow
/// layer order.
#[tokio::test]
async fn parallel_downloads_merge_in_layer_order() {
    let layers: Vec<Vec<u8>> = (0..6)
        .map(|i| {
            let content = format!("v{i}");
            let mut entries = vec![E::File("etc/version", content.as_bytes())];
            if i % 2 == 1 {
                entries.push(E::File("etc/.wh.odd", b""));
            } else {
                entries.push(E::File("etc/odd", b"x"));
            }
            tar_bytes(&entries)
        })
        .collect();
    let mut fake = Fake::default();
    let built = add_image(&mut fake, "amd64", &layers, DOCKER_MANIFEST);
    fake.manifests
        .insert("p".into(), (DOCKER_MANIFEST.into(), built.manifest.clone()));
    for (i, d) in built.layer_digests.iter().enumerate() {
        fake.delays.insert(
            format!("/v2/test/app/blobs/{d}"),
            Duration::from_millis(60 - 10 * i as u64),
        );
    }
    let server = start(fake, Auth::None).await;
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let wants: Wants = Arc::new(|p: &str| {
        CALLS.fetch_add(1, Ordering::Relaxed);
        p.starts_with("etc/")
    });
    let img = pull(&image(&server, "p"), &opts(&server), wants)
        .await
        .unwrap();
    assert_eq!(img.files.files["etc/version"].data, b"v5");
    assert_eq!(img.files.files["etc/version"].layer, 5);
    // Layer 5 whited out etc/odd that layer 4 added.
    assert!(!img.files.files.contains_key("etc/odd"));
    assert!(CALLS.load(Ordering::Relaxed) >= 6);
}

/// Against Debian's `docker-registry` with an image pushed by skopeo; run
/// with `SCANGATE_SMOKE_REGISTRY=127.0.0.1:PORT SCANGATE_SMOKE_IMAGE=repo:tag
/// cargo test -- --ignored real_registry`.
#[tokio::test]
#[ignore]
async fn real_registry_smoke() {
    let registry = std::env::var("SCANGATE_SMOKE_REGISTRY").expect("SCANGATE_SMOKE_REGISTRY");
    let image = std::env::var("SCANGATE_SMOKE_IMAGE").expect("SCANGATE_SMOKE_IMAGE");
    let reference: ImageRef = format!("{registry}/{image}").parse().unwrap();
    let o = PullOptions {
        insecure_registries: vec![registry],
        platform: std::env::var("SCANGATE_SMOKE_PLATFORM")
            .unwrap_or_else(|_| "linux/amd64".into())
            .parse()
            .unwrap(),
        ..PullOptions::default()
    };
    let img = pull(
        &reference,
        &o,
        Arc::new(|p: &str| {
            p.ends_with("os-release")
                || p.starts_with("var/lib/dpkg/status")
                || p.starts_with("lib/apk/db/")
        }),
    )
    .await
    .unwrap();
    println!(
        "manifest {} index {:?}",
        img.manifest_digest, img.index_digest
    );
    println!("platform {} layers {}", img.platform, img.layers.len());
    for (p, f) in &img.files.files {
        println!("file {p} ({} bytes, layer {})", f.data.len(), f.layer);
    }
    println!("symlinks {}", img.files.symlinks.len());
    println!("warnings {:?}", img.warnings);
    let (_, os) = img.files.get("etc/os-release").expect("os-release");
    println!("{}", String::from_utf8_lossy(&os.data));
}

#[tokio::test]
async fn cut_downloads_resume_with_range_requests() {
    // A layer large enough that the cut (half the body) leaves bytes on
    // both sides; incompressible so the gzip blob is that large too.
    let mut noise = Vec::with_capacity(300_000);
    let mut block = Sha256::digest(b"noise");
    while noise.len() < 300_000 {
        noise.extend_from_slice(&block);
        block = Sha256::digest(block);
    }
    let layers = vec![tar_bytes(&[
        E::File("etc/os-release", b"ID=debian\n"),
        E::File("opt/noise", &noise),
    ])];
    // (mode, GETs of the blob, whether a range was asked for)
    let cases = [
        // Resumed where the cut left off.
        (Ranges::Honour, 2, true),
        // Resumed, the registry sent everything, the head is dropped.
        (Ranges::IgnoreRequest, 2, true),
        // A partial answer that starts elsewhere: never spliced in; the
        // whole layer is fetched again.
        (Ranges::WrongStart, 3, true),
        // No Accept-Ranges: the whole layer again, no range asked.
        (Ranges::Off, 2, false),
    ];
    for (mode, gets, ranged) in cases {
        let mut fake = Fake {
            ranges: mode,
            ..Fake::default()
        };
        let built = add_image(&mut fake, "amd64", &layers, OCI_MANIFEST);
        fake.manifests
            .insert("1.0".into(), (OCI_MANIFEST.into(), built.manifest.clone()));
        let path = format!("/v2/test/app/blobs/{}", built.layer_digests[0]);
        fake.truncated.insert(path.clone(), 1);
        let server = start(fake, Auth::None).await;
        let mut o = opts(&server);
        o.limits.retry_base_delay = Duration::from_millis(1);
        let img = pull(&image(&server, "1.0"), &o, Arc::new(|_: &str| true))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(img.files.get("opt/noise").unwrap().1.data, noise);
        let f = server.fake.lock().unwrap();
        assert_eq!(f.hits[&path], gets);
        let range_asked: Vec<&String> = f
            .log
            .iter()
            .filter(|r| r.path == path)
            .filter_map(|r| r.headers.get("range"))
            .collect();
        assert_eq!(!range_asked.is_empty(), ranged, "{range_asked:?}");
        if ranged {
            // The cut sent half the blob: the resume asks for the rest.
            let blob_len = f.blobs[&built.layer_digests[0]].len();
            assert_eq!(range_asked[0], &format!("bytes={}-", blob_len / 2));
        }
    }
}
