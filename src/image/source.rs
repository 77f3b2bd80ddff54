//! Where an image comes from: a registry, an OCI image layout directory
//! (`oci:DIR[:tag]`) or a `docker save` archive (`docker-archive:FILE.tar`).
//!
//! Local sources are read with the same layer reader as registry pulls
//! (digests verified, whiteouts applied, nothing extracted to disk). Only
//! the command line accepts them: a pipeline job names a registry image,
//! because a job must never make the worker read its own disk.
//!
//! A `docker save` archive is read in two passes over the file instead of
//! being unpacked: the first indexes where each tar entry's data lies (its
//! `manifest.json` may come after the layers), the second seeks to the
//! config and to each layer in turn. Memory stays bounded by what the
//! catalogers keep, whatever the archive size.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use super::error::{ImageError, ReferenceProblem};
use super::fs::FileTree;
use super::layer::{self, Budget, Compression, LayerSource};
use super::localfs::{self, Links, LocalFileError};
use super::manifest::{
    self, Descriptor, ImageConfig, ImageManifest, IndexManifest, Manifest, ManifestProblem,
};
use super::platform::Platform;
use super::reference::ImageRef;
use super::{FileSelector, Layer, PullOptions, PulledImage, Wants, sha256_digest};

/// The annotation an OCI layout's `index.json` names tags with.
const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Nested indexes followed in an OCI layout before giving up.
const MAX_INDEX_DEPTH: usize = 4;
/// cosign marks each entry of a `cosign save` layout with `kind:`: the
/// image is `…/image` or `…/imageIndex`; its signatures, attestations and
/// SBOMs (`…/sigs`, `…/atts`, `…/sboms`) and any other kind are not.
const COSIGN_KIND: &str = "kind";
const COSIGN_KIND_PREFIX: &str = "dev.cosignproject.cosign/";
const COSIGN_IMAGE_KINDS: [&str; 2] = ["image", "imageIndex"];
/// Untagged entries whose manifests are read to tell the image from its
/// referrers; a layout listing more is refused without a tag, as before.
const MAX_UNTAGGED_PROBES: usize = 16;

/// An image to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// A registry reference (`host/repo:tag`, `host/repo@sha256:…`).
    Registry(ImageRef),
    /// An OCI image layout directory, optionally with the tag to pick
    /// from its `index.json` (`org.opencontainers.image.ref.name`).
    OciLayout { dir: PathBuf, tag: Option<String> },
    /// A `docker save` tar file.
    DockerArchive { path: PathBuf },
}

impl ImageSource {
    /// The registry reference, for a registry source.
    pub fn registry_ref(&self) -> Option<&ImageRef> {
        match self {
            ImageSource::Registry(r) => Some(r),
            _ => None,
        }
    }
}

impl From<ImageRef> for ImageSource {
    fn from(r: ImageRef) -> Self {
        ImageSource::Registry(r)
    }
}

impl fmt::Display for ImageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageSource::Registry(r) => r.fmt(f),
            ImageSource::OciLayout { dir, tag } => {
                write!(f, "oci:{}", dir.display())?;
                match tag {
                    Some(t) => write!(f, ":{t}"),
                    None => Ok(()),
                }
            }
            ImageSource::DockerArchive { path } => write!(f, "docker-archive:{}", path.display()),
        }
    }
}

/// `oci:DIR[:tag]`, `docker-archive:FILE`, anything else a registry
/// reference. In `oci:`, text after the last `:` is the tag when it is a
/// valid tag (letters, digits, `_`, `.`, `-`, no `/`).
impl FromStr for ImageSource {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |detail: &str| ImageError::InvalidReference {
            input: s.to_owned(),
            problem: ReferenceProblem::BadLocalSource(detail.to_owned()),
        };
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, tag) = match rest.rsplit_once(':') {
                Some((d, t)) if is_tag(t) => (d, Some(t.to_owned())),
                _ => (rest, None),
            };
            if dir.is_empty() {
                return Err(invalid(
                    "oci: needs the path of an OCI image layout directory (oci:DIR[:tag])",
                ));
            }
            return Ok(ImageSource::OciLayout {
                dir: PathBuf::from(dir),
                tag,
            });
        }
        if let Some(path) = s.strip_prefix("docker-archive:") {
            if path.is_empty() {
                return Err(invalid(
                    "docker-archive: needs the path of a `docker save` tar file",
                ));
            }
            return Ok(ImageSource::DockerArchive {
                path: PathBuf::from(path),
            });
        }
        s.parse::<ImageRef>().map(ImageSource::Registry)
    }
}

fn is_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && !t.starts_with(['.', '-'])
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Pulls an image from any source; see [`super::pull`] for what comes back.
///
/// For a `docker-archive:` source, which has no registry manifest,
/// `manifest_digest` is the config digest (the image ID `docker images`
/// shows) and a warning says so; layer digests are those of the layer
/// files as stored, verified through the config's `rootfs.diff_ids`.
pub async fn pull_source(
    source: &ImageSource,
    opts: &PullOptions,
    wants: Wants,
) -> Result<PulledImage, ImageError> {
    match source {
        ImageSource::Registry(r) => super::pull(r, opts, wants).await,
        local => {
            tracing::info!(image = %local, platform = %opts.platform, "reading local image");
            let started = std::time::Instant::now();
            let (local, opts2) = (local.clone(), opts.clone());
            let wants = super::observe::with_observer(wants, opts.observer.as_ref());
            let name = local.to_string();
            let pulled = tokio::task::spawn_blocking(move || pull_local(&local, &opts2, &*wants))
                .await
                .map_err(|e| ImageError::Internal {
                    reference: name.clone(),
                    detail: format!("local image reader task failed: {e}"),
                })??;
            tracing::info!(
                image = %name,
                digest = %pulled.manifest_digest,
                layers = pulled.layers.len(),
                files = pulled.files.files.len(),
                warnings = pulled.warnings.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "read local image"
            );
            Ok(pulled)
        }
    }
}

/// Blocking: reads a local source.
pub(crate) fn pull_local(
    source: &ImageSource,
    opts: &PullOptions,
    wants: &dyn FileSelector,
) -> Result<PulledImage, ImageError> {
    match source {
        ImageSource::Registry(r) => Err(ImageError::Internal {
            reference: r.to_string(),
            detail: "a registry reference is not a local source".into(),
        }),
        ImageSource::OciLayout { dir, tag } => pull_oci(source, dir, tag.as_deref(), opts, wants),
        ImageSource::DockerArchive { path } => pull_archive(source, path, opts, wants),
    }
}

// ---------------------------------------------------------------- shared

struct Ctx<'a> {
    image: String,
    opts: &'a PullOptions,
}

impl<'a> Ctx<'a> {
    /// Errors name the source as the user wrote it.
    fn new(source: &ImageSource, opts: &'a PullOptions) -> Self {
        Ctx {
            image: source.to_string(),
            opts,
        }
    }

    /// The merged tree and warnings of a local pull, starting from
    /// `warnings`, under one budget for the whole image.
    fn accumulate(&self, warnings: Vec<String>) -> Accumulated {
        Accumulated {
            tree: FileTree::default(),
            warnings,
            budget: self.budget(),
        }
    }

    fn bad(&self, detail: impl Into<String>) -> ImageError {
        ImageError::LocalImage {
            image: self.image.clone(),
            detail: detail.into(),
        }
    }

    fn io(&self, what: &str, path: &Path, e: io::Error) -> ImageError {
        if e.kind() == io::ErrorKind::NotFound {
            ImageError::NotFound {
                reference: self.image.clone(),
                what: format!("{what} {} does not exist", path.display()),
            }
        } else {
            self.bad(format!("reading {what} {}: {e}", path.display()))
        }
    }

    /// A local file that could not be opened: absent, or not a regular
    /// file (a link out of the layout, a FIFO, a device).
    fn local(&self, what: &str, e: LocalFileError) -> ImageError {
        match e {
            LocalFileError::NotFound { path } => ImageError::NotFound {
                reference: self.image.clone(),
                what: format!("{what} {path} does not exist"),
            },
            e => self.bad(format!("{what}: {e}")),
        }
    }

    fn manifest_problem(&self, p: ManifestProblem, what: &str) -> ImageError {
        match p {
            ManifestProblem::Unsupported(detail) => ImageError::Unsupported {
                reference: self.image.clone(),
                detail,
            },
            ManifestProblem::Invalid(detail) => self.bad(format!("{what}: {detail}")),
        }
    }

    /// Checks the config as a registry pull does and parses it.
    fn config(&self, bytes: &[u8], digest: &str, layers: usize) -> Result<ImageConfig, ImageError> {
        let config =
            manifest::parse_config(bytes).map_err(|d| self.bad(format!("config {digest}: {d}")))?;
        if config.os == "windows" {
            return Err(ImageError::Unsupported {
                reference: self.image.clone(),
                detail: "Windows container images are not supported".into(),
            });
        }
        if config.diff_ids.len() != layers {
            return Err(self.bad(format!(
                "the config lists {} layers (rootfs.diff_ids) but the manifest has {layers}",
                config.diff_ids.len()
            )));
        }
        if layers > self.opts.limits.max_layers {
            return Err(ImageError::LimitExceeded {
                reference: self.image.clone(),
                detail: format!(
                    "it has {layers} layers; at most {} are read",
                    self.opts.limits.max_layers
                ),
            });
        }
        Ok(config)
    }

    fn budget(&self) -> Arc<Budget> {
        Budget::from_limits(&self.opts.limits)
    }

    /// Reads one layer and merges it into `tree`; returns the reader's
    /// findings (digest, compression) for the caller's [`Layer`].
    fn apply(
        &self,
        reader: impl Read,
        layer: &Layer,
        index: usize,
        source: &LayerSource,
        acc: &mut Accumulated,
        wants: &dyn FileSelector,
    ) -> Result<(String, Compression), ImageError> {
        let changes = layer::read_layer(reader, source, wants, &acc.budget)
            .map_err(|f| super::local_layer_error(f, &self.image, layer))?;
        let found = (changes.digest.clone(), changes.compression);
        let label = format!(
            "layer {} ({})",
            index + 1,
            &found.0[..found.0.len().min(19)]
        );
        acc.warnings
            .extend(changes.warnings.iter().map(|w| format!("{label}: {w}")));
        layer::apply_layer(&mut acc.tree, changes, index, &acc.budget)
            .map_err(|f| super::local_layer_error(f, &self.image, layer))?;
        Ok(found)
    }

    /// The second, targeted pass for wanted hard links whose target was not
    /// kept: `reopen(i)` reads layer `i`'s blob again, keeping only those
    /// targets. Then the links still unfilled become warnings.
    fn link_pass<Rd: Read>(
        &self,
        layers: &[(Layer, LayerSource)],
        acc: &mut Accumulated,
        wants: &dyn FileSelector,
        mut reopen: impl FnMut(usize) -> Result<Rd, ImageError>,
    ) -> Result<(), ImageError> {
        for (i, selector) in layer::link_passes(&acc.tree, wants) {
            let (l, src) = &layers[i];
            let started = std::time::Instant::now();
            let changes = layer::read_layer(reopen(i)?, src, &selector, &acc.budget)
                .map_err(|f| super::local_layer_error(f, &self.image, l))?;
            tracing::info!(
                image = %self.image,
                layer = %l.digest,
                bytes = l.size,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "read a layer again for hard-link targets"
            );
            layer::fill_links(&mut acc.tree, i, changes, &acc.budget);
        }
        layer::unfilled_links(&mut acc.tree, &mut acc.warnings);
        self.alias_pass(layers, acc, wants, reopen)
    }

    /// The re-read for symlinked package-database directories (see
    /// [`layer::alias_roots`]): every layer again, in order, into a shadow
    /// tree keeping only files behind those symlinks. Most images have none.
    fn alias_pass<Rd: Read>(
        &self,
        layers: &[(Layer, LayerSource)],
        acc: &mut Accumulated,
        wants: &dyn FileSelector,
        mut reopen: impl FnMut(usize) -> Result<Rd, ImageError>,
    ) -> Result<(), ImageError> {
        let roots = layer::alias_roots(&acc.tree, wants, &mut acc.warnings);
        if roots.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let selector = layer::AliasTargets::new(wants, roots.clone());
        let mut shadow = FileTree::default();
        for (i, (l, src)) in layers.iter().enumerate() {
            if super::is_foreign_layer(&l.media_type) {
                continue;
            }
            let fail = |f| super::local_layer_error(f, &self.image, l);
            let changes =
                layer::read_layer(reopen(i)?, src, &selector, &acc.budget).map_err(fail)?;
            layer::apply_layer(&mut shadow, changes, i, &acc.budget).map_err(fail)?;
        }
        let added = layer::adopt_aliased(&mut acc.tree, shadow, &roots);
        tracing::info!(
            image = %self.image,
            layers = layers.len(),
            roots = roots.len(),
            added,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "read the layers again for files behind symlinked package-database directories"
        );
        Ok(())
    }
}

struct Accumulated {
    tree: FileTree,
    warnings: Vec<String>,
    budget: Arc<Budget>,
}

/// Buffer for streaming a layer from a local file.
const LAYER_BUFFER: usize = 1 << 16;

/// A local image's metadata, gathered before its layers are read.
struct LocalMeta {
    manifest_digest: String,
    index_digest: Option<String>,
    config_digest: String,
    platform: Platform,
    config: ImageConfig,
    annotations: BTreeMap<String, String>,
}

impl LocalMeta {
    /// The pulled image; the kept files hold their memory budget for as
    /// long as they live.
    fn into_pulled(
        self,
        source: &ImageSource,
        layers: Vec<Layer>,
        acc: Accumulated,
    ) -> PulledImage {
        let mut files = acc.tree;
        files.hold_budget(acc.budget);
        PulledImage {
            reference: source.clone(),
            manifest_digest: self.manifest_digest,
            index_digest: self.index_digest,
            config_digest: self.config_digest,
            platform: self.platform,
            layers,
            config: self.config,
            annotations: self.annotations,
            files,
            warnings: acc.warnings,
        }
    }
}

fn config_platform(config: &ImageConfig) -> Platform {
    Platform {
        os: config.os.clone(),
        architecture: config.architecture.clone(),
        variant: config.variant.clone(),
    }
}

fn warn_platform(ctx: &Ctx<'_>, p: &Platform, warnings: &mut Vec<String>) {
    if !p.os.is_empty() && !ctx.opts.platform.accepts(p) {
        warnings.push(format!(
            "{} is a single-platform {p} image, not the requested {}; scanning it anyway",
            ctx.image, ctx.opts.platform
        ));
    }
}

/// At most `max` bytes of a layout file, which must be a regular file
/// (not a link, FIFO or device); a larger one is refused before reading.
fn read_limited(ctx: &Ctx<'_>, what: &str, path: &Path, max: u64) -> Result<Vec<u8>, ImageError> {
    let too_large = || ImageError::LimitExceeded {
        reference: ctx.image.clone(),
        detail: format!("{what} {} is larger than {max} bytes", path.display()),
    };
    let (f, meta) = localfs::open_regular(path, Links::Refuse).map_err(|e| ctx.local(what, e))?;
    if meta.len() > max {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ctx.io(what, path, e))?;
    if bytes.len() as u64 > max {
        return Err(too_large());
    }
    Ok(bytes)
}

fn hex_of(digest: &str) -> Option<&str> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

// ------------------------------------------------------------ OCI layout

/// Reads `oci:DIR[:tag]`: index.json → tagged entry → (nested indexes →)
/// image manifest → config → layers, each blob verified against its digest.
fn pull_oci(
    source: &ImageSource,
    dir: &Path,
    tag: Option<&str>,
    opts: &PullOptions,
    wants: &dyn FileSelector,
) -> Result<PulledImage, ImageError> {
    let layout = OciLayout::open(Ctx::new(source, opts), dir)?;
    let ctx = &layout.ctx;
    let top = layout.top_index()?;
    let entry = layout.tagged_entry(&top, tag)?;
    let chosen = layout.follow(entry)?;
    super::check_layer_media_types(&chosen.manifest, &ctx.image)?;
    let (config_digest, config) = layout.config(&chosen.manifest)?;
    let mut warnings = Vec::new();
    let platform = match chosen.platform_from_index {
        Some(p) => p,
        None => {
            let p = config_platform(&config);
            warn_platform(ctx, &p, &mut warnings);
            p
        }
    };
    let layers = super::layers_of(&chosen.manifest, &config);
    let acc = layout.read_layers(&layers, warnings, wants)?;
    let meta = LocalMeta {
        manifest_digest: chosen.manifest_digest,
        index_digest: chosen.index_digest,
        config_digest,
        platform,
        config,
        annotations: chosen.manifest.annotations,
    };
    Ok(meta.into_pulled(source, layers, acc))
}

/// An OCI image layout directory being read.
struct OciLayout<'a> {
    ctx: Ctx<'a>,
    dir: &'a Path,
    /// `blobs/sha256`, resolved: a directory inside the layout.
    blobs: PathBuf,
}

impl<'a> OciLayout<'a> {
    /// Resolves `blobs/sha256`, refusing one that is a link out of the
    /// layout (blob files themselves are opened without following links).
    fn open(ctx: Ctx<'a>, dir: &'a Path) -> Result<Self, ImageError> {
        let blobs = localfs::dir_within(dir, Path::new("blobs/sha256"))
            .map_err(|e| ctx.local("the OCI layout directory", e))?;
        Ok(OciLayout { ctx, dir, blobs })
    }

    /// Where a blob lies; only a well-formed sha256 digest names one, so a
    /// hostile digest cannot point outside `blobs/sha256`.
    fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        let hex = hex_of(digest).ok_or_else(|| ImageError::Unsupported {
            reference: self.ctx.image.clone(),
            detail: format!("digest {digest:?} is not a sha256 digest"),
        })?;
        Ok(self.blobs.join(hex))
    }

    /// Reads a blob (at most `max` bytes), verified against its digest.
    fn blob(&self, what: &str, digest: &str, max: u64) -> Result<Vec<u8>, ImageError> {
        let bytes = read_limited(&self.ctx, what, &self.blob_path(digest)?, max)?;
        let actual = sha256_digest(&bytes);
        if actual != digest {
            return Err(ImageError::DigestMismatch {
                what: format!("{what} of {}", self.ctx.image),
                digest: digest.to_owned(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// The layout's `index.json`, bounded like a manifest.
    fn top_index(&self) -> Result<IndexManifest, ImageError> {
        let index_path = self.dir.join("index.json");
        let index_bytes = read_limited(
            &self.ctx,
            "the OCI layout index",
            &index_path,
            self.ctx.opts.limits.max_manifest_bytes,
        )?;
        match manifest::parse_manifest(&index_bytes, Some(manifest::OCI_INDEX))
            .map_err(|p| self.ctx.manifest_problem(p, "index.json"))?
        {
            Manifest::Index(i) => Ok(i),
            Manifest::Image(_) => Err(self.ctx.bad("index.json is not an image index")),
        }
    }

    /// The tag picks among index.json's entries; without one, the only
    /// entry, or the platform when the entries are platform manifests.
    fn tagged_entry(
        &self,
        top: &IndexManifest,
        tag: Option<&str>,
    ) -> Result<Descriptor, ImageError> {
        let ctx = &self.ctx;
        let tagged: Vec<&Descriptor> = match tag {
            Some(t) => top
                .manifests
                .iter()
                .filter(|d| {
                    d.annotations
                        .as_ref()
                        .and_then(|a| a.get(REF_NAME))
                        .is_some_and(|n| n == t)
                })
                .collect(),
            None => self.image_candidates(&top.manifests)?,
        };
        match tagged.as_slice() {
            [] if tag.is_some() => Err(ImageError::NotFound {
                reference: ctx.image.clone(),
                what: format!(
                    "no tag {:?} in index.json; tags there: {}",
                    tag.unwrap_or_default(),
                    tag_list(&top.manifests)
                ),
            }),
            [] if top.manifests.is_empty() => Err(ctx.bad("index.json lists no manifests")),
            [] => Err(ctx.bad(
                "index.json lists only signatures, attestations, SBOMs or referrers, no image",
            )),
            [one] => Ok((*one).clone()),
            many if tag.is_none() && many.iter().all(|d| d.platform.is_none()) => {
                Err(ctx.bad(format!(
                    "index.json lists {} images; name one as oci:DIR:TAG (tags: {})",
                    many.len(),
                    tag_list(many.iter().copied())
                )))
            }
            many => Ok(select_platform(ctx, many)?.clone()),
        }
    }

    /// Without a tag, the entries that may be the image to scan: what
    /// signing tools list beside it is left out (cosign's `sha256-HEX.sig`
    /// style tags and `kind: dev.cosignproject.cosign/…` entries, then
    /// manifests with a `subject` or an `artifactType`, as Notation and
    /// oras write referrers). Those manifests are read only when several
    /// untagged entries remain, and at most [`MAX_UNTAGGED_PROBES`].
    fn image_candidates<'d>(
        &self,
        entries: &'d [Descriptor],
    ) -> Result<Vec<&'d Descriptor>, ImageError> {
        let named: Vec<&Descriptor> = entries.iter().filter(|d| !is_companion_entry(d)).collect();
        let probe = named.len() > 1
            && named.len() <= MAX_UNTAGGED_PROBES
            && named.iter().all(|d| d.platform.is_none());
        if !probe {
            return Ok(named);
        }
        let mut kept = Vec::with_capacity(named.len());
        for d in named {
            if crate::cancel::is_cancelled() {
                return Err(self.ctx.bad("cancelled while reading index.json's entries"));
            }
            if !self.is_referrer(d) {
                kept.push(d);
            }
        }
        Ok(kept)
    }

    /// Whether `d`'s manifest refers to another (a `subject`) or declares
    /// an artifact type. One that cannot be read stays a candidate, so
    /// that choosing it reports why.
    fn is_referrer(&self, d: &Descriptor) -> bool {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Probe {
            #[serde(default)]
            artifact_type: Option<String>,
            #[serde(default)]
            subject: Option<serde_json::Value>,
        }
        let max = self.ctx.opts.limits.max_manifest_bytes;
        let Ok(bytes) = self.blob("the manifest", &d.digest, max) else {
            return false;
        };
        serde_json::from_slice::<Probe>(&bytes).is_ok_and(|p| {
            p.subject.is_some_and(|s| !s.is_null())
                || p.artifact_type.is_some_and(|t| !t.is_empty())
        })
    }

    /// Follows nested indexes (at most [`MAX_INDEX_DEPTH`]) from `chosen`
    /// down to an image manifest, picking the requested platform.
    fn follow(&self, mut chosen: Descriptor) -> Result<super::ChosenManifest, ImageError> {
        let ctx = &self.ctx;
        let mut platform_from_index = chosen.platform.as_ref().map(Platform::from);
        let mut index_digest = None;
        let mut depth = 0;
        let manifest = loop {
            let max = ctx.opts.limits.max_manifest_bytes;
            let bytes = self.blob("the manifest", &chosen.digest, max)?;
            let what = format!("manifest {}", chosen.digest);
            let i = match manifest::parse_manifest(&bytes, chosen.media_type.as_deref())
                .map_err(|p| ctx.manifest_problem(p, &what))?
            {
                Manifest::Image(m) => break m,
                Manifest::Index(i) => i,
            };
            depth += 1;
            if depth > MAX_INDEX_DEPTH {
                return Err(ctx.bad("indexes nest too deeply"));
            }
            index_digest = Some(chosen.digest.clone());
            let entries = i.image_entries();
            let next = if entries.is_empty() && i.manifests.len() == 1 {
                &i.manifests[0]
            } else {
                select_platform(ctx, &entries)?
            };
            chosen = next.clone();
            if let Some(p) = &chosen.platform {
                platform_from_index = Some(Platform::from(p));
            }
        };
        Ok(super::ChosenManifest {
            manifest,
            manifest_digest: chosen.digest,
            index_digest,
            platform_from_index,
        })
    }

    /// The config blob, verified and checked as a registry pull checks it.
    fn config(&self, manifest: &ImageManifest) -> Result<(String, ImageConfig), ImageError> {
        let config_digest = manifest.config.digest.clone();
        let max = self.ctx.opts.limits.max_config_bytes;
        let config_bytes = self.blob("the config", &config_digest, max)?;
        let config = self
            .ctx
            .config(&config_bytes, &config_digest, manifest.layers.len())?;
        Ok((config_digest, config))
    }

    /// Opens a layer blob for streaming.
    fn open_layer(&self, l: &Layer) -> Result<BufReader<File>, ImageError> {
        let path = self.blob_path(&l.digest)?;
        let (file, _) =
            localfs::open_regular(&path, Links::Refuse).map_err(|e| self.ctx.local("layer", e))?;
        Ok(BufReader::with_capacity(LAYER_BUFFER, file))
    }

    /// Reads the layers in order (foreign ones skipped with a warning),
    /// then the second passes.
    fn read_layers(
        &self,
        layers: &[Layer],
        warnings: Vec<String>,
        wants: &dyn FileSelector,
    ) -> Result<Accumulated, ImageError> {
        let ctx = &self.ctx;
        let mut acc = ctx.accumulate(warnings);
        let sources: Vec<(Layer, LayerSource)> = layers
            .iter()
            .map(|l| {
                let src = LayerSource {
                    digest: l.digest.clone(),
                    media_type: Some(l.media_type.clone()).filter(|m| !m.is_empty()),
                    size: Some(l.size),
                    // As for a registry pull: the config's diff_ids must
                    // describe the layers the manifest names.
                    diff_id: Some(l.diff_id.clone()).filter(|d| !d.is_empty()),
                };
                (l.clone(), src)
            })
            .collect();
        for (i, (l, src)) in sources.iter().enumerate() {
            if super::is_foreign_layer(&l.media_type) {
                acc.warnings.push(super::foreign_layer_warning(i, l));
                continue;
            }
            ctx.apply(self.open_layer(l)?, l, i, src, &mut acc, wants)?;
        }
        ctx.link_pass(&sources, &mut acc, wants, |i| {
            self.open_layer(&sources[i].0)
        })?;
        Ok(acc)
    }
}

/// An entry a signing tool lists beside the image, told by its descriptor:
/// cosign's `kind` annotation other than the image's (`cosign save`), or a tag cosign derives from
/// the image digest (`sha256-HEX.sig`, `.att`, `.sbom`) or the referrers
/// index tag (`sha256-HEX`).
fn is_companion_entry(d: &Descriptor) -> bool {
    let Some(a) = d.annotations.as_ref() else {
        return false;
    };
    let cosign_kind = a
        .get(COSIGN_KIND)
        .and_then(|k| k.strip_prefix(COSIGN_KIND_PREFIX));
    if cosign_kind.is_some_and(|k| !COSIGN_IMAGE_KINDS.contains(&k)) {
        return true;
    }
    let Some(tag) = a.get(REF_NAME) else {
        return false;
    };
    let Some(rest) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let (Some(hex), Some(suffix)) = (rest.get(..64), rest.get(64..)) else {
        return false;
    };
    hex.bytes().all(|b| b.is_ascii_hexdigit()) && matches!(suffix, "" | ".sig" | ".att" | ".sbom")
}

/// The `org.opencontainers.image.ref.name` tags of `entries`, for messages.
fn tag_list<'d>(entries: impl IntoIterator<Item = &'d Descriptor>) -> String {
    let tags: Vec<&str> = entries
        .into_iter()
        .filter_map(|d| d.annotations.as_ref()?.get(REF_NAME).map(String::as_str))
        .collect();
    if tags.is_empty() {
        "none".into()
    } else {
        tags.join(", ")
    }
}

fn select_platform<'d>(
    ctx: &Ctx<'_>,
    entries: &[&'d Descriptor],
) -> Result<&'d Descriptor, ImageError> {
    let candidates: Vec<Option<Platform>> = entries
        .iter()
        .map(|d| d.platform.as_ref().map(Platform::from))
        .collect();
    match ctx.opts.platform.select(&candidates) {
        Some(i) => Ok(entries[i]),
        None => Err(ImageError::PlatformNotFound {
            reference: ctx.image.clone(),
            wanted: ctx.opts.platform.to_string(),
            available: candidates
                .iter()
                .flatten()
                .map(Platform::to_string)
                .collect(),
        }),
    }
}

// -------------------------------------------------------- docker archive

/// Where an entry's data lies in the archive file.
#[derive(Debug, Clone, Copy)]
struct Span {
    offset: u64,
    size: u64,
}

#[derive(serde::Deserialize)]
struct ArchiveEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Pass one: the data span of every regular file in the archive (by
/// cleaned path, the last entry winning), reading headers only.
fn index_archive(ctx: &Ctx<'_>, path: &Path) -> Result<HashMap<String, Span>, ImageError> {
    let file = open_archive(ctx, path)?;
    let mut archive = tar::Archive::new(file);
    let bad = |e: io::Error| ctx.bad(format!("not a valid tar file: {e}"));
    let mut spans = HashMap::new();
    let mut links: Vec<(String, String)> = Vec::new();
    for entry in archive.entries_with_seek().map_err(bad)? {
        let entry = entry.map_err(bad)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(name) = layer::clean_path(&raw) else {
            continue;
        };
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                spans.insert(
                    name,
                    Span {
                        offset: entry.raw_file_position(),
                        size: entry.size(),
                    },
                );
            }
            // Some writers store repeated layers as links to the first copy.
            kind @ (tar::EntryType::Symlink | tar::EntryType::Link) => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                let target = if kind == tar::EntryType::Symlink && !target.starts_with('/') {
                    match name.rsplit_once('/') {
                        Some((dir, _)) => format!("{dir}/{target}"),
                        None => target,
                    }
                } else {
                    target
                };
                if let Some(t) = layer::clean_path(&target) {
                    links.push((name, t));
                }
            }
            _ => {}
        }
    }
    for (name, target) in links {
        if let Some(span) = spans.get(&target).copied() {
            spans.entry(name).or_insert(span);
        }
    }
    Ok(spans)
}

/// The `docker save` tar the user named: a link to it is followed (the
/// user made it), but it must be a regular file, so that a FIFO or device
/// cannot stall or flood the read.
fn open_archive(ctx: &Ctx<'_>, path: &Path) -> Result<File, ImageError> {
    let (file, _) =
        localfs::open_regular(path, Links::Follow).map_err(|e| ctx.local("archive", e))?;
    Ok(file)
}

/// Reads a `docker save` archive: pass one indexes the tar, then
/// manifest.json → config → layers are read at their spans.
fn pull_archive(
    source: &ImageSource,
    path: &Path,
    opts: &PullOptions,
    wants: &dyn FileSelector,
) -> Result<PulledImage, ImageError> {
    let mut archive = Archive::open(Ctx::new(source, opts), path)?;
    let entry = archive.image_entry()?;
    let (config_digest, config) = archive.config(&entry)?;
    let ctx = &archive.ctx;
    let platform = config_platform(&config);
    let mut warnings = vec![format!(
        "{} is a docker-archive with no registry manifest: the digest reported is the \
         config digest (image ID) {config_digest}",
        ctx.image
    )];
    warn_platform(ctx, &platform, &mut warnings);
    let (layers, acc) = archive.read_layers(&entry, &config, warnings, wants)?;
    let meta = LocalMeta {
        // A `docker save` archive has no registry manifest, and making one
        // up (compressing the layers as some push would) gives a digest no
        // registry will ever show. The config digest is the image ID that
        // `docker images` and `docker inspect` print for this very archive,
        // so IMAGE_DIGEST names something the user can look up; the warning
        // above says it is not a manifest digest.
        manifest_digest: config_digest.clone(),
        index_digest: None,
        config_digest,
        platform,
        config,
        annotations: BTreeMap::new(),
    };
    Ok(meta.into_pulled(source, layers, acc))
}

/// A `docker save` archive being read: where its entries lie (pass one)
/// and the open file the second pass seeks in.
struct Archive<'a> {
    ctx: Ctx<'a>,
    path: &'a Path,
    spans: HashMap<String, Span>,
    file: File,
}

impl<'a> Archive<'a> {
    /// Pass one (the index of entry spans), then the file pass two reads.
    fn open(ctx: Ctx<'a>, path: &'a Path) -> Result<Self, ImageError> {
        let spans = index_archive(&ctx, path)?;
        let file = open_archive(&ctx, path)?;
        Ok(Archive {
            ctx,
            path,
            spans,
            file,
        })
    }

    /// Reads a whole entry, refusing one larger than `max` before reading.
    fn read_entry(&mut self, name: &str, what: &str, max: u64) -> Result<Vec<u8>, ImageError> {
        let ctx = &self.ctx;
        let span = self
            .spans
            .get(name)
            .ok_or_else(|| ctx.bad(format!("the archive has no {what} {name:?}")))?;
        if span.size > max {
            return Err(ImageError::LimitExceeded {
                reference: ctx.image.clone(),
                detail: format!("{what} {name} is larger than {max} bytes"),
            });
        }
        let mut bytes = Vec::with_capacity(span.size as usize);
        let file = &mut self.file;
        file.seek(SeekFrom::Start(span.offset))
            .and_then(|_| (&mut *file).take(span.size).read_to_end(&mut bytes))
            .map_err(|e| ctx.io(what, self.path, e))?;
        Ok(bytes)
    }

    /// The one image `manifest.json` describes; an archive of several is
    /// refused (which one the pipeline meant cannot be guessed).
    fn image_entry(&mut self) -> Result<ArchiveEntry, ImageError> {
        let max = self.ctx.opts.limits.max_manifest_bytes;
        let manifest_bytes =
            self.read_entry("manifest.json", "manifest", max)
                .map_err(|e| match e {
                    ImageError::LocalImage { .. } => self
                        .ctx
                        .bad("the archive has no manifest.json; is it `docker save` output?"),
                    e => e,
                })?;
        let ctx = &self.ctx;
        let mut entries: Vec<ArchiveEntry> = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| ctx.bad(format!("manifest.json: {e}")))?;
        match entries.len() {
            1 => return Ok(entries.remove(0)),
            0 => return Err(ctx.bad("manifest.json lists no images")),
            _ => {}
        }
        let tags: Vec<String> = entries
            .iter()
            .map(|e| {
                e.repo_tags
                    .as_ref()
                    .and_then(|t| t.first().cloned())
                    .unwrap_or_else(|| e.config.clone())
            })
            .collect();
        Err(ImageError::Unsupported {
            reference: ctx.image.clone(),
            detail: format!(
                "the archive holds {} images ({}); save one image per archive",
                entries.len(),
                tags.join(", ")
            ),
        })
    }

    /// The config entry, checked against the digest its name carries and
    /// as a registry pull checks it.
    fn config(&mut self, entry: &ArchiveEntry) -> Result<(String, ImageConfig), ImageError> {
        let config_name = layer::clean_path(&entry.config).ok_or_else(|| {
            self.ctx
                .bad(format!("config path {:?} leaves the archive", entry.config))
        })?;
        let max = self.ctx.opts.limits.max_config_bytes;
        let config_bytes = self.read_entry(&config_name, "config", max)?;
        let config_digest = sha256_digest(&config_bytes);
        // The config is named after its digest (`<hex>.json` or
        // `blobs/sha256/<hex>`): check it when it is.
        let stem = config_name
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".json");
        if let Some(named) = hex_of(&format!("sha256:{stem}"))
            && format!("sha256:{named}") != config_digest
        {
            return Err(ImageError::DigestMismatch {
                what: format!("the config of {}", self.ctx.image),
                digest: format!("sha256:{named}"),
                actual: config_digest,
            });
        }
        let config = self
            .ctx
            .config(&config_bytes, &config_digest, entry.layers.len())?;
        Ok((config_digest, config))
    }

    /// Reads the layers in order from the open file, then the second
    /// passes, which reopen the archive at each layer's span.
    fn read_layers(
        &mut self,
        entry: &ArchiveEntry,
        config: &ImageConfig,
        warnings: Vec<String>,
        wants: &dyn FileSelector,
    ) -> Result<(Vec<Layer>, Accumulated), ImageError> {
        let mut acc = self.ctx.accumulate(warnings);
        let mut layers = Vec::with_capacity(entry.layers.len());
        let mut sources = Vec::with_capacity(entry.layers.len());
        let mut spans_read = Vec::with_capacity(entry.layers.len());
        for (i, (name, diff_id)) in entry.layers.iter().zip(&config.diff_ids).enumerate() {
            let (l, src, span) = self.read_layer(i, name, diff_id, &mut acc, wants)?;
            sources.push((l.clone(), src));
            spans_read.push(span);
            layers.push(l);
        }
        let (ctx, path) = (&self.ctx, self.path);
        ctx.link_pass(&sources, &mut acc, wants, |i| {
            let span: Span = spans_read[i];
            let mut again = open_archive(ctx, path)?;
            again
                .seek(SeekFrom::Start(span.offset))
                .map_err(|e| ctx.io("layer", path, e))?;
            Ok(BufReader::with_capacity(
                LAYER_BUFFER,
                again.take(span.size),
            ))
        })?;
        Ok((layers, acc))
    }

    /// Reads layer `i` (`name` in the archive) into `acc`. A docker-archive
    /// has no blob digests: the diff_id is checked, and the layer's digest
    /// and media type are those of the file as read.
    fn read_layer(
        &mut self,
        i: usize,
        name: &str,
        diff_id: &str,
        acc: &mut Accumulated,
        wants: &dyn FileSelector,
    ) -> Result<(Layer, LayerSource, Span), ImageError> {
        let ctx = &self.ctx;
        let clean = layer::clean_path(name)
            .ok_or_else(|| ctx.bad(format!("layer path {name:?} leaves the archive")))?;
        let span = *self
            .spans
            .get(&clean)
            .ok_or_else(|| ctx.bad(format!("the archive has no layer {name:?}")))?;
        self.file
            .seek(SeekFrom::Start(span.offset))
            .map_err(|e| ctx.io("layer", self.path, e))?;
        let mut l = Layer {
            // Replaced by the digest of the file as read.
            digest: diff_id.to_owned(),
            diff_id: diff_id.to_owned(),
            media_type: String::new(),
            size: span.size,
        };
        let src = LayerSource {
            // No blob digest in a docker-archive: the diff_id is checked.
            digest: String::new(),
            diff_id: Some(diff_id.to_owned()),
            media_type: None,
            size: Some(span.size),
        };
        let reader = BufReader::with_capacity(LAYER_BUFFER, (&mut self.file).take(span.size));
        let (digest, compression) = ctx.apply(reader, &l, i, &src, acc, wants)?;
        l.digest = digest;
        l.media_type = match compression {
            Compression::None => "application/vnd.docker.image.rootfs.diff.tar",
            Compression::Gzip => "application/vnd.docker.image.rootfs.diff.tar.gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
        .to_owned();
        Ok((l, src, span))
    }
}

#[cfg(test)]
mod tests;
