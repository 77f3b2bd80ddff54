//! TODO(session 2): rpm packages the way inspector-sbomgen writes them.

use super::model::Component;
use crate::catalog::{OsInfo, Package};

pub(super) fn components(_pkgs: &[&Package], _os: Option<&OsInfo>) -> Vec<Component> {
    Vec::new()
}
