//! TODO(session 2): rust cataloger, being written.

use super::{Catalog, Cataloger, OsInfo};
use crate::image::fs::FileTree;

pub struct RustCataloger;

impl Cataloger for RustCataloger {
    fn name(&self) -> &'static str {
        "rust"
    }

    fn wants(&self, _path: &str) -> bool {
        false
    }

    fn catalog(&self, _files: &FileTree, _os: Option<&OsInfo>, _out: &mut Catalog) {}
}
