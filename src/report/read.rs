//! Read access to the reports store, for `scangate jobs`.
//!
//! Both backends are read through the same page-at-a-time listing with S3's
//! ListObjectsV2 semantics (keys in byte order, one "directory" level with
//! `/` as the delimiter, a continuation token, `start-after`), so the paging
//! loop above it is one piece of code, tested on the directory backend with
//! small pages.

use std::path::Path;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use super::{ReportStore, join};

/// Objects larger than this are not read whole: a record or report is a few
/// KiB to a few MiB, and a huge object in the store is a mistake, not
/// something to load into memory.
pub const MAX_OBJECT_BYTES: u64 = 64 * 1024 * 1024;

/// ListObjectsV2's own maximum page size.
pub const S3_PAGE_SIZE: i32 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "S3 access denied for s3://{bucket}/{key}: {message} (reading the reports needs s3:ListBucket and s3:GetObject on the bucket, and kms:Decrypt if it uses a KMS key)"
    )]
    AccessDenied {
        bucket: String,
        key: String,
        message: String,
    },
    #[error("S3 bucket {bucket:?} does not exist (check SCANGATE_REPORTS)")]
    NoSuchBucket { bucket: String },
    #[error(
        "S3 bucket {bucket:?} is in another region than AWS_REGION: {message} (set AWS_REGION to the bucket's region)"
    )]
    WrongRegion { bucket: String, message: String },
    #[error("reading s3://{bucket}/{key}: {message}")]
    S3 {
        bucket: String,
        key: String,
        message: String,
    },
    #[error("{uri} is {size} bytes, more than the {max} bytes scangate reads")]
    TooLarge { uri: String, size: u64, max: u64 },
}

/// One page of a listing. Keys and directories are relative to the store's
/// root (`index/app/…json`, `index/app/`), like the keys `save` writes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Page {
    pub keys: Vec<String>,
    /// Sub-"directories" (S3 common prefixes), each ending with `/`.
    pub dirs: Vec<String>,
    /// Pass back to get the next page; `None` on the last page.
    pub next: Option<String>,
}

/// A whole listing of one directory level, in key order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Listing {
    pub keys: Vec<String>,
    pub dirs: Vec<String>,
}

impl ReportStore {
    /// The `file://` or `s3://` URI of a key, as the worker reports it.
    pub fn uri_of(&self, key: &str) -> String {
        self.uri(key)
    }

    /// All keys and sub-directories directly under `dir` (which ends with
    /// `/`, or is empty for the root) that sort after `start_after`,
    /// following continuation tokens `page_size` entries at a time.
    pub async fn list_all(
        &self,
        dir: &str,
        start_after: Option<&str>,
        page_size: i32,
    ) -> Result<Listing, ReadError> {
        let mut out = Listing::default();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .list_page(dir, start_after, token.as_deref(), page_size)
                .await?;
            out.keys.extend(page.keys);
            out.dirs.extend(page.dirs);
            match page.next {
                // A server that hands back the token it was given would
                // loop forever; stop instead.
                Some(t) if token.as_deref() != Some(t.as_str()) => token = Some(t),
                _ => break,
            }
        }
        Ok(out)
    }

    /// One ListObjectsV2-style page under `dir`.
    pub async fn list_page(
        &self,
        dir: &str,
        start_after: Option<&str>,
        token: Option<&str>,
        page_size: i32,
    ) -> Result<Page, ReadError> {
        match self {
            ReportStore::Dir(root) => dir_page(root, dir, start_after, token, page_size).await,
            ReportStore::S3 {
                client,
                bucket,
                prefix,
                ..
            } => {
                let full = join(prefix, dir);
                let strip = if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                };
                let out = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(&full)
                    .delimiter("/")
                    .max_keys(page_size)
                    .set_start_after(start_after.map(|s| join(prefix, s)))
                    .set_continuation_token(token.map(str::to_owned))
                    .send()
                    .await
                    .map_err(|e| s3_error(bucket, &full, e))?;
                let rel = |k: &str| k.strip_prefix(&strip).unwrap_or(k).to_owned();
                Ok(Page {
                    keys: out
                        .contents()
                        .iter()
                        .filter_map(|o| o.key())
                        .map(rel)
                        .collect(),
                    dirs: out
                        .common_prefixes()
                        .iter()
                        .filter_map(|p| p.prefix())
                        .map(rel)
                        .collect(),
                    next: out
                        .is_truncated()
                        .unwrap_or(false)
                        .then(|| out.next_continuation_token().map(str::to_owned))
                        .flatten(),
                })
            }
        }
    }

    /// The object at `key`, or `None` when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ReadError> {
        match self {
            ReportStore::Dir(root) => {
                let path = root.join(key);
                let io = |source| ReadError::Io {
                    path: path.display().to_string(),
                    source,
                };
                let meta = match tokio::fs::metadata(&path).await {
                    Ok(m) => m,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(io(e)),
                };
                if meta.len() > MAX_OBJECT_BYTES {
                    return Err(ReadError::TooLarge {
                        uri: self.uri(key),
                        size: meta.len(),
                        max: MAX_OBJECT_BYTES,
                    });
                }
                tokio::fs::read(&path).await.map(Some).map_err(io)
            }
            ReportStore::S3 {
                client,
                bucket,
                prefix,
                ..
            } => {
                let full = join(prefix, key);
                let out = match client.get_object().bucket(bucket).key(&full).send().await {
                    Ok(o) => o,
                    Err(SdkError::ServiceError(se)) if se.err().is_no_such_key() => {
                        return Ok(None);
                    }
                    Err(e) => return Err(s3_error(bucket, &full, e)),
                };
                let size = out.content_length().unwrap_or(0).max(0) as u64;
                if size > MAX_OBJECT_BYTES {
                    return Err(ReadError::TooLarge {
                        uri: self.uri(key),
                        size,
                        max: MAX_OBJECT_BYTES,
                    });
                }
                let body = out.body.collect().await.map_err(|e| ReadError::S3 {
                    bucket: bucket.clone(),
                    key: full.clone(),
                    message: crate::inspector::describe(&e),
                })?;
                Ok(Some(body.into_bytes().to_vec()))
            }
        }
    }
}

/// Maps S3's error codes to what a person should do about them.
fn s3_error<E, R>(bucket: &str, key: &str, e: SdkError<E, R>) -> ReadError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let code = match &e {
        SdkError::ServiceError(se) => se.err().code().map(str::to_owned),
        _ => None,
    };
    let message = crate::inspector::describe(&e);
    match code.as_deref() {
        Some(
            "AccessDenied" | "AllAccessDisabled" | "InvalidAccessKeyId" | "SignatureDoesNotMatch",
        ) => ReadError::AccessDenied {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            message,
        },
        Some("NoSuchBucket") => ReadError::NoSuchBucket {
            bucket: bucket.to_owned(),
        },
        Some(
            "PermanentRedirect"
            | "AuthorizationHeaderMalformed"
            | "IllegalLocationConstraintException",
        ) => ReadError::WrongRegion {
            bucket: bucket.to_owned(),
            message,
        },
        _ => ReadError::S3 {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            message,
        },
    }
}

/// A directory read as one ListObjectsV2 page: entries in byte order of
/// their keys, the continuation token being the last key returned.
async fn dir_page(
    root: &Path,
    dir: &str,
    start_after: Option<&str>,
    token: Option<&str>,
    page_size: i32,
) -> Result<Page, ReadError> {
    let path = root.join(dir);
    let io = |source| ReadError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut rd = match tokio::fs::read_dir(&path).await {
        Ok(rd) => rd,
        // Like S3: an empty prefix lists nothing, it is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Page::default()),
        Err(e) => return Err(io(e)),
    };
    let mut entries: Vec<(String, bool)> = Vec::new();
    while let Some(e) = rd.next_entry().await.map_err(io)? {
        let Some(name) = e.file_name().to_str().map(str::to_owned) else {
            continue; // not a key the writer could have made
        };
        let is_dir = e.file_type().await.map_err(io)?.is_dir();
        // `.tmp` files are writes in progress (write, then rename).
        if !is_dir && name.ends_with(".tmp") {
            continue;
        }
        let key = if is_dir {
            format!("{dir}{name}/")
        } else {
            format!("{dir}{name}")
        };
        entries.push((key, is_dir));
    }
    entries.sort();
    let after = match (start_after, token) {
        (Some(a), Some(t)) => Some(a.max(t)),
        (a, t) => a.or(t),
    };
    let mut rest = entries
        .into_iter()
        .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a));
    let mut page = Page::default();
    let size = page_size.max(1) as usize;
    let mut last = None;
    for (k, is_dir) in rest.by_ref().take(size) {
        last = Some(k.clone());
        if is_dir {
            page.dirs.push(k);
        } else {
            page.keys.push(k);
        }
    }
    if rest.next().is_some() {
        page.next = last;
    }
    Ok(page)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A scratch directory removed on drop (the crate has no tempfile
    /// dev-dependency).
    pub(crate) struct Scratch(pub std::path::PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A directory store holding `files`, each containing its own name.
    pub(crate) fn store(files: &[&str]) -> (Scratch, ReportStore) {
        let d =
            Scratch(std::env::temp_dir().join(format!("scangate-read-{}", uuid::Uuid::new_v4())));
        for f in files {
            let p = d.0.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, f.as_bytes()).unwrap();
        }
        let s = ReportStore::Dir(d.0.clone());
        (d, s)
    }

    #[tokio::test]
    async fn pages_follow_tokens_and_keep_key_order() {
        let (_d, s) = store(&[
            "index/app/2026-01-03T000000Z-c.json",
            "index/app/2026-01-01T000000Z-a.json",
            "index/app/2026-01-02T000000Z-b.json",
            "index/app/2026-01-04T000000Z-d.json",
            "index/app/2026-01-05T000000Z-e.json",
            "index/app/2026-01-05T000000Z-f.tmp",
        ]);
        let first = s.list_page("index/app/", None, None, 2).await.unwrap();
        assert_eq!(
            first.keys,
            [
                "index/app/2026-01-01T000000Z-a.json",
                "index/app/2026-01-02T000000Z-b.json"
            ]
        );
        assert_eq!(
            first.next.as_deref(),
            Some("index/app/2026-01-02T000000Z-b.json")
        );
        for size in [1, 2, 3, 5, 1000] {
            let all = s.list_all("index/app/", None, size).await.unwrap();
            let ids: String = all
                .keys
                .iter()
                .map(|k| &k[k.len() - 6..k.len() - 5])
                .collect();
            assert_eq!(ids, "abcde", "page size {size}");
        }
        let last = s.list_page("index/app/", None, None, 5).await.unwrap();
        assert_eq!(last.next, None, "an exact last page has no token");
    }

    #[tokio::test]
    async fn start_after_skips_older_keys() {
        let (_d, s) = store(&[
            "index/app/2026-01-01T000000Z-a.json",
            "index/app/2026-01-02T000000Z-b.json",
            "index/app/2026-01-03T000000Z-c.json",
        ]);
        let all = s
            .list_all("index/app/", Some("index/app/2026-01-01T235959"), 1)
            .await
            .unwrap();
        assert_eq!(all.keys.len(), 2);
        assert!(all.keys[0].ends_with("-b.json"));
    }

    #[tokio::test]
    async fn directories_are_listed_as_prefixes() {
        let (_d, s) = store(&[
            "index/app/x.json",
            "index/web/y.json",
            "index/_/z.json",
            "jobs/1/record.json",
        ]);
        let l = s.list_all("index/", None, 2).await.unwrap();
        assert_eq!(l.dirs, ["index/_/", "index/app/", "index/web/"]);
        assert!(l.keys.is_empty());
        let none = s.list_all("index/nothing/", None, 10).await.unwrap();
        assert_eq!(none, Listing::default());
    }

    #[test]
    fn s3_error_codes_become_advice() {
        use aws_sdk_s3::error::ErrorMetadata;
        use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Error;
        let e = |code: &str| {
            let err = ListObjectsV2Error::generic(
                ErrorMetadata::builder().code(code).message("nope").build(),
            );
            s3_error(
                "reports",
                "scangate/index/",
                SdkError::service_error(err, ()),
            )
            .to_string()
        };
        let denied = e("AccessDenied");
        assert!(
            denied.starts_with("S3 access denied for s3://reports/scangate/index/"),
            "{denied}"
        );
        assert!(denied.contains("s3:ListBucket"), "{denied}");
        assert!(e("NoSuchBucket").contains("\"reports\" does not exist"));
        assert!(e("PermanentRedirect").contains("AWS_REGION"));
        assert!(e("SlowDown").starts_with("reading s3://reports/scangate/index/"));
    }

    #[tokio::test]
    async fn get_reads_and_tells_missing_apart() {
        let (_d, s) = store(&["jobs/1/record.json"]);
        assert_eq!(
            s.get("jobs/1/record.json").await.unwrap().unwrap(),
            b"jobs/1/record.json"
        );
        assert_eq!(s.get("jobs/2/record.json").await.unwrap(), None);
        assert!(s.uri_of("jobs/1/record.json").starts_with("file:///"));
    }
}
