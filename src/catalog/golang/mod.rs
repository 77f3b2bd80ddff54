//! TODO(session 2): golang cataloger, being written.

use super::{Catalog, Cataloger, OsInfo};
use crate::image::fs::FileTree;

pub struct GoCataloger;

impl Cataloger for GoCataloger {
    fn name(&self) -> &'static str {
        "golang"
    }

    fn wants(&self, _path: &str) -> bool {
        false
    }

    fn catalog(&self, _files: &FileTree, _os: Option<&OsInfo>, _out: &mut Catalog) {}
}
