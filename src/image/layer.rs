//! Reading layer tarballs into per-layer change sets, and merging those
//! change sets in layer order into the squashed [`FileTree`].
//!
//! A layer is read in one pass from any `Read` (a registry blob stream
//! bridged from async, or a file): compressed bytes are hashed and counted
//! as they flow, decompressed by magic bytes, walked as tar, and only the
//! entries that can matter to the final tree are remembered. Nothing is ever
//! written to disk, so a hostile path can do no harm.
//!
//! Reading (parallel, any order) and merging (sequential, in layer order)
//! are separate so that layers can download concurrently. The merge replays
//! each layer's entries in archive order exactly as containerd's `archive`
//! package applies them: `..` stops at the root, each entry's parent
//! directories are resolved through the symlinks already there (lower
//! layers and earlier entries of the same layer), inside the root, and the
//! entry lands at the resolved location. An image that writes
//! `var/lib/dpkg/status` through a symlinked `var/lib/dpkg` has those
//! packages installed, so they are reported. A layer's changes reach the
//! tree only after its digest has been verified.
//!
//! Memory: every name, link target and entry a layer holds until its merge
//! is counted against an image-wide metadata budget, entries against an
//! image-wide count, kept file bytes against the kept budget (one method,
//! [`Budget::charge_kept`]); names are stored front-coded in one buffer,
//! and hard links share their target's data.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::io::{self, Read};
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

use super::fs::{FileData, FileEntry, FileTree, PendingLink, ResolveError};
use super::observe::{EntryObserver, LayerVisit, Tee};
use super::tarstream::{self, Kind, TarError, TarReader};

/// Warnings beyond this many per layer are summarised, so that a hostile
/// layer with a million bad entries cannot flood the report.
const MAX_WARNINGS_PER_LAYER: usize = 20;
/// Bytes accepted after the tar end marker, compressed and decompressed
/// alike: end-of-archive padding (a 10 KiB record at most for GNU tar) and
/// a gzip trailer are small. Past this the blob is refused instead of being
/// drained up to whatever size the manifest declares.
pub const MAX_BLOB_TAIL: u64 = 4 << 20;
/// Bookkeeping bytes counted per remembered entry, on top of its name.
const ENTRY_OVERHEAD: u64 = std::mem::size_of::<Op>() as u64;

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
    /// Whether a file wanted by a fixed path may sit at or below directory
    /// `dir`. A symlink at such a directory makes files written at its real
    /// location wanted under their alias (see [`alias_roots`]); the default
    /// says no, so selectors without fixed paths never trigger that pass.
    fn wants_under(&self, _dir: &str) -> bool {
        false
    }
    /// Whether a symlink `alias` → `real` (with [`wants_under`] true for
    /// `alias`) hides wanted files the first read did not keep. A selector
    /// that wants the real locations by path already (merged `/usr`'s
    /// `lib -> usr/lib`) says no, and the layers are not read again.
    ///
    /// [`wants_under`]: FileSelector::wants_under
    fn hides_wanted(&self, _alias: &str, _real: &str) -> bool {
        true
    }
    /// Who else sees every regular file's bytes as they stream past (the
    /// secret scanner, see [`super::observe`]); none by default.
    fn observer(&self) -> Option<&dyn EntryObserver> {
        None
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
    max_metadata: u64,
    max_entries: u64,
    decompressed: AtomicU64,
    kept: AtomicU64,
    metadata: AtomicU64,
    entries: AtomicU64,
    cancelled: AtomicBool,
    /// This pull's share of the process-wide budget ([`super::memory`]):
    /// every kept byte is also reserved there, so that concurrent jobs
    /// together stay within what the worker's memory limit allows.
    process: std::sync::Mutex<super::memory::Reservation>,
}

/// Default of [`super::Limits::max_metadata_bytes`].
pub const DEFAULT_MAX_METADATA: u64 = 64 << 20;
/// Default of [`super::Limits::max_entries`].
pub const DEFAULT_MAX_ENTRIES: u64 = 2_000_000;

impl Budget {
    /// `max_file_bytes` caps a file kept for its path, `max_sniffed_bytes`
    /// one read whole because its content was sniffed (an executable); both
    /// are read into memory before [`FileSelector::reduce`] shrinks them.
    /// Metadata and entry limits get their defaults
    /// ([`with_metadata`](Self::with_metadata) to change them).
    pub fn new(
        max_file_bytes: u64,
        max_sniffed_bytes: u64,
        max_decompressed: u64,
        max_kept: u64,
    ) -> Arc<Budget> {
        Arc::new(Self::plain(
            max_file_bytes,
            max_sniffed_bytes,
            max_decompressed,
            max_kept,
        ))
    }

    fn plain(max_file: u64, max_sniffed: u64, max_decompressed: u64, max_kept: u64) -> Budget {
        Budget {
            max_file_bytes: max_file,
            max_sniffed_bytes: max_sniffed,
            max_decompressed,
            max_kept,
            max_metadata: DEFAULT_MAX_METADATA,
            max_entries: DEFAULT_MAX_ENTRIES,
            decompressed: AtomicU64::new(0),
            kept: AtomicU64::new(0),
            metadata: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            cancelled: AtomicBool::new(false),
            process: std::sync::Mutex::new(super::memory::global().reservation()),
        }
    }

    /// The budget of one pull.
    pub fn from_limits(l: &super::Limits) -> Arc<Budget> {
        Self::with_metadata(
            Self::plain(
                l.max_file_bytes,
                l.max_sniffed_bytes,
                l.max_decompressed_bytes,
                l.max_kept_bytes,
            ),
            l.max_metadata_bytes,
            l.max_entries,
        )
    }

    /// Sets the metadata byte and entry-count limits.
    pub fn with_metadata(mut b: Budget, max_metadata: u64, max_entries: u64) -> Arc<Budget> {
        b.max_metadata = max_metadata;
        b.max_entries = max_entries;
        Arc::new(b)
    }

    /// Makes every reader still running fail at its next read.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed) || crate::cancel::is_cancelled()
    }

    pub fn decompressed_bytes(&self) -> u64 {
        self.decompressed.load(Ordering::Relaxed)
    }

    pub fn kept_bytes(&self) -> u64 {
        self.kept.load(Ordering::Relaxed)
    }

    pub fn metadata_bytes(&self) -> u64 {
        self.metadata.load(Ordering::Relaxed)
    }

    /// Counts `n` bytes of file content kept for the catalogers. Every kept
    /// byte of the image goes through here, so that a process-wide
    /// reservation can be taken at this one place.
    pub fn charge_kept(&self, n: u64) -> Result<(), LayerFailure> {
        let total = self.kept.fetch_add(n, Ordering::Relaxed) + n;
        if total > self.max_kept {
            return Err(LayerFailure::Limit(format!(
                "the files kept for scanning exceed {} bytes",
                self.max_kept
            )));
        }
        self.process_reservation()
            .grow(n)
            .map_err(|e| LayerFailure::MemoryBusy(e.to_string()))
    }

    /// Gives back kept bytes (a layer that failed and will be retried).
    pub fn release_kept(&self, n: u64) {
        saturating_sub(&self.kept, n);
        self.process_reservation().shrink(n);
    }

    /// Reserves `n` bytes of the process-wide budget for a file held whole
    /// between its read and its reduction; given back when dropped.
    fn reserve_transient(&self, n: u64) -> Result<super::memory::Reservation, LayerFailure> {
        super::memory::global()
            .try_reserve(n)
            .map_err(|e| LayerFailure::MemoryBusy(e.to_string()))
    }

    /// Charges this budget's kept bytes to `memory` instead of the
    /// process-wide budget (tests of the sharing between jobs).
    #[cfg(test)]
    fn charging(self: Arc<Self>, memory: &Arc<super::memory::MemoryBudget>) -> Arc<Self> {
        *self.process_reservation() = memory.reservation();
        self
    }

    fn process_reservation(&self) -> std::sync::MutexGuard<'_, super::memory::Reservation> {
        // Updates are single calls on the reservation: a poisoned lock
        // still holds a consistent count.
        self.process.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts `n` bytes of names, link targets and entry bookkeeping.
    pub fn charge_metadata(&self, n: u64) -> Result<(), LayerFailure> {
        let total = self
            .metadata
            .fetch_add(n, Ordering::Relaxed)
            .saturating_add(n);
        if total > self.max_metadata {
            return Err(LayerFailure::Limit(format!(
                "the image's names, link targets and entries need more than {} bytes \
                 of memory (Limits::max_metadata_bytes)",
                self.max_metadata
            )));
        }
        Ok(())
    }

    pub fn release_metadata(&self, n: u64) {
        saturating_sub(&self.metadata, n);
    }

    fn count_entry(&self) -> Result<(), LayerFailure> {
        let total = self.entries.fetch_add(1, Ordering::Relaxed) + 1;
        if total > self.max_entries {
            return Err(LayerFailure::Limit(format!(
                "the image has more than {} tar entries (Limits::max_entries)",
                self.max_entries
            )));
        }
        Ok(())
    }
}

fn saturating_sub(counter: &AtomicU64, n: u64) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(n))
    });
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
    /// Decompressed, kept or metadata bytes, entries, name lengths or the
    /// blob tail over their limits.
    Limit(String),
    /// The worker's process-wide memory budget is taken by concurrent jobs:
    /// this image may fit on its own, so retrying later can succeed.
    MemoryBusy(String),
    Corrupt(String),
    Unsupported(String),
}

/// What one archive entry does, in archive order. Payloads index
/// [`LayerChanges::files`] and [`LayerChanges::targets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    /// A directory replaces a lower file or symlink at its path, nothing more.
    Dir,
    /// A non-directory that is not kept (unwanted or oversized file, device,
    /// FIFO, unusable link): it still hides what lower layers had there.
    Replaced,
    File(u32),
    Symlink(u32),
    /// A hard link whose own path is wanted, to the (clamped) target path.
    HardLink(u32),
    /// `.wh.NAME`: the op's path is the whited-out path.
    Whiteout,
    /// `.wh..wh..opq`: the op's path is the opaque directory.
    Opaque,
}

/// An entry's path is stored front-coded: `shared` bytes of the previous
/// entry's path, then `len` bytes from `start` of [`LayerChanges::names`].
/// Archives list siblings together, so a million entries cost a few bytes
/// of name each instead of a `String` and a map node.
#[derive(Debug, Clone, Copy)]
struct Op {
    kind: OpKind,
    start: u32,
    shared: u16,
    len: u16,
}

/// Everything one layer does to the layers below it.
#[derive(Debug, Default)]
pub struct LayerChanges {
    ops: Vec<Op>,
    names: Vec<u8>,
    /// The previous op's path, for front coding.
    last: String,
    files: Vec<FileData>,
    targets: Vec<String>,
    /// (op index, mode) of the entries [`notable_mode`] picks, at most
    /// [`super::fs::MAX_NOTABLE`] per layer; the rest are counted.
    notable: Vec<(u32, u32)>,
    notable_dropped: u64,
    pub warnings: Vec<String>,
    suppressed_warnings: usize,
    /// Bytes after decompression, bytes of file data kept, and bytes of
    /// names and bookkeeping held until the merge.
    pub decompressed_bytes: u64,
    pub kept_bytes: u64,
    pub metadata_bytes: u64,
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
    /// Marks the entry about to be pushed as notable with `mode`.
    fn note(&mut self, mode: u32) {
        if self.notable.len() < super::fs::MAX_NOTABLE {
            self.notable.push((self.ops.len() as u32, mode));
        } else {
            self.notable_dropped += 1;
        }
    }

    fn warn(&mut self, msg: String) {
        if self.warnings.len() < MAX_WARNINGS_PER_LAYER {
            self.warnings.push(msg);
        } else {
            self.suppressed_warnings += 1;
        }
    }

    /// Remembers an entry, counting its name (and `extra` payload bytes)
    /// against the metadata budget.
    fn push(
        &mut self,
        path: &str,
        kind: OpKind,
        extra: u64,
        budget: &Budget,
    ) -> Result<(), LayerFailure> {
        let mut shared = self
            .last
            .bytes()
            .zip(path.bytes())
            .take_while(|(a, b)| a == b)
            .count()
            .min(u16::MAX as usize);
        while !path.is_char_boundary(shared) {
            shared -= 1;
        }
        let suffix = &path.as_bytes()[shared..];
        let cost = ENTRY_OVERHEAD + suffix.len() as u64 + extra;
        // Counted before the check: a failed layer gives back all it took.
        self.metadata_bytes += cost;
        budget.charge_metadata(cost)?;
        let start = u32::try_from(self.names.len())
            .map_err(|_| LayerFailure::Limit("a layer's names exceed 4 GiB".into()))?;
        self.names.extend_from_slice(suffix);
        self.ops.push(Op {
            kind,
            start,
            shared: shared as u16,
            // Names are capped at `tarstream::MAX_NAME` bytes.
            len: suffix.len() as u16,
        });
        self.last.truncate(shared);
        self.last.push_str(&path[shared..]);
        Ok(())
    }

    /// The ops with their full paths, in archive order.
    fn each_op(
        &self,
        mut f: impl FnMut(&str, OpKind) -> Result<(), LayerFailure>,
    ) -> Result<(), LayerFailure> {
        let mut cur = String::new();
        for op in &self.ops {
            let suffix = &self.names[op.start as usize..op.start as usize + op.len as usize];
            let mut bytes = std::mem::take(&mut cur).into_bytes();
            bytes.truncate(op.shared as usize);
            bytes.extend_from_slice(suffix);
            // Each op's path was a `str`, and the shared prefix ends on a
            // character boundary.
            cur = String::from_utf8(bytes).unwrap_or_default();
            f(&cur, op.kind)?;
        }
        Ok(())
    }

    /// The regular files kept, by path (for the second, targeted pass).
    fn kept_files(&self) -> HashMap<String, FileData> {
        let mut out = HashMap::new();
        let _ = self.each_op(|path, kind| {
            if let OpKind::File(i) = kind {
                out.insert(path.to_owned(), self.files[i as usize].clone());
            }
            Ok(())
        });
        out
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
    let mut visit = selector.observer().map(|o| o.layer(source));
    let walked = walk(
        &mut verifier,
        source,
        selector,
        budget,
        &mut changes,
        &mut visit,
    );
    let outcome = match walked {
        // The tar end marker may come before the end of the blob (padding,
        // the gzip trailer): the digest covers every byte, so read them,
        // up to a small cap.
        Ok(()) => match drain_tail(&mut verifier, "compressed") {
            Ok(()) => verifier.finish(),
            Err(f) => Err(verifier.failure.take().unwrap_or(f)),
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
            if let Some(v) = visit {
                v.finish();
            }
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
            budget.release_kept(changes.kept_bytes);
            budget.release_metadata(changes.metadata_bytes);
            budget.entries.fetch_sub(changes.entries, Ordering::Relaxed);
            Err(f)
        }
    }
}

/// Reads what follows the end of the tar stream, at most
/// [`MAX_BLOB_TAIL`] bytes.
fn drain_tail(reader: &mut impl Read, what: &str) -> Result<(), LayerFailure> {
    let n = io::copy(&mut reader.take(MAX_BLOB_TAIL + 1), &mut io::sink())
        .map_err(|e| LayerFailure::Source(e.to_string()))?;
    if n > MAX_BLOB_TAIL {
        return Err(LayerFailure::Limit(format!(
            "more than {MAX_BLOB_TAIL} {what} bytes follow the end of the tar archive"
        )));
    }
    Ok(())
}

fn walk<R: Read>(
    verifier: &mut Verifier<'_, R>,
    source: &LayerSource,
    selector: &dyn FileSelector,
    budget: &Budget,
    changes: &mut LayerChanges,
    visit: &mut Option<Box<dyn LayerVisit + '_>>,
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
    let limit_hit = std::cell::Cell::new(false);
    let mut counted = Counted {
        inner: decompressed,
        count: 0,
        budget,
        limit_hit: &limit_hit,
        hasher: source.diff_id.as_ref().map(|_| Sha256::new()),
    };
    let mut result = read_entries(&mut counted, selector, budget, changes, visit);
    if let Some(expected) = &source.diff_id {
        // The diff_id covers the whole tar, padding after the end marker
        // too; and wrong content explains a parse error better than the
        // parse error does.
        let drained = match &result {
            Ok(()) => drain_tail(&mut counted, "decompressed"),
            Err(LayerFailure::Corrupt(_)) => io::copy(&mut counted, &mut io::sink())
                .map(drop)
                .map_err(corrupt),
            // Nothing to explain: stop reading.
            Err(_) => Ok(()),
        };
        match (&result, drained) {
            (Ok(()), Err(e)) => result = Err(e),
            (Ok(()) | Err(LayerFailure::Corrupt(_)), Ok(())) => {
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
    if budget.is_cancelled() && result.is_err() {
        return Err(LayerFailure::Cancelled);
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

fn tar_failure(e: TarError) -> LayerFailure {
    match e {
        TarError::Limit(m) => LayerFailure::Limit(m),
        TarError::Corrupt(m) => LayerFailure::Corrupt(m),
        TarError::Io(e) => LayerFailure::Corrupt(e.to_string()),
    }
}

fn read_entries<R: Read>(
    reader: R,
    selector: &dyn FileSelector,
    budget: &Budget,
    changes: &mut LayerChanges,
    visit: &mut Option<Box<dyn LayerVisit + '_>>,
) -> Result<(), LayerFailure> {
    let mut tar = TarReader::new(reader);
    while let Some(header) = tar.next_header().map_err(tar_failure)? {
        if budget.is_cancelled() {
            return Err(LayerFailure::Cancelled);
        }
        budget.count_entry()?;
        changes.entries += 1;
        let path = clamp_path(&String::from_utf8_lossy(&header.path));
        if path.is_empty() {
            continue;
        }
        let (parent, name) = match path.rsplit_once('/') {
            Some((p, n)) => (p, n),
            None => ("", path.as_str()),
        };
        if let Some(hidden) = name.strip_prefix(".wh.") {
            if let Some(v) = visit.as_mut() {
                match hidden {
                    ".wh..opq" => v.removed(parent, true),
                    h if !h.starts_with(".wh.") && !h.is_empty() => {
                        v.removed(&join(parent, h), false)
                    }
                    _ => {}
                }
            }
            if hidden == ".wh..opq" {
                let dir = parent.to_owned();
                changes.push(&dir, OpKind::Opaque, 0, budget)?;
            } else if !hidden.starts_with(".wh.") && !hidden.is_empty() {
                let gone = join(parent, hidden);
                changes.push(&gone, OpKind::Whiteout, 0, budget)?;
            }
            // Other `.wh..wh.` names are aufs bookkeeping, not content.
            continue;
        }
        let (kind, extra) = match header.kind {
            Kind::Directory => (OpKind::Dir, 0),
            Kind::Symlink if header.link.is_empty() => {
                changes.warn(format!("skipped symlink {path:?}: it has no target"));
                (OpKind::Replaced, 0)
            }
            Kind::Symlink => {
                let target = String::from_utf8_lossy(&header.link).into_owned();
                let extra = target.len() as u64;
                changes.targets.push(target);
                (OpKind::Symlink(index(changes.targets.len())?), extra)
            }
            Kind::HardLink => {
                let target = clamp_path(&String::from_utf8_lossy(&header.link));
                if target.is_empty() || !selector.wants(&path) {
                    (OpKind::Replaced, 0)
                } else {
                    let extra = target.len() as u64;
                    changes.targets.push(target);
                    (OpKind::HardLink(index(changes.targets.len())?), extra)
                }
            }
            Kind::Regular => {
                let watched = visit.as_mut().is_some_and(|v| v.file(&path, header.size));
                let data = match visit.as_mut().filter(|_| watched) {
                    Some(v) => read_observed(
                        &mut tar, &header, &path, selector, budget, changes, &mut **v,
                    )?,
                    None => read_file(&mut tar.data(), &header, &path, selector, budget, changes)?,
                };
                keep(changes, data)?
            }
            Kind::Sparse => {
                let data = read_sparse(&mut tar, &header, &path, selector, budget, changes)?;
                keep(changes, data)?
            }
            Kind::Other => (OpKind::Replaced, 0),
        };
        let regular = matches!(header.kind, Kind::Regular | Kind::Sparse);
        if header.kind != Kind::Regular
            && let Some(v) = visit.as_mut()
        {
            v.entry(&path, kind == OpKind::Dir);
        }
        if notable_mode(&path, header.mode, regular, kind == OpKind::Dir) {
            changes.note(header.mode);
        }
        changes.push(&path, kind, extra, budget)?;
    }
    Ok(())
}

/// Paths whose mere presence a configuration rule reads (an SSH daemon):
/// recorded whatever the selector keeps.
const NOTABLE_PATHS: &[&str] = &["usr/sbin/sshd", "sbin/sshd"];

/// Whether an entry's mode or path matters to the configuration rules: a
/// setuid/setgid regular file, a world-writable regular file, a
/// world-writable directory without the sticky bit, or a watched path.
fn notable_mode(path: &str, mode: u32, regular: bool, dir: bool) -> bool {
    let world_writable = mode & 0o002 != 0;
    (regular && (mode & 0o6000 != 0 || world_writable || NOTABLE_PATHS.contains(&path)))
        || (dir && world_writable && mode & 0o1000 == 0)
}

fn index(len: usize) -> Result<u32, LayerFailure> {
    u32::try_from(len - 1).map_err(|_| LayerFailure::Limit("too many entries in a layer".into()))
}

fn keep(changes: &mut LayerChanges, data: Option<FileData>) -> Result<(OpKind, u64), LayerFailure> {
    Ok(match data {
        Some(d) => {
            changes.files.push(d);
            (OpKind::File(index(changes.files.len())?), 0)
        }
        None => (OpKind::Replaced, 0),
    })
}

/// The content of a regular file when it is kept (read whole, then
/// reduced) because the selector wants it by path or by its head.
///
/// A file is held whole only between its read and its reduction, so a
/// layer reader holds at most one unreduced file: peak memory is about
/// `max_sniffed_bytes` (or `max_file_bytes`) per layer read in parallel,
/// plus the reduced files kept (`max_kept`, image-wide).
fn read_file(
    entry: &mut impl Read,
    header: &tarstream::Header,
    path: &str,
    selector: &dyn FileSelector,
    budget: &Budget,
    changes: &mut LayerChanges,
) -> Result<Option<FileData>, LayerFailure> {
    let corrupt = |e: io::Error| LayerFailure::Corrupt(e.to_string());
    let size = header.size;
    let mode = header.mode;
    let mut head = Vec::new();
    let sniffed = if selector.wants(path) {
        false
    } else {
        let len = selector
            .sniff_len()
            .min(usize::try_from(size).unwrap_or(usize::MAX));
        if len == 0 {
            return Ok(None);
        }
        head.resize(len, 0);
        entry.read_exact(&mut head).map_err(corrupt)?;
        if !selector.sniff(path, mode, &head) {
            return Ok(None);
        }
        true
    };
    if !within_cap(size, sniffed, path, budget, changes) {
        return Ok(None);
    }
    // Held until the file is reduced: the whole file is in memory until then.
    let _transient = budget.reserve_transient(size)?;
    let mut data = head;
    // `size` is within the cap checked above: reserving it exactly avoids
    // the doubling growth of `read_to_end`, which would hold up to twice a
    // binary's size.
    data.reserve_exact((size - data.len() as u64) as usize);
    entry.read_to_end(&mut data).map_err(corrupt)?;
    reduce_and_charge(selector, path, mode, sniffed, data, budget, changes)
}

/// [`read_file`] with every byte of the entry, kept or not, also shown to
/// the observer's `visit` (until it has seen enough): one read serves both.
#[allow(clippy::too_many_arguments)]
fn read_observed<R: Read>(
    tar: &mut TarReader<R>,
    header: &tarstream::Header,
    path: &str,
    selector: &dyn FileSelector,
    budget: &Budget,
    changes: &mut LayerChanges,
    visit: &mut dyn LayerVisit,
) -> Result<Option<FileData>, LayerFailure> {
    let (data, drained) = {
        let mut tee = Tee::new(tar.data(), visit);
        let data = read_file(&mut tee, header, path, selector, budget, changes);
        let drained = data.is_ok().then(|| tee.drain());
        (data, drained)
    };
    visit.end_file();
    if let Some(Err(e)) = drained {
        return Err(LayerFailure::Corrupt(e.to_string()));
    }
    data
}

fn within_cap(
    size: u64,
    sniffed: bool,
    path: &str,
    budget: &Budget,
    changes: &mut LayerChanges,
) -> bool {
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
        return false;
    }
    true
}

fn reduce_and_charge(
    selector: &dyn FileSelector,
    path: &str,
    mode: u32,
    sniffed: bool,
    data: Vec<u8>,
    budget: &Budget,
    changes: &mut LayerChanges,
) -> Result<Option<FileData>, LayerFailure> {
    let Some(data) = selector.reduce(path, mode, sniffed, data) else {
        return Ok(None);
    };
    let kept = data.len() as u64;
    changes.kept_bytes += kept;
    budget.charge_kept(kept)?;
    Ok(Some(data.into()))
}

/// A GNU sparse file wanted by path is rebuilt (holes as zeros) within the
/// per-file cap; sparse files are not sniffed (no writer of executables
/// makes them).
fn read_sparse<R: Read>(
    tar: &mut TarReader<R>,
    header: &tarstream::Header,
    path: &str,
    selector: &dyn FileSelector,
    budget: &Budget,
    changes: &mut LayerChanges,
) -> Result<Option<FileData>, LayerFailure> {
    let Some((real, frags)) = &header.sparse else {
        return Ok(None);
    };
    if !selector.wants(path) || !within_cap(*real, false, path, budget, changes) {
        return Ok(None);
    }
    let mut data = vec![0u8; *real as usize];
    for &(off, len) in frags {
        let (off, len) = (off as usize, len as usize);
        tar.data()
            .read_exact(&mut data[off..off + len])
            .map_err(|e| LayerFailure::Corrupt(e.to_string()))?;
    }
    reduce_and_charge(selector, path, header.mode, false, data, budget, changes)
}

/// Lexically resolves `.` and `..` and drops leading `/` (absolute entries
/// are rooted in the image, as container runtimes extract them). `None`
/// when `..` would climb above the root. For names in an image's own
/// archive files (`docker save` manifests), where climbing is an error.
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

/// Like [`clean_path`], but `..` stops at the root, as Go's
/// `filepath.Join("/", name)` and containerd do for layer entries:
/// `../var/lib/dpkg/status` IS `var/lib/dpkg/status` once extracted.
pub fn clamp_path(raw: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}

/// What a hard link finds at its target when it is applied.
enum LinkTarget {
    File(FileData),
    Symlink(String),
    Pending(PendingLink),
    Missing,
}

/// Applies one layer's changes on top of the layers below it, which are
/// already merged in `tree`, replaying its entries in archive order as
/// containerd does (see the module docs). A path whose parents cannot be
/// resolved (a symlink loop, a path over `PATH_MAX`) fails the scan, as
/// it fails the runtime's extraction: guessing could hide packages.
///
/// Afterwards only what the tree keeps stays counted as metadata.
pub fn apply_layer(
    tree: &mut FileTree,
    layer: LayerChanges,
    layer_index: usize,
    budget: &Budget,
) -> Result<(), LayerFailure> {
    let mut n = 0u64;
    let mut notes = layer.notable.iter().peekable();
    tree.notable_dropped += layer.notable_dropped;
    let mut merge = LayerMerge::new(tree, &layer, layer_index);
    layer.each_op(|path, kind| {
        n += 1;
        let note = notes
            .next_if(|(i, _)| u64::from(*i) + 1 == n)
            .map(|(_, m)| *m);
        if n.is_multiple_of(4096) && budget.is_cancelled() {
            return Err(LayerFailure::Cancelled);
        }
        merge.op(path, kind, note)
    })?;
    let retained = merge.retained;
    budget.release_metadata(layer.metadata_bytes);
    budget.charge_metadata(retained)
}

/// The state of one [`apply_layer`]: the tree being changed, the paths this
/// layer wrote and the metadata the tree will keep for it.
struct LayerMerge<'a> {
    tree: &'a mut FileTree,
    layer: &'a LayerChanges,
    layer_index: usize,
    hasher: RandomState,
    /// What this layer wrote: an opaque directory hides only lower content.
    written: HashSet<u64>,
    /// Metadata bytes the tree keeps for this layer's entries.
    retained: u64,
}

/// The error for an entry whose parents cannot be resolved.
fn unresolvable(path: &str, e: ResolveError) -> LayerFailure {
    LayerFailure::Unsupported(format!(
        "entry {path:?} cannot be placed: {e}; container runtimes refuse to extract it"
    ))
}

impl<'a> LayerMerge<'a> {
    fn new(tree: &'a mut FileTree, layer: &'a LayerChanges, layer_index: usize) -> Self {
        LayerMerge {
            tree,
            layer,
            layer_index,
            hasher: RandomState::new(),
            written: HashSet::new(),
            retained: 0,
        }
    }

    /// Replays one entry: clears its path, records it if notable, then
    /// places what it is (directories keep what is below them).
    fn op(&mut self, path: &str, kind: OpKind, note: Option<u32>) -> Result<(), LayerFailure> {
        if kind == OpKind::Opaque {
            return self.opaque(path);
        }
        let at = self.tree.locate(path).map_err(|e| unresolvable(path, e))?;
        // A hard link's target is looked up before its own path is cleared.
        let link = match kind {
            OpKind::HardLink(i) => Some(self.link_target(i)?),
            _ => None,
        };
        self.tree.remove(&at);
        if let Some(mode) = note {
            self.note(&at, kind, mode);
        }
        if kind == OpKind::Dir {
            // A directory over a directory keeps what is below it.
            return Ok(());
        }
        self.tree.remove_below(&at);
        if self.place(&at, kind, link) {
            self.written.insert(self.hasher.hash_one(at.as_str()));
        }
        Ok(())
    }

    /// An opaque marker hides the lower layers' content of its directory,
    /// sparing what this layer already wrote there.
    fn opaque(&mut self, path: &str) -> Result<(), LayerFailure> {
        let dir = self
            .tree
            .try_resolve(path)
            .map_err(|e| unresolvable(path, e))?;
        let (written, hasher) = (&self.written, &self.hasher);
        self.tree
            .remove_below_except(&dir, |p| written.contains(&hasher.hash_one(p)));
        Ok(())
    }

    /// What hard link `i`'s target is in the tree as merged so far.
    fn link_target(&self, i: u32) -> Result<(LinkTarget, String, String), LayerFailure> {
        let target = &self.layer.targets[i as usize];
        let t_at = self
            .tree
            .locate(target)
            .map_err(|e| unresolvable(target, e))?;
        let found = if let Some(f) = self.tree.files.get(&t_at) {
            LinkTarget::File(f.data.clone())
        } else if let Some(s) = self.tree.symlink_at(&t_at) {
            LinkTarget::Symlink(s.clone())
        } else if let Some(p) = self.tree.pending.get(&t_at) {
            LinkTarget::Pending(p.clone())
        } else {
            LinkTarget::Missing
        };
        Ok((found, target.clone(), t_at))
    }

    /// Keeps a notable entry (setuid, world-writable, ...) for the report.
    fn note(&mut self, at: &str, kind: OpKind, mode: u32) {
        let dir = kind == OpKind::Dir;
        let note = super::fs::Notable {
            layer: self.layer_index,
            mode,
            dir,
        };
        self.tree.insert_notable(at, note);
        // An opaque marker later in this layer spares what it wrote.
        self.written.insert(self.hasher.hash_one(at));
    }

    /// Puts a file, symlink or hard link at `at`, counting what the tree
    /// keeps; false when the entry left nothing there.
    fn place(
        &mut self,
        at: &str,
        kind: OpKind,
        link: Option<(LinkTarget, String, String)>,
    ) -> bool {
        let cost = at.len() as u64 + ENTRY_OVERHEAD;
        match kind {
            OpKind::File(i) => {
                let data = self.layer.files[i as usize].clone();
                self.insert_file(at, data);
                self.retained += cost;
            }
            OpKind::Symlink(i) => {
                let target = self.layer.targets[i as usize].clone();
                self.retained += cost + target.len() as u64;
                self.tree.insert_symlink(at.to_owned(), target);
            }
            OpKind::HardLink(_) => {
                let Some((found, target, t_at)) = link else {
                    return false;
                };
                self.retained += cost + target.len() as u64;
                self.place_link(at, found, target, t_at);
            }
            _ => return false,
        }
        true
    }

    /// A hard link takes its target's content, or waits for it (pending).
    fn place_link(&mut self, at: &str, found: LinkTarget, target: String, t_at: String) {
        match found {
            LinkTarget::File(data) => self.insert_file(at, data),
            LinkTarget::Symlink(s) => self.tree.insert_symlink(at.to_owned(), s),
            LinkTarget::Pending(p) => {
                self.tree.pending.insert(at.to_owned(), p);
            }
            LinkTarget::Missing => {
                self.tree.pending.insert(
                    at.to_owned(),
                    PendingLink {
                        layer: self.layer_index,
                        target,
                        resolved_target: t_at,
                    },
                );
            }
        }
    }

    /// A file (or a hard link to one) belongs to this layer.
    fn insert_file(&mut self, at: &str, data: FileData) {
        self.tree.files.insert(
            at.to_owned(),
            FileEntry {
                data,
                layer: self.layer_index,
            },
        );
    }
}

// ------------------------------------------------- hard links, second pass

/// Selects, in a second read of one layer, only the targets of wanted hard
/// links whose target no cataloger asked for (builders choose which of two
/// linked names comes first in the archive, so `/etc/os-release` may be a
/// link to an unwanted earlier name). Each target is reduced as the
/// cataloger that wants the link's path would reduce it.
pub struct LinkTargets<W> {
    inner: W,
    /// Target path (as named, and as resolved) → the link's path.
    targets: HashMap<String, String>,
}

impl<'s, W: Deref<Target = dyn FileSelector + 's> + Send + Sync> FileSelector for LinkTargets<W> {
    fn wants(&self, path: &str) -> bool {
        self.targets.contains_key(path)
    }

    fn reduce(&self, path: &str, mode: u32, _sniffed: bool, data: Vec<u8>) -> Option<Vec<u8>> {
        let link = self.targets.get(path).map_or(path, String::as_str);
        self.inner.reduce(link, mode, false, data)
    }
}

/// The layers that a second pass must read again, each with the selector
/// for it, in layer order.
pub fn link_passes<W: Clone>(tree: &FileTree, inner: W) -> BTreeMap<usize, LinkTargets<W>> {
    let mut out: BTreeMap<usize, LinkTargets<W>> = BTreeMap::new();
    for (link, p) in &tree.pending {
        let sel = out.entry(p.layer).or_insert_with(|| LinkTargets {
            inner: inner.clone(),
            targets: HashMap::new(),
        });
        sel.targets.insert(p.target.clone(), link.clone());
        sel.targets.insert(p.resolved_target.clone(), link.clone());
    }
    out
}

/// Fills the pending links of layer `layer_index` from its second read;
/// the changes are otherwise dropped (the layer was merged already).
pub fn fill_links(tree: &mut FileTree, layer_index: usize, changes: LayerChanges, budget: &Budget) {
    let found = changes.kept_files();
    budget.release_metadata(changes.metadata_bytes);
    let fill: Vec<(String, FileData)> = tree
        .pending
        .iter()
        .filter(|(_, p)| p.layer == layer_index)
        .filter_map(|(link, p)| {
            let data = found
                .get(&p.target)
                .or_else(|| found.get(&p.resolved_target))?;
            Some((link.clone(), data.clone()))
        })
        .collect();
    for (link, data) in fill {
        tree.pending.remove(&link);
        tree.files.insert(
            link,
            FileEntry {
                data,
                layer: layer_index,
            },
        );
    }
}

/// Warns about (and forgets) links still pending after the second pass.
pub fn unfilled_links(tree: &mut FileTree, warnings: &mut Vec<String>) {
    let pending = std::mem::take(&mut tree.pending);
    for (i, (link, p)) in pending.iter().enumerate() {
        if i == MAX_WARNINGS_PER_LAYER {
            warnings.push(format!(
                "... and {} more hard links whose target was not found",
                pending.len() - i
            ));
            break;
        }
        warnings.push(format!(
            "layer {}: hard link {link} → {}: the target is not in that layer, so the \
             link is missing from the scan",
            p.layer + 1,
            p.target
        ));
    }
}

// ------------------------------------------- symlinked wanted directories

/// At most this many symlinked wanted directories are followed; more is
/// hostile, and is warned about rather than silently dropped.
const MAX_ALIAS_ROOTS: usize = 64;

/// Selects, in a re-read of the layers, the files written at the real
/// location of a symlinked wanted directory: `var/lib/dpkg -> ../../opt/db`
/// makes `opt/db/status` the `var/lib/dpkg/status` dpkg reads at run time,
/// although no cataloger asked for `opt/db/status` by name. Each file is
/// asked about, and reduced, under its alias path.
pub struct AliasTargets<W> {
    inner: W,
    /// (resolved real directory, alias directory), as found by [`alias_roots`].
    roots: Vec<(String, String)>,
}

impl<W> AliasTargets<W> {
    pub fn new(inner: W, roots: Vec<(String, String)>) -> Self {
        AliasTargets { inner, roots }
    }

    /// The alias path of `path` when it lies below a real root.
    fn alias(&self, path: &str) -> Option<String> {
        self.roots
            .iter()
            .find_map(|(real, alias)| match below(real, path)? {
                "" => Some(alias.clone()),
                rest => Some(join(alias, rest)),
            })
    }
}

impl<'s, W: Deref<Target = dyn FileSelector + 's> + Send + Sync> FileSelector for AliasTargets<W> {
    fn wants(&self, path: &str) -> bool {
        self.alias(path).is_some_and(|a| self.inner.wants(&a))
    }

    fn reduce(&self, path: &str, mode: u32, _sniffed: bool, data: Vec<u8>) -> Option<Vec<u8>> {
        let alias = self.alias(path);
        self.inner
            .reduce(alias.as_deref().unwrap_or(path), mode, false, data)
    }
}

/// `path` relative to `dir` (the root is `""`) if at or below it; `""` for
/// `dir` itself (a symlinked wanted file such as `var/lib/dpkg/status`).
fn below<'p>(dir: &str, path: &'p str) -> Option<&'p str> {
    if dir.is_empty() {
        return Some(path);
    }
    let rest = path.strip_prefix(dir)?;
    if rest.is_empty() {
        return Some(rest);
    }
    rest.strip_prefix('/')
}

/// The symlinks of the merged tree that stand at (or above) a directory
/// holding fixed wanted paths and resolve elsewhere, as (real, alias)
/// pairs. Empty for ordinary images, which then need no re-read. Over
/// [`MAX_ALIAS_ROOTS`] the rest is warned about: never a silent drop.
pub fn alias_roots(
    tree: &FileTree,
    selector: &dyn FileSelector,
    warnings: &mut Vec<String>,
) -> Vec<(String, String)> {
    let mut roots = Vec::new();
    for link in tree.symlinks.keys() {
        if !selector.wants_under(link) {
            continue;
        }
        let Some(real) = tree.resolve(link) else {
            warnings.push(format!(
                "symlink {link} over a directory the catalogers read cannot be resolved; \
                 files behind it are missing from the scan"
            ));
            continue;
        };
        // A symlink into its own subtree or to itself aliases nothing new.
        if real == *link || !selector.hides_wanted(link, &real) {
            continue;
        }
        if roots.len() == MAX_ALIAS_ROOTS {
            warnings.push(format!(
                "more than {MAX_ALIAS_ROOTS} symlinked package-database directories; \
                 files behind {link} and later ones are missing from the scan"
            ));
            break;
        }
        roots.push((real, link.clone()));
    }
    roots
}

/// Adds the files a re-read under [`AliasTargets`] merged into `shadow`
/// (the layers applied again in order, so whiteouts and replacements hold)
/// at their real location, where [`FileTree::get`] finds them through the
/// alias. A file the first pass kept is left as it is.
pub fn adopt_aliased(tree: &mut FileTree, shadow: FileTree, roots: &[(String, String)]) -> usize {
    let mut added = 0;
    for (path, entry) in shadow.files {
        let aliased = roots.iter().any(|(real, _)| below(real, &path).is_some());
        if aliased && !tree.files.contains_key(&path) {
            tree.files.insert(path, entry);
            added += 1;
        }
    }
    added
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
        if self.budget.is_cancelled() {
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
    limit_hit: &'a std::cell::Cell<bool>,
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
                    long_link(&mut b, t);
                    if t.len() <= 100 {
                        h.set_link_name_literal(t).unwrap();
                    }
                    (p, b"")
                }
                E::Hard(p, t) => {
                    h.set_entry_type(tar::EntryType::Link);
                    long_link(&mut b, t);
                    if t.len() <= 100 {
                        h.set_link_name_literal(t).unwrap();
                    }
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

    /// A GNU long-link record before an entry whose target does not fit.
    fn long_link(b: &mut tar::Builder<Vec<u8>>, target: &str) {
        if target.len() <= 100 {
            return;
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNULongLink);
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_size(target.len() as u64 + 1);
        h.set_cksum();
        let data = [target.as_bytes(), b"\0"].concat();
        b.append(&h, &data[..]).unwrap();
    }

    pub fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    pub fn digest(data: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(data)))
    }

    pub(crate) fn source(blob: &[u8]) -> LayerSource {
        LayerSource {
            digest: digest(blob),
            media_type: Some("application/vnd.oci.image.layer.v1.tar+gzip".into()),
            size: Some(blob.len() as u64),
            diff_id: None,
        }
    }

    pub(crate) fn budget() -> Arc<Budget> {
        Budget::new(64 << 20, 256 << 20, 1 << 30, 1 << 30)
    }

    fn want_all(_: &str) -> bool {
        true
    }

    /// Reads and merges layers as `pull` does, minus the network.
    fn squash(layers: &[Vec<u8>], wants: &dyn FileSelector) -> (FileTree, Vec<String>) {
        squash_with(layers, wants, &budget()).unwrap()
    }

    /// The whole merge, second pass for hard links included.
    pub(crate) fn squash_with(
        layers: &[Vec<u8>],
        wants: &dyn FileSelector,
        budget: &Budget,
    ) -> Result<(FileTree, Vec<String>), LayerFailure> {
        let mut tree = FileTree::default();
        let mut warnings = Vec::new();
        for (i, blob) in layers.iter().enumerate() {
            let changes = read_layer(&blob[..], &source(blob), wants, budget)?;
            warnings.extend(changes.warnings.clone());
            apply_layer(&mut tree, changes, i, budget)?;
        }
        for (i, sel) in link_passes(&tree, wants) {
            let blob = &layers[i];
            let changes = read_layer(&blob[..], &source(blob), &sel, budget)?;
            fill_links(&mut tree, i, changes, budget);
        }
        unfilled_links(&mut tree, &mut warnings);
        let roots = alias_roots(&tree, wants, &mut warnings);
        if !roots.is_empty() {
            let sel = AliasTargets::new(wants, roots.clone());
            let mut shadow = FileTree::default();
            for (i, blob) in layers.iter().enumerate() {
                let changes = read_layer(&blob[..], &source(blob), &sel, budget)?;
                apply_layer(&mut shadow, changes, i, budget)?;
            }
            adopt_aliased(&mut tree, shadow, &roots);
        }
        Ok((tree, warnings))
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

    /// Issue 9 #7: entries are placed as containerd places them. `..`
    /// stops at the root, and an entry written through a symlinked
    /// directory (of a lower layer or earlier in its own) lands where the
    /// symlink points, inside the root. Skipping them was a false PASS.
    #[test]
    fn hostile_paths_are_clamped_and_resolved_inside_the_root() {
        let l0 = gzip(&tar_bytes(&[
            E::File("../../etc/passwd", b"evil"),
            E::File("a/../../x", b"clamped"),
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
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            t.files.keys().collect::<Vec<_>>(),
            vec!["etc/hl", "etc/passwd", "etc/shadow", "usr/share/f", "x"]
        );
        assert_eq!(data(&t, "etc/passwd"), Some(&b"through symlink"[..]));
        assert_eq!(t.files["etc/passwd"].layer, 1);
        // The link kept the content it was made with.
        assert_eq!(data(&t, "etc/hl"), Some(&b"evil"[..]));
        assert_eq!(data(&t, "x"), Some(&b"clamped"[..]));
        assert_eq!(t.get("evil/passwd").unwrap().0, "etc/passwd");

        // A symlink and a file below it in the same layer; a relative
        // target climbing out is clamped too.
        let l0 = gzip(&tar_bytes(&[
            E::Sym("s", "/etc"),
            E::File("s/x", b"1"),
            E::Sym("up", "../../../../opt"),
            E::File("up/y", b"2"),
        ]));
        let (t, w) = squash(&[l0], &want_all);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(data(&t, "etc/x"), Some(&b"1"[..]));
        assert_eq!(data(&t, "opt/y"), Some(&b"2"[..]));
    }

    /// The shape from issue 9 #7: the dpkg database directory is a symlink
    /// made in one layer, the status file written through it in the next.
    #[test]
    fn dpkg_status_through_a_symlinked_directory_is_found() {
        let l0 = gzip(&tar_bytes(&[
            E::Dir("opt/dpkgdb/"),
            E::Sym("var/lib/dpkg", "../../opt/dpkgdb"),
        ]));
        let l1 = gzip(&tar_bytes(&[E::File(
            "var/lib/dpkg/status",
            b"Package: a\n",
        )]));
        let l2 = gzip(&tar_bytes(&[E::File(
            "../var/lib/dpkg/status.d/b",
            b"Package: b\n",
        )]));
        let wants = |p: &str| p.starts_with("var/lib/dpkg/");
        let (t, w) = squash(&[l0, l1, l2], &wants);
        assert!(w.is_empty(), "{w:?}");
        let (real, f) = t.get("var/lib/dpkg/status").unwrap();
        assert_eq!(real, "opt/dpkgdb/status");
        assert_eq!(f.data, b"Package: a\n");
        assert_eq!(t.list_dir("var/lib/dpkg/status.d").len(), 1);

        // A whiteout through the symlink removes the real file.
        let l3 = gzip(&tar_bytes(&[E::File("var/lib/dpkg/.wh.status", b"")]));
        let (t, _) = squash(
            &[
                l0_again(),
                gzip(&tar_bytes(&[E::File("var/lib/dpkg/status", b"s")])),
                l3,
            ],
            &wants,
        );
        assert!(t.get("var/lib/dpkg/status").is_none());
    }

    fn l0_again() -> Vec<u8> {
        gzip(&tar_bytes(&[E::Sym("var/lib/dpkg", "../../opt/dpkgdb")]))
    }

    /// An opaque marker applies to the directory as it is when the marker
    /// comes: here a real directory that replaced a symlink, so what the
    /// symlink pointed at stays.
    #[test]
    fn opaque_directory_is_resolved_in_archive_order() {
        let l0 = gzip(&tar_bytes(&[
            E::File("var/lib/dpkg/status", b"kept"),
            E::Sym("x", "var/lib/dpkg"),
        ]));
        let l1 = gzip(&tar_bytes(&[
            E::Dir("x/"),
            E::File("x/.wh..wh..opq", b""),
            E::File("x/new", b"n"),
        ]));
        let (t, _) = squash(&[l0, l1], &want_all);
        assert_eq!(data(&t, "var/lib/dpkg/status"), Some(&b"kept"[..]));
        assert_eq!(data(&t, "x/new"), Some(&b"n"[..]));
        assert!(!t.symlinks.contains_key("x"));
    }

    #[test]
    fn parent_symlink_loops_fail_the_layer() {
        let l0 = gzip(&tar_bytes(&[
            E::Sym("a", "b"),
            E::Sym("b", "a"),
            E::File("a/status", b"x"),
        ]));
        let err = squash_with(&[l0], &want_all, &budget()).unwrap_err();
        assert!(
            matches!(err, LayerFailure::Unsupported(ref m) if m.contains("a/status") && m.contains("symlinks")),
            "{err:?}"
        );
    }

    #[test]
    fn hard_links_share_kept_targets() {
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
        // libfoo.so.1 is not wanted, and it is in a lower layer: the second
        // pass reads only the link's own layer, so the link is missing.
        let wants = |p: &str| p != "lib/libfoo.so.1";
        let (t, w) = squash(&[l0, l1], &wants);
        assert_eq!(data(&t, "opt/link"), Some(&b"real"[..]));
        assert_eq!(data(&t, "opt/link2"), Some(&b"real"[..]));
        assert!(t.files["opt/link"].data.shares(&t.files["opt/real"].data));
        assert_eq!(t.files["opt/link"].layer, 1);
        // Target in a lower layer.
        assert_eq!(data(&t, "usr/bin/python3"), Some(&b"py"[..]));
        assert_eq!(data(&t, "lib/libfoo.so"), None);
        assert!(w.iter().any(|w| w.contains("lib/libfoo.so")), "{w:?}");
        assert!(t.pending.is_empty());
    }

    /// Issue 10 class 1: a wanted file stored as a hard link to an earlier
    /// entry of its layer that nobody wanted is found by a second read of
    /// that layer keeping only the link targets, and reduced as the link's
    /// own path would be.
    #[test]
    fn wanted_hard_links_to_unwanted_targets_are_filled_by_a_second_pass() {
        let l0 = gzip(&tar_bytes(&[
            E::File("usr/lib/os-release.orig", b"ID=debian\nVERSION_ID=12\n"),
            E::Hard("etc/os-release", "usr/lib/os-release.orig"),
            E::Hard("etc/os-release2", "etc/os-release"),
            E::File("app/x.db", b"first\nsecond"),
        ]));
        // A later layer deletes one of the links: it stays deleted.
        let l1 = gzip(&tar_bytes(&[E::File("etc/.wh.os-release2", b"")]));
        struct Wants;
        impl FileSelector for Wants {
            fn wants(&self, p: &str) -> bool {
                p.starts_with("etc/os-release")
            }
            fn reduce(&self, p: &str, _: u32, _: bool, data: Vec<u8>) -> Option<Vec<u8>> {
                assert!(p.starts_with("etc/"), "reduced as the link: {p}");
                Some(data[..data.len().min(9)].to_vec())
            }
        }
        let (t, w) = squash(&[l0, l1], &Wants);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(data(&t, "etc/os-release"), Some(&b"ID=debian"[..]));
        assert_eq!(t.files["etc/os-release"].layer, 0);
        assert!(!t.files.contains_key("etc/os-release2"));
        assert!(!t.files.contains_key("usr/lib/os-release.orig"));
        assert!(t.pending.is_empty());
    }

    /// Issue 9 #2: thirty links to one 60 MiB wanted file hold one copy.
    #[test]
    fn many_hard_links_to_a_large_file_share_one_copy() {
        let big = vec![7u8; 60 << 20];
        let mut entries = vec![E::File("var/lib/rpm/Packages", &big)];
        let names: Vec<String> = (0..30).map(|i| format!("var/lib/rpm/l{i}")).collect();
        entries.extend(names.iter().map(|n| E::Hard(n, "var/lib/rpm/Packages")));
        let blob = tar_bytes(&entries);
        let budget = Budget::new(64 << 20, 64 << 20, 1 << 30, 100 << 20);
        let (t, _) = squash_with(&[blob], &want_all, &budget).unwrap();
        assert_eq!(t.files.len(), 31);
        assert!(budget.kept_bytes() == 60 << 20, "{}", budget.kept_bytes());
        let first = &t.files["var/lib/rpm/Packages"].data;
        assert!(t.files.values().all(|f| f.data.shares(first)));
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
            apply_layer(&mut tree, c, i, &budget).unwrap();
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
        apply_layer(&mut t, c, 0, &budget).unwrap();
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
            apply_layer(&mut tree, c, i, &budget).unwrap();
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
        apply_layer(&mut tree, changes, 0, &budget()).unwrap();
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

    /// Issue 9 #2: a 1 GiB GNU long name (a few MB compressed) was read
    /// whole into memory; now it fails at its header.
    #[test]
    fn huge_gnu_long_name_fails_before_it_is_read() {
        let mut tar = crate::image::tarstream::tests::long_name_header(1 << 30);
        tar.resize(tar.len() + (4 << 20), b'a');
        let blob = gzip(&tar);
        let err = read_layer(&blob[..], &source(&blob), &want_all, &budget()).unwrap_err();
        assert!(
            matches!(err, LayerFailure::Limit(ref m) if m.contains("4096")),
            "{err:?}"
        );
    }

    #[test]
    fn symlink_targets_count_against_the_metadata_budget() {
        let target = "t".repeat(4000);
        let names: Vec<String> = (0..300).map(|i| format!("usr/share/l{i}")).collect();
        let entries: Vec<E<'_>> = names.iter().map(|n| E::Sym(n, &target)).collect();
        let blob = gzip(&tar_bytes(&entries));
        let b = Budget::with_metadata(
            Budget::plain(1 << 20, 1 << 20, 1 << 30, 1 << 30),
            1 << 20,
            1 << 20,
        );
        let err = read_layer(&blob[..], &source(&blob), &want_all, &b).unwrap_err();
        assert!(
            matches!(err, LayerFailure::Limit(ref m) if m.contains("max_metadata_bytes")),
            "{err:?}"
        );
        assert_eq!(b.metadata_bytes(), 0, "a failed layer gives its share back");

        // Under the budget: all kept, and after the merge only what the
        // tree holds stays counted.
        let b = Budget::with_metadata(
            Budget::plain(1 << 20, 1 << 20, 1 << 30, 1 << 30),
            4 << 20,
            1 << 20,
        );
        let dirs: Vec<String> = (0..1000).map(|i| format!("usr/share/doc/d{i}/")).collect();
        let mut entries: Vec<E<'_>> = dirs.iter().map(|d| E::Dir(d)).collect();
        entries.extend(names.iter().map(|n| E::Sym(n, &target)));
        let blob = gzip(&tar_bytes(&entries));
        let c = read_layer(&blob[..], &source(&blob), &want_all, &b).unwrap();
        let read = b.metadata_bytes();
        assert!(read > 300 * 4000, "{read}");
        let mut t = FileTree::default();
        apply_layer(&mut t, c, 0, &b).unwrap();
        assert_eq!(t.symlinks.len(), 300);
        assert!(b.metadata_bytes() < read, "{} < {read}", b.metadata_bytes());
    }

    #[test]
    fn entries_per_image_are_capped() {
        let dirs: Vec<String> = (0..50).map(|i| format!("d{i}/")).collect();
        let entries: Vec<E<'_>> = dirs.iter().map(|d| E::Dir(d)).collect();
        let blob = gzip(&tar_bytes(&entries));
        let b = Budget::with_metadata(
            Budget::plain(1 << 20, 1 << 20, 1 << 30, 1 << 30),
            1 << 20,
            80,
        );
        read_layer(&blob[..], &source(&blob), &want_all, &b).unwrap();
        let err = read_layer(&blob[..], &source(&blob), &want_all, &b).unwrap_err();
        assert!(
            matches!(err, LayerFailure::Limit(ref m) if m.contains("max_entries")),
            "{err:?}"
        );
    }

    /// Names are stored front-coded: a layer of many siblings costs a few
    /// bytes per entry, and paths come back intact (multi-byte too).
    #[test]
    fn names_are_front_coded_and_round_trip() {
        let names: Vec<String> = (0..2000)
            .map(|i| format!("usr/share/locale/\u{e9}t\u{e9}/LC_MESSAGES/pkg{i}.mo"))
            .collect();
        let entries: Vec<E<'_>> = names.iter().map(|n| E::File(n, b"m")).collect();
        let blob = gzip(&tar_bytes(&entries));
        let b = budget();
        let c = read_layer(&blob[..], &source(&blob), &want_all, &b).unwrap();
        assert!(c.names.len() < 2000 * 8, "{}", c.names.len());
        let mut t = FileTree::default();
        apply_layer(&mut t, c, 0, &b).unwrap();
        assert!(names.iter().all(|n| t.files.contains_key(n)));
    }

    /// Issue 9 #13: bytes after the tar end marker are capped instead of
    /// drained up to the declared size.
    #[test]
    fn long_tails_after_the_end_marker_are_refused() {
        let mut tar = tar_bytes(&[E::File("f", b"1")]);
        let ok = gzip(&tar);
        assert!(read_layer(&ok[..], &source(&ok), &want_all, &budget()).is_ok());
        tar.resize(tar.len() + (MAX_BLOB_TAIL as usize) + 4096, 0xAA);
        let err = read_layer(&tar[..], &source(&tar), &want_all, &budget()).unwrap_err();
        assert!(
            matches!(err, LayerFailure::Limit(ref m) if m.contains("end of the tar")),
            "{err:?}"
        );
        // The same inside the compression (diff_id checked).
        let blob = gzip(&tar);
        let mut src = source(&blob);
        src.diff_id = Some(digest(&tar));
        let err = read_layer(&blob[..], &src, &want_all, &budget()).unwrap_err();
        assert!(
            matches!(err, LayerFailure::Limit(ref m) if m.contains("end of the tar")),
            "{err:?}"
        );
    }

    #[test]
    fn kept_bytes_are_reserved_in_the_shared_budget_until_the_budget_drops() {
        let shared = super::super::memory::MemoryBudget::new(100);
        let limits = super::super::Limits::default();
        let first = Budget::from_limits(&limits).charging(&shared);
        first.charge_kept(60).unwrap();
        assert_eq!(shared.used(), 60);
        // Another job's pull cannot take what the first holds.
        let second = Budget::from_limits(&limits).charging(&shared);
        let err = second.charge_kept(60).unwrap_err();
        assert!(matches!(err, LayerFailure::MemoryBusy(_)), "{err:?}");
        // A failed layer gives its bytes back; a finished pull all of them.
        first.release_kept(20);
        assert_eq!(shared.used(), 40);
        drop(first);
        assert_eq!(shared.used(), 0);
        second.charge_kept(60).unwrap();
        assert_eq!(shared.used(), 60);
    }

    /// A selector wanting dpkg's fixed status path, as the catalogers do.
    struct DpkgOnly;

    impl FileSelector for DpkgOnly {
        fn wants(&self, path: &str) -> bool {
            path == "var/lib/dpkg/status"
        }
        fn wants_under(&self, dir: &str) -> bool {
            dir.is_empty()
                || "var/lib/dpkg" == dir
                || "var/lib/dpkg".starts_with(&format!("{dir}/"))
        }
        fn reduce(&self, path: &str, _: u32, _: bool, data: Vec<u8>) -> Option<Vec<u8>> {
            // Proves the file is reduced under its alias path.
            assert_eq!(path, "var/lib/dpkg/status");
            Some(data)
        }
    }

    /// The reverse of issue 9 #7: `var/lib/dpkg` is a symlink and the
    /// status file is written at its real location, a name nobody wanted.
    /// dpkg reads it at run time, so the scan must too (it was dropped: a
    /// silent false PASS). Lower and upper layer orders, and a whiteout.
    #[test]
    fn files_at_a_symlinked_wanted_dirs_real_location_are_kept() {
        let sym = gzip(&tar_bytes(&[
            E::Dir("opt/pkgdb"),
            E::Sym("var/lib/dpkg", "../../opt/pkgdb"),
        ]));
        let db = gzip(&tar_bytes(&[
            E::File("opt/pkgdb/status", b"Package: evil\n"),
            E::File("opt/pkgdb/other", b"not wanted"),
        ]));
        for layers in [vec![sym.clone(), db.clone()], vec![db.clone(), sym.clone()]] {
            let (t, w) = squash(&layers, &DpkgOnly);
            assert!(w.is_empty(), "{w:?}");
            let (real, f) = t
                .get("var/lib/dpkg/status")
                .expect("status through the alias");
            assert_eq!(real, "opt/pkgdb/status");
            assert_eq!(f.data, b"Package: evil\n");
            assert!(!t.files.contains_key("opt/pkgdb/other"));
        }
        // A later whiteout of the real file still deletes it.
        let wh = gzip(&tar_bytes(&[E::File("opt/pkgdb/.wh.status", b"")]));
        let (t, _) = squash(&[sym.clone(), db.clone(), wh], &DpkgOnly);
        assert!(t.get("var/lib/dpkg/status").is_none());
    }

    /// Ordinary images (no symlink over a wanted directory) read nothing
    /// again, and a symlink elsewhere does not count.
    #[test]
    fn alias_roots_only_for_symlinks_over_wanted_dirs() {
        let l0 = gzip(&tar_bytes(&[
            E::Sym("bin", "usr/bin"),
            E::Sym("var/lib/dpkg/alternatives", "/etc/alternatives"),
            E::File("var/lib/dpkg/status", b"Package: a\n"),
        ]));
        let (t, _) = squash(&[l0], &DpkgOnly);
        let mut w = Vec::new();
        assert!(alias_roots(&t, &DpkgOnly, &mut w).is_empty());
        let l1 = gzip(&tar_bytes(&[E::Sym("var", "srv/v")]));
        let (t, _) = squash(&[l1], &DpkgOnly);
        assert_eq!(
            alias_roots(&t, &DpkgOnly, &mut w),
            vec![("srv/v".to_owned(), "var".to_owned())]
        );
    }
}
