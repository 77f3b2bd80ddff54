//! Whether a later layer deleted or overwrote a file that holds a secret.
//! The bytes stay in the earlier layer's blob either way (anyone who pulls
//! the image can extract them), but the finding should say that the
//! running container no longer sees them.
//!
//! The rules are the layer applier's (containerd's, see
//! [`crate::image::layer::apply_layer`]): an entry replaces whatever lower
//! layers had at its path; a non-directory entry also removes everything
//! lower layers had below its path (a directory replaced by a file or a
//! symlink); a directory over a directory keeps what is below it; a
//! whiteout removes the path and what is below it; an opaque directory
//! hides what lower layers had below it. Within one layer the last entry
//! for a path wins. Parent paths are compared as written: a later layer
//! that reaches the same file through a symlinked parent directory is not
//! recognised (the finding then says nothing about later layers).
//!
//! Layers are read in parallel, so a later layer may be read before the
//! earlier layer's finding is known: each layer remembers what it wrote as
//! keyed 64-bit hashes of its paths (8 bytes an entry, never the path),
//! sorted for lookup. Within a layer, only the paths that carry a finding
//! are remembered, by name.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};

use crate::risks::LaterLayer;

/// Entry hashes remembered per layer: the reader's own default entry
/// limit ([`crate::image::layer::DEFAULT_MAX_ENTRIES`]), 16 MiB at most.
pub const MAX_WRITTEN: usize = 2_000_000;

/// What one layer wrote, as hashes of its paths.
#[derive(Default)]
pub struct Written {
    /// Regular files, symlinks, hard links, devices: sorted once sealed.
    entries: Vec<u64>,
    /// Directories: sorted once sealed.
    dirs: Vec<u64>,
    /// More than [`MAX_WRITTEN`] entries: later changes may go unnoticed.
    pub overflow: bool,
}

impl Written {
    pub fn add(&mut self, hash: u64, dir: bool) {
        if self.entries.len() + self.dirs.len() >= MAX_WRITTEN {
            self.overflow = true;
            return;
        }
        if dir {
            self.dirs.push(hash);
        } else {
            self.entries.push(hash);
        }
    }

    /// Sorts for [`Written::change_to`]; called once the layer is read.
    pub fn seal(&mut self) {
        for v in [&mut self.entries, &mut self.dirs] {
            v.sort_unstable();
            v.dedup();
            v.shrink_to_fit();
        }
    }

    /// What this layer did to a lower layer's file at a path whose hash is
    /// `own` and whose parent directories hash to `parents`.
    pub fn change_to(&self, own: u64, parents: &[u64]) -> Option<LaterLayer> {
        let has = |v: &[u64], h: u64| v.binary_search(&h).is_ok();
        if has(&self.entries, own) || has(&self.dirs, own) {
            Some(LaterLayer::Overwritten)
        } else if parents.iter().any(|h| has(&self.entries, *h)) {
            Some(LaterLayer::Deleted)
        } else {
            None
        }
    }
}

/// The paths `path` lies under, shortest first: `a`, `a/b` for `a/b/c`.
pub fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

/// Keyed hashes of paths: an image cannot choose paths that collide.
#[derive(Default)]
pub struct PathHasher(RandomState);

impl PathHasher {
    pub fn hash(&self, path: &str) -> u64 {
        self.0.hash_one(path)
    }

    /// `path`'s own hash and its parents'.
    pub fn with_parents(&self, path: &str) -> (u64, Vec<u64>) {
        let parents = ancestors(path).map(|a| self.hash(a)).collect();
        (self.hash(path), parents)
    }
}

/// The paths of one layer that carry a finding, watched for a later entry
/// of the same layer (a tar may hold a path twice; the last entry wins).
#[derive(Default)]
pub struct SameLayer {
    exact: HashSet<String>,
    parents: HashSet<String>,
}

impl SameLayer {
    pub fn watch(&mut self, path: &str) {
        if self.exact.insert(path.to_owned()) {
            self.parents.extend(ancestors(path).map(str::to_owned));
        }
    }

    /// What an entry at `path` (a directory when `dir`) does to the watched
    /// files: `Overwritten` for the file at `path`, `Deleted` for the files
    /// below a `path` that is no longer a directory.
    pub fn hit(&self, path: &str, dir: bool) -> Option<LaterLayer> {
        if self.exact.contains(path) {
            Some(LaterLayer::Overwritten)
        } else if !dir && self.parents.contains(path) {
            Some(LaterLayer::Deleted)
        } else {
            None
        }
    }

    /// Whether the change `hit` reported for an entry at `entry` applies
    /// to a finding at `path`.
    pub fn applies(entry: &str, change: LaterLayer, path: &str) -> bool {
        match change {
            LaterLayer::Overwritten => path == entry,
            LaterLayer::Deleted => path
                .strip_prefix(entry)
                .is_some_and(|rest| rest.starts_with('/')),
        }
    }
}
