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
//!
//! The record is created exclusively ([`PendingStore::create`]): it is where
//! the one result of a job is decided, between the worker that scanned it
//! and a sweeper that finds the worker's lease expired ([`super::lease`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::job::Outcome;
use crate::report::ReportStore;

/// A record larger than this is not ours (a result is at most a
/// 5,000-character message or a 2,048-character summary and a few output
/// variables; a lease is a few hundred bytes): it is skipped, never read
/// whole.
const MAX_RECORD_BYTES: u64 = 256 * 1024;

/// Records handled per sweep, so a flooded store cannot stall a worker.
pub const MAX_PER_SWEEP: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum PendingError {
    #[error("worker store {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("worker store s3://{bucket}/{key}: {message}")]
    S3 {
        bucket: String,
        key: String,
        message: String,
    },
    #[error("worker record {key}: {reason}")]
    Invalid { key: String, reason: String },
}

/// One unsent result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingResult {
    pub job_id: String,
    pub outcome: Outcome,
    /// The worker that produced it (for the logs).
    pub worker_id: String,
    /// A token unique to the write that created the record: a creation
    /// whose answer was lost is told apart from another worker's by reading
    /// it back (see [`PendingStore::create`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub claim: String,
}

impl PendingResult {
    pub fn new(job_id: &str, outcome: Outcome, worker_id: &str) -> PendingResult {
        PendingResult {
            job_id: job_id.to_owned(),
            outcome,
            worker_id: worker_id.to_owned(),
            claim: uuid::Uuid::new_v4().simple().to_string(),
        }
    }
}

/// What [`PendingStore::create`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// The record is ours: this result is the job's result.
    New,
    /// Another record was there first (another worker decided the job's
    /// result); it is returned when it could be read.
    Taken(Option<PendingResult>),
}

/// JSON records named `{jobId}.json` in one directory or S3 prefix: the
/// storage of the pending results and of the in-flight leases
/// ([`super::lease`]).
#[derive(Clone)]
pub enum Records {
    Dir(PathBuf),
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        /// `{reports prefix}/{name}`, no trailing slash.
        prefix: String,
        kms_key: Option<String>,
    },
}

/// CodePipeline job ids are UUIDs; anything else read from the store is
/// not used as a key or sent to CodePipeline.
pub fn valid_job_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl Records {
    /// `{reports}/{name}` when there is a reports store; else `spool`.
    pub fn new(reports: Option<&ReportStore>, spool: PathBuf, name: &str) -> Records {
        match reports {
            Some(ReportStore::Dir(d)) => Records::Dir(d.join(name)),
            Some(ReportStore::S3 {
                client,
                bucket,
                prefix,
                kms_key,
            }) => Records::S3 {
                client: client.clone(),
                bucket: bucket.clone(),
                prefix: if prefix.is_empty() {
                    name.to_owned()
                } else {
                    format!("{prefix}/{name}")
                },
                kms_key: kms_key.clone(),
            },
            None => Records::Dir(spool),
        }
    }

    /// Where it is, for the logs.
    pub fn describe(&self) -> String {
        match self {
            Records::Dir(d) => format!("file://{}", d.display()),
            Records::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}/"),
        }
    }

    fn key(id: &str) -> Result<String, PendingError> {
        let key = format!("{id}.json");
        if !valid_job_id(id) {
            return Err(PendingError::Invalid {
                key,
                reason: "not a CodePipeline job id".into(),
            });
        }
        Ok(key)
    }

    /// Writes (or overwrites) the record of `id`.
    pub async fn put(&self, id: &str, body: Vec<u8>) -> Result<(), PendingError> {
        let key = Self::key(id)?;
        match self {
            Records::Dir(d) => write_file(d, &key, body, false).await.map(|_| ()),
            Records::S3 { .. } => self.put_object(&key, body, false).await.map(|_| ()),
        }
    }

    /// Writes the record of `id` only if there is none: `Ok(false)` when
    /// one exists (an exclusive create: a hard link on a directory, which
    /// fails on an existing name; `If-None-Match: *` on S3). On S3 a create
    /// whose answer was lost and was retried also answers `false`: the
    /// caller reads the record back to tell.
    pub async fn put_new(&self, id: &str, body: Vec<u8>) -> Result<bool, PendingError> {
        let key = Self::key(id)?;
        match self {
            Records::Dir(d) => write_file(d, &key, body, true).await,
            Records::S3 { .. } => self.put_object(&key, body, true).await,
        }
    }

    async fn put_object(&self, key: &str, body: Vec<u8>, new: bool) -> Result<bool, PendingError> {
        let Records::S3 {
            client,
            bucket,
            prefix,
            kms_key,
        } = self
        else {
            unreachable!("put_object on a directory store")
        };
        use aws_sdk_s3::types::ServerSideEncryption;
        let key = format!("{prefix}/{key}");
        let req = client
            .put_object()
            .bucket(bucket)
            .key(&key)
            .content_type("application/json")
            .set_if_none_match(new.then(|| "*".to_owned()));
        let req = match kms_key {
            Some(k) => req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(k),
            None => req.server_side_encryption(ServerSideEncryption::Aes256),
        };
        match req.body(body.into()).send().await {
            Ok(_) => Ok(true),
            // 412: the object exists; 409: a concurrent conditional write
            // to the same key is in progress (S3 lets one of them win).
            Err(e)
                if new
                    && matches!(
                        e.raw_response().map(|r| r.status().as_u16()),
                        Some(412 | 409)
                    ) =>
            {
                Ok(false)
            }
            Err(e) => Err(s3_error(bucket, key, &e)),
        }
    }

    pub async fn delete(&self, id: &str) -> Result<(), PendingError> {
        let key = Self::key(id)?;
        match self {
            Records::Dir(d) => match tokio::fs::remove_file(d.join(&key)).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(PendingError::Io {
                    path: d.join(&key).display().to_string(),
                    source: e,
                }),
                _ => Ok(()),
            },
            Records::S3 {
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

    /// The job ids with a record, at most [`MAX_PER_SWEEP`].
    pub async fn list(&self) -> Result<Vec<String>, PendingError> {
        let names = match self {
            Records::Dir(d) => list_dir(d).await?,
            Records::S3 {
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

    /// The record of `id`, parsed; `Ok(None)` when there is none. A record
    /// naming another job than its key is refused.
    pub async fn get<T: serde::de::DeserializeOwned>(
        &self,
        id: &str,
        job_id_of: impl Fn(&T) -> &str,
    ) -> Result<Option<T>, PendingError> {
        let key = Self::key(id)?;
        let body = match self {
            Records::Dir(d) => read_file(&d.join(&key)).await?,
            Records::S3 {
                client,
                bucket,
                prefix,
                ..
            } => read_object(client, bucket, &format!("{prefix}/{key}")).await?,
        };
        let Some(body) = body else { return Ok(None) };
        let record: T = serde_json::from_slice(&body).map_err(|e| PendingError::Invalid {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        let named = job_id_of(&record);
        if named != id {
            return Err(PendingError::Invalid {
                key,
                reason: format!("names job {:?}", crate::util::truncate_chars(named, 80)),
            });
        }
        Ok(Some(record))
    }
}

/// The results not yet taken by CodePipeline.
#[derive(Clone)]
pub struct PendingStore(pub Records);

impl PendingStore {
    /// Beside the reports when there is a store (`{reports}/pending/`); else
    /// `spool`.
    pub fn new(reports: Option<&ReportStore>, spool: PathBuf) -> PendingStore {
        PendingStore(Records::new(reports, spool, "pending"))
    }

    /// Where it is, for the logs.
    pub fn describe(&self) -> String {
        self.0.describe()
    }

    fn body(p: &PendingResult) -> Result<Vec<u8>, PendingError> {
        serde_json::to_vec(p).map_err(|e| PendingError::Invalid {
            key: format!("{}.json", p.job_id),
            reason: e.to_string(),
        })
    }

    /// Writes (or overwrites) a pending result.
    pub async fn save(&self, p: &PendingResult) -> Result<(), PendingError> {
        self.0.put(&p.job_id, Self::body(p)?).await
    }

    /// Makes `p` the job's result unless another is already pending: the
    /// one arbiter between a worker handing its verdict over and a sweeper
    /// reporting the job of a dead worker (see [`super::lease`]). Exactly one
    /// creation wins; a lost answer to our own winning creation is
    /// recognised by the record's claim token.
    pub async fn create(&self, p: &PendingResult) -> Result<Created, PendingError> {
        if self.0.put_new(&p.job_id, Self::body(p)?).await? {
            return Ok(Created::New);
        }
        match self.load(&p.job_id).await {
            Ok(Some(existing)) if !p.claim.is_empty() && existing.claim == p.claim => {
                Ok(Created::New)
            }
            Ok(existing) => Ok(Created::Taken(existing)),
            Err(e) => {
                tracing::warn!(error = %e, "unreadable pending result in the way");
                Ok(Created::Taken(None))
            }
        }
    }

    pub async fn delete(&self, job_id: &str) -> Result<(), PendingError> {
        self.0.delete(job_id).await
    }

    /// The job ids with a pending result, at most [`MAX_PER_SWEEP`].
    pub async fn list(&self) -> Result<Vec<String>, PendingError> {
        self.0.list().await
    }

    /// The pending result of `job_id`; `Ok(None)` when it is gone (another
    /// worker sent it meanwhile).
    pub async fn load(&self, job_id: &str) -> Result<Option<PendingResult>, PendingError> {
        self.0.get(job_id, |p: &PendingResult| &p.job_id).await
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

/// Writes `body` as `dir/key` through a temporary file, so that a reader
/// never sees half a record. `exclusive`: by a hard link, which fails when
/// the name exists (`Ok(false)`), else by a rename, which replaces it.
async fn write_file(
    dir: &std::path::Path,
    key: &str,
    body: Vec<u8>,
    exclusive: bool,
) -> Result<bool, PendingError> {
    let path = dir.join(key);
    let io = |source| PendingError::Io {
        path: path.display().to_string(),
        source,
    };
    tokio::fs::create_dir_all(dir).await.map_err(io)?;
    // A name of its own per write: two writers never share a temporary file.
    let tmp = dir.join(format!("{key}.{}.tmp", uuid::Uuid::new_v4().simple()));
    tokio::fs::write(&tmp, body).await.map_err(io)?;
    let placed = if exclusive {
        let linked = tokio::fs::hard_link(&tmp, &path).await;
        let _ = tokio::fs::remove_file(&tmp).await;
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    } else {
        let renamed = tokio::fs::rename(&tmp, &path).await;
        if renamed.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        renamed.map(|()| true)
    };
    placed.map_err(io)
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
            claim: String::new(),
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
        let store = PendingStore(Records::Dir(dir.path().to_owned()));
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
