//! Watching every regular file's bytes as a layer streams past, whether or
//! not a cataloger keeps the file: the hook the secret scanner
//! ([`crate::risks::secrets`]) uses to look at content in the same single
//! pass that builds the SBOM.
//!
//! The layer reader decompresses every entry anyway (to get past it), so
//! showing those bytes to an observer costs a copy into its window, not a
//! second read. A pull without an observer ([`PullOptions::observer`] is
//! `None`) takes none of these paths.
//!
//! [`PullOptions::observer`]: super::PullOptions::observer

use std::fmt;
use std::io::{self, Read};
use std::sync::Arc;

use super::layer::{FileSelector, LayerSource};

/// Sees the content of the layers of one pull. Layers are read in parallel
/// and may be read again after a failure, so each read gets its own
/// [`LayerVisit`], and only a visit that [`finish`](LayerVisit::finish)es
/// counts.
pub trait EntryObserver: Send + Sync {
    fn layer<'a>(&'a self, source: &LayerSource) -> Box<dyn LayerVisit + 'a>;
}

/// One read of one layer, entry by entry in archive order.
pub trait LayerVisit {
    /// A whiteout deleted `path` (`opaque == false`), or an opaque
    /// directory hid everything lower layers had below `path`.
    fn removed(&mut self, path: &str, opaque: bool);
    /// A regular file starts (`path` normalised, no leading `/`); `true`
    /// to be shown its bytes.
    fn file(&mut self, path: &str, size: u64) -> bool;
    /// The file's next bytes, in order; `false` once it has seen enough
    /// (the reader then skips the rest without showing it).
    fn data(&mut self, bytes: &[u8]) -> bool;
    /// The file ended, whether or not all of it was shown.
    fn end_file(&mut self);
    /// Any other entry (directory, symlink, hard link, sparse file,
    /// device) at `path`: it replaces what lower layers had there, so a
    /// visit that tracks overwrites needs it.
    fn entry(&mut self, _path: &str, _dir: bool) {}
    /// The layer was read whole and its digests verified.
    fn finish(self: Box<Self>);
}

/// An observer carried by the pull options (cloned with them).
#[derive(Clone)]
pub struct Observer(pub Arc<dyn EntryObserver>);

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Observer")
    }
}

/// A selector that keeps what `inner` keeps and shows every layer's files
/// to `observer`. The second passes (hard-link targets, symlinked package
/// directories) wrap the selector in their own types, which have no
/// observer: those re-reads are not observed twice.
pub struct Observed {
    pub inner: super::Wants,
    pub observer: Arc<dyn EntryObserver>,
}

impl FileSelector for Observed {
    fn wants(&self, path: &str) -> bool {
        self.inner.wants(path)
    }
    fn sniff_len(&self) -> usize {
        self.inner.sniff_len()
    }
    fn sniff(&self, path: &str, mode: u32, head: &[u8]) -> bool {
        self.inner.sniff(path, mode, head)
    }
    fn reduce(&self, path: &str, mode: u32, sniffed: bool, data: Vec<u8>) -> Option<Vec<u8>> {
        self.inner.reduce(path, mode, sniffed, data)
    }
    fn wants_under(&self, dir: &str) -> bool {
        self.inner.wants_under(dir)
    }
    fn hides_wanted(&self, alias: &str, real: &str) -> bool {
        self.inner.hides_wanted(alias, real)
    }
    fn observer(&self) -> Option<&dyn EntryObserver> {
        Some(&*self.observer)
    }
}

/// `wants` with the pull's observer, if it has one.
pub fn with_observer(wants: super::Wants, observer: Option<&Observer>) -> super::Wants {
    match observer {
        Some(o) => Arc::new(Observed {
            inner: wants,
            observer: o.0.clone(),
        }),
        None => wants,
    }
}

/// An entry's data reader that also shows each byte read to a visit, until
/// the visit has seen enough.
pub(crate) struct Tee<'v, R> {
    inner: R,
    visit: &'v mut dyn LayerVisit,
    open: bool,
}

impl<'v, R: Read> Tee<'v, R> {
    pub(crate) fn new(inner: R, visit: &'v mut dyn LayerVisit) -> Self {
        Tee {
            inner,
            visit,
            open: true,
        }
    }

    /// Reads (and shows) what the cataloger did not read, while the visit
    /// still wants it. Bounded by the entry's size.
    pub(crate) fn drain(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 16 << 10];
        while self.open {
            if self.read(&mut buf)? == 0 {
                break;
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.open && n > 0 {
            self.open = self.visit.data(&buf[..n]);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::sync::Mutex;

    use super::*;
    use crate::image::fs::FileTree;
    use crate::image::layer::tests::{E, source, tar_bytes};
    use crate::image::layer::{Budget, apply_layer, read_layer};

    /// Records what it is shown; stops reading files named `*.stop` after
    /// their first bytes.
    #[derive(Default)]
    struct Recorder {
        files: Mutex<Vec<(String, Vec<u8>)>>,
        removed: Mutex<Vec<(String, bool)>>,
        finished: Mutex<usize>,
    }

    struct Visit<'a> {
        rec: &'a Recorder,
        files: Vec<(String, Vec<u8>)>,
        removed: Vec<(String, bool)>,
    }

    impl EntryObserver for Recorder {
        fn layer<'a>(&'a self, _: &LayerSource) -> Box<dyn LayerVisit + 'a> {
            Box::new(Visit {
                rec: self,
                files: Vec::new(),
                removed: Vec::new(),
            })
        }
    }

    impl LayerVisit for Visit<'_> {
        fn removed(&mut self, path: &str, opaque: bool) {
            self.removed.push((path.into(), opaque));
        }
        fn file(&mut self, path: &str, _size: u64) -> bool {
            self.files.push((path.into(), Vec::new()));
            true
        }
        fn data(&mut self, bytes: &[u8]) -> bool {
            let (path, seen) = self.files.last_mut().unwrap();
            seen.extend_from_slice(bytes);
            !path.ends_with(".stop")
        }
        fn end_file(&mut self) {}
        fn finish(self: Box<Self>) {
            self.rec.files.lock().unwrap().extend(self.files);
            self.rec.removed.lock().unwrap().extend(self.removed);
            *self.rec.finished.lock().unwrap() += 1;
        }
    }

    fn read(blob: &[u8], rec: &Arc<Recorder>, src: &LayerSource) -> Option<FileTree> {
        let sel = Observed {
            inner: Arc::new(|p: &str| p == "etc/wanted"),
            observer: rec.clone(),
        };
        let budget = Budget::new(1 << 20, 1 << 20, 1 << 30, 1 << 30);
        let changes = read_layer(Cursor::new(blob), src, &sel, &budget).ok()?;
        let mut tree = FileTree::default();
        apply_layer(&mut tree, changes, 0, &budget).unwrap();
        Some(tree)
    }

    #[test]
    fn every_file_is_shown_once_kept_or_not_and_whiteouts_too() {
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let blob = tar_bytes(&[
            E::File("etc/wanted", b"kept and shown"),
            E::File("app/big.bin", &big),
            E::File("app/cut.stop", &big),
            E::Exec("bin/tool", b"\x7fELF..."),
            E::File("old/.wh.gone", b""),
            E::Dir("var/cache"),
            E::File("var/cache/.wh..wh..opq", b""),
        ]);
        let rec = Arc::new(Recorder::default());
        let tree = read(&blob, &rec, &source(&blob)).unwrap();
        // The cataloger still gets its file whole.
        assert_eq!(tree.files["etc/wanted"].data, b"kept and shown");
        let files = rec.files.lock().unwrap();
        let seen = |p: &str| files.iter().find(|(f, _)| f == p).unwrap().1.clone();
        assert_eq!(seen("etc/wanted"), b"kept and shown");
        assert_eq!(seen("app/big.bin"), big);
        assert_eq!(seen("bin/tool"), b"\x7fELF...");
        // It said stop: shown fewer bytes, and the next entries still read.
        assert!(seen("app/cut.stop").len() < big.len());
        assert_eq!(
            *rec.removed.lock().unwrap(),
            vec![
                ("old/gone".to_string(), false),
                ("var/cache".to_string(), true)
            ]
        );
        assert_eq!(*rec.finished.lock().unwrap(), 1);
    }

    #[test]
    fn a_failed_read_is_never_finished() {
        let blob = tar_bytes(&[E::File("etc/wanted", b"x"), E::File("a", b"y")]);
        let rec = Arc::new(Recorder::default());
        let mut wrong = source(&blob);
        wrong.digest = format!("sha256:{}", "0".repeat(64));
        assert!(read(&blob, &rec, &wrong).is_none());
        assert_eq!(*rec.finished.lock().unwrap(), 0);
        assert!(rec.files.lock().unwrap().is_empty());
    }
}
