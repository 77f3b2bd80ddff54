//! cosign key-pair signatures: a manifest (under the `sha256-HEX.sig` tag,
//! or an OCI 1.1 referrer of artifact type
//! `application/vnd.dev.cosign.artifact.sig.v1+json`) whose layers are
//! simple-signing payloads, each with its signature in the
//! `dev.cosignproject.cosign/signature` annotation (base64).
//!
//! A signature counts when a key of the policy verifies it over the exact
//! payload bytes and the payload's `critical.image.docker-manifest-digest`
//! is the digest that was scanned. Transparency-log (Rekor) bundles and
//! keyless (Fulcio) certificates are not checked: the policy's keys are the
//! trust, as with `cosign verify --key K --insecure-ignore-tlog`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::Invalid;
use super::keys::PublicKey;

pub(crate) const SIG_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
pub(crate) const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub(crate) const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
const SIGNATURE_TYPE: &str = "cosign container image signature";
/// An RSA-8192 signature is 1 KiB; base64 of anything larger is not one.
const MAX_SIGNATURE_B64: usize = 4 << 10;

/// The `sha256-HEX.sig` tag cosign stores the signatures of `digest` under.
pub(crate) fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

/// Verifies one simple-signing layer; returns the key that verified it.
pub(crate) fn verify_layer(
    payload: &[u8],
    signature_b64: Option<&str>,
    digest: &str,
    keys: &[PublicKey],
) -> Result<String, Invalid> {
    if keys.is_empty() {
        return Err(Invalid::NoTrustMaterial("cosign.keys"));
    }
    let b64 = signature_b64
        .ok_or_else(|| Invalid::Malformed(format!("no {SIGNATURE_ANNOTATION} annotation")))?;
    if b64.len() > MAX_SIGNATURE_B64 {
        return Err(Invalid::Malformed(format!(
            "a signature annotation of {} bytes",
            b64.len()
        )));
    }
    let signature = STANDARD
        .decode(b64.trim())
        .map_err(|_| Invalid::Malformed("the signature annotation is not base64".into()))?;
    let key = keys
        .iter()
        .find(|k| k.verifies_cosign(payload, &signature))
        .ok_or(Invalid::UntrustedKey)?;
    check_payload(payload, digest)?;
    Ok(format!("key {} ({})", key.label, key.id))
}

/// The simple-signing payload must say it is a cosign signature of the
/// scanned digest.
fn check_payload(payload: &[u8], digest: &str) -> Result<(), Invalid> {
    #[derive(Deserialize)]
    struct Payload {
        critical: Critical,
    }
    #[derive(Deserialize)]
    struct Critical {
        #[serde(rename = "type")]
        kind: String,
        image: Image,
    }
    #[derive(Deserialize)]
    struct Image {
        #[serde(rename = "docker-manifest-digest")]
        digest: String,
    }
    let p: Payload = serde_json::from_slice(payload)
        .map_err(|e| Invalid::Malformed(format!("not a simple-signing payload: {e}")))?;
    if p.critical.kind != SIGNATURE_TYPE {
        return Err(Invalid::Malformed(format!(
            "payload type {:?}",
            p.critical.kind
        )));
    }
    if p.critical.image.digest != digest {
        return Err(Invalid::WrongDigest {
            signed: p.critical.image.digest,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_and_refusals() {
        assert_eq!(signature_tag("sha256:abc"), "sha256-abc.sig");
        assert_eq!(
            verify_layer(b"{}", Some("AA=="), "sha256:x", &[]),
            Err(Invalid::NoTrustMaterial("cosign.keys"))
        );
        let wrong = br#"{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"sha256:other"},"type":"cosign container image signature"},"optional":null}"#;
        assert_eq!(
            check_payload(wrong, "sha256:mine"),
            Err(Invalid::WrongDigest {
                signed: "sha256:other".into()
            })
        );
        let right = String::from_utf8_lossy(wrong).replace("sha256:other", "sha256:mine");
        assert_eq!(check_payload(right.as_bytes(), "sha256:mine"), Ok(()));
        assert!(check_payload(b"[]", "sha256:mine").is_err());
    }
}
