//! A Docker Registry HTTP API v2 / OCI distribution client for pulls: GET of
//! manifests and blobs, with the three ways registries authenticate
//! (anonymous, Basic, Bearer tokens from a token service) and credentials
//! from [`super::auth`], bounded retries of what is worth retrying, and
//! registry answers turned into errors a pipeline operator can act on.
//!
//! Redirects (blob downloads from S3, CDNs) are followed here, not by
//! reqwest, so that the rule is visible and tested: the `Authorization`
//! header goes only to the registry's own scheme, host and port, never to
//! where a redirect points elsewhere (the target URL carries its own
//! signature, and our token or password is not its business).
//!
//! Where the registry itself, a redirect or a token realm points is checked
//! too, because neither the registry nor the job that names it is trusted:
//! `ImageUrl=169.254.169.254/x`, or a redirect to loopback, a link-local
//! address or a cloud metadata endpoint (`169.254.169.254`, `fd00:ec2::254`,
//! ECS task credentials at `169.254.170.2`) would make the worker fetch its
//! own secrets and feed them to a parser, or reach a service that only
//! listens locally: server-side request forgery by a pipeline author or a
//! registry. Such hosts are refused, for literal addresses and for names
//! that resolve to them (checked before each request and again by the
//! resolver on each connection, so a name that changes its answer in
//! between gains nothing), IPv4 and IPv6 alike, IPv4-mapped IPv6 judged as
//! IPv4. Loopback is allowed for a registry the operator named
//! (`SCANGATE_INSECURE_REGISTRIES`, `SCANGATE_REGISTRY_HOSTS`,
//! `SCANGATE_REGISTRY_RESOLVE`), and for every registry and redirect with
//! `SCANGATE_ALLOW_LOCAL_REGISTRIES=true` (formerly
//! `SCANGATE_ALLOW_LOOPBACK_REDIRECTS`, still read: tests, a local registry
//! with its storage on another local port); link-local, unspecified and
//! metadata addresses are never allowed.
//!
//! `SCANGATE_REGISTRY_RESOLVE` (comma list of `HOST=IP`) pins registry host
//! names to addresses, like curl's `--resolve`: for registries reached under
//! a name that DNS does not know (the ECR end-to-end tests use an
//! ECR-shaped host name on 127.0.0.1; split-horizon networks). The port
//! still comes from the reference.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::{
    ACCEPT, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderMap, LOCATION, RANGE, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use reqwest::{RequestBuilder, Response, StatusCode, Url};

use super::auth::hosts::realm_may_receive;
use super::auth::token::{DEFAULT_EXPIRES_IN, TokenKey};
use super::auth::{AuthMethod, HostCredentials, RegistryAuth, RegistryHosts, Resolved, Secret};
use super::error::ImageError;
use super::reference::ImageRef;

/// See the module documentation.
pub const RESOLVE_ENV: &str = "SCANGATE_REGISTRY_RESOLVE";
/// See the module documentation; the worker's and CLI's flag reads it.
pub const ALLOW_LOCAL_ENV: &str = "SCANGATE_ALLOW_LOCAL_REGISTRIES";
/// The older name of [`ALLOW_LOCAL_ENV`], still read.
pub const ALLOW_LOOPBACK_ENV: &str = "SCANGATE_ALLOW_LOOPBACK_REDIRECTS";
const MAX_REDIRECTS: usize = 10;
/// Token lifetimes beyond this are not believed.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

const HINT_NO_CREDENTIALS: &str = "the registry requires authentication and the worker has no \
    credentials for it: give the worker registry credentials (Docker config, \
    SCANGATE_REGISTRY_USERNAME/SCANGATE_REGISTRY_PASSWORD, or ECR pull permission for its role); \
    the repository may also not exist";
const HINT_CREDENTIALS: &str = "check the worker's registry credentials; the repository may also \
    not exist (some registries answer 401 for unknown repositories)";
/// Error bodies are read only to quote them; no need for more than this.
const MAX_ERROR_BODY: usize = 64 * 1024;
const MAX_TOKEN_BODY: usize = 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A stalled blob download fails after this long without a byte.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Whole-request limit for small documents (manifests, configs, tokens).
const SMALL_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Registry credentials, resolved by the caller (Docker config, ECR token,
/// environment). `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// What a request is for, to word errors.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
    Manifest(&'a str),
    Blob(&'a str),
    /// The OCI 1.1 referrers API (`GET /v2/<name>/referrers/<digest>`):
    /// the artifacts (signatures) whose `subject` is this manifest digest.
    Referrers(&'a str),
}

impl Target<'_> {
    fn path(&self) -> String {
        match self {
            Target::Manifest(r) => format!("manifests/{r}"),
            Target::Blob(d) => format!("blobs/{d}"),
            Target::Referrers(d) => format!("referrers/{d}"),
        }
    }

    fn describe(&self) -> String {
        match self {
            Target::Manifest(r) => format!("manifest {r}"),
            Target::Blob(d) => format!("blob {d}"),
            Target::Referrers(d) => format!("referrers of {d}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthMode {
    Anonymous,
    Basic,
    Bearer,
}

struct AuthState {
    mode: AuthMode,
    /// Found on the first 401; `None` until then.
    resolved: Option<Resolved>,
    /// The Bearer token in use, where it is cached, and whether it came
    /// from the cache (a cached token the registry refuses is fetched anew
    /// once; a fresh one that is refused is a refusal).
    bearer: Option<(String, TokenKey, bool)>,
    /// A token service on another host that the credentials were kept
    /// from, for the error if the anonymous token is not enough.
    withheld_from: Option<String>,
}

/// A client for one repository of one registry, for the duration of a pull.
pub(crate) struct RegistryClient {
    http: reqwest::Client,
    registry: String,
    base: String,
    repository: String,
    /// The reference as the user wrote it (normalised), for "not found".
    image: String,
    /// `SCANGATE_REGISTRY_USERNAME`/`_PASSWORD` and their hosts, for
    /// [`RegistryAuth::resolve`].
    configured: Option<HostCredentials>,
    /// The host was named by image content: no credentials of any kind.
    content_named: bool,
    /// `SCANGATE_REGISTRY_HOSTS`: token services there may get credentials.
    registry_hosts: RegistryHosts,
    /// Where redirects and token realms may lead.
    destinations: Arc<Destinations>,
    sources: RegistryAuth,
    insecure_hosts: Vec<String>,
    max_attempts: u32,
    base_delay: Duration,
    auth: Mutex<AuthState>,
}

pub(crate) struct RegistryOptions<'a> {
    pub insecure_registries: &'a [String],
    pub credentials: Option<&'a HostCredentials>,
    /// Hosts the operator trusts with credentials (`SCANGATE_REGISTRY_HOSTS`):
    /// a token service on one of them may receive them.
    pub registry_hosts: &'a RegistryHosts,
    /// The registry was named by the image's own content (a base-image
    /// label or annotation): reached anonymously, and never at a
    /// link-local or metadata address.
    pub content_named: bool,
    /// Redirects may lead to loopback addresses (see the module docs).
    pub allow_loopback_redirects: bool,
    pub auth: &'a RegistryAuth,
    pub user_agent: &'a str,
    pub max_attempts: u32,
    pub base_delay: Duration,
}

fn normalize_host(h: &str) -> String {
    let h = h.trim();
    let h = h
        .strip_prefix("http://")
        .or_else(|| h.strip_prefix("https://"))
        .unwrap_or(h);
    h.trim_end_matches('/').to_ascii_lowercase()
}

impl RegistryClient {
    pub fn new(reference: &ImageRef, opts: &RegistryOptions<'_>) -> Result<Self, ImageError> {
        let insecure_hosts: Vec<String> = opts
            .insecure_registries
            .iter()
            .map(|h| normalize_host(h))
            .filter(|h| !h.is_empty())
            .collect();
        let insecure = insecure_hosts.contains(&reference.registry.to_ascii_lowercase());
        let scheme = if insecure { "http" } else { "https" };
        let base = format!(
            "{scheme}://{}/v2/{}",
            reference.registry, reference.repository
        );
        let registry_host = Url::parse(&base)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .ok_or_else(|| {
                ImageError::Client(format!("bad registry host {}", reference.registry))
            })?;
        let pins = match std::env::var(RESOLVE_ENV) {
            Ok(p) => parse_resolve(&p).map_err(ImageError::Client)?,
            Err(_) => Vec::new(),
        };
        // A registry the operator configured by name may be a local one;
        // a host only a job or an image names may not.
        let operator_named = insecure
            || opts.registry_hosts.contains(&reference.registry)
            || pins.iter().any(|(h, _)| *h == registry_host);
        let destinations = Arc::new(Destinations {
            registry_host,
            operator_named,
            allow_loopback: opts.allow_loopback_redirects,
        });
        let mut builder = reqwest::Client::builder()
            .dns_resolver(GuardedResolver(destinations.clone()))
            .user_agent(opts.user_agent)
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            // Followed by `get`, which decides where credentials go.
            .redirect(reqwest::redirect::Policy::none());
        for (host, addr) in pins {
            builder = builder.resolve(&host, addr);
        }
        let http = builder
            .build()
            .map_err(|e| ImageError::Client(error_chain(&e)))?;
        Ok(RegistryClient {
            http,
            registry: reference.registry.clone(),
            base,
            repository: reference.repository.clone(),
            image: reference.to_string(),
            configured: opts.credentials.cloned(),
            content_named: opts.content_named,
            registry_hosts: opts.registry_hosts.clone(),
            destinations,
            sources: opts.auth.clone(),
            insecure_hosts,
            max_attempts: opts.max_attempts.max(1),
            base_delay: opts.base_delay,
            auth: Mutex::new(AuthState {
                mode: AuthMode::Anonymous,
                resolved: None,
                bearer: None,
                withheld_from: None,
            }),
        })
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    pub fn backoff(&self, attempt: u32) -> Duration {
        backoff(self.base_delay, attempt, None)
    }

    /// GETs a manifest or blob and returns the successful response, its
    /// body unread. Authenticates on demand and retries transient failures.
    pub async fn get(
        &self,
        target: Target<'_>,
        accept: Option<&str>,
    ) -> Result<Response, ImageError> {
        self.get_with(target, accept, None).await
    }

    /// GETs a blob from byte `offset` on (`Range: bytes=OFFSET-`), to resume
    /// a broken download. Returns the response and the offset its body
    /// starts at: `offset` for a partial answer, 0 when the registry (or
    /// the storage it redirects to) ignored the range and sent everything.
    pub async fn get_from(
        &self,
        target: Target<'_>,
        offset: u64,
    ) -> Result<(Response, u64), ImageError> {
        let resp = self.get_with(target, None, Some(offset)).await?;
        if resp.status() != StatusCode::PARTIAL_CONTENT {
            return Ok((resp, 0));
        }
        // `Content-Range: bytes START-END/TOTAL`: a server that starts
        // elsewhere than asked would splice wrong bytes into the stream.
        let start = resp
            .headers()
            .get(CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().strip_prefix("bytes "))
            .and_then(|v| v.split_once('-'))
            .and_then(|(start, _)| start.trim().parse::<u64>().ok());
        match start {
            Some(start) if start == offset => Ok((resp, offset)),
            other => Err(ImageError::Protocol {
                registry: self.registry.clone(),
                what: target.describe(),
                detail: format!(
                    "asked for the bytes from {offset} on, the answer starts at {}",
                    other.map_or_else(
                        || "an unreadable Content-Range".to_owned(),
                        |s| s.to_string()
                    )
                ),
            }),
        }
    }

    async fn get_with(
        &self,
        target: Target<'_>,
        accept: Option<&str>,
        range_from: Option<u64>,
    ) -> Result<Response, ImageError> {
        let url = format!("{}/{}", self.base, target.path());
        // A job or an image named this host: it must not be this machine
        // or a metadata endpoint.
        let parsed = Url::parse(&url).map_err(|e| ImageError::Client(e.to_string()))?;
        if let Err(detail) = self.destinations.check_url(&parsed).await {
            return Err(if self.content_named {
                ImageError::Protocol {
                    registry: self.registry.clone(),
                    what: target.describe(),
                    detail,
                }
            } else {
                // The job's own configuration: ConfigurationError.
                ImageError::Client(format!("registry {}: {detail}", self.registry))
            });
        }
        let small = matches!(target, Target::Manifest(_) | Target::Referrers(_));
        let mut auth_rounds = 0;
        loop {
            let resp = self
                .send_retrying(&target.describe(), || {
                    let mut req = self.http.get(&url);
                    if let Some(a) = accept {
                        req = req.header(ACCEPT, a);
                    }
                    if let Some(from) = range_from {
                        req = req.header(RANGE, format!("bytes={from}-"));
                    }
                    if small {
                        req = req.timeout(SMALL_REQUEST_TIMEOUT);
                    }
                    self.authorize(req)
                })
                .await?;
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            if status.is_redirection() && resp.headers().contains_key(LOCATION) {
                return self
                    .follow_redirects(resp, target, accept, small, range_from)
                    .await;
            }
            let headers = resp.headers().clone();
            let errors = error_body(resp).await;
            match status {
                StatusCode::UNAUTHORIZED => {
                    if auth_rounds >= 2 {
                        return Err(self.unauthorized(status, errors.message()));
                    }
                    auth_rounds += 1;
                    self.authenticate(&headers, &errors).await?;
                }
                StatusCode::FORBIDDEN => {
                    return Err(ImageError::Denied {
                        registry: self.registry.clone(),
                        repository: self.repository.clone(),
                        status: status.as_u16(),
                        method: self.method().to_string(),
                        detail: errors.message(),
                    });
                }
                StatusCode::NOT_FOUND => {
                    return Err(ImageError::NotFound {
                        reference: self.image.clone(),
                        what: errors.not_found_what(target),
                    });
                }
                _ => {
                    return Err(ImageError::Protocol {
                        registry: self.registry.clone(),
                        what: target.describe(),
                        detail: format!(
                            "unexpected HTTP {}{}",
                            status.as_u16(),
                            errors
                                .message()
                                .map(|m| format!(": {m}"))
                                .unwrap_or_default()
                        ),
                    });
                }
            }
        }
    }

    /// GETs a small document whole, at most `limit` bytes. Returns the body
    /// and the `Content-Type` and `Docker-Content-Digest` headers.
    pub async fn get_bytes(
        &self,
        target: Target<'_>,
        accept: Option<&str>,
        limit: u64,
    ) -> Result<(Vec<u8>, Option<String>, Option<String>), ImageError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let resp = self.get(target, accept).await?;
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let content_type = header(CONTENT_TYPE.as_str());
            let digest = header("docker-content-digest");
            let too_large = || ImageError::LimitExceeded {
                reference: self.image.clone(),
                detail: format!("its {} is larger than {limit} bytes", target.describe()),
            };
            if resp
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .is_some_and(|n| n > limit)
            {
                return Err(too_large());
            }
            match read_limited(resp, limit).await {
                Ok(Some(body)) => return Ok((body, content_type, digest)),
                Ok(None) => return Err(too_large()),
                Err(e) if attempt < self.max_attempts => {
                    tracing::warn!(registry = %self.registry, what = %target.describe(), attempt, "reading the response failed: {e}; retrying");
                    tokio::time::sleep(self.backoff(attempt)).await;
                }
                Err(e) => {
                    return Err(ImageError::Unavailable {
                        registry: self.registry.clone(),
                        attempts: attempt,
                        detail: format!("reading {} failed: {e}", target.describe()),
                    });
                }
            }
        }
    }

    /// Follows the `Location` of a redirect answer, up to
    /// [`MAX_REDIRECTS`] hops. Credentials go only to the registry itself.
    async fn follow_redirects(
        &self,
        first: Response,
        target: Target<'_>,
        accept: Option<&str>,
        small: bool,
        range_from: Option<u64>,
    ) -> Result<Response, ImageError> {
        let what = target.describe();
        let protocol = |detail: String| ImageError::Protocol {
            registry: self.registry.clone(),
            what: what.clone(),
            detail,
        };
        let registry_origin = Url::parse(&self.base)
            .map_err(|e| ImageError::Client(e.to_string()))?
            .origin();
        let mut resp = first;
        for _ in 0..MAX_REDIRECTS {
            let location = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| protocol("a redirect with an unreadable Location".into()))?;
            let next = resp
                .url()
                .join(location)
                .map_err(|e| protocol(format!("redirect to an invalid Location: {e}")))?;
            if !matches!(next.scheme(), "http" | "https") {
                return Err(protocol(format!("redirect to a {} URL", next.scheme())));
            }
            self.destinations.check_url(&next).await.map_err(|e| {
                protocol(format!(
                    "a redirect to {}: {e}",
                    next.origin().ascii_serialization()
                ))
            })?;
            let same_origin = next.origin() == registry_origin;
            tracing::debug!(registry = %self.registry, %what, to = %next.origin().ascii_serialization(), same_origin, "following a redirect");
            resp = self
                .send_retrying(&what, || {
                    let mut req = self.http.get(next.clone());
                    if let Some(a) = accept {
                        req = req.header(ACCEPT, a);
                    }
                    if let Some(from) = range_from {
                        req = req.header(RANGE, format!("bytes={from}-"));
                    }
                    if small {
                        req = req.timeout(SMALL_REQUEST_TIMEOUT);
                    }
                    if same_origin {
                        self.authorize(req)
                    } else {
                        req
                    }
                })
                .await?;
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            if status.is_redirection() && resp.headers().contains_key(LOCATION) {
                continue;
            }
            let host = next.host_str().unwrap_or_default().to_owned();
            let errors = error_body(resp).await;
            if status == StatusCode::NOT_FOUND {
                return Err(ImageError::NotFound {
                    reference: self.image.clone(),
                    what: errors.not_found_what(target),
                });
            }
            return Err(protocol(format!(
                "the redirect target {host} answered HTTP {}{}",
                status.as_u16(),
                errors
                    .message()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            )));
        }
        Err(protocol(format!("more than {MAX_REDIRECTS} redirects")))
    }

    fn authorize(&self, req: RequestBuilder) -> RequestBuilder {
        let state = self.auth.lock().expect("auth state lock");
        match state.mode {
            AuthMode::Basic => match state.resolved.as_ref().and_then(Resolved::basic) {
                Some(c) => req.basic_auth(&c.username, Some(&c.password)),
                None => req,
            },
            AuthMode::Bearer => match &state.bearer {
                Some((token, _, _)) => req.bearer_auth(token),
                None => req,
            },
            AuthMode::Anonymous => req,
        }
    }

    /// What was tried, for errors.
    fn method(&self) -> AuthMethod {
        let state = self.auth.lock().expect("auth state lock");
        state
            .resolved
            .as_ref()
            .map(|r| r.method.clone())
            .unwrap_or(AuthMethod::Anonymous)
    }

    fn unauthorized(&self, status: StatusCode, detail: Option<String>) -> ImageError {
        let method = self.method();
        let withheld = self
            .auth
            .lock()
            .expect("auth state lock")
            .withheld_from
            .clone();
        if let Some(realm) = withheld {
            let note = format!(
                "the credentials ({method}) were not sent to the registry's token service {realm}, \
                 which is on another host; list {realm} in {} if it is the registry's own",
                super::auth::hosts::HOSTS_ENV
            );
            return ImageError::Unauthorized {
                registry: self.registry.clone(),
                repository: self.repository.clone(),
                status: status.as_u16(),
                hint: HINT_CREDENTIALS,
                method: AuthMethod::Anonymous.to_string(),
                detail: Some(match detail {
                    Some(d) => format!("{d}; {note}"),
                    None => note,
                }),
            };
        }
        ImageError::Unauthorized {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            status: status.as_u16(),
            hint: if method == AuthMethod::Anonymous {
                HINT_NO_CREDENTIALS
            } else {
                HINT_CREDENTIALS
            },
            method: method.to_string(),
            detail,
        }
    }

    /// The credentials for this registry, found on first need.
    async fn resolved(&self) -> Result<Resolved, ImageError> {
        if let Some(r) = &self.auth.lock().expect("auth state lock").resolved {
            return Ok(r.clone());
        }
        let r = if self.content_named {
            Resolved::anonymous()
        } else {
            self.sources
                .resolve(&self.registry, self.configured.as_ref())
                .await?
        };
        tracing::debug!(registry = %self.registry, method = %r.method, "registry credentials");
        self.auth.lock().expect("auth state lock").resolved = Some(r.clone());
        Ok(r)
    }

    /// Reacts to a 401: gets a Bearer token, or switches to Basic.
    async fn authenticate(
        &self,
        headers: &HeaderMap,
        errors: &ErrorBody,
    ) -> Result<(), ImageError> {
        let challenges: Vec<Challenge> = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_challenges)
            .collect();
        let resolved = self.resolved().await?;
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let resolved = self.for_realm(bearer, resolved);
            let scope = bearer
                .params
                .get("scope")
                .cloned()
                .unwrap_or_else(|| format!("repository:{}:pull", self.repository));
            let key = TokenKey {
                registry: self.registry.to_ascii_lowercase(),
                scope,
                identity: resolved.identity_key(),
            };
            let refused = {
                let mut state = self.auth.lock().expect("auth state lock");
                match state.bearer.take() {
                    Some((_, k, from_cache)) if k == key => Some(from_cache),
                    _ => None,
                }
            };
            let cached = match refused {
                // A token fetched just now for this very scope was refused.
                Some(false) => {
                    return Err(self.unauthorized(StatusCode::UNAUTHORIZED, errors.message()));
                }
                Some(true) => {
                    self.sources.tokens().remove(&key);
                    None
                }
                None => self.sources.tokens().get(&key),
            };
            let (token, from_cache) = match cached {
                Some(t) => (t, true),
                None => (self.fetch_token(bearer, &resolved, &key).await?, false),
            };
            let mut state = self.auth.lock().expect("auth state lock");
            state.mode = AuthMode::Bearer;
            state.bearer = Some((token, key, from_cache));
            return Ok(());
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            let mut state = self.auth.lock().expect("auth state lock");
            if resolved.basic().is_some() && state.mode != AuthMode::Basic {
                state.mode = AuthMode::Basic;
                return Ok(());
            }
        }
        Err(self.unauthorized(StatusCode::UNAUTHORIZED, errors.message()))
    }

    /// The credentials to present at the token service `challenge` names:
    /// none when it is on a host they are not meant for (see
    /// [`realm_may_receive`]); the pull then goes on with an anonymous
    /// token, enough for a public repository, and a refusal says why.
    fn for_realm(&self, challenge: &Challenge, resolved: Resolved) -> Resolved {
        if resolved.secret.is_none() {
            return resolved;
        }
        let realm_host = challenge
            .params
            .get("realm")
            .and_then(|r| Url::parse(r).ok())
            .and_then(|u| {
                let host = u.host_str()?.to_owned();
                Some(match u.port() {
                    Some(p) => format!("{host}:{p}"),
                    None => host,
                })
            });
        let allowed = |h: &str| {
            realm_may_receive(h, &self.registry, &self.registry_hosts)
                || self
                    .configured
                    .as_ref()
                    .is_some_and(|c| realm_may_receive(h, &self.registry, &c.hosts))
        };
        match realm_host {
            Some(h) if allowed(&h) => resolved,
            other => {
                let h = other.unwrap_or_else(|| "an unreadable realm".to_owned());
                tracing::warn!(registry = %self.registry, realm = %h, method = %resolved.method, "the registry's token service is on another host that is not listed in {}; asking it for an anonymous token, without the credentials", super::auth::hosts::HOSTS_ENV);
                self.auth.lock().expect("auth state lock").withheld_from = Some(h);
                Resolved::anonymous()
            }
        }
    }

    /// Gets a token from the service a Bearer challenge names: GET with
    /// Basic credentials (or none), or the OAuth2 refresh-token POST for an
    /// identity token. Caches it for its `expires_in`.
    async fn fetch_token(
        &self,
        challenge: &Challenge,
        resolved: &Resolved,
        key: &TokenKey,
    ) -> Result<String, ImageError> {
        // Awaited here rather than in the steps: each async step would nest
        // one more future inside the worker's, whose layout is already close
        // to the compiler's depth limit.
        let (mut url, realm, realm_host) = self.token_realm(challenge)?;
        self.destinations
            .check_url(&url)
            .await
            .map_err(|e| self.challenge_error(format!("token realm: {e}")))?;
        self.refuse_plain_http_secret(&url, realm, &realm_host, resolved)?;
        let refresh_form = token_parameters(&mut url, challenge, resolved, &key.scope);
        let request = TokenRequest {
            url,
            realm_host,
            refresh_form,
        };
        let resp = self
            .send_retrying(&request.what(), || self.token_request(&request, resolved))
            .await?;
        let body = self.token_body(resp, &request).await?;
        let (token, lifetime) = self.parse_token(&body)?;
        self.sources
            .tokens()
            .insert(key.clone(), token.clone(), lifetime);
        Ok(token)
    }

    /// A malformed challenge or token answer.
    fn challenge_error(&self, detail: String) -> ImageError {
        ImageError::Protocol {
            registry: self.registry.clone(),
            what: "authentication challenge".into(),
            detail,
        }
    }

    /// The token service's URL (as written and parsed) and `host[:port]`:
    /// the realm is hostile input, so it must be an HTTP(S) URL with a host
    /// (the caller then checks where it leads and how credentials may go).
    fn token_realm<'c>(
        &self,
        challenge: &'c Challenge,
    ) -> Result<(Url, &'c str, String), ImageError> {
        let realm = challenge
            .params
            .get("realm")
            .ok_or_else(|| self.challenge_error("Bearer challenge without a realm".into()))?;
        let url = Url::parse(realm)
            .map_err(|e| self.challenge_error(format!("token realm {realm:?}: {e}")))?;
        let realm_host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => {
                return Err(self.challenge_error(format!("token realm {realm:?} has no host")));
            }
        };
        if !matches!(url.scheme(), "http" | "https") {
            return Err(self.challenge_error(format!("token realm {realm:?} is not an HTTP URL")));
        }
        Ok((url, realm, realm_host))
    }

    /// Credentials go over plain HTTP only to a host the operator listed in
    /// `SCANGATE_INSECURE_REGISTRIES` (the token service's or the registry's).
    fn refuse_plain_http_secret(
        &self,
        url: &Url,
        realm: &str,
        realm_host: &str,
        resolved: &Resolved,
    ) -> Result<(), ImageError> {
        if url.scheme() != "https"
            && resolved.secret.is_some()
            && !self
                .insecure_hosts
                .contains(&realm_host.to_ascii_lowercase())
            && !self
                .insecure_hosts
                .contains(&self.registry.to_ascii_lowercase())
        {
            return Err(ImageError::Client(format!(
                "refusing to send the credentials for registry {} over plain HTTP to token \
                 service {realm}; list {realm_host} in SCANGATE_INSECURE_REGISTRIES if that is intended",
                self.registry
            )));
        }
        Ok(())
    }

    /// The token request: the refresh-token POST, or a GET with Basic
    /// credentials or none.
    fn token_request(&self, request: &TokenRequest, resolved: &Resolved) -> RequestBuilder {
        let url = request.url.clone();
        match &request.refresh_form {
            Some(form) => self
                .http
                .post(url)
                .timeout(SMALL_REQUEST_TIMEOUT)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(form.clone()),
            None => {
                let req = self.http.get(url).timeout(SMALL_REQUEST_TIMEOUT);
                match resolved.basic() {
                    Some(c) => req.basic_auth(&c.username, Some(&c.password)),
                    None => req,
                }
            }
        }
    }

    /// The token service's answer body, at most [`MAX_TOKEN_BODY`] bytes; a
    /// refusal is reported as the registry refusing the credentials.
    async fn token_body(
        &self,
        resp: Response,
        request: &TokenRequest,
    ) -> Result<Vec<u8>, ImageError> {
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let body = error_body(resp).await;
            let detail = format!(
                "the token service {} refused{}",
                request.realm_host,
                body.message().map(|m| format!(": {m}")).unwrap_or_default()
            );
            return Err(self.unauthorized(status, Some(detail)));
        }
        if !status.is_success() {
            let body = error_body(resp).await;
            return Err(ImageError::Protocol {
                registry: self.registry.clone(),
                what: request.what(),
                detail: format!(
                    "unexpected HTTP {}{}",
                    status.as_u16(),
                    body.message().map(|m| format!(": {m}")).unwrap_or_default()
                ),
            });
        }
        match read_limited(resp, MAX_TOKEN_BODY as u64).await {
            Ok(Some(b)) => Ok(b),
            Ok(None) => Err(self.challenge_error("token response too large".into())),
            Err(e) => Err(ImageError::Unavailable {
                registry: self.registry.clone(),
                attempts: 1,
                detail: format!("reading the {} failed: {e}", request.what()),
            }),
        }
    }

    /// The token (`token`, else `access_token`) and how long to cache it:
    /// its `expires_in`, capped so a hostile service cannot pin a token.
    fn parse_token(&self, body: &[u8]) -> Result<(String, Duration), ImageError> {
        let parsed: TokenResponse = serde_json::from_slice(body)
            .map_err(|e| self.challenge_error(format!("token response is not valid JSON: {e}")))?;
        let token = parsed
            .token
            .filter(|t| !t.is_empty())
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.challenge_error("token response has no token".into()))?;
        let lifetime = parsed
            .expires_in
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_EXPIRES_IN)
            .min(MAX_TOKEN_LIFETIME);
        Ok((token, lifetime))
    }

    /// Sends, retrying connection failures, 429 and 5xx with exponential
    /// backoff; any other response is returned for the caller to judge.
    async fn send_retrying(
        &self,
        what: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, ImageError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (detail, retry_after) = match build().send().await {
                Ok(resp) if retryable(resp.status()) => {
                    let status = resp.status();
                    let retry_after = resp
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let body = error_body(resp).await;
                    (
                        format!(
                            "HTTP {}{}",
                            status.as_u16(),
                            body.message().map(|m| format!(": {m}")).unwrap_or_default()
                        ),
                        retry_after,
                    )
                }
                Ok(resp) => return Ok(resp),
                Err(e) if e.is_builder() => return Err(ImageError::Client(error_chain(&e))),
                Err(e) => (self.describe_send_error(&e), None),
            };
            if attempt >= self.max_attempts {
                return Err(ImageError::Unavailable {
                    registry: self.registry.clone(),
                    attempts: attempt,
                    detail: format!("{what}: {detail}"),
                });
            }
            tracing::warn!(registry = %self.registry, %what, attempt, "{detail}; retrying");
            tokio::time::sleep(backoff(self.base_delay, attempt, retry_after)).await;
        }
    }

    fn describe_send_error(&self, e: &reqwest::Error) -> String {
        let chain = error_chain(e);
        let lower = chain.to_ascii_lowercase();
        let tls_trouble = [
            "certificate",
            "tls",
            "invalidcontenttype",
            "handshake",
            "corrupt message",
        ]
        .iter()
        .any(|k| lower.contains(k));
        if self.base.starts_with("https://") && tls_trouble {
            format!(
                "{chain} (if {0} serves plain HTTP, list it in SCANGATE_INSECURE_REGISTRIES; \
                 if it uses a private CA, add the CA to the worker's trust store)",
                self.registry
            )
        } else {
            chain
        }
    }
}

/// Why an address is no place for a registry to send us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LocalKind {
    Loopback,
    /// `0.0.0.0` / `::`: connecting there reaches this machine.
    Unspecified,
    /// `169.254.0.0/16`, `fe80::/10`: where cloud metadata and ECS task
    /// credentials live.
    LinkLocal,
    /// `fd00:ec2::/32`: the IPv6 metadata and EKS pod identity endpoints.
    CloudMetadata,
}

impl LocalKind {
    fn describe(self) -> &'static str {
        match self {
            LocalKind::Loopback => "a loopback address",
            LocalKind::Unspecified => "an unspecified address (this machine)",
            LocalKind::LinkLocal => "a link-local address (cloud metadata, ECS task credentials)",
            LocalKind::CloudMetadata => "a cloud metadata address",
        }
    }
}

/// The class of `ip` a hostile registry must not send us to, IPv4 in IPv6
/// (mapped or compatible) judged as IPv4.
fn local_kind(ip: IpAddr) -> Option<LocalKind> {
    let v4 = match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped().or_else(|| {
            let s = v6.segments();
            // `::a.b.c.d` (deprecated IPv4-compatible), but not `::` / `::1`.
            (s[..6] == [0; 6] && s[6] != 0).then(|| v6.to_ipv4().expect("IPv4-compatible"))
        }),
    };
    if let Some(v4) = v4 {
        return if v4.is_loopback() {
            Some(LocalKind::Loopback)
        } else if v4.is_unspecified() || v4.octets()[0] == 0 {
            Some(LocalKind::Unspecified)
        } else if v4.is_link_local() {
            Some(LocalKind::LinkLocal)
        } else {
            None
        };
    }
    let IpAddr::V6(v6) = ip else { return None };
    let s = v6.segments();
    if v6.is_loopback() {
        Some(LocalKind::Loopback)
    } else if v6.is_unspecified() {
        Some(LocalKind::Unspecified)
    } else if s[0] & 0xffc0 == 0xfe80 {
        Some(LocalKind::LinkLocal)
    } else if s[0] == 0xfd00 && s[1] == 0x0ec2 {
        Some(LocalKind::CloudMetadata)
    } else {
        None
    }
}

/// Where a client of one registry may connect (see the module docs).
#[derive(Debug)]
struct Destinations {
    /// The registry's host name or address, lowercase (URL form: IPv6 in
    /// brackets).
    registry_host: String,
    /// The operator listed the registry (insecure, credential or pinned
    /// hosts): it may be on loopback.
    operator_named: bool,
    allow_loopback: bool,
}

impl Destinations {
    /// `Err(why)` when `host` (as a URL names it) at `ip` is refused.
    fn check(&self, host: &str, ip: IpAddr) -> Result<(), LocalKind> {
        let own = host.eq_ignore_ascii_case(&self.registry_host)
            || host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .is_some_and(|h| format!("[{h}]").eq_ignore_ascii_case(&self.registry_host));
        // Naming a host is no licence to reach this machine or the cloud's
        // metadata: not for a job (a pipeline author), not for an image.
        // Only the operator can allow loopback, by naming the registry in
        // its settings or by the global knob.
        match local_kind(ip) {
            None => Ok(()),
            Some(LocalKind::Loopback) if self.allow_loopback || (own && self.operator_named) => {
                Ok(())
            }
            Some(kind) => Err(kind),
        }
    }

    /// Checks `url` before a request: a literal address directly, a name by
    /// resolving it (every address must pass). A name that does not resolve
    /// is left to the request to report.
    async fn check_url(&self, url: &Url) -> Result<(), String> {
        let Some(host) = url.host_str() else {
            return Err(format!("{url} has no host"));
        };
        let refuse = |kind: LocalKind, ip: IpAddr| {
            let mut m = format!(
                "refusing to connect to {host} ({ip}): {} is never where a job, an image or a \
                 registry may send the worker",
                kind.describe()
            );
            if kind == LocalKind::Loopback {
                m.push_str(&format!(
                    "; to allow loopback (tests, local registries) list the registry in \
                     SCANGATE_INSECURE_REGISTRIES or set {ALLOW_LOCAL_ENV}=true (formerly \
                     {ALLOW_LOOPBACK_ENV})"
                ));
            }
            m
        };
        // The URL parser has already normalised literal addresses
        // (`0x7f.1` is `127.0.0.1`); IPv6 ones come in brackets.
        let literal = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .parse::<IpAddr>()
            .ok();
        if let Some(ip) = literal {
            return self.check(host, ip).map_err(|k| refuse(k, ip));
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let Ok(addrs) = tokio::net::lookup_host((host, port)).await else {
            return Ok(());
        };
        for a in addrs {
            self.check(host, a.ip()).map_err(|k| refuse(k, a.ip()))?;
        }
        Ok(())
    }
}

/// The system resolver with [`Destinations`] applied to every name the
/// client connects to, so that a name that resolved to a public address
/// when checked cannot resolve to a metadata address when connected.
struct GuardedResolver(Arc<Destinations>);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let dest = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<_> = addrs
                .into_iter()
                .filter(|a| match dest.check(&host, a.ip()) {
                    Ok(()) => true,
                    Err(k) => {
                        refused = Some((k, a.ip()));
                        false
                    }
                })
                .collect();
            if let Some((kind, ip)) = refused {
                // One refused address refuses the name: a name that mixes
                // local and public answers is not a registry's storage.
                let msg = format!("{host} resolves to {ip}, {}", kind.describe());
                return Err(msg.into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// `HOST=IP[,HOST=IP…]` (see the module documentation).
fn parse_resolve(spec: &str) -> Result<Vec<(String, std::net::SocketAddr)>, String> {
    spec.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let bad = || format!("{RESOLVE_ENV}: {entry:?} is not HOST=IP");
            let (host, ip) = entry.split_once('=').ok_or_else(bad)?;
            let ip: std::net::IpAddr = ip.trim().parse().map_err(|_| bad())?;
            let host = host.trim().to_ascii_lowercase();
            if host.is_empty() || host.contains(['/', ':']) {
                return Err(bad());
            }
            // Port 0: the port of the URL is used.
            Ok((host, std::net::SocketAddr::new(ip, 0)))
        })
        .collect()
}

/// A token request whose realm was checked, ready to send.
struct TokenRequest {
    url: Url,
    /// `host[:port]` of the token service, for messages.
    realm_host: String,
    /// The OAuth2 refresh-token form for an identity token; `None` sends a
    /// GET with the parameters in the URL.
    refresh_form: Option<String>,
}

impl TokenRequest {
    fn what(&self) -> String {
        format!("token from {}", self.realm_host)
    }
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Puts the token request's parameters in place: for an identity token the
/// refresh-token form (returned), because a refresh token goes in a form
/// body, never in a URL (URLs end up in logs and error chains); otherwise
/// service, scope and account in `url`'s query.
fn token_parameters(
    url: &mut Url,
    challenge: &Challenge,
    resolved: &Resolved,
    scope: &str,
) -> Option<String> {
    let service = challenge.params.get("service");
    if let Some(Secret::IdentityToken(t)) = &resolved.secret {
        // reqwest's Url encodes a query exactly as a form body is.
        let mut form = Url::parse("http://form.invalid/").expect("static URL");
        form.query_pairs_mut()
            .append_pair("grant_type", "refresh_token")
            .extend_pairs(service.map(|s| ("service", s.as_str())))
            .append_pair("scope", scope)
            .append_pair("client_id", "scangate")
            .append_pair("refresh_token", t);
        return Some(form.query().unwrap_or_default().to_owned());
    }
    let mut q = url.query_pairs_mut();
    if let Some(s) = service {
        q.append_pair("service", s);
    }
    q.append_pair("scope", scope);
    if let Some(c) = resolved.basic() {
        q.append_pair("account", &c.username);
    }
    None
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED)
}

/// Exponential backoff with jitter; a server's Retry-After wins when longer.
fn backoff(base: Duration, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let exp = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(10))
        .min(MAX_BACKOFF);
    // Jitter from the clock: good enough to spread workers, no RNG needed.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = base.mul_f64(f64::from(nanos % 1000) / 2000.0);
    let d = exp + jitter;
    match retry_after {
        Some(r) => d.max(r.min(MAX_RETRY_AFTER)),
        None => d,
    }
}

/// `Ok(None)` when the body is over `limit`.
async fn read_limited(resp: Response, limit: u64) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| error_chain(&e))?;
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let m = inner.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = inner.source();
    }
    s
}

/// The `errors` array of a registry error response.
#[derive(Debug, Default)]
struct ErrorBody {
    errors: Vec<(String, String)>,
}

impl ErrorBody {
    fn message(&self) -> Option<String> {
        let msgs: Vec<String> = self
            .errors
            .iter()
            .map(|(code, msg)| match (code.is_empty(), msg.is_empty()) {
                (_, false) => msg.clone(),
                (false, true) => code.to_ascii_lowercase().replace('_', " "),
                (true, true) => String::new(),
            })
            .filter(|m| !m.is_empty())
            .collect();
        (!msgs.is_empty()).then(|| msgs.join("; "))
    }

    fn not_found_what(&self, target: Target<'_>) -> String {
        let has = |c: &str| self.errors.iter().any(|(code, _)| code == c);
        if has("NAME_UNKNOWN") {
            "repository unknown".into()
        } else if has("MANIFEST_UNKNOWN") {
            "manifest unknown".into()
        } else if has("BLOB_UNKNOWN") {
            match target {
                Target::Blob(d) => format!("blob {d} unknown"),
                Target::Manifest(_) | Target::Referrers(_) => "blob unknown".into(),
            }
        } else {
            match target {
                Target::Manifest(_) => "manifest unknown".into(),
                Target::Blob(d) => format!("blob {d} unknown"),
                Target::Referrers(d) => format!("referrers of {d} unknown"),
            }
        }
    }
}

async fn error_body(resp: Response) -> ErrorBody {
    #[derive(serde::Deserialize)]
    struct Raw {
        #[serde(default)]
        errors: Vec<RawError>,
    }
    #[derive(serde::Deserialize)]
    struct RawError {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let Ok(Some(bytes)) = read_limited(resp, MAX_ERROR_BODY as u64).await else {
        return ErrorBody::default();
    };
    match serde_json::from_slice::<Raw>(&bytes) {
        Ok(raw) => ErrorBody {
            errors: raw
                .errors
                .into_iter()
                .map(|e| (e.code, e.message))
                .collect(),
        },
        Err(_) => {
            // Plain-text bodies (proxies, load balancers): quote a little.
            let text = String::from_utf8_lossy(&bytes);
            let text: String = text.trim().chars().take(200).collect();
            ErrorBody {
                errors: if text.is_empty() || text.starts_with('<') {
                    Vec::new()
                } else {
                    vec![(String::new(), text)]
                },
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Challenge {
    scheme: String,
    params: HashMap<String, String>,
}

/// Parses `WWW-Authenticate` (RFC 7235): one or more challenges, each a
/// scheme followed by comma-separated `key=value` or `key="quoted"` params.
fn parse_challenges(header: &str) -> Vec<Challenge> {
    let b: Vec<char> = header.chars().collect();
    let mut out: Vec<Challenge> = Vec::new();
    let mut i = 0;
    let is_sep = |c: char| c == ' ' || c == ',' || c == '\t';
    loop {
        while i < b.len() && is_sep(b[i]) {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && !is_sep(b[i]) && b[i] != '=' {
            i += 1;
        }
        let token: String = b[start..i].iter().collect();
        let mut j = i;
        while j < b.len() && b[j] == ' ' {
            j += 1;
        }
        if j < b.len() && b[j] == '=' {
            i = j + 1;
            while i < b.len() && b[i] == ' ' {
                i += 1;
            }
            let mut value = String::new();
            if i < b.len() && b[i] == '"' {
                i += 1;
                while i < b.len() && b[i] != '"' {
                    if b[i] == '\\' && i + 1 < b.len() {
                        i += 1;
                    }
                    value.push(b[i]);
                    i += 1;
                }
                i += 1;
            } else {
                while i < b.len() && !is_sep(b[i]) {
                    value.push(b[i]);
                    i += 1;
                }
            }
            if let Some(c) = out.last_mut() {
                c.params.insert(token.to_ascii_lowercase(), value);
            }
        } else {
            out.push(Challenge {
                scheme: token.to_ascii_lowercase(),
                params: HashMap::new(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_www_authenticate() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull,push",error="insufficient_scope""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].params["realm"], "https://auth.docker.io/token");
        assert_eq!(c[0].params["service"], "registry.docker.io");
        assert_eq!(c[0].params["scope"], "repository:library/debian:pull,push");
        assert_eq!(c[0].params["error"], "insufficient_scope");

        let c = parse_challenges(
            r#"Basic realm="Registry Realm", Bearer realm=https://x/t, service=x"#,
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].params["realm"], "Registry Realm");
        assert_eq!(c[1].params["realm"], "https://x/t");
        assert_eq!(c[1].params["service"], "x");

        assert_eq!(
            parse_challenges(r#"Basic realm="a \"q\"""#)[0].params["realm"],
            "a \"q\""
        );
        assert!(parse_challenges("").is_empty());
    }

    #[test]
    fn local_addresses_are_classified() {
        let kind = |s: &str| local_kind(s.parse().unwrap());
        assert_eq!(kind("127.0.0.1"), Some(LocalKind::Loopback));
        assert_eq!(kind("127.3.4.5"), Some(LocalKind::Loopback));
        assert_eq!(kind("::1"), Some(LocalKind::Loopback));
        assert_eq!(kind("::ffff:127.0.0.1"), Some(LocalKind::Loopback));
        assert_eq!(kind("::127.0.0.1"), Some(LocalKind::Loopback));
        assert_eq!(kind("0.0.0.0"), Some(LocalKind::Unspecified));
        assert_eq!(kind("::"), Some(LocalKind::Unspecified));
        assert_eq!(kind("169.254.169.254"), Some(LocalKind::LinkLocal));
        assert_eq!(kind("169.254.170.2"), Some(LocalKind::LinkLocal));
        assert_eq!(kind("::ffff:169.254.169.254"), Some(LocalKind::LinkLocal));
        assert_eq!(kind("fe80::1"), Some(LocalKind::LinkLocal));
        assert_eq!(kind("fd00:ec2::254"), Some(LocalKind::CloudMetadata));
        assert_eq!(kind("fd00:ec2::23"), Some(LocalKind::CloudMetadata));
        for public in [
            "52.216.1.1",
            "10.0.0.5",
            "fd00:1::1",
            "2600:1f18::1",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(kind(public), None, "{public}");
        }
    }

    #[test]
    fn destinations_exempt_only_the_registry_itself() {
        let d = |operator_named: bool, allow_loopback: bool| Destinations {
            registry_host: "127.0.0.1".into(),
            operator_named,
            allow_loopback,
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // The registry's own host, any port, when the operator named it;
        // not when only a job or an image did.
        assert_eq!(d(true, false).check("127.0.0.1", ip("127.0.0.1")), Ok(()));
        assert_eq!(
            d(false, false).check("127.0.0.1", ip("127.0.0.1")),
            Err(LocalKind::Loopback)
        );
        // Another loopback host: only with the knob.
        assert_eq!(
            d(true, false).check("localhost", ip("127.0.0.1")),
            Err(LocalKind::Loopback)
        );
        assert_eq!(
            d(true, false).check("127.0.0.2", ip("127.0.0.2")),
            Err(LocalKind::Loopback)
        );
        assert_eq!(d(false, true).check("localhost", ip("::1")), Ok(()));
        // Metadata: never, knob or not.
        for (host, addr) in [
            ("169.254.169.254", "169.254.169.254"),
            ("metadata.example", "169.254.170.2"),
            ("[fd00:ec2::254]", "fd00:ec2::254"),
        ] {
            assert!(d(true, true).check(host, ip(addr)).is_err(), "{host}");
        }
        // Not even as the registry itself.
        let meta = Destinations {
            registry_host: "169.254.169.254".into(),
            operator_named: true,
            allow_loopback: true,
        };
        assert_eq!(
            meta.check("169.254.169.254", ip("169.254.169.254")),
            Err(LocalKind::LinkLocal)
        );
        assert_eq!(
            d(false, false).check("registry.example", ip("52.216.1.1")),
            Ok(())
        );
    }

    /// `ImageUrl=169.254.169.254/x` or `127.0.0.1:5000/x` from a pipeline
    /// author: the registry itself is checked like a redirect target, for
    /// every local class, IPv4 and IPv6 (mapped and compatible forms too),
    /// unless the operator named it (loopback only) or set the knob.
    #[test]
    fn a_registry_the_job_names_on_a_local_address_is_refused() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let job_named = |host: &str| Destinations {
            registry_host: host.into(),
            operator_named: false,
            allow_loopback: false,
        };
        for (host, addr, kind) in [
            ("127.0.0.1", "127.0.0.1", LocalKind::Loopback),
            ("127.1.2.3", "127.1.2.3", LocalKind::Loopback),
            ("[::1]", "::1", LocalKind::Loopback),
            (
                "[::ffff:127.0.0.1]",
                "::ffff:127.0.0.1",
                LocalKind::Loopback,
            ),
            ("localhost", "127.0.0.1", LocalKind::Loopback),
            ("0.0.0.0", "0.0.0.0", LocalKind::Unspecified),
            ("[::]", "::", LocalKind::Unspecified),
            ("169.254.169.254", "169.254.169.254", LocalKind::LinkLocal),
            ("169.254.170.2", "169.254.170.2", LocalKind::LinkLocal),
            (
                "[::ffff:169.254.169.254]",
                "::ffff:169.254.169.254",
                LocalKind::LinkLocal,
            ),
            (
                "[::169.254.169.254]",
                "::169.254.169.254",
                LocalKind::LinkLocal,
            ),
            ("[fe80::1]", "fe80::1", LocalKind::LinkLocal),
            ("[fd00:ec2::254]", "fd00:ec2::254", LocalKind::CloudMetadata),
        ] {
            assert_eq!(job_named(host).check(host, ip(addr)), Err(kind), "{host}");
        }
        // The operator's own registry on loopback, or the knob: allowed;
        // link-local and metadata stay refused either way.
        let operator = |host: &str, allow_loopback: bool| Destinations {
            registry_host: host.into(),
            operator_named: !allow_loopback,
            allow_loopback,
        };
        for allow in [false, true] {
            assert_eq!(
                operator("127.0.0.1", allow).check("127.0.0.1", ip("127.0.0.1")),
                Ok(())
            );
            assert_eq!(
                operator("169.254.169.254", allow).check("169.254.169.254", ip("169.254.169.254")),
                Err(LocalKind::LinkLocal)
            );
            assert_eq!(
                operator("0.0.0.0", allow).check("0.0.0.0", ip("0.0.0.0")),
                Err(LocalKind::Unspecified)
            );
        }
        assert_eq!(
            job_named("registry.example").check("registry.example", ip("52.216.1.1")),
            Ok(())
        );
    }

    #[tokio::test]
    async fn a_registry_client_refuses_a_job_named_local_registry_as_a_configuration_error() {
        for image in [
            "169.254.169.254/latest/meta-data:x",
            "169.254.170.2/v2/credentials:x",
            "127.0.0.1:5000/app:1",
            "localhost:5000/app:1",
        ] {
            let reference: ImageRef = image.parse().unwrap();
            let opts = crate::image::PullOptions::default();
            let client = super::super::client(&reference, &opts).unwrap();
            let started = std::time::Instant::now();
            let e = client
                .get(Target::Manifest("x"), None)
                .await
                .expect_err(image);
            assert_eq!(
                e.failure_class(),
                crate::image::FailureClass::Configuration,
                "{image}: {e}"
            );
            let m = e.to_string();
            assert!(m.contains("refusing to connect to"), "{image}: {m}");
            // Refused before any connection, not tried and timed out.
            assert!(started.elapsed() < Duration::from_secs(5), "{image}");
        }
    }

    #[tokio::test]
    async fn check_url_refuses_literal_and_resolved_local_targets() {
        let d = Destinations {
            registry_host: "registry.example".into(),
            operator_named: false,
            allow_loopback: false,
        };
        let url = |s: &str| Url::parse(s).unwrap();
        let e = d
            .check_url(&url("http://169.254.169.254/latest/meta-data/"))
            .await
            .unwrap_err();
        assert!(
            e.contains("169.254.169.254") && e.contains("link-local"),
            "{e}"
        );
        // The URL parser's normalisation of odd IPv4 forms is what is checked.
        assert!(d.check_url(&url("http://0xa9fea9fe/")).await.is_err());
        assert!(d.check_url(&url("http://[fd00:ec2::254]/")).await.is_err());
        let e = d
            .check_url(&url("http://localhost:9000/blob"))
            .await
            .unwrap_err();
        assert!(
            e.contains("loopback") && e.contains(ALLOW_LOCAL_ENV) && e.contains(ALLOW_LOOPBACK_ENV),
            "{e}"
        );
        // A name that does not resolve is left to the request.
        assert!(
            d.check_url(&url("https://does-not-exist.invalid/"))
                .await
                .is_ok()
        );
    }

    #[test]
    fn credentials_debug_hides_password() {
        let c = Credentials {
            username: "AWS".into(),
            password: "s3cr3t-token".into(),
        };
        let s = format!("{c:?}");
        assert!(s.contains("AWS"));
        assert!(!s.contains("s3cr3t"));
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        let base = Duration::from_millis(100);
        assert!(backoff(base, 1, None) >= base);
        assert!(backoff(base, 1, None) < base * 2);
        assert!(backoff(base, 3, None) >= base * 4);
        assert!(backoff(base, 30, None) <= MAX_BACKOFF + base);
        assert_eq!(
            backoff(base, 1, Some(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
        assert_eq!(
            backoff(base, 1, Some(Duration::from_secs(500))),
            MAX_RETRY_AFTER
        );
    }

    #[test]
    fn statuses_worth_retrying() {
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(retryable(StatusCode::BAD_GATEWAY));
        assert!(!retryable(StatusCode::NOT_IMPLEMENTED));
        assert!(!retryable(StatusCode::NOT_FOUND));
        assert!(!retryable(StatusCode::UNAUTHORIZED));
    }
}
