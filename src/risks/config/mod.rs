//! Image configuration defects (NIST SP 800-190 §4.1.3), read from the
//! image config and the notable entries the single pass over the layers
//! recorded ([`crate::image::fs::Notable`]): nothing here reads a layer
//! again.
//!
//! Rule ids follow the CIS Docker Benchmark image checks as dockle numbers
//! them (`CIS-DI-0001` is CIS 4.1, …); the checks CIS has no number for use
//! `SG-CONFIG-…`. Every rule is listed in [`RULES`] with its why and fix
//! (docs/risks-config.md shows the same table).
//!
//! Everything read here is the image author's, so hostile: an `Env` value
//! is never copied into a finding, and the per-rule count of findings is
//! capped ([`MAX_PER_RULE`]).

use std::collections::BTreeMap;

use crate::cancel::{self, Cancelled};
use crate::catalog::{Ecosystem, Package};
use crate::image::fs::Notable;
use crate::image::manifest::{BASE_NAME_ANNOTATION, ImageConfig};
use crate::inspector::findings::Severity;

use super::{RiskFinding, RiskKind, RiskLocation, RiskOutput};

#[cfg(test)]
mod tests;

/// Findings of one rule beyond this many are counted in a warning instead:
/// an image of a million setuid files makes a bounded report.
pub const MAX_PER_RULE: usize = 50;

/// One configuration rule, as documented.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub id: &'static str,
    pub title: &'static str,
    pub severity: Severity,
    /// Why it matters and how to fix it.
    pub remediation: &'static str,
}

pub const RUNS_AS_ROOT: Rule = Rule {
    id: "CIS-DI-0001",
    title: "the image runs as root",
    severity: Severity::High,
    remediation: "A process that escapes as root owns the host's view of the container (CIS Docker Benchmark 4.1). Create an unprivileged user and end the Dockerfile with `USER name` (or a numeric `USER 10001`).",
};

pub const NO_HEALTHCHECK: Rule = Rule {
    id: "CIS-DI-0006",
    title: "no HEALTHCHECK",
    severity: Severity::Low,
    remediation: "Without a health check a hung process keeps receiving traffic (CIS Docker Benchmark 4.6). Add `HEALTHCHECK CMD …`, or rely on the orchestrator's own check and disable this rule in the policy file.",
};

pub const SETUID: Rule = Rule {
    id: "CIS-DI-0008",
    title: "setuid/setgid file",
    severity: Severity::Low,
    remediation: "setuid and setgid executables are the usual way from a compromised process to root (CIS Docker Benchmark 4.8). Remove the bits in the image's own layers: `RUN chmod a-s FILE` (or `find / -xdev -perm /6000 -type f -exec chmod a-s {} +`).",
};

pub const ADD_REMOTE: Rule = Rule {
    id: "CIS-DI-0009",
    title: "ADD of a remote URL",
    severity: Severity::Medium,
    remediation: "`ADD https://…` downloads at build time without checking what arrives (CIS Docker Benchmark 4.9). Use `COPY` of a file fetched and checksum-verified beforehand, or `ADD --checksum=sha256:…`.",
};

pub const SECRET_ENV: Rule = Rule {
    id: "CIS-DI-0010",
    title: "secret-looking ENV variable with a value",
    severity: Severity::High,
    remediation: "ENV values are stored in the image config and shown by `docker inspect` to anyone who can pull the image (CIS Docker Benchmark 4.10). Pass secrets at run time (a secrets manager, an orchestrator secret, `NAME_FILE` pointing at a mounted file); use `RUN --mount=type=secret` at build time. Rotate the value.",
};

pub const SSH: Rule = Rule {
    id: "SG-CONFIG-SSH",
    title: "SSH server in the image",
    severity: Severity::Medium,
    remediation: "An SSH daemon is another way in and another set of credentials to manage; containers are reached with `docker exec`/ECS Exec instead (CIS Docker Benchmark 5.7 for running containers). Remove openssh-server and `EXPOSE 22`.",
};

pub const WORLD_WRITABLE: Rule = Rule {
    id: "SG-CONFIG-WORLD-WRITABLE",
    title: "world-writable path outside the temporary directories",
    severity: Severity::Medium,
    remediation: "Any user in the container can change a world-writable file or plant files in a world-writable directory without the sticky bit, e.g. code another user runs. `RUN chmod o-w PATH`; keep shared scratch space in /tmp, /var/tmp or /dev/shm.",
};

pub const MUTABLE_BASE: Rule = Rule {
    id: "SG-CONFIG-MUTABLE-BASE",
    title: "mutable base image reference",
    severity: Severity::Low,
    remediation: "The image says it was built FROM a tag (`:latest`, or no digest), so the same Dockerfile builds on different bases over time and the build cannot be reproduced or audited. Pin the base: `FROM name:tag@sha256:…`.",
};

/// Every configuration rule, for `policy check` (known ids) and the docs.
pub const RULES: &[Rule] = &[
    RUNS_AS_ROOT,
    NO_HEALTHCHECK,
    SETUID,
    ADD_REMOTE,
    SECRET_ENV,
    SSH,
    WORLD_WRITABLE,
    MUTABLE_BASE,
];

/// What the rules read. `entries` is `None` when the layers were not read
/// (the ECR engines): the rules over files then stay silent.
#[derive(Debug, Clone, Copy)]
pub struct ConfigInput<'a> {
    pub config: &'a ImageConfig,
    /// The manifest's annotations (`org.opencontainers.image.base.*`).
    pub annotations: &'a BTreeMap<String, String>,
    pub entries: Option<&'a BTreeMap<String, Notable>>,
    /// Notable entries the layer reader had no room for.
    pub entries_dropped: u64,
    /// Blob digest of each layer, by index.
    pub layer_digests: &'a [String],
    pub packages: &'a [Package],
    /// Leading layers that are the base image's, when the base is known:
    /// setuid files there are the base's, not this image's.
    pub base_layers: Option<usize>,
}

/// Runs every rule.
pub fn check(input: &ConfigInput<'_>) -> Result<RiskOutput, Cancelled> {
    let mut out = Rules::default();
    runs_as_root(input.config, &mut out);
    secret_env(input.config, &mut out)?;
    ssh(input, &mut out);
    add_remote(input.config, &mut out)?;
    no_healthcheck(input.config, &mut out);
    mutable_base(input, &mut out);
    if let Some(entries) = input.entries {
        entry_rules(input, entries, &mut out)?;
        if input.entries_dropped > 0 {
            out.warnings.push(format!(
                "configuration rules: {} more setuid/setgid or world-writable entries than the {} recorded were not checked",
                input.entries_dropped,
                crate::image::fs::MAX_NOTABLE
            ));
        }
    }
    Ok(out.finish())
}

/// Findings being collected, capped per rule.
#[derive(Default)]
struct Rules {
    findings: Vec<RiskFinding>,
    per_rule: BTreeMap<&'static str, usize>,
    warnings: Vec<String>,
}

impl Rules {
    fn push(
        &mut self,
        rule: &Rule,
        location: RiskLocation,
        title: String,
        excerpt: Option<String>,
    ) {
        let n = self.per_rule.entry(rule.id).or_default();
        *n += 1;
        if *n > MAX_PER_RULE {
            return;
        }
        self.findings.push(RiskFinding {
            kind: RiskKind::Config,
            rule_id: rule.id.to_owned(),
            title,
            severity: rule.severity,
            location,
            excerpt,
            remediation: rule.remediation.to_owned(),
        });
    }

    fn finish(mut self) -> RiskOutput {
        for (id, n) in &self.per_rule {
            if *n > MAX_PER_RULE {
                self.warnings.push(format!(
                    "configuration rule {id}: {} more findings than the {MAX_PER_RULE} listed",
                    n - MAX_PER_RULE
                ));
            }
        }
        RiskOutput {
            findings: self.findings,
            warnings: self.warnings,
        }
    }
}

fn config_field(field: impl Into<String>) -> RiskLocation {
    RiskLocation::Config {
        field: field.into(),
    }
}

/// `User` empty, `0`, `root`, or `0:…`/`root:…` (the group does not matter:
/// UID 0 is what the kernel checks).
pub fn is_root_user(user: &str) -> bool {
    let name = user.trim().split(':').next().unwrap_or("").trim();
    name.is_empty() || name == "root" || name.trim_start_matches('0').is_empty()
}

fn runs_as_root(config: &ImageConfig, out: &mut Rules) {
    if is_root_user(&config.user) {
        let title = if config.user.trim().is_empty() {
            "the image runs as root: no USER is set".to_owned()
        } else {
            "the image runs as root: USER is root (UID 0)".to_owned()
        };
        out.push(&RUNS_AS_ROOT, config_field("User"), title, None);
    }
}

/// Name parts that make an `ENV` name a secret on their own.
const SECRET_WORDS: &[&str] = &[
    "SECRET",
    "SECRETS",
    "TOKEN",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "CREDENTIAL",
    "CREDENTIALS",
    "APIKEY",
    "PRIVATEKEY",
];
/// A `KEY` part is a secret after one of these (`API_KEY`, `ACCESS_KEY`);
/// alone it is usually public (`GPG_KEY`, the release signing key's
/// fingerprint official images set).
const KEY_QUALIFIERS: &[&str] = &[
    "API",
    "ACCESS",
    "PRIVATE",
    "SECRET",
    "AUTH",
    "ENCRYPTION",
    "SIGNING",
    "MASTER",
];
/// A last part that says the value points at the secret, names it or is
/// one of its harmless attributes (`POSTGRES_PASSWORD_FILE`, `AWS_ACCESS_KEY_ID`).
const REFERENCE_SUFFIXES: &[&str] = &[
    "FILE", "PATH", "DIR", "ID", "NAME", "ARN", "URL", "URI", "HOST", "PORT", "USER", "USERNAME",
    "REGION", "LENGTH", "SIZE", "TYPE", "VERSION",
];

/// Whether an `ENV` name says its value is a secret.
pub fn is_secret_env_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let parts: Vec<&str> = upper
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .collect();
    let Some(last) = parts.last() else {
        return false;
    };
    if REFERENCE_SUFFIXES.contains(last) {
        return false;
    }
    parts.iter().enumerate().any(|(i, p)| {
        SECRET_WORDS.contains(p)
            || ((*p == "KEY" || *p == "KEYS") && i > 0 && KEY_QUALIFIERS.contains(&parts[i - 1]))
    })
}

fn secret_env(config: &ImageConfig, out: &mut Rules) -> Result<(), Cancelled> {
    for (i, entry) in config.env.iter().enumerate() {
        cancel::checkpoint()?;
        let Some((name, value)) = entry.split_once('=') else {
            continue;
        };
        if value.trim().is_empty() || !is_secret_env_name(name) {
            continue;
        }
        // The name is the evidence; the value never leaves this function.
        let name = crate::util::truncate_chars(name, 128);
        out.push(
            &SECRET_ENV,
            config_field(format!("Env[{i}]")),
            format!("ENV {name} has a value in the image config"),
            Some(format!("{name}=********")),
        );
    }
    Ok(())
}

/// Package names that install an SSH daemon.
const SSH_PACKAGES: &[&str] = &["openssh-server", "openssh-server-pam", "dropbear"];

/// One finding whatever the evidence (package, daemon binary, port 22), so
/// that an image gets one line to fix, with all its evidence.
fn ssh(input: &ConfigInput<'_>, out: &mut Rules) {
    let mut evidence = Vec::new();
    let mut location = None;
    if let Some(p) = input.packages.iter().find(|p| {
        matches!(
            p.ecosystem,
            Ecosystem::Deb | Ecosystem::Apk | Ecosystem::Rpm
        ) && SSH_PACKAGES.contains(&p.name.as_str())
    }) {
        evidence.push(format!("package {} {} installed", p.name, p.version));
        location.get_or_insert_with(|| file_location(input, p.layer, &p.location));
    }
    if let Some(entries) = input.entries
        && let Some((path, e)) = entries
            .iter()
            .find(|(p, e)| !e.dir && p.ends_with("sbin/sshd"))
    {
        evidence.push(format!("/{path} present"));
        location.get_or_insert_with(|| file_location(input, e.layer, path));
    }
    if let Some(port) = input
        .config
        .exposed_ports
        .iter()
        .find(|p| matches!(p.trim(), "22" | "22/tcp"))
    {
        evidence.push(format!("port {port} exposed"));
        location.get_or_insert_with(|| config_field("ExposedPorts"));
    }
    if let Some(location) = location {
        let title = format!("SSH server in the image: {}", evidence.join(", "));
        out.push(&SSH, location, title, None);
    }
}

fn file_location(input: &ConfigInput<'_>, layer: usize, path: &str) -> RiskLocation {
    RiskLocation::File {
        layer,
        layer_digest: input.layer_digests.get(layer).cloned().unwrap_or_default(),
        path: format!("/{}", path.trim_start_matches('/')),
        line: None,
        later_layer: None,
    }
}

/// `ADD http(s)://…` or `ADD ftp://…` in a history step. The `created_by`
/// text is the builder's (`ADD url dest # buildkit`, or docker's
/// `/bin/sh -c #(nop) ADD url in dest`).
fn add_remote(config: &ImageConfig, out: &mut Rules) -> Result<(), Cancelled> {
    for (i, h) in config.history.iter().enumerate() {
        cancel::checkpoint()?;
        let Some(by) = h.created_by.as_deref() else {
            continue;
        };
        if let Some(url) = remote_add_url(by) {
            out.push(
                &ADD_REMOTE,
                config_field(format!("history[{i}].created_by")),
                format!("ADD of a remote URL: {}", redact_url(url)),
                None,
            );
        }
    }
    Ok(())
}

/// The URL of an `ADD` step, if it adds a remote one.
pub fn remote_add_url(created_by: &str) -> Option<&str> {
    let text = created_by.trim();
    let text = text
        .strip_prefix("/bin/sh -c #(nop)")
        .map(str::trim_start)
        .unwrap_or(text);
    let mut words = text.split_ascii_whitespace();
    if words.next()? != "ADD" {
        return None;
    }
    words.filter(|w| !w.starts_with("--")).find(|w| {
        let lower = w.to_ascii_lowercase();
        lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("ftp://")
    })
}

/// A URL for a report: user information and the query (tokens live there)
/// are cut, and the length is capped.
fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let path = path.split(['?', '#']).next().unwrap_or("");
    crate::util::truncate_chars(&format!("{scheme}://{host}{path}"), 200)
}

/// No `Healthcheck`, or one that disables an inherited check (`NONE`).
fn no_healthcheck(config: &ImageConfig, out: &mut Rules) {
    let disabled = |t: &[String]| t.is_empty() || t.first().is_some_and(|c| c == "NONE");
    match &config.healthcheck {
        Some(test) if !disabled(test) => {}
        Some(_) => out.push(
            &NO_HEALTHCHECK,
            config_field("Healthcheck"),
            "HEALTHCHECK NONE disables the health check".into(),
            None,
        ),
        None => out.push(
            &NO_HEALTHCHECK,
            config_field("Healthcheck"),
            "the image declares no HEALTHCHECK".into(),
            None,
        ),
    }
}

/// `org.opencontainers.image.base.name` (manifest annotation or label)
/// names a tag without a digest, or `:latest`.
fn mutable_base(input: &ConfigInput<'_>, out: &mut Rules) {
    use crate::image::manifest::BaseAnnotation;
    let Some(base) = BaseAnnotation::find(input.annotations, &input.config.labels) else {
        return;
    };
    let name = base.name.trim();
    let pinned = name.contains('@') || base.digest.is_some();
    let last = name.rsplit('/').next().unwrap_or(name);
    let latest = match last.split_once(':') {
        Some((_, tag)) => tag.split('@').next() == Some("latest"),
        None => !name.contains('@'),
    };
    if pinned && !latest {
        return;
    }
    let why = if latest {
        "the latest tag"
    } else {
        "a tag without a digest"
    };
    let field = if base.from_labels {
        format!("Labels.{BASE_NAME_ANNOTATION}")
    } else {
        format!("annotations.{BASE_NAME_ANNOTATION}")
    };
    out.push(
        &MUTABLE_BASE,
        config_field(field),
        format!("built on {why}: {}", crate::util::truncate_chars(name, 200)),
        None,
    );
}

/// Directories where world-writable is the point.
const TEMP_DIRS: &[&str] = &["tmp", "var/tmp", "dev/shm", "run/lock", "var/lock"];

fn is_temp(path: &str) -> bool {
    TEMP_DIRS
        .iter()
        .any(|d| path == *d || path.strip_prefix(d).is_some_and(|r| r.starts_with('/')))
}

/// setuid/setgid files in the image's own layers and world-writable
/// entries outside the temporary directories, in path order.
fn entry_rules(
    input: &ConfigInput<'_>,
    entries: &BTreeMap<String, Notable>,
    out: &mut Rules,
) -> Result<(), Cancelled> {
    let own_from = input.base_layers.unwrap_or(0);
    for (path, e) in entries {
        cancel::checkpoint()?;
        if !e.dir && e.mode & 0o6000 != 0 && e.layer >= own_from {
            let what = match (e.mode & 0o4000 != 0, e.mode & 0o2000 != 0) {
                (true, true) => "setuid and setgid",
                (true, false) => "setuid",
                _ => "setgid",
            };
            out.push(
                &SETUID,
                file_location(input, e.layer, path),
                format!("{what} file /{path} (mode {:04o})", e.mode & 0o7777),
                None,
            );
        }
        let world_writable = e.mode & 0o002 != 0 && (!e.dir || e.mode & 0o1000 == 0);
        if world_writable && !is_temp(path) {
            let what = if e.dir { "directory" } else { "file" };
            out.push(
                &WORLD_WRITABLE,
                file_location(input, e.layer, path),
                format!(
                    "world-writable {what} /{path} (mode {:04o})",
                    e.mode & 0o7777
                ),
                None,
            );
        }
    }
    Ok(())
}

/// The configuration producer ([`super::PRODUCERS`]).
pub fn produce(view: &super::ImageView<'_>) -> Result<RiskOutput, Cancelled> {
    check(&ConfigInput {
        config: view.config,
        annotations: view.annotations,
        entries: view.files.map(|f| &f.notable),
        entries_dropped: view.files.map_or(0, |f| f.notable_dropped),
        layer_digests: view.layer_digests,
        packages: view.packages,
        base_layers: view.base_layers,
    })
}
