//! The built-in secret rules. Each is a public fact about a credential's
//! format (a vendor prefix, a file a tool keeps its login in); the table in
//! `docs/secrets.md` lists them with their reasons.
//!
//! A rule has keywords (ASCII case-insensitive, for the Aho–Corasick
//! pre-filter: a regex runs only on the lines around a keyword), one or more
//! patterns (capture group 1, when present, is the secret), optional path
//! globs (the rule applies only to those files, never to the image config)
//! and an optional check that rejects look-alikes the regex cannot (hex
//! digests, placeholders).

use base64::Engine;

use crate::inspector::findings::Severity;

pub struct Builtin {
    pub id: &'static str,
    pub title: &'static str,
    pub severity: Severity,
    pub keywords: &'static [&'static str],
    pub patterns: &'static [&'static str],
    pub paths: &'static [&'static str],
    pub check: Option<fn(&[u8]) -> bool>,
    pub remediation: &'static str,
}

const ROTATE: &str = "Anyone who can pull the image can read this credential, \
    even from a layer a later step deleted it in. Revoke and rotate it, then \
    rebuild without it: pass secrets at run time (a secrets manager, or \
    `RUN --mount=type=secret` at build time), never in files, ENV, labels or \
    build args.";

/// In table order: a specific rule before a general one, because a secret
/// two rules match is reported once, by the first (a service-account key
/// is not also a bare private key).
pub const BUILTIN: &[Builtin] = &[
    Builtin {
        id: "gcp-service-account-key",
        title: "Google Cloud service-account key file",
        severity: Severity::Critical,
        keywords: &["\"private_key\""],
        patterns: &[
            r#"(?s)"private_key"\s*:\s*"-----BEGIN[ A-Z]{0,20}PRIVATE KEY-----\\n([A-Za-z0-9+/=]{40,})[^"]*"\s*,\s*"client_email"\s*:\s*"[^"@\s]+@[^"\s]+\.gserviceaccount\.com""#,
        ],
        paths: &[],
        check: None,
        remediation: ROTATE,
    },
    Builtin {
        id: "private-key",
        title: "Private key (PEM, OpenSSH or PGP)",
        severity: Severity::High,
        keywords: &["PRIVATE KEY"],
        // The header, optional RFC 1421 headers (Proc-Type, DEK-Info, PGP
        // Version/Comment), then a line of base64 body: a header alone is a
        // string in a parser's source code, not a key. Line breaks may be
        // real or `\n` escapes (a key inside JSON or a string literal).
        patterns: &[
            r"-----BEGIN[ A-Z0-9]{0,30}PRIVATE KEY(?: BLOCK)?-----[ \t]*(?:\r?\n|\\r?\\n)(?:[A-Za-z-]+:[^\r\n\\]*(?:\r?\n|\\r?\\n))*(?:\r?\n|\\r?\\n)?([A-Za-z0-9+/=]{40,})",
        ],
        paths: &[],
        check: None,
        remediation: "A private key in the image lets anyone who pulls it \
            impersonate the service or decrypt its traffic. Remove it from \
            every layer, rotate it, and mount keys at run time.",
    },
    Builtin {
        id: "aws-access-key-id",
        title: "AWS access key id",
        severity: Severity::Medium,
        keywords: &["AKIA", "ASIA", "ABIA", "ACCA"],
        patterns: &[r"\b((?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b"],
        paths: &[],
        check: None,
        remediation: ROTATE,
    },
    Builtin {
        id: "aws-secret-access-key",
        title: "AWS secret access key",
        severity: Severity::Critical,
        keywords: &[
            "secret_access_key",
            "secretaccesskey",
            "secret-access-key",
            "aws_secret",
            "AKIA",
            "ASIA",
        ],
        // After an aws_secret_access_key-like name, or on its own near an
        // access key id (the keyword window is the lines around it).
        patterns: &[
            r#"(?i:aws)?[_-]?(?i:secret[_-]?access[_-]?key|aws[_-]?secret(?:[_-]?key)?)["']?\s*(?:[:=]|=>)\s*["']?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"#,
            r"(?:^|[^A-Za-z0-9/+=])([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)",
        ],
        paths: &[],
        check: Some(aws_secret_shape),
        remediation: ROTATE,
    },
    Builtin {
        id: "aws-session-token",
        title: "AWS session token",
        severity: Severity::High,
        keywords: &[
            "aws_session_token",
            "aws_security_token",
            "sessiontoken",
            "IQoJb3JpZ2lu",
            "FwoGZXIvYXdz",
        ],
        patterns: &[
            r#"(?i:aws[_-]?session[_-]?token|aws[_-]?security[_-]?token|sessiontoken)["']?\s*(?:[:=]|=>)\s*["']?([A-Za-z0-9/+=]{100,})"#,
            r"\b((?:IQoJb3JpZ2lu|FwoGZXIvYXdz)[A-Za-z0-9/+=]{100,})",
        ],
        paths: &[],
        check: None,
        remediation: ROTATE,
    },
    Builtin {
        id: "github-token",
        title: "GitHub token",
        severity: Severity::Critical,
        keywords: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
        patterns: &[
            r"\b((?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36})\b",
            r"\b(github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})\b",
        ],
        paths: &[],
        check: None,
        remediation: ROTATE,
    },
    Builtin {
        id: "gitlab-token",
        title: "GitLab personal access token",
        severity: Severity::Critical,
        keywords: &["glpat-"],
        patterns: &[r"\b(glpat-[A-Za-z0-9_-]{20,})"],
        paths: &[],
        check: None,
        remediation: ROTATE,
    },
    Builtin {
        id: "slack-token",
        title: "Slack token",
        severity: Severity::High,
        keywords: &["xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-"],
        patterns: &[r"\b(xox[baprs]-[0-9A-Za-z]{8,}-[0-9A-Za-z-]{8,})"],
        paths: &[],
        check: None,
        remediation: ROTATE,
    },
    Builtin {
        id: "slack-webhook",
        title: "Slack incoming webhook URL",
        severity: Severity::Medium,
        keywords: &["hooks.slack.com"],
        patterns: &[
            r"https://hooks\.slack\.com/services/(T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{20,})",
        ],
        paths: &[],
        check: None,
        remediation: ROTATE,
    },
    Builtin {
        id: "stripe-secret-key",
        title: "Stripe live secret or restricted key",
        severity: Severity::Critical,
        keywords: &["sk_live_", "rk_live_"],
        patterns: &[r"\b((?:sk|rk)_live_[A-Za-z0-9]{20,})"],
        paths: &[],
        check: None,
        remediation: ROTATE,
    },
    Builtin {
        id: "google-api-key",
        title: "Google API key",
        severity: Severity::High,
        keywords: &["AIza"],
        patterns: &[r"\b(AIza[0-9A-Za-z_-]{35})(?:[^0-9A-Za-z_-]|$)"],
        paths: &[],
        check: None,
        remediation: ROTATE,
    },
    Builtin {
        id: "npm-token",
        title: "npm access token",
        severity: Severity::High,
        keywords: &["npm_"],
        patterns: &[r"\b(npm_[A-Za-z0-9]{36})\b"],
        paths: &[],
        check: Some(mixed_token),
        remediation: ROTATE,
    },
    Builtin {
        id: "pypi-token",
        title: "PyPI API token",
        severity: Severity::High,
        keywords: &["pypi-AgEIcHlwaS5vcmc"],
        patterns: &[r"\b(pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,})"],
        paths: &[],
        check: None,
        remediation: ROTATE,
    },
    Builtin {
        id: "dockerhub-token",
        title: "Docker Hub personal access token",
        severity: Severity::High,
        keywords: &["dckr_pat_"],
        patterns: &[r"\b(dckr_pat_[A-Za-z0-9_-]{27,})"],
        paths: &[],
        check: None,
        remediation: ROTATE,
    },
    Builtin {
        id: "jwt",
        title: "JSON Web Token",
        severity: Severity::Medium,
        keywords: &["eyJ"],
        // Signed (three parts, a signature) with a JSON header naming an
        // algorithm other than `none`: a bearer token usable until it
        // expires. See docs/secrets.md for why HS*-only was not chosen.
        patterns: &[r"\b(eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,})"],
        paths: &[],
        check: Some(signed_jwt),
        remediation: ROTATE,
    },
    Builtin {
        id: "docker-config-auth",
        title: "Registry credentials in a Docker config",
        severity: Severity::High,
        keywords: &["\"auth\"", "\"identitytoken\""],
        patterns: &[r#""(?:auth|identitytoken)"\s*:\s*"([A-Za-z0-9+/=._-]{8,})""#],
        paths: &[
            "**/.docker/config.json",
            "**/.dockercfg",
            "**/containers/auth.json",
        ],
        check: None,
        remediation: ROTATE,
    },
    Builtin {
        id: "npmrc-auth",
        title: "npm registry credentials in .npmrc",
        severity: Severity::High,
        keywords: &["_authToken", "_auth", "_password"],
        // `${NPM_TOKEN}` (read from the environment at run time) is the
        // right way and is not a finding: the value may not start with `$`.
        patterns: &[r#"(?:_authToken|_auth|_password)\s*=\s*["']?([^\s"'$][^\s"']{7,})"#],
        paths: &["**/.npmrc", "**/npmrc", "**/.yarnrc", "**/.yarnrc.yml"],
        check: None,
        remediation: ROTATE,
    },
    Builtin {
        id: "pypirc-password",
        title: "Package index password in .pypirc",
        severity: Severity::High,
        keywords: &["password"],
        patterns: &[r"(?m)^[ \t]*password[ \t]*[:=][ \t]*([^\s$][^\s]{5,})"],
        paths: &["**/.pypirc"],
        check: None,
        remediation: ROTATE,
    },
    Builtin {
        id: "netrc-password",
        title: "Password in .netrc",
        severity: Severity::High,
        keywords: &["password"],
        patterns: &[r"\bpassword[ \t]+([^\s$][^\s]{3,})"],
        paths: &["**/.netrc", "**/_netrc"],
        check: None,
        remediation: ROTATE,
    },
    Builtin {
        id: "git-credentials",
        title: "Password or token in git credentials",
        severity: Severity::High,
        keywords: &["://"],
        patterns: &[r"[a-z][a-z0-9+.-]*://[^:/\s@]+:([^@\s/]{3,})@[^\s/]+"],
        paths: &["**/.git-credentials", "**/.config/git/credentials"],
        check: None,
        remediation: ROTATE,
    },
    Builtin {
        id: "database-url",
        title: "Database URL with a password",
        severity: Severity::High,
        keywords: &[
            "postgres://",
            "postgresql://",
            "mysql://",
            "mariadb://",
            "mongodb://",
            "mongodb+srv://",
            "redis://",
            "rediss://",
            "amqp://",
            "amqps://",
        ],
        patterns: &[
            r#"\b(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?)://[^:/\s@"'<>]*:([^@\s"'/<>]{3,})@[^\s"'/<>]+"#,
        ],
        paths: &[],
        check: Some(not_placeholder),
        remediation: ROTATE,
    },
];

/// A 40-character AWS secret is random base64: mixed case and digits. A
/// SHA-1 in hex, a path or a word run is not.
fn aws_secret_shape(v: &[u8]) -> bool {
    let lower = v.iter().any(u8::is_ascii_lowercase);
    let upper = v.iter().any(u8::is_ascii_uppercase);
    let digit = v.iter().any(u8::is_ascii_digit);
    let hex = v.iter().all(u8::is_ascii_hexdigit);
    lower && upper && digit && !hex && not_placeholder(v)
}

/// A random token has digits and letters of both cases; `npm_` followed by
/// an identifier (`npm_config_cache_…`) does not.
fn mixed_token(v: &[u8]) -> bool {
    let body = v.get(4..).unwrap_or_default();
    body.iter().any(u8::is_ascii_digit)
        && body.iter().any(u8::is_ascii_uppercase)
        && body.iter().any(u8::is_ascii_lowercase)
}

/// Documentation writes `user:password@`, `:${DB_PASSWORD}@`, `:****@`.
fn not_placeholder(v: &[u8]) -> bool {
    let s = String::from_utf8_lossy(v).to_ascii_lowercase();
    const WORDS: &[&str] = &[
        "password", "passwd", "pass", "secret", "changeme", "example", "xxx", "***", "...", "<",
        "{", "$", "%s", "%(",
    ];
    !WORDS.iter().any(|w| s.contains(w))
}

/// Header and payload are base64url JSON objects, the header names an
/// algorithm, and it is not `none` (an unsigned token grants nothing).
fn signed_jwt(v: &[u8]) -> bool {
    let mut parts = v.split(|b| *b == b'.');
    let (Some(h), Some(p)) = (parts.next(), parts.next()) else {
        return false;
    };
    let decode = |part: &[u8]| -> Option<serde_json::Value> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .ok()?;
        serde_json::from_slice::<serde_json::Value>(&raw)
            .ok()
            .filter(|v| v.is_object())
    };
    let Some(header) = decode(h) else {
        return false;
    };
    let alg = header.get("alg").and_then(|a| a.as_str()).unwrap_or("none");
    !alg.eq_ignore_ascii_case("none") && decode(p).is_some()
}
