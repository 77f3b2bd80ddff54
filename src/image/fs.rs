//! The squashed view of an image's filesystem, restricted to the files the
//! catalogers asked for. Layers are streamed once and only wanted files are
//! kept, so memory follows the size of package databases, not of the image.

use std::collections::BTreeMap;

/// A regular file kept from the image.
#[derive(Debug, Clone)]
pub struct FileEntry {
    pub data: Vec<u8>,
    /// Index into `PulledImage::layers` of the layer that last wrote the file.
    pub layer: usize,
}

/// Files and symlinks of the final (whiteouts applied) filesystem.
/// Paths are absolute-free and normalised: `etc/os-release`, no leading `/`.
#[derive(Debug, Default, Clone)]
pub struct FileTree {
    pub files: BTreeMap<String, FileEntry>,
    /// Every symlink in the image (path → raw target), so that wanted paths
    /// behind symlinked files or directories resolve.
    pub symlinks: BTreeMap<String, String>,
}

impl FileTree {
    /// Follows symlinks (in any path component, at most 40 hops, like Linux)
    /// and returns the file at `path`.
    pub fn get(&self, path: &str) -> Option<(&str, &FileEntry)> {
        let resolved = self.resolve(path)?;
        self.files
            .get_key_value(resolved.as_str())
            .map(|(k, v)| (k.as_str(), v))
    }

    /// Resolves symlinks in every component of `path`; `None` on a loop.
    pub fn resolve(&self, path: &str) -> Option<String> {
        let mut hops = 0;
        let mut pending: Vec<String> = split(path).into_iter().rev().collect();
        let mut out: Vec<String> = Vec::new();
        while let Some(comp) = pending.pop() {
            match comp.as_str() {
                "." | "" => continue,
                ".." => {
                    out.pop();
                    continue;
                }
                _ => {}
            }
            out.push(comp);
            let cur = out.join("/");
            if let Some(target) = self.symlinks.get(&cur) {
                hops += 1;
                if hops > 40 {
                    return None;
                }
                out.pop();
                if target.starts_with('/') {
                    out.clear();
                }
                for c in split(target).into_iter().rev() {
                    pending.push(c);
                }
            }
        }
        Some(out.join("/"))
    }

    /// Removes the file or symlink at exactly `path`.
    pub fn remove(&mut self, path: &str) {
        self.files.remove(path);
        self.symlinks.remove(path);
    }

    /// Removes every file and symlink below the directory `dir` (the whole
    /// tree when `dir` is empty), by key range rather than a full scan,
    /// since whiteouts can be numerous.
    pub fn remove_below(&mut self, dir: &str) {
        if dir.is_empty() {
            self.files.clear();
            self.symlinks.clear();
            return;
        }
        let prefix = format!("{dir}/");
        remove_prefixed(&mut self.files, &prefix);
        remove_prefixed(&mut self.symlinks, &prefix);
    }

    /// Files (after symlink resolution of the directory) directly under `dir`.
    pub fn list_dir(&self, dir: &str) -> Vec<(&str, &FileEntry)> {
        let Some(dir) = self.resolve(dir) else {
            return Vec::new();
        };
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        self.files
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| !k[prefix.len()..].contains('/'))
            .map(|(k, v)| (k.as_str(), v))
            .collect()
    }
}

impl FileTree {
    /// A tree of regular files (path, content, layer), for tests.
    #[cfg(test)]
    pub fn from_files(files: &[(&str, &[u8], usize)]) -> FileTree {
        let mut t = FileTree::default();
        for (path, data, layer) in files {
            t.files.insert(
                (*path).into(),
                FileEntry {
                    data: data.to_vec(),
                    layer: *layer,
                },
            );
        }
        t
    }
}

/// Normalises a tar entry path: strips `./` and leading `/`, drops empty and
/// `.` components. `..` components are kept for `resolve` to handle; the
/// layer reader rejects entries that would escape the root.
pub fn normalize(path: &str) -> String {
    split(path).join("/")
}

fn remove_prefixed<V>(map: &mut BTreeMap<String, V>, prefix: &str) {
    let doomed: Vec<String> = map
        .range(prefix.to_owned()..)
        .take_while(|(k, _)| k.starts_with(prefix))
        .map(|(k, _)| k.clone())
        .collect();
    for k in doomed {
        map.remove(&k);
    }
}

fn split(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> FileTree {
        let mut t = FileTree::default();
        t.files.insert(
            "usr/lib/os-release".into(),
            FileEntry {
                data: b"ID=debian".to_vec(),
                layer: 0,
            },
        );
        t.files.insert(
            "usr/lib/sysimage/rpm/Packages.db".into(),
            FileEntry {
                data: vec![1],
                layer: 1,
            },
        );
        t.symlinks
            .insert("etc/os-release".into(), "../usr/lib/os-release".into());
        t.symlinks
            .insert("var/lib/rpm".into(), "../../usr/lib/sysimage/rpm".into());
        t.symlinks.insert("loop/a".into(), "/loop/a".into());
        t
    }

    #[test]
    fn follows_relative_and_directory_symlinks() {
        let t = tree();
        assert_eq!(t.get("etc/os-release").unwrap().0, "usr/lib/os-release");
        assert_eq!(t.get("/etc/os-release").unwrap().0, "usr/lib/os-release");
        assert_eq!(
            t.get("var/lib/rpm/Packages.db").unwrap().0,
            "usr/lib/sysimage/rpm/Packages.db"
        );
        assert_eq!(t.list_dir("var/lib/rpm").len(), 1);
    }

    #[test]
    fn removes_paths_and_subtrees_by_prefix() {
        let mut t = tree();
        t.files.insert(
            "usr/lib-other".into(),
            FileEntry {
                data: vec![],
                layer: 0,
            },
        );
        t.remove_below("usr/lib");
        assert_eq!(t.files.keys().collect::<Vec<_>>(), vec!["usr/lib-other"]);
        t.remove("etc/os-release");
        assert!(!t.symlinks.contains_key("etc/os-release"));
        assert_eq!(t.symlinks.len(), 2);
        t.remove_below("");
        assert!(t.files.is_empty() && t.symlinks.is_empty());
    }

    #[test]
    fn symlink_loop_is_none() {
        assert!(tree().get("loop/a").is_none());
    }
}
