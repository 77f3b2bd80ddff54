use super::*;
use crate::image::manifest::HistoryEntry;

/// A config that passes every rule: non-root user, a health check, nothing
/// secret, no SSH, no remote ADD.
fn clean() -> ImageConfig {
    ImageConfig {
        user: "10001".into(),
        env: vec![
            "PATH=/usr/bin".into(),
            "GPG_KEY=A035C8C19219BA821ECEA86B64E628F8D684696D".into(),
        ],
        healthcheck: Some(vec!["CMD".into(), "true".into()]),
        history: vec![HistoryEntry {
            created_by: Some("COPY app /app # buildkit".into()),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn layers() -> Vec<String> {
    vec!["sha256:l0".into(), "sha256:l1".into()]
}

fn run_with(
    config: &ImageConfig,
    entries: Option<&BTreeMap<String, Notable>>,
    packages: &[Package],
    base_layers: Option<usize>,
) -> RiskOutput {
    let annotations = BTreeMap::new();
    let digests = layers();
    check(&ConfigInput {
        config,
        annotations: &annotations,
        entries,
        entries_dropped: 0,
        layer_digests: &digests,
        packages,
        base_layers,
    })
    .unwrap()
}

fn ids(out: &RiskOutput) -> Vec<&str> {
    out.findings.iter().map(|f| f.rule_id.as_str()).collect()
}

#[test]
fn a_clean_config_has_no_findings() {
    let out = run_with(&clean(), Some(&BTreeMap::new()), &[], None);
    assert!(out.findings.is_empty(), "{:?}", out.findings);
    assert!(out.warnings.is_empty());
}

#[test]
fn root_user_in_every_spelling() {
    for user in ["", " ", "root", "0", "00", "0:0", "root:staff", "0:1000"] {
        let mut c = clean();
        c.user = user.into();
        let out = run_with(&c, None, &[], None);
        assert_eq!(ids(&out), ["CIS-DI-0001"], "user {user:?}");
        assert!(
            matches!(&out.findings[0].location, RiskLocation::Config { field } if field == "User")
        );
    }
    for user in ["10001", "app", "1000:0", "nobody", "10"] {
        let mut c = clean();
        c.user = user.into();
        assert!(
            run_with(&c, None, &[], None).findings.is_empty(),
            "user {user:?}"
        );
    }
}

#[test]
fn secret_env_names_are_reported_without_their_values() {
    let mut c = clean();
    c.env = vec![
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        "DB_PASSWORD=hunter2-very-secret".into(),
        "GITHUB_TOKEN=ghp_abcdefghijklmnop".into(),
        "stripe_api_key=sk_live_zzz".into(),
        // Not secrets: no value, a reference, a public key's fingerprint,
        // an id, the working directory.
        "EMPTY_TOKEN=".into(),
        "BLANK_SECRET=   ".into(),
        "POSTGRES_PASSWORD_FILE=/run/secrets/pg".into(),
        "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE".into(),
        "GPG_KEYS=B42F6819007F00F88E364FD4036A9C25BF357DD4".into(),
        "PWD=/app".into(),
        "KEYBOARD=us".into(),
        "NO_EQUALS_SECRET".into(),
    ];
    let out = run_with(&c, None, &[], None);
    assert_eq!(ids(&out), ["CIS-DI-0010"; 4]);
    let fields: Vec<String> = out
        .findings
        .iter()
        .map(|f| match &f.location {
            RiskLocation::Config { field } => field.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(fields, ["Env[0]", "Env[1]", "Env[2]", "Env[3]"]);
    let all = serde_json::to_string(&out).unwrap();
    for value in ["wJalrXUtnFEMI", "hunter2", "ghp_abc", "sk_live"] {
        assert!(!all.contains(value), "{value} leaked: {all}");
    }
    assert_eq!(
        out.findings[0].excerpt.as_deref(),
        Some("AWS_SECRET_ACCESS_KEY=********")
    );
}

#[test]
fn secret_env_name_rules() {
    for yes in [
        "API_KEY",
        "x-api-key",
        "APIKEY",
        "CLIENT_SECRET",
        "NPM_TOKEN",
        "MYSQL_ROOT_PASSWORD",
        "SSH_PASSPHRASE",
        "ENCRYPTION_KEY",
        "GOOGLE_CREDENTIALS",
    ] {
        assert!(is_secret_env_name(yes), "{yes}");
    }
    for no in [
        "GPG_KEY",
        "KEY",
        "PATH",
        "SECRET_FILE",
        "TOKEN_URL",
        "PASSWORD_LENGTH",
        "AWS_ACCESS_KEY_ID",
        "HOME",
        "",
    ] {
        assert!(!is_secret_env_name(no), "{no}");
    }
}

fn note(layer: usize, mode: u32, dir: bool) -> Notable {
    Notable { layer, mode, dir }
}

#[test]
fn setuid_files_of_the_image_own_layers() {
    let entries: BTreeMap<String, Notable> = [
        ("usr/bin/passwd".to_owned(), note(0, 0o4755, false)),
        ("usr/local/bin/helper".to_owned(), note(1, 0o4755, false)),
        ("usr/bin/wall".to_owned(), note(1, 0o2755, false)),
        // A setgid directory is not an executable.
        ("var/mail".to_owned(), note(1, 0o2775, true)),
    ]
    .into();
    // Base unknown: every layer is the image's.
    let out = run_with(&clean(), Some(&entries), &[], None);
    assert_eq!(ids(&out), ["CIS-DI-0008"; 3]);
    // One base layer: only layer 1's files.
    let out = run_with(&clean(), Some(&entries), &[], Some(1));
    let titles: Vec<&str> = out.findings.iter().map(|f| f.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "setgid file /usr/bin/wall (mode 2755)",
            "setuid file /usr/local/bin/helper (mode 4755)"
        ]
    );
    let RiskLocation::File {
        layer,
        layer_digest,
        path,
        ..
    } = &out.findings[1].location
    else {
        panic!()
    };
    assert_eq!(
        (*layer, layer_digest.as_str(), path.as_str()),
        (1, "sha256:l1", "/usr/local/bin/helper")
    );
}

#[test]
fn world_writable_outside_the_temporary_directories() {
    let entries: BTreeMap<String, Notable> = [
        ("app/data".to_owned(), note(1, 0o777, true)),
        ("app/config.yml".to_owned(), note(1, 0o666, false)),
        ("tmp/x".to_owned(), note(1, 0o666, false)),
        ("var/tmp/cache".to_owned(), note(1, 0o777, true)),
        ("dev/shm/y".to_owned(), note(1, 0o666, false)),
        ("tmpfoo/z".to_owned(), note(1, 0o666, false)),
        // Sticky directories are shared scratch space by design.
        ("srv/drop".to_owned(), note(1, 0o1777, true)),
    ]
    .into();
    let out = run_with(&clean(), Some(&entries), &[], None);
    let titles: Vec<&str> = out.findings.iter().map(|f| f.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "world-writable file /app/config.yml (mode 0666)",
            "world-writable directory /app/data (mode 0777)",
            "world-writable file /tmpfoo/z (mode 0666)",
        ]
    );
    assert!(
        out.findings
            .iter()
            .all(|f| f.rule_id == "SG-CONFIG-WORLD-WRITABLE")
    );
}

fn package(name: &str, eco: Ecosystem) -> Package {
    let mut p = Package::language(
        eco,
        name.into(),
        "1:9.2p1-2".into(),
        "var/lib/dpkg/status",
        1,
    );
    p.arch = Some("amd64".into());
    p
}

#[test]
fn ssh_is_one_finding_with_all_its_evidence() {
    let mut c = clean();
    c.exposed_ports = vec!["22/tcp".into(), "8080/tcp".into()];
    let entries: BTreeMap<String, Notable> =
        [("usr/sbin/sshd".to_owned(), note(1, 0o755, false))].into();
    let pkgs = [package("openssh-server", Ecosystem::Deb)];
    let out = run_with(&c, Some(&entries), &pkgs, None);
    assert_eq!(ids(&out), ["SG-CONFIG-SSH"]);
    assert_eq!(
        out.findings[0].title,
        "SSH server in the image: package openssh-server 1:9.2p1-2 installed, /usr/sbin/sshd present, port 22/tcp exposed"
    );
    // Each piece of evidence alone is enough.
    assert_eq!(ids(&run_with(&c, None, &[], None)), ["SG-CONFIG-SSH"]);
    assert_eq!(
        ids(&run_with(&clean(), Some(&entries), &[], None)),
        ["SG-CONFIG-SSH"]
    );
    assert_eq!(
        ids(&run_with(&clean(), None, &pkgs, None)),
        ["SG-CONFIG-SSH"]
    );
    // A language package of that name is not the daemon.
    let npm = [package("openssh-server", Ecosystem::Npm)];
    assert!(run_with(&clean(), None, &npm, None).findings.is_empty());
    // Other ports are not SSH.
    let mut c = clean();
    c.exposed_ports = vec!["2222/tcp".into(), "220/tcp".into()];
    assert!(run_with(&c, None, &[], None).findings.is_empty());
}

#[test]
fn add_of_a_remote_url_in_history() {
    let mut c = clean();
    c.history = vec![
        HistoryEntry {
            created_by: Some(
                "/bin/sh -c #(nop) ADD https://user:pw@example.com/a.tgz?token=zz in /opt".into(),
            ),
            ..Default::default()
        },
        HistoryEntry {
            created_by: Some("ADD --chown=1:1 http://example.com/b.tar /b # buildkit".into()),
            ..Default::default()
        },
        HistoryEntry {
            created_by: Some("ADD app.tgz /app # buildkit".into()),
            ..Default::default()
        },
        HistoryEntry {
            created_by: Some("RUN curl https://example.com | sh # buildkit".into()),
            ..Default::default()
        },
    ];
    let out = run_with(&c, None, &[], None);
    let titles: Vec<&str> = out.findings.iter().map(|f| f.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "ADD of a remote URL: https://example.com/a.tgz",
            "ADD of a remote URL: http://example.com/b.tar",
        ]
    );
    assert!(!serde_json::to_string(&out).unwrap().contains("pw@"));
    assert!(!serde_json::to_string(&out).unwrap().contains("token=zz"));
}

#[test]
fn healthcheck_missing_or_disabled() {
    let mut c = clean();
    c.healthcheck = None;
    assert_eq!(ids(&run_with(&c, None, &[], None)), ["CIS-DI-0006"]);
    c.healthcheck = Some(vec!["NONE".into()]);
    assert_eq!(ids(&run_with(&c, None, &[], None)), ["CIS-DI-0006"]);
    c.healthcheck = Some(vec!["CMD-SHELL".into(), "curl -f localhost".into()]);
    assert!(run_with(&c, None, &[], None).findings.is_empty());
}

#[test]
fn mutable_base_references() {
    let d = format!("sha256:{}", "a".repeat(64));
    let cases: &[(&str, Option<&str>, bool)] = &[
        ("docker.io/library/debian:latest", None, true),
        ("debian", None, true),
        ("debian:bookworm", None, true),
        ("localhost:5000/base", None, true),
        ("debian:bookworm", Some(&d), false),
        ("debian:latest", Some(&d), true),
    ];
    for (name, digest, fires) in cases {
        let mut c = clean();
        c.labels.insert(BASE_NAME_ANNOTATION.into(), (*name).into());
        if let Some(d) = digest {
            c.labels.insert(
                crate::image::manifest::BASE_DIGEST_ANNOTATION.into(),
                (*d).into(),
            );
        }
        let out = run_with(&c, None, &[], None);
        let want: &[&str] = if *fires {
            &["SG-CONFIG-MUTABLE-BASE"]
        } else {
            &[]
        };
        assert_eq!(ids(&out), want, "{name} {digest:?}");
    }
    let pinned = format!("debian:bookworm@{d}");
    let mut c = clean();
    c.labels.insert(BASE_NAME_ANNOTATION.into(), pinned);
    assert!(run_with(&c, None, &[], None).findings.is_empty());
}

#[test]
fn findings_per_rule_are_capped() {
    let entries: BTreeMap<String, Notable> = (0..MAX_PER_RULE + 7)
        .map(|i| (format!("opt/bin/s{i:04}"), note(1, 0o4755, false)))
        .collect();
    let out = run_with(&clean(), Some(&entries), &[], None);
    assert_eq!(out.findings.len(), MAX_PER_RULE);
    assert_eq!(
        out.warnings,
        [format!(
            "configuration rule CIS-DI-0008: 7 more findings than the {MAX_PER_RULE} listed"
        )]
    );
}

#[test]
fn every_rule_is_documented_once() {
    let mut seen = std::collections::BTreeSet::new();
    for r in RULES {
        assert!(seen.insert(r.id), "{} twice", r.id);
        assert!(r.remediation.len() > 40, "{}", r.id);
    }
    let doc = include_str!("../../../docs/risks-config.md");
    for r in RULES {
        assert!(
            doc.contains(&format!("`{}`", r.id)),
            "{} missing from docs/risks-config.md",
            r.id
        );
    }
}
