//! Registry authentication end to end: the real `scangate sbom` binary
//! against the real Debian `docker-registry` in token mode (with our token
//! service issuing RS256 JWTs), in htpasswd mode with credentials from a
//! Docker config or a credential helper, addressed under an ECR host name
//! with tokens from the ECR emulator, and behind a front that redirects
//! blob downloads to another origin.
//!
//! And what a hostile job, image or registry must not get: the
//! `SCANGATE_REGISTRY_*` credentials on a host outside
//! `SCANGATE_REGISTRY_HOSTS`, on a token service on another host, or on a
//! base-image host the image's own label names; redirects to loopback,
//! link-local or metadata addresses.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use base64::Engine as _;
use integration_tests::corpus::{self, skopeo_copy};
use integration_tests::ecr::EcrEmulator;
use integration_tests::images::{ImageBuilder, debian_os_release, dpkg_layer, dpkg_status};
use integration_tests::redirect_proxy::RedirectProxy;
use integration_tests::registry::{Credentials, Registry};
use integration_tests::token_server::{SERVICE, TokenServer};

const PURL: &str = "pkg:deb/debian/glibc@2.36-9";

/// A one-package Debian image pushed to `registry` as `repo_tag`.
fn push_sample(registry: &Registry, repo_tag: &str) {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    ImageBuilder::new()
        .layer(dpkg_layer(
            &debian_os_release(),
            &dpkg_status(&[("libc6", "2.36-9+deb12u4", "amd64", "glibc")]),
        ))
        .build()
        .unwrap()
        .write_oci_layout(&layout, Some("1"))
        .unwrap();
    skopeo_copy(registry, &format!("oci:{}:1", layout.display()), repo_tag)
        .expect("pushing the sample image");
}

struct Run {
    out: Output,
    sbom: Option<String>,
}

impl Run {
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    fn assert_ok(&self) {
        assert!(
            self.out.status.success(),
            "scangate failed:\n{}",
            self.stderr()
        );
        let sbom = self.sbom.as_deref().unwrap_or_default();
        assert!(sbom.contains(PURL), "{sbom}");
    }

    /// Exit 2 with an error that contains every `needles` entry and none of
    /// the `secrets`.
    fn assert_err(&self, needles: &[&str], secrets: &[&str]) -> String {
        let err = self.stderr();
        assert_eq!(self.out.status.code(), Some(2), "{err}");
        for n in needles {
            assert!(err.contains(n), "expected {n:?} in:\n{err}");
        }
        for s in secrets {
            assert!(!err.contains(s), "secret {s:?} leaked:\n{err}");
        }
        err
    }
}

/// `scangate sbom IMAGE` with a clean environment (no user Docker config,
/// no AWS settings) plus `env`.
async fn sbom(image: &str, insecure: &str, env: &[(&str, &str)]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("sbom.json");
    let mut cmd = tokio::process::Command::new(corpus::scangate_bin());
    cmd.args(["sbom", image, "-o"])
        .arg(&out_path)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("SCANGATE_INSECURE_REGISTRIES", insecure)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "scangate=debug")
        .env("SCANGATE_LOG_FORMAT", "text");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("running scangate");
    Run {
        out,
        sbom: std::fs::read_to_string(&out_path).ok(),
    }
}

fn write_docker_config(dir: &Path, json: serde_json::Value) -> PathBuf {
    std::fs::write(dir.join("config.json"), json.to_string()).unwrap();
    dir.to_owned()
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_with_the_real_registry() {
    let tokens = TokenServer::start(300).await.unwrap();
    let user = Credentials::new("ci-bot", "t0ken-pa55word");
    tokens.add_user(&user);
    let registry = Registry::start_with_token_auth(&tokens.auth, user.clone()).unwrap();
    push_sample(&registry, "auth/app:1");
    tokens.clear_requests();
    let image = registry.reference("auth/app:1");
    let token_host = tokens.addr.to_string();
    let both_hosts = format!("{},{token_host}", registry.addr);

    // The token service is on another host (port) than the registry: with
    // only the registry listed, it gets no credentials (an anonymous token
    // request), and the refusal says what to list.
    let run = sbom(
        &image,
        &registry.addr,
        &[
            ("SCANGATE_REGISTRY_USERNAME", &user.username),
            ("SCANGATE_REGISTRY_PASSWORD", &user.password),
            ("SCANGATE_REGISTRY_HOSTS", &registry.addr),
        ],
    )
    .await;
    run.assert_err(
        &[
            &format!("registry {} denied access", registry.addr),
            &format!("were not sent to the registry's token service {token_host}"),
            "SCANGATE_REGISTRY_HOSTS",
        ],
        &[&user.password],
    );
    let reqs = tokens.requests();
    assert!(!reqs.is_empty());
    assert!(reqs.iter().all(|r| r.user.is_none()), "{reqs:?}");

    // Right credentials, the token service listed too: one token for the
    // whole pull (manifest, config, layer share the scope), fetched with
    // Basic credentials.
    tokens.clear_requests();
    let run = sbom(
        &image,
        &registry.addr,
        &[
            ("SCANGATE_REGISTRY_USERNAME", &user.username),
            ("SCANGATE_REGISTRY_PASSWORD", &user.password),
            ("SCANGATE_REGISTRY_HOSTS", &both_hosts),
        ],
    )
    .await;
    run.assert_ok();
    let reqs = tokens.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].user.as_deref(), Some("ci-bot"));
    assert_eq!(reqs[0].scopes, vec!["repository:auth/app:pull".to_owned()]);
    assert_eq!(reqs[0].service.as_deref(), Some(SERVICE));
    assert!(!run.stderr().contains(&user.password));

    // Wrong password: the token service refuses; the error names the
    // registry and where the credentials came from, never the password.
    tokens.clear_requests();
    let run = sbom(
        &image,
        &registry.addr,
        &[
            ("SCANGATE_REGISTRY_USERNAME", &user.username),
            ("SCANGATE_REGISTRY_PASSWORD", "wr0ng-pa55word"),
            ("SCANGATE_REGISTRY_HOSTS", &both_hosts),
        ],
    )
    .await;
    run.assert_err(
        &[
            &format!(
                "registry {} denied access to repo auth/app (HTTP 401)",
                registry.addr
            ),
            "tried basic credentials from SCANGATE_REGISTRY_USERNAME/PASSWORD",
            "token service",
        ],
        &["wr0ng-pa55word", &user.password],
    );
    assert_eq!(tokens.requests()[0].status, 401);

    // Anonymous: the service gives a token that grants nothing and the
    // registry refuses it.
    tokens.clear_requests();
    let run = sbom(&image, &registry.addr, &[]).await;
    run.assert_err(
        &[
            &format!("registry {} denied access", registry.addr),
            "tried anonymous",
            "the worker has no credentials",
        ],
        &[],
    );
    let reqs = tokens.requests();
    assert!(reqs.iter().all(|r| r.user.is_none()), "{reqs:?}");

    // A Docker config identity token: the OAuth2 refresh-token POST, whose
    // answer has `access_token` only.
    tokens.clear_requests();
    tokens.add_refresh_token("refresh-0123456789", "ci-bot");
    let cfg = tempfile::tempdir().unwrap();
    write_docker_config(
        cfg.path(),
        serde_json::json!({"auths": {registry.addr.clone(): {"identitytoken": "refresh-0123456789"}}}),
    );
    // The token service is on another port, so it is listed: Docker config
    // credentials are held to the same realm rule.
    let run = sbom(
        &image,
        &registry.addr,
        &[
            ("DOCKER_CONFIG", cfg.path().to_str().unwrap()),
            ("SCANGATE_REGISTRY_HOSTS", &token_host),
        ],
    )
    .await;
    run.assert_ok();
    let reqs = tokens.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].user.as_deref(), Some("ci-bot"));
    assert!(!run.stderr().contains("refresh-0123456789"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_config_auths_and_credential_helpers() {
    let registry = Registry::start_with_auth("builder", "htpa55-secret").unwrap();
    push_sample(&registry, "cfg/app:1");
    let image = registry.reference("cfg/app:1");
    let cfg = tempfile::tempdir().unwrap();
    let cfg_dir = cfg.path().to_str().unwrap().to_owned();

    // `auths` with the base64 user:password, keyed with a scheme as
    // `docker login` of old wrote it.
    write_docker_config(
        cfg.path(),
        serde_json::json!({"auths": {format!("http://{}", registry.addr): {"auth": b64("builder:htpa55-secret")}}}),
    );
    sbom(&image, &registry.addr, &[("DOCKER_CONFIG", &cfg_dir)])
        .await
        .assert_ok();

    // Wrong password in `auths`: the error names the config file.
    write_docker_config(
        cfg.path(),
        serde_json::json!({"auths": {registry.addr.clone(): {"auth": b64("builder:not-the-pa55")}}}),
    );
    sbom(&image, &registry.addr, &[("DOCKER_CONFIG", &cfg_dir)])
        .await
        .assert_err(
            &[
                &format!("registry {} denied access", registry.addr),
                &format!("tried credentials from Docker config {cfg_dir}/config.json"),
            ],
            &["not-the-pa55", "htpa55-secret"],
        );

    // A credential helper on PATH, named by credHelpers for this host; it
    // records the server URL it was asked about.
    let bin = tempfile::tempdir().unwrap();
    let asked = bin.path().join("asked");
    let helper = bin.path().join("docker-credential-test");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 3\nread -r server\necho \"$server\" >> {asked}\n\
             if [ -e {fail} ]; then echo 'keychain is locked' >&2; exit 1; fi\n\
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"builder\",\"Secret\":\"htpa55-secret\"}}' \"$server\"\n",
            asked = asked.display(),
            fail = bin.path().join("fail").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    write_docker_config(
        cfg.path(),
        serde_json::json!({
            "credHelpers": {registry.addr.clone(): "test"},
            "credsStore": "scangate-absent",
        }),
    );
    let env = [("DOCKER_CONFIG", cfg_dir.as_str()), ("PATH", path.as_str())];
    let run = sbom(&image, &registry.addr, &env).await;
    run.assert_ok();
    assert!(!run.stderr().contains("htpa55-secret"));
    assert_eq!(
        std::fs::read_to_string(&asked).unwrap().trim(),
        registry.addr
    );

    // The helper fails: its message and name, not a 401 with no context.
    std::fs::write(bin.path().join("fail"), "").unwrap();
    sbom(&image, &registry.addr, &env).await.assert_err(
        &[
            &format!("cannot get credentials for registry {}", registry.addr),
            "credential helper docker-credential-test",
            "keychain is locked",
        ],
        &["htpa55-secret"],
    );

    // credsStore names a helper that is not installed.
    write_docker_config(
        cfg.path(),
        serde_json::json!({"credsStore": "scangate-absent"}),
    );
    sbom(&image, &registry.addr, &env).await.assert_err(
        &[
            "docker-credential-scangate-absent is not on PATH",
            "credsStore",
        ],
        &[],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecr_authorization_tokens() {
    // ECR's registry password is the token's; the htpasswd registry plays
    // the ECR registry, reached under an ECR host name pinned to 127.0.0.1.
    let ecr_password = "eyJwYXlsb2FkIjoiZWNyLXRlc3QifQ";
    let registry = Registry::start_with_auth("AWS", ecr_password).unwrap();
    push_sample(&registry, "team/app:1");
    let emulator = EcrEmulator::start(
        "AWS",
        ecr_password,
        std::time::Duration::from_secs(12 * 3600),
    )
    .await
    .unwrap();
    let port = registry.addr.rsplit_once(':').unwrap().1;
    let host = "123456789012.dkr.ecr.eu-west-3.amazonaws.com";
    let ecr_addr = format!("{host}:{port}");
    let image = format!("{ecr_addr}/team/app:1");
    let endpoint = emulator.url();
    let env = [
        ("SCANGATE_REGISTRY_RESOLVE", format!("{host}=127.0.0.1")),
        ("AWS_ENDPOINT_URL_ECR", endpoint.clone()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test-secret".to_owned()),
        // Never sent to ECR, even when its host is listed.
        ("SCANGATE_REGISTRY_USERNAME", "someone-else".to_owned()),
        ("SCANGATE_REGISTRY_PASSWORD", "not-for-ecr".to_owned()),
        ("SCANGATE_REGISTRY_HOSTS", ecr_addr.clone()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = sbom(&image, &ecr_addr, &env).await;
    run.assert_ok();
    assert!(!run.stderr().contains(ecr_password));
    let calls = emulator.calls();
    // One call for the whole pull, in the registry's region (not the
    // worker's AWS_REGION), naming the account.
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].registry_ids, vec!["123456789012".to_owned()]);
    assert_eq!(calls[0].signed_region.as_deref(), Some("eu-west-3"));

    emulator.deny();
    sbom(&image, &ecr_addr, &env).await.assert_err(
        &[
            &format!("cannot get credentials for registry {ecr_addr}"),
            "ECR authorization token",
            "AccessDeniedException",
        ],
        &[ecr_password],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_redirects_to_another_origin_get_no_credentials() {
    let registry = Registry::start_with_auth("builder", "redir-pa55").unwrap();
    push_sample(&registry, "redir/app:1");
    let proxy = RedirectProxy::start(&registry.addr, registry.storage_dir())
        .await
        .unwrap();
    let front = proxy.addr.to_string();
    let run = sbom(
        &format!("{front}/redir/app:1"),
        &front,
        &[
            ("SCANGATE_REGISTRY_USERNAME", "builder"),
            ("SCANGATE_REGISTRY_PASSWORD", "redir-pa55"),
            ("SCANGATE_REGISTRY_HOSTS", &front),
        ],
    )
    .await;
    run.assert_ok();
    let redirected = proxy.blob_requests();
    // The config blob and the layer both came from the other origin...
    assert!(redirected.len() >= 2, "{redirected:?}");
    // ...without our credentials, which the registry itself did get.
    assert!(
        redirected.iter().all(|s| !s.authorization),
        "{redirected:?}"
    );
    assert!(
        proxy
            .proxied()
            .iter()
            .any(|s| s.path.contains("/blobs/") && s.authorization)
    );
}

/// The env credentials go to the listed hosts only: the front records
/// whether each request carried an Authorization header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_credentials_go_only_to_listed_hosts() {
    let registry = Registry::start_with_auth("builder", "li5ted-pa55").unwrap();
    push_sample(&registry, "hosts/app:1");
    let proxy = RedirectProxy::start(&registry.addr, registry.storage_dir())
        .await
        .unwrap();
    let front = proxy.addr.to_string();
    let image = format!("{front}/hosts/app:1");
    let port = proxy.addr.port();
    let creds = [
        ("SCANGATE_REGISTRY_USERNAME", "builder"),
        ("SCANGATE_REGISTRY_PASSWORD", "li5ted-pa55"),
    ];
    // Other hosts, the same host without its port or on another port, a
    // look-alike: the password never leaves.
    for listed in [
        "registry.example.com:5000".to_owned(),
        "127.0.0.1".to_owned(),
        format!("127.0.0.1:{}", port.wrapping_add(1)),
        format!("localhost:{port}"),
    ] {
        let mut env = creds.to_vec();
        env.push(("SCANGATE_REGISTRY_HOSTS", &listed));
        let run = sbom(&image, &front, &env).await;
        run.assert_err(
            &[
                &format!("registry {front} denied access"),
                "tried anonymous",
            ],
            &["li5ted-pa55"],
        );
        let seen = proxy.proxied();
        assert!(!seen.is_empty());
        assert!(
            seen.iter().all(|s| !s.authorization),
            "listed {listed}: {seen:?}"
        );
    }
    // Listed (written as a URL, in capitals): sent.
    let listed = format!("http://127.0.0.1:{port}/,registry.example.com");
    let mut env = creds.to_vec();
    env.push(("SCANGATE_REGISTRY_HOSTS", &listed));
    sbom(&image, &front, &env).await.assert_ok();
    assert!(proxy.proxied().iter().any(|s| s.authorization));
}

/// Credentials without the host list: `sbom`, `scan` and the worker refuse
/// to start, say what to set, and reach no registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_without_hosts_are_a_startup_error() {
    let registry = Registry::start().unwrap();
    let proxy = RedirectProxy::start(&registry.addr, registry.storage_dir())
        .await
        .unwrap();
    let front = proxy.addr.to_string();
    let image = format!("{front}/any/app:1");
    let creds = [
        ("SCANGATE_REGISTRY_USERNAME", "builder"),
        ("SCANGATE_REGISTRY_PASSWORD", "n0-h0sts-pa55"),
    ];
    let err = sbom(&image, &front, &creds).await.assert_err(
        &["SCANGATE_REGISTRY_HOSTS", "host[:port]"],
        &["n0-h0sts-pa55"],
    );
    assert!(err.contains("SCANGATE_REGISTRY_USERNAME"), "{err}");
    // A password without a user is not silently ignored either.
    sbom(&image, &front, &creds[1..])
        .await
        .assert_err(&["SCANGATE_REGISTRY_USERNAME"], &["n0-h0sts-pa55"]);

    for args in [vec!["scan", image.as_str()], vec!["worker"]] {
        let out = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            tokio::process::Command::new(corpus::scangate_bin())
                .args(&args)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("AWS_REGION", "us-east-1")
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env("SCANGATE_HEALTH_ADDR", "off")
                .envs(creds)
                .output(),
        )
        .await
        .expect("scangate must stop at start-up")
        .unwrap();
        // The worker logs on stdout, the CLI on stderr: both are read.
        let err = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{args:?}: {err}");
        assert!(err.contains("SCANGATE_REGISTRY_HOSTS"), "{args:?}: {err}");
        assert!(!err.contains("n0-h0sts-pa55"), "{args:?}: {err}");
    }
    assert!(proxy.proxied().is_empty(), "{:?}", proxy.proxied());
}

/// A registry redirecting blob downloads to the cloud metadata address or
/// to another loopback host is refused before anything is sent there; the
/// loopback knob lets the latter through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_to_metadata_and_loopback_are_refused() {
    let registry = Registry::start_with_auth("builder", "redir-pa55").unwrap();
    push_sample(&registry, "redir/app:1");
    let creds = |front: &str| {
        vec![
            ("SCANGATE_REGISTRY_USERNAME", "builder".to_owned()),
            ("SCANGATE_REGISTRY_PASSWORD", "redir-pa55".to_owned()),
            ("SCANGATE_REGISTRY_HOSTS", front.to_owned()),
        ]
    };

    for target in [
        "http://169.254.169.254",
        "http://169.254.170.2",
        "http://[fd00:ec2::254]",
    ] {
        let proxy = RedirectProxy::start_redirecting_to(
            &registry.addr,
            registry.storage_dir(),
            Some(target.to_owned()),
        )
        .await
        .unwrap();
        let front = proxy.addr.to_string();
        // Even with the loopback knob on.
        let mut env = creds(&front);
        env.push(("SCANGATE_ALLOW_LOOPBACK_REDIRECTS", "true".into()));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let started = std::time::Instant::now();
        let run = sbom(&format!("{front}/redir/app:1"), &front, &env).await;
        let host = target.trim_start_matches("http://");
        run.assert_err(&["refusing to connect to", host], &["redir-pa55"]);
        // Refused, not tried and timed out.
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }

    // `localhost` resolves to loopback: refused without the knob...
    let proxy = RedirectProxy::start_redirecting_to(
        &registry.addr,
        registry.storage_dir(),
        Some("http://localhost:{blob_port}".into()),
    )
    .await
    .unwrap();
    let front = proxy.addr.to_string();
    let image = format!("{front}/redir/app:1");
    let mut env = creds(&front);
    let borrowed: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = sbom(&image, &front, &borrowed).await;
    let err = run.assert_err(
        &["refusing to connect to localhost", "a loopback address"],
        &["redir-pa55"],
    );
    assert!(err.contains("SCANGATE_ALLOW_LOOPBACK_REDIRECTS"), "{err}");
    assert!(proxy.blob_requests().is_empty());
    // ...and followed with it, still without credentials.
    env.push(("SCANGATE_ALLOW_LOOPBACK_REDIRECTS", "true".into()));
    let borrowed: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    sbom(&image, &front, &borrowed).await.assert_ok();
    let redirected = proxy.blob_requests();
    assert!(redirected.len() >= 2, "{redirected:?}");
    assert!(
        redirected.iter().all(|s| !s.authorization),
        "{redirected:?}"
    );
}

/// A base image named by the image's own label is pulled anonymously even
/// when its host is listed with the credentials; the same base named by the
/// policy (the pipeline author's choice) gets them. The token service
/// records whose credentials each token request carried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_image_named_by_a_label_is_fetched_anonymously() {
    let env = support::Env::new(false).await;
    let tokens = TokenServer::start(300).await.unwrap();
    let user = Credentials::new("ci-bot", "ba5e-pa55word");
    tokens.add_user(&user);
    let private = Registry::start_with_token_auth(&tokens.auth, user.clone()).unwrap();

    let base_layer = support::alpine_fixture_layer();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("base");
    ImageBuilder::new()
        .layer(base_layer.clone())
        .build()
        .unwrap()
        .write_oci_layout(&layout, Some("1"))
        .unwrap();
    skopeo_copy(
        &private,
        &format!("oci:{}:1", layout.display()),
        "base/alpine:1",
    )
    .expect("pushing the base");
    let base_ref = private.reference("base/alpine:1");
    let app = ImageBuilder::new()
        .layer(base_layer)
        .layer(
            integration_tests::images::Layer::new()
                .file("app/README", "own layer")
                .created_by("COPY README /app/"),
        )
        .label("org.opencontainers.image.base.name", &base_ref)
        .build()
        .unwrap();
    app.push(&env.registry.addr, "app/labelled:1", None)
        .await
        .unwrap();
    let image = env.registry.reference("app/labelled:1");

    let policy_dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: String| {
        let p = policy_dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.display().to_string()
    };
    let thresholds = "  thresholds: { critical: null, high: null }\n";
    let from_label = write(
        "label.yaml",
        format!("version: 1\nbase_image:\n{thresholds}"),
    );
    let from_policy = write(
        "ref.yaml",
        format!("version: 1\nbase_image:\n  ref: {base_ref}\n{thresholds}"),
    );
    let insecure = format!("{},{}", env.registry.addr, private.addr);
    // The private registry and its token service are both listed.
    let hosts = format!("{},{}", private.addr, tokens.addr);
    let scan = |policy: &str| {
        env.cli(&[
            "scan",
            &image,
            "--insecure-registries",
            &insecure,
            "--registry-username",
            &user.username,
            "--registry-password",
            &user.password,
            "--registry-hosts",
            &hosts,
            "--policy",
            policy,
            "--format",
            "json",
        ])
    };

    tokens.clear_requests();
    let out = scan(&from_label);
    let reqs = tokens.requests();
    assert!(!reqs.is_empty(), "the base was looked up: {out:?}");
    assert!(reqs.iter().all(|r| r.user.is_none()), "{reqs:?}");
    assert!(!out.stderr.contains(&user.password) && !out.stdout.contains(&user.password));
    // Unresolved, the base is a warning (never a failed job) that says why.
    assert_ne!(out.code, Some(2), "{out:?}");
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("the base image could not be resolved"),
        "{warnings}"
    );
    assert!(warnings.contains(&base_ref), "{warnings}");
    assert!(warnings.contains("tried anonymous"), "{warnings}");

    // The policy names the same base: credentials are used, the base
    // resolves and its inherited CRITICAL is judged by the base thresholds.
    tokens.clear_requests();
    let out = scan(&from_policy);
    let reqs = tokens.requests();
    assert!(
        reqs.iter().any(|r| r.user.as_deref() == Some("ci-bot")),
        "{reqs:?}"
    );
    assert_ne!(out.code, Some(2), "{out:?}");
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let warnings = report["warnings"].to_string();
    assert!(!warnings.contains("could not be resolved"), "{warnings}");
}
