//! Untrusted images (NIST SP 800-190 §4.1.5): is the manifest that was
//! scanned signed by someone the policy trusts?
//!
//! A producer of its own: it takes the image reference, the digest that
//! was scanned, the trust material of the policy's `signature:` section and
//! the pull options (for the same host-bound credentials), and returns a
//! [`SignatureVerdict`]. It knows nothing of the pipeline or the job.
//!
//! Signatures are discovered through the OCI 1.1 referrers API (falling
//! back to the referrers tag `sha256-HEX` when the registry has no such
//! API) and cosign's `sha256-HEX.sig` tag, and verified as
//! - cosign key-pair signatures ([`cosign`]): a policy key over the
//!   simple-signing payload, whose digest must be the scanned one;
//! - Notary Project signatures ([`notation`], Notation and AWS Signer):
//!   JWS or COSE envelope, chain to a root of the policy's trust store,
//!   trusted identity, expiry, and the payload's digest.
//!
//! The registry is trusted for nothing: keys and roots come from the policy,
//! and every byte fetched is bounded and checked against its digest.

mod cbor;
pub mod cfg;
pub mod cosign;
mod der;
pub mod discover;
#[cfg(test)]
mod e2e;
pub mod keys;
pub mod kms;
pub mod layout;
pub mod notation;

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::image::{ImageError, ImageRef, PullOptions};

pub use cfg::{SignaturePolicy, SignaturePolicyError, TrustMaterial, TrustedIdentity};
pub use discover::DiscoveryLimits;
pub use keys::{KeyError, KmsPublicKeys, PublicKey};
pub use kms::AwsKms;

use discover::{Descriptor, Fetcher, Origin, ReferrersSource, SignatureManifest, is_sha256_digest};

/// A whole signature check (all requests, all retries) takes at most this.
pub const MAX_CHECK_TIME: Duration = Duration::from_secs(180);

/// Why one signature did not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// The signature does not verify with its own certificate's key
    /// (Notation): altered payload or envelope.
    BadSignature,
    /// No key of the policy verifies it (cosign): signed with another key,
    /// or altered.
    UntrustedKey,
    /// Valid, but over another manifest.
    WrongDigest { signed: String },
    /// The signature (or its certificate chain) has expired.
    Expired { at: String },
    /// Chains to the trust store but the signer is none of the identities.
    IdentityMismatch { found: String },
    /// The certificate chain does not lead to a root of the trust store.
    UntrustedRoot(String),
    /// The policy has nothing to verify this kind of signature with.
    NoTrustMaterial(&'static str),
    /// Not a well-formed signature of its kind.
    Malformed(String),
}

impl Invalid {
    /// A stable short name for reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Invalid::BadSignature => "invalid-signature",
            Invalid::UntrustedKey => "untrusted-key",
            Invalid::WrongDigest { .. } => "wrong-digest",
            Invalid::Expired { .. } => "expired",
            Invalid::IdentityMismatch { .. } => "identity-mismatch",
            Invalid::UntrustedRoot(_) => "untrusted-root",
            Invalid::NoTrustMaterial(_) => "no-trust-material",
            Invalid::Malformed(_) => "malformed",
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::BadSignature => {
                f.write_str("invalid signature: it does not verify with its signing certificate")
            }
            Invalid::UntrustedKey => f.write_str(
                "untrusted key: no key of signature.cosign.keys verifies it (signed with another key, or altered)",
            ),
            Invalid::WrongDigest { signed } => write!(
                f,
                "wrong digest: it signs {signed}, not the manifest that was scanned"
            ),
            Invalid::Expired { at } => write!(f, "expired: {at}"),
            Invalid::IdentityMismatch { found } => write!(
                f,
                "identity mismatch: signed by {found}, which is none of signature.notation.identities"
            ),
            Invalid::UntrustedRoot(d) => write!(f, "untrusted root: {d}"),
            Invalid::NoTrustMaterial(section) => write!(
                f,
                "not checked against anything: the policy has no signature.{section}"
            ),
            Invalid::Malformed(d) => write!(f, "malformed: {d}"),
        }
    }
}

impl Serialize for Invalid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Invalid", 2)?;
        st.serialize_field("kind", self.kind())?;
        st.serialize_field("detail", &self.to_string())?;
        st.end()
    }
}

/// Which kind of signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureScheme {
    Cosign,
    Notation,
}

impl fmt::Display for SignatureScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignatureScheme::Cosign => "cosign",
            SignatureScheme::Notation => "notation",
        })
    }
}

/// One signature that was found and did not count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub scheme: SignatureScheme,
    /// Where it was found: `referrer sha256:…`, `tag sha256-….sig`.
    pub source: String,
    pub reason: Invalid,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} signature ({}): {}",
            self.scheme, self.source, self.reason
        )
    }
}

/// The outcome of the signature check: the `SIGNATURE` output variable
/// ([`SignatureVerdict::name`]) and the reason a report shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SignatureVerdict {
    /// A signature the policy trusts covers the scanned digest.
    Verified {
        scheme: SignatureScheme,
        source: String,
        /// Which key (label and id) or which certificate subject and
        /// identity verified.
        signer: String,
    },
    /// No signature of any kind was found for the digest.
    Unsigned { detail: String },
    /// Signatures were found; none is valid and trusted.
    Invalid { rejections: Vec<Rejection> },
    /// The check did not run (no policy section, no registry, the registry
    /// could not be asked): with `required: true` this fails the gate too.
    NotChecked { detail: String },
}

impl SignatureVerdict {
    /// `VERIFIED`, `UNSIGNED`, `INVALID` or `NOT_CHECKED`: the `SIGNATURE`
    /// output variable's value, taken from it so the two cannot drift.
    pub fn name(&self) -> &'static str {
        crate::risks::SignatureStatus::of(self).as_str()
    }

    /// Whether a policy with `signature.required` fails on this verdict:
    /// anything but a verified signature (fail closed).
    pub fn fails(&self, required: bool) -> bool {
        required && !matches!(self, SignatureVerdict::Verified { .. })
    }

    /// One paragraph for the failure message and the reports.
    pub fn reason(&self) -> String {
        match self {
            SignatureVerdict::Verified {
                scheme,
                source,
                signer,
            } => format!("signed: {scheme} signature ({source}) verified by {signer}"),
            SignatureVerdict::Unsigned { detail } => format!("unsigned: {detail}"),
            SignatureVerdict::Invalid { rejections } => {
                let shown: Vec<String> = rejections.iter().take(5).map(|r| r.to_string()).collect();
                let more = rejections.len().saturating_sub(shown.len());
                format!(
                    "no valid signature: {}{}",
                    shown.join("; "),
                    if more > 0 {
                        format!("; and {more} more")
                    } else {
                        String::new()
                    }
                )
            }
            SignatureVerdict::NotChecked { detail } => format!("signature not checked: {detail}"),
        }
    }
}

pub(crate) fn describe_time(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Checks the signatures of `digest` (the manifest actually scanned) in
/// `image`'s repository against `trust`. Never fails: what went wrong is
/// in the verdict.
pub async fn verify(
    image: &ImageRef,
    digest: &str,
    trust: &TrustMaterial,
    opts: &PullOptions,
) -> SignatureVerdict {
    verify_with(
        image,
        digest,
        trust,
        opts,
        &DiscoveryLimits::default(),
        OffsetDateTime::now_utc(),
    )
    .await
}

/// [`verify`] for a pull: the scanned platform manifest's digest first,
/// then, when the reference named a multi-platform index, the index's
/// digest. A signature over the index covers the scanned manifest: the pull
/// checked the index bytes against that digest and took the platform
/// manifest's digest from them (and `cosign sign` of a multi-platform tag
/// signs the index only).
pub async fn verify_image(
    image: &ImageRef,
    manifest_digest: &str,
    index_digest: Option<&str>,
    trust: &TrustMaterial,
    opts: &PullOptions,
) -> SignatureVerdict {
    platform_then_index(manifest_digest, index_digest, |d| {
        verify(image, d, trust, opts)
    })
    .await
}

/// [`verify_image`] for an image read from the OCI image layout `dir`:
/// the signatures stored in the layout itself (see [`layout`]).
pub async fn verify_layout_image(
    dir: &Path,
    manifest_digest: &str,
    index_digest: Option<&str>,
    trust: &TrustMaterial,
) -> SignatureVerdict {
    let limits = DiscoveryLimits::default();
    let now = OffsetDateTime::now_utc();
    platform_then_index(manifest_digest, index_digest, |d| {
        verify_layout_with(dir, d, trust, &limits, now)
    })
    .await
}

/// The verdict over the platform manifest, or else over the index that
/// lists it.
async fn platform_then_index<'d, F, Fut>(
    manifest_digest: &'d str,
    index_digest: Option<&'d str>,
    verify_one: F,
) -> SignatureVerdict
where
    F: Fn(&'d str) -> Fut,
    Fut: Future<Output = SignatureVerdict>,
{
    let platform = verify_one(manifest_digest).await;
    let Some(index) = index_digest.filter(|i| *i != manifest_digest) else {
        return platform;
    };
    if matches!(platform, SignatureVerdict::Verified { .. }) {
        return platform;
    }
    let over_index = verify_one(index).await;
    combine(platform, over_index, index)
}

/// The verdict of a platform manifest and of the index that lists it.
fn combine(
    platform: SignatureVerdict,
    index: SignatureVerdict,
    index_digest: &str,
) -> SignatureVerdict {
    use SignatureVerdict as V;
    match (platform, index) {
        (
            _,
            V::Verified {
                scheme,
                source,
                signer,
            },
        ) => V::Verified {
            scheme,
            source: format!(
                "{source}, over the index {index_digest} that lists the scanned manifest"
            ),
            signer,
        },
        (V::Invalid { mut rejections }, V::Invalid { rejections: more }) => {
            rejections.extend(more);
            V::Invalid { rejections }
        }
        (v @ (V::Invalid { .. } | V::NotChecked { .. }), _) => v,
        (V::Unsigned { .. }, v @ (V::Invalid { .. } | V::NotChecked { .. })) => v,
        (
            V::Unsigned { detail },
            V::Unsigned {
                detail: index_detail,
            },
        ) => V::Unsigned {
            detail: format!("{detail}; its index {index_detail}"),
        },
        (v @ V::Verified { .. }, _) => v,
    }
}

/// Why a check cannot start, before anything is fetched.
fn unanswerable(digest: &str, trust: &TrustMaterial) -> Option<SignatureVerdict> {
    let detail = if trust.is_empty() {
        "the policy names no signature keys and no trust store".to_owned()
    } else if !is_sha256_digest(digest) {
        format!("{digest:?} is not a sha256 manifest digest")
    } else {
        return None;
    };
    Some(SignatureVerdict::NotChecked { detail })
}

/// [`verify`] with explicit limits and "now" (tests).
pub async fn verify_with(
    image: &ImageRef,
    digest: &str,
    trust: &TrustMaterial,
    opts: &PullOptions,
    limits: &DiscoveryLimits,
    now: OffsetDateTime,
) -> SignatureVerdict {
    if let Some(v) = unanswerable(digest, trust) {
        return v;
    }
    let client = match crate::image::client(&image.with_digest(digest), opts) {
        Ok(c) => c,
        Err(e) => {
            return SignatureVerdict::NotChecked {
                detail: format!("no registry client: {e}"),
            };
        }
    };
    let fetcher = Fetcher {
        origin: Origin::Registry(&client),
        limits,
    };
    bounded(&fetcher, digest, trust, now, "the registry").await
}

/// The signatures of `digest` stored in the OCI image layout `dir`, with
/// explicit limits and "now".
pub async fn verify_layout_with(
    dir: &Path,
    digest: &str,
    trust: &TrustMaterial,
    limits: &DiscoveryLimits,
    now: OffsetDateTime,
) -> SignatureVerdict {
    if let Some(v) = unanswerable(digest, trust) {
        return v;
    }
    let layout = match layout::Layout::open(dir, limits) {
        Ok(l) => l,
        Err(e) => {
            return SignatureVerdict::NotChecked {
                detail: format!(
                    "the OCI layout {} could not be searched for signatures: {e}",
                    dir.display()
                ),
            };
        }
    };
    let fetcher = Fetcher {
        origin: Origin::Layout(&layout),
        limits,
    };
    bounded(&fetcher, digest, trust, now, "the OCI layout").await
}

/// [`check`] within the time limit; what could not be answered is
/// NOT_CHECKED (which a required policy fails on).
async fn bounded(
    fetcher: &Fetcher<'_>,
    digest: &str,
    trust: &TrustMaterial,
    now: OffsetDateTime,
    origin: &str,
) -> SignatureVerdict {
    let limit = fetcher.limits.max_time;
    let detail = match tokio::time::timeout(limit, check(fetcher, digest, trust, now)).await {
        Ok(Ok(verdict)) => return verdict,
        Ok(Err(e)) => format!("{origin} could not be asked for signatures: {e}"),
        Err(_) => format!("looking for signatures took more than {limit:?}"),
    };
    SignatureVerdict::NotChecked { detail }
}

/// Everything found so far.
struct Findings {
    examined: usize,
    rejections: Vec<Rejection>,
}

impl Findings {
    fn reject(&mut self, scheme: SignatureScheme, source: &str, reason: Invalid) {
        self.rejections.push(Rejection {
            scheme,
            source: source.to_owned(),
            reason,
        });
    }
}

async fn check(
    f: &Fetcher<'_>,
    digest: &str,
    trust: &TrustMaterial,
    now: OffsetDateTime,
) -> Result<SignatureVerdict, ImageError> {
    let mut found = Findings {
        examined: 0,
        rejections: Vec::new(),
    };
    let (referrers, source) = f.referrers(digest).await?;
    let signatures = referrers.iter().filter(|d| {
        matches!(
            d.artifact_type.as_deref(),
            Some(notation::ARTIFACT_TYPE | cosign::SIG_ARTIFACT_TYPE)
        )
    });
    for desc in signatures {
        check_cancelled()?;
        if found.examined >= f.limits.max_signatures {
            break;
        }
        found.examined += 1;
        if let Some(v) = check_referrer(f, desc, digest, trust, now, &mut found).await? {
            return Ok(v);
        }
    }
    let tag = cosign::signature_tag(digest);
    if found.examined < f.limits.max_signatures
        && let Some(manifest) = f.manifest_by_tag(&tag).await?
    {
        found.examined += 1;
        let source = format!("tag {tag}");
        if let Some(v) =
            check_cosign_manifest(f, manifest, &source, digest, trust, &mut found).await?
        {
            return Ok(v);
        }
    }
    for desc in f.cosign_saved() {
        check_cancelled()?;
        if found.examined >= f.limits.max_signatures {
            break;
        }
        found.examined += 1;
        let source = format!(
            "cosign save signatures {}",
            discover::truncate(&desc.digest)
        );
        let manifest = f.manifest_by_digest(&desc).await?;
        if let Some(v) =
            check_cosign_manifest(f, manifest, &source, digest, trust, &mut found).await?
        {
            return Ok(v);
        }
    }
    if found.examined == 0 {
        let referrers = match source {
            ReferrersSource::Api => "no signature among its OCI referrers",
            ReferrersSource::FallbackTag => {
                "no signature in its referrers tag (the registry has no referrers API)"
            }
            ReferrersSource::None => {
                "no OCI referrers (the registry has no referrers API and there is no referrers tag)"
            }
            ReferrersSource::Layout => {
                "no signature in its OCI layout (no manifest there has it as subject, no referrers tag, no cosign save signatures)"
            }
        };
        return Ok(SignatureVerdict::Unsigned {
            detail: format!("{digest} has {referrers} and no cosign tag {tag}"),
        });
    }
    Ok(SignatureVerdict::Invalid {
        rejections: found.rejections,
    })
}

fn check_cancelled() -> Result<(), ImageError> {
    crate::cancel::checkpoint().map_err(|c| ImageError::Client(c.to_string()))
}

/// One referrer: fetch its manifest, check it is a referrer of `digest`,
/// and verify it as its artifact type says.
async fn check_referrer(
    f: &Fetcher<'_>,
    desc: &Descriptor,
    digest: &str,
    trust: &TrustMaterial,
    now: OffsetDateTime,
    found: &mut Findings,
) -> Result<Option<SignatureVerdict>, ImageError> {
    let source = format!(
        "referrer {}",
        desc.digest.chars().take(80).collect::<String>()
    );
    let scheme = if desc.artifact_type.as_deref() == Some(notation::ARTIFACT_TYPE) {
        SignatureScheme::Notation
    } else {
        SignatureScheme::Cosign
    };
    let manifest = match f.manifest_by_digest(desc).await? {
        Ok(m) => m,
        Err(reason) => {
            found.reject(scheme, &source, reason);
            return Ok(None);
        }
    };
    // The list is the registry's word; the manifest's own subject and type
    // are what the digest vouches for.
    if manifest.subject.as_ref().map(|s| s.digest.as_str()) != Some(digest) {
        found.reject(
            scheme,
            &source,
            Invalid::Malformed("its subject is not the scanned manifest".into()),
        );
        return Ok(None);
    }
    match (scheme, manifest.artifact_type()) {
        (SignatureScheme::Notation, Some(notation::ARTIFACT_TYPE)) => {
            check_notation(f, &manifest, &source, digest, trust, now, found).await
        }
        (SignatureScheme::Cosign, Some(cosign::SIG_ARTIFACT_TYPE)) => {
            check_cosign(f, &manifest, &source, digest, trust, found).await
        }
        (_, other) => {
            found.reject(
                scheme,
                &source,
                Invalid::Malformed(format!(
                    "the manifest's artifact type {other:?} is not the one its referrer entry claims"
                )),
            );
            Ok(None)
        }
    }
}

async fn check_notation(
    f: &Fetcher<'_>,
    manifest: &SignatureManifest,
    source: &str,
    digest: &str,
    trust: &TrustMaterial,
    now: OffsetDateTime,
    found: &mut Findings,
) -> Result<Option<SignatureVerdict>, ImageError> {
    let scheme = SignatureScheme::Notation;
    let [layer] = manifest.layers.as_slice() else {
        found.reject(
            scheme,
            source,
            Invalid::Malformed(format!(
                "{} layers (a Notary signature has one envelope)",
                manifest.layers.len()
            )),
        );
        return Ok(None);
    };
    let envelope = match f.blob(layer).await? {
        Ok(b) => b,
        Err(reason) => {
            found.reject(scheme, source, reason);
            return Ok(None);
        }
    };
    match notation::verify(&layer.media_type, &envelope, digest, trust, now) {
        Ok(signer) => Ok(Some(SignatureVerdict::Verified {
            scheme,
            source: source.to_owned(),
            signer,
        })),
        Err(reason) => {
            found.reject(scheme, source, reason);
            Ok(None)
        }
    }
}

/// A cosign signature manifest found by tag or by `cosign save`: it names
/// no subject; the signed payload names the digest.
async fn check_cosign_manifest(
    f: &Fetcher<'_>,
    manifest: Result<SignatureManifest, Invalid>,
    source: &str,
    digest: &str,
    trust: &TrustMaterial,
    found: &mut Findings,
) -> Result<Option<SignatureVerdict>, ImageError> {
    match manifest {
        Ok(m) => check_cosign(f, &m, source, digest, trust, found).await,
        Err(reason) => {
            found.reject(SignatureScheme::Cosign, source, reason);
            Ok(None)
        }
    }
}

async fn check_cosign(
    f: &Fetcher<'_>,
    manifest: &SignatureManifest,
    source: &str,
    digest: &str,
    trust: &TrustMaterial,
    found: &mut Findings,
) -> Result<Option<SignatureVerdict>, ImageError> {
    let scheme = SignatureScheme::Cosign;
    let layers: Vec<&Descriptor> = manifest
        .layers
        .iter()
        .filter(|l| l.media_type == cosign::SIMPLE_SIGNING)
        .take(f.limits.max_layers)
        .collect();
    if layers.is_empty() {
        found.reject(
            scheme,
            source,
            Invalid::Malformed("no simple-signing layer".into()),
        );
    }
    for layer in layers {
        check_cancelled()?;
        let payload = match f.blob(layer).await? {
            Ok(b) => b,
            Err(reason) => {
                found.reject(scheme, source, reason);
                continue;
            }
        };
        let signature = layer
            .annotations
            .get(cosign::SIGNATURE_ANNOTATION)
            .map(String::as_str);
        match cosign::verify_layer(&payload, signature, digest, &trust.keys) {
            Ok(signer) => {
                return Ok(Some(SignatureVerdict::Verified {
                    scheme,
                    source: source.to_owned(),
                    signer,
                }));
            }
            Err(reason) => found.reject(scheme, source, reason),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_names_and_gate() {
        let unsigned = SignatureVerdict::Unsigned { detail: "x".into() };
        assert_eq!(unsigned.name(), "UNSIGNED");
        assert!(unsigned.fails(true));
        assert!(!unsigned.fails(false));
        let nc = SignatureVerdict::NotChecked { detail: "x".into() };
        assert!(nc.fails(true), "fail closed");
        let invalid = SignatureVerdict::Invalid {
            rejections: vec![Rejection {
                scheme: SignatureScheme::Cosign,
                source: "tag sha256-a.sig".into(),
                reason: Invalid::WrongDigest {
                    signed: "sha256:b".into(),
                },
            }],
        };
        assert_eq!(invalid.name(), "INVALID");
        assert!(invalid.reason().contains("wrong digest: it signs sha256:b"));
        let json = serde_json::to_value(&invalid).unwrap();
        assert_eq!(json["status"], "INVALID");
        assert_eq!(json["rejections"][0]["reason"]["kind"], "wrong-digest");
    }

    /// The verdict's JSON status, its name and the `SIGNATURE` output
    /// variable's JSON are one spelling.
    #[test]
    fn verdict_and_status_spell_alike() {
        let verified = SignatureVerdict::Verified {
            scheme: SignatureScheme::Cosign,
            source: "s".into(),
            signer: "k".into(),
        };
        let all = [
            verified,
            SignatureVerdict::Unsigned { detail: "x".into() },
            SignatureVerdict::Invalid { rejections: vec![] },
            SignatureVerdict::NotChecked { detail: "x".into() },
        ];
        for v in &all {
            let status = crate::risks::SignatureStatus::of(v);
            assert_eq!(serde_json::to_value(v).unwrap()["status"], v.name());
            assert_eq!(serde_json::to_value(status).unwrap(), v.name());
        }
    }

    /// With `signature.required`, a check that could not run fails the
    /// gate, with the reason in the violation (fail closed).
    #[test]
    fn a_required_signature_not_checked_fails_the_gate() {
        let policy = crate::policy::Policy {
            risks: crate::policy::risks::RiskPolicy {
                signature: SignaturePolicy {
                    required: true,
                    ..SignaturePolicy::default()
                },
                ..Default::default()
            },
            ..Default::default()
        };
        let mut decision = policy.decide(&[]);
        assert_eq!(decision.verdict, crate::policy::Verdict::Pass);
        let v = SignatureVerdict::NotChecked {
            detail: "a docker save archive cannot carry signatures".into(),
        };
        policy.decide_signature(&mut decision, &v);
        assert_eq!(decision.verdict, crate::policy::Verdict::Fail);
        assert!(
            matches!(&decision.violations[..], [crate::policy::Violation::Signature { verdict, reason }]
                if verdict == "NOT_CHECKED" && reason.contains("docker save")),
            "{:?}",
            decision.violations
        );
    }

    #[tokio::test]
    async fn nothing_to_check_with_is_not_checked() {
        let image: ImageRef = "127.0.0.1:1/x:1".parse().unwrap();
        let v = verify(
            &image,
            &format!("sha256:{}", "a".repeat(64)),
            &TrustMaterial::default(),
            &PullOptions::default(),
        )
        .await;
        assert_eq!(v.name(), "NOT_CHECKED");
    }
}
