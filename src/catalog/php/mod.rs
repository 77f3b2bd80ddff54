//! TODO(session 2): php cataloger, being written.

use super::{Catalog, Cataloger, OsInfo};
use crate::image::fs::FileTree;

pub struct PhpCataloger;

impl Cataloger for PhpCataloger {
    fn name(&self) -> &'static str {
        "php"
    }

    fn wants(&self, _path: &str) -> bool {
        false
    }

    fn catalog(&self, _files: &FileTree, _os: Option<&OsInfo>, _out: &mut Catalog) {}
}
