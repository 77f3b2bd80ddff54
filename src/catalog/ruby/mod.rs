//! TODO(session 2): ruby cataloger, being written.

use super::{Catalog, Cataloger, OsInfo};
use crate::image::fs::FileTree;

pub struct RubyCataloger;

impl Cataloger for RubyCataloger {
    fn name(&self) -> &'static str {
        "ruby"
    }

    fn wants(&self, _path: &str) -> bool {
        false
    }

    fn catalog(&self, _files: &FileTree, _os: Option<&OsInfo>, _out: &mut Catalog) {}
}
