//! Finding the signatures of a manifest digest in its registry: the OCI 1.1
//! referrers API, its fallback tag (`sha256-HEX`, an index the pusher keeps
//! when the registry has no referrers API) and cosign's own tag
//! (`sha256-HEX.sig`); or the same in an OCI image layout ([`Origin`]).
//!
//! The registry is not trusted: every answer is size-capped, every
//! descriptor digest is checked for shape before it goes into a URL and
//! for value after the bytes arrive, and only a bounded number of
//! referrers and layers is looked at. Requests go through the pull's own
//! [`RegistryClient`], so credentials follow the same host-bound rules.

use std::collections::BTreeMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::image::ImageError;
use crate::image::manifest::OCI_INDEX;
use crate::image::registry::{RegistryClient, Target};

use super::Invalid;
use super::layout::Layout;

/// Caps on what discovery reads from the registry.
#[derive(Debug, Clone)]
pub struct DiscoveryLimits {
    /// A referrers list (or its fallback index).
    pub max_index_bytes: u64,
    /// One signature manifest.
    pub max_manifest_bytes: u64,
    /// One signature blob (a cosign payload or a Notary envelope).
    pub max_blob_bytes: u64,
    /// Signature manifests examined, over all discovery paths.
    pub max_signatures: usize,
    /// Entries of an OCI layout's `index.json` looked through.
    pub max_index_entries: usize,
    /// Layers examined per signature manifest (cosign adds one per signing).
    pub max_layers: usize,
    /// The whole check: all requests, retries and verifications.
    pub max_time: std::time::Duration,
}

impl Default for DiscoveryLimits {
    fn default() -> Self {
        DiscoveryLimits {
            max_index_bytes: 1 << 20,
            max_manifest_bytes: 256 << 10,
            max_blob_bytes: 256 << 10,
            max_signatures: 16,
            max_index_entries: 1024,
            max_layers: 16,
            max_time: super::MAX_CHECK_TIME,
        }
    }
}

/// A descriptor as signature manifests and referrer lists carry it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// A signature manifest (cosign's or Notation's).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SignatureManifest {
    #[serde(default)]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub subject: Option<Descriptor>,
}

impl SignatureManifest {
    /// The artifact type: the field, or the config media type of manifests
    /// written before OCI 1.1 had the field.
    pub fn artifact_type(&self) -> Option<&str> {
        self.artifact_type
            .as_deref()
            .or(self.config.as_ref().map(|c| c.media_type.as_str()))
    }
}

#[derive(Deserialize)]
pub(crate) struct Index {
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// `sha256:` and 64 lowercase hex digits: the only digests that go into a
/// request path (a hostile `../` or `?` must not).
pub(crate) fn is_sha256_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Where signature manifests and blobs are fetched from: the image's
/// registry, or the OCI layout the image was read from. Everything above
/// this (what is a candidate, the caps, the digest checks, verification)
/// is the same for both.
pub(crate) enum Origin<'a> {
    Registry(&'a RegistryClient),
    Layout(&'a Layout),
}

/// Bounded fetches from one origin.
pub(crate) struct Fetcher<'a> {
    pub origin: Origin<'a>,
    pub limits: &'a DiscoveryLimits,
}

/// Where referrers were found.
pub(crate) enum ReferrersSource {
    Api,
    FallbackTag,
    None,
    Layout,
}

impl Fetcher<'_> {
    /// At most `limit` bytes of `target`.
    async fn get(
        &self,
        target: Target<'_>,
        accept: Option<&str>,
        limit: u64,
    ) -> Result<Vec<u8>, ImageError> {
        match self.origin {
            Origin::Registry(client) => client
                .get_bytes(target, accept, limit)
                .await
                .map(|(bytes, _, _)| bytes),
            Origin::Layout(layout) => layout.get(target, limit),
        }
    }

    /// The manifests `cosign save` stored as the layout image's signatures
    /// (none for a registry: there cosign uses the `.sig` tag).
    pub fn cosign_saved(&self) -> Vec<Descriptor> {
        match self.origin {
            Origin::Registry(_) => Vec::new(),
            Origin::Layout(layout) => layout.cosign_saved(),
        }
    }

    /// The referrers of `digest`: from the API, or (when the registry has
    /// none: 404) from the fallback tag; each with the artifact type its
    /// list entry claims (checked again on the manifest itself). In a
    /// layout, what [`Layout::referrers`] finds.
    pub async fn referrers(
        &self,
        digest: &str,
    ) -> Result<(Vec<Descriptor>, ReferrersSource), ImageError> {
        if let Origin::Layout(layout) = self.origin {
            return Ok((
                layout.referrers(digest, self.limits)?,
                ReferrersSource::Layout,
            ));
        }
        let limit = self.limits.max_index_bytes;
        let api = self
            .get(Target::Referrers(digest), Some(OCI_INDEX), limit)
            .await;
        let (bytes, source) = match api {
            Ok(bytes) => (bytes, ReferrersSource::Api),
            Err(ImageError::NotFound { .. }) => {
                let tag = digest.replacen(':', "-", 1);
                match self
                    .get(Target::Manifest(&tag), Some(OCI_INDEX), limit)
                    .await
                {
                    Ok(bytes) => (bytes, ReferrersSource::FallbackTag),
                    Err(ImageError::NotFound { .. }) => {
                        return Ok((Vec::new(), ReferrersSource::None));
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        // An answer that is not an index lists nothing: the registry does
        // not get to turn a parse error into a failed gate or a pass.
        let index: Index = serde_json::from_slice(&bytes).unwrap_or(Index {
            manifests: Vec::new(),
        });
        Ok((index.manifests, source))
    }

    /// A manifest by tag (cosign's `.sig`), or `None` when there is none.
    /// One that is too large (or, in a layout, not a confined regular file)
    /// is that signature's problem, as for a manifest by digest.
    pub async fn manifest_by_tag(
        &self,
        tag: &str,
    ) -> Result<Option<Result<SignatureManifest, Invalid>>, ImageError> {
        let fetched = self
            .get(
                Target::Manifest(tag),
                Some(OCI_MANIFEST_ACCEPT),
                self.limits.max_manifest_bytes,
            )
            .await;
        if let Err(ImageError::NotFound { .. }) = fetched {
            return Ok(None);
        }
        Ok(Some(
            artifact_problem(fetched)?.and_then(|bytes| parse_manifest(&bytes)),
        ))
    }

    /// A manifest by the digest a referrer list names, checked against it.
    pub async fn manifest_by_digest(
        &self,
        desc: &Descriptor,
    ) -> Result<Result<SignatureManifest, Invalid>, ImageError> {
        let max = self.limits.max_manifest_bytes;
        let target = Target::Manifest(&desc.digest);
        Ok(self
            .checked(desc, target, Some(OCI_MANIFEST_ACCEPT), max, "manifest")
            .await?
            .and_then(|bytes| parse_manifest(&bytes)))
    }

    /// A blob a signature manifest names, checked against its digest.
    pub async fn blob(&self, desc: &Descriptor) -> Result<Result<Vec<u8>, Invalid>, ImageError> {
        let max = self.limits.max_blob_bytes;
        self.checked(desc, Target::Blob(&desc.digest), None, max, "blob")
            .await
    }

    /// The bytes `desc` names: its digest well-formed before it is used,
    /// its size within `max`, and the bytes that came back of that digest.
    async fn checked(
        &self,
        desc: &Descriptor,
        target: Target<'_>,
        accept: Option<&str>,
        max: u64,
        what: &str,
    ) -> Result<Result<Vec<u8>, Invalid>, ImageError> {
        if !is_sha256_digest(&desc.digest) {
            return Ok(Err(Invalid::Malformed(format!(
                "a signature {what} digest {:?} is not sha256",
                truncate(&desc.digest)
            ))));
        }
        if desc.size > max {
            return Ok(Err(Invalid::Malformed(format!(
                "a signature {what} of {} bytes (at most {max})",
                desc.size
            ))));
        }
        let bytes = match artifact_problem(self.get(target, accept, max).await)? {
            Ok(bytes) => bytes,
            Err(reason) => return Ok(Err(reason)),
        };
        if sha256_digest(&bytes) != desc.digest {
            return Ok(Err(Invalid::Malformed(format!(
                "the {what} {} does not have that digest",
                desc.digest
            ))));
        }
        Ok(Ok(bytes))
    }
}

/// Signature manifests are OCI image manifests; cosign's `.sig` may be a
/// Docker schema 2 manifest where the registry predates OCI.
const OCI_MANIFEST_ACCEPT: &str = concat!(
    "application/vnd.oci.image.manifest.v1+json, ",
    "application/vnd.docker.distribution.manifest.v2+json"
);

fn parse_manifest(bytes: &[u8]) -> Result<SignatureManifest, Invalid> {
    serde_json::from_slice(bytes).map_err(|e| {
        Invalid::Malformed(format!(
            "the signature manifest is not an OCI manifest: {e}"
        ))
    })
}

/// What is wrong with one signature's manifest or blob (listed but absent,
/// larger than it said; in a layout also a symbolic link or a file of
/// another digest) makes that signature invalid, not the whole check
/// unanswerable: another signature may still verify. A registry that cannot
/// be reached or refuses access is an error of the check.
fn artifact_problem(
    fetched: Result<Vec<u8>, ImageError>,
) -> Result<Result<Vec<u8>, Invalid>, ImageError> {
    match fetched {
        Ok(bytes) => Ok(Ok(bytes)),
        Err(
            e @ (ImageError::NotFound { .. }
            | ImageError::LimitExceeded { .. }
            | ImageError::LocalImage { .. }
            | ImageError::DigestMismatch { .. }),
        ) => Ok(Err(Invalid::Malformed(e.to_string()))),
        Err(e) => Err(e),
    }
}

pub(crate) fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_digests_reach_a_url() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert!(is_sha256_digest(&good));
        for bad in [
            "sha256:../../v2/other/manifests/x",
            "sha512:aa",
            &format!("sha256:{}", "A".repeat(64)),
            &format!("sha256:{}?x", "a".repeat(64)),
            &format!("sha256:{}", "a".repeat(63)),
        ] {
            assert!(!is_sha256_digest(bad), "{bad}");
        }
    }

    #[test]
    fn artifact_type_falls_back_to_the_config_media_type() {
        let m: SignatureManifest = serde_json::from_str(
            r#"{"config":{"mediaType":"application/vnd.cncf.notary.signature","digest":"sha256:x","size":2},"layers":[]}"#,
        )
        .unwrap();
        assert_eq!(
            m.artifact_type(),
            Some("application/vnd.cncf.notary.signature")
        );
    }
}
