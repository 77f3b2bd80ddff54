//! Small container images built in memory, pushed with our own OCI
//! distribution client (so the harness does not depend on the code under
//! test), or written as an OCI image layout / `docker save` archive.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::registry::{Credentials, Registry};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
pub const OCI_LAYER_NONDISTRIBUTABLE_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Every `Accept` a puller sends; used by the harness's own fetches.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// Layer mtimes are fixed so that the same recipe gives the same digests.
const MTIME: u64 = 1_704_067_200; // 2024-01-01T00:00:00Z

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

// ------------------------------------------------------------------ layers

#[derive(Debug, Clone)]
enum Entry {
    File {
        path: String,
        data: Vec<u8>,
        mode: u32,
    },
    Dir {
        path: String,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
    Hardlink {
        path: String,
        target: String,
    },
}

/// One layer: tar entries in the order given. Paths are relative
/// (`etc/os-release`); a leading `/` or `./` is stripped.
#[derive(Debug, Clone, Default)]
pub struct Layer {
    entries: Vec<Entry>,
    uncompressed: bool,
    zstd: bool,
    /// A foreign/non-distributable media type: the descriptor points at a
    /// third-party URL and the blob is not pushed.
    foreign: Option<String>,
    created_by: Option<String>,
}

fn clean(path: &str) -> String {
    path.trim_start_matches("./")
        .trim_start_matches('/')
        .to_owned()
}

impl Layer {
    pub fn new() -> Self {
        Self::default()
    }

    /// A regular file, mode 0644.
    pub fn file(self, path: &str, data: impl Into<Vec<u8>>) -> Self {
        self.file_mode(path, data, 0o644)
    }

    pub fn file_mode(mut self, path: &str, data: impl Into<Vec<u8>>, mode: u32) -> Self {
        self.entries.push(Entry::File {
            path: clean(path),
            data: data.into(),
            mode,
        });
        self
    }

    /// A directory entry, mode 0755.
    pub fn dir(mut self, path: &str) -> Self {
        self.entries.push(Entry::Dir {
            path: clean(path),
            mode: 0o755,
        });
        self
    }

    /// `path` → `target` (target kept verbatim: relative or absolute).
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.entries.push(Entry::Symlink {
            path: clean(path),
            target: target.to_owned(),
        });
        self
    }

    /// A tar hard link: `path` has the content of `target`, an earlier entry
    /// of the same layer (tar's rule; a scanner must resolve it).
    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        self.entries.push(Entry::Hardlink {
            path: clean(path),
            target: clean(target),
        });
        self
    }

    /// Deletes `path` (file or directory) from lower layers: `.wh.<name>`.
    pub fn whiteout(self, path: &str) -> Self {
        let p = clean(path);
        let p = p.trim_end_matches('/');
        let wh = match p.rsplit_once('/') {
            Some((dir, name)) => format!("{dir}/.wh.{name}"),
            None => format!(".wh.{p}"),
        };
        self.file_mode(&wh, Vec::new(), 0o644)
    }

    /// Hides everything lower layers had under `dir`: `dir/.wh..wh..opq`.
    pub fn opaque(self, dir: &str) -> Self {
        let d = clean(dir);
        let d = d.trim_end_matches('/');
        self.dir(d)
            .file_mode(&format!("{d}/.wh..wh..opq"), Vec::new(), 0o644)
    }

    /// Store the blob as a plain tar (`…layer.v1.tar`) instead of gzip.
    pub fn uncompressed(mut self) -> Self {
        self.uncompressed = true;
        self
    }

    /// Store the blob zstd-compressed (`…layer.v1.tar+zstd`, OCI only).
    pub fn zstd(mut self) -> Self {
        self.zstd = true;
        self
    }

    /// A foreign or non-distributable layer with this media type.
    /// [`BuiltImage::push`] and the layout writers leave its blob out, so
    /// a puller that fetched it would fail. Its descriptor has no `urls`:
    /// `docker-registry` as packaged refuses any it has no allow list for,
    /// and wants the blob itself (push it with [`push_blob`]).
    pub fn foreign(mut self, media_type: &str) -> Self {
        self.foreign = Some(media_type.to_owned());
        self
    }

    /// The `history[].created_by` text for this layer.
    pub fn created_by(mut self, text: &str) -> Self {
        self.created_by = Some(text.to_owned());
        self
    }

    /// The layer's uncompressed tar.
    pub fn tar_bytes(&self) -> Result<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        for e in &self.entries {
            let mut h = tar::Header::new_gnu();
            h.set_mtime(MTIME);
            h.set_uid(0);
            h.set_gid(0);
            match e {
                Entry::File { path, data, mode } => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(*mode);
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, path, data.as_slice())
                        .with_context(|| format!("tar entry {path}"))?;
                }
                Entry::Dir { path, mode } => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(*mode);
                    h.set_size(0);
                    b.append_data(&mut h, format!("{path}/"), std::io::empty())
                        .with_context(|| format!("tar entry {path}"))?;
                }
                Entry::Symlink { path, target } => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_mode(0o777);
                    h.set_size(0);
                    b.append_link(&mut h, path, target)
                        .with_context(|| format!("tar entry {path}"))?;
                }
                Entry::Hardlink { path, target } => {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_mode(0o644);
                    h.set_size(0);
                    b.append_link(&mut h, path, target)
                        .with_context(|| format!("tar entry {path}"))?;
                }
            }
        }
        Ok(b.into_inner()?)
    }
}

/// A layer as pushed: `blob` is what the registry stores (gzip unless the
/// layer was `uncompressed()`), `tar` the uncompressed content.
#[derive(Debug, Clone)]
pub struct BuiltLayer {
    pub media_type: String,
    /// Not pushed nor written to a layout (see [`Layer::foreign`]).
    pub foreign: bool,
    pub blob: Vec<u8>,
    pub digest: String,
    pub tar: Vec<u8>,
    pub diff_id: String,
}

impl BuiltLayer {
    fn from_layer(layer: &Layer, docker_types: bool) -> Result<Self> {
        let tar = layer.tar_bytes()?;
        let diff_id = sha256_digest(&tar);
        let (blob, media_type) = if layer.uncompressed {
            ensure!(
                !docker_types,
                "docker schema 2 has no uncompressed layer media type in practice; use OCI"
            );
            (tar.clone(), OCI_LAYER_TAR)
        } else if layer.zstd {
            ensure!(!docker_types, "docker schema 2 has no zstd layers; use OCI");
            (zstd::stream::encode_all(tar.as_slice(), 3)?, OCI_LAYER_ZSTD)
        } else {
            // no file name or mtime in the gzip header: reproducible digests
            let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
            gz.write_all(&tar)?;
            let blob = gz.finish()?;
            let mt = if docker_types {
                DOCKER_LAYER_GZIP
            } else {
                OCI_LAYER_GZIP
            };
            (blob, mt)
        };
        let media_type = layer.foreign.as_deref().unwrap_or(media_type);
        Ok(Self {
            foreign: layer.foreign.is_some(),
            media_type: media_type.to_owned(),
            digest: sha256_digest(&blob),
            blob,
            tar,
            diff_id,
        })
    }

    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.blob.len()})
    }
}

// ------------------------------------------------------------------ images

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str) -> Self {
        Self {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: None,
        }
    }
    pub fn linux_amd64() -> Self {
        Self::new("linux", "amd64")
    }
    pub fn linux_arm64() -> Self {
        Self {
            variant: Some("v8".to_owned()),
            ..Self::new("linux", "arm64")
        }
    }
    pub fn to_json(&self) -> Value {
        let mut v = json!({"os": self.os, "architecture": self.architecture});
        if let Some(var) = &self.variant {
            v["variant"] = json!(var);
        }
        v
    }
}

#[derive(Debug, Clone)]
pub struct ImageBuilder {
    layers: Vec<Layer>,
    platform: Platform,
    env: Vec<String>,
    cmd: Option<Vec<String>>,
    working_dir: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    docker_types: bool,
    /// history entries with `empty_layer: true`, inserted after layer N
    empty_history: Vec<(usize, String)>,
    /// More `config` members (`User`, `ExposedPorts`, `Healthcheck` …).
    config_extra: BTreeMap<String, Value>,
}

impl Default for ImageBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageBuilder {
    /// linux/amd64, OCI media types, `PATH` set like the official images.
    pub fn new() -> Self {
        Self {
            layers: Vec::new(),
            platform: Platform::linux_amd64(),
            env: vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
            ],
            cmd: None,
            working_dir: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            docker_types: false,
            empty_history: Vec::new(),
            config_extra: BTreeMap::new(),
        }
    }

    /// Sets a member of the image config's `config` object as written
    /// (`"User"`, `"ExposedPorts"`, `"Healthcheck"` …).
    pub fn config_field(mut self, key: &str, value: Value) -> Self {
        self.config_extra.insert(key.to_owned(), value);
        self
    }

    pub fn layer(mut self, layer: Layer) -> Self {
        self.layers.push(layer);
        self
    }

    /// `config(arch, os)` as in the image config's `architecture` / `os`.
    pub fn config(mut self, architecture: &str, os: &str) -> Self {
        self.platform = Platform::new(os, architecture);
        self
    }

    pub fn platform(mut self, p: Platform) -> Self {
        self.platform = p;
        self
    }

    pub fn env(mut self, kv: &str) -> Self {
        self.env.push(kv.to_owned());
        self
    }

    pub fn cmd(mut self, argv: &[&str]) -> Self {
        self.cmd = Some(argv.iter().map(|s| s.to_string()).collect());
        self
    }

    pub fn working_dir(mut self, d: &str) -> Self {
        self.working_dir = Some(d.to_owned());
        self
    }

    /// A config label (`config.Labels`).
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.to_owned(), v.to_owned());
        self
    }

    /// A manifest annotation, e.g. `org.opencontainers.image.base.name`.
    pub fn annotation(mut self, k: &str, v: &str) -> Self {
        self.annotations.insert(k.to_owned(), v.to_owned());
        self
    }

    /// Docker schema 2 media types (what `docker push` produces) instead of OCI.
    pub fn docker_media_types(mut self) -> Self {
        self.docker_types = true;
        self
    }

    /// A history entry without a layer (ENV, CMD …) after the current last layer.
    pub fn empty_history(mut self, created_by: &str) -> Self {
        self.empty_history
            .push((self.layers.len(), created_by.to_owned()));
        self
    }

    pub fn build(&self) -> Result<BuiltImage> {
        let layers = self
            .layers
            .iter()
            .map(|l| BuiltLayer::from_layer(l, self.docker_types))
            .collect::<Result<Vec<_>>>()?;
        let mut history = Vec::new();
        let created = "2024-01-01T00:00:00Z";
        for (i, l) in self.layers.iter().enumerate() {
            for (_, text) in self.empty_history.iter().filter(|(at, _)| *at == i) {
                history.push(json!({"created": created, "created_by": text, "empty_layer": true}));
            }
            let text = l
                .created_by
                .clone()
                .unwrap_or_else(|| format!("COPY layer{} / # scangate test", i + 1));
            history.push(json!({"created": created, "created_by": text}));
        }
        for (_, text) in self
            .empty_history
            .iter()
            .filter(|(at, _)| *at == self.layers.len())
        {
            history.push(json!({"created": created, "created_by": text, "empty_layer": true}));
        }
        let mut cfg_inner = json!({"Env": self.env});
        if let Some(c) = &self.cmd {
            cfg_inner["Cmd"] = json!(c);
        }
        if let Some(w) = &self.working_dir {
            cfg_inner["WorkingDir"] = json!(w);
        }
        if !self.labels.is_empty() {
            cfg_inner["Labels"] = json!(self.labels);
        }
        for (k, v) in &self.config_extra {
            cfg_inner[k] = v.clone();
        }
        let mut config = json!({
            "architecture": self.platform.architecture,
            "os": self.platform.os,
            "created": created,
            "config": cfg_inner,
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
            "history": history,
        });
        if let Some(v) = &self.platform.variant {
            config["variant"] = json!(v);
        }
        let config_bytes = serde_json::to_vec(&config)?;
        let config_digest = sha256_digest(&config_bytes);
        let (media_type, config_mt) = if self.docker_types {
            (DOCKER_MANIFEST, DOCKER_CONFIG)
        } else {
            (OCI_MANIFEST, OCI_CONFIG)
        };
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": config_mt, "digest": config_digest, "size": config_bytes.len()},
            "layers": layers.iter().map(BuiltLayer::descriptor).collect::<Vec<_>>(),
        });
        if !self.annotations.is_empty() {
            manifest["annotations"] = json!(self.annotations);
        }
        let manifest_bytes = serde_json::to_vec(&manifest)?;
        Ok(BuiltImage {
            manifest_digest: sha256_digest(&manifest_bytes),
            manifest_bytes,
            media_type: media_type.to_owned(),
            config,
            config_bytes,
            config_digest,
            layers,
            platform: self.platform.clone(),
        })
    }
}

#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub manifest_bytes: Vec<u8>,
    pub manifest_digest: String,
    pub media_type: String,
    pub config: Value,
    pub config_bytes: Vec<u8>,
    pub config_digest: String,
    pub layers: Vec<BuiltLayer>,
    pub platform: Platform,
}

/// A blob by digest: config or layer.
fn image_blobs(img: &BuiltImage) -> Vec<(&str, &[u8])> {
    let mut v: Vec<(&str, &[u8])> = img
        .layers
        .iter()
        .filter(|l| !l.foreign)
        .map(|l| (l.digest.as_str(), l.blob.as_slice()))
        .collect();
    v.push((img.config_digest.as_str(), img.config_bytes.as_slice()));
    v
}

impl BuiltImage {
    /// Pushes blobs and the manifest to `registry_addr` (`127.0.0.1:PORT`,
    /// plain HTTP) as `reference` (`repo:tag`, `repo@sha256:…` or `repo`,
    /// which pushes by digest only). Returns the manifest digest.
    pub async fn push(
        &self,
        registry_addr: &str,
        reference: &str,
        creds: Option<&Credentials>,
    ) -> Result<String> {
        let c = PushClient::new(registry_addr, creds)?;
        let (repo, tag) = split_reference(reference)?;
        for (digest, data) in image_blobs(self) {
            c.put_blob(&repo, digest, data).await?;
        }
        let tag = tag.unwrap_or_else(|| self.manifest_digest.clone());
        c.put_manifest(
            &repo,
            &tag,
            &self.media_type,
            &self.manifest_bytes,
            &self.manifest_digest,
        )
        .await?;
        Ok(self.manifest_digest.clone())
    }

    /// [`push`](Self::push) with the registry's own credentials.
    pub async fn push_to(&self, registry: &Registry, reference: &str) -> Result<String> {
        self.push(&registry.addr, reference, registry.credentials.as_ref())
            .await
    }

    /// Writes an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`)
    /// into `dir` (created if needed). `ref_name` becomes the
    /// `org.opencontainers.image.ref.name` annotation (`oci:DIR:REF`).
    pub fn write_oci_layout(&self, dir: &Path, ref_name: Option<&str>) -> Result<()> {
        let blobs = image_blobs(self);
        let mut desc = json!({"mediaType": self.media_type, "digest": self.manifest_digest,
                              "size": self.manifest_bytes.len()});
        if let Some(r) = ref_name {
            desc["annotations"] = json!({"org.opencontainers.image.ref.name": r});
        }
        write_layout(
            dir,
            blobs.into_iter().chain([(
                self.manifest_digest.as_str(),
                self.manifest_bytes.as_slice(),
            )]),
            desc,
        )
    }

    /// Writes a `docker save` archive (`manifest.json`, `<hex>.json` config,
    /// `<n>/layer.tar` uncompressed, `repositories`) to `path`.
    pub fn write_docker_archive(&self, path: &Path, repo_tag: &str) -> Result<()> {
        let mut b = tar::Builder::new(std::fs::File::create(path)?);
        let add = |b: &mut tar::Builder<std::fs::File>, name: &str, data: &[u8]| -> Result<()> {
            let mut h = tar::Header::new_gnu();
            h.set_mtime(MTIME);
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, data)?;
            Ok(())
        };
        let cfg_hex = self.config_digest.trim_start_matches("sha256:");
        add(&mut b, &format!("{cfg_hex}.json"), &self.config_bytes)?;
        let mut layer_paths = Vec::new();
        for l in &self.layers {
            let id = l.diff_id.trim_start_matches("sha256:");
            let p = format!("{id}/layer.tar");
            if !layer_paths.contains(&p) {
                add(&mut b, &p, &l.tar)?;
            }
            layer_paths.push(p);
        }
        let manifest = json!([{"Config": format!("{cfg_hex}.json"), "RepoTags": [repo_tag], "Layers": layer_paths}]);
        add(&mut b, "manifest.json", &serde_json::to_vec(&manifest)?)?;
        let (repo, tag) = repo_tag.rsplit_once(':').unwrap_or((repo_tag, "latest"));
        let repos = json!({repo: {tag: self.layers.last().map(|l| l.diff_id.trim_start_matches("sha256:")).unwrap_or(cfg_hex)}});
        add(&mut b, "repositories", &serde_json::to_vec(&repos)?)?;
        b.into_inner()?.sync_all()?;
        Ok(())
    }

    /// The descriptor an index uses for this manifest.
    pub fn index_descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.manifest_digest,
               "size": self.manifest_bytes.len(), "platform": self.platform.to_json()})
    }
}

// ------------------------------------------------------------------ indexes

/// A multi-platform image index (OCI or Docker manifest list).
#[derive(Debug, Clone, Default)]
pub struct IndexBuilder {
    images: Vec<BuiltImage>,
    annotations: BTreeMap<String, String>,
    docker_types: bool,
}

impl IndexBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a platform image; its `platform` (from its config) goes in the descriptor.
    pub fn manifest(mut self, image: BuiltImage) -> Self {
        self.images.push(image);
        self
    }

    pub fn annotation(mut self, k: &str, v: &str) -> Self {
        self.annotations.insert(k.to_owned(), v.to_owned());
        self
    }

    pub fn docker_media_types(mut self) -> Self {
        self.docker_types = true;
        self
    }

    pub fn build(&self) -> Result<BuiltIndex> {
        let media_type = if self.docker_types {
            DOCKER_MANIFEST_LIST
        } else {
            OCI_INDEX
        };
        let mut index = json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": self.images.iter().map(BuiltImage::index_descriptor).collect::<Vec<_>>(),
        });
        if !self.annotations.is_empty() {
            index["annotations"] = json!(self.annotations);
        }
        let bytes = serde_json::to_vec(&index)?;
        Ok(BuiltIndex {
            digest: sha256_digest(&bytes),
            bytes,
            media_type: media_type.to_owned(),
            images: self.images.clone(),
        })
    }
}

#[derive(Debug, Clone)]
pub struct BuiltIndex {
    pub bytes: Vec<u8>,
    pub digest: String,
    pub media_type: String,
    pub images: Vec<BuiltImage>,
}

impl BuiltIndex {
    /// The image for `os/arch`, if the index has one.
    pub fn image_for(&self, os: &str, architecture: &str) -> Option<&BuiltImage> {
        self.images
            .iter()
            .find(|i| i.platform.os == os && i.platform.architecture == architecture)
    }

    /// Pushes every platform manifest by digest, then the index as `reference`.
    pub async fn push(
        &self,
        registry_addr: &str,
        reference: &str,
        creds: Option<&Credentials>,
    ) -> Result<String> {
        let c = PushClient::new(registry_addr, creds)?;
        let (repo, tag) = split_reference(reference)?;
        for img in &self.images {
            for (digest, data) in image_blobs(img) {
                c.put_blob(&repo, digest, data).await?;
            }
            c.put_manifest(
                &repo,
                &img.manifest_digest,
                &img.media_type,
                &img.manifest_bytes,
                &img.manifest_digest,
            )
            .await?;
        }
        let tag = tag.unwrap_or_else(|| self.digest.clone());
        c.put_manifest(&repo, &tag, &self.media_type, &self.bytes, &self.digest)
            .await?;
        Ok(self.digest.clone())
    }

    pub async fn push_to(&self, registry: &Registry, reference: &str) -> Result<String> {
        self.push(&registry.addr, reference, registry.credentials.as_ref())
            .await
    }

    /// OCI image layout whose `index.json` points at this index (nested, as
    /// buildx and the corpus write it).
    pub fn write_oci_layout(&self, dir: &Path, ref_name: Option<&str>) -> Result<()> {
        let mut blobs: Vec<(&str, &[u8])> = Vec::new();
        for img in &self.images {
            blobs.extend(image_blobs(img));
            blobs.push((img.manifest_digest.as_str(), img.manifest_bytes.as_slice()));
        }
        blobs.push((self.digest.as_str(), self.bytes.as_slice()));
        let mut desc =
            json!({"mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len()});
        if let Some(r) = ref_name {
            desc["annotations"] = json!({"org.opencontainers.image.ref.name": r});
        }
        write_layout(dir, blobs.into_iter(), desc)
    }
}

/// An OCI index of two images that differ only in platform (and in a file
/// naming it): linux/amd64 and linux/arm64/v8.
pub fn multi_platform_index(base: &ImageBuilder) -> Result<BuiltIndex> {
    let mut b = IndexBuilder::new();
    for p in [Platform::linux_amd64(), Platform::linux_arm64()] {
        let marker = Layer::new().file("etc/scangate-platform", format!("{}\n", p.architecture));
        b = b.manifest(base.clone().platform(p).layer(marker).build()?);
    }
    b.build()
}

fn write_layout<'a>(
    dir: &Path,
    blobs: impl Iterator<Item = (&'a str, &'a [u8])>,
    top: Value,
) -> Result<()> {
    let bdir = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&bdir).with_context(|| format!("creating {}", bdir.display()))?;
    for (digest, data) in blobs {
        let hex = digest
            .strip_prefix("sha256:")
            .context("only sha256 digests")?;
        std::fs::write(bdir.join(hex), data)?;
    }
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [top]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
    Ok(())
}

// ------------------------------------------------------------------ raw pushes

/// Pushes one blob (any bytes) to `repo`; returns its digest. For images
/// the builders cannot describe (hostile manifests, blobs made by hand).
pub async fn push_blob(registry: &Registry, repo: &str, data: &[u8]) -> Result<String> {
    let digest = sha256_digest(data);
    PushClient::new(&registry.addr, registry.credentials.as_ref())?
        .put_blob(repo, &digest, data)
        .await?;
    Ok(digest)
}

/// Pushes a manifest (any bytes, labelled `media_type`) as `repo:tag`;
/// returns its digest. The registry still validates what it stores (its
/// blobs must exist).
pub async fn push_manifest(
    registry: &Registry,
    repo: &str,
    tag: &str,
    media_type: &str,
    bytes: &[u8],
) -> Result<String> {
    let digest = sha256_digest(bytes);
    PushClient::new(&registry.addr, registry.credentials.as_ref())?
        .put_manifest(repo, tag, media_type, bytes, &digest)
        .await?;
    Ok(digest)
}

// ------------------------------------------------------------------ push client

/// `repo:tag` / `repo@digest` / `repo` → (repo, tag-or-digest).
fn split_reference(reference: &str) -> Result<(String, Option<String>)> {
    if let Some((repo, digest)) = reference.split_once('@') {
        return Ok((repo.to_owned(), Some(digest.to_owned())));
    }
    let last_slash = reference.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (repo, tag) = match reference[last_slash..].rfind(':') {
        Some(i) => (
            &reference[..last_slash + i],
            Some(reference[last_slash + i + 1..].to_owned()),
        ),
        None => (reference, None),
    };
    if repo.is_empty() || repo.contains("//") {
        bail!("bad repository reference {reference:?}");
    }
    Ok((repo.to_owned(), tag))
}

struct PushClient {
    http: reqwest::Client,
    base: String,
    creds: Option<Credentials>,
}

impl PushClient {
    fn new(addr: &str, creds: Option<&Credentials>) -> Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            base: format!("http://{addr}"),
            creds: creds.cloned(),
        })
    }

    fn req(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, url);
        match &self.creds {
            Some(c) => r.basic_auth(&c.username, Some(&c.password)),
            None => r,
        }
    }

    async fn put_blob(&self, repo: &str, digest: &str, data: &[u8]) -> Result<()> {
        let head = self
            .req(
                reqwest::Method::HEAD,
                &format!("{}/v2/{repo}/blobs/{digest}", self.base),
            )
            .send()
            .await?;
        if head.status().is_success() {
            return Ok(());
        }
        check(head.status(), "HEAD blob", digest, &[404])?;
        let start = self
            .req(
                reqwest::Method::POST,
                &format!("{}/v2/{repo}/blobs/uploads/", self.base),
            )
            .send()
            .await?;
        let status = start.status();
        if status != reqwest::StatusCode::ACCEPTED {
            let body = start.text().await.unwrap_or_default();
            bail!("POST /v2/{repo}/blobs/uploads/: {status}: {body}");
        }
        let loc = start
            .headers()
            .get(reqwest::header::LOCATION)
            .context("upload without Location")?
            .to_str()?
            .to_owned();
        let mut url = if loc.starts_with("http://") || loc.starts_with("https://") {
            loc
        } else {
            format!("{}{loc}", self.base)
        };
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("digest=");
        url.push_str(digest);
        let put = self
            .req(reqwest::Method::PUT, &url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await?;
        if put.status() != reqwest::StatusCode::CREATED {
            let s = put.status();
            let body = put.text().await.unwrap_or_default();
            bail!("PUT blob {digest} to {repo}: {s}: {body}");
        }
        Ok(())
    }

    async fn put_manifest(
        &self,
        repo: &str,
        tag_or_digest: &str,
        media_type: &str,
        bytes: &[u8],
        digest: &str,
    ) -> Result<()> {
        let r = self
            .req(
                reqwest::Method::PUT,
                &format!("{}/v2/{repo}/manifests/{tag_or_digest}", self.base),
            )
            .header(reqwest::header::CONTENT_TYPE, media_type)
            .body(bytes.to_vec())
            .send()
            .await?;
        let status = r.status();
        let got = r
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if status != reqwest::StatusCode::CREATED {
            let body = r.text().await.unwrap_or_default();
            bail!("PUT manifest {repo}:{tag_or_digest}: {status}: {body}");
        }
        if let Some(got) = got {
            ensure!(
                got == digest,
                "registry stored manifest as {got}, we computed {digest}"
            );
        }
        Ok(())
    }
}

fn check(status: reqwest::StatusCode, what: &str, target: &str, ok: &[u16]) -> Result<()> {
    if status.is_success() || ok.contains(&status.as_u16()) {
        Ok(())
    } else {
        bail!("{what} {target}: {status}")
    }
}

// ------------------------------------------------------------------ OS content

/// One installed package for [`dpkg_status`]: (name, version, arch, source).
/// `source` is `""` (same as the package), `"src"` or `"src (version)"`.
pub type DpkgEntry<'a> = (&'a str, &'a str, &'a str, &'a str);

/// A `/var/lib/dpkg/status` as dpkg writes it: field order, `Status:
/// install ok installed`, `Source:` only when it differs from the package,
/// `Multi-Arch: same` for arch-specific libraries.
pub fn dpkg_status(pkgs: &[DpkgEntry<'_>]) -> String {
    let mut s = String::new();
    for (name, version, arch, source) in pkgs {
        let lib = name.starts_with("lib") && *arch != "all";
        let section = if lib { "libs" } else { "utils" };
        let _ = writeln!(s, "Package: {name}");
        let _ = writeln!(s, "Status: install ok installed");
        let _ = writeln!(s, "Priority: optional");
        let _ = writeln!(s, "Section: {section}");
        let _ = writeln!(s, "Installed-Size: {}", 40 + name.len() * 7);
        let _ = writeln!(
            s,
            "Maintainer: Debian Maintainers <debian-devel@lists.debian.org>"
        );
        let _ = writeln!(s, "Architecture: {arch}");
        if lib {
            let _ = writeln!(s, "Multi-Arch: same");
        }
        if !source.is_empty() && *source != *name {
            let _ = writeln!(s, "Source: {source}");
        }
        let _ = writeln!(s, "Version: {version}");
        if *name != "libc6" {
            let _ = writeln!(s, "Depends: libc6 (>= 2.34)");
        }
        let _ = writeln!(s, "Description: {name} (scangate test package)");
        let _ = writeln!(
            s,
            " Installed by the scangate test harness so that scanners see a\n real-looking dpkg database."
        );
        s.push('\n');
    }
    s
}

/// `/usr/lib/os-release` of Debian 12 (the official debian:bookworm image).
pub fn debian_os_release() -> String {
    "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"
NAME=\"Debian GNU/Linux\"
VERSION_ID=\"12\"
VERSION=\"12 (bookworm)\"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL=\"https://www.debian.org/\"
SUPPORT_URL=\"https://www.debian.org/support\"
BUG_REPORT_URL=\"https://bugs.debian.org/\"
"
    .to_owned()
}

/// `/usr/lib/os-release` of Ubuntu 22.04 (jammy).
pub fn ubuntu_jammy_os_release() -> String {
    "PRETTY_NAME=\"Ubuntu 22.04.4 LTS\"
NAME=\"Ubuntu\"
VERSION_ID=\"22.04\"
VERSION=\"22.04.4 LTS (Jammy Jellyfish)\"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
HOME_URL=\"https://www.ubuntu.com/\"
SUPPORT_URL=\"https://help.ubuntu.com/\"
BUG_REPORT_URL=\"https://bugs.launchpad.net/ubuntu/\"
PRIVACY_POLICY_URL=\"https://www.ubuntu.com/legal/terms-and-policies/privacy-policy\"
UBUNTU_CODENAME=jammy
"
    .to_owned()
}

/// `/etc/os-release` of Alpine `version` (e.g. `3.19.1`).
pub fn alpine_os_release(version: &str) -> String {
    let minor: Vec<&str> = version.split('.').take(2).collect();
    format!(
        "NAME=\"Alpine Linux\"
ID=alpine
VERSION_ID={version}
PRETTY_NAME=\"Alpine Linux v{}\"
HOME_URL=\"https://alpinelinux.org/\"
BUG_REPORT_URL=\"https://gitlab.alpinelinux.org/alpine/aports/-/issues\"
",
        minor.join(".")
    )
}

/// The layer of a Debian-family base: merged-/usr style os-release
/// (`etc/os-release` → `../usr/lib/os-release`) and the dpkg database.
pub fn dpkg_layer(os_release: &str, status: &str) -> Layer {
    Layer::new()
        .dir("etc")
        .dir("usr")
        .dir("usr/lib")
        .file("usr/lib/os-release", os_release)
        .symlink("etc/os-release", "../usr/lib/os-release")
        .dir("var")
        .dir("var/lib")
        .dir("var/lib/dpkg")
        .file("var/lib/dpkg/status", status)
        .created_by("/bin/sh -c #(nop) ADD file:rootfs.tar.xz in / ")
}

/// A Debian 12 image with `n` synthetic installed packages, each from its
/// own source package (`Source: sgsrcNNNNN (1.N-1)`), so that an SBOM has
/// well over 5,000 components and ScanSbom must be split.
pub fn big_dpkg_image(n: usize) -> Result<BuiltImage> {
    // binNMU-style versions (binary `+b1`, source without) are the case that
    // needs `Source: name (version)`
    let pkgs: Vec<(String, String, String)> = (0..n)
        .map(|i| {
            (
                format!("sgpkg{i:05}"),
                format!("1.{i}-1+b1"),
                format!("sgsrc{i:05} (1.{i}-1)"),
            )
        })
        .collect();
    let entries: Vec<DpkgEntry<'_>> = pkgs
        .iter()
        .map(|(p, v, s)| (p.as_str(), v.as_str(), "amd64", s.as_str()))
        .collect();
    ImageBuilder::new()
        .layer(dpkg_layer(&debian_os_release(), &dpkg_status(&entries)))
        .cmd(&["bash"])
        .build()
}

// ------------------------------------------------------------------ Inspector fixtures

/// One OS package read from an inspector-sbomgen SBOM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixturePackage {
    pub name: String,
    /// With the epoch (`1:2.3-4`) when it is not 0.
    pub version: String,
    pub arch: String,
    pub source: Option<String>,
    pub source_version: Option<String>,
}

/// The OS packages and distribution an inspector-sbomgen SBOM describes.
#[derive(Debug, Clone)]
pub struct FixtureContent {
    /// `deb` or `apk`
    pub kind: String,
    /// `debian`, `ubuntu` or `alpine`
    pub distro: String,
    /// purl `distro=` qualifier: `bookworm`, `jammy`, `3.19.1`
    pub distro_release: String,
    /// binary (installed) packages, in SBOM order
    pub packages: Vec<FixturePackage>,
}

struct Purl {
    ty: String,
    namespace: String,
    name: String,
    version: String,
    qualifiers: BTreeMap<String, String>,
}

fn pct_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn parse_purl(p: &str) -> Option<Purl> {
    let rest = p.strip_prefix("pkg:")?;
    let (rest, quals) = match rest.split_once('?') {
        Some((a, q)) => (a, q),
        None => (rest, ""),
    };
    let rest = rest.split('#').next()?;
    let (path, version) = rest.rsplit_once('@')?;
    let mut parts: Vec<&str> = path.split('/').collect();
    let ty = parts.remove(0).to_owned();
    let name = pct_decode(parts.pop()?);
    let namespace = parts
        .iter()
        .map(|s| pct_decode(s))
        .collect::<Vec<_>>()
        .join("/");
    let qualifiers = quals
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), pct_decode(v)))
        .collect();
    Some(Purl {
        ty,
        namespace,
        name,
        version: pct_decode(version),
        qualifiers,
    })
}

fn purl_version(p: &Purl) -> String {
    match p.qualifiers.get("epoch").map(String::as_str) {
        Some(e) if !e.is_empty() && e != "0" => format!("{e}:{}", p.version),
        _ => p.version.clone(),
    }
}

/// Reads the OS packages of an inspector-sbomgen CycloneDX SBOM. Its deb
/// layout: a source package with nested binary packages, or a top-level
/// binary whose source has the same name; the flat form (Ubuntu) marks
/// binaries with a `source=` qualifier. A component that some binary names
/// as its source is a source entry, not an installed package.
pub fn read_inspector_fixture(path: &Path) -> Result<FixtureContent> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let bom: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let comps = bom["components"].as_array().context("no components")?;

    // (purl of the binary, parent purl if nested)
    let mut flat: Vec<(Purl, Option<usize>)> = Vec::new();
    let mut parents: Vec<Purl> = Vec::new();
    for c in comps {
        let Some(p) = c["purl"].as_str().and_then(parse_purl) else {
            continue;
        };
        if p.ty != "deb" && p.ty != "apk" {
            continue;
        }
        let children: Vec<Purl> = c["components"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|k| k["purl"].as_str().and_then(parse_purl))
                    .collect()
            })
            .unwrap_or_default();
        if children.is_empty() {
            flat.push((p, None));
        } else {
            let idx = parents.len();
            parents.push(p);
            flat.extend(children.into_iter().map(|k| (k, Some(idx))));
        }
    }
    ensure!(
        !flat.is_empty(),
        "{}: no deb/apk components",
        path.display()
    );
    let kind = flat[0].0.ty.clone();
    let distro = flat[0].0.namespace.clone();
    let distro_release = flat[0]
        .0
        .qualifiers
        .get("distro")
        .cloned()
        .unwrap_or_default();
    let named_sources: HashSet<String> = flat
        .iter()
        .filter_map(|(p, _)| p.qualifiers.get("source").cloned())
        .collect();
    let mut packages = Vec::new();
    let mut seen = HashSet::new();
    for (p, parent) in &flat {
        if parent.is_none() && named_sources.contains(&p.name) {
            continue;
        }
        if !seen.insert((p.name.clone(), p.qualifiers.get("arch").cloned())) {
            continue;
        }
        let (source, source_version) = match parent {
            Some(i) => (
                Some(parents[*i].name.clone()),
                Some(purl_version(&parents[*i])),
            ),
            None => match p.qualifiers.get("source") {
                Some(s) => {
                    // the flat form has no source version; sbomgen prints
                    // the binary's, which is what dpkg implies without one
                    let sv = flat
                        .iter()
                        .find(|(q, par)| par.is_none() && &q.name == s)
                        .map(|(q, _)| purl_version(q));
                    (Some(s.clone()), sv)
                }
                None => (None, None),
            },
        };
        packages.push(FixturePackage {
            name: p.name.clone(),
            version: purl_version(p),
            arch: p
                .qualifiers
                .get("arch")
                .cloned()
                .unwrap_or_else(|| "amd64".into()),
            source,
            source_version,
        });
    }
    Ok(FixtureContent {
        kind,
        distro,
        distro_release,
        packages,
    })
}

impl FixtureContent {
    /// The dpkg status file (deb fixtures).
    pub fn dpkg_status(&self) -> String {
        let srcs: Vec<String> = self
            .packages
            .iter()
            .map(|p| match (&p.source, &p.source_version) {
                (Some(s), Some(v)) if *v != p.version => format!("{s} ({v})"),
                (Some(s), _) => s.clone(),
                (None, _) => String::new(),
            })
            .collect();
        let entries: Vec<DpkgEntry<'_>> = self
            .packages
            .iter()
            .zip(&srcs)
            .map(|(p, s)| {
                (
                    p.name.as_str(),
                    p.version.as_str(),
                    p.arch.as_str(),
                    s.as_str(),
                )
            })
            .collect();
        dpkg_status(&entries)
    }

    /// `lib/apk/db/installed` (apk fixtures).
    pub fn apk_installed(&self) -> String {
        let mut s = String::new();
        for p in &self.packages {
            let origin = p.source.as_deref().unwrap_or(&p.name);
            let _ = write!(
                s,
                "C:Q1{}=\nP:{}\nV:{}\nA:{}\nS:{}\nI:{}\nT:{} (scangate test package)\nU:https://alpinelinux.org\nL:MIT\no:{}\nm:Alpine Maintainers\nt:1704067200\n\n",
                &hex::encode(Sha256::digest(p.name.as_bytes()))[..26],
                p.name,
                p.version,
                p.arch,
                1000 + p.name.len() * 13,
                4096 + p.name.len() * 17,
                p.name,
                origin
            );
        }
        s
    }

    pub fn os_release(&self) -> Result<String> {
        Ok(match (self.distro.as_str(), self.distro_release.as_str()) {
            ("debian", "bookworm") => debian_os_release(),
            ("ubuntu", "jammy") => ubuntu_jammy_os_release(),
            ("alpine", v) => alpine_os_release(v),
            (d, r) => bail!("no os-release for {d} {r} yet"),
        })
    }
}

/// An image whose package database lists exactly the OS packages of an
/// Inspector fixture SBOM (`/work/shared/fixtures/inspector/sboms/*.json`),
/// so that scanning it should reproduce the fixture's real ScanSbom answer.
/// Language packages in the fixture are not planted.
pub fn image_from_inspector_fixture(sbom_path: &Path) -> Result<BuiltImage> {
    let fx = read_inspector_fixture(sbom_path)?;
    let os_release = fx.os_release()?;
    let layer = match fx.kind.as_str() {
        "deb" => dpkg_layer(&os_release, &fx.dpkg_status()),
        "apk" => Layer::new()
            .dir("etc")
            .file("etc/os-release", os_release.as_str())
            .file("etc/alpine-release", format!("{}\n", fx.distro_release))
            .dir("lib")
            .dir("lib/apk")
            .dir("lib/apk/db")
            .file("lib/apk/db/installed", fx.apk_installed())
            .created_by("/bin/sh -c #(nop) ADD file:alpine-minirootfs.tar.gz in / "),
        k => bail!("unsupported package type {k}"),
    };
    let cmd = if fx.kind == "apk" { "/bin/sh" } else { "bash" };
    ImageBuilder::new()
        .layer(layer)
        .cmd(&[cmd])
        .empty_history(&format!("/bin/sh -c #(nop)  CMD [\"{cmd}\"]"))
        .build()
}
