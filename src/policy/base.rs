//! Base-image attribution (DESIGN.md, the policy file's `base_image`).
//!
//! Every SBOM component carries the image layer(s) that brought it
//! (`scangate:layer`). The base image's layers are recognised by content:
//! its `rootfs.diff_ids` must be a prefix of the scanned image's. A finding
//! whose component came only from those layers is *inherited*: the team
//! did not add it and usually cannot fix it except by moving to a newer
//! base, so the policy can gate it with thresholds of its own.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use serde_json::Value;

use super::{Counts, Thresholds};
use crate::inspector::findings::percent_decode;
use crate::inspector::{Finding, Severity};
use crate::sbom::props;

/// The policy's `base_image` section, resolved against the top-level
/// thresholds: a severity the section does not name keeps the top-level
/// threshold, so a section that relaxes only `critical` does not silently
/// relax `high` as well.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BaseImagePolicy {
    /// The base image to compare with; `None`: the scanned image's
    /// `org.opencontainers.image.base.*` annotations (or labels) name it.
    pub reference: Option<String>,
    pub thresholds: Thresholds,
}

/// Where the base image's name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BaseSource {
    /// `base_image.ref` in the policy file.
    Policy,
    /// The image manifest's `org.opencontainers.image.base.*` annotations.
    Annotation,
    /// The same keys as image-config labels (what `docker build --label`
    /// and some CI templates set).
    Label,
}

/// A base image compared, layer by layer, with the scanned image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaseLayers {
    /// As it was resolved (name, with the digest when one was given).
    pub reference: String,
    pub source: BaseSource,
    /// Digest of the base's platform manifest.
    pub digest: Option<String>,
    /// Layers of the base image.
    pub base_layers: usize,
    /// Leading layers the two images have in common.
    pub matched_layers: usize,
}

impl BaseLayers {
    pub fn compare(
        reference: String,
        source: BaseSource,
        digest: Option<String>,
        base_diff_ids: &[String],
        image_diff_ids: &[String],
    ) -> BaseLayers {
        let matched_layers = base_diff_ids
            .iter()
            .zip(image_diff_ids)
            .take_while(|(a, b)| a == b)
            .count();
        BaseLayers {
            reference,
            source,
            digest,
            base_layers: base_diff_ids.len(),
            matched_layers,
        }
    }

    /// The scanned image was built on this base: all of the base's layers
    /// start the image's. A partial match means another version of the base
    /// (the tag moved since the build), whose layers say nothing about ours.
    pub fn is_prefix(&self) -> bool {
        self.base_layers > 0 && self.matched_layers == self.base_layers
    }
}

/// The layers behind each finding, and the base image if one was found.
#[derive(Debug, Clone)]
pub struct Attribution {
    /// Per finding, in the order of the findings given to the policy: the
    /// indexes of the image layers that brought its component; empty when
    /// the component is not in our SBOM (never counted as inherited).
    pub layers: Vec<BTreeSet<usize>>,
    pub image_layers: usize,
    /// The base image, or why it could not be resolved.
    pub base: Result<BaseLayers, String>,
}

impl Attribution {
    /// Attributes `findings` to layers through the `scangate:layer`
    /// properties of `sbom` (our CycloneDX document). Findings name their
    /// component by purl (the service renumbers bom-refs); both sides are
    /// compared percent-decoded, and when the exact purl is not found, the
    /// purl without qualifiers is tried (the service may re-encode them).
    pub fn from_sbom(
        findings: &[Finding],
        sbom: &Value,
        image_layers: usize,
        base: Result<BaseLayers, String>,
    ) -> Attribution {
        let index = LayerIndex::of(sbom);
        Attribution {
            layers: findings
                .iter()
                .map(|f| index.layers_of(&f.purl).cloned().unwrap_or_default())
                .collect(),
            image_layers,
            base,
        }
    }

    /// Which findings are inherited: only when the base is a prefix of the
    /// image, and only findings whose every layer is a base layer.
    pub fn inherited(&self, findings: usize) -> Vec<bool> {
        let base = match &self.base {
            Ok(b) if b.is_prefix() => b.base_layers,
            _ => return vec![false; findings],
        };
        (0..findings)
            .map(|i| {
                self.layers
                    .get(i)
                    .is_some_and(|l| !l.is_empty() && l.iter().all(|&x| x < base))
            })
            .collect()
    }
}

/// Decoded purl → layer indexes, over every component, nested included.
struct LayerIndex {
    exact: HashMap<String, BTreeSet<usize>>,
    bare: HashMap<String, BTreeSet<usize>>,
}

impl LayerIndex {
    fn of(sbom: &Value) -> LayerIndex {
        let mut idx = LayerIndex {
            exact: HashMap::new(),
            bare: HashMap::new(),
        };
        // An explicit stack: a hostile or odd SBOM nesting deeply cannot
        // exhaust the call stack.
        let mut stack: Vec<&Value> = vec![sbom];
        while let Some(v) = stack.pop() {
            let Some(list) = v["components"].as_array() else {
                continue;
            };
            for c in list {
                stack.push(c);
                let Some(purl) = c["purl"].as_str() else {
                    continue;
                };
                let layers: BTreeSet<usize> = c["properties"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                    .iter()
                    .filter(|p| p["name"].as_str() == Some(props::LAYER))
                    .filter_map(|p| p["value"].as_str()?.parse().ok())
                    .collect();
                if layers.is_empty() {
                    continue;
                }
                let purl = percent_decode(purl);
                idx.bare
                    .entry(bare(&purl).to_owned())
                    .or_default()
                    .extend(&layers);
                idx.exact.entry(purl).or_default().extend(layers);
            }
        }
        idx
    }

    fn layers_of(&self, purl: &str) -> Option<&BTreeSet<usize>> {
        if purl.is_empty() {
            return None;
        }
        self.exact.get(purl).or_else(|| self.bare.get(bare(purl)))
    }
}

fn bare(purl: &str) -> &str {
    purl.split(['?', '#']).next().unwrap_or(purl)
}

/// One finding that only base-image layers brought.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InheritedFinding {
    pub id: String,
    pub severity: Severity,
    pub package: String,
    pub purl: String,
    /// Indexes of the image layers that brought the component.
    pub layers: Vec<usize>,
}

/// What the `base_image` section did: recorded in the decision and in
/// `record.json` (`base_image`), so a reader can see which findings were
/// judged by the base thresholds and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaseImageDecision {
    /// The base image as resolved; `None` when nothing named one.
    pub reference: Option<String>,
    pub source: Option<BaseSource>,
    pub digest: Option<String>,
    pub base_layers: usize,
    pub matched_layers: usize,
    pub image_layers: usize,
    /// Whether inherited findings were gated by the base thresholds; when
    /// false, the top-level thresholds applied to every finding.
    pub applied: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    pub thresholds: Thresholds,
    /// Distinct ids all of whose findings are inherited, suppressed included.
    pub counts: Counts,
    /// What the base thresholds were compared with.
    pub gated_counts: Counts,
    pub inherited: Vec<InheritedFinding>,
}

impl BaseImageDecision {
    pub(super) fn new(
        policy: &BaseImagePolicy,
        attribution: Option<&Attribution>,
    ) -> BaseImageDecision {
        let mut d = BaseImageDecision {
            reference: None,
            source: None,
            digest: None,
            base_layers: 0,
            matched_layers: 0,
            image_layers: attribution.map_or(0, |a| a.image_layers),
            applied: false,
            warning: None,
            thresholds: policy.thresholds,
            counts: Counts::default(),
            gated_counts: Counts::default(),
            inherited: Vec::new(),
        };
        let unapplied = "the top-level thresholds apply to every finding";
        match attribution.map(|a| &a.base) {
            None => {
                d.warning = Some(format!(
                    "base_image is set but findings were not attributed to layers: {unapplied}"
                ))
            }
            Some(Err(why)) => {
                d.reference.clone_from(&policy.reference);
                d.warning = Some(format!(
                    "the base image could not be resolved ({why}): {unapplied}"
                ));
            }
            Some(Ok(b)) => {
                d.reference = Some(b.reference.clone());
                d.source = Some(b.source);
                d.digest.clone_from(&b.digest);
                d.base_layers = b.base_layers;
                d.matched_layers = b.matched_layers;
                d.applied = b.is_prefix();
                if !d.applied {
                    d.warning = Some(format!(
                        "the image is not built on {} (its first {} of the base's {} layers match; was the base tag updated since the build?): {unapplied}",
                        b.reference, b.matched_layers, b.base_layers
                    ));
                }
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn comp(purl: &str, layers: &[usize]) -> Value {
        let mut props: Vec<Value> = layers
            .iter()
            .map(|l| json!({"name": props::LAYER, "value": l.to_string()}))
            .collect();
        props.push(json!({"name": props::LOCATION, "value": "var/lib/dpkg/status"}));
        json!({"type": "library", "purl": purl, "properties": props})
    }

    fn finding(purl: &str) -> Finding {
        Finding {
            id: "CVE-1".into(),
            purl: purl.into(),
            ..Finding::default()
        }
    }

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("sha256:{i:064x}")).collect()
    }

    #[test]
    fn prefix_of_diff_ids() {
        let image = ids(3);
        let b = BaseLayers::compare("b".into(), BaseSource::Policy, None, &image[..2], &image);
        assert_eq!((b.base_layers, b.matched_layers), (2, 2));
        assert!(b.is_prefix());
        let mut other = image[..2].to_vec();
        other[1] = "sha256:ff".into();
        let b = BaseLayers::compare("b".into(), BaseSource::Policy, None, &other, &image);
        assert_eq!(b.matched_layers, 1);
        assert!(!b.is_prefix());
        let b = BaseLayers::compare("b".into(), BaseSource::Policy, None, &[], &image);
        assert!(!b.is_prefix(), "an empty base explains nothing");
    }

    #[test]
    fn layers_by_purl_nested_encoded_and_without_qualifiers() {
        let sbom = json!({"components": [
            comp("pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64", &[0]),
            {"type": "library", "purl": "pkg:npm/outer@1", "components": [
                comp("pkg:npm/inner@2", &[1]),
            ], "properties": [{"name": props::LAYER, "value": "1"}]},
            comp("pkg:pypi/twice@1", &[0]),
            comp("pkg:pypi/twice@1", &[1]),
            {"type": "library", "purl": "pkg:generic/nolayer@1"},
        ]});
        let findings = [
            finding("pkg:deb/debian/libc6@2.36-9+deb12u4?arch=amd64"),
            finding("pkg:npm/inner@2"),
            finding("pkg:pypi/twice@1"),
            finding("pkg:deb/debian/libc6@2.36-9+deb12u4?distro=bookworm&arch=amd64"),
            finding("pkg:generic/nolayer@1"),
            finding(""),
        ];
        let base = BaseLayers::compare("b".into(), BaseSource::Annotation, None, &ids(1), &ids(2));
        let a = Attribution::from_sbom(&findings, &sbom, 2, Ok(base));
        let l: Vec<Vec<usize>> = a
            .layers
            .iter()
            .map(|s| s.iter().copied().collect())
            .collect();
        assert_eq!(
            l,
            vec![vec![0], vec![1], vec![0, 1], vec![0], vec![], vec![]]
        );
        assert_eq!(
            a.inherited(findings.len()),
            vec![true, false, false, true, false, false],
            "only components from base layers alone are inherited"
        );
    }

    #[test]
    fn nothing_is_inherited_without_a_matching_base() {
        let sbom = json!({"components": [comp("pkg:npm/a@1", &[0])]});
        let f = [finding("pkg:npm/a@1")];
        let a = Attribution::from_sbom(&f, &sbom, 2, Err("no base".into()));
        assert_eq!(a.inherited(1), vec![false]);
        let mut other = ids(1);
        other[0] = "sha256:ee".into();
        let b = BaseLayers::compare("b".into(), BaseSource::Label, None, &other, &ids(2));
        let a = Attribution::from_sbom(&f, &sbom, 2, Ok(b));
        assert_eq!(a.inherited(1), vec![false]);
    }
}
