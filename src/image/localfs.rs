//! Opening the files of a local image (an OCI layout's `index.json` and
//! blobs, a `docker save` tar) as hostile input.
//!
//! A plain `File::open` follows symbolic links (a blob that is a link to
//! `/dev/zero` or to a file outside the layout) and blocks forever on a
//! FIFO with no writer, freezing the scan before any timeout can act. Here
//! a file is opened with `O_NONBLOCK` (opening a FIFO returns at once; the
//! flag changes nothing for regular files, the only ones kept) and, inside
//! a layout, `O_NOFOLLOW`; `fstat` on the open descriptor then decides, so
//! nothing can be swapped between the check and the read.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why a local image file was not opened.
#[derive(Debug, thiserror::Error)]
pub enum LocalFileError {
    #[error("{path} does not exist")]
    NotFound { path: String },
    #[error(
        "{path} is not a regular file but {kind}: a local image is read only from regular files \
         (inside a layout, not through a symbolic link; never a FIFO or device)"
    )]
    NotRegular { path: String, kind: &'static str },
    #[error("{path} resolves to {resolved}, outside the layout")]
    Escapes { path: String, resolved: String },
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
}

/// Whether the last path component may be a symbolic link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Inside a layout: a link is refused (`O_NOFOLLOW`), even to the right
    /// bytes, since it may point anywhere on the worker's disk.
    Refuse,
    /// A path the user named on the command line: a link to a regular file
    /// is theirs to make.
    Follow,
}

/// Opens `path` if it is a regular file, never blocking on a FIFO.
pub fn open_regular(path: &Path, links: Links) -> Result<(File, Metadata), LocalFileError> {
    let mut flags = libc::O_NONBLOCK;
    if links == Links::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| open_error(path, e))?;
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    if !meta.is_file() {
        return Err(LocalFileError::NotRegular {
            path: path.display().to_string(),
            kind: kind_of(&meta),
        });
    }
    Ok((file, meta))
}

/// `root/rel` resolved, refused unless it stays inside the resolved `root`
/// (a `blobs` directory that is a link out of the layout).
pub fn dir_within(root: &Path, rel: &Path) -> Result<PathBuf, LocalFileError> {
    let root = root.canonicalize().map_err(|e| io_error(root, e))?;
    let dir = root.join(rel);
    let resolved = dir.canonicalize().map_err(|e| io_error(&dir, e))?;
    if !resolved.starts_with(&root) {
        return Err(LocalFileError::Escapes {
            path: dir.display().to_string(),
            resolved: resolved.display().to_string(),
        });
    }
    Ok(resolved)
}

fn open_error(path: &Path, e: io::Error) -> LocalFileError {
    // O_NOFOLLOW on a symbolic link fails with ELOOP.
    if e.raw_os_error() == Some(libc::ELOOP) {
        return LocalFileError::NotRegular {
            path: path.display().to_string(),
            kind: "a symbolic link",
        };
    }
    io_error(path, e)
}

fn io_error(path: &Path, source: io::Error) -> LocalFileError {
    let path = path.display().to_string();
    if source.kind() == io::ErrorKind::NotFound {
        LocalFileError::NotFound { path }
    } else {
        LocalFileError::Io { path, source }
    }
}

fn kind_of(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_links_fifos_and_devices() {
        let dir = std::env::temp_dir().join(format!("scangate-localfs-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&dir).unwrap();
        let file = dir.join("file");
        std::fs::write(&file, b"x").unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());

        assert_eq!(open_regular(&file, Links::Refuse).unwrap().1.len(), 1);
        assert_eq!(open_regular(&link, Links::Follow).unwrap().1.len(), 1);
        let kind = |p: &Path, l| match open_regular(p, l) {
            Err(LocalFileError::NotRegular { kind, .. }) => kind,
            other => panic!("{p:?}: {other:?}"),
        };
        assert_eq!(kind(&link, Links::Refuse), "a symbolic link");
        assert_eq!(kind(&fifo, Links::Follow), "a FIFO");
        assert_eq!(kind(Path::new("/dev/null"), Links::Follow), "a device");
        assert_eq!(kind(&dir, Links::Follow), "a directory");
        assert!(matches!(
            open_regular(&dir.join("none"), Links::Refuse),
            Err(LocalFileError::NotFound { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
