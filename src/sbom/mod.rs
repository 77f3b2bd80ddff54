//! CycloneDX 1.5 JSON SBOM of an image, written in the conventions of
//! Amazon's own generator (inspector-sbomgen), because that is what
//! `inspector-scan:ScanSbom` is built and tested against: the image as
//! `metadata.component` (type `container`, `image_id` and `layer_diff_id`
//! properties), an `operating-system` component, OS packages as
//! `application` components with `amazon:inspector:sbom_generator:*`
//! properties. The Debian specifics are in [`deb`], Alpine's in [`apk`],
//! language packages' (`library` components) in [`lang`].
//!
//! We add our own `scangate:*` properties: the image reference and digests
//! on the metadata component, and on every package the layer(s) that
//! brought it and the database it was read from, so that findings can be
//! attributed to base-image or application layers.
//!
//! bom-refs are `comp-N`, numbered depth first in document order (comp-1 the
//! image, comp-2 the OS); components are sorted by name, so the same image
//! always gives the same document apart from serial number and timestamp.

mod apk;
mod deb;
mod distro;
mod lang;
pub mod model;
mod rpm;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use time::OffsetDateTime;
use time::macros::format_description;

pub use model::{Bom, Component, ComponentType, Hash, Metadata, Property, Tools};

use crate::catalog::{Catalog, Ecosystem, Package};

/// Property names. The `amazon:` ones are inspector-sbomgen's.
pub mod props {
    pub const IMAGE_ID: &str = "amazon:inspector:sbom_generator:image_id";
    pub const LAYER_DIFF_ID: &str = "amazon:inspector:sbom_generator:layer_diff_id";
    pub const SOURCE_FILE_SCANNER: &str = "amazon:inspector:sbom_generator:source_file_scanner";
    pub const SOURCE_PACKAGE_COLLECTOR: &str =
        "amazon:inspector:sbom_generator:source_package_collector";
    pub const SOURCE_PATH: &str = "amazon:inspector:sbom_generator:source_path";

    pub const IMAGE_REFERENCE: &str = "scangate:image:reference";
    /// The manifest actually scanned (for an index, the chosen platform's).
    pub const IMAGE_DIGEST: &str = "scangate:image:digest";
    pub const IMAGE_INDEX_DIGEST: &str = "scangate:image:index_digest";
    /// One per layer, in layer order: the compressed blob digests.
    pub const IMAGE_LAYER_DIGEST: &str = "scangate:image:layer_digest";
    /// Index into the image's layers; repeated when a source package's
    /// binaries, or the copies of a language package, came from several
    /// layers.
    pub const LAYER: &str = "scangate:layer";
    /// The diff_id of each `scangate:layer`, in the same order: an index
    /// alone means nothing to a reader who has only the SBOM, and diff_ids
    /// are what base-image matching compares.
    pub const LAYER_DIFF_ID_OF: &str = "scangate:layer_diff_id";
    /// Path (no leading slash) of the database the package was read from;
    /// repeated for a language package installed in several places.
    pub const LOCATION: &str = "scangate:location";
    /// On a language package: the OS package (`deb:python3-six`) that
    /// installed it, so the same code is also in the SBOM as that package;
    /// repeated when its copies came from several. Absent when any copy was
    /// installed otherwise (pip, a copied jar).
    pub const OS_PACKAGE: &str = "scangate:os_package";
}

/// What the SBOM says about the image itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageMeta {
    pub reference: String,
    pub manifest_digest: String,
    pub config_digest: String,
    pub index_digest: Option<String>,
    pub layer_diff_ids: Vec<String>,
    pub layer_digests: Vec<String>,
}

/// Injectable for reproducible output in tests; defaults are a random v4
/// serial number and the current time.
#[derive(Debug, Clone, Default)]
pub struct SbomOptions {
    pub serial: Option<uuid::Uuid>,
    pub timestamp: Option<OffsetDateTime>,
}

pub fn build(catalog: &Catalog, image: &ImageMeta, opts: &SbomOptions) -> Bom {
    let serial = opts.serial.unwrap_or_else(uuid::Uuid::new_v4);
    let ts = opts.timestamp.unwrap_or_else(OffsetDateTime::now_utc);

    let mut image_c = Component::new(ComponentType::Container, &image.reference)
        .with_property(props::IMAGE_ID, &image.config_digest);
    for d in &image.layer_diff_ids {
        image_c = image_c.with_property(props::LAYER_DIFF_ID, d);
    }
    image_c = image_c
        .with_property(props::IMAGE_REFERENCE, &image.reference)
        .with_property(props::IMAGE_DIGEST, &image.manifest_digest);
    if let Some(d) = &image.index_digest {
        image_c = image_c.with_property(props::IMAGE_INDEX_DIGEST, d);
    }
    for d in &image.layer_digests {
        image_c = image_c.with_property(props::IMAGE_LAYER_DIGEST, d);
    }

    let mut tool = Component::new(ComponentType::Application, "scangate");
    tool.version = Some(env!("CARGO_PKG_VERSION").to_owned());

    let mut by_eco: BTreeMap<Ecosystem, Vec<&Package>> = BTreeMap::new();
    for p in &catalog.packages {
        by_eco.entry(p.ecosystem).or_default().push(p);
    }
    // apk and rpm packages take their distribution from os-release only
    // when it is of their family, else from their database (see distro).
    let none = Vec::new();
    let apk_os = distro::apk(
        catalog.os.as_ref(),
        by_eco.get(&Ecosystem::Apk).unwrap_or(&none),
    );
    let rpm_os = distro::rpm(
        catalog.os.as_ref(),
        by_eco.get(&Ecosystem::Rpm).unwrap_or(&none),
    );

    let mut components = Vec::new();
    // Without os-release, the distribution a package database revealed:
    // Inspector matches OS packages with the operating-system component.
    let os_component = catalog.os.as_ref().or_else(|| {
        by_eco
            .contains_key(&Ecosystem::Apk)
            .then_some(apk_os.as_ref())
            .flatten()
            .or(rpm_os
                .as_ref()
                .filter(|_| by_eco.contains_key(&Ecosystem::Rpm)))
    });
    if let Some(os) = os_component {
        let mut c = Component::new(
            ComponentType::OperatingSystem,
            // os-release(5)'s default NAME.
            os.name.as_deref().unwrap_or("Linux"),
        );
        c.version = os.version_id.clone();
        components.push(c);
    }

    let mut pkgs = Vec::new();
    for (eco, list) in by_eco {
        match eco {
            Ecosystem::Deb => pkgs.extend(deb::components(&list, catalog.os.as_ref())),
            Ecosystem::Apk => pkgs.extend(apk::components(&list, apk_os.as_ref())),
            Ecosystem::Rpm => pkgs.extend(rpm::components(&list, rpm_os.as_ref())),
            _ => pkgs.extend(lang::components(eco, &list)),
        }
    }
    lang::annotate(&mut pkgs, &catalog.notes);
    pkgs.sort_by(|a, b| (&a.name, &a.version, &a.purl).cmp(&(&b.name, &b.version, &b.purl)));
    for c in &mut pkgs {
        add_layer_diff_ids(c, &image.layer_diff_ids);
    }
    components.extend(pkgs);

    let mut n = 1;
    number(&mut image_c, &mut n);
    for c in &mut components {
        number(c, &mut n);
    }

    Bom {
        bom_format: "CycloneDX".into(),
        spec_version: "1.5".into(),
        serial_number: format!("urn:uuid:{serial}"),
        version: 1,
        metadata: Metadata {
            timestamp: timestamp(ts),
            tools: Tools {
                components: vec![tool],
            },
            component: image_c,
        },
        components,
    }
}

fn add_layer_diff_ids(c: &mut Component, diff_ids: &[String]) {
    let ids: Vec<String> = c
        .property_values(props::LAYER)
        .filter_map(|l| l.parse::<usize>().ok())
        .filter_map(|l| diff_ids.get(l).cloned())
        .collect();
    for id in ids {
        c.properties.push(Property {
            name: props::LAYER_DIFF_ID_OF.to_owned(),
            value: id,
        });
    }
    for k in &mut c.components {
        add_layer_diff_ids(k, diff_ids);
    }
}

fn number(c: &mut Component, n: &mut usize) {
    c.bom_ref = Some(format!("comp-{n}"));
    *n += 1;
    for k in &mut c.components {
        number(k, n);
    }
}

/// `2024-03-05T14:55:18Z`, as inspector-sbomgen writes it.
fn timestamp(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// Every component, nested ones included (what ScanSbom's component limit
/// counts); the image in `metadata` is not one.
pub fn component_count(bom: &Bom) -> usize {
    bom.components.iter().map(count).sum()
}

fn count(c: &Component) -> usize {
    1 + c.components.iter().map(count).sum::<usize>()
}

/// Splits a BOM into BOMs of at most `max_components` components each
/// (nested ones counted), for ScanSbom's per-call limit.
///
/// Every part repeats the metadata, serial number and the operating-system
/// component (Inspector needs the OS to match OS packages), and keeps the
/// original bom-refs, so findings from all parts merge back onto one SBOM.
/// A source package stays with its nested binaries. Only when one source
/// package alone exceeds the limit is it cut, as a last resort rather than
/// an error (a scan should not fail on a limit we can work around): each
/// piece repeats the source component with a share of its binaries, so the
/// same bom-ref can appear in several parts. `max_components` is raised to
/// what that needs (the OS components plus two) if set lower.
pub fn split(bom: &Bom, max_components: usize) -> Vec<Bom> {
    if component_count(bom) <= max_components {
        return vec![bom.clone()];
    }
    let (fixed, groups): (Vec<&Component>, Vec<&Component>) = bom
        .components
        .iter()
        .partition(|c| c.kind == ComponentType::OperatingSystem);
    let fixed_n: usize = fixed.iter().map(|c| count(c)).sum();
    let room = max_components.max(fixed_n + 2) - fixed_n;

    let mut parts: Vec<Vec<Component>> = Vec::new();
    let mut cur: Vec<Component> = Vec::new();
    let mut cur_n = 0;
    for g in groups {
        let n = count(g);
        if cur_n + n > room && !cur.is_empty() {
            parts.push(std::mem::take(&mut cur));
            cur_n = 0;
        }
        if n <= room {
            cur.push(g.clone());
            cur_n += n;
            continue;
        }
        // Alone too big: pieces of the source with a share of its binaries.
        let mut piece = shell(g);
        let mut piece_n = 1;
        for k in &g.components {
            let kn = count(k);
            if piece_n + kn > room && !piece.components.is_empty() {
                parts.push(vec![std::mem::replace(&mut piece, shell(g))]);
                piece_n = 1;
            }
            piece.components.push(k.clone());
            piece_n += kn;
        }
        cur_n = piece_n;
        cur.push(piece);
    }
    if !cur.is_empty() {
        parts.push(cur);
    }

    parts
        .into_iter()
        .map(|part| {
            let mut b = bom.clone();
            b.components = fixed.iter().map(|c| (*c).clone()).chain(part).collect();
            b
        })
        .collect()
}

/// The component without its nested ones.
fn shell(c: &Component) -> Component {
    Component {
        bom_ref: c.bom_ref.clone(),
        kind: c.kind,
        author: c.author.clone(),
        group: c.group.clone(),
        name: c.name.clone(),
        version: c.version.clone(),
        purl: c.purl.clone(),
        hashes: c.hashes.clone(),
        properties: c.properties.clone(),
        components: Vec::new(),
    }
}
