//! The lease journal on a directory and on S3 (moto's server), and the
//! exclusive create that decides a job's one result.

use super::*;
use crate::worker::pending::PendingStore;

/// A scratch directory removed on drop (no tempfile in this crate).
struct Scratch(PathBuf);
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
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const ID: &str = "1c8a3a9e-5d5b-4c7e-9a55-2f1f9b7f0d11";

fn lease(id: &str) -> Lease {
    Lease {
        job_id: id.into(),
        nonce: "42".into(),
        worker_id: "ip-10-0-0-1-abcd1234".into(),
        image: "registry.example/app:1".into(),
        pipeline: "app".into(),
        started_ms: 1_700_000_000_000,
        heartbeat_ms: 1_700_000_030_000,
        deadline_ms: 1_700_002_700_000,
    }
}

fn result(id: &str, worker: &str) -> PendingResult {
    PendingResult::new(
        id,
        Outcome::failure(FailureKind::SystemUnavailable, format!("from {worker}")),
        worker,
    )
}

async fn journal_round_trip(store: &LeaseStore) {
    assert!(store.list().await.unwrap().is_empty());
    assert_eq!(store.load(ID).await.unwrap(), None);
    store.write(&lease(ID)).await.unwrap();
    let mut renewed = lease(ID);
    renewed.heartbeat_ms += 30_000;
    store.write(&renewed).await.unwrap();
    assert_eq!(store.list().await.unwrap(), vec![ID.to_owned()]);
    assert_eq!(store.load(ID).await.unwrap(), Some(renewed));
    store.delete(ID).await.unwrap();
    store.delete(ID).await.unwrap();
    assert_eq!(store.load(ID).await.unwrap(), None);
    assert!(store.list().await.unwrap().is_empty());
    // Not a job id: never a key.
    assert!(store.write(&lease("../../etc/passwd")).await.is_err());
}

/// Many workers creating the same job's pending result at once: exactly
/// one wins; a repeat of the winner's own create (an answer lost, then
/// retried) is still the winner's; the others see the winner's record.
async fn exactly_one_create_wins(store: &PendingStore) {
    let contenders: Vec<PendingResult> = (0..8).map(|i| result(ID, &format!("w{i}"))).collect();
    let outcomes = futures_util::future::join_all(contenders.iter().map(|p| store.create(p))).await;
    let winners: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(o, Ok(Created::New)))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    let winner = &contenders[winners[0]];
    for (i, o) in outcomes.iter().enumerate() {
        if i != winners[0] {
            assert_eq!(o.as_ref().unwrap(), &Created::Taken(Some(winner.clone())));
        }
    }
    assert_eq!(store.create(winner).await.unwrap(), Created::New);
    assert_eq!(store.load(ID).await.unwrap().as_ref(), Some(winner));
    store.delete(ID).await.unwrap();
    // Once sent and forgotten, the job may be decided again (CodePipeline
    // then refuses the second result).
    assert_eq!(store.create(&contenders[0]).await.unwrap(), Created::New);
}

#[tokio::test]
async fn the_journal_on_a_directory() {
    let dir = Scratch::new();
    let store = LeaseStore::new(None, dir.0.join("spool"));
    assert!(store.describe().ends_with("spool/inflight"));
    journal_round_trip(&store).await;
    // Beside the pending results, which never list it.
    let pending = PendingStore::new(None, dir.0.join("spool"));
    store.write(&lease(ID)).await.unwrap();
    assert!(pending.list().await.unwrap().is_empty());
    exactly_one_create_wins(&pending).await;
    // No temporary file is left behind by the exclusive creates.
    let left: Vec<_> = std::fs::read_dir(dir.0.join("spool"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn the_journal_on_s3() {
    let moto = Moto::start();
    let client = moto.client().await;
    client
        .create_bucket()
        .bucket("reports")
        .send()
        .await
        .unwrap();
    let reports = ReportStore::S3 {
        client,
        bucket: "reports".into(),
        prefix: "scangate".into(),
        kms_key: None,
    };
    let store = LeaseStore::new(Some(&reports), PathBuf::from("/nonexistent"));
    assert_eq!(store.describe(), "s3://reports/scangate/inflight/");
    journal_round_trip(&store).await;
    let pending = PendingStore::new(Some(&reports), PathBuf::from("/nonexistent"));
    exactly_one_create_wins(&pending).await;
}

#[test]
fn an_abandoned_job_says_who_what_when_and_what_to_do() {
    let ttl = Duration::from_secs(120);
    let l = lease(ID);
    assert_eq!(l.expires_ms(ttl), 1_700_000_150_000);
    let m = l.abandoned_message(ttl);
    for part in [
        "ip-10-0-0-1-abcd1234",
        "registry.example/app:1",
        "lease expired at 2023-11-14T22:15:50Z",
        "no heartbeat since 2023-11-14T22:13:50Z",
        "SCANGATE_LEASE_TTL 2m",
        "retry the action",
        ID,
    ] {
        assert!(m.contains(part), "{part:?} not in {m}");
    }
    let mut from_artifact = l;
    from_artifact.image.clear();
    assert!(
        from_artifact
            .abandoned_message(ttl)
            .contains("the image named by its input artifact")
    );
}

#[test]
fn a_ttl_must_outlast_two_heartbeats() {
    let t = |hb, ttl| LeaseTimes {
        heartbeat: Duration::from_secs(hb),
        ttl: Duration::from_secs(ttl),
    };
    assert!(t(30, 120).check().is_ok());
    assert_eq!(t(30, 120).give_up_after(), Duration::from_secs(90));
    assert!(t(30, 60).check().is_ok());
    let e = t(30, 59).check().unwrap_err();
    assert!(e.contains("SCANGATE_LEASE_TTL") && e.contains("SCANGATE_LEASE_HEARTBEAT"));
    assert!(t(0, 10).check().is_err());
}

/// A held lease is renewed every heartbeat; when the store fails for
/// `TTL - heartbeat`, the holder is told to stop, before a sweeper could
/// see the lease expired.
#[tokio::test]
async fn a_held_lease_is_renewed_and_given_up_when_the_store_fails() {
    let dir = Scratch::new();
    let root = dir.0.join("spool");
    let times = LeaseTimes {
        heartbeat: Duration::from_millis(100),
        ttl: Duration::from_millis(500),
    };
    let journal = Journal::new(LeaseStore::new(None, root.clone()), times);
    let mut first = lease(ID);
    first.heartbeat_ms = now_ms();
    let mut held = journal.hold(first.clone()).await.unwrap();
    assert!(journal.holds(ID));
    tokio::time::sleep(Duration::from_millis(350)).await;
    let renewed = journal.store.load(ID).await.unwrap().unwrap();
    assert!(
        renewed.heartbeat_ms >= first.heartbeat_ms + 200,
        "{renewed:?}"
    );
    assert_eq!(renewed.started_ms, first.started_ms);

    // The store breaks: `inflight` is no longer a directory.
    std::fs::remove_dir_all(root.join("inflight")).unwrap();
    std::fs::write(root.join("inflight"), b"").unwrap();
    let broke = Instant::now();
    let lost = tokio::time::timeout(Duration::from_secs(5), held.lost("the store", times.ttl))
        .await
        .expect("the holder is told to stop");
    let took = broke.elapsed();
    assert!(took < times.ttl, "told after {took:?}, past the TTL");
    let Outcome::Failure { kind, message } = lost else {
        panic!("a failure")
    };
    assert_eq!(kind, FailureKind::SystemUnavailable);
    assert!(
        message.contains("could not renew the job's lease"),
        "{message}"
    );
    assert!(message.contains(ID), "{message}");
    drop(held);
    assert!(!journal.holds(ID));
}

#[tokio::test]
async fn a_released_lease_is_gone_and_a_dropped_one_stays_to_expire() {
    let dir = Scratch::new();
    let times = LeaseTimes {
        heartbeat: Duration::from_secs(30),
        ttl: Duration::from_secs(120),
    };
    let journal = Journal::new(LeaseStore::new(None, dir.0.clone()), times);
    let held = journal.hold(lease(ID)).await.unwrap();
    assert!(journal.store.load(ID).await.unwrap().is_some());
    held.release().await;
    assert_eq!(journal.store.load(ID).await.unwrap(), None);
    assert!(!journal.holds(ID));

    let held = journal.hold(lease(ID)).await.unwrap();
    drop(held);
    assert!(journal.store.load(ID).await.unwrap().is_some());
    assert!(!journal.holds(ID));
}

/// moto's S3 server on a free port, killed on drop: `SCANGATE_MOTO_SERVER`,
/// else `moto_server` on `PATH` (`.ci/run` installs it).
struct Moto {
    child: std::process::Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Moto {
        let bin = std::env::var_os("SCANGATE_MOTO_SERVER")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                let venv =
                    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/venv/bin/moto_server");
                venv.is_file().then_some(venv)
            })
            .unwrap_or_else(|| PathBuf::from("moto_server"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; run .ci/run (it installs moto[server])",
                    bin.display()
                )
            });
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, endpoint }
    }

    async fn client(&self) -> aws_sdk_s3::Client {
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "AKIDEXAMPLE",
                "test-secret",
                None,
                None,
                "test",
            ))
            .endpoint_url(&self.endpoint)
            .load()
            .await;
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&conf)
                .force_path_style(true)
                .build(),
        )
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A lease that cannot be written is not held: the job is not acknowledged
/// rather than acknowledged with no trace a kill would leave.
#[tokio::test]
async fn a_lease_that_cannot_be_written_is_not_held() {
    let dir = Scratch::new();
    std::fs::write(dir.0.join("inflight"), b"").unwrap();
    let times = LeaseTimes {
        heartbeat: Duration::from_millis(100),
        ttl: Duration::from_millis(500),
    };
    let journal = Journal::new(LeaseStore::new(None, dir.0.clone()), times);
    let started = Instant::now();
    assert!(journal.hold(lease(ID)).await.is_none());
    assert!(started.elapsed() < FIRST_WRITE + Duration::from_secs(1));
    assert!(!journal.holds(ID));
}
