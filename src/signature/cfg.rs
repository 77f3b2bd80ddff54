//! The `signature:` section of the policy file (DESIGN.md, "Image risks
//! beyond CVEs") and the trust material it resolves to.
//!
//! Keys and roots come from the policy only (or from KMS for an
//! `awskms:///ARN` key the policy names); nothing the registry or the image
//! says is trusted.

use std::collections::BTreeSet;

use rustls_pki_types::{CertificateDer, TrustAnchor};
use serde::{Deserialize, Serialize};

use super::keys::{self, KeyError, KmsPublicKeys, PublicKey};

/// More keys, roots or identities than this is a policy mistake, and each
/// one costs a verification per signature.
pub const MAX_ENTRIES: usize = 32;

/// A PEM key or root file larger than this is not a key file.
pub const MAX_TRUST_FILE_BYTES: usize = 256 << 10;

/// `signature:` as written in the policy file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SignaturePolicy {
    /// Unsigned or unverifiable = FAIL.
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub cosign: CosignPolicy,
    #[serde(default)]
    pub notation: NotationPolicy,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CosignPolicy {
    /// PEM public keys: a path in the input artifact (resolved by the
    /// caller), PEM text, or `awskms:///ARN`.
    #[serde(default)]
    pub keys: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotationPolicy {
    /// PEM root certificates (paths resolved by the caller, or PEM text).
    #[serde(default)]
    pub trust_store: Vec<String>,
    /// `x509.subject: C=US, O=…, CN=…`, an AWS Signer signing-profile (or
    /// profile-version) ARN, or `*` for any signer the trust store vouches for.
    #[serde(default)]
    pub identities: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignaturePolicyError {
    #[error(
        "signature.required is true but the policy names no cosign.keys and no \
         notation.trust_store: nothing could ever verify"
    )]
    NothingToVerifyWith,
    #[error("signature.notation.trust_store is set but notation.identities is empty")]
    NoIdentities,
    #[error("signature.notation.identities is set but notation.trust_store is empty")]
    NoTrustStore,
    #[error("signature.{0} has more than {MAX_ENTRIES} entries")]
    TooMany(&'static str),
    #[error("signature.{0}: an entry is empty")]
    Empty(&'static str),
    #[error(
        "signature.notation.identities: {0:?} is not `x509.subject: DN`, an AWS Signer signing-profile ARN or `*`: {1}"
    )]
    BadIdentity(String, String),
    #[error("signature.cosign.keys: {0:?} is not `awskms:///ARN`")]
    BadKmsReference(String),
    #[error("signature.cosign.keys: {0} is an AWS KMS key and no KMS client is configured")]
    NoKms(String),
    #[error("signature: {0}")]
    Key(#[from] KeyError),
    #[error("signature: reading {0}: {1}")]
    Read(String, String),
    #[error("signature.notation.trust_store: {0}: {1}")]
    BadRoot(String, String),
}

/// A trusted identity of a Notation signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedIdentity {
    /// `*`: any leaf certificate that chains to the trust store.
    Any,
    /// The leaf's subject must hold every one of these attributes (short
    /// name upper-cased, value as written), as Notation matches them.
    Subject(BTreeSet<(String, String)>),
    /// An AWS Signer signing profile (`…:/signing-profiles/NAME`, any
    /// version) or profile version (`…/NAME/VERSION`), matched against the
    /// signed `com.amazonaws.signer.signingProfileVersion` attribute.
    SignerProfile { arn: String, versioned: bool },
}

impl TrustedIdentity {
    pub fn parse(text: &str) -> Result<Self, SignaturePolicyError> {
        let bad = |why: &str| SignaturePolicyError::BadIdentity(text.to_owned(), why.to_owned());
        let t = text.trim();
        if t == "*" {
            return Ok(TrustedIdentity::Any);
        }
        if let Some(dn) = t.strip_prefix("x509.subject:") {
            return parse_dn(dn)
                .map(TrustedIdentity::Subject)
                .map_err(|e| bad(&e));
        }
        if t.starts_with("arn:") {
            return parse_signer_arn(t).map_err(|e| bad(&e));
        }
        Err(bad("unknown identity kind"))
    }
}

/// `C=US, ST=WA, CN=name` → attribute set. `\,` escapes a comma in a value.
pub(crate) fn parse_dn(dn: &str) -> Result<BTreeSet<(String, String)>, String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = dn.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            ',' => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    let mut out = BTreeSet::new();
    for part in parts {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("{:?} is not NAME=VALUE", part.trim()))?;
        let (k, v) = (k.trim().to_ascii_uppercase(), v.trim().to_owned());
        if k.is_empty() || v.is_empty() {
            return Err(format!("{:?} has an empty name or value", part.trim()));
        }
        if !out.insert((k.clone(), v)) {
            return Err(format!("{k} is given twice"));
        }
    }
    Ok(out)
}

/// `arn:aws:signer:REGION:ACCOUNT:/signing-profiles/NAME[/VERSION]`.
fn parse_signer_arn(arn: &str) -> Result<TrustedIdentity, String> {
    let fields: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, partition, service, region, account, resource] = fields.as_slice() else {
        return Err("an ARN has six `:`-separated fields".into());
    };
    if *service != "signer" || partition.is_empty() || region.is_empty() || account.is_empty() {
        return Err("not an AWS Signer ARN".into());
    }
    let path: Vec<&str> = resource.split('/').collect();
    match path.as_slice() {
        ["", "signing-profiles", name] if !name.is_empty() => Ok(TrustedIdentity::SignerProfile {
            arn: arn.to_owned(),
            versioned: false,
        }),
        ["", "signing-profiles", name, version] if !name.is_empty() && !version.is_empty() => {
            Ok(TrustedIdentity::SignerProfile {
                arn: arn.to_owned(),
                versioned: true,
            })
        }
        _ => Err("the resource is not /signing-profiles/NAME[/VERSION]".into()),
    }
}

/// The policy's keys and roots, read and parsed: what verification needs.
#[derive(Debug, Clone, Default)]
pub struct TrustMaterial {
    pub required: bool,
    pub keys: Vec<PublicKey>,
    pub roots: Vec<TrustAnchor<'static>>,
    pub identities: Vec<TrustedIdentity>,
}

impl TrustMaterial {
    /// Whether there is anything to verify with.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.roots.is_empty()
    }
}

impl SignaturePolicy {
    /// Checks what can be checked without reading files (for
    /// `scangate policy check`).
    pub fn validate(&self) -> Result<(), SignaturePolicyError> {
        let (keys, roots, ids) = (
            &self.cosign.keys,
            &self.notation.trust_store,
            &self.notation.identities,
        );
        for (name, list) in [
            ("cosign.keys", keys),
            ("notation.trust_store", roots),
            ("notation.identities", ids),
        ] {
            if list.len() > MAX_ENTRIES {
                return Err(SignaturePolicyError::TooMany(name));
            }
            if list.iter().any(|e| e.trim().is_empty()) {
                return Err(SignaturePolicyError::Empty(name));
            }
        }
        if self.required && keys.is_empty() && roots.is_empty() {
            return Err(SignaturePolicyError::NothingToVerifyWith);
        }
        if !roots.is_empty() && ids.is_empty() {
            return Err(SignaturePolicyError::NoIdentities);
        }
        if roots.is_empty() && !ids.is_empty() {
            return Err(SignaturePolicyError::NoTrustStore);
        }
        for id in ids {
            TrustedIdentity::parse(id)?;
        }
        for k in keys.iter().filter(|k| k.starts_with("awskms:")) {
            if keys::kms_key_id(k).is_none() {
                return Err(SignaturePolicyError::BadKmsReference(k.clone()));
            }
        }
        Ok(())
    }

    /// Whether the section asks for anything: a signature check runs only
    /// then (otherwise SIGNATURE is NOT_CHECKED).
    pub fn is_configured(&self) -> bool {
        self.required || !self.cosign.keys.is_empty() || !self.notation.trust_store.is_empty()
    }

    /// Replaces every key and root named by a path with the file's text,
    /// read by `read` where the policy file was read (the input artifact,
    /// or the disk beside it): the scan then needs nothing but the policy.
    /// A file over [`MAX_TRUST_FILE_BYTES`] is refused.
    pub fn resolve_files(
        &mut self,
        read: &dyn Fn(&str) -> Result<String, String>,
    ) -> Result<(), SignaturePolicyError> {
        let entries = self
            .cosign
            .keys
            .iter_mut()
            .filter(|k| !k.starts_with("awskms:"))
            .chain(self.notation.trust_store.iter_mut());
        for entry in entries {
            if entry.contains("-----BEGIN") {
                continue;
            }
            let text = read(entry).map_err(|e| SignaturePolicyError::Read(entry.clone(), e))?;
            if text.len() > MAX_TRUST_FILE_BYTES {
                return Err(SignaturePolicyError::Read(
                    entry.clone(),
                    format!("larger than {} KiB", MAX_TRUST_FILE_BYTES >> 10),
                ));
            }
            *entry = text;
        }
        Ok(())
    }

    /// Reads and parses the keys and roots. `read` resolves a path the
    /// policy names (inside the input artifact) to its text; `kms` serves
    /// `awskms://` keys.
    pub async fn load(
        &self,
        read: &(dyn Fn(&str) -> Result<String, String> + Sync),
        kms: Option<&dyn KmsPublicKeys>,
    ) -> Result<TrustMaterial, SignaturePolicyError> {
        self.validate()?;
        let text = |entry: &str| -> Result<(String, String), SignaturePolicyError> {
            if entry.contains("-----BEGIN") {
                return Ok(("inline PEM".to_owned(), entry.to_owned()));
            }
            let t = read(entry).map_err(|e| SignaturePolicyError::Read(entry.to_owned(), e))?;
            Ok((entry.to_owned(), t))
        };
        let mut material = TrustMaterial {
            required: self.required,
            ..TrustMaterial::default()
        };
        for (i, entry) in self.cosign.keys.iter().enumerate() {
            let key = match keys::kms_key_id(entry) {
                Some(id) => {
                    let kms = kms.ok_or_else(|| SignaturePolicyError::NoKms(entry.clone()))?;
                    let spki = kms
                        .public_key(id)
                        .await
                        .map_err(|e| KeyError::Kms(entry.clone(), e))?;
                    PublicKey::from_spki(entry, spki)?
                }
                None => {
                    let (label, pem) = text(entry)?;
                    let label = if label == "inline PEM" {
                        format!("cosign.keys[{i}]")
                    } else {
                        label
                    };
                    PublicKey::from_pem(&label, &pem)?
                }
            };
            material.keys.push(key);
        }
        for entry in &self.notation.trust_store {
            let (label, pem) = text(entry)?;
            material.roots.extend(roots_from_pem(&label, &pem)?);
        }
        material.identities = self
            .notation
            .identities
            .iter()
            .map(|i| TrustedIdentity::parse(i))
            .collect::<Result<_, _>>()?;
        Ok(material)
    }
}

/// Trust anchors from the `CERTIFICATE` blocks of a PEM file.
pub fn roots_from_pem(
    label: &str,
    pem: &str,
) -> Result<Vec<TrustAnchor<'static>>, SignaturePolicyError> {
    let ders = keys::pem_blocks(label, pem, "CERTIFICATE")?;
    if ders.is_empty() {
        return Err(KeyError::NoPem(label.to_owned(), "CERTIFICATE").into());
    }
    if ders.len() > MAX_ENTRIES {
        return Err(SignaturePolicyError::TooMany("notation.trust_store"));
    }
    ders.into_iter()
        .map(|der| {
            let cert = CertificateDer::from(der);
            webpki::anchor_from_trusted_cert(&cert)
                .map(|a| a.to_owned())
                .map_err(|e| SignaturePolicyError::BadRoot(label.to_owned(), format!("{e:?}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> SignaturePolicy {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn parses_the_design_example() {
        let p = policy(
            "required: true\ncosign:\n  keys: [cosign.pub]\nnotation:\n  trust_store: [signer-root.pem]\n  identities: [\"x509.subject: CN=release, O=Example\"]\n",
        );
        assert!(p.required);
        p.validate().unwrap();
        assert!(serde_yaml_ng::from_str::<SignaturePolicy>("requierd: true").is_err());
        assert_eq!(policy("{}"), SignaturePolicy::default());
        SignaturePolicy::default().validate().unwrap();
    }

    #[test]
    fn refuses_policies_that_cannot_work() {
        use SignaturePolicyError as E;
        let cases = [
            ("required: true", E::NothingToVerifyWith),
            ("notation: {trust_store: [r.pem]}", E::NoIdentities),
            ("notation: {identities: ['*']}", E::NoTrustStore),
            ("cosign: {keys: ['']}", E::Empty("cosign.keys")),
            (
                "cosign: {keys: ['awskms:///']}",
                E::BadKmsReference("awskms:///".into()),
            ),
        ];
        for (yaml, want) in cases {
            assert_eq!(policy(yaml).validate(), Err(want), "{yaml}");
        }
        for bad in [
            "x509.subject: CN",
            "x509.subject: CN=a, CN=a",
            "x509.subject:",
            "arn:aws:kms:us-east-1:1:key/x",
            "arn:aws:signer:us-east-1:1:/signing-jobs/x",
            "CN=a",
        ] {
            assert!(TrustedIdentity::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn identities() {
        let TrustedIdentity::Subject(s) =
            TrustedIdentity::parse("x509.subject: C=US, o=Acme\\, Inc., CN=release").unwrap()
        else {
            panic!()
        };
        assert!(s.contains(&("O".into(), "Acme, Inc.".into())));
        assert_eq!(s.len(), 3);
        assert_eq!(
            TrustedIdentity::parse("arn:aws:signer:us-west-2:111122223333:/signing-profiles/p")
                .unwrap(),
            TrustedIdentity::SignerProfile {
                arn: "arn:aws:signer:us-west-2:111122223333:/signing-profiles/p".into(),
                versioned: false
            }
        );
        assert!(matches!(
            TrustedIdentity::parse("arn:aws:signer:us-west-2:1:/signing-profiles/p/AbCdEfGhIj"),
            Ok(TrustedIdentity::SignerProfile {
                versioned: true,
                ..
            })
        ));
    }
}
