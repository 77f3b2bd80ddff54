//! Reading layer tarballs into per-layer change sets, and merging those
//! change sets in layer order into the squashed [`FileTree`].
//!
//! A layer is read in one pass from any `Read` (a registry blob stream
//! bridged from async, or a file): compressed bytes are hashed and counted
//! as they flow, decompressed by magic bytes, walked as tar, and only the
//! entries that can matter to the final tree are remembered. Nothing is ever
//! written to disk, so a hostile path can do no harm beyond being skipped.
//!
//! Reading (parallel, any order) and merging (sequential, in layer order)
//! are separate so that layers can download concurrently while whiteouts
//! still apply exactly as an overlay filesystem would apply them. A layer's
//! changes reach the tree only after its digest has been verified.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

use super::fs::{FileEntry, FileTree};

/// Warnings beyond this many per layer are summarised, so that a hostile
/// layer with a million bad entries cannot flood the report.
const MAX_WARNINGS_PER_LAYER: usize = 20;
/// Hard links point at regular files in valid archives; a chain of links
/// (which some writers produce) is followed this far.
const MAX_HARDLINK_HOPS: usize = 8;

/// Decides which regular files of a layer are kept, and shrinks them as
/// they are read.
///
/// Most files are wanted for their path (package databases). Some are
/// wanted for their content wherever they are (Go and Rust executables):
/// every regular file not wanted by path has its first
/// [`sniff_len`](FileSelector::sniff_len) bytes shown to
/// [`sniff`](FileSelector::sniff). All of them, not only those with an
/// exec bit: the reader decompresses every entry's bytes to get past it
/// anyway, so looking at the head costs a copy of a few bytes, and whether
/// the mode matters is the selector's business (it gets the mode).
///
/// Any plain `Fn(&str) -> bool` is a selector that keeps files by path.
pub trait FileSelector: Send + Sync {
    /// Whether the file at `path` (normalised, no leading `/`) is kept.
    fn wants(&self, path: &str) -> bool;
    /// How many leading bytes [`sniff`](FileSelector::sniff) needs; 0 turns
    /// sniffing off.
    fn sniff_len(&self) -> usize {
        0
    }
    /// Whether a regular file not wanted by path is kept for its content.
    /// `head` is at most [`sniff_len`](FileSelector::sniff_len) bytes (fewer
    /// for a short file), `mode` the tar mode.
    fn sniff(&self, _path: &str, _mode: u32, _head: &[u8]) -> bool {
        false
    }
    /// Shrinks a kept file right after it is read, before it waits for the
    /// merge. `sniffed` says why it was kept. `None` drops it: a sniffed
    /// file turned out to hold nothing the selector reads (the file still
    /// hides what lower layers had at its path).
    fn reduce(&self, _path: &str, _mode: u32, _sniffed: bool, data: Vec<u8>) -> Option<Vec<u8>> {
        Some(data)
    }
}

impl<F: Fn(&str) -> bool + Send + Sync> FileSelector for F {
    fn wants(&self, path: &str) -> bool {
        self(path)
    }
}

/// Image-wide budgets shared by the layers being read in parallel, and the
/// switch that stops them when the pull is abandoned.
#[derive(Debug)]
pub struct Budget {
    max_file_bytes: u64,
    max_sniffed_bytes: u64,
    max_decompressed: u64,
    max_kept: u64,
    decompressed: AtomicU64,
    kept: AtomicU64,
    cancelled: AtomicBool,
}

impl Budget {
    /// `max_file_bytes` caps a file kept for its path, `max_sniffed_bytes`
    /// one read whole because its content was sniffed (an executable); both
    /// are read into memory before [`FileSelector::reduce`] shrinks them.
    pub fn new(
        max_file_bytes: u64,
        max_sniffed_bytes: u64,
        max_decompressed: u64,
        max_kept: u64,
    ) -> Arc<Budget> {
        Arc::new(Budget {
            max_file_bytes,
            max_sniffed_bytes,
            max_decompressed,
            max_kept,
            decompressed: AtomicU64::new(0),
            kept: AtomicU64::new(0),
            cancelled: AtomicBool::new(false),
        })
    }

    /// Makes every reader still running fail at its next read.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub fn decompressed_bytes(&self) -> u64 {
        self.decompressed.load(Ordering::Relaxed)
    }

    pub fn kept_bytes(&self) -> u64 {
        self.kept.load(Ordering::Relaxed)
    }
}

/// What is known about a layer before reading it.
#[derive(Debug, Clone)]
pub struct LayerSource {
    /// Expected `sha256:` digest of the bytes as stored (compressed).
    /// Empty when the store has no blob digest (a `docker save` archive):
    /// then `diff_id` must be set, and the blob digest is only computed
    /// ([`LayerChanges::digest`]).
    pub digest: String,
    /// Expected `sha256:` digest of the uncompressed tar, checked when set.
    pub diff_id: Option<String>,
    pub media_type: Option<String>,
    /// Declared size; more bytes than this is an error.
    pub size: Option<u64>,
}

/// Why reading a layer failed. The caller knows the layer and the image and
/// turns this into an [`super::ImageError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerFailure {
    /// The byte source failed (network); worth retrying from the start.
    Source(String),
    Cancelled,
    DigestMismatch {
        actual: String,
    },
    /// The uncompressed tar does not have the expected `diff_id`.
    DiffIdMismatch {
        actual: String,
    },
    /// More bytes than the descriptor's size.
    Oversize {
        declared: u64,
    },
    /// Decompressed or kept bytes over the image-wide budget.
    Limit(String),
    Corrupt(String),
    Unsupported(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    /// A directory replaces a lower file or symlink at its path, nothing more.
    Dir,
    /// A non-directory that is not kept (unwanted or oversized file, device,
    /// FIFO, unusable link): it still hides what lower layers had there.
    Replaced,
    File(Vec<u8>),
    Symlink(String),
    /// A hard link whose own path is wanted, to the (cleaned) target path.
    HardLink(String),
}

/// Everything one layer does to the layers below it.
#[derive(Debug, Default)]
pub struct LayerChanges {
    /// `.wh.NAME` entries: paths removed, with their subtrees, from lower layers.
    whiteouts: Vec<String>,
    /// Directories whose lower contents are hidden (`.wh..wh..opq`).
    opaque_dirs: Vec<String>,
    /// The last entry for each path wins, as when extracting.
    changes: BTreeMap<String, Change>,
    pub warnings: Vec<String>,
    suppressed_warnings: usize,
    /// Bytes after decompression, and bytes of file data kept.
    pub decompressed_bytes: u64,
    pub kept_bytes: u64,
    pub entries: u64,
    /// `sha256:` digest of the blob as read (compressed bytes).
    pub digest: String,
    /// How the blob was compressed (found from its magic bytes).
    pub compression: Compression,
}

/// Layer compression, as the magic bytes show it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Zstd,
}

impl LayerChanges {
    fn warn(&mut self, msg: String) {
        if self.warnings.len() < MAX_WARNINGS_PER_LAYER {
            self.warnings.push(msg);
        } else {
            self.suppressed_warnings += 1;
        }
    }
}

/// Reads one layer blob. `selector` decides which regular files are kept
/// and shrinks them; symlinks are always kept. On failure this layer's share of the budget is
/// given back, so that a retry starts clean.
pub fn read_layer<R: Read>(
    reader: R,
    source: &LayerSource,
    selector: &dyn FileSelector,
    budget: &Budget,
) -> Result<LayerChanges, LayerFailure> {
    let mut verifier = Verifier {
        inner: reader,
        hasher: Sha256::new(),
        read: 0,
        expected: &source.digest,
        declared: source.size,
        failure: None,
        budget,
        actual: None,
    };
    let mut changes = LayerChanges::default();
    let walked = walk(&mut verifier, source, selector, budget, &mut changes);
    let outcome = match walked {
        // The tar end marker may come before the end of the blob (padding,
        // the gzip trailer): the digest covers every byte, so read them all.
        Ok(()) => match io::copy(&mut verifier, &mut io::sink()) {
            Ok(_) => verifier.finish(),
            Err(e) => Err(verifier
                .failure
                .take()
                .unwrap_or_else(|| LayerFailure::Source(e.to_string()))),
        },
        Err(found @ (LayerFailure::Corrupt(_) | LayerFailure::DiffIdMismatch { .. })) => {
            if let Some(f) = verifier.failure.take() {
                // The source failing explains the parse error.
                Err(f)
            } else {
                // Wrong bytes (blob digest mismatch) explain a parse error
                // or a wrong diff_id better than they explain themselves.
                match io::copy(&mut verifier, &mut io::sink()) {
                    Err(e) => Err(verifier
                        .failure
                        .take()
                        .unwrap_or_else(|| LayerFailure::Source(e.to_string()))),
                    Ok(_) => verifier.finish().and(Err(found)),
                }
            }
        }
        Err(other) => Err(verifier.failure.take().unwrap_or(other)),
    };
    match outcome {
        Ok(()) => {
            changes.digest = verifier.actual.take().unwrap_or_default();
            if changes.suppressed_warnings > 0 {
                let n = changes.suppressed_warnings;
                changes
                    .warnings
                    .push(format!("... and {n} more warnings like these"));
            }
            Ok(changes)
        }
        Err(f) => {
            budget
                .decompressed
                .fetch_sub(changes.decompressed_bytes, Ordering::Relaxed);
            budget.kept.fetch_sub(changes.kept_bytes, Ordering::Relaxed);
            Err(f)
        }
    }
}

fn walk<R: Read>(
    verifier: &mut Verifier<'_, R>,
    source: &LayerSource,
    selector: &dyn FileSelector,
    budget: &Budget,
    changes: &mut LayerChanges,
) -> Result<(), LayerFailure> {
    let corrupt = |e: io::Error| LayerFailure::Corrupt(e.to_string());
    let mut magic = [0u8; 6];
    let mut got = 0;
    while got < magic.len() {
        match verifier.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(corrupt(e)),
        }
    }
    let magic = &magic[..got];
    let compression = detect_compression(magic, source.media_type.as_deref())?;
    changes.compression = compression;
    let compressed = io::Cursor::new(magic.to_vec()).chain(&mut *verifier);
    let decompressed: Box<dyn Read + '_> = match compression {
        Compression::Gzip => Box::new(MultiGzDecoder::new(compressed)),
        // A streaming decoder: memory is its window, whatever the layer size.
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(compressed).map_err(corrupt)?)
        }
        Compression::None => Box::new(compressed),
    };
    let limit_hit = Cell::new(false);
    let mut counted = Counted {
        inner: decompressed,
        count: 0,
        budget,
        limit_hit: &limit_hit,
        hasher: source.diff_id.as_ref().map(|_| Sha256::new()),
    };
    let mut result = read_entries(&mut counted, selector, budget, changes);
    if let Some(expected) = &source.diff_id {
        // The diff_id covers the whole tar, padding after the end marker
        // too; and wrong content explains a parse error better than the
        // parse error does.
        let drained = io::copy(&mut counted, &mut io::sink());
        match (&result, drained) {
            (Ok(()), Err(e)) => result = Err(corrupt(e)),
            (Ok(()) | Err(LayerFailure::Corrupt(_)), Ok(_)) => {
                let hasher = counted.hasher.take().unwrap_or_default();
                let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
                if &actual != expected {
                    result = Err(LayerFailure::DiffIdMismatch { actual });
                }
            }
            _ => {}
        }
    }
    changes.decompressed_bytes = counted.count;
    if limit_hit.get() {
        return Err(LayerFailure::Limit(format!(
            "the layers decompress to more than {} bytes",
            budget.max_decompressed
        )));
    }
    result
}

/// The magic bytes decide over the media type, because some tools label
/// uncompressed layers as gzip and the reverse.
fn detect_compression(
    magic: &[u8],
    _media_type: Option<&str>,
) -> Result<Compression, LayerFailure> {
    if magic.starts_with(&[0x1f, 0x8b]) {
        return Ok(Compression::Gzip);
    }
    if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Ok(Compression::Zstd);
    }
    if magic.starts_with(b"BZh") || magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Err(LayerFailure::Unsupported(
            "bzip2/xz-compressed layers are not supported; push the image with gzip layers".into(),
        ));
    }
    Ok(Compression::None)
}

fn read_entries<R: Read>(
    reader: R,
    selector: &dyn FileSelector,
    budget: &Budget,
    changes: &mut LayerChanges,
) -> Result<(), LayerFailure> {
    let corrupt = |e: io::Error| LayerFailure::Corrupt(e.to_string());
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        changes.entries += 1;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(path) = clean_path(&raw_path) else {
            changes.warn(format!(
                "skipped entry {raw_path:?}: its path leaves the image root"
            ));
            continue;
        };
        if path.is_empty() {
            continue;
        }
        let (parent, name) = match path.rsplit_once('/') {
            Some((p, n)) => (p, n),
            None => ("", path.as_str()),
        };
        if let Some(hidden) = name.strip_prefix(".wh.") {
            if hidden == ".wh..opq" {
                changes.opaque_dirs.push(parent.to_owned());
            } else if !hidden.starts_with(".wh.") && !hidden.is_empty() {
                changes.whiteouts.push(join(parent, hidden));
            }
            // Other `.wh..wh.` names are aufs bookkeeping, not content.
            continue;
        }
        let kind = entry.header().entry_type();
        let change = match kind {
            tar::EntryType::Directory => Change::Dir,
            tar::EntryType::Symlink => match entry.link_name_bytes().filter(|t| !t.is_empty()) {
                Some(t) => Change::Symlink(String::from_utf8_lossy(&t).into_owned()),
                None => {
                    changes.warn(format!("skipped symlink {path:?}: it has no target"));
                    Change::Replaced
                }
            },
            tar::EntryType::Link => {
                let raw = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                match clean_path(&raw).filter(|t| !t.is_empty()) {
                    Some(target) if selector.wants(&path) => Change::HardLink(target),
                    Some(_) => Change::Replaced,
                    None => {
                        changes.warn(format!(
                            "skipped hard link {path:?}: its target {raw:?} leaves the image root"
                        ));
                        Change::Replaced
                    }
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                read_file(&mut entry, &path, selector, budget, changes)?
            }
            tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => continue,
            _ => Change::Replaced,
        };
        changes.changes.insert(path, change);
    }
    Ok(())
}

/// The change for a regular file: kept (read whole, then reduced) when the
/// selector wants it by path or by its head, otherwise just a replacement.
///
/// A file is held whole only between its read and its reduction, so a
/// layer reader holds at most one unreduced file: peak memory is about
/// `max_sniffed_bytes` (or `max_file_bytes`) per layer read in parallel,
/// plus the reduced files kept (`max_kept`, image-wide).
fn read_file<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    path: &str,
    selector: &dyn FileSelector,
    budget: &Budget,
    changes: &mut LayerChanges,
) -> Result<Change, LayerFailure> {
    let corrupt = |e: io::Error| LayerFailure::Corrupt(e.to_string());
    let size = entry.size();
    let mode = entry.header().mode().unwrap_or(0);
    let mut head = Vec::new();
    let sniffed = if selector.wants(path) {
        false
    } else {
        let len = selector
            .sniff_len()
            .min(usize::try_from(size).unwrap_or(usize::MAX));
        if len == 0 {
            return Ok(Change::Replaced);
        }
        head.resize(len, 0);
        entry.read_exact(&mut head).map_err(corrupt)?;
        if !selector.sniff(path, mode, &head) {
            return Ok(Change::Replaced);
        }
        true
    };
    let (cap, what) = if sniffed {
        (
            budget.max_sniffed_bytes,
            "the limit for executables read for their content",
        )
    } else {
        (budget.max_file_bytes, "the per-file limit")
    };
    if size > cap {
        changes.warn(format!(
            "skipped {path}: {size} bytes is over {what} of {cap} bytes"
        ));
        return Ok(Change::Replaced);
    }
    let mut data = head;
    // `size` is within the cap checked above: reserving it exactly avoids
    // the doubling growth of `read_to_end`, which would hold up to twice a
    // binary's size.
    data.reserve_exact((size - data.len() as u64) as usize);
    entry
        .take(size - data.len() as u64)
        .read_to_end(&mut data)
        .map_err(corrupt)?;
    let Some(data) = selector.reduce(path, mode, sniffed, data) else {
        return Ok(Change::Replaced);
    };
    let kept = data.len() as u64;
    let total = budget.kept.fetch_add(kept, Ordering::Relaxed) + kept;
    changes.kept_bytes += kept;
    if total > budget.max_kept {
        return Err(LayerFailure::Limit(format!(
            "the files kept for scanning exceed {} bytes",
            budget.max_kept
        )));
    }
    Ok(Change::File(data))
}

/// Lexically resolves `.` and `..` and drops leading `/` (absolute entries
/// are rooted in the image, as container runtimes extract them). `None`
/// when `..` would climb above the root.
pub fn clean_path(raw: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}

/// Applies one layer's changes on top of the layers below it, which are
/// already merged in `tree`: whiteouts first, because they only ever hide
/// lower content, then this layer's own entries.
pub fn apply_layer(
    tree: &mut FileTree,
    layer: LayerChanges,
    layer_index: usize,
    warnings: &mut Vec<String>,
) {
    for dir in &layer.opaque_dirs {
        tree.remove_below(dir);
    }
    for path in &layer.whiteouts {
        tree.remove(path);
        tree.remove_below(path);
    }
    for (path, change) in &layer.changes {
        tree.remove(path);
        if *change != Change::Dir {
            // A non-directory replaces a whole lower directory.
            tree.remove_below(path);
        }
    }

    let layer_symlinks: BTreeSet<String> = layer
        .changes
        .iter()
        .filter(|(_, c)| matches!(c, Change::Symlink(_)))
        .map(|(p, _)| p.clone())
        .collect();
    let through_symlink = |tree: &FileTree, path: &str| -> Option<String> {
        path.match_indices('/')
            .map(|(i, _)| &path[..i])
            .find(|a| layer_symlinks.contains(*a) || tree.symlinks.contains_key(*a))
            .map(str::to_owned)
    };

    // Hard-link data is copied before files are moved into the tree.
    let mut linked: Vec<(String, Vec<u8>)> = Vec::new();
    for (path, change) in &layer.changes {
        let Change::HardLink(target) = change else {
            continue;
        };
        let mut t = target;
        let mut data = None;
        for _ in 0..MAX_HARDLINK_HOPS {
            match layer.changes.get(t) {
                Some(Change::File(d)) => data = Some(d),
                Some(Change::HardLink(next)) => {
                    t = next;
                    continue;
                }
                Some(_) => {}
                None => data = tree.files.get(t).map(|f| &f.data),
            }
            break;
        }
        match data {
            Some(d) => linked.push((path.clone(), d.clone())),
            None => warnings.push(format!(
                "hard link {path} → {target}: the target was not kept, so the link is missing"
            )),
        }
    }
    let mut skipped = 0usize;
    let mut skip = |warnings: &mut Vec<String>, path: &str, via: &str| {
        skipped += 1;
        if skipped <= MAX_WARNINGS_PER_LAYER {
            warnings.push(format!(
                "skipped entry {path}: it goes through the symlink {via}, which a safe \
                 extraction does not follow"
            ));
        }
    };
    for (path, data) in linked {
        match through_symlink(tree, &path) {
            Some(via) => skip(warnings, &path, &via),
            None => {
                tree.files.insert(
                    path,
                    FileEntry {
                        data,
                        layer: layer_index,
                    },
                );
            }
        }
    }
    let mut inserts = Vec::new();
    for (path, change) in layer.changes {
        if matches!(change, Change::File(_) | Change::Symlink(_)) {
            if let Some(via) = through_symlink(tree, &path) {
                skip(warnings, &path, &via);
            } else {
                inserts.push((path, change));
            }
        }
    }
    for (path, change) in inserts {
        match change {
            Change::File(data) => {
                tree.files.insert(
                    path,
                    FileEntry {
                        data,
                        layer: layer_index,
                    },
                );
            }
            Change::Symlink(target) => {
                tree.symlinks.insert(path, target);
            }
            _ => {}
        }
    }
    if skipped > MAX_WARNINGS_PER_LAYER {
        warnings.push(format!(
            "... and {} more entries skipped for going through symlinks",
            skipped - MAX_WARNINGS_PER_LAYER
        ));
    }
}

/// Hashes and counts the compressed bytes and remembers why the source
/// failed, because gzip and tar wrap source errors beyond recognition.
struct Verifier<'b, R> {
    inner: R,
    hasher: Sha256,
    read: u64,
    expected: &'b str,
    declared: Option<u64>,
    failure: Option<LayerFailure>,
    budget: &'b Budget,
    /// The digest computed by `finish`.
    actual: Option<String>,
}

impl<R: Read> Read for Verifier<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.budget.cancelled.load(Ordering::Relaxed) {
            self.failure = Some(LayerFailure::Cancelled);
            return Err(io::Error::other("cancelled"));
        }
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                self.failure = Some(LayerFailure::Source(e.to_string()));
                return Err(e);
            }
        };
        self.read += n as u64;
        if let Some(declared) = self.declared
            && self.read > declared
        {
            self.failure = Some(LayerFailure::Oversize { declared });
            return Err(io::Error::other("layer is larger than its descriptor says"));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

impl<R> Verifier<'_, R> {
    fn finish(&mut self) -> Result<(), LayerFailure> {
        let actual = format!(
            "sha256:{}",
            hex::encode(std::mem::take(&mut self.hasher).finalize())
        );
        // An empty expectation: the store has no blob digest, the caller
        // checks the diff_id instead.
        if !self.expected.is_empty() && actual != self.expected {
            return Err(LayerFailure::DigestMismatch { actual });
        }
        self.actual = Some(actual);
        Ok(())
    }
}

/// Counts decompressed bytes against the image-wide budget, so that a
/// decompression bomb stops early instead of running for hours.
struct Counted<'a, R> {
    inner: R,
    count: u64,
    budget: &'a Budget,
    limit_hit: &'a Cell<bool>,
    /// Hashes the uncompressed tar when its diff_id is to be checked.
    hasher: Option<Sha256>,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        let total = self
            .budget
            .decompressed
            .fetch_add(n as u64, Ordering::Relaxed)
            + n as u64;
        if total > self.budget.max_decompressed {
            self.limit_hit.set(true);
            return Err(io::Error::other("decompressed size limit reached"));
        }
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    /// A tar entry for test layers; paths are written verbatim (no checks),
    /// so hostile archives can be built.
    pub enum E<'a> {
        File(&'a str, &'a [u8]),
        /// A regular file with mode 0755.
        Exec(&'a str, &'a [u8]),
        Dir(&'a str),
        Sym(&'a str, &'a str),
        Hard(&'a str, &'a str),
        Fifo(&'a str),
    }

    pub fn tar_bytes(entries: &[E<'_>]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_mtime(0);
            let (path, data): (&str, &[u8]) = match e {
                E::File(p, d) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    (p, d)
                }
                E::Exec(p, d) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(0o755);
                    (p, d)
                }
                E::Dir(p) => {
                    h.set_entry_type(tar::EntryType::Directory);
                    (p, b"")
                }
                E::Sym(p, t) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_link_name_literal(t).unwrap();
                    (p, b"")
                }
                E::Hard(p, t) => {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_link_name_literal(t).unwrap();
                    (p, b"")
                }
                E::Fifo(p) => {
                    h.set_entry_type(tar::EntryType::Fifo);
                    (p, b"")
                }
            };
            let name = &mut h.as_old_mut().name;
            name.fill(0);
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, data).unwrap();
        }
        b.into_inner().unwrap()
    }

    pub fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    pub fn digest(data: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(data)))
    }

    fn source(blob: &[u8]) -> LayerSource {
        LayerSource {
            digest: digest(blob),
            media_type: Some("application/vnd.oci.image.layer.v1.tar+gzip".into()),
            size: Some(blob.len() as u64),
            diff_id: None,
        }
    }

    fn budget() -> Arc<Budget> {
        Budget::new(64 << 20, 256 << 20, 1 << 30, 1 << 30)
    }

    fn want_all(_: &str) -> bool {
        true
    }

    /// Reads and merges layers as `pull` does, minus the network.
    fn squash(layers: &[Vec<u8>], wants: &dyn FileSelector) -> (FileTree, Vec<String>) {
        let budget = budget();
        let mut tree = FileTree::default();
        let mut warnings = Vec::new();
        for (i, blob) in layers.iter().enumerate() {
            let changes = read_layer(&blob[..], &source(blob), wants, &budget).unwrap();
            warnings.extend(changes.warnings.clone());
            apply_layer(&mut tree, changes, i, &mut warnings);
        }
        (tree, warnings)
    }

    fn data<'a>(t: &'a FileTree, p: &str) -> Option<&'a [u8]> {
        t.files.get(p).map(|f| f.data.as_slice())
    }

    #[test]
    fn whiteouts_delete_lower_files_symlinks_and_subtrees() {
        let l0 = gzip(&tar_bytes(&[
            E::Dir("etc/"),
            E::File("etc/a", b"a0"),
            E::File("etc/b", b"b0"),
            E::Sym("etc/link", "a"),
            E::Dir("opt/app/"),
            E::File("opt/app/x", b"x"),
            E::File("opt/app/sub/y", b"y"),
            E::File("opt/keep", b"k"),
        ]));
        let l1 = gzip(&tar_bytes(&[
            E::File("etc/.wh.a", b""),
            E::File("etc/.wh.link", b""),
            E::File("opt/.wh.app", b""),
            // A whiteout hides only lower layers: this layer re-adds etc/b.
            E::File("etc/.wh.b", b""),
            E::File("etc/b", b"b1"),
        ]));
        let (t, w) = squash(&[l0, l1], &want_all);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(data(&t, "etc/a"), None);
        assert!(!t.symlinks.contains_key("etc/link"));
        assert_eq!(data(&t, "opt/app/x"), None);
        assert_eq!(data(&t, "opt/app/sub/y"), None);
        assert_eq!(data(&t, "opt/keep"), Some(&b"k"[..]));
        assert_eq!(data(&t, "etc/b"), Some(&b"b1"[..]));
        assert_eq!(t.files["etc/b"].layer, 1);
        assert_eq!(t.files["opt/keep"].layer, 0);
    }

    #[test]
    fn opaque_dir_hides_lower_contents_but_keeps_own() {
        let l0 = gzip(&tar_bytes(&[
            E::File("var/lib/dpkg/status", b"old"),
            E::File("var/lib/dpkg/info/x.list", b"x"),
            E::Sym("var/lib/dpkg/alt", "/x"),
            E::File("var/lib/other", b"o"),
        ]));
        let l1 = gzip(&tar_bytes(&[
            E::Dir("var/lib/dpkg/"),
            E::File("var/lib/dpkg/.wh..wh..opq", b""),
            E::File("var/lib/dpkg/status", b"new"),
        ]));
        let (t, _) = squash(&[l0, l1], &want_all);
        assert_eq!(data(&t, "var/lib/dpkg/status"), Some(&b"new"[..]));
        assert_eq!(data(&t, "var/lib/dpkg/info/x.list"), None);
        assert!(t.symlinks.is_empty());
        assert_eq!(data(&t, "var/lib/other"), Some(&b"o"[..]));

        // Opaque entry listed after the layer's own file still keeps it.
        let l0 = gzip(&tar_bytes(&[E::File("d/old", b"1")]));
        let l1 = gzip(&tar_bytes(&[
            E::File("d/new", b"2"),
            E::File("d/.wh..wh..opq", b""),
        ]));
        let (t, _) = squash(&[l0, l1], &want_all);
        assert_eq!(data(&t, "d/old"), None);
        assert_eq!(data(&t, "d/new"), Some(&b"2"[..]));
    }

    #[test]
    fn replacement_rules_between_files_symlinks_and_dirs() {
        let l0 = gzip(&tar_bytes(&[
            E::File("a", b"file"),
            E::Sym("b", "target"),
            E::Sym("c", "x"),
            E::File("d/inner", b"i"),
            E::File("e", b"e"),
            E::File("f", b"f"),
        ]));
        let l1 = gzip(&tar_bytes(&[
            E::Sym("a", "elsewhere"),  // symlink replaces file
            E::File("b", b"now file"), // file replaces symlink
            E::Dir("c/"),              // dir replaces symlink
            E::File("d", b"d"),        // file replaces a directory
            E::Fifo("e"),              // fifo replaces a file
        ]));
        let wants = |p: &str| p != "f2";
        let (t, _) = squash(&[l0, l1], &wants);
        assert_eq!(data(&t, "a"), None);
        assert_eq!(t.symlinks["a"], "elsewhere");
        assert_eq!(data(&t, "b"), Some(&b"now file"[..]));
        assert!(!t.symlinks.contains_key("b"));
        assert!(!t.symlinks.contains_key("c"));
        assert_eq!(data(&t, "d/inner"), None);
        assert_eq!(data(&t, "d"), Some(&b"d"[..]));
        assert_eq!(data(&t, "e"), None);
        assert_eq!(data(&t, "f"), Some(&b"f"[..]));
    }

    #[test]
    fn unwanted_file_still_hides_lower_wanted_one_and_last_entry_wins() {
        // Same path twice in one layer: the later entry wins.
        let l0 = gzip(&tar_bytes(&[
            E::File("x", b"1"),
            E::File("x", b"2"),
            E::Sym("y", "a"),
            E::File("y", b"file"),
        ]));
        let (t, _) = squash(&[l0], &want_all);
        assert_eq!(data(&t, "x"), Some(&b"2"[..]));
        assert!(!t.symlinks.contains_key("y"));
    }

    #[test]
    fn only_wanted_files_are_kept_but_all_symlinks() {
        let l0 = gzip(&tar_bytes(&[
            E::File("usr/lib/os-release", b"ID=debian\n"),
            E::Sym("etc/os-release", "../usr/lib/os-release"),
            E::File("usr/bin/big", b"binary"),
            E::Sym("usr/bin/sh", "dash"),
        ]));
        let wants = |p: &str| p.ends_with("os-release");
        let (t, _) = squash(&[l0], &wants);
        assert_eq!(t.files.len(), 1);
        assert_eq!(t.symlinks.len(), 2);
        let (real, f) = t.get("etc/os-release").unwrap();
        assert_eq!(real, "usr/lib/os-release");
        assert_eq!(f.data, b"ID=debian\n");
    }

    #[test]
    fn hostile_paths_are_skipped_or_rooted() {
        let l0 = gzip(&tar_bytes(&[
            E::File("../../etc/passwd", b"evil"),
            E::File("a/../../x", b"evil"),
            E::File("/etc/shadow", b"rooted"),
            E::File("./usr/./lib/../share/f", b"ok"),
            E::Hard("etc/hl", "../../../etc/passwd"),
            E::Sym("evil", "/etc"),
        ]));
        let l1 = gzip(&tar_bytes(&[
            // Writing through a symlink planted by a lower layer.
            E::File("evil/passwd", b"through symlink"),
        ]));
        let (t, w) = squash(&[l0, l1], &want_all);
        assert_eq!(
            t.files.keys().collect::<Vec<_>>(),
            vec!["etc/shadow", "usr/share/f"]
        );
        assert_eq!(data(&t, "etc/shadow"), Some(&b"rooted"[..]));
        assert!(
            w.iter().any(|w| w.contains("\"../../etc/passwd\"")),
            "{w:?}"
        );
        assert!(w.iter().any(|w| w.contains("\"a/../../x\"")), "{w:?}");
        assert!(w.iter().any(|w| w.contains("etc/hl")), "{w:?}");
        assert!(w.iter().any(|w| w.contains("evil/passwd")), "{w:?}");
        assert!(t.get("evil/passwd").is_none());

        // A symlink and a file below it in the same layer.
        let l0 = gzip(&tar_bytes(&[E::Sym("s", "/etc"), E::File("s/x", b"1")]));
        let (t, w) = squash(&[l0], &want_all);
        assert!(t.files.is_empty());
        assert_eq!(w.len(), 1, "{w:?}");
    }

    #[test]
    fn hard_links_copy_kept_targets() {
        let l0 = gzip(&tar_bytes(&[
            E::File("usr/bin/python3.11", b"py"),
            E::File("lib/libfoo.so.1", b"foo"),
        ]));
        let l1 = gzip(&tar_bytes(&[
            E::File("opt/real", b"real"),
            E::Hard("opt/link", "opt/real"),
            E::Hard("opt/link2", "./opt/link"),
            E::Hard("usr/bin/python3", "usr/bin/python3.11"),
            E::Hard("lib/libfoo.so", "lib/libfoo.so.1"),
        ]));
        // libfoo.so.1 is not wanted, so a link to it cannot be filled in.
        let wants = |p: &str| p != "lib/libfoo.so.1";
        let (t, w) = squash(&[l0, l1], &wants);
        assert_eq!(data(&t, "opt/link"), Some(&b"real"[..]));
        assert_eq!(data(&t, "opt/link2"), Some(&b"real"[..]));
        assert_eq!(t.files["opt/link"].layer, 1);
        // Target in a lower layer.
        assert_eq!(data(&t, "usr/bin/python3"), Some(&b"py"[..]));
        assert_eq!(data(&t, "lib/libfoo.so"), None);
        assert!(w.iter().any(|w| w.contains("lib/libfoo.so")), "{w:?}");
    }

    #[test]
    fn uncompressed_and_mislabelled_layers_are_read() {
        let tar = tar_bytes(&[E::File("f", b"1")]);
        let budget = budget();
        let mut src = source(&tar);
        src.media_type = Some("application/vnd.docker.image.rootfs.diff.tar.gzip".into());
        let c = read_layer(&tar[..], &src, &want_all, &budget).unwrap();
        assert_eq!(c.entries, 1);
        let gz = gzip(&tar);
        let mut src = source(&gz);
        src.media_type = Some("application/vnd.oci.image.layer.v1.tar".into());
        assert!(read_layer(&gz[..], &src, &want_all, &budget).is_ok());
        // Empty blob: an empty layer.
        let c = read_layer(&b""[..], &source(b""), &want_all, &budget).unwrap();
        assert_eq!(c.entries, 0);
    }

    #[test]
    fn digest_mismatch_is_detected() {
        let blob = gzip(&tar_bytes(&[E::File("f", b"1")]));
        let mut src = source(&blob);
        src.digest = digest(b"something else");
        let budget = budget();
        let err = read_layer(&blob[..], &src, &want_all, &budget).unwrap_err();
        assert_eq!(
            err,
            LayerFailure::DigestMismatch {
                actual: digest(&blob)
            }
        );
        // Nothing of the failed layer stays in the budget.
        assert_eq!(budget.kept_bytes(), 0);
        assert_eq!(budget.decompressed_bytes(), 0);
    }

    #[test]
    fn corrupt_gzip_with_right_digest_is_corrupt() {
        let mut blob = gzip(&tar_bytes(&[E::File("f", &[7u8; 10_000])]));
        let mid = blob.len() / 2;
        blob[mid] ^= 0xff;
        blob[mid + 1] ^= 0xff;
        let err = read_layer(&blob[..], &source(&blob), &want_all, &budget()).unwrap_err();
        assert!(matches!(err, LayerFailure::Corrupt(_)), "{err:?}");

        // Not a tar at all.
        let blob = gzip(b"hello, this is not a tar archive at all......");
        let err = read_layer(&blob[..], &source(&blob), &want_all, &budget()).unwrap_err();
        assert!(matches!(err, LayerFailure::Corrupt(_)), "{err:?}");

        // Corrupted in transit (digest of the good blob): a mismatch.
        let good = gzip(&tar_bytes(&[E::File("f", &[7u8; 10_000])]));
        let mut bad = good.clone();
        bad[20] ^= 0xff;
        let err = read_layer(&bad[..], &source(&good), &want_all, &budget()).unwrap_err();
        assert!(
            matches!(err, LayerFailure::DigestMismatch { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn oversized_blob_is_rejected() {
        let blob = gzip(&tar_bytes(&[E::File("f", b"1")]));
        let mut src = source(&blob);
        src.size = Some(10);
        let err = read_layer(&blob[..], &src, &want_all, &budget()).unwrap_err();
        assert_eq!(err, LayerFailure::Oversize { declared: 10 });
    }

    #[test]
    fn files_over_the_cap_are_skipped_and_hide_lower_ones() {
        let l0 = gzip(&tar_bytes(&[E::File("big", b"small")]));
        let l1 = gzip(&tar_bytes(&[
            E::File("big", &[0u8; 2000]),
            E::File("ok", b"fine"),
        ]));
        let budget = Budget::new(1000, 1000, 1 << 30, 1 << 30);
        let mut tree = FileTree::default();
        let mut warnings = Vec::new();
        for (i, blob) in [l0, l1].iter().enumerate() {
            let c = read_layer(&blob[..], &source(blob), &want_all, &budget).unwrap();
            warnings.extend(c.warnings.clone());
            apply_layer(&mut tree, c, i, &mut warnings);
        }
        assert_eq!(data(&tree, "big"), None);
        assert_eq!(data(&tree, "ok"), Some(&b"fine"[..]));
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("big") && w.contains("2000 bytes")),
            "{warnings:?}"
        );
    }

    #[test]
    fn image_wide_limits_stop_reading() {
        let blob = gzip(&tar_bytes(&[E::File("f", &[0u8; 100_000])]));
        let budget = Budget::new(1 << 20, 1 << 20, 50_000, 1 << 30);
        let err = read_layer(&blob[..], &source(&blob), &want_all, &budget).unwrap_err();
        assert!(matches!(err, LayerFailure::Limit(_)), "{err:?}");
        assert_eq!(budget.decompressed_bytes(), 0);

        let budget = Budget::new(1 << 20, 1 << 20, 1 << 30, 50_000);
        let err = read_layer(&blob[..], &source(&blob), &want_all, &budget).unwrap_err();
        assert!(
            matches!(err, LayerFailure::Limit(ref m) if m.contains("kept")),
            "{err:?}"
        );
        assert_eq!(budget.kept_bytes(), 0);
    }

    /// Keeps `*.db` by path (reduced to its first line) and executables
    /// starting with `BIN` by content (reduced to the line after `id=`,
    /// dropped when there is none), like the Go and Rust catalogers.
    struct Sniffer;

    impl FileSelector for Sniffer {
        fn wants(&self, path: &str) -> bool {
            path.ends_with(".db")
        }
        fn sniff_len(&self) -> usize {
            4
        }
        fn sniff(&self, _path: &str, mode: u32, head: &[u8]) -> bool {
            assert!(head.len() <= 4);
            mode & 0o111 != 0 && head.starts_with(b"BIN")
        }
        fn reduce(&self, _path: &str, _mode: u32, sniffed: bool, data: Vec<u8>) -> Option<Vec<u8>> {
            let text = String::from_utf8(data).unwrap();
            if sniffed {
                let id = text.split_once("id=")?.1;
                Some(id.lines().next().unwrap_or_default().as_bytes().to_vec())
            } else {
                Some(text.lines().next().unwrap_or_default().as_bytes().to_vec())
            }
        }
    }

    #[test]
    fn sniffed_files_are_kept_and_reduced_path_wanted_ones_reduced_too() {
        let big = format!("BIN{}id=go1.22\nrest", "x".repeat(100_000));
        let l0 = gzip(&tar_bytes(&[
            E::Exec("usr/bin/tool", big.as_bytes()),
            // Same content, no exec bit: not sniffed.
            E::File("usr/share/tool.copy", big.as_bytes()),
            // Sniffed, but the reducer finds nothing in it: dropped.
            E::Exec("usr/bin/other", b"BIN but no marker"),
            E::Exec("usr/bin/sh", b"#!/bin/sh"),
            // Shorter than the sniff length.
            E::Exec("usr/bin/bi", b"BI"),
            E::File("var/lib/x.db", b"first line\nsecond line"),
        ]));
        let budget = budget();
        let c = read_layer(&l0[..], &source(&l0), &Sniffer, &budget).unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.kept_bytes, ("go1.22".len() + "first line".len()) as u64);
        assert_eq!(budget.kept_bytes(), c.kept_bytes);
        let mut t = FileTree::default();
        apply_layer(&mut t, c, 0, &mut Vec::new());
        assert_eq!(
            t.files.keys().collect::<Vec<_>>(),
            ["usr/bin/tool", "var/lib/x.db"]
        );
        assert_eq!(data(&t, "usr/bin/tool"), Some(&b"go1.22"[..]));
        assert_eq!(data(&t, "var/lib/x.db"), Some(&b"first line"[..]));
    }

    #[test]
    fn whiteout_and_replacement_of_a_sniffed_file() {
        let l0 = gzip(&tar_bytes(&[
            E::Exec("app/a", b"BIN id=one"),
            E::Exec("app/b", b"BIN id=two"),
            E::Exec("app/c", b"BIN id=three"),
        ]));
        let l1 = gzip(&tar_bytes(&[
            E::File("app/.wh.a", b""),
            // Replaced by a file that is not sniffed: b is gone.
            E::File("app/b", b"plain"),
            // Replaced by another binary: the new one wins.
            E::Exec("app/c", b"BIN id=four"),
        ]));
        let (t, w) = squash(&[l0, l1], &Sniffer);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(t.files.keys().collect::<Vec<_>>(), ["app/c"]);
        assert_eq!(data(&t, "app/c"), Some(&b"four"[..]));
        assert_eq!(t.files["app/c"].layer, 1);
    }

    #[test]
    fn sniffed_binary_over_its_cap_is_skipped_with_a_warning() {
        let huge = [&b"BIN id=big\n"[..], &[0u8; 5000]].concat();
        let l0 = gzip(&tar_bytes(&[E::Exec("opt/huge", b"BIN id=old")]));
        let l1 = gzip(&tar_bytes(&[
            E::Exec("opt/huge", &huge),
            E::Exec("opt/small", b"BIN id=small"),
            // The per-file cap for path-wanted files is separate.
            E::File("big.db", &[b'd'; 3000]),
        ]));
        let budget = Budget::new(4000, 1000, 1 << 30, 1 << 30);
        let mut tree = FileTree::default();
        let mut warnings = Vec::new();
        for (i, blob) in [l0, l1].iter().enumerate() {
            let c = read_layer(&blob[..], &source(blob), &Sniffer, &budget).unwrap();
            warnings.extend(c.warnings.clone());
            apply_layer(&mut tree, c, i, &mut warnings);
        }
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("opt/huge")
                && warnings[0].contains("5011 bytes")
                && warnings[0].contains("executables read for their content"),
            "{warnings:?}"
        );
        // The skipped binary still hides the lower layer's copy.
        assert_eq!(data(&tree, "opt/huge"), None);
        assert_eq!(data(&tree, "opt/small"), Some(&b"small"[..]));
        assert_eq!(tree.files["big.db"].data.len(), 3000);
    }

    #[test]
    fn plain_path_predicates_never_read_heads() {
        struct NoSniff;
        impl FileSelector for NoSniff {
            fn wants(&self, p: &str) -> bool {
                p == "a"
            }
            fn sniff(&self, _: &str, _: u32, _: &[u8]) -> bool {
                panic!("sniff_len is 0: sniff must not be called")
            }
        }
        let l0 = gzip(&tar_bytes(&[E::Exec("a", b"BIN"), E::Exec("b", b"BIN")]));
        let (t, _) = squash(&[l0], &NoSniff);
        assert_eq!(t.files.keys().collect::<Vec<_>>(), ["a"]);
    }

    pub fn zstd(data: &[u8]) -> Vec<u8> {
        zstd::stream::encode_all(data, 3).unwrap()
    }

    #[test]
    fn zstd_layers_round_trip() {
        let tar = tar_bytes(&[
            E::File("var/lib/dpkg/status", b"Package: a\n"),
            E::Sym("bin", "usr/bin"),
        ]);
        let blob = zstd(&tar);
        assert_eq!(&blob[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
        let mut src = source(&blob);
        src.media_type = Some("application/vnd.oci.image.layer.v1.tar+zstd".into());
        src.diff_id = Some(digest(&tar));
        let changes = read_layer(&blob[..], &src, &want_all, &budget()).unwrap();
        assert_eq!(changes.compression, super::Compression::Zstd);
        assert_eq!(changes.digest, digest(&blob));
        assert_eq!(changes.decompressed_bytes, tar.len() as u64);
        let mut tree = FileTree::default();
        apply_layer(&mut tree, changes, 0, &mut Vec::new());
        assert_eq!(tree.files["var/lib/dpkg/status"].data, b"Package: a\n");
        assert_eq!(tree.symlinks["bin"], "usr/bin");

        // Truncated zstd is corrupt (or a digest mismatch), never a success.
        let cut = &blob[..blob.len() - 8];
        assert!(read_layer(cut, &source(cut), &want_all, &budget()).is_err());
    }

    #[test]
    fn diff_id_is_checked_and_blob_digest_may_be_unknown() {
        let tar = tar_bytes(&[E::File("f", b"1")]);
        for blob in [tar.clone(), gzip(&tar), zstd(&tar)] {
            let src = LayerSource {
                digest: String::new(),
                diff_id: Some(digest(&tar)),
                media_type: None,
                size: Some(blob.len() as u64),
            };
            let changes = read_layer(&blob[..], &src, &want_all, &budget()).unwrap();
            assert_eq!(changes.digest, digest(&blob));
            let wrong = LayerSource {
                diff_id: Some(digest(b"other")),
                ..src
            };
            let err = read_layer(&blob[..], &wrong, &want_all, &budget()).unwrap_err();
            assert_eq!(
                err,
                LayerFailure::DiffIdMismatch {
                    actual: digest(&tar)
                }
            );
        }
    }

    #[test]
    fn cancel_stops() {
        let blob = gzip(&tar_bytes(&[E::File("f", b"1")]));
        let b = budget();
        b.cancel();
        let err = read_layer(&blob[..], &source(&blob), &want_all, &b).unwrap_err();
        assert_eq!(err, LayerFailure::Cancelled);
    }

    #[test]
    fn source_errors_are_reported_as_such() {
        struct Failing<'a>(&'a [u8]);
        impl Read for Failing<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() {
                    return Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
                }
                let n = buf.len().min(self.0.len()).min(100);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let blob = gzip(&tar_bytes(&[E::File("f", &[1u8; 50_000])]));
        let cut = &blob[..blob.len() / 2];
        let err = read_layer(Failing(cut), &source(&blob), &want_all, &budget()).unwrap_err();
        assert_eq!(err, LayerFailure::Source("reset".into()));
    }

    #[test]
    fn gnu_long_names_and_pax_paths() {
        let long = format!("usr/share/doc/{}/copyright", "p".repeat(150));
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, &long, &b"ok"[..]).unwrap();
        let blob = gzip(&b.into_inner().unwrap());
        let (t, _) = squash(&[blob], &want_all);
        assert_eq!(data(&t, &long), Some(&b"ok"[..]));
    }
}
