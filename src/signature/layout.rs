//! Signatures stored in an OCI image layout (`oci:DIR`) beside the image:
//! - cosign's `sha256-HEX.sig` tag, an `org.opencontainers.image.ref.name`
//!   in `index.json` (`cosign sign` to an `oci-layout`);
//! - the manifests `cosign save` lists with the annotation
//!   `kind: dev.cosignproject.cosign/sigs`;
//! - OCI 1.1 referrers: manifests whose `subject` is the scanned digest,
//!   listed in `index.json` (oras-go's layout store, which Notation's
//!   `--oci-layout` uses, lists every pushed manifest there), or in the
//!   referrers index under the `sha256-HEX` tag.
//!
//! The layout is as hostile as a registry answer: `index.json` is
//! size-capped and its entries counted, a blob is read only from a regular
//! file `blobs/sha256/<hex>` inside the layout (no symbolic link, no
//! device or FIFO, no `blobs` directory that resolves elsewhere), at most
//! the cap of bytes, and its digest checked.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::image::ImageError;
use crate::image::localfs::{self, Links, LocalFileError};
use crate::image::registry::Target;

use super::discover::{Descriptor, DiscoveryLimits, Index, SignatureManifest, is_sha256_digest};
use super::{cosign, notation};

/// The annotation an OCI layout's `index.json` names tags with.
const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// `cosign save` marks each entry of its layout with what it is.
const COSIGN_KIND: &str = "kind";
const COSIGN_SIGS: &str = "dev.cosignproject.cosign/sigs";

/// What is wrong with a layout or one of its files.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// Not a regular file inside the layout (a link, FIFO or device), or a
    /// `blobs` directory resolving outside it.
    #[error(transparent)]
    Local(LocalFileError),
    #[error("{path} is larger than {max} bytes")]
    TooLarge { path: String, max: u64 },
    #[error("index.json lists {count} entries; at most {max} are looked through for signatures")]
    TooManyEntries { count: usize, max: usize },
    #[error("index.json is not an image index: {0}")]
    NotAnIndex(String),
    #[error("the layout's blob {digest} does not have that digest")]
    DigestMismatch { digest: String },
    #[error("no {what} in the layout")]
    Missing { what: String },
}

impl LayoutError {
    /// The error as discovery judges it: an absent or oversized artifact
    /// makes that one signature invalid (as a registry's 404 or oversized
    /// answer does); the rest are the layout's own defects.
    fn into_image_error(self, image: &str) -> ImageError {
        let reference = image.to_owned();
        match self {
            LayoutError::Missing { what } => ImageError::NotFound { reference, what },
            e @ (LayoutError::TooLarge { .. } | LayoutError::TooManyEntries { .. }) => {
                ImageError::LimitExceeded {
                    reference,
                    detail: e.to_string(),
                }
            }
            e => ImageError::LocalImage {
                image: reference,
                detail: e.to_string(),
            },
        }
    }
}

/// An OCI image layout, opened for signature discovery.
pub(crate) struct Layout {
    /// `oci:DIR`, for messages.
    name: String,
    /// `DIR/blobs/sha256`, resolved.
    blobs: PathBuf,
    entries: Vec<Descriptor>,
}

impl Layout {
    /// Reads `index.json` (capped in bytes and in entries) and resolves
    /// `blobs/sha256`, which must stay inside the layout.
    pub fn open(dir: &Path, limits: &DiscoveryLimits) -> Result<Layout, LayoutError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| LayoutError::Io { path, source }
        };
        let root = dir.canonicalize().map_err(io(dir))?;
        let blobs =
            localfs::dir_within(&root, Path::new("blobs/sha256")).map_err(LayoutError::Local)?;
        let bytes = read_regular(&root.join("index.json"), limits.max_index_bytes)?;
        let index: Index =
            serde_json::from_slice(&bytes).map_err(|e| LayoutError::NotAnIndex(e.to_string()))?;
        if index.manifests.len() > limits.max_index_entries {
            return Err(LayoutError::TooManyEntries {
                count: index.manifests.len(),
                max: limits.max_index_entries,
            });
        }
        Ok(Layout {
            name: format!("oci:{}", dir.display()),
            blobs,
            entries: index.manifests,
        })
    }

    /// A manifest or blob as a registry would answer it: a digest from
    /// `blobs/sha256`, a tag through `index.json`'s ref names.
    pub fn get(&self, target: Target<'_>, max: u64) -> Result<Vec<u8>, ImageError> {
        let got = match target {
            Target::Manifest(tag) if !is_sha256_digest(tag) => match self.tagged(tag) {
                Some(d) => self.blob(&d.digest, max),
                None => Err(LayoutError::Missing {
                    what: format!("tag {tag}"),
                }),
            },
            Target::Manifest(digest) | Target::Blob(digest) | Target::Referrers(digest) => {
                self.blob(digest, max)
            }
        };
        got.map_err(|e| e.into_image_error(&self.name))
    }

    /// The signature referrers of `digest`, as a referrers API would list
    /// them: the referrers index under the `sha256-HEX` tag, then the
    /// manifests of `index.json` whose subject is `digest`. Reading stops
    /// after `4 × max_signatures` manifests.
    pub fn referrers(
        &self,
        digest: &str,
        limits: &DiscoveryLimits,
    ) -> Result<Vec<Descriptor>, ImageError> {
        let mut found = Vec::new();
        let tag = digest.replacen(':', "-", 1);
        if self.tagged(&tag).is_some() {
            let bytes = self.get(Target::Manifest(&tag), limits.max_index_bytes)?;
            // As for a registry: an answer that is not an index lists nothing.
            if let Ok(index) = serde_json::from_slice::<Index>(&bytes) {
                found.extend(index.manifests);
            }
        }
        let candidates = self
            .entries
            .iter()
            .filter(|d| may_be_referrer(d, digest))
            .take(4 * limits.max_signatures);
        for desc in candidates {
            crate::cancel::checkpoint().map_err(|c| ImageError::Client(c.to_string()))?;
            if found.len() >= limits.max_signatures {
                break;
            }
            if let Some(d) = self.referrer_of(desc, digest, limits) {
                found.push(d);
            }
        }
        Ok(found)
    }

    /// `desc` as a referrer entry of `digest`, with the artifact type its
    /// manifest declares; `None` when it refers to something else or is
    /// no signature. A manifest that cannot be read is kept when its entry
    /// claims a signature type, so that the check reports why.
    fn referrer_of(
        &self,
        desc: &Descriptor,
        digest: &str,
        limits: &DiscoveryLimits,
    ) -> Option<Descriptor> {
        let claimed = desc.artifact_type.as_deref().is_some_and(is_signature_type);
        let Ok(bytes) = self.blob(&desc.digest, limits.max_manifest_bytes) else {
            return claimed.then(|| desc.clone());
        };
        let manifest: SignatureManifest = serde_json::from_slice(&bytes).ok()?;
        if manifest.subject.as_ref().map(|s| s.digest.as_str()) != Some(digest) {
            return None;
        }
        let kind = manifest.artifact_type().filter(|t| is_signature_type(t))?;
        Some(Descriptor {
            artifact_type: Some(kind.to_owned()),
            ..desc.clone()
        })
    }

    /// The entries `cosign save` marks as signatures (of the layout's image).
    pub fn cosign_saved(&self) -> Vec<Descriptor> {
        self.entries
            .iter()
            .filter(|d| d.annotations.get(COSIGN_KIND).map(String::as_str) == Some(COSIGN_SIGS))
            .cloned()
            .collect()
    }

    fn tagged(&self, tag: &str) -> Option<&Descriptor> {
        self.entries
            .iter()
            .find(|d| d.annotations.get(REF_NAME).map(String::as_str) == Some(tag))
    }

    /// The blob `digest`, from `blobs/sha256/<hex>` only, checked.
    fn blob(&self, digest: &str, max: u64) -> Result<Vec<u8>, LayoutError> {
        let Some(hex) = digest
            .strip_prefix("sha256:")
            .filter(|_| is_sha256_digest(digest))
        else {
            return Err(LayoutError::Missing {
                what: format!("blob {:?} (not a sha256 digest)", truncate(digest)),
            });
        };
        let bytes = read_regular(&self.blobs.join(hex), max)?;
        if super::discover::sha256_digest(&bytes) != digest {
            return Err(LayoutError::DigestMismatch {
                digest: digest.to_owned(),
            });
        }
        Ok(bytes)
    }
}

/// Worth reading as a possible referrer: a manifest entry other than the
/// subject itself that claims a signature type, or claims no type and
/// carries no tag (how layout stores list pushed referrers).
fn may_be_referrer(d: &Descriptor, digest: &str) -> bool {
    if d.digest == digest || d.media_type.contains("index") {
        return false;
    }
    match d.artifact_type.as_deref() {
        Some(t) => is_signature_type(t),
        None => !d.annotations.contains_key(REF_NAME) && !d.annotations.contains_key(COSIGN_KIND),
    }
}

fn is_signature_type(t: &str) -> bool {
    matches!(t, notation::ARTIFACT_TYPE | cosign::SIG_ARTIFACT_TYPE)
}

/// At most `max` bytes of a regular file of the layout, opened without
/// following a link or blocking on a FIFO (`localfs::open_regular`).
fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, LayoutError> {
    let too_large = || LayoutError::TooLarge {
        path: path.display().to_string(),
        max,
    };
    let (file, meta) = localfs::open_regular(path, Links::Refuse).map_err(local)?;
    if meta.len() > max {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| LayoutError::Io {
            path: path.display().to_string(),
            source,
        })?;
    if bytes.len() as u64 > max {
        return Err(too_large());
    }
    Ok(bytes)
}

/// An absent file is a missing artifact (the signature is invalid, as for
/// a registry's 404); anything else is the layout's defect.
fn local(e: LocalFileError) -> LayoutError {
    match e {
        LocalFileError::NotFound { path } => LayoutError::Missing { what: path },
        e => LayoutError::Local(e),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}
