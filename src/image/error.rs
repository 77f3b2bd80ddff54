//! Errors of the image pull, worded for the person who reads the pipeline
//! console: each says what went wrong, with which registry, repository or
//! layer, and what to do about it where there is something to do.

use std::fmt;

/// How the job module reports an [`ImageError`] to CodePipeline
/// (see DESIGN.md, "What the pipeline gets back").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Bad image reference or platform: `ConfigurationError`.
    Configuration,
    /// Registry said 401/403: `PermissionError`.
    Permission,
    /// Image, tag or blob absent: `JobFailed` ("image not found: REF").
    NotFound,
    /// Registry unreachable or throttled after retries: `SystemUnavailable`.
    Unavailable,
    /// The image itself is broken, hostile, too large or in a format we do
    /// not read: `JobFailed`.
    Corrupt,
}

/// What is wrong with an image reference string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceProblem {
    Empty,
    HasScheme,
    Whitespace,
    BadRegistry(String),
    /// A registry named only by an uppercase letter (Docker's rule), whose
    /// normalised (lowercase) form would read back as a Docker Hub path.
    AmbiguousRegistry(String),
    EmptyRepository,
    UppercaseRepository(String),
    BadRepositoryComponent(String),
    RepositoryTooLong(usize),
    BadTag(String),
    TagTooLong(usize),
    BadDigest(String),
    UnsupportedDigestAlgorithm(String),
    /// `oci:` or `docker-archive:` without a usable path.
    BadLocalSource(String),
}

impl fmt::Display for ReferenceProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the reference is empty"),
            Self::HasScheme => f.write_str(
                "a registry reference has no URL scheme: write host/repository:tag, \
                 without http:// or https://",
            ),
            Self::Whitespace => f.write_str("the reference contains whitespace"),
            Self::BadRegistry(r) => write!(f, "{r:?} is not a valid registry host[:port]"),
            Self::AmbiguousRegistry(r) => write!(
                f,
                "{r:?} is taken as a registry only because of its uppercase letters, and host \
                 names are not case-sensitive: write the registry with a domain or a port \
                 ({}:443/...), or the Docker Hub path in lowercase",
                r.to_ascii_lowercase()
            ),
            Self::EmptyRepository => f.write_str("the repository name is empty"),
            Self::UppercaseRepository(r) => {
                write!(f, "repository name {r:?} must be lowercase")
            }
            Self::BadRepositoryComponent(c) => write!(
                f,
                "repository path component {c:?} is invalid (allowed: lowercase letters, \
                 digits, and '.', '_', '__' or '-' between them)"
            ),
            Self::RepositoryTooLong(n) => {
                write!(
                    f,
                    "the name is {n} characters long; at most 255 are allowed"
                )
            }
            Self::BadTag(t) => write!(
                f,
                "tag {t:?} is invalid (allowed: letters, digits, '_', '.', '-', \
                 not starting with '.' or '-')"
            ),
            Self::TagTooLong(n) => write!(f, "the tag is {n} characters long; at most 128"),
            Self::BadDigest(d) => write!(
                f,
                "digest {d:?} is invalid (expected sha256: followed by 64 lowercase hex digits)"
            ),
            Self::UnsupportedDigestAlgorithm(a) => {
                write!(f, "digest algorithm {a:?} is not supported (only sha256)")
            }
            Self::BadLocalSource(d) => f.write_str(d),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image reference {input:?}: {problem}")]
    InvalidReference {
        input: String,
        problem: ReferenceProblem,
    },

    #[error(
        "invalid platform {input:?}: {reason} (expected os/architecture[/variant], \
         e.g. linux/amd64 or linux/arm64/v8)"
    )]
    InvalidPlatform { input: String, reason: String },

    #[error(
        "image {reference} has no manifest for platform {wanted}; available: {}: \
         set the action's Platform property to one of them",
        if available.is_empty() { "none".to_owned() } else { available.join(", ") }
    )]
    PlatformNotFound {
        reference: String,
        wanted: String,
        available: Vec<String>,
    },

    /// The registry (or its token service) did not accept our identity:
    /// anonymous when no credentials were configured, or the configured ones.
    #[error(
        "registry {registry} denied access to repo {repository} (HTTP {status}), tried {method}{}: {hint}",
        detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
    )]
    Unauthorized {
        registry: String,
        repository: String,
        status: u16,
        /// Where the credentials came from ([`super::auth::AuthMethod`]),
        /// never the secret.
        method: String,
        detail: Option<String>,
        hint: &'static str,
    },

    /// 403: authenticated, but not allowed to pull.
    #[error(
        "registry {registry} denied access to repo {repository} (HTTP {status}), tried {method}{}: \
         the worker's registry credentials lack pull permission on this repository",
        detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
    )]
    Denied {
        registry: String,
        repository: String,
        status: u16,
        method: String,
        detail: Option<String>,
    },

    /// A credential source failed: a credential helper missing or failing,
    /// a Docker config that cannot be read, `ecr:GetAuthorizationToken`
    /// refused. `class` is the source's own judgement (a refusal is a
    /// permission problem, a timeout an availability problem).
    #[error("cannot get credentials for registry {registry} from {method}: {detail}")]
    CredentialLookup {
        registry: String,
        method: String,
        detail: String,
        class: FailureClass,
    },

    #[error("image not found: {reference} ({what})")]
    NotFound { reference: String, what: String },

    #[error("registry {registry} unavailable after {attempts} attempt(s): {detail}")]
    Unavailable {
        registry: String,
        attempts: u32,
        detail: String,
    },

    #[error(
        "digest mismatch for {what}: expected {digest}, got content with digest {actual}; the \
         data was corrupted or altered on the way (registry, proxy, disk), or the image's config \
         does not describe its layers"
    )]
    DigestMismatch {
        what: String,
        digest: String,
        actual: String,
    },

    /// The registry answered in a way the protocol does not allow.
    #[error("registry {registry} sent an invalid response for {what}: {detail}")]
    Protocol {
        registry: String,
        what: String,
        detail: String,
    },

    #[error("layer {digest} is corrupt: {detail}")]
    CorruptLayer { digest: String, detail: String },

    #[error("image {reference} is not supported: {detail}")]
    Unsupported { reference: String, detail: String },

    #[error("image {reference} exceeds a limit: {detail}")]
    LimitExceeded { reference: String, detail: String },

    /// The worker's memory budget is held by its other jobs right now; the
    /// image itself is within its limits, so a retry can succeed.
    #[error(
        "not enough of the worker's memory budget is free to read {reference} while other jobs          run ({detail}); retry the action, or give the worker more memory          (SCANGATE_MEMORY_BUDGET) or fewer concurrent jobs (SCANGATE_CONCURRENCY)"
    )]
    MemoryBusy { reference: String, detail: String },

    /// The HTTP client could not be built (e.g. no usable TLS roots).
    #[error("cannot set up the registry client: {0}")]
    Client(String),

    /// A local image (`oci:` layout or `docker-archive:` file) that cannot
    /// be read or is not laid out as its format requires.
    #[error("cannot read local image {image}: {detail}")]
    LocalImage { image: String, detail: String },

    /// A bug: a worker task died.
    #[error("internal error while pulling {reference}: {detail}")]
    Internal { reference: String, detail: String },
}

impl ImageError {
    pub fn failure_class(&self) -> FailureClass {
        match self {
            Self::InvalidReference { .. }
            | Self::InvalidPlatform { .. }
            | Self::PlatformNotFound { .. }
            | Self::Client(_) => FailureClass::Configuration,
            Self::Unauthorized { .. } | Self::Denied { .. } => FailureClass::Permission,
            Self::CredentialLookup { class, .. } => *class,
            Self::NotFound { .. } => FailureClass::NotFound,
            Self::Unavailable { .. } | Self::MemoryBusy { .. } => FailureClass::Unavailable,
            Self::DigestMismatch { .. }
            | Self::Protocol { .. }
            | Self::CorruptLayer { .. }
            | Self::Unsupported { .. }
            | Self::LimitExceeded { .. }
            | Self::LocalImage { .. }
            | Self::Internal { .. } => FailureClass::Corrupt,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_actionable() {
        let e = ImageError::Unauthorized {
            registry: "127.0.0.1:5000".into(),
            repository: "x".into(),
            status: 401,
            method: "anonymous".into(),
            detail: None,
            hint: "check the worker's registry credentials",
        };
        assert_eq!(
            e.to_string(),
            "registry 127.0.0.1:5000 denied access to repo x (HTTP 401), tried anonymous: \
             check the worker's registry credentials"
        );
        assert_eq!(e.failure_class(), FailureClass::Permission);

        let e = ImageError::NotFound {
            reference: "127.0.0.1:5000/x:missing".into(),
            what: "manifest unknown".into(),
        };
        assert_eq!(
            e.to_string(),
            "image not found: 127.0.0.1:5000/x:missing (manifest unknown)"
        );
        assert_eq!(e.failure_class(), FailureClass::NotFound);

        let e = ImageError::PlatformNotFound {
            reference: "r/x:1".into(),
            wanted: "linux/s390x".into(),
            available: vec!["linux/amd64".into(), "linux/arm64/v8".into()],
        };
        assert!(
            e.to_string()
                .contains("available: linux/amd64, linux/arm64/v8")
        );
        assert_eq!(e.failure_class(), FailureClass::Configuration);
    }
}
