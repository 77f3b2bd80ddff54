//! Amazon ECR registries: credentials are the `AWS:PASSWORD` pair that
//! `ecr:GetAuthorizationToken` returns base64-encoded, valid for 12 hours.
//! One token per (account, region) is kept until 5 minutes before it
//! expires, so a busy worker makes one call per registry every ~12 hours.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_sdk_ecr::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use base64::Engine as _;
use tokio::sync::{Mutex, OnceCell};

use crate::image::error::FailureClass;
use crate::image::registry::Credentials;

/// A token is replaced this long before ECR says it expires, so that a
/// pull that starts with it does not outlive it.
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// When ECR gives no expiry (it always does today), assume this.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(60 * 60);
/// Partitions' DNS suffixes of ECR registry endpoints.
const SUFFIXES: &[&str] = &[
    "amazonaws.com",
    "amazonaws.com.cn",
    "on.aws",
    "amazonaws.eu",
    "c2s.ic.gov",
    "sc2s.sgov.gov",
    "cloud.adc-e.uk",
    "csp.hci.ic.gov",
];

/// A private ECR registry, from its host name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct EcrHost {
    pub account: String,
    pub region: String,
    pub fips: bool,
}

impl EcrHost {
    /// `ACCOUNT.dkr.ecr[-fips].REGION.SUFFIX` and the dual-stack
    /// `ACCOUNT.dkr-ecr[-fips].REGION.SUFFIX`; a `:port` is ignored (the
    /// tests reach an ECR-named registry on a local port).
    pub fn parse(registry: &str) -> Option<EcrHost> {
        let host = registry.to_ascii_lowercase();
        let host = match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h.to_owned(),
            _ => host,
        };
        let (account, rest) = host.split_once('.')?;
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let rest = rest
            .strip_prefix("dkr.ecr")
            .or_else(|| rest.strip_prefix("dkr-ecr"))?;
        let (fips, rest) = match rest.strip_prefix("-fips") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let rest = rest.strip_prefix('.')?;
        let (region, suffix) = rest.split_once('.')?;
        let region_ok = !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        (region_ok && SUFFIXES.contains(&suffix)).then(|| EcrHost {
            account: account.to_owned(),
            region: region.to_owned(),
            fips,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum EcrError {
    #[error("GetAuthorizationToken in {region} failed: {code}: {message}")]
    Service {
        region: String,
        code: String,
        message: String,
    },
    #[error("GetAuthorizationToken in {region} failed: {detail}")]
    Call { region: String, detail: String },
    #[error("GetAuthorizationToken in {region} returned {what}")]
    BadToken { region: String, what: &'static str },
}

impl EcrError {
    pub fn class(&self) -> FailureClass {
        match self {
            Self::Service { code, .. } => match code.as_str() {
                "AccessDeniedException"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "ExpiredTokenException"
                | "InvalidClientTokenId"
                | "AuthFailure" => FailureClass::Permission,
                "InvalidParameterException" => FailureClass::Configuration,
                _ => FailureClass::Unavailable,
            },
            Self::Call { detail, .. } if detail.to_ascii_lowercase().contains("credentials") => {
                // No AWS identity at all: the worker's role is what is missing.
                FailureClass::Permission
            }
            Self::Call { .. } => FailureClass::Unavailable,
            Self::BadToken { .. } => FailureClass::Corrupt,
        }
    }
}

#[derive(Clone)]
struct Cached {
    credentials: Credentials,
    refresh_at: SystemTime,
}

pub(crate) struct EcrAuth {
    sdk: OnceCell<aws_config::SdkConfig>,
    /// Held across the call, so that concurrent pulls from one registry
    /// make one call, not one each.
    cache: Mutex<HashMap<(String, String), Cached>>,
}

impl EcrAuth {
    pub fn new(sdk: Option<aws_config::SdkConfig>) -> Self {
        EcrAuth {
            sdk: match sdk {
                Some(s) => OnceCell::new_with(Some(s)),
                None => OnceCell::new(),
            },
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub async fn credentials(&self, host: &EcrHost) -> Result<Credentials, EcrError> {
        let key = (host.account.clone(), host.region.clone());
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.get(&key)
            && SystemTime::now() < c.refresh_at
        {
            return Ok(c.credentials.clone());
        }
        let fetched = self.fetch(host).await?;
        cache.insert(key, fetched.clone());
        Ok(fetched.credentials)
    }

    async fn fetch(&self, host: &EcrHost) -> Result<Cached, EcrError> {
        let sdk = self
            .sdk
            .get_or_init(|| aws_config::load_defaults(aws_config::BehaviorVersion::latest()))
            .await;
        // The registry's own region, whatever the worker's default is; the
        // endpoint still honours AWS_ENDPOINT_URL_ECR.
        let mut conf = aws_sdk_ecr::config::Builder::from(sdk)
            .region(aws_sdk_ecr::config::Region::new(host.region.clone()));
        if host.fips {
            conf = conf.use_fips(true);
        }
        let client = aws_sdk_ecr::Client::from_conf(conf.build());
        tracing::debug!(account = %host.account, region = %host.region, "getting an ECR authorization token");
        // registryIds no longer narrows the token (the API documents it as
        // deprecated), but it makes the call name the registry it is for,
        // which is what CloudTrail and cross-account policies show.
        #[allow(deprecated)]
        let out = client
            .get_authorization_token()
            .registry_ids(&host.account)
            .send()
            .await
            .map_err(|e| match &e {
                SdkError::ServiceError(se) => EcrError::Service {
                    region: host.region.clone(),
                    code: se.err().code().unwrap_or("Unknown").to_owned(),
                    message: se.err().message().unwrap_or_default().to_owned(),
                },
                _ => EcrError::Call {
                    region: host.region.clone(),
                    detail: DisplayErrorContext(&e).to_string(),
                },
            })?;
        let bad = |what| EcrError::BadToken {
            region: host.region.clone(),
            what,
        };
        let data = out
            .authorization_data()
            .first()
            .ok_or_else(|| bad("no authorization data"))?;
        let token = data
            .authorization_token()
            .ok_or_else(|| bad("no authorization token"))?;
        let credentials = decode_token(token)
            .ok_or_else(|| bad("a token that is not base64 of USER:PASSWORD"))?;
        let expires = data
            .expires_at()
            .and_then(|t| SystemTime::try_from(*t).ok())
            .unwrap_or_else(|| SystemTime::now() + DEFAULT_LIFETIME);
        Ok(Cached {
            credentials,
            refresh_at: expires
                .checked_sub(REFRESH_MARGIN)
                .unwrap_or(SystemTime::UNIX_EPOCH),
        })
    }
}

/// `base64("AWS:PASSWORD")` → the pair.
fn decode_token(token: &str) -> Option<Credentials> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, pass) = text.split_once(':')?;
    (!user.is_empty() && !pass.is_empty()).then(|| Credentials {
        username: user.to_owned(),
        password: pass.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_ecr_hosts() {
        let h = |s| EcrHost::parse(s);
        let e = |a: &str, r: &str, fips| {
            Some(EcrHost {
                account: a.into(),
                region: r.into(),
                fips,
            })
        };
        assert_eq!(
            h("123456789012.dkr.ecr.us-east-1.amazonaws.com"),
            e("123456789012", "us-east-1", false)
        );
        assert_eq!(
            h("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com"),
            e("123456789012", "us-gov-west-1", true)
        );
        assert_eq!(
            h("123456789012.dkr-ecr-fips.us-east-2.on.aws"),
            e("123456789012", "us-east-2", true)
        );
        assert_eq!(
            h("123456789012.dkr-ecr.eu-west-1.on.aws"),
            e("123456789012", "eu-west-1", false)
        );
        assert_eq!(
            h("123456789012.DKR.ECR.cn-north-1.amazonaws.com.cn:5000"),
            e("123456789012", "cn-north-1", false)
        );
        for not in [
            "public.ecr.aws",
            "12345678901.dkr.ecr.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example",
            "123456789012.dkr.ecr..amazonaws.com",
            "123456789012.dkr.ecrx.us-east-1.amazonaws.com",
            "registry-1.docker.io",
            "",
        ] {
            assert_eq!(h(not), None, "{not}");
        }
    }

    async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_ecr::config::Credentials::new(
                "AKIDTEST", "test", None, None, "test",
            ))
            .load()
            .await
    }

    fn host(account: &str, region: &str) -> EcrHost {
        EcrHost {
            account: account.into(),
            region: region.into(),
            fips: false,
        }
    }

    #[tokio::test]
    async fn tokens_are_cached_per_account_and_region_until_near_expiry() {
        let emu = integration_tests::ecr::EcrEmulator::start(
            "AWS",
            "pw-12h",
            Duration::from_secs(12 * 3600),
        )
        .await
        .unwrap();
        let ecr = EcrAuth::new(Some(sdk(&emu.url()).await));
        for _ in 0..3 {
            let c = ecr
                .credentials(&host("111111111111", "eu-west-1"))
                .await
                .unwrap();
            assert_eq!(
                (c.username.as_str(), c.password.as_str()),
                ("AWS", "pw-12h")
            );
        }
        assert_eq!(emu.calls().len(), 1);
        ecr.credentials(&host("222222222222", "eu-west-1"))
            .await
            .unwrap();
        ecr.credentials(&host("111111111111", "ap-south-1"))
            .await
            .unwrap();
        let calls = emu.calls();
        assert_eq!(calls.len(), 3);
        assert_eq!(calls[2].registry_ids, vec!["111111111111".to_owned()]);
        assert_eq!(calls[2].signed_region.as_deref(), Some("ap-south-1"));

        // A token with less than the refresh margin left is not reused.
        let short =
            integration_tests::ecr::EcrEmulator::start("AWS", "pw-4m", Duration::from_secs(4 * 60))
                .await
                .unwrap();
        let ecr = EcrAuth::new(Some(sdk(&short.url()).await));
        ecr.credentials(&host("111111111111", "eu-west-1"))
            .await
            .unwrap();
        ecr.credentials(&host("111111111111", "eu-west-1"))
            .await
            .unwrap();
        assert_eq!(short.calls().len(), 2);

        short.deny();
        let e = ecr
            .credentials(&host("111111111111", "eu-west-1"))
            .await
            .unwrap_err();
        assert_eq!(e.class(), FailureClass::Permission);
        assert!(e.to_string().contains("AccessDeniedException"), "{e}");
    }

    #[test]
    fn decodes_authorization_tokens() {
        let c = decode_token("QVdTOnNlY3JldDpwYXJ0").unwrap();
        assert_eq!(c.username, "AWS");
        // Only the first ':' separates: passwords may contain more.
        assert_eq!(c.password, "secret:part");
        assert!(decode_token("not base64!").is_none());
        assert!(decode_token("QVdT").is_none()); // "AWS", no password
    }
}
