//! TODO(session 2): java cataloger, being written.

use super::{Catalog, Cataloger, OsInfo};
use crate::image::fs::FileTree;

pub struct JavaCataloger;

impl Cataloger for JavaCataloger {
    fn name(&self) -> &'static str {
        "java"
    }

    fn wants(&self, _path: &str) -> bool {
        false
    }

    fn catalog(&self, _files: &FileTree, _os: Option<&OsInfo>, _out: &mut Catalog) {}
}
