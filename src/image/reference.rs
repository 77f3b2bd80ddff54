//! Registry image references, with the grammar and Docker Hub normalisation
//! of `docker pull` (distribution/reference), so that what a build stage
//! pushed is what we pull.

use std::fmt;
use std::str::FromStr;

use super::error::{ImageError, ReferenceProblem};

/// The host Docker Hub's registry API answers on; `docker.io` and
/// `index.docker.io` in references mean this one.
pub const DOCKER_HUB_REGISTRY: &str = "registry-1.docker.io";
const DOCKER_HUB_DISPLAY: &str = "docker.io";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A parsed `host[:port]/path[:tag][@sha256:hex]` reference.
///
/// `tag` is `Some("latest")` when neither tag nor digest was given; with a
/// digest the digest is what gets pulled and the tag is only informative.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// `host[:port]` as connected to; Docker Hub is [`DOCKER_HUB_REGISTRY`].
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    /// The tag or digest to put in `/v2/<name>/manifests/<reference>`; the
    /// digest wins because it pins the exact content.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    pub fn is_docker_hub(&self) -> bool {
        self.registry == DOCKER_HUB_REGISTRY
    }

    /// The same image pinned to `digest` (what was actually scanned).
    pub fn with_digest(&self, digest: &str) -> ImageRef {
        ImageRef {
            digest: Some(digest.to_owned()),
            ..self.clone()
        }
    }

    fn display_registry(&self) -> &str {
        if self.is_docker_hub() {
            DOCKER_HUB_DISPLAY
        } else {
            &self.registry
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.display_registry(), self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageRef {
    type Err = ImageError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        parse(input.trim()).map_err(|problem| ImageError::InvalidReference {
            input: input.to_owned(),
            problem,
        })
    }
}

fn parse(s: &str) -> Result<ImageRef, ReferenceProblem> {
    if s.is_empty() {
        return Err(ReferenceProblem::Empty);
    }
    if s.contains("://") {
        return Err(ReferenceProblem::HasScheme);
    }
    if s.chars().any(char::is_whitespace) {
        return Err(ReferenceProblem::Whitespace);
    }

    let (name_tag, digest) = match s.split_once('@') {
        Some((n, d)) => (n, Some(parse_digest(d)?)),
        None => (s, None),
    };

    // A ':' after the last '/' starts the tag; one before it is a port.
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[last_slash..].rfind(':') {
        Some(i) => {
            let i = last_slash + i;
            (&name_tag[..i], Some(parse_tag(&name_tag[i + 1..])?))
        }
        None => (name_tag, None),
    };

    let (registry, mut repository) = match name.split_once('/') {
        Some((first, _))
            if !first.contains(['.', ':']) && is_host(first) && first != "localhost" =>
        {
            // Found by fuzzing: `K/5` named registry `k`, which prints as
            // `k/5`, a Docker Hub path: one reference must not read as two.
            return Err(ReferenceProblem::AmbiguousRegistry(first.to_owned()));
        }
        Some((first, rest)) if is_host(first) => (normalize_registry(first)?, rest.to_owned()),
        _ => (DOCKER_HUB_REGISTRY.to_owned(), name.to_owned()),
    };
    if repository.is_empty() {
        return Err(ReferenceProblem::EmptyRepository);
    }
    if repository.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(ReferenceProblem::UppercaseRepository(repository));
    }
    for component in repository.split('/') {
        if !is_path_component(component) {
            return Err(ReferenceProblem::BadRepositoryComponent(
                component.to_owned(),
            ));
        }
    }
    if registry == DOCKER_HUB_REGISTRY && !repository.contains('/') {
        repository = format!("library/{repository}");
    }
    let display_len = if registry == DOCKER_HUB_REGISTRY {
        DOCKER_HUB_DISPLAY.len()
    } else {
        registry.len()
    } + 1
        + repository.len();
    if display_len > MAX_NAME_LEN {
        return Err(ReferenceProblem::RepositoryTooLong(display_len));
    }

    let tag = match (tag, &digest) {
        (None, None) => Some("latest".to_owned()),
        (t, _) => t,
    };
    Ok(ImageRef {
        registry,
        repository,
        tag,
        digest,
    })
}

/// Docker's rule: the first path component names a registry when it could
/// not be a repository name (has '.', ':' or uppercase) or is `localhost`.
fn is_host(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.chars().any(|c| c.is_ascii_uppercase())
}

pub(crate) fn normalize_registry(host: &str) -> Result<String, ReferenceProblem> {
    let bad = || ReferenceProblem::BadRegistry(host.to_owned());
    let (hostname, port) = if let Some(rest) = host.strip_prefix('[') {
        // Bracketed IPv6 literal, optionally with a port.
        let end = rest.find(']').ok_or_else(bad)?;
        let addr = &rest[..end];
        if addr.is_empty()
            || !addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(bad());
        }
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad)?),
        };
        (&host[..end + 2], port)
    } else {
        let (h, p) = match host.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, None),
        };
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !h.split('.').all(label_ok) {
            return Err(bad());
        }
        (h, p)
    };
    if let Some(p) = port
        && (p.is_empty()
            || p.len() > 5
            || !p.chars().all(|c| c.is_ascii_digit())
            || p.parse::<u32>().map_or(true, |n| n > 65535))
    {
        return Err(bad());
    }
    let host = host.to_ascii_lowercase();
    if port.is_none()
        && matches!(
            hostname.to_ascii_lowercase().as_str(),
            "docker.io" | "index.docker.io" | "registry-1.docker.io"
        )
    {
        return Ok(DOCKER_HUB_REGISTRY.to_owned());
    }
    Ok(host)
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

fn parse_tag(t: &str) -> Result<String, ReferenceProblem> {
    if t.len() > MAX_TAG_LEN {
        return Err(ReferenceProblem::TagTooLong(t.len()));
    }
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = t.chars();
    match chars.next() {
        Some(c) if word(c) => {}
        _ => return Err(ReferenceProblem::BadTag(t.to_owned())),
    }
    if !chars.all(|c| word(c) || c == '.' || c == '-') {
        return Err(ReferenceProblem::BadTag(t.to_owned()));
    }
    Ok(t.to_owned())
}

/// Only sha256 is accepted because it is the only algorithm we verify with.
pub(crate) fn parse_digest(d: &str) -> Result<String, ReferenceProblem> {
    let Some((alg, hex)) = d.split_once(':') else {
        return Err(ReferenceProblem::BadDigest(d.to_owned()));
    };
    if alg != "sha256" {
        let alg_ok = !alg.is_empty()
            && alg
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c));
        return Err(if alg_ok && !hex.is_empty() {
            ReferenceProblem::UnsupportedDigestAlgorithm(alg.to_owned())
        } else {
            ReferenceProblem::BadDigest(d.to_owned())
        });
    }
    if hex.len() != 64
        || !hex
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    {
        return Err(ReferenceProblem::BadDigest(d.to_owned()));
    }
    Ok(d.to_owned())
}

/// What kind of local thing an argument names, for [`local_path_hint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalPath {
    Dir,
    File,
    /// Nothing there (or nothing readable).
    Missing,
}

impl LocalPath {
    /// What is at `path` on this machine.
    pub fn of(path: &str) -> LocalPath {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => LocalPath::Dir,
            Ok(_) => LocalPath::File,
            Err(_) => LocalPath::Missing,
        }
    }
}

/// The command line's check before a Docker Hub lookup: `scan app.tar`
/// or `scan ./dir` means a local image, and `docker.io/library/app.tar`
/// is never what was wanted. `None` when `input` is not a local path (or
/// already names its transport). `kind` says what the file system holds
/// at `input` ([`LocalPath::of`]; tests need not touch the disk).
pub fn local_path_hint(input: &str, kind: LocalPath) -> Option<String> {
    if input.contains("://") || input.starts_with("oci:") || input.starts_with("docker-archive:") {
        return None;
    }
    let shown = crate::report::terminal_safe(input);
    let archive = format!("docker-archive:{shown}");
    let layout = format!("oci:{shown}");
    // A name that is also a registry reference (`alpine` beside a folder
    // `alpine`) may have meant the registry: say how to get that.
    let registry = || {
        input
            .parse::<ImageRef>()
            .ok()
            .filter(|_| !looks_like_path(input))
            .map_or(String::new(), |r| {
                format!(" (to pull the registry image instead, write {r})")
            })
    };
    match kind {
        LocalPath::Dir => Some(format!(
            "\"{shown}\" is a directory here, not an image reference: for an OCI image layout \
             write {layout}{}",
            registry()
        )),
        LocalPath::File => Some(format!(
            "\"{shown}\" is a file here, not an image reference: for a `docker save` archive \
             write {archive}{}",
            registry()
        )),
        LocalPath::Missing if !looks_like_path(input) => None,
        _ if input.ends_with(".tar") => Some(format!(
            "\"{shown}\" looks like a file path, not an image reference: for a `docker save` \
             archive write {archive} (there is no such file here yet)"
        )),
        _ => Some(format!(
            "\"{shown}\" looks like a local path, not an image reference: write {layout} for an \
             OCI image layout directory, or docker-archive:FILE.tar for a `docker save` archive \
             (there is nothing at that path)"
        )),
    }
}

/// Written like a path: no registry reference starts with `.`, `/` or `~`,
/// and a `.tar` ending is a file name, not a repository.
fn looks_like_path(input: &str) -> bool {
    input.starts_with(['.', '/', '~']) || input.ends_with(".tar")
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn ok(s: &str) -> ImageRef {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn problem(s: &str) -> ReferenceProblem {
        match s.parse::<ImageRef>() {
            Err(ImageError::InvalidReference { problem, .. }) => problem,
            other => panic!("{s}: expected InvalidReference, got {other:?}"),
        }
    }

    type Parts<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>);

    fn parts(r: &ImageRef) -> Parts<'_> {
        (
            &r.registry,
            &r.repository,
            r.tag.as_deref(),
            r.digest.as_deref(),
        )
    }

    #[test]
    fn parses_valid_references() {
        let hub = DOCKER_HUB_REGISTRY;
        let long_tag = "a".repeat(128);
        let cases: Vec<(String, Parts<'_>)> = vec![
            (
                "debian".into(),
                (hub, "library/debian", Some("latest"), None),
            ),
            (
                "debian:bookworm-slim".into(),
                (hub, "library/debian", Some("bookworm-slim"), None),
            ),
            ("docker.io/x/y".into(), (hub, "x/y", Some("latest"), None)),
            (
                "docker.io/debian:12".into(),
                (hub, "library/debian", Some("12"), None),
            ),
            (
                "index.docker.io/library/alpine:3.20".into(),
                (hub, "library/alpine", Some("3.20"), None),
            ),
            (
                "bitnami/redis:7".into(),
                (hub, "bitnami/redis", Some("7"), None),
            ),
            (
                "localhost:5000/a".into(),
                ("localhost:5000", "a", Some("latest"), None),
            ),
            ("localhost/a:b".into(), ("localhost", "a", Some("b"), None)),
            (
                "127.0.0.1:5000/x/y/z:v1.2_3-rc".into(),
                ("127.0.0.1:5000", "x/y/z", Some("v1.2_3-rc"), None),
            ),
            (
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:abc123".into(),
                (
                    "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
                    "team/app",
                    Some("abc123"),
                    None,
                ),
            ),
            (
                format!("public.ecr.aws/docker/library/debian@{D}"),
                ("public.ecr.aws", "docker/library/debian", None, Some(D)),
            ),
            (
                format!("ghcr.io/o/r:1.0@{D}"),
                ("ghcr.io", "o/r", Some("1.0"), Some(D)),
            ),
            (
                format!("debian@{D}"),
                (hub, "library/debian", None, Some(D)),
            ),
            (
                "[::1]:5000/app:t".into(),
                ("[::1]:5000", "app", Some("t"), None),
            ),
            (
                "Registry.Example.COM/app".into(),
                ("registry.example.com", "app", Some("latest"), None),
            ),
            (
                "a.b/x__y/p-q--r.s_t:T_AG".into(),
                ("a.b", "x__y/p-q--r.s_t", Some("T_AG"), None),
            ),
            ("  host.io/x:1\n".into(), ("host.io", "x", Some("1"), None)),
            (
                format!("h.io/x:{}", "a".repeat(128)),
                ("h.io", "x", Some(long_tag.as_str()), None),
            ),
        ];
        for (input, want) in cases {
            let r = ok(&input);
            assert_eq!(parts(&r), want, "{input}");
            // Display round-trips.
            assert_eq!(ok(&r.to_string()), r, "{input} -> {r}");
        }
    }

    #[test]
    fn displays_canonically() {
        assert_eq!(ok("debian").to_string(), "docker.io/library/debian:latest");
        assert_eq!(
            ok("localhost:5000/a").to_string(),
            "localhost:5000/a:latest"
        );
        assert_eq!(
            ok(&format!("h.io/a:t@{D}")).to_string(),
            format!("h.io/a:t@{D}")
        );
        assert_eq!(ok(&format!("h.io/a@{D}")).manifest_reference(), D);
        assert_eq!(ok("h.io/a:t").manifest_reference(), "t");
    }

    #[test]
    fn rejects_invalid_references() {
        use ReferenceProblem as P;
        assert_eq!(problem(""), P::Empty);
        assert_eq!(problem("   "), P::Empty);
        assert_eq!(problem("https://h.io/x"), P::HasScheme);
        assert_eq!(problem("h.io/a b"), P::Whitespace);
        assert_eq!(
            problem("h.io/MyApp:1"),
            P::UppercaseRepository("MyApp".into())
        );
        assert_eq!(problem("Debian"), P::UppercaseRepository("Debian".into()));
        // fuzz/regressions/image_reference: a reference must read back as itself
        assert_eq!(problem("K/5"), P::AmbiguousRegistry("K".into()));
        assert_eq!(problem("Q/8x"), P::AmbiguousRegistry("Q".into()));
        assert_eq!(ok("Registry.io/a").registry, "registry.io");
        assert_eq!(problem("h.io/"), P::EmptyRepository);
        assert_eq!(problem("h.io/a//b"), P::BadRepositoryComponent("".into()));
        assert_eq!(problem("h.io/-a"), P::BadRepositoryComponent("-a".into()));
        assert_eq!(problem("h.io/a-"), P::BadRepositoryComponent("a-".into()));
        assert_eq!(
            problem("h.io/a___b"),
            P::BadRepositoryComponent("a___b".into())
        );
        assert_eq!(
            problem("h.io/a..b"),
            P::BadRepositoryComponent("a..b".into())
        );
        assert_eq!(problem("h.io/a$b"), P::BadRepositoryComponent("a$b".into()));
        assert_eq!(problem("h.io/a:"), P::BadTag("".into()));
        assert_eq!(problem("h.io/a:.x"), P::BadTag(".x".into()));
        assert_eq!(problem("h.io/a:-x"), P::BadTag("-x".into()));
        assert_eq!(problem("h.io/a:x+y"), P::BadTag("x+y".into()));
        assert_eq!(
            problem(&format!("h.io/a:{}", "a".repeat(129))),
            P::TagTooLong(129)
        );
        assert_eq!(
            problem("h.io/a@sha256:abc"),
            P::BadDigest("sha256:abc".into())
        );
        assert_eq!(
            problem(&format!(
                "h.io/a@{}",
                D.to_uppercase().replace("SHA256", "sha256")
            )),
            P::BadDigest(D.to_uppercase().replace("SHA256", "sha256"))
        );
        assert_eq!(problem("h.io/a@deadbeef"), P::BadDigest("deadbeef".into()));
        assert_eq!(
            problem(&format!("h.io/a@sha512:{}", "0".repeat(128))),
            P::UnsupportedDigestAlgorithm("sha512".into())
        );
        assert_eq!(problem("h-.io/a"), P::BadRegistry("h-.io".into()));
        assert_eq!(problem("h.io:99999/a"), P::BadRegistry("h.io:99999".into()));
        assert_eq!(problem("h.io:/a"), P::BadRegistry("h.io:".into()));
        assert_eq!(problem("h..io/a"), P::BadRegistry("h..io".into()));
        assert_eq!(problem("[zz]:5000/a"), P::BadRegistry("[zz]:5000".into()));
        assert!(matches!(
            problem(&format!("h.io/{}", "a/".repeat(130) + "a")),
            P::RepositoryTooLong(_)
        ));
    }

    #[test]
    fn error_message_names_the_problem() {
        let e = "h.io/MyApp".parse::<ImageRef>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid image reference \"h.io/MyApp\": repository name \"MyApp\" must be lowercase"
        );
        assert_eq!(e.failure_class(), super::super::FailureClass::Configuration);
    }

    #[test]
    fn local_paths_get_the_transport_they_need() {
        use LocalPath::*;
        let hint = |i: &str, k| local_path_hint(i, k);
        assert_eq!(
            hint("app.tar", File).as_deref(),
            Some(
                "\"app.tar\" is a file here, not an image reference: for a `docker save` archive write docker-archive:app.tar"
            )
        );
        assert_eq!(
            hint("./dir", Dir).as_deref(),
            Some(
                "\"./dir\" is a directory here, not an image reference: for an OCI image layout write oci:./dir"
            )
        );
        assert_eq!(
            hint("alpine", Dir).as_deref(),
            Some(
                "\"alpine\" is a directory here, not an image reference: for an OCI image layout write oci:alpine (to pull the registry image instead, write docker.io/library/alpine:latest)"
            )
        );
        assert_eq!(
            hint("/abs/missing.tar", Missing).as_deref(),
            Some(
                "\"/abs/missing.tar\" looks like a file path, not an image reference: for a `docker save` archive write docker-archive:/abs/missing.tar (there is no such file here yet)"
            )
        );
        assert_eq!(
            hint("../layout", Missing).as_deref(),
            Some(
                "\"../layout\" looks like a local path, not an image reference: write oci:../layout for an OCI image layout directory, or docker-archive:FILE.tar for a `docker save` archive (there is nothing at that path)"
            )
        );
        // Control characters in the argument are shown escaped.
        let odd = hint("./\u{1b}[31mx", Missing).unwrap();
        assert!(
            odd.contains("./\\u{1b}[31mx") && !odd.contains('\u{1b}'),
            "{odd}"
        );
        for not_local in [
            "alpine",
            "alpine:3.18",
            "localhost:5000/app:1",
            "oci:./dir",
            "docker-archive:app.tar",
            "https://example.com/x",
        ] {
            assert_eq!(hint(not_local, Missing), None, "{not_local}");
        }
        assert_eq!(hint("oci:./dir", Dir), None, "a transport was given");
    }
}
