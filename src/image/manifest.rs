//! Manifest, index and image-config documents (Docker schema 2 and OCI),
//! parsed leniently where registries differ and strictly where a mistake
//! would make us scan something other than what was asked for.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::platform::Platform;
use super::reference::parse_digest;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// The `Accept` header for manifest requests: every format we can read.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: Option<String>,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<DescriptorPlatform>,
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DescriptorPlatform {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl From<&DescriptorPlatform> for Platform {
    fn from(p: &DescriptorPlatform) -> Self {
        Platform {
            os: p.os.clone(),
            architecture: p.architecture.clone(),
            variant: p.variant.clone().filter(|v| !v.is_empty()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone)]
pub struct ImageManifest {
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct IndexManifest {
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
}

impl IndexManifest {
    /// Entries that are images, not attestations or signatures
    /// (BuildKit lists those as `unknown/unknown`).
    pub fn image_entries(&self) -> Vec<&Descriptor> {
        self.manifests
            .iter()
            .filter(|d| {
                d.platform.as_ref().is_some_and(|p| p.os != "unknown")
                    && d.annotations
                        .as_ref()
                        .and_then(|a| a.get("vnd.docker.reference.type"))
                        .is_none()
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
pub enum Manifest {
    Image(ImageManifest),
    Index(IndexManifest),
}

/// Why a manifest document cannot be used; the caller adds the reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestProblem {
    /// Not a document we accept (schema 1, an OCI artifact, ...).
    Unsupported(String),
    /// Not valid JSON or missing required fields.
    Invalid(String),
}

/// Parses a manifest or index. `content_type` is the response header, used
/// when the document itself does not say what it is.
pub fn parse_manifest(
    bytes: &[u8],
    content_type: Option<&str>,
) -> Result<Manifest, ManifestProblem> {
    let header_type = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim().to_owned())
        .filter(|c| !c.is_empty());
    if matches!(
        header_type.as_deref(),
        Some(DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED)
    ) {
        return Err(schema1());
    }
    let raw: RawManifest = serde_json::from_slice(bytes)
        .map_err(|e| ManifestProblem::Invalid(format!("manifest is not valid JSON: {e}")))?;
    if raw.schema_version == Some(1) {
        return Err(schema1());
    }
    let media_type = raw.media_type.clone().or(header_type).unwrap_or_default();
    let is_index = match media_type.as_str() {
        OCI_INDEX | DOCKER_MANIFEST_LIST => true,
        OCI_MANIFEST | DOCKER_MANIFEST => false,
        DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED => return Err(schema1()),
        // Untyped or generic (application/json) documents: decide by shape.
        _ if raw.manifests.is_some() => true,
        _ if raw.config.is_some() => false,
        other => {
            return Err(ManifestProblem::Unsupported(format!(
                "manifest media type {other:?} is not an image manifest or index"
            )));
        }
    };
    if is_index {
        let manifests = raw
            .manifests
            .ok_or_else(|| ManifestProblem::Invalid("index has no \"manifests\"".into()))?;
        for d in &manifests {
            check_digest(&d.digest)?;
        }
        return Ok(Manifest::Index(IndexManifest {
            media_type,
            manifests,
        }));
    }
    let config = raw
        .config
        .ok_or_else(|| ManifestProblem::Invalid("manifest has no \"config\"".into()))?;
    check_digest(&config.digest)?;
    if let Some(ct) = config.media_type.as_deref()
        && ct != DOCKER_CONFIG
        && ct != OCI_CONFIG
    {
        return Err(ManifestProblem::Unsupported(format!(
            "it is an OCI artifact with config type {ct:?}, not a container image"
        )));
    }
    let layers = raw.layers.unwrap_or_default();
    for d in &layers {
        check_digest(&d.digest)?;
    }
    Ok(Manifest::Image(ImageManifest {
        media_type,
        config,
        layers,
        annotations: raw.annotations.unwrap_or_default(),
    }))
}

fn schema1() -> ManifestProblem {
    ManifestProblem::Unsupported(
        "it uses the deprecated Docker image manifest schema 1; rebuild and push it \
         with a current Docker or BuildKit to get a schema 2 or OCI manifest"
            .into(),
    )
}

fn check_digest(d: &str) -> Result<(), ManifestProblem> {
    parse_digest(d)
        .map(|_| ())
        .map_err(|p| ManifestProblem::Unsupported(format!("descriptor {d:?}: {p}")))
}

/// OCI annotations naming the image this one was built on
/// (image-spec `annotations.md`); BuildKit sets them on the manifest, and
/// some pipelines set the same keys as config labels.
pub const BASE_NAME_ANNOTATION: &str = "org.opencontainers.image.base.name";
pub const BASE_DIGEST_ANNOTATION: &str = "org.opencontainers.image.base.digest";

/// The base image an image names for itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseAnnotation {
    /// `org.opencontainers.image.base.name`, e.g. `docker.io/library/debian:bookworm`.
    pub name: String,
    /// `org.opencontainers.image.base.digest`, when set and well formed.
    pub digest: Option<String>,
    /// Taken from config labels rather than manifest annotations.
    pub from_labels: bool,
}

impl BaseAnnotation {
    /// The manifest's annotations win over the config's labels: they are
    /// what the builder that resolved the base wrote. Values are untrusted
    /// input; a malformed digest is dropped rather than failing the scan.
    pub fn find(
        annotations: &BTreeMap<String, String>,
        labels: &BTreeMap<String, String>,
    ) -> Option<BaseAnnotation> {
        [(annotations, false), (labels, true)]
            .into_iter()
            .find_map(|(map, from_labels)| {
                let name = map.get(BASE_NAME_ANNOTATION)?.trim();
                if name.is_empty() {
                    return None;
                }
                let digest = map
                    .get(BASE_DIGEST_ANNOTATION)
                    .map(|d| d.trim())
                    .filter(|d| parse_digest(d).is_ok())
                    .map(str::to_owned);
                Some(BaseAnnotation {
                    name: name.to_owned(),
                    digest,
                    from_labels,
                })
            })
    }

    /// The reference to resolve: the name pinned to the digest when there is
    /// one (a tag may have moved since the build; the digest has not).
    pub fn reference(&self) -> String {
        match &self.digest {
            Some(d) if !self.name.contains('@') => format!("{}@{d}", self.name),
            _ => self.name.clone(),
        }
    }
}

/// The parts of the image configuration that scanning and reports use.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    pub created: Option<String>,
    pub history: Vec<HistoryEntry>,
    pub labels: BTreeMap<String, String>,
    /// Digests of the uncompressed layers, in order.
    pub diff_ids: Vec<String>,
    /// `config.User` as written (`""` when unset: the runtime's root).
    #[serde(default)]
    pub user: String,
    /// `config.Env`, `NAME=value` entries as written. Values may be
    /// secrets: never log or report them (and never serialised, so a
    /// report that embeds the config cannot leak them).
    #[serde(default, skip_serializing)]
    pub env: Vec<String>,
    /// `config.ExposedPorts` keys (`22/tcp`).
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    /// `config.Healthcheck.Test`, when the image declares one (`["NONE"]`
    /// disables an inherited check).
    #[serde(default)]
    pub healthcheck: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HistoryEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

impl ImageConfig {
    /// The history entry that produced each layer (entries marked
    /// `empty_layer` made none); `None` where history is shorter.
    pub fn layer_history(&self) -> Vec<Option<&HistoryEntry>> {
        let mut it = self.history.iter().filter(|h| !h.empty_layer);
        self.diff_ids.iter().map(|_| it.next()).collect()
    }
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    history: Option<Vec<HistoryEntry>>,
    #[serde(default)]
    config: Option<RawContainerConfig>,
    #[serde(default)]
    rootfs: Option<RawRootFs>,
}

#[derive(Deserialize)]
struct RawContainerConfig {
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
    // Read leniently: scanning never depended on these members, so an
    // oddly typed one (`"User": 0`, `"ExposedPorts": []`) must not fail
    // the pull; what is not the documented shape reads as unset.
    #[serde(rename = "User", default)]
    user: Option<serde_json::Value>,
    #[serde(rename = "Env", default)]
    env: Option<serde_json::Value>,
    #[serde(rename = "ExposedPorts", default)]
    exposed_ports: Option<serde_json::Value>,
    #[serde(rename = "Healthcheck", default)]
    healthcheck: Option<serde_json::Value>,
}

/// The strings of a JSON array (other members skipped).
fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Deserialize)]
struct RawRootFs {
    #[serde(default)]
    diff_ids: Option<Vec<String>>,
}

pub fn parse_config(bytes: &[u8]) -> Result<ImageConfig, String> {
    let raw: RawConfig =
        serde_json::from_slice(bytes).map_err(|e| format!("config is not valid JSON: {e}"))?;
    let c = raw.config;
    let (labels, user, env, exposed_ports, healthcheck) = match c {
        Some(c) => (
            c.labels.unwrap_or_default(),
            c.user
                .as_ref()
                .and_then(|u| u.as_str())
                .unwrap_or_default()
                .to_owned(),
            c.env.as_ref().map(strings).unwrap_or_default(),
            c.exposed_ports
                .as_ref()
                .and_then(|p| p.as_object())
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default(),
            c.healthcheck
                .as_ref()
                .filter(|h| h.is_object())
                .map(|h| strings(&h["Test"])),
        ),
        None => Default::default(),
    };
    Ok(ImageConfig {
        os: raw.os.unwrap_or_default(),
        architecture: raw.architecture.unwrap_or_default(),
        variant: raw.variant.filter(|v| !v.is_empty()),
        created: raw.created,
        history: raw.history.unwrap_or_default(),
        labels,
        diff_ids: raw.rootfs.and_then(|r| r.diff_ids).unwrap_or_default(),
        user,
        env,
        exposed_ports,
        healthcheck,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_time_members_are_read_leniently() {
        let c = parse_config(
            br#"{"config":{"User":"app","Env":["A=1",2,"B="],"ExposedPorts":{"22/tcp":{}},"Healthcheck":{"Test":["CMD","true"]}}}"#,
        )
        .unwrap();
        assert_eq!(c.user, "app");
        assert_eq!(c.env, ["A=1", "B="]);
        assert_eq!(c.exposed_ports, ["22/tcp"]);
        assert_eq!(
            c.healthcheck,
            Some(vec!["CMD".to_owned(), "true".to_owned()])
        );
        // Oddly typed members read as unset instead of failing the pull.
        let c = parse_config(
            br#"{"config":{"User":0,"Env":"A=1","ExposedPorts":[22],"Healthcheck":null}}"#,
        )
        .unwrap();
        assert_eq!(c.user, "");
        assert!(c.env.is_empty() && c.exposed_ports.is_empty());
        assert_eq!(c.healthcheck, None);
        // The values of Env are never serialised.
        let c = parse_config(br#"{"config":{"Env":["TOKEN=s3cr3t"]}}"#).unwrap();
        assert!(!serde_json::to_string(&c).unwrap().contains("s3cr3t"));
    }

    #[test]
    fn base_annotations_from_the_manifest_then_the_labels() {
        let d = format!("sha256:{}", "a".repeat(64));
        let m = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let ann = m(&[
            (BASE_NAME_ANNOTATION, "docker.io/library/debian:bookworm"),
            (BASE_DIGEST_ANNOTATION, &d),
        ]);
        let labels = m(&[(BASE_NAME_ANNOTATION, "alpine:3")]);
        let b = BaseAnnotation::find(&ann, &labels).unwrap();
        assert!(!b.from_labels);
        assert_eq!(
            b.reference(),
            format!("docker.io/library/debian:bookworm@{d}")
        );
        let b = BaseAnnotation::find(&BTreeMap::new(), &labels).unwrap();
        assert!(b.from_labels);
        assert_eq!(b.reference(), "alpine:3");
        // A malformed digest is dropped; a digest without a name is no base.
        let bad = m(&[
            (BASE_NAME_ANNOTATION, "x:1"),
            (BASE_DIGEST_ANNOTATION, "md5:zz"),
        ]);
        assert_eq!(
            BaseAnnotation::find(&bad, &BTreeMap::new())
                .unwrap()
                .reference(),
            "x:1"
        );
        let only = m(&[(BASE_DIGEST_ANNOTATION, &d), (BASE_NAME_ANNOTATION, " ")]);
        assert!(BaseAnnotation::find(&only, &BTreeMap::new()).is_none());
    }

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn parses_docker_and_oci_manifests() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}",
            "config":{{"mediaType":"{DOCKER_CONFIG}","digest":"{D1}","size":10}},
            "layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{D2}","size":20}}]}}"#
        );
        let Manifest::Image(m) = parse_manifest(m.as_bytes(), None).unwrap() else {
            panic!()
        };
        assert_eq!(m.layers.len(), 1);
        assert_eq!(m.config.digest, D1);

        // OCI without mediaType in the body: the header decides.
        let m = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{OCI_CONFIG}","digest":"{D1}","size":1}},
            "layers":[],"annotations":{{"org.opencontainers.image.base.name":"debian"}}}}"#
        );
        let Manifest::Image(m) = parse_manifest(
            m.as_bytes(),
            Some("application/vnd.oci.image.manifest.v1+json"),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(m.media_type, OCI_MANIFEST);
        assert_eq!(
            m.annotations["org.opencontainers.image.base.name"],
            "debian"
        );
    }

    #[test]
    fn parses_index_and_skips_attestations() {
        let idx = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
              {{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":5,"platform":{{"os":"linux","architecture":"amd64"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{D2}","size":5,"platform":{{"os":"unknown","architecture":"unknown"}},
                "annotations":{{"vnd.docker.reference.type":"attestation-manifest"}}}}]}}"#
        );
        let Manifest::Index(i) = parse_manifest(idx.as_bytes(), None).unwrap() else {
            panic!()
        };
        assert_eq!(i.manifests.len(), 2);
        assert_eq!(i.image_entries().len(), 1);
    }

    #[test]
    fn rejects_schema1_artifacts_and_garbage() {
        let s1 = r#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        let e = parse_manifest(s1.as_bytes(), None).unwrap_err();
        assert!(matches!(&e, ManifestProblem::Unsupported(m) if m.contains("schema 1")));
        let e = parse_manifest(b"{}", Some(DOCKER_SCHEMA1_SIGNED)).unwrap_err();
        assert!(matches!(&e, ManifestProblem::Unsupported(m) if m.contains("schema 1")));

        let helm = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"{D1}","size":1}},"layers":[]}}"#
        );
        let e = parse_manifest(helm.as_bytes(), None).unwrap_err();
        assert!(matches!(&e, ManifestProblem::Unsupported(m) if m.contains("helm")));

        assert!(matches!(
            parse_manifest(b"not json", None),
            Err(ManifestProblem::Invalid(_))
        ));
        let bad_digest = r#"{"schemaVersion":2,"config":{"digest":"md5:00","size":1},"layers":[]}"#;
        assert!(matches!(
            parse_manifest(bad_digest.as_bytes(), None),
            Err(ManifestProblem::Unsupported(_))
        ));
    }

    #[test]
    fn parses_config() {
        let c = format!(
            r#"{{"architecture":"arm64","os":"linux","variant":"v8","created":"2024-01-01T00:00:00Z",
            "config":{{"Labels":{{"a":"b"}}}},"rootfs":{{"type":"layers","diff_ids":["{D1}","{D2}"]}},
            "history":[{{"created_by":"ADD x"}},{{"created_by":"ENV y","empty_layer":true}},{{"created_by":"RUN z"}}]}}"#
        );
        let c = parse_config(c.as_bytes()).unwrap();
        assert_eq!(c.labels["a"], "b");
        assert_eq!(c.diff_ids.len(), 2);
        let h = c.layer_history();
        assert_eq!(h[1].unwrap().created_by.as_deref(), Some("RUN z"));
        // Labels: null is common.
        let c = parse_config(br#"{"os":"linux","architecture":"amd64","config":{"Labels":null}}"#)
            .unwrap();
        assert!(c.labels.is_empty());
    }
}
