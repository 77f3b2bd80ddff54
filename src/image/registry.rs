//! A Docker Registry HTTP API v2 / OCI distribution client for pulls: GET of
//! manifests and blobs, with the three ways registries authenticate
//! (anonymous, Basic, Bearer tokens from a token service), bounded retries
//! of what is worth retrying, and registry answers turned into errors a
//! pipeline operator can act on.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::{
    ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{RequestBuilder, Response, StatusCode, Url};

use super::error::ImageError;
use super::reference::ImageRef;

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
}

impl Target<'_> {
    fn path(&self) -> String {
        match self {
            Target::Manifest(r) => format!("manifests/{r}"),
            Target::Blob(d) => format!("blobs/{d}"),
        }
    }

    fn describe(&self) -> String {
        match self {
            Target::Manifest(r) => format!("manifest {r}"),
            Target::Blob(d) => format!("blob {d}"),
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
    /// Bearer tokens by scope, so that blob requests reuse the token the
    /// manifest request obtained.
    tokens: HashMap<String, String>,
    scope: Option<String>,
}

/// A client for one repository of one registry, for the duration of a pull.
pub(crate) struct RegistryClient {
    http: reqwest::Client,
    registry: String,
    base: String,
    repository: String,
    /// The reference as the user wrote it (normalised), for "not found".
    image: String,
    credentials: Option<Credentials>,
    insecure_hosts: Vec<String>,
    max_attempts: u32,
    base_delay: Duration,
    auth: Mutex<AuthState>,
}

pub(crate) struct RegistryOptions<'a> {
    pub insecure_registries: &'a [String],
    pub credentials: Option<&'a Credentials>,
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
        let http = reqwest::Client::builder()
            .user_agent(opts.user_agent)
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build()
            .map_err(|e| ImageError::Client(error_chain(&e)))?;
        Ok(RegistryClient {
            http,
            registry: reference.registry.clone(),
            base: format!(
                "{scheme}://{}/v2/{}",
                reference.registry, reference.repository
            ),
            repository: reference.repository.clone(),
            image: reference.to_string(),
            credentials: opts.credentials.cloned(),
            insecure_hosts,
            max_attempts: opts.max_attempts.max(1),
            base_delay: opts.base_delay,
            auth: Mutex::new(AuthState {
                mode: AuthMode::Anonymous,
                tokens: HashMap::new(),
                scope: None,
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
        let url = format!("{}/{}", self.base, target.path());
        let small = matches!(target, Target::Manifest(_));
        let mut auth_rounds = 0;
        loop {
            let resp = self
                .send_retrying(&target.describe(), || {
                    let mut req = self.http.get(&url);
                    if let Some(a) = accept {
                        req = req.header(ACCEPT, a);
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

    fn authorize(&self, req: RequestBuilder) -> RequestBuilder {
        let state = self.auth.lock().expect("auth state lock");
        match (state.mode, &self.credentials) {
            (AuthMode::Basic, Some(c)) => req.basic_auth(&c.username, Some(&c.password)),
            (AuthMode::Bearer, _) => match state.scope.as_ref().and_then(|s| state.tokens.get(s)) {
                Some(token) => req.bearer_auth(token),
                None => req,
            },
            _ => req,
        }
    }

    fn unauthorized(&self, status: StatusCode, detail: Option<String>) -> ImageError {
        ImageError::Unauthorized {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            status: status.as_u16(),
            detail,
            hint: if self.credentials.is_some() {
                HINT_CREDENTIALS
            } else {
                HINT_NO_CREDENTIALS
            },
        }
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
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            return self.fetch_token(bearer).await;
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            let mut state = self.auth.lock().expect("auth state lock");
            if self.credentials.is_some() && state.mode != AuthMode::Basic {
                state.mode = AuthMode::Basic;
                return Ok(());
            }
        }
        Err(self.unauthorized(StatusCode::UNAUTHORIZED, errors.message()))
    }

    async fn fetch_token(&self, challenge: &Challenge) -> Result<(), ImageError> {
        let protocol = |detail: String| ImageError::Protocol {
            registry: self.registry.clone(),
            what: "authentication challenge".into(),
            detail,
        };
        let realm = challenge
            .params
            .get("realm")
            .ok_or_else(|| protocol("Bearer challenge without a realm".into()))?;
        let mut url =
            Url::parse(realm).map_err(|e| protocol(format!("token realm {realm:?}: {e}")))?;
        let realm_host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(protocol(format!("token realm {realm:?} has no host"))),
        };
        if url.scheme() != "https"
            && self.credentials.is_some()
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
        let scope = challenge
            .params
            .get("scope")
            .cloned()
            .unwrap_or_else(|| format!("repository:{}:pull", self.repository));
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = challenge.params.get("service") {
                q.append_pair("service", service);
            }
            q.append_pair("scope", &scope);
            if let Some(c) = &self.credentials {
                q.append_pair("account", &c.username);
            }
        }
        let what = format!("token from {realm_host}");
        let resp = self
            .send_retrying(&what, || {
                let req = self.http.get(url.clone()).timeout(SMALL_REQUEST_TIMEOUT);
                match &self.credentials {
                    Some(c) => req.basic_auth(&c.username, Some(&c.password)),
                    None => req,
                }
            })
            .await?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let body = error_body(resp).await;
            let detail = format!(
                "the token service {realm_host} refused{}",
                body.message().map(|m| format!(": {m}")).unwrap_or_default()
            );
            return Err(self.unauthorized(status, Some(detail)));
        }
        if !status.is_success() {
            let body = error_body(resp).await;
            return Err(ImageError::Protocol {
                registry: self.registry.clone(),
                what,
                detail: format!(
                    "unexpected HTTP {}{}",
                    status.as_u16(),
                    body.message().map(|m| format!(": {m}")).unwrap_or_default()
                ),
            });
        }
        let body = match read_limited(resp, MAX_TOKEN_BODY as u64).await {
            Ok(Some(b)) => b,
            Ok(None) => return Err(protocol("token response too large".into())),
            Err(e) => {
                return Err(ImageError::Unavailable {
                    registry: self.registry.clone(),
                    attempts: 1,
                    detail: format!("reading the {what} failed: {e}"),
                });
            }
        };
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| protocol(format!("token response is not valid JSON: {e}")))?;
        let token = parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| protocol("token response has no token".into()))?;
        let mut state = self.auth.lock().expect("auth state lock");
        state.mode = AuthMode::Bearer;
        state.tokens.insert(scope.clone(), token);
        state.scope = Some(scope);
        Ok(())
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
                Target::Manifest(_) => "blob unknown".into(),
            }
        } else {
            match target {
                Target::Manifest(_) => "manifest unknown".into(),
                Target::Blob(d) => format!("blob {d} unknown"),
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
