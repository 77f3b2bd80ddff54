use super::stream::FileScan;
use super::*;

mod samples {
    include!("samples.rs");
}
use samples::samples;

fn scan() -> Arc<SecretScan> {
    SecretScan::new(&SecretsPolicy::default()).unwrap()
}

/// The rule ids found in `text` at `path`, fed in chunks of `chunk` bytes.
fn found_in(s: &SecretScan, path: &str, text: &[u8], chunk: usize) -> Vec<(String, u32, String)> {
    let mut f = FileScan::new(&s.rules, path.into());
    for c in text.chunks(chunk.max(1)) {
        if !f.feed(c) {
            break;
        }
    }
    f.finish()
        .0
        .into_iter()
        .map(|x| (s.rules.rules[x.rule].id.clone(), x.line, x.excerpt))
        .collect()
}

#[test]
fn every_rule_finds_its_planted_secret_and_only_that() {
    let s = scan();
    let mut covered = std::collections::BTreeSet::new();
    for (rule, path, text, secret) in samples() {
        let found = found_in(&s, path, text.as_bytes(), usize::MAX);
        assert_eq!(
            found
                .iter()
                .map(|f| f.0.as_str())
                .filter(|r| *r == rule)
                .count(),
            1,
            "{rule} in {path}: {found:?}"
        );
        // An AWS key id next to its secret is also reported: two findings.
        let others: Vec<_> = found
            .iter()
            .filter(|f| f.0 != rule && f.0 != "aws-access-key-id")
            .collect();
        assert!(others.is_empty(), "{rule} in {path}: extra {others:?}");
        for f in &found {
            assert!(!f.2.contains(&secret[..secret.len().min(12)]), "{f:?}");
        }
        covered.insert(rule);
    }
    for b in rules::BUILTIN {
        assert!(covered.contains(b.id), "no planted sample for {}", b.id);
    }
}

#[test]
fn chunk_boundaries_do_not_change_what_is_found_or_its_line() {
    let s = scan();
    let plain: Vec<_> = samples()
        .into_iter()
        .filter(|(rule, ..)| {
            !rules::BUILTIN
                .iter()
                .any(|b| b.id == *rule && !b.paths.is_empty())
        })
        .collect();
    // Three samples a file (under the per-file cap), filler lines between
    // them, some long.
    for (n, group) in plain.chunks(3).enumerate() {
        let mut text = String::new();
        let mut expected = Vec::new();
        for (i, (rule, _, body, _)) in group.iter().enumerate() {
            for j in 0..((n * 3 + i) * 37 % 50) {
                text.push_str(&"lorem ipsum dolor ".repeat(j % 7 + 1));
                text.push('\n');
            }
            let line = text.matches('\n').count() as u32 + 1;
            expected.push((*rule, line));
            text.push_str(body);
        }
        let whole = found_in(&s, "/x", text.as_bytes(), usize::MAX);
        for (rule, line) in &expected {
            assert!(
                whole
                    .iter()
                    .any(|(r, l, _)| r == rule && l >= line && *l <= line + 4),
                "{rule} at {line}: {whole:?}"
            );
        }
        for chunk in [1, 7, 64, 1000, 4096, 65_537] {
            assert_eq!(
                found_in(&s, "/x", text.as_bytes(), chunk),
                whole,
                "chunk {chunk}"
            );
        }
    }
}

#[test]
fn lines_are_counted_across_many_chunks() {
    let s = scan();
    let mut text = "x\n".repeat(300_000);
    text.push_str("token: ghp_wR4y9ojfljoQoaF1LlqsajAIxNKu8iS2G8NP\n");
    let found = found_in(&s, "/big", text.as_bytes(), 10_000);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].1, 300_001);
}

#[test]
fn memory_stays_a_window_on_one_endless_line() {
    let s = scan();
    let mut f = FileScan::new(&s.rules, "/min.js".into());
    let filler = "a=b;eyJ".repeat(10_000);
    for _ in 0..40 {
        assert!(f.feed(filler.as_bytes()));
        assert!(f.buffered() < 200 << 10, "{}", f.buffered());
    }
    let tail = " ghp_wR4y9ojfljoQoaF1LlqsajAIxNKu8iS2G8NP;";
    f.feed(tail.as_bytes());
    let (found, _) = f.finish();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].line, 1);
}

#[test]
fn binaries_and_archives_are_not_searched() {
    let s = scan();
    let secret = "token: ghp_wR4y9ojfljoQoaF1LlqsajAIxNKu8iS2G8NP\n";
    for head in [
        &b"\x7fELF\x02\x01\x01"[..],
        b"PK\x03\x04",
        b"\x1f\x8b\x08",
        b"abc\0def",
    ] {
        let mut data = head.to_vec();
        data.extend_from_slice(secret.as_bytes());
        assert!(found_in(&s, "/bin/x", &data, 3).is_empty());
    }
    assert_eq!(found_in(&s, "/t", secret.as_bytes(), 3).len(), 1);
}

#[test]
fn look_alikes_are_not_secrets() {
    let s = scan();
    let texts = [
        // A parser's source, not a key.
        "if line.startswith('-----BEGIN RSA PRIVATE KEY-----'):\n    parse(line)\n",
        "PEM = b\"-----BEGIN OPENSSH PRIVATE KEY-----\\n\"\nreturn PEM\n",
        // A SHA-1 next to an AWS-looking word.
        "aws_secret_access_key_sha1 = 3b18e512dba79e4c8300dd08aeb37f8e728b8dad\n",
        // Placeholders.
        "DATABASE_URL=postgres://user:password@localhost/db\n",
        "url = mysql://app:${DB_PASSWORD}@db/app\n",
        "mongodb://<user>:<password>@host\n",
        // An unsigned JWT grants nothing.
        "t = eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6InN2YyJ9.QLioDnkHIfxIq2HZt-PlJhx2jIclHkCiHp6bR1IqfEo\n",
        // npm_ followed by an identifier.
        "npm_config_cache_directory_for_the_user_here=1\n",
        // An .npmrc reading its token from the environment (not in .npmrc
        // anyway, but also as .npmrc below).
        "//registry.npmjs.org/:_authToken=${NPM_TOKEN}\n",
    ];
    for t in texts {
        assert!(found_in(&s, "/app/x", t.as_bytes(), 5).is_empty(), "{t}");
    }
    assert!(found_in(&s, "/root/.npmrc", texts[8].as_bytes(), 5).is_empty());
    // Path-limited rules do not run elsewhere.
    let docker = "{\"auths\": {\"r\": {\"auth\": \"ZGVwbG95OlprM21ROXhXMnBMNw==\"}}}";
    assert!(found_in(&s, "/app/other.json", docker.as_bytes(), 5).is_empty());
}

#[test]
fn redaction_shows_at_most_four_characters_each_side() {
    assert_eq!(
        redact(b"AKIAZ7QW3XK5N2P4RT6Y0000"),
        "AKIA****************0000"
    );
    assert_eq!(redact(b"0123456789abcdefgh"), "01**************gh");
    assert_eq!(redact(b"short-pw"), "********");
    assert_eq!(redact(b"Tr0ub4dor&3xyz"), "********");
    let long = "x".repeat(5000);
    assert!(redact(long.as_bytes()).len() <= 40);
    // Control characters never reach a terminal.
    assert!(!redact(b"\x1b[31mAAAAAAAAAAAAAAAAAAAAAAAA\x1b").contains('\x1b'));
}

#[test]
fn findings_by_location_deleted_by_a_later_layer_and_config() {
    let s = scan();
    let gh = "token: ghp_wR4y9ojfljoQoaF1LlqsajAIxNKu8iS2G8NP\n";
    let layer = |digest: &str| LayerSource {
        digest: digest.into(),
        diff_id: None,
        media_type: None,
        size: None,
    };
    // Layer 0 writes two files; layer 1 deletes one and hides a directory.
    let mut v = s.layer(&layer("sha256:a"));
    for p in ["app/keep.txt", "app/gone.txt", "opt/d/x.txt"] {
        assert!(v.file(p, gh.len() as u64));
        v.data(gh.as_bytes());
        v.end_file();
    }
    v.finish();
    let mut v = s.layer(&layer("sha256:b"));
    v.removed("app/gone.txt", false);
    v.removed("opt/d", true);
    // A file that is only ever read partially (the visit is dropped: a
    // failed read) counts for nothing.
    v.finish();
    let mut failed = s.layer(&layer("sha256:c"));
    assert!(failed.file("tmp/x", gh.len() as u64));
    failed.data(gh.as_bytes());
    failed.end_file();
    drop(failed);
    let layers: Vec<Layer> = ["sha256:a", "sha256:b", "sha256:c"]
        .iter()
        .map(|d| Layer {
            digest: (*d).into(),
            diff_id: String::new(),
            media_type: String::new(),
            size: 0,
        })
        .collect();
    let config = crate::image::manifest::parse_config(
        br#"{"config": {"Env": ["PATH=/usr/bin", "GITLAB_TOKEN=glpat-I6bWHtP3fS2qHx6kwXoI"],
            "Labels": {"ci.token": "ghp_wR4y9ojfljoQoaF1LlqsajAIxNKu8iS2G8NP"}},
          "history": [{"created_by": "RUN |1 STRIPE=sk_live_IXGvOoNZYW2mZp0zVZomHFwU /bin/sh -c make"}],
          "rootfs": {"diff_ids": []}}"#,
    )
    .unwrap();
    let today = time::macros::date!(2026 - 12 - 03);
    let out = s.findings(&layers, &config, today).unwrap();
    let by: Vec<(String, String, bool)> = out
        .findings
        .iter()
        .map(|f| match &f.location {
            RiskLocation::File {
                path, later_layer, ..
            } => (
                f.rule_id.clone(),
                path.clone(),
                *later_layer == Some(LaterLayer::Deleted),
            ),
            RiskLocation::Config { field } => (f.rule_id.clone(), field.clone(), false),
            RiskLocation::Image => unreachable!(),
        })
        .collect();
    let want = |r: &str, p: &str, d: bool| (r.to_string(), p.to_string(), d);
    assert_eq!(
        by,
        vec![
            want("github-token", "/app/gone.txt", true),
            want("github-token", "/app/keep.txt", false),
            want("github-token", "/opt/d/x.txt", true),
            want("gitlab-token", "Env[1]", false),
            want("github-token", "Labels.ci.token", false),
            want("stripe-secret-key", "history[0].created_by", false),
        ]
    );
    let json = serde_json::to_string(&out).unwrap();
    for raw in [
        "ghp_wR4y9ojfljoQoaF1LlqsajAIxNKu8iS2G8NP",
        "glpat-I6bWHtP3fS2qHx6kwXoI",
        "sk_live_IXGvOoNZYW2mZp0zVZomHFwU",
    ] {
        assert!(!json.contains(&raw[4..]), "{json}");
    }
}

#[test]
fn policy_rules_disable_and_allow() {
    let policy: SecretsPolicy = serde_yaml_ng::from_str(
        r#"
fail_on: high
rules:
  - id: acme-key
    description: ACME internal API key
    severity: critical
    regex: 'acme_([a-f0-9]{32})'
    keywords: [acme_]
    paths: ['/srv/**']
disable: [jwt]
allow:
  - {rule: github-token, path: /app/fixtures/**, reason: test fixture token, expires: 2027-06-30}
  - {rule: gitlab-token, reason: revoked long ago, expires: 2020-01-01}
"#,
    )
    .unwrap();
    let s = SecretScan::new(&policy).unwrap();
    let acme = "k = acme_0123456789abcdef0123456789abcdef\n";
    assert_eq!(found_in(&s, "/srv/a.conf", acme.as_bytes(), 9).len(), 1);
    assert!(found_in(&s, "/etc/a.conf", acme.as_bytes(), 9).is_empty());
    let jwt = samples().into_iter().find(|x| x.0 == "jwt").unwrap().2;
    assert!(found_in(&s, "/x", jwt.as_bytes(), 9).is_empty());

    let gh = "ghp_wR4y9ojfljoQoaF1LlqsajAIxNKu8iS2G8NP glpat-I6bWHtP3fS2qHx6kwXoI\n";
    let mut v = s.layer(&LayerSource {
        digest: String::new(),
        diff_id: Some("sha256:d".into()),
        media_type: None,
        size: None,
    });
    for p in ["app/fixtures/t.txt", "app/real.txt"] {
        v.file(p, 10);
        v.data(gh.as_bytes());
        v.end_file();
    }
    v.finish();
    let layers = [Layer {
        digest: "sha256:blob".into(),
        diff_id: "sha256:d".into(),
        media_type: String::new(),
        size: 0,
    }];
    let today = time::macros::date!(2026 - 12 - 03);
    let out = s.findings(&layers, &ImageConfig::default(), today).unwrap();
    let ids: Vec<_> = out
        .findings
        .iter()
        .map(|f| (f.rule_id.as_str(), f.location.clone()))
        .collect();
    assert_eq!(out.allowed, 1, "{ids:?}");
    assert_eq!(out.findings.len(), 3, "{ids:?}");
    assert!(out.warnings.iter().any(|w| w.contains("expired")));
}

#[test]
fn bad_policies_are_refused_with_the_field() {
    let bad = |yaml: &str, want: &str| {
        let p: SecretsPolicy = serde_yaml_ng::from_str(yaml).unwrap();
        let e = SecretScan::new(&p).err().expect(yaml).to_string();
        assert!(e.contains(want), "{e}");
    };
    bad(
        "rules: [{id: x, severity: high, regex: '(', keywords: [abc]}]",
        "rules[0]: regex does not compile",
    );
    // Compiles to far more than the size limit.
    bad(
        r"rules: [{id: x, severity: high, regex: '\w{1000}\w{1000}', keywords: [abc]}]",
        "rules[0]",
    );
    bad(
        "rules: [{id: x, severity: high, regex: 'a', keywords: []}]",
        "keywords",
    );
    bad(
        "rules: [{id: x, severity: high, regex: 'a', keywords: [ab]}]",
        "shorter",
    );
    bad(
        "rules: [{id: x, severity: huge, regex: 'abc', keywords: [abc]}]",
        "severity",
    );
    bad(
        "allow: [{rule: jwt, reason: '  ', expires: 2027-01-01}]",
        "reason",
    );
    bad(
        "allow: [{rule: jwt, reason: r, expires: 01/01/2027}]",
        "expires",
    );
    assert!(serde_yaml_ng::from_str::<SecretsPolicy>("allow: [{rule: jwt, reason: r}]").is_err());
    assert!(serde_yaml_ng::from_str::<SecretsPolicy>("rulez: []").is_err());
}

#[test]
fn the_skip_list_covers_documentation_and_package_tests() {
    for p in [
        "/usr/share/doc/openssl/examples/key.pem",
        "/usr/lib/python3.11/test/keycert.pem",
        "/usr/local/lib/python3.12/test/certdata/keycert.pem",
        "/usr/lib/node_modules/npm/node_modules/x/test/fixtures/k.pem",
        "/usr/local/go/src/crypto/tls/testdata/k.pem",
        "/app/node_modules/jsonwebtoken/README.md",
    ] {
        assert!(skip::path_skipped(p), "{p}");
    }
    for p in [
        "/etc/ssl/private/ssl-cert-snakeoil.key",
        "/app/test.pem",
        "/root/.npmrc",
        "/usr/share/app/key.pem",
    ] {
        assert!(!skip::path_skipped(p), "{p}");
    }
}

#[test]
fn every_builtin_regex_and_glob_compiles() {
    // They compile on a rule's first keyword hit, so a bad one would
    // panic in a scan: compile them all here.
    let s = scan();
    for (r, b) in s.rules.rules.iter().zip(rules::BUILTIN) {
        assert_eq!(r.force(), b.patterns.len(), "{}", b.id);
    }
}

#[test]
fn a_rule_compiles_its_regexes_only_on_its_first_keyword_hit() {
    // Compiling every regex up front was most of a small image's scan
    // (issue 13); text without keywords must compile none of them.
    let s = scan();
    let compiled = |s: &SecretScan| -> Vec<String> {
        let r = s.rules.rules.iter().filter(|r| r.compiled());
        r.map(|r| r.id.clone()).collect()
    };
    assert!(compiled(&s).is_empty());
    found_in(&s, "/etc/motd", b"nothing secret here\n", usize::MAX);
    assert!(compiled(&s).is_empty());
    let found = found_in(&s, "/etc/app", b"x glpat-abcdefghij0123456789ABCD\n", 7);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(compiled(&s), ["gitlab-token"]);
}

#[test]
fn keyword_hits_far_apart_cost_one_regex_run_each() {
    // A megabyte of keywords: the scan stays linear (merged windows).
    let s = scan();
    let text = "AKIA eyJ password ://\n".repeat(50_000);
    let t = std::time::Instant::now();
    let found = found_in(&s, "/x", text.as_bytes(), 65_536);
    assert!(found.is_empty());
    assert!(
        t.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn the_debian_snakeoil_key_is_reported() {
    // Generated by ssl-cert's postinst at build time: a real key, the same
    // in every container of the image (docs/secrets.md).
    let s = scan();
    let key = samples()
        .into_iter()
        .find(|x| x.1 == "/etc/app/tls.key")
        .unwrap()
        .2
        .replace("RSA PRIVATE KEY", "PRIVATE KEY");
    let found = found_in(
        &s,
        "/etc/ssl/private/ssl-cert-snakeoil.key",
        key.as_bytes(),
        4096,
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "private-key");
    assert_eq!(found[0].1, 2);
}

// ---------------------------------------- overwritten and deleted later

const GH: &str = "token: ghp_wR4y9ojfljoQoaF1LlqsajAIxNKu8iS2G8NP\n";

/// One layer's entries, as the layer reader shows them to a visit.
enum Op<'a> {
    /// A regular file holding `GH`.
    Secret(&'a str),
    /// A regular file with nothing secret.
    Plain(&'a str),
    Dir(&'a str),
    /// A symlink, hard link or device.
    Other(&'a str),
    Whiteout(&'a str),
    Opaque(&'a str),
}

/// (path, later_layer) of each file finding after reading `layers` (in
/// the order given; indices are the manifest's).
fn later_of(layers: &[&[Op<'_>]], read_order: &[usize]) -> Vec<(String, Option<LaterLayer>)> {
    let s = scan();
    let digest = |i: usize| format!("sha256:{i:064x}");
    for &i in read_order {
        let mut v = s.layer(&LayerSource {
            digest: digest(i),
            diff_id: None,
            media_type: None,
            size: None,
        });
        for op in layers[i] {
            match op {
                Op::Secret(p) | Op::Plain(p) => {
                    let body = if matches!(op, Op::Secret(_)) {
                        GH
                    } else {
                        "x=1\n"
                    };
                    if v.file(p, body.len() as u64) {
                        v.data(body.as_bytes());
                    }
                    v.end_file();
                }
                Op::Dir(p) => v.entry(p, true),
                Op::Other(p) => v.entry(p, false),
                Op::Whiteout(p) => v.removed(p, false),
                Op::Opaque(p) => v.removed(p, true),
            }
        }
        v.finish();
    }
    let manifest: Vec<Layer> = (0..layers.len())
        .map(|i| Layer {
            digest: digest(i),
            diff_id: String::new(),
            media_type: String::new(),
            size: 0,
        })
        .collect();
    let config = crate::image::manifest::parse_config(br#"{"rootfs": {"diff_ids": []}}"#).unwrap();
    let today = time::macros::date!(2026 - 12 - 03);
    s.findings(&manifest, &config, today)
        .unwrap()
        .findings
        .into_iter()
        .filter_map(|f| match f.location {
            RiskLocation::File {
                path, later_layer, ..
            } => Some((path, later_layer)),
            _ => None,
        })
        .collect()
}

fn at(p: &str, l: Option<LaterLayer>) -> (String, Option<LaterLayer>) {
    (p.to_string(), l)
}

#[test]
fn a_secret_a_later_layer_overwrote_says_overwritten_not_deleted() {
    use LaterLayer::{Deleted, Overwritten};
    let base: &[Op<'_>] = &[
        Op::Secret("app/.env"),
        Op::Secret("app/link.env"),
        Op::Secret("app/dir.env"),
        Op::Secret("app/kept.env"),
        Op::Secret("app/gone.env"),
    ];
    let top: &[Op<'_>] = &[
        // A clean file, a symlink and a directory replace three of them.
        Op::Plain("app/.env"),
        Op::Other("app/link.env"),
        Op::Dir("app/dir.env"),
        Op::Whiteout("app/gone.env"),
        // A directory over a directory keeps what is below it.
        Op::Dir("app"),
    ];
    let want = vec![
        at("/app/.env", Some(Overwritten)),
        at("/app/dir.env", Some(Overwritten)),
        at("/app/gone.env", Some(Deleted)),
        at("/app/kept.env", None),
        at("/app/link.env", Some(Overwritten)),
    ];
    // Layers are read in parallel: the top layer may finish first.
    assert_eq!(later_of(&[base, top], &[0, 1]), want);
    assert_eq!(later_of(&[base, top], &[1, 0]), want);
}

#[test]
fn a_replaced_parent_directory_or_an_opaque_one_deletes_what_was_below() {
    use LaterLayer::Deleted;
    let base: &[Op<'_>] = &[
        Op::Secret("srv/a/key.txt"),
        Op::Secret("srv/b/c/key.txt"),
        Op::Secret("opt/o/key.txt"),
        Op::Secret("srv/ab/key.txt"),
    ];
    let top: &[Op<'_>] = &[
        // A symlink where a directory was, a file where a grandparent was.
        Op::Other("srv/a"),
        Op::Plain("srv/b"),
        // An opaque directory hides lower content, its own new file stays.
        Op::Dir("opt/o"),
        Op::Opaque("opt/o"),
        Op::Plain("opt/o/key.txt"),
    ];
    assert_eq!(
        later_of(&[base, top], &[1, 0]),
        vec![
            at("/opt/o/key.txt", Some(Deleted)),
            at("/srv/a/key.txt", Some(Deleted)),
            // `srv/a` is not a parent of `srv/ab`.
            at("/srv/ab/key.txt", None),
            at("/srv/b/c/key.txt", Some(Deleted)),
        ]
    );
}

#[test]
fn the_first_later_change_wins_and_the_same_layer_counts_too() {
    use LaterLayer::{Deleted, Overwritten};
    let l0: &[Op<'_>] = &[
        Op::Secret("etc/app.conf"),
        // The same path twice in one layer: the last entry wins.
        Op::Secret("etc/twice.conf"),
        Op::Plain("etc/twice.conf"),
        // A file, then a symlink at its directory, in the same layer.
        Op::Secret("var/s/k.txt"),
        Op::Other("var/s"),
    ];
    // Overwritten in layer 1, deleted in layer 2: layer 1 hid it first.
    let l1: &[Op<'_>] = &[Op::Plain("etc/app.conf")];
    let l2: &[Op<'_>] = &[Op::Whiteout("etc/app.conf"), Op::Secret("etc/new.conf")];
    assert_eq!(
        later_of(&[l0, l1, l2], &[2, 1, 0]),
        vec![
            at("/etc/app.conf", Some(Overwritten)),
            at("/etc/twice.conf", Some(Overwritten)),
            at("/var/s/k.txt", Some(Deleted)),
            at("/etc/new.conf", None),
        ]
    );
}

#[test]
fn what_a_layer_wrote_is_remembered_as_hashes_within_a_cap() {
    let mut w = later::Written::default();
    for i in 0..later::MAX_WRITTEN as u64 + 10 {
        w.add(i, false);
    }
    assert!(w.overflow);
    w.seal();
    assert_eq!(w.change_to(5, &[]), Some(LaterLayer::Overwritten));
    assert_eq!(w.change_to(u64::MAX, &[]), None);
    assert_eq!(
        later::ancestors("a/b/c").collect::<Vec<_>>(),
        vec!["a", "a/b"]
    );
}
