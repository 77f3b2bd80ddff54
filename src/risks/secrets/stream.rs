//! Searching one file for secrets as its bytes stream past, in flat memory:
//! a window of at most a chunk plus the context lines a keyword's regex
//! needs, whatever the file's size or line lengths.
//!
//! The buffer holds `[context already searched][fresh bytes]`. Each round
//! searches the fresh bytes for keywords, except the last few lines (their
//! following lines are not here yet: they wait for the next chunk, or the
//! end of the file), then drops what no later window can reach.

use super::engine::{Hit, LINES_AFTER, LINES_BEFORE, RuleSet, WINDOW_BYTES};
use super::skip::{SNIFF_BYTES, content_skipped};

/// Bytes taken into the buffer at once.
const CHUNK: usize = 64 << 10;
/// Findings per file: past this the file has said enough (a key dump).
pub const MAX_PER_FILE: usize = 10;

/// A secret in a file: the rule, its 1-based line and the redacted value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub rule: usize,
    pub line: u32,
    pub excerpt: String,
    start: u64,
    end: u64,
}

pub struct FileScan<'r> {
    rules: &'r RuleSet,
    /// Absolute path, for rules limited to some files.
    path: String,
    applies: Vec<Option<bool>>,
    buf: Vec<u8>,
    /// `buf[fresh..]` has not been searched for keywords yet.
    fresh: usize,
    /// File offset and 1-based line of `buf[0]`.
    base: u64,
    base_line: u32,
    sniffed: bool,
    skipped: bool,
    found: Vec<Found>,
}

impl<'r> FileScan<'r> {
    pub fn new(rules: &'r RuleSet, abs_path: String) -> Self {
        FileScan {
            rules,
            path: abs_path,
            applies: vec![None; rules.rules.len()],
            buf: Vec::new(),
            fresh: 0,
            base: 0,
            base_line: 1,
            sniffed: false,
            skipped: false,
            found: Vec::new(),
        }
    }

    /// Takes the file's next bytes; `false` once nothing more is wanted
    /// (not text, or enough findings).
    pub fn feed(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            if self.skipped || self.found.len() >= MAX_PER_FILE {
                return false;
            }
            let take = bytes.len().min(CHUNK);
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if !self.sniffed {
                if self.buf.len() < SNIFF_BYTES {
                    continue;
                }
                if !self.sniff() {
                    return false;
                }
            }
            self.round(false);
        }
        !self.skipped && self.found.len() < MAX_PER_FILE
    }

    /// Searches what is left; the findings, and whether the file turned
    /// out not to be text.
    pub fn finish(mut self) -> (Vec<Found>, bool) {
        if !self.skipped && (self.sniffed || self.sniff()) {
            self.round(true);
        }
        // In file order, however the rounds cut the file.
        self.found.sort_by_key(|f| (f.start, f.rule));
        (self.found, self.skipped)
    }

    fn sniff(&mut self) -> bool {
        self.sniffed = true;
        if content_skipped(&self.buf) {
            self.skipped = true;
            self.buf = Vec::new();
        }
        !self.skipped
    }

    fn round(&mut self, eof: bool) {
        let cut = if eof { self.buf.len() } else { self.cut() };
        if cut > self.fresh {
            let mut hits = Vec::new();
            let (rules, path, applies) = (self.rules, &self.path, &mut self.applies);
            let mut applies =
                |r: usize| *applies[r].get_or_insert_with(|| rules.rules[r].applies_to(path));
            rules.scan(&self.buf, self.fresh, cut, &mut applies, &mut hits);
            for h in hits {
                self.record(h);
            }
            self.fresh = cut;
        }
        if !eof {
            self.forget();
        }
    }

    /// Where the lines still waiting for their following lines begin.
    fn cut(&self) -> usize {
        let len = self.buf.len();
        // A keyword before this has a full window after it.
        let lo = len.saturating_sub(WINDOW_BYTES + self.rules.longest);
        memchr::memrchr_iter(b'\n', &self.buf[lo..])
            .nth(LINES_AFTER)
            .map_or(lo, |i| lo + i + 1)
    }

    /// Drops the bytes before the context lines of the first fresh byte.
    fn forget(&mut self) {
        let lo = self.fresh.saturating_sub(WINDOW_BYTES);
        let keep = memchr::memrchr_iter(b'\n', &self.buf[lo..self.fresh])
            .nth(LINES_BEFORE)
            .map_or(lo, |i| lo + i + 1);
        self.base_line = self
            .base_line
            .saturating_add(memchr::memchr_iter(b'\n', &self.buf[..keep]).count() as u32);
        self.buf.drain(..keep);
        self.base += keep as u64;
        self.fresh -= keep;
    }

    fn record(&mut self, h: Hit) {
        let (start, end) = (self.base + h.start as u64, self.base + h.end as u64);
        // Two rules (or two rounds) on one value: the first report stands.
        if self.found.len() >= MAX_PER_FILE
            || self.found.iter().any(|f| f.start < end && start < f.end)
        {
            return;
        }
        let line = self
            .base_line
            .saturating_add(memchr::memchr_iter(b'\n', &self.buf[..h.start]).count() as u32);
        self.found.push(Found {
            rule: h.rule,
            line,
            excerpt: super::redact(&self.buf[h.start..h.end]),
            start,
            end,
        });
    }
}

#[cfg(test)]
impl FileScan<'_> {
    /// Bytes held now (tests of the flat-memory promise).
    pub fn buffered(&self) -> usize {
        self.buf.capacity()
    }
}
