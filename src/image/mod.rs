//! Pulling an image from a registry into the squashed view the catalogers
//! read: reference → manifest (index → the requested platform) → config →
//! layers streamed with their digests verified and whiteouts applied.
//!
//! The layer streaming is written here rather than taken from an OCI client
//! crate because the gate needs three things those crates do not give
//! together: memory bounded by the files the catalogers want (a pull keeps
//! package databases, never whole layers), whiteouts and opaque directories
//! applied before any cataloger sees a file (so a package removed in a later
//! layer is not reported), and nothing written to disk (no scratch space to
//! size, no hostile path that could land outside it). The registry protocol
//! itself is a handful of GETs, and owning it lets every failure become an
//! error that tells the pipeline operator what to do.

pub mod auth;
pub mod error;
pub mod fs;
pub mod layer;
pub mod localfs;
pub mod manifest;
pub mod memory;
pub mod observe;
pub mod platform;
pub mod reference;
pub(crate) mod registry;
pub mod source;
pub mod tarstream;

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt, TryFutureExt, TryStreamExt};
use sha2::{Digest, Sha256};
use tokio_util::io::{StreamReader, SyncIoBridge};

pub use auth::{AuthMethod, HostCredentials, HostListError, RegistryAuth, RegistryHosts};
pub use error::{FailureClass, ImageError, ReferenceProblem};
pub use fs::{FileEntry, FileTree};
pub use manifest::{HistoryEntry, ImageConfig};
pub use platform::Platform;
pub use reference::ImageRef;
pub use registry::Credentials;
pub use source::{ImageSource, pull_source};

pub use layer::FileSelector;
use layer::{Budget, LayerFailure, LayerSource};
use manifest::{
    Descriptor, ImageManifest, IndexManifest, MANIFEST_ACCEPT, Manifest, ManifestProblem,
};
use registry::{RegistryClient, RegistryOptions, Target};

/// Decides which regular files are kept (by path or by content) and how
/// they are shrunk; a plain `Fn(&str) -> bool` keeps files by path.
pub type Wants = Arc<dyn FileSelector>;

/// Bounds on what one pull may cost; the defaults fit real images with
/// room to spare and stop hostile ones early.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_manifest_bytes: u64,
    pub max_config_bytes: u64,
    pub max_layers: usize,
    /// Files wanted by path larger than this are skipped with a warning.
    pub max_file_bytes: u64,
    /// Files wanted for their content (executables with build metadata)
    /// larger than this are skipped with a warning. Each is read whole
    /// before it is reduced, so the reader's peak memory is about this
    /// times `parallel_layers`.
    pub max_sniffed_bytes: u64,
    /// All layers decompressed, together.
    pub max_decompressed_bytes: u64,
    /// All kept file contents, together.
    pub max_kept_bytes: u64,
    /// Names, link targets and per-entry bookkeeping held in memory at once
    /// (layers read but not merged, and the symlinks and links the merged
    /// tree keeps). A million-entry layer needs about 30 MiB.
    pub max_metadata_bytes: u64,
    /// Tar entries in all layers together. Large real images have a few
    /// hundred thousand.
    pub max_entries: u64,
    /// Layers downloaded and read at once.
    pub parallel_layers: usize,
    /// Tries per request (and per layer download) before giving up.
    pub max_attempts: u32,
    /// First retry delay; it doubles on each further try.
    pub retry_base_delay: Duration,
}

/// Sized so that two jobs fit a 1 GiB task with room for the process and
/// for the SBOM and reports built from the kept files: a job's reader peaks
/// at about `max_kept_bytes + parallel_layers * max_sniffed_bytes` = 192 +
/// 2 x 64 = 320 MiB. The process-wide budget ([`memory::global`]) bounds
/// all jobs together whatever these say.
impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_manifest_bytes: 4 << 20,
            max_config_bytes: 8 << 20,
            max_layers: 256,
            max_file_bytes: 64 << 20,
            max_sniffed_bytes: 64 << 20,
            max_decompressed_bytes: 64 << 30,
            max_kept_bytes: 192 << 20,
            max_metadata_bytes: layer::DEFAULT_MAX_METADATA,
            max_entries: layer::DEFAULT_MAX_ENTRIES,
            parallel_layers: 2,
            max_attempts: 4,
            retry_base_delay: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PullOptions {
    pub platform: Platform,
    /// `host:port` entries reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// `SCANGATE_REGISTRY_USERNAME`/`_PASSWORD`, offered only to their hosts.
    pub credentials: Option<HostCredentials>,
    /// `SCANGATE_REGISTRY_HOSTS`: a token service (`realm`) on another host
    /// than its registry gets credentials (of any source) only when listed.
    pub registry_hosts: RegistryHosts,
    /// The registry was named by the image's own content (the base image of
    /// a label or annotation): reached anonymously, whatever the other
    /// fields say (see [`PullOptions::for_content_named`]).
    pub content_named: bool,
    /// Registry redirects may lead to loopback addresses
    /// (`SCANGATE_ALLOW_LOOPBACK_REDIRECTS`; tests, local registries).
    pub allow_loopback_redirects: bool,
    /// The other credential sources (ECR, Docker config) and their caches;
    /// clones share the caches.
    pub auth: RegistryAuth,
    pub limits: Limits,
    pub user_agent: String,
    /// Shown every layer's file contents in the same pass (the secret
    /// scanner); `None` costs nothing.
    pub observer: Option<observe::Observer>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: Platform::default(),
            insecure_registries: Vec::new(),
            credentials: None,
            registry_hosts: RegistryHosts::default(),
            content_named: false,
            allow_loopback_redirects: false,
            auth: RegistryAuth::default(),
            limits: Limits::default(),
            user_agent: concat!("scangate/", env!("CARGO_PKG_VERSION")).to_owned(),
            observer: None,
        }
    }
}

impl PullOptions {
    /// The options for a registry host that only the image's content named:
    /// no credentials of any source go there (an image label must not be
    /// able to collect them).
    pub fn for_content_named(&self) -> PullOptions {
        PullOptions {
            credentials: None,
            content_named: true,
            // Another image (a base): its findings are not this image's.
            observer: None,
            ..self.clone()
        }
    }
}

/// A layer as the manifest and config describe it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Layer {
    /// Digest of the blob as stored (compressed).
    pub digest: String,
    /// Digest of the uncompressed tar (`rootfs.diff_ids`).
    pub diff_id: String,
    pub media_type: String,
    pub size: u64,
}

/// Everything about an image except its files: what `resolve` returns.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    pub reference: ImageRef,
    /// Digest of the platform manifest (what is scanned).
    pub manifest_digest: String,
    /// Digest of the multi-platform index, when the reference named one.
    pub index_digest: Option<String>,
    pub config_digest: String,
    pub platform: Platform,
    pub layers: Vec<Layer>,
    pub config: ImageConfig,
    /// Manifest annotations (e.g. `org.opencontainers.image.base.name`).
    pub annotations: BTreeMap<String, String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct PulledImage {
    /// Where the image came from (a registry reference, or a local
    /// `oci:`/`docker-archive:` source).
    pub reference: ImageSource,
    /// Digest of the platform manifest actually scanned.
    pub manifest_digest: String,
    pub index_digest: Option<String>,
    pub config_digest: String,
    pub platform: Platform,
    pub layers: Vec<Layer>,
    pub config: ImageConfig,
    pub annotations: BTreeMap<String, String>,
    /// Wanted files and all symlinks, whiteouts applied.
    pub files: FileTree,
    /// Things a person should know (skipped entries, platform fallbacks).
    pub warnings: Vec<String>,
}

/// Resolves `reference` to its platform manifest and config, without
/// downloading layers (cheap: for digests and metadata).
pub async fn resolve(
    reference: &ImageRef,
    opts: &PullOptions,
) -> Result<ResolvedImage, ImageError> {
    let client = client(reference, opts)?;
    resolve_with(&client, reference, opts).await
}

/// Pulls `reference` for `opts.platform` and returns its metadata and the
/// files `wants` asked for, as the final (squashed) filesystem has them.
pub async fn pull(
    reference: &ImageRef,
    opts: &PullOptions,
    wants: Wants,
) -> Result<PulledImage, ImageError> {
    tracing::info!(image = %reference, platform = %opts.platform, "pulling image");
    let started = std::time::Instant::now();
    let wants = observe::with_observer(wants, opts.observer.as_ref());
    let client = Arc::new(client(reference, opts)?);
    let resolved = resolve_with(&client, reference, opts).await?;
    let (files, layer_warnings, decompressed) =
        read_layers(&client, &resolved, opts, wants).await?;
    let mut warnings = resolved.warnings;
    warnings.extend(layer_warnings);
    for w in &warnings {
        tracing::debug!(image = %reference, "{w}");
    }
    tracing::info!(
        image = %reference,
        digest = %resolved.manifest_digest,
        layers = resolved.layers.len(),
        files = files.files.len(),
        symlinks = files.symlinks.len(),
        warnings = warnings.len(),
        decompressed_bytes = decompressed,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "pulled image"
    );
    Ok(PulledImage {
        reference: ImageSource::Registry(resolved.reference),
        manifest_digest: resolved.manifest_digest,
        index_digest: resolved.index_digest,
        config_digest: resolved.config_digest,
        platform: resolved.platform,
        layers: resolved.layers,
        config: resolved.config,
        annotations: resolved.annotations,
        files,
        warnings,
    })
}

pub(crate) fn client(
    reference: &ImageRef,
    opts: &PullOptions,
) -> Result<RegistryClient, ImageError> {
    RegistryClient::new(
        reference,
        &RegistryOptions {
            insecure_registries: &opts.insecure_registries,
            credentials: opts.credentials.as_ref(),
            registry_hosts: &opts.registry_hosts,
            content_named: opts.content_named,
            allow_loopback_redirects: opts.allow_loopback_redirects,
            auth: &opts.auth,
            user_agent: &opts.user_agent,
            max_attempts: opts.limits.max_attempts,
            base_delay: opts.limits.retry_base_delay,
        },
    )
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Top manifest (digest checked) → platform manifest when it is an index →
/// layer checks → config → platform: all before any layer is downloaded.
async fn resolve_with(
    client: &RegistryClient,
    reference: &ImageRef,
    opts: &PullOptions,
) -> Result<ResolvedImage, ImageError> {
    let limits = &opts.limits;
    let mut r = Resolver {
        reference,
        opts,
        image: reference.to_string(),
        warnings: Vec::new(),
    };
    // The downloads are awaited here rather than inside the steps: each
    // async step would nest one more future inside the worker's, whose
    // layout is already close to the compiler's depth limit.
    let top_ref = reference.manifest_reference();
    let (bytes, content_type, header_digest) = client
        .get_bytes(
            Target::Manifest(top_ref),
            Some(MANIFEST_ACCEPT),
            limits.max_manifest_bytes,
        )
        .await?;
    let top_digest = r.check_top_digest(&bytes, header_digest)?;
    let what_top = format!("manifest {top_ref}");
    let chosen = match manifest::parse_manifest(&bytes, content_type.as_deref())
        .map_err(|p| r.manifest_problem(p, &what_top))?
    {
        Manifest::Image(m) => ChosenManifest {
            manifest: m,
            manifest_digest: top_digest,
            index_digest: None,
            platform_from_index: None,
        },
        Manifest::Index(index) => {
            let entry = r.choose_entry(&index)?;
            let (child, child_type, _) = client
                .get_bytes(
                    Target::Manifest(&entry.digest),
                    Some(MANIFEST_ACCEPT),
                    limits.max_manifest_bytes,
                )
                .await?;
            r.platform_manifest(entry, &child, child_type, top_digest)?
        }
    };
    r.check_layers(&chosen.manifest)?;
    let config_digest = chosen.manifest.config.digest.clone();
    let (config_bytes, _, _) = client
        .get_bytes(Target::Blob(&config_digest), None, limits.max_config_bytes)
        .await?;
    let config = r.config(&chosen.manifest, &config_bytes)?;
    let platform = r.platform(chosen.platform_from_index, &config);
    let layers = layers_of(&chosen.manifest, &config);
    Ok(ResolvedImage {
        reference: reference.clone(),
        manifest_digest: chosen.manifest_digest,
        index_digest: chosen.index_digest,
        config_digest,
        platform,
        layers,
        config,
        annotations: chosen.manifest.annotations,
        warnings: r.warnings,
    })
}

/// The state of one [`resolve_with`]: what was asked for and the warnings
/// found on the way. Its steps check what was downloaded.
struct Resolver<'a> {
    reference: &'a ImageRef,
    opts: &'a PullOptions,
    /// The reference as text, for messages.
    image: String,
    warnings: Vec<String>,
}

/// The image manifest picked for the requested platform.
struct ChosenManifest {
    manifest: ImageManifest,
    manifest_digest: String,
    /// The index the manifest was picked from, when the reference named one.
    index_digest: Option<String>,
    /// The platform the index gave for the manifest.
    platform_from_index: Option<Platform>,
}

impl Resolver<'_> {
    fn manifest_problem(&self, p: ManifestProblem, what: &str) -> ImageError {
        match p {
            ManifestProblem::Unsupported(detail) => ImageError::Unsupported {
                reference: self.image.clone(),
                detail,
            },
            ManifestProblem::Invalid(detail) => ImageError::Protocol {
                registry: self.reference.registry.clone(),
                what: what.to_owned(),
                detail,
            },
        }
    }

    /// The top manifest's digest, checked against the reference's or else
    /// the one the registry reported.
    fn check_top_digest(
        &self,
        bytes: &[u8],
        header_digest: Option<String>,
    ) -> Result<String, ImageError> {
        let top_digest = sha256_digest(bytes);
        let expected = self.reference.digest.clone().or_else(|| {
            // Registries report the digest of what they sent; a different one
            // means something in between altered the manifest.
            header_digest.filter(|d| d.starts_with("sha256:"))
        });
        if let Some(expected) = expected
            && expected != top_digest
        {
            return Err(ImageError::DigestMismatch {
                what: format!("the manifest of {}", self.image),
                digest: expected,
                actual: top_digest,
            });
        }
        Ok(top_digest)
    }

    /// The index entry for the requested platform; an index with a single
    /// platform-less manifest gets that manifest, with a warning.
    fn choose_entry<'i>(&mut self, index: &'i IndexManifest) -> Result<&'i Descriptor, ImageError> {
        let entries = index.image_entries();
        let candidates: Vec<Option<Platform>> = entries
            .iter()
            .map(|d| d.platform.as_ref().map(Platform::from))
            .collect();
        match self.opts.platform.select(&candidates) {
            Some(i) => Ok(entries[i]),
            None if entries.is_empty()
                && index.manifests.len() == 1
                && index.manifests[0].platform.is_none() =>
            {
                self.warnings.push(format!(
                    "the index of {} has one manifest and no platform for it; \
                     scanning that manifest",
                    self.image
                ));
                Ok(&index.manifests[0])
            }
            None => Err(ImageError::PlatformNotFound {
                reference: self.image.clone(),
                wanted: self.opts.platform.to_string(),
                available: candidates
                    .iter()
                    .flatten()
                    .map(Platform::to_string)
                    .collect(),
            }),
        }
    }

    /// The platform manifest an index entry names, verified against the
    /// entry's digest; nested indexes are refused.
    fn platform_manifest(
        &self,
        chosen: &Descriptor,
        child: &[u8],
        child_type: Option<String>,
        top_digest: String,
    ) -> Result<ChosenManifest, ImageError> {
        let child_digest = chosen.digest.clone();
        let actual = sha256_digest(child);
        if actual != child_digest {
            return Err(ImageError::DigestMismatch {
                what: format!("the platform manifest of {}", self.image),
                digest: child_digest,
                actual,
            });
        }
        let what = format!("manifest {child_digest}");
        match manifest::parse_manifest(child, child_type.as_deref())
            .map_err(|p| self.manifest_problem(p, &what))?
        {
            Manifest::Image(m) => Ok(ChosenManifest {
                manifest: m,
                manifest_digest: child_digest,
                index_digest: Some(top_digest),
                platform_from_index: chosen.platform.as_ref().map(Platform::from),
            }),
            Manifest::Index(_) => Err(ImageError::Unsupported {
                reference: self.image.clone(),
                detail: "its index points to another index (nested indexes are \
                         not supported)"
                    .into(),
            }),
        }
    }

    /// Refuses too many layers, or layers that are not filesystems, before
    /// anything else is downloaded.
    fn check_layers(&self, manifest: &ImageManifest) -> Result<(), ImageError> {
        let limits = &self.opts.limits;
        if manifest.layers.len() > limits.max_layers {
            return Err(ImageError::LimitExceeded {
                reference: self.image.clone(),
                detail: format!(
                    "it has {} layers; at most {} are read",
                    manifest.layers.len(),
                    limits.max_layers
                ),
            });
        }
        check_layer_media_types(manifest, &self.image)
    }

    /// The config (verified against its digest), checked to describe a
    /// Linux image with the manifest's layers.
    fn config(
        &self,
        manifest: &ImageManifest,
        config_bytes: &[u8],
    ) -> Result<ImageConfig, ImageError> {
        let config_digest = &manifest.config.digest;
        let actual = sha256_digest(config_bytes);
        if actual != *config_digest {
            return Err(ImageError::DigestMismatch {
                what: format!("the config of {}", self.image),
                digest: config_digest.clone(),
                actual,
            });
        }
        let protocol = |detail| ImageError::Protocol {
            registry: self.reference.registry.clone(),
            what: format!("config {config_digest}"),
            detail,
        };
        let config = manifest::parse_config(config_bytes).map_err(protocol)?;
        if config.os == "windows" {
            return Err(ImageError::Unsupported {
                reference: self.image.clone(),
                detail: "Windows container images are not supported".into(),
            });
        }
        if config.diff_ids.len() != manifest.layers.len() {
            return Err(protocol(format!(
                "the config lists {} layers (rootfs.diff_ids) but the manifest has {}",
                config.diff_ids.len(),
                manifest.layers.len()
            )));
        }
        Ok(config)
    }

    /// The index's platform, or else the config's (a single-platform image
    /// of another platform is scanned anyway, with a warning).
    fn platform(&mut self, from_index: Option<Platform>, config: &ImageConfig) -> Platform {
        if let Some(p) = from_index {
            return p;
        }
        let config_platform = Platform {
            os: config.os.clone(),
            architecture: config.architecture.clone(),
            variant: config.variant.clone(),
        };
        if !config.os.is_empty() && !self.opts.platform.accepts(&config_platform) {
            self.warnings.push(format!(
                "{} is a single-platform {config_platform} image, not the requested \
                 {}; scanning it anyway",
                self.image, self.opts.platform
            ));
        }
        config_platform
    }
}

/// Every layer the manifest names must be a filesystem layer (registry and
/// OCI layout alike), checked before any layer is read.
fn check_layer_media_types(manifest: &ImageManifest, image: &str) -> Result<(), ImageError> {
    for l in &manifest.layers {
        if let Some(mt) = &l.media_type {
            check_layer_media_type(mt).map_err(|detail| ImageError::Unsupported {
                reference: image.to_owned(),
                detail: format!("layer {}: {detail}", l.digest),
            })?;
        }
    }
    Ok(())
}

/// The manifest's layers paired with the config's `rootfs.diff_ids` (whose
/// counts the caller checked to be equal).
fn layers_of(manifest: &ImageManifest, config: &ImageConfig) -> Vec<Layer> {
    manifest
        .layers
        .iter()
        .zip(&config.diff_ids)
        .map(|(d, diff_id)| Layer {
            digest: d.digest.clone(),
            diff_id: diff_id.clone(),
            media_type: d.media_type.clone().unwrap_or_default(),
            size: d.size,
        })
        .collect()
}

/// Only filesystem layers can be read; anything else (OCI artifact
/// payloads) is refused before any download.
pub(crate) fn check_layer_media_type(mt: &str) -> Result<(), String> {
    let known = [
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    ];
    if known.contains(&mt) {
        Ok(())
    } else {
        Err(format!("media type {mt} is not a filesystem layer"))
    }
}

/// Foreign (Windows base) and non-distributable layers are, by their
/// media type, content the registry may not hold and the image's publisher
/// may not redistribute; their descriptors carry `urls` to a third party
/// instead. They are skipped with a warning rather than fetched: following
/// those URLs would reach outside the registry the pipeline trusts, and
/// their content (a Windows base) is nothing a Linux cataloger reads.
pub(crate) fn is_foreign_layer(mt: &str) -> bool {
    mt.contains(".foreign.") || mt.contains(".nondistributable.")
}

pub(crate) fn foreign_layer_warning(index: usize, layer: &Layer) -> String {
    format!(
        "layer {} ({}) is a foreign/non-distributable layer ({}); skipped, so its \
         files are not in the SBOM",
        index + 1,
        &layer.digest[..layer.digest.len().min(19)],
        layer.media_type
    )
}

/// Turns a layer failure into an image error for a local source, where
/// there is no registry to blame and no retry to make.
pub(crate) fn local_layer_error(failure: LayerFailure, image: &str, layer: &Layer) -> ImageError {
    let digest = layer.digest.clone();
    match failure {
        LayerFailure::Source(detail) => ImageError::LocalImage {
            image: image.to_owned(),
            detail: format!("reading layer {digest} failed: {detail}"),
        },
        LayerFailure::Cancelled => ImageError::Internal {
            reference: image.to_owned(),
            detail: format!("reading layer {digest} was cancelled"),
        },
        LayerFailure::DigestMismatch { actual } => ImageError::DigestMismatch {
            what: format!("layer {digest} of {image}"),
            digest,
            actual,
        },
        LayerFailure::DiffIdMismatch { actual } => ImageError::DigestMismatch {
            what: format!("the uncompressed content of layer {digest} of {image}"),
            digest: layer.diff_id.clone(),
            actual,
        },
        LayerFailure::Oversize { declared } => ImageError::CorruptLayer {
            digest,
            detail: format!("the blob is larger than the {declared} bytes its descriptor declares"),
        },
        LayerFailure::Limit(detail) => ImageError::LimitExceeded {
            reference: image.to_owned(),
            detail: format!("{detail} (reading layer {digest})"),
        },
        LayerFailure::MemoryBusy(detail) => ImageError::MemoryBusy {
            reference: image.to_owned(),
            detail,
        },
        LayerFailure::Corrupt(detail) => ImageError::CorruptLayer {
            digest,
            detail: format!("not a valid gzip/zstd/tar stream: {detail}"),
        },
        LayerFailure::Unsupported(detail) => ImageError::Unsupported {
            reference: image.to_owned(),
            detail: format!("layer {digest}: {detail}"),
        },
    }
}

/// Cancels the layer readers still running when the pull ends early
/// (an error in another layer, or the caller dropping the future).
struct CancelOnDrop(Arc<Budget>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

async fn read_layers(
    client: &Arc<RegistryClient>,
    image: &ResolvedImage,
    opts: &PullOptions,
    wants: Wants,
) -> Result<(FileTree, Vec<String>, u64), ImageError> {
    let limits = &opts.limits;
    let budget = Budget::from_limits(limits);
    let _cancel = CancelOnDrop(budget.clone());
    let reference = image.reference.to_string();
    // The futures are collected first: a lazy `map` closure inside the
    // stream would make the whole pull future fail the `Send` check that
    // `tokio::spawn` needs (a higher-ranked lifetime limitation of rustc).
    let mut warnings = Vec::new();
    let fetches: Vec<_> = image
        .layers
        .iter()
        .enumerate()
        .filter(|(i, l)| {
            let foreign = is_foreign_layer(&l.media_type);
            if foreign {
                warnings.push(foreign_layer_warning(*i, l));
            }
            !foreign
        })
        .map(|(i, l)| {
            fetch_layer(client, &reference, l, budget.clone(), wants.clone())
                .map_ok(move |c| (i, c))
        })
        .collect();
    let mut results = futures_util::stream::iter(fetches).buffered(limits.parallel_layers.max(1));

    let mut tree = FileTree::default();
    // `buffered` yields in layer order, so merging here respects the
    // overlay order however the downloads interleave.
    while let Some(next) = results.next().await {
        let (i, changes) = next?;
        let layer = &image.layers[i];
        tracing::debug!(
            image = %reference,
            layer = %layer.digest,
            entries = changes.entries,
            decompressed_bytes = changes.decompressed_bytes,
            kept_bytes = changes.kept_bytes,
            metadata_bytes = changes.metadata_bytes,
            "read layer"
        );
        let label = layer_label(i, layer);
        warnings.extend(changes.warnings.iter().map(|w| format!("{label}: {w}")));
        layer::apply_layer(&mut tree, changes, i, &budget)
            .map_err(|f| layer_error(f, client, &reference, layer, 1))?;
    }
    drop(results);
    link_pass(client, &reference, image, &budget, &wants, &mut tree).await?;
    layer::unfilled_links(&mut tree, &mut warnings);
    alias_pass(
        client,
        &reference,
        image,
        &budget,
        &wants,
        &mut tree,
        &mut warnings,
    )
    .await?;
    let decompressed = budget.decompressed_bytes();
    tree.hold_budget(budget);
    Ok((tree, warnings, decompressed))
}

fn layer_label(i: usize, layer: &Layer) -> String {
    format!(
        "layer {} ({})",
        i + 1,
        &layer.digest[..layer.digest.len().min(19)]
    )
}

/// The second, targeted pass for wanted hard links whose target was not
/// kept: the layers concerned are fetched again (through the same verified
/// path) keeping only those targets. Most images need none.
async fn link_pass(
    client: &Arc<RegistryClient>,
    reference: &str,
    image: &ResolvedImage,
    budget: &Arc<Budget>,
    wants: &Wants,
    tree: &mut FileTree,
) -> Result<(), ImageError> {
    for (i, selector) in layer::link_passes(tree, wants.clone()) {
        let layer = &image.layers[i];
        let started = std::time::Instant::now();
        let selector: Wants = Arc::new(selector);
        let changes = fetch_layer(client, reference, layer, budget.clone(), selector).await?;
        tracing::info!(
            image = %reference,
            layer = %layer.digest,
            bytes = layer.size,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "read a layer again for hard-link targets"
        );
        layer::fill_links(tree, i, changes, budget);
    }
    Ok(())
}

/// The re-read for symlinked package-database directories (see
/// [`layer::alias_roots`]): every layer is read again keeping only files
/// below the symlinks' real targets whose alias path is wanted, merged in
/// order into a shadow tree so whiteouts still apply, then adopted. Most
/// images have no such symlink and read nothing again.
async fn alias_pass(
    client: &Arc<RegistryClient>,
    reference: &str,
    image: &ResolvedImage,
    budget: &Arc<Budget>,
    wants: &Wants,
    tree: &mut FileTree,
    warnings: &mut Vec<String>,
) -> Result<(), ImageError> {
    let roots = layer::alias_roots(tree, &**wants, warnings);
    if roots.is_empty() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let selector: Wants = Arc::new(layer::AliasTargets::new(wants.clone(), roots.clone()));
    let mut shadow = FileTree::default();
    for (i, layer) in image.layers.iter().enumerate() {
        if is_foreign_layer(&layer.media_type) {
            continue;
        }
        let changes =
            fetch_layer(client, reference, layer, budget.clone(), selector.clone()).await?;
        layer::apply_layer(&mut shadow, changes, i, budget)
            .map_err(|f| layer_error(f, client, reference, layer, 2))?;
    }
    let added = layer::adopt_aliased(tree, shadow, &roots);
    tracing::info!(
        image = %reference,
        layers = image.layers.len(),
        roots = roots.len(),
        added,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "read the layers again for files behind symlinked package-database directories"
    );
    Ok(())
}

type ByteStream = Pin<Box<dyn Stream<Item = Result<bytes::Bytes, io::Error>> + Send>>;

async fn fetch_layer(
    client: &Arc<RegistryClient>,
    reference: &str,
    layer: &Layer,
    budget: Arc<Budget>,
    wants: Wants,
) -> Result<layer::LayerChanges, ImageError> {
    let source = Arc::new(LayerSource {
        digest: layer.digest.clone(),
        media_type: Some(layer.media_type.clone()).filter(|m| !m.is_empty()),
        size: Some(layer.size),
        // The blob digest proves the registry sent what the manifest
        // names; the diff_id proves the manifest's blob is the layer the
        // config (and so the image ID) describes. Both are checked, as
        // `docker pull` does.
        diff_id: Some(layer.diff_id.clone()).filter(|d| !d.is_empty()),
    });
    let mut attempt = 0;
    loop {
        attempt += 1;
        let resp = client.get(Target::Blob(&layer.digest), None).await?;
        let stream = resuming_blob_stream(client.clone(), layer.digest.clone(), resp);
        // The bridge must be made on the runtime; it blocks on it from the
        // blocking thread, keeping gzip and tar work off the async workers.
        let reader = SyncIoBridge::new(StreamReader::new(stream));
        let (source2, budget2, wants2) = (source.clone(), budget.clone(), wants.clone());
        let outcome = tokio::task::spawn_blocking(move || {
            layer::read_layer(reader, &source2, &*wants2, &budget2)
        })
        .await
        .map_err(|e| ImageError::Internal {
            reference: reference.to_owned(),
            detail: format!("layer reader task failed: {e}"),
        })?;
        match outcome {
            Ok(changes) => return Ok(changes),
            Err(LayerFailure::Source(detail)) if attempt < client.max_attempts() => {
                tracing::warn!(image = %reference, layer = %layer.digest, attempt, "download failed: {detail}; retrying");
                tokio::time::sleep(client.backoff(attempt)).await;
            }
            Err(failure) => return Err(layer_error(failure, client, reference, layer, attempt)),
        }
    }
}

/// How often one blob download may be resumed with a `Range` request
/// after its connection broke. Each resume makes progress (it starts where
/// the last one stopped), so this bounds flaky links, not large layers.
const MAX_RESUMES: u32 = 8;

struct ResumeState {
    client: Arc<RegistryClient>,
    digest: String,
    body: Option<ByteStream>,
    /// Bytes handed to the reader so far.
    offset: u64,
    /// Bytes still to drop from the current body (a registry that answered
    /// a range request with the whole blob).
    skip: u64,
    resumable: bool,
    resumes: u32,
}

fn body_stream(resp: reqwest::Response) -> ByteStream {
    Box::pin(
        resp.bytes_stream()
            .map_err(|e| io::Error::other(registry::error_chain(&e))),
    )
}

fn accepts_ranges(resp: &reqwest::Response) -> bool {
    resp.headers()
        .get(reqwest::header::ACCEPT_RANGES)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|u| u.trim().eq_ignore_ascii_case("bytes")))
}

/// The body of a blob download that, when its connection breaks after some
/// bytes, asks the registry for the rest (`Range: bytes=N-`) and carries on
/// where it stopped. The layer reader never sees the break, so its digest
/// and decompression state continue instead of starting over: on a large
/// layer over a flaky link, restarting could fail for ever. Registries
/// that do not announce `Accept-Ranges: bytes` get the old behaviour (the
/// error reaches the reader and the whole layer is fetched again).
fn resuming_blob_stream(
    client: Arc<RegistryClient>,
    digest: String,
    resp: reqwest::Response,
) -> ByteStream {
    let state = ResumeState {
        client,
        digest,
        resumable: accepts_ranges(&resp),
        body: Some(body_stream(resp)),
        offset: 0,
        skip: 0,
        resumes: 0,
    };
    Box::pin(futures_util::stream::unfold(state, |mut s| async move {
        loop {
            let next = s.body.as_mut()?.next().await;
            match next {
                None => return None,
                Some(Ok(mut chunk)) => {
                    if s.skip > 0 {
                        let drop = s.skip.min(chunk.len() as u64);
                        s.skip -= drop;
                        chunk = chunk.slice(drop as usize..);
                        if chunk.is_empty() {
                            continue;
                        }
                    }
                    s.offset += chunk.len() as u64;
                    return Some((Ok(chunk), s));
                }
                Some(Err(e)) => {
                    if !s.resumable || s.offset == 0 || s.resumes >= MAX_RESUMES {
                        s.body = None;
                        return Some((Err(e), s));
                    }
                    s.resumes += 1;
                    tracing::warn!(
                        registry = %s.client.registry(),
                        blob = %s.digest,
                        offset = s.offset,
                        resume = s.resumes,
                        "download broke: {e}; resuming with a range request"
                    );
                    tokio::time::sleep(s.client.backoff(s.resumes)).await;
                    match s.client.get_from(Target::Blob(&s.digest), s.offset).await {
                        Ok((resp, start)) => {
                            // `start` is where the answer begins: the offset
                            // (206) or 0 (200, the range ignored).
                            s.skip = s.offset - start;
                            s.body = Some(body_stream(resp));
                        }
                        Err(err) => {
                            s.body = None;
                            return Some((
                                Err(io::Error::other(format!(
                                    "{e}; resuming at byte {} failed: {err}",
                                    s.offset
                                ))),
                                s,
                            ));
                        }
                    }
                }
            }
        }
    }))
}

fn layer_error(
    failure: LayerFailure,
    client: &RegistryClient,
    reference: &str,
    layer: &Layer,
    attempts: u32,
) -> ImageError {
    let digest = layer.digest.clone();
    match failure {
        LayerFailure::Source(detail) => ImageError::Unavailable {
            registry: client.registry().to_owned(),
            attempts,
            detail: format!("downloading layer {digest} failed: {detail}"),
        },
        LayerFailure::Cancelled => ImageError::Internal {
            reference: reference.to_owned(),
            detail: format!("reading layer {digest} was cancelled"),
        },
        LayerFailure::DigestMismatch { actual } => ImageError::DigestMismatch {
            what: format!("layer {digest}"),
            digest,
            actual,
        },
        LayerFailure::DiffIdMismatch { actual } => ImageError::DigestMismatch {
            what: format!("the uncompressed content of layer {digest}"),
            digest: layer.diff_id.clone(),
            actual,
        },
        LayerFailure::Oversize { declared } => ImageError::CorruptLayer {
            digest,
            detail: format!(
                "the registry sent more than the {declared} bytes the manifest declares"
            ),
        },
        LayerFailure::Limit(detail) => ImageError::LimitExceeded {
            reference: reference.to_owned(),
            detail: format!("{detail} (reading layer {digest})"),
        },
        LayerFailure::MemoryBusy(detail) => ImageError::MemoryBusy {
            reference: reference.to_owned(),
            detail,
        },
        LayerFailure::Corrupt(detail) => ImageError::CorruptLayer {
            digest,
            detail: format!("not a valid gzip/zstd/tar stream: {detail}"),
        },
        LayerFailure::Unsupported(detail) => ImageError::Unsupported {
            reference: reference.to_owned(),
            detail: format!("layer {digest}: {detail}"),
        },
    }
}

#[cfg(test)]
mod tests;
