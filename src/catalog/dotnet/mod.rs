//! TODO(session 2): dotnet cataloger, being written.

use super::{Catalog, Cataloger, OsInfo};
use crate::image::fs::FileTree;

pub struct DotnetCataloger;

impl Cataloger for DotnetCataloger {
    fn name(&self) -> &'static str {
        "dotnet"
    }

    fn wants(&self, _path: &str) -> bool {
        false
    }

    fn catalog(&self, _files: &FileTree, _os: Option<&OsInfo>, _out: &mut Catalog) {}
}
