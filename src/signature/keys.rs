//! Public keys and certificates from the policy: PEM parsing, the key
//! kinds cosign signs with, and the `awskms:///ARN` indirection.
//!
//! Verification uses aws-lc-rs, already compiled into the worker as the
//! TLS provider, so no second cryptography stack is linked.

use std::future::Future;
use std::pin::Pin;

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, VerificationAlgorithm};
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// A PEM file larger than this is not a key or a handful of roots.
pub(crate) const MAX_PEM_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{0}: no PEM block `{1}` found")]
    NoPem(String, &'static str),
    #[error("{0}: the PEM block is not valid base64")]
    BadBase64(String),
    #[error(
        "{0}: not a supported public key (ECDSA P-256/P-384, Ed25519 or RSA 2048-8192 bits, \
         as a PEM `PUBLIC KEY`)"
    )]
    Unsupported(String),
    #[error("{0}: larger than {MAX_PEM_BYTES} bytes")]
    TooLarge(String),
    #[error("{0}: {1}")]
    Kms(String, String),
}

/// The kinds of key cosign signs with (key-pair mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
    Rsa,
}

impl KeyKind {
    /// What cosign's verifier for this key accepts: ECDSA signatures are
    /// ASN.1 DER; P-384 keys sign SHA-384 digests in cosign 2.x and SHA-256
    /// in older releases; RSA is PKCS#1 v1.5 with SHA-256.
    fn cosign_algorithms(self) -> &'static [&'static dyn VerificationAlgorithm] {
        match self {
            KeyKind::EcdsaP256 => &[&sig::ECDSA_P256_SHA256_ASN1],
            KeyKind::EcdsaP384 => &[&sig::ECDSA_P384_SHA384_ASN1, &sig::ECDSA_P384_SHA256_ASN1],
            KeyKind::Ed25519 => &[&sig::ED25519],
            KeyKind::Rsa => &[&sig::RSA_PKCS1_2048_8192_SHA256],
        }
    }
}

/// A public key from the policy.
#[derive(Clone)]
pub struct PublicKey {
    /// Where the policy named it (file name, `awskms:///…`, or `inline key N`).
    pub label: String,
    /// `sha256:` + the first 16 hex digits of the SubjectPublicKeyInfo's
    /// SHA-256: a stable id to say which key verified.
    pub id: String,
    pub kind: KeyKind,
    spki: Vec<u8>,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("label", &self.label)
            .field("id", &self.id)
            .field("kind", &self.kind)
            .finish()
    }
}

impl PublicKey {
    /// A key from PEM text holding one `PUBLIC KEY` block (SPKI).
    pub fn from_pem(label: &str, pem: &str) -> Result<Self, KeyError> {
        let der = pem_blocks(label, pem, "PUBLIC KEY")?
            .into_iter()
            .next()
            .ok_or_else(|| KeyError::NoPem(label.to_owned(), "PUBLIC KEY"))?;
        Self::from_spki(label, der)
    }

    /// A key from DER SubjectPublicKeyInfo bytes (what KMS returns).
    pub fn from_spki(label: &str, spki: Vec<u8>) -> Result<Self, KeyError> {
        // aws-lc-rs reads SPKI and checks the curve: the first algorithm
        // that accepts the key tells its kind.
        let candidates: [(KeyKind, &'static dyn VerificationAlgorithm); 4] = [
            (KeyKind::EcdsaP256, &sig::ECDSA_P256_SHA256_ASN1),
            (KeyKind::EcdsaP384, &sig::ECDSA_P384_SHA384_ASN1),
            (KeyKind::Ed25519, &sig::ED25519),
            (KeyKind::Rsa, &sig::RSA_PKCS1_2048_8192_SHA256),
        ];
        let kind = candidates
            .iter()
            .find(|(_, alg)| ParsedPublicKey::new(*alg, &spki).is_ok())
            .map(|(k, _)| *k)
            .ok_or_else(|| KeyError::Unsupported(label.to_owned()))?;
        let id = format!("sha256:{}", &hex::encode(Sha256::digest(&spki))[..16]);
        Ok(PublicKey {
            label: label.to_owned(),
            id,
            kind,
            spki,
        })
    }

    /// Whether `signature` is this key's signature over `payload` as cosign
    /// makes it.
    pub fn verifies_cosign(&self, payload: &[u8], signature: &[u8]) -> bool {
        self.kind.cosign_algorithms().iter().any(|alg| {
            ParsedPublicKey::new(*alg, &self.spki)
                .is_ok_and(|k| k.verify_sig(payload, signature).is_ok())
        })
    }
}

/// The DER contents of every PEM block labelled `label` in `text`.
pub(crate) fn pem_blocks(source: &str, text: &str, label: &str) -> Result<Vec<Vec<u8>>, KeyError> {
    if text.len() > MAX_PEM_BYTES {
        return Err(KeyError::TooLarge(source.to_owned()));
    }
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let body_start = start + begin.len();
        let Some(len) = rest[body_start..].find(&end) else {
            return Err(KeyError::BadBase64(source.to_owned()));
        };
        let body: String = rest[body_start..body_start + len]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| KeyError::BadBase64(source.to_owned()))?;
        out.push(der);
        rest = &rest[body_start + len + end.len()..];
    }
    Ok(out)
}

/// `kms:GetPublicKey` for `awskms:///ARN` keys. A trait so that the worker
/// uses AWS KMS and tests use a local key; the registry never supplies keys.
pub trait KmsPublicKeys: Send + Sync {
    /// The DER SubjectPublicKeyInfo of `key_id` (a key ARN or alias ARN).
    fn public_key<'a>(
        &'a self,
        key_id: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'a>>;
}

/// The key id of an `awskms://` reference: `awskms:///ARN` (cosign's form,
/// empty host) or `awskms://ENDPOINT/ARN`.
pub(crate) fn kms_key_id(reference: &str) -> Option<&str> {
    let rest = reference.strip_prefix("awskms://")?;
    let (_, id) = rest.split_once('/')?;
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    // `openssl ecparam -name prime256v1 -genkey | openssl ec -pubout`
    const P256: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEe2dxvBIg1CFbWLbY4O7T4r7aWn77
nuYH3smc6nri3MMCfFon5u3osrv6yQhippSVWp5sQieL6ggulgBCjnVNtQ==
-----END PUBLIC KEY-----
";

    #[test]
    fn reads_pem_keys_and_refuses_others() {
        let k = PublicKey::from_pem("cosign.pub", P256).unwrap();
        assert_eq!(k.kind, KeyKind::EcdsaP256);
        assert!(k.id.starts_with("sha256:") && k.id.len() == 23);
        assert!(!k.verifies_cosign(b"x", b"not a signature"));
        assert!(matches!(
            PublicKey::from_pem("x", "nothing here"),
            Err(KeyError::NoPem(..))
        ));
        assert!(matches!(
            PublicKey::from_pem(
                "x",
                "-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----"
            ),
            Err(KeyError::BadBase64(_))
        ));
        assert!(matches!(
            PublicKey::from_pem(
                "x",
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"
            ),
            Err(KeyError::Unsupported(_))
        ));
        assert!(matches!(
            pem_blocks("x", &"A".repeat(MAX_PEM_BYTES + 1), "PUBLIC KEY"),
            Err(KeyError::TooLarge(_))
        ));
    }

    #[test]
    fn kms_references() {
        assert_eq!(
            kms_key_id("awskms:///arn:aws:kms:us-east-1:1:key/abc"),
            Some("arn:aws:kms:us-east-1:1:key/abc")
        );
        assert_eq!(
            kms_key_id("awskms://localhost:4566/alias/x"),
            Some("alias/x")
        );
        assert_eq!(kms_key_id("awskms:///"), None);
        assert_eq!(kms_key_id("cosign.pub"), None);
    }
}
