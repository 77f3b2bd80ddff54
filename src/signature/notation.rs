//! Notary Project signatures (Notation, AWS Signer): JWS and COSE_Sign1
//! envelopes, verified as the Notary Project signature specification
//! describes: integrity (the leaf certificate's signature over the signed
//! bytes), authenticity (the chain ends at a root of the policy's trust
//! store), trusted identity (leaf subject, or the AWS Signer signing
//! profile), expiry, and the payload's `targetArtifact` digest equal to the
//! digest that was scanned.
//!
//! Not done: RFC 3161 timestamp countersignatures (a `notary.x509`
//! signature's chain must be valid now), revocation (OCSP/CRL, AWS Signer's
//! `GetRevocationStatus`).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, VerificationAlgorithm};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::cbor::{self, Value};
use super::cfg::{TrustMaterial, TrustedIdentity};
use super::der;
use super::{Invalid, describe_time};

pub(crate) const ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
pub(crate) const JWS_MEDIA_TYPE: &str = "application/jose+json";
pub(crate) const COSE_MEDIA_TYPE: &str = "application/cose";
const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";
/// id-kp-codeSigning (1.3.6.1.5.5.7.3.3), the EKU a Notary leaf may carry.
const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];
/// Leaf, intermediates and perhaps the root: real chains have 2 to 4.
const MAX_CHAIN: usize = 8;

const SIGNING_SCHEME: &str = "io.cncf.notary.signingScheme";
const SIGNING_TIME: &str = "io.cncf.notary.signingTime";
const AUTHENTIC_SIGNING_TIME: &str = "io.cncf.notary.authenticSigningTime";
const EXPIRY: &str = "io.cncf.notary.expiry";
const VERIFICATION_PLUGIN: &str = "io.cncf.notary.verificationPlugin";
const AWS_SIGNER_PLUGIN: &str = "com.amazonaws.signer.notation.plugin";
const SIGNER_PROFILE_VERSION: &str = "com.amazonaws.signer.signingProfileVersion";
/// Critical attributes whose meaning this verifier implements.
const KNOWN_CRITICAL: &[&str] = &[
    SIGNING_SCHEME,
    EXPIRY,
    AUTHENTIC_SIGNING_TIME,
    VERIFICATION_PLUGIN,
    "io.cncf.notary.verificationPluginMinVersion",
    SIGNER_PROFILE_VERSION,
    "com.amazonaws.signer.signingJob",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    Es512,
}

impl Alg {
    fn from_jws(name: &str) -> Option<Self> {
        Some(match name {
            "PS256" => Alg::Ps256,
            "PS384" => Alg::Ps384,
            "PS512" => Alg::Ps512,
            "ES256" => Alg::Es256,
            "ES384" => Alg::Es384,
            "ES512" => Alg::Es512,
            _ => return None,
        })
    }

    /// COSE algorithm ids (RFC 9053, RFC 8230).
    fn from_cose(id: i64) -> Option<Self> {
        Some(match id {
            -37 => Alg::Ps256,
            -38 => Alg::Ps384,
            -39 => Alg::Ps512,
            -7 => Alg::Es256,
            -35 => Alg::Es384,
            -36 => Alg::Es512,
            _ => return None,
        })
    }

    /// JWS and COSE carry ECDSA signatures as fixed-width `r || s`; PSS
    /// uses a salt as long as the hash. aws-lc-rs also checks that the key
    /// is of the algorithm's kind (ES256 with a P-256 key).
    fn algorithm(self) -> &'static dyn VerificationAlgorithm {
        match self {
            Alg::Ps256 => &sig::RSA_PSS_2048_8192_SHA256,
            Alg::Ps384 => &sig::RSA_PSS_2048_8192_SHA384,
            Alg::Ps512 => &sig::RSA_PSS_2048_8192_SHA512,
            Alg::Es256 => &sig::ECDSA_P256_SHA256_FIXED,
            Alg::Es384 => &sig::ECDSA_P384_SHA384_FIXED,
            Alg::Es512 => &sig::ECDSA_P521_SHA512_FIXED,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// `notary.x509`: signing time is the signer's claim.
    X509,
    /// `notary.x509.signingAuthority` (AWS Signer): the signing authority
    /// vouches for `authenticSigningTime`.
    SigningAuthority,
}

/// What an envelope says, once parsed (nothing verified yet).
#[derive(Debug)]
struct Envelope {
    alg: Alg,
    scheme: Scheme,
    authentic_signing_time: Option<OffsetDateTime>,
    expiry: Option<OffsetDateTime>,
    /// Other string-valued signed attributes (extended attributes).
    attributes: BTreeMap<String, String>,
    payload: Vec<u8>,
    /// The bytes the signature covers.
    signed: Vec<u8>,
    signature: Vec<u8>,
    /// DER certificates, leaf first.
    chain: Vec<Vec<u8>>,
}

fn malformed(what: impl Into<String>) -> Invalid {
    Invalid::Malformed(what.into())
}

/// Verifies one Notary Project envelope of `media_type` against the
/// policy's trust store and identities. Returns who signed (leaf subject
/// and the identity it matched).
pub(crate) fn verify(
    media_type: &str,
    bytes: &[u8],
    digest: &str,
    trust: &TrustMaterial,
    now: OffsetDateTime,
) -> Result<String, Invalid> {
    if trust.roots.is_empty() {
        return Err(Invalid::NoTrustMaterial("notation.trust_store"));
    }
    let env = match media_type {
        JWS_MEDIA_TYPE => parse_jws(bytes)?,
        COSE_MEDIA_TYPE => parse_cose(bytes)?,
        other => return Err(malformed(format!("unknown envelope type {other}"))),
    };
    let leaf_der = CertificateDer::from(env.chain[0].as_slice());
    let leaf = webpki::EndEntityCert::try_from(&leaf_der)
        .map_err(|e| malformed(format!("the signing certificate does not parse: {e:?}")))?;
    // Integrity first: nothing else the envelope says counts until its
    // own certificate's key has signed it.
    let spki = leaf.subject_public_key_info();
    let key = ParsedPublicKey::new(env.alg.algorithm(), spki.as_ref())
        .map_err(|_| Invalid::BadSignature)?;
    key.verify_sig(&env.signed, &env.signature)
        .map_err(|_| Invalid::BadSignature)?;
    // The Notary Project's certificate requirements: a signing leaf has
    // keyUsage with digitalSignature.
    match der::key_usage(&env.chain[0]) {
        Ok(Some(bits)) if bits & 0x80 != 0 => {}
        Ok(_) => {
            return Err(malformed(
                "the signing certificate's keyUsage lacks digitalSignature",
            ));
        }
        Err(e) => return Err(malformed(format!("the signing certificate: {e}"))),
    }
    check_chain(&leaf, &env, trust, now)?;
    let subject = der::name_attributes(leaf.subject())
        .map_err(|e| malformed(format!("the signing certificate's subject: {e}")))?;
    let identity = match_identity(&subject, &env, &trust.identities)?;
    if let Some(expiry) = env.expiry
        && expiry <= now
    {
        return Err(Invalid::Expired {
            at: describe_time(expiry),
        });
    }
    check_payload(&env.payload, digest)?;
    Ok(format!("{} ({identity})", format_dn(&subject)))
}

/// The chain from the leaf to a root of the trust store, valid at the
/// signing authority's authentic signing time, or now for `notary.x509`.
fn check_chain(
    leaf: &webpki::EndEntityCert<'_>,
    env: &Envelope,
    trust: &TrustMaterial,
    now: OffsetDateTime,
) -> Result<(), Invalid> {
    let at = match env.scheme {
        Scheme::SigningAuthority => env.authentic_signing_time.ok_or_else(|| {
            malformed("a signingAuthority signature without authenticSigningTime")
        })?,
        Scheme::X509 => now,
    };
    let intermediates: Vec<CertificateDer<'_>> = env.chain[1..]
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let time = UnixTime::since_unix_epoch(Duration::from_secs(
        u64::try_from(at.unix_timestamp()).unwrap_or(0),
    ));
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &trust.roots,
        &intermediates,
        time,
        webpki::KeyUsage::required_if_present(CODE_SIGNING),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| match e {
        webpki::Error::CertExpired { .. } => Invalid::Expired {
            at: format!("the certificate chain expired before {}", describe_time(at)),
        },
        webpki::Error::UnknownIssuer => Invalid::UntrustedRoot(
            "the certificate chain does not lead to a root of notation.trust_store".into(),
        ),
        other => Invalid::UntrustedRoot(format!("the certificate chain is not valid: {other:?}")),
    })
}

/// Which policy identity the signer matches, if any.
fn match_identity(
    subject: &[(String, String)],
    env: &Envelope,
    identities: &[TrustedIdentity],
) -> Result<String, Invalid> {
    let profile = env.attributes.get(SIGNER_PROFILE_VERSION);
    for identity in identities {
        let matched = match identity {
            TrustedIdentity::Any => Some("*".to_owned()),
            TrustedIdentity::Subject(want) => want
                .iter()
                .all(|(k, v)| subject.iter().any(|(sk, sv)| sk == k && sv == v))
                .then(|| format!("x509.subject: {}", format_dn_set(want))),
            TrustedIdentity::SignerProfile { arn, versioned } => {
                // As AWS Signer's Notation plugin matches: the signed
                // profile-version ARN, or its profile part.
                let signed = profile.filter(|_| env.scheme == Scheme::SigningAuthority);
                signed
                    .filter(|p| {
                        if *versioned {
                            p.eq_ignore_ascii_case(arn)
                        } else {
                            p.rsplit_once('/')
                                .is_some_and(|(base, _)| base.eq_ignore_ascii_case(arn))
                        }
                    })
                    .map(|_| arn.clone())
            }
        };
        if let Some(m) = matched {
            return Ok(m);
        }
    }
    Err(Invalid::IdentityMismatch {
        found: match profile {
            Some(p) => format!("{} (signing profile {p})", format_dn(subject)),
            None => format_dn(subject),
        },
    })
}

fn format_dn(attrs: &[(String, String)]) -> String {
    attrs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn format_dn_set(attrs: &std::collections::BTreeSet<(String, String)>) -> String {
    format_dn(&attrs.iter().cloned().collect::<Vec<_>>())
}

/// The payload's `targetArtifact` must be the manifest that was scanned.
fn check_payload(payload: &[u8], digest: &str) -> Result<(), Invalid> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Payload {
        target_artifact: Target,
    }
    #[derive(Deserialize)]
    struct Target {
        digest: String,
    }
    let p: Payload = serde_json::from_slice(payload)
        .map_err(|e| malformed(format!("the payload is not a Notary payload: {e}")))?;
    if p.target_artifact.digest != digest {
        return Err(Invalid::WrongDigest {
            signed: p.target_artifact.digest,
        });
    }
    Ok(())
}

fn parse_time(name: &str, text: &str) -> Result<OffsetDateTime, Invalid> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|_| malformed(format!("{name} is not an RFC 3339 time: {text:?}")))
}

fn scheme(name: &str) -> Result<Scheme, Invalid> {
    match name {
        "notary.x509" => Ok(Scheme::X509),
        "notary.x509.signingAuthority" => Ok(Scheme::SigningAuthority),
        other => Err(malformed(format!("unknown signing scheme {other:?}"))),
    }
}

/// Every critical attribute must be one whose meaning is implemented here,
/// and a verification plugin other than AWS Signer's cannot be honoured.
fn check_critical(crit: &[String], attributes: &BTreeMap<String, String>) -> Result<(), Invalid> {
    if let Some(unknown) = crit.iter().find(|c| !KNOWN_CRITICAL.contains(&c.as_str())) {
        return Err(malformed(format!(
            "unsupported critical attribute {unknown:?}"
        )));
    }
    if !crit.iter().any(|c| c == SIGNING_SCHEME) {
        return Err(malformed("signingScheme is not marked critical"));
    }
    match attributes.get(VERIFICATION_PLUGIN) {
        Some(p) if p != AWS_SIGNER_PLUGIN => Err(malformed(format!(
            "the signature needs the verification plugin {p:?}, which scangate does not implement"
        ))),
        _ => Ok(()),
    }
}

fn check_chain_len(chain: &[Vec<u8>]) -> Result<(), Invalid> {
    if chain.is_empty() {
        return Err(malformed("no certificate chain (x5chain)"));
    }
    if chain.len() > MAX_CHAIN {
        return Err(malformed(format!(
            "{} certificates in the chain (at most {MAX_CHAIN})",
            chain.len()
        )));
    }
    Ok(())
}

/// The JWS JSON serialization Notation writes: `payload`, `protected`,
/// `signature` (base64url) and `header.x5c` (base64 DER, leaf first).
fn parse_jws(bytes: &[u8]) -> Result<Envelope, Invalid> {
    #[derive(Deserialize)]
    struct Jws {
        payload: String,
        protected: String,
        #[serde(default)]
        header: Unprotected,
        signature: String,
    }
    #[derive(Deserialize, Default)]
    struct Unprotected {
        #[serde(default)]
        x5c: Vec<String>,
    }
    let jws: Jws = serde_json::from_slice(bytes)
        .map_err(|e| malformed(format!("not a JWS JSON envelope: {e}")))?;
    let b64url = |what: &str, s: &str| {
        URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(|_| malformed(format!("{what} is not base64url")))
    };
    let protected_json = b64url("protected", &jws.protected)?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&protected_json)
            .map_err(|e| malformed(format!("the protected header is not a JSON object: {e}")))?;
    let text = |k: &str| header.get(k).and_then(|v| v.as_str());
    let alg = text("alg")
        .and_then(Alg::from_jws)
        .ok_or_else(|| malformed(format!("unsupported alg {:?}", header.get("alg"))))?;
    if text("cty") != Some(PAYLOAD_MEDIA_TYPE) {
        return Err(malformed(format!("content type {:?}", text("cty"))));
    }
    let crit: Vec<String> = match header.get("crit") {
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| malformed("crit holds a non-string"))?,
        _ => return Err(malformed("no crit header")),
    };
    let attributes: BTreeMap<String, String> = header
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
        .collect();
    check_critical(&crit, &attributes)?;
    let optional_time = |k: &str| text(k).map(|t| parse_time(k, t)).transpose();
    // The signer's own signing time is informational for `notary.x509`
    // (required there by the specification, and parsed so a malformed one
    // is refused).
    let signing_time = optional_time(SIGNING_TIME)?;
    let chain = jws
        .header
        .x5c
        .iter()
        .take(MAX_CHAIN + 1)
        .map(|c| {
            STANDARD
                .decode(c)
                .map_err(|_| malformed("x5c is not base64"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_chain_len(&chain)?;
    let scheme = scheme(text(SIGNING_SCHEME).unwrap_or_default())?;
    if scheme == Scheme::X509 && signing_time.is_none() {
        return Err(malformed("a notary.x509 signature without signingTime"));
    }
    Ok(Envelope {
        alg,
        scheme,
        authentic_signing_time: optional_time(AUTHENTIC_SIGNING_TIME)?,
        expiry: optional_time(EXPIRY)?,
        payload: b64url("payload", &jws.payload)?,
        signed: format!("{}.{}", jws.protected, jws.payload).into_bytes(),
        signature: b64url("signature", &jws.signature)?,
        chain,
        attributes,
    })
}

/// A COSE_Sign1 (tag 18, or untagged) as Notation writes it: protected
/// header with `alg` (1), `crit` (2), `content type` (3) and the Notary
/// attributes under text labels (times as tag 1 epoch seconds); the chain
/// in the unprotected `x5chain` (33).
fn parse_cose(bytes: &[u8]) -> Result<Envelope, Invalid> {
    let value = cbor::decode(bytes).map_err(|e| malformed(format!("not COSE: {e}")))?;
    let value = match value {
        Value::Tag(18, inner) => *inner,
        Value::Tag(t, _) => return Err(malformed(format!("COSE tag {t} is not COSE_Sign1"))),
        v => v,
    };
    let Value::Array(items) = value else {
        return Err(malformed("COSE_Sign1 is not an array"));
    };
    let [protected, unprotected, payload, signature] = items.as_slice() else {
        return Err(malformed("COSE_Sign1 does not have 4 members"));
    };
    let (Some(protected_bytes), Some(payload), Some(signature)) = (
        protected.as_bytes(),
        payload.as_bytes(),
        signature.as_bytes(),
    ) else {
        return Err(malformed(
            "COSE_Sign1 protected, payload and signature must be byte strings (no detached payload)",
        ));
    };
    let header = cbor::decode(protected_bytes)
        .map_err(|e| malformed(format!("the protected header: {e}")))?;
    let alg = header
        .get_int(1)
        .and_then(Value::as_i64)
        .and_then(Alg::from_cose)
        .ok_or_else(|| malformed("unsupported or missing alg"))?;
    if header.get_int(3).and_then(Value::as_text) != Some(PAYLOAD_MEDIA_TYPE) {
        return Err(malformed("content type is not the Notary payload"));
    }
    let crit = match header.get_int(2) {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_text().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| malformed("crit holds a non-text label"))?,
        _ => return Err(malformed("no crit header")),
    };
    let Value::Map(entries) = &header else {
        return Err(malformed("the protected header is not a map"));
    };
    let attributes: BTreeMap<String, String> = entries
        .iter()
        .filter_map(|(k, v)| Some((k.as_text()?.to_owned(), v.as_text()?.to_owned())))
        .collect();
    check_critical(&crit, &attributes)?;
    let time = |label: &str| -> Result<Option<OffsetDateTime>, Invalid> {
        match header.get_text(label) {
            None => Ok(None),
            Some(Value::Tag(1, t)) => t
                .as_i64()
                .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
                .map(Some)
                .ok_or_else(|| malformed(format!("{label} is not an epoch time"))),
            Some(_) => Err(malformed(format!("{label} is not a tag-1 time"))),
        }
    };
    let signing_time = time(SIGNING_TIME)?;
    let chain = match unprotected.get_int(33) {
        Some(Value::Bytes(one)) => vec![one.clone()],
        Some(Value::Array(certs)) => certs
            .iter()
            .take(MAX_CHAIN + 1)
            .map(|c| c.as_bytes().map(<[u8]>::to_vec))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| malformed("x5chain holds a non-byte-string"))?,
        _ => Vec::new(),
    };
    check_chain_len(&chain)?;
    let scheme_name = header.get_text(SIGNING_SCHEME).and_then(Value::as_text);
    let scheme = scheme(scheme_name.unwrap_or_default())?;
    if scheme == Scheme::X509 && signing_time.is_none() {
        return Err(malformed("a notary.x509 signature without signingTime"));
    }
    Ok(Envelope {
        alg,
        scheme,
        authentic_signing_time: time(AUTHENTIC_SIGNING_TIME)?,
        expiry: time(EXPIRY)?,
        signed: cbor::sig_structure1(protected_bytes, payload),
        payload: payload.to_vec(),
        signature: signature.to_vec(),
        chain,
        attributes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_malformed_envelopes_with_reasons() {
        let trust = TrustMaterial {
            roots: Vec::new(),
            ..TrustMaterial::default()
        };
        let now = OffsetDateTime::now_utc();
        assert_eq!(
            verify(JWS_MEDIA_TYPE, b"{}", "sha256:x", &trust, now),
            Err(Invalid::NoTrustMaterial("notation.trust_store"))
        );
        for (bytes, want) in [
            (&b"not json"[..], "not a JWS JSON envelope"),
            (
                br#"{"payload":"","protected":"e30","signature":""}"#,
                "unsupported alg",
            ),
        ] {
            let e = parse_jws(bytes).unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
        }
        // a JWS whose protected header names an unknown critical attribute
        let protected = URL_SAFE_NO_PAD.encode(
            br#"{"alg":"ES256","cty":"application/vnd.cncf.notary.payload.v1+json","crit":["io.cncf.notary.signingScheme","x-evil"],"io.cncf.notary.signingScheme":"notary.x509"}"#,
        );
        let jws = format!(r#"{{"payload":"","protected":"{protected}","signature":""}}"#);
        let e = parse_jws(jws.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("x-evil"), "{e}");
        // COSE: wrong tag, wrong shape
        assert!(parse_cose(&[0xd1, 0x80]).is_err());
        assert!(parse_cose(&[0x80]).is_err());
        assert!(parse_cose(&[0xff]).is_err());
    }
}
