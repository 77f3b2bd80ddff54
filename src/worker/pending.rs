//! Results CodePipeline has not taken yet.
//!
//! An acknowledged job owes exactly one result. When `PutJob*Result` keeps
//! failing (throttling, an outage) past the retry budget, or the worker is
//! killed while retrying, the result must not be lost: it is written here
//! before the first try and deleted once CodePipeline has it (or says the
//! job takes none any more). Every worker reads this store on start-up and
//! periodically, so a restarted worker, even on another task, sends what a
//! dead one could not. The reports store holds it (`{reports}/pending/
//! {jobId}.json`, S3 or a directory); without one, a local spool directory
//! does, which survives a process restart but not a new task.
//!
//! Two workers may send the same pending result: CodePipeline records the
//! first and answers the second InvalidJobStateException, so a job still
//! gets exactly one result.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::job::Outcome;
use crate::report::ReportStore;

/// A pending record larger than this is not ours (a result is at most a
/// 5,000-character message or a 2,048-character summary and a few output
/// variables): it is skipped, never read whole.
const MAX_RECORD_BYTES: u64 = 256 * 1024;

/// Records handled per sweep, so a flooded store cannot stall a worker.
pub const MAX_PER_SWEEP: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum PendingError {
    #[error("pending result store {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("pending result store s3://{bucket}/{key}: {message}")]
    S3 {
        bucket: String,
        key: String,
        message: String,
    },
    #[error("pending result {key}: {reason}")]
    Invalid { key: String, reason: String },
}

/// One unsent result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingResult {
    pub job_id: String,
    pub outcome: Outcome,
    /// The worker that produced it (for the logs).
    pub worker_id: String,
}

#[derive(Clone)]
pub enum PendingStore {
    Dir(PathBuf),
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        /// `{reports prefix}/pending`, no trailing slash.
        prefix: String,
        kms_key: Option<String>,
    },
}

/// CodePipeline job ids are UUIDs; anything else read from the store is
/// not used as a key or sent to CodePipeline.
pub fn valid_job_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl PendingStore {
    /// Beside the reports when there is a store; else `spool`.
    pub fn new(reports: Option<&ReportStore>, spool: PathBuf) -> PendingStore {
        match reports {
            Some(ReportStore::Dir(d)) => PendingStore::Dir(d.join("pending")),
            Some(ReportStore::S3 {
                client,
                bucket,
                prefix,
                kms_key,
            }) => PendingStore::S3 {
                client: client.clone(),
                bucket: bucket.clone(),
                prefix: if prefix.is_empty() {
                    "pending".to_owned()
                } else {
                    format!("{prefix}/pending")
                },
                kms_key: kms_key.clone(),
            },
            None => PendingStore::Dir(spool),
        }
    }

    /// Where it is, for the logs.
    pub fn describe(&self) -> String {
        match self {
            PendingStore::Dir(d) => format!("file://{}", d.display()),
            PendingStore::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}/"),
        }
    }

    fn key(id: &str) -> String {
        format!("{id}.json")
    }

    pub async fn save(&self, p: &PendingResult) -> Result<(), PendingError> {
        let key = Self::key(&p.job_id);
        if !valid_job_id(&p.job_id) {
            return Err(PendingError::Invalid {
                key,
                reason: "not a CodePipeline job id".into(),
            });
        }
        let body = serde_json::to_vec(p).map_err(|e| PendingError::Invalid {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        match self {
            PendingStore::Dir(d) => write_file(d, &key, body).await,
            PendingStore::S3 {
                client,
                bucket,
                prefix,
                kms_key,
            } => {
                use aws_sdk_s3::types::ServerSideEncryption;
                let key = format!("{prefix}/{key}");
                let req = client
                    .put_object()
                    .bucket(bucket)
                    .key(&key)
                    .content_type("application/json");
                let req = match kms_key {
                    Some(k) => req
                        .server_side_encryption(ServerSideEncryption::AwsKms)
                        .ssekms_key_id(k),
                    None => req.server_side_encryption(ServerSideEncryption::Aes256),
                };
                req.body(body.into())
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| s3_error(bucket, key, &e))
            }
        }
    }

    pub async fn delete(&self, job_id: &str) -> Result<(), PendingError> {
        let key = Self::key(job_id);
        match self {
            PendingStore::Dir(d) => match tokio::fs::remove_file(d.join(&key)).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(PendingError::Io {
                    path: d.join(&key).display().to_string(),
                    source: e,
                }),
                _ => Ok(()),
            },
            PendingStore::S3 {
                client,
                bucket,
                prefix,
                ..
            } => {
                let key = format!("{prefix}/{key}");
                client
                    .delete_object()
                    .bucket(bucket)
                    .key(&key)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| s3_error(bucket, key, &e))
            }
        }
    }

    /// The job ids with a pending result, at most [`MAX_PER_SWEEP`].
    pub async fn list(&self) -> Result<Vec<String>, PendingError> {
        let names = match self {
            PendingStore::Dir(d) => list_dir(d).await?,
            PendingStore::S3 {
                client,
                bucket,
                prefix,
                ..
            } => {
                let out = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(format!("{prefix}/"))
                    .max_keys(MAX_PER_SWEEP as i32)
                    .send()
                    .await
                    .map_err(|e| s3_error(bucket, prefix.clone(), &e))?;
                out.contents()
                    .iter()
                    .filter(|o| o.size().unwrap_or(0) as u64 <= MAX_RECORD_BYTES)
                    .filter_map(|o| o.key())
                    .filter_map(|k| k.rsplit('/').next().map(str::to_owned))
                    .collect()
            }
        };
        Ok(names
            .iter()
            .filter_map(|n| n.strip_suffix(".json"))
            .filter(|id| valid_job_id(id))
            .map(str::to_owned)
            .take(MAX_PER_SWEEP)
            .collect())
    }

    /// The pending result of `job_id`; `Ok(None)` when it is gone (another
    /// worker sent it meanwhile).
    pub async fn load(&self, job_id: &str) -> Result<Option<PendingResult>, PendingError> {
        let key = Self::key(job_id);
        let body = match self {
            PendingStore::Dir(d) => read_file(&d.join(&key)).await?,
            PendingStore::S3 {
                client,
                bucket,
                prefix,
                ..
            } => read_object(client, bucket, &format!("{prefix}/{key}")).await?,
        };
        let Some(body) = body else { return Ok(None) };
        let p: PendingResult =
            serde_json::from_slice(&body).map_err(|e| PendingError::Invalid {
                key: key.clone(),
                reason: e.to_string(),
            })?;
        if p.job_id != job_id {
            return Err(PendingError::Invalid {
                key,
                reason: format!("names job {:?}", crate::util::truncate_chars(&p.job_id, 80)),
            });
        }
        Ok(Some(p))
    }
}

fn s3_error<E: std::error::Error + 'static, R: std::fmt::Debug>(
    bucket: &str,
    key: String,
    e: &aws_sdk_s3::error::SdkError<E, R>,
) -> PendingError {
    PendingError::S3 {
        bucket: bucket.to_owned(),
        key,
        message: crate::inspector::describe(e),
    }
}

async fn write_file(dir: &std::path::Path, key: &str, body: Vec<u8>) -> Result<(), PendingError> {
    let path = dir.join(key);
    let io = |source| PendingError::Io {
        path: path.display().to_string(),
        source,
    };
    tokio::fs::create_dir_all(dir).await.map_err(io)?;
    // Write then rename: a reader never sees half a record.
    let tmp = path.with_extension("tmp");
    tokio::fs::write(&tmp, body).await.map_err(io)?;
    tokio::fs::rename(&tmp, &path).await.map_err(io)
}

async fn list_dir(dir: &std::path::Path) -> Result<Vec<String>, PendingError> {
    let mut rd = match tokio::fs::read_dir(dir).await {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(PendingError::Io {
                path: dir.display().to_string(),
                source,
            });
        }
    };
    let mut names = Vec::new();
    while let Ok(Some(entry)) = rd.next_entry().await {
        if names.len() >= MAX_PER_SWEEP {
            break;
        }
        if let Some(n) = entry.file_name().to_str() {
            names.push(n.to_owned());
        }
    }
    Ok(names)
}

async fn read_file(path: &std::path::Path) -> Result<Option<Vec<u8>>, PendingError> {
    use tokio::io::AsyncReadExt;
    let io = |source| PendingError::Io {
        path: path.display().to_string(),
        source,
    };
    let f = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let mut body = Vec::new();
    f.take(MAX_RECORD_BYTES + 1)
        .read_to_end(&mut body)
        .await
        .map_err(io)?;
    too_large(&path.display().to_string(), body.len())?;
    Ok(Some(body))
}

async fn read_object(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, PendingError> {
    let out = match client.get_object().bucket(bucket).key(key).send().await {
        Ok(o) => o,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
        Err(e) => return Err(s3_error(bucket, key.to_owned(), &e)),
    };
    if out.content_length().unwrap_or(0) as u64 > MAX_RECORD_BYTES {
        return Err(PendingError::Invalid {
            key: key.to_owned(),
            reason: "larger than a result can be".into(),
        });
    }
    let mut body = out.body;
    let mut buf = Vec::new();
    while let Some(chunk) = body.try_next().await.map_err(|e| PendingError::S3 {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        message: e.to_string(),
    })? {
        buf.extend_from_slice(&chunk);
        too_large(key, buf.len())?;
    }
    Ok(Some(buf))
}

fn too_large(key: &str, len: usize) -> Result<(), PendingError> {
    if len as u64 > MAX_RECORD_BYTES {
        return Err(PendingError::Invalid {
            key: key.to_owned(),
            reason: "larger than a result can be".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory removed on drop (no tempfile in this crate).
    struct Scratch(std::path::PathBuf);
    impl Scratch {
        fn new() -> Scratch {
            let p = std::env::temp_dir().join(format!(
                "scangate-{}-{}",
                module_path!().replace("::", "-"),
                uuid::Uuid::new_v4()
            ));
            std::fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }
        fn path(&self) -> &std::path::Path {
            &self.0
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn result(id: &str) -> PendingResult {
        PendingResult {
            job_id: id.into(),
            outcome: Outcome::Success {
                summary: "PASS".into(),
                variables: [("VERDICT".to_string(), "PASS".to_string())].into(),
            },
            worker_id: "w".into(),
        }
    }

    #[tokio::test]
    async fn a_saved_result_is_listed_loaded_and_deleted() {
        let dir = Scratch::new();
        let store = PendingStore::new(None, dir.path().join("spool"));
        assert!(store.list().await.unwrap().is_empty());
        let id = "1c8a3a9e-5d5b-4c7e-9a55-2f1f9b7f0d11";
        store.save(&result(id)).await.unwrap();
        assert_eq!(store.list().await.unwrap(), vec![id.to_owned()]);
        assert_eq!(store.load(id).await.unwrap(), Some(result(id)));
        store.delete(id).await.unwrap();
        store.delete(id).await.unwrap();
        assert_eq!(store.load(id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn hostile_records_are_refused() {
        let dir = Scratch::new();
        let store = PendingStore::Dir(dir.path().to_owned());
        assert!(store.save(&result("../../etc/passwd")).await.is_err());
        // Names that are not job ids are never listed.
        std::fs::write(dir.path().join("..json"), b"{}").unwrap();
        std::fs::write(dir.path().join("a b.json"), b"{}").unwrap();
        // A record naming another job, and one too large to be a result.
        let mut other = result("job-b");
        other.job_id = "job-c".into();
        std::fs::write(
            dir.path().join("job-b.json"),
            serde_json::to_vec(&other).unwrap(),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("job-d.json"),
            vec![b' '; MAX_RECORD_BYTES as usize + 10],
        )
        .unwrap();
        let mut ids = store.list().await.unwrap();
        ids.sort();
        assert_eq!(ids, vec!["job-b".to_owned(), "job-d".to_owned()]);
        assert!(store.load("job-b").await.is_err());
        assert!(store.load("job-d").await.is_err());
    }
}
