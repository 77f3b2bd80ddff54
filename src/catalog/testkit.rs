//! What the catalogers' unit tests share: running one cataloger over an
//! in-memory file tree, and the fixtures' gzip wrapping.

use std::io::Read;

use super::{Catalog, Cataloger};
use crate::image::fs::FileTree;

/// Runs `cataloger` over `files` (path, content, layer index).
pub fn run(cataloger: &dyn Cataloger, files: &[(&str, &[u8], usize)]) -> Catalog {
    let mut out = Catalog::default();
    cataloger.catalog(&FileTree::from_files(files), None, &mut out);
    out
}

/// Runs `cataloger` over `files`, all in layer `layer`.
pub fn run_in_layer(cataloger: &dyn Cataloger, files: &[(&str, &[u8])], layer: usize) -> Catalog {
    let files: Vec<_> = files.iter().map(|(p, d)| (*p, *d, layer)).collect();
    run(cataloger, &files)
}

/// (name, version) of every package found, in catalog order.
pub fn pairs(c: &Catalog) -> Vec<(&str, &str)> {
    c.packages
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_str()))
        .collect()
}

/// A gzip-wrapped fixture (binaries are stored compressed in the repository).
pub fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .expect("fixture is valid gzip");
    out
}
