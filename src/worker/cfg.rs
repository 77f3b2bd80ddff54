//! Worker settings: every flag is also an environment variable (DESIGN.md,
//! "Worker configuration").

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use crate::image::auth::hosts::HOSTS_ENV;
use crate::image::{Credentials, HostCredentials, RegistryHosts};
use crate::util::parse_duration;

/// The `FailureType`-independent action categories CodePipeline accepts.
const CATEGORIES: [&str; 7] = [
    "Source", "Build", "Deploy", "Test", "Invoke", "Approval", "Compute",
];

#[derive(Debug, Clone, Args)]
pub struct WorkerConfig {
    /// Custom action type provider (the owner is always `Custom`).
    #[arg(long, env = "SCANGATE_PROVIDER", default_value = "ScanGate")]
    pub provider: String,
    /// Action category of the custom action type.
    #[arg(long, env = "SCANGATE_CATEGORY", default_value = "Test", value_parser = parse_category)]
    pub category: String,
    /// Version of the custom action type.
    #[arg(
        long = "action-version",
        env = "SCANGATE_ACTION_VERSION",
        default_value = "1"
    )]
    pub action_version: String,
    /// Jobs processed at once by this worker.
    #[arg(long, env = "SCANGATE_CONCURRENCY", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub concurrency: u32,
    /// Idle poll interval (jittered; backs off on throttling).
    #[arg(long, env = "SCANGATE_POLL_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// Where job records and reports go: s3://bucket/prefix or file:///dir.
    #[arg(long, env = "SCANGATE_REPORTS")]
    pub reports: Option<String>,
    /// KMS key (id, ARN or alias) to encrypt reports written to S3 with
    /// (SSE-KMS); S3-managed keys (SSE-S3) when unset.
    #[arg(long, env = "SCANGATE_REPORTS_KMS_KEY")]
    pub reports_kms_key: Option<String>,
    /// Address of /healthz, /metrics and /jobs; "off" disables it.
    #[arg(long, env = "SCANGATE_HEALTH_ADDR", default_value = "0.0.0.0:8080", value_parser = parse_health_addr)]
    pub health_addr: HealthAddr,
    /// On SIGTERM: stop polling, finish in-flight jobs, fail what is left
    /// before this runs out.
    #[arg(long, env = "SCANGATE_SHUTDOWN_GRACE", default_value = "100s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// A job still running after this fails with SystemUnavailable. Longer
    /// than the ecr-basic engine's 30-minute wait for ECR's scan.
    #[arg(long, env = "SCANGATE_JOB_TIMEOUT", default_value = "45m", value_parser = parse_duration)]
    pub job_timeout: Duration,
    /// How long a job's result is retried (throttling, outages) while the
    /// job keeps its slot; what is still unsent then stays pending.
    #[arg(long, env = "SCANGATE_RESULT_RETRY", default_value = "10m", value_parser = parse_duration)]
    pub result_retry: Duration,
    /// Where unsent results wait when SCANGATE_REPORTS is not set (they go
    /// to `{reports}/pending/` when it is).
    #[arg(long, env = "SCANGATE_PENDING_DIR", default_value_os_t = default_pending_dir())]
    pub pending_dir: std::path::PathBuf,
    /// How often pending results (left by this or another worker) are sent.
    #[arg(long, env = "SCANGATE_PENDING_SWEEP_INTERVAL", default_value = "60s", value_parser = parse_duration, hide = true)]
    pub pending_sweep_interval: Duration,
    /// How often a worker renews the lease of each job it holds
    /// (`{reports}/inflight/{jobId}.json`).
    #[arg(long, env = "SCANGATE_LEASE_HEARTBEAT", default_value = "30s", value_parser = parse_duration)]
    pub lease_heartbeat: Duration,
    /// A job whose lease was not renewed for this long is taken to be
    /// abandoned (its worker died): any worker's sweep reports it
    /// SystemUnavailable. A worker that cannot renew its lease stops the job
    /// one heartbeat before this.
    #[arg(long, env = "SCANGATE_LEASE_TTL", default_value = "120s", value_parser = parse_duration)]
    pub lease_ttl: Duration,
    /// How long an AcknowledgeJob whose answer was lost is rechecked.
    #[arg(long, env = "SCANGATE_ACK_RECHECK", default_value = "2m", value_parser = parse_duration, hide = true)]
    pub ack_recheck: Duration,
    /// Value of the `Service` dimension of the worker's CloudWatch EMF
    /// metrics (namespace ScanGate); the CDK sets the provider name.
    #[arg(long, env = "SCANGATE_METRICS_SERVICE", default_value = crate::worker::metrics::DEFAULT_SERVICE, value_parser = parse_metrics_service)]
    pub metrics_service: String,
    /// How often the gauge metrics line (SlotsBusy, Slots, ...) is written.
    /// Hidden: CloudWatch's alarms and scaling assume one a minute.
    #[arg(long, env = "SCANGATE_METRICS_INTERVAL", default_value = "60s", value_parser = parse_duration, hide = true)]
    pub metrics_interval: Duration,
    /// The ECS agent endpoint, set by ECS in every task: task scale-in
    /// protection is set through it while a job is in flight. Unset off ECS
    /// (no calls are made then).
    #[arg(long, env = "ECS_AGENT_URI", hide = true)]
    pub ecs_agent_uri: Option<String>,
    /// Write the EMF lines to stdout. Not a flag: off only for a worker run
    /// inside another command (`scangate demo`), whose stdout is its own.
    #[arg(skip = true)]
    pub emf_stdout: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Path-style S3 addressing (S3-compatible servers).
    #[arg(long, env = "SCANGATE_S3_FORCE_PATH_STYLE", default_value_t = false)]
    pub s3_force_path_style: bool,
    /// Artifact credentials older than this are renewed (GetJobDetails)
    /// before they are used. Hidden: only tests need another value.
    #[arg(
        long,
        env = "SCANGATE_ARTIFACT_CREDENTIALS_REFRESH_AFTER",
        default_value = "10m",
        value_parser = parse_duration,
        hide = true
    )]
    pub artifact_credentials_refresh_after: Duration,
}

/// CodePipeline's artifact credentials last about 15 minutes from
/// PollForJobs; renewing them from 10 minutes on leaves a margin for a
/// large download or upload that starts just before the threshold.
pub const ARTIFACT_CREDENTIALS_REFRESH_AFTER: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Comma list of host:port reached over plain HTTP.
    #[arg(long, env = "SCANGATE_INSECURE_REGISTRIES", value_delimiter = ',')]
    pub insecure_registries: Vec<String>,
    /// Registry user for Basic/token auth, offered only to the
    /// --registry-hosts (never to ECR).
    #[arg(long, env = "SCANGATE_REGISTRY_USERNAME")]
    pub registry_username: Option<String>,
    /// Registry password; never logged.
    #[arg(long, env = "SCANGATE_REGISTRY_PASSWORD", hide_env_values = true)]
    pub registry_password: Option<String>,
    /// Comma list of host[:port] the registry username/password may be
    /// sent to; required with them.
    #[arg(long, env = "SCANGATE_REGISTRY_HOSTS", value_delimiter = ',')]
    pub registry_hosts: Vec<String>,
    /// Registries, and their redirects, may be on loopback addresses
    /// (tests, a local registry whose storage is on another local port).
    /// Without it only a registry the operator named (insecure, credential
    /// or pinned hosts) may be; link-local, unspecified and cloud metadata
    /// addresses are refused regardless.
    #[arg(
        long = "allow-local-registries",
        env = "SCANGATE_ALLOW_LOCAL_REGISTRIES",
        default_value_t = false,
        hide = true
    )]
    pub allow_loopback_redirects: bool,
    /// The older name of --allow-local-registries, still read.
    #[arg(
        long = "allow-loopback-redirects",
        env = "SCANGATE_ALLOW_LOOPBACK_REDIRECTS",
        default_value_t = false,
        hide = true
    )]
    pub allow_loopback_redirects_old_name: bool,
}

impl RegistryArgs {
    /// `SCANGATE_REGISTRY_HOSTS`, parsed.
    pub fn hosts(&self) -> Result<RegistryHosts, String> {
        RegistryHosts::parse(&self.registry_hosts).map_err(|e| e.to_string())
    }

    /// The username/password bound to their hosts; an error that says what
    /// to set when they are incomplete or have no hosts.
    pub fn credentials(&self) -> Result<Option<HostCredentials>, String> {
        let hosts = self.hosts()?;
        let (username, password) = match (&self.registry_username, &self.registry_password) {
            (None, None) => return Ok(None),
            (Some(u), Some(p)) => (u.clone(), p.clone()),
            (Some(_), None) => {
                return Err(
                    "SCANGATE_REGISTRY_USERNAME is set without SCANGATE_REGISTRY_PASSWORD: set both, or neither"
                        .into(),
                );
            }
            (None, Some(_)) => {
                return Err(
                    "SCANGATE_REGISTRY_PASSWORD is set without SCANGATE_REGISTRY_USERNAME: set both, or neither"
                        .into(),
                );
            }
        };
        if hosts.is_empty() {
            return Err(format!(
                "SCANGATE_REGISTRY_USERNAME/SCANGATE_REGISTRY_PASSWORD are set but {HOSTS_ENV} is \
                 not: set {HOSTS_ENV} (--registry-hosts) to the comma list of registry hosts \
                 (host[:port]) these credentials are for; they are never offered to any other host"
            ));
        }
        Ok(Some(HostCredentials {
            credentials: Credentials { username, password },
            hosts,
        }))
    }
}

fn default_pending_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("scangate-pending")
}

fn parse_category(s: &str) -> Result<String, String> {
    CATEGORIES
        .iter()
        .find(|c| c.eq_ignore_ascii_case(s))
        .map(|c| (*c).to_owned())
        .ok_or_else(|| {
            format!(
                "unknown action category {s:?}; one of {}",
                CATEGORIES.join(", ")
            )
        })
}

fn parse_metrics_service(s: &str) -> Result<String, String> {
    crate::worker::metrics::parse_service(s).map_err(|e| e.to_string())
}

/// `None` when the health server is switched off. A newtype because clap
/// gives `Option` fields a meaning of its own (flag absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthAddr(pub Option<SocketAddr>);

fn parse_health_addr(s: &str) -> Result<HealthAddr, String> {
    if s.eq_ignore_ascii_case("off") || s.is_empty() {
        return Ok(HealthAddr(None));
    }
    s.parse()
        .map(|a| HealthAddr(Some(a)))
        .map_err(|e| format!("invalid address {s:?}: {e} (e.g. 0.0.0.0:8080, or off)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_are_canonicalised() {
        assert_eq!(parse_category("test").unwrap(), "Test");
        assert!(parse_category("Scan").unwrap_err().contains("Build"));
    }

    #[test]
    fn refresh_default_is_the_constant() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            w: WorkerConfig,
        }
        let c = Cli::try_parse_from(["scangate"]).unwrap();
        assert_eq!(
            c.w.artifact_credentials_refresh_after,
            ARTIFACT_CREDENTIALS_REFRESH_AFTER
        );
    }

    fn registry_args(args: &[&str]) -> RegistryArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            r: RegistryArgs,
        }
        let mut all = vec!["scangate"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap().r
    }

    #[test]
    fn registry_credentials_need_their_hosts() {
        assert_eq!(registry_args(&[]).credentials().unwrap(), None);
        let creds = ["--registry-username", "u", "--registry-password", "s3cret"];
        let e = registry_args(&creds).credentials().unwrap_err();
        assert!(e.contains("SCANGATE_REGISTRY_HOSTS"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        let e = registry_args(&["--registry-username", "u"])
            .credentials()
            .unwrap_err();
        assert!(e.contains("SCANGATE_REGISTRY_PASSWORD"), "{e}");
        let e = registry_args(&["--registry-password", "s3cret"])
            .credentials()
            .unwrap_err();
        assert!(
            e.contains("SCANGATE_REGISTRY_USERNAME") && !e.contains("s3cret"),
            "{e}"
        );

        let mut with_hosts = creds.to_vec();
        with_hosts.extend(["--registry-hosts", "ghcr.io,registry.example:5000"]);
        let c = registry_args(&with_hosts).credentials().unwrap().unwrap();
        assert!(c.for_host("ghcr.io").is_some());
        assert!(c.for_host("registry.example:5000").is_some());
        assert!(c.for_host("registry.example").is_none());
        assert!(c.for_host("evil.example").is_none());
        // A bad entry is an error naming the variable, not a silent skip.
        let mut bad = creds.to_vec();
        bad.extend(["--registry-hosts", "ghcr.io/team"]);
        let e = registry_args(&bad).credentials().unwrap_err();
        assert!(
            e.contains("SCANGATE_REGISTRY_HOSTS") && e.contains("ghcr.io/team"),
            "{e}"
        );
        // Hosts alone are harmless.
        assert_eq!(
            registry_args(&["--registry-hosts", "ghcr.io"])
                .credentials()
                .unwrap(),
            None
        );
    }

    #[test]
    fn local_registries_are_allowed_by_the_new_name_and_the_old_one() {
        let allowed = |args: &[&str]| {
            crate::worker::pull_options(&registry_args(args))
                .unwrap()
                .allow_loopback_redirects
        };
        assert!(!allowed(&[]));
        assert!(allowed(&["--allow-local-registries"]));
        assert!(allowed(&["--allow-loopback-redirects"]));
    }

    #[test]
    fn health_addr_off() {
        assert_eq!(parse_health_addr("off").unwrap(), HealthAddr(None));
        assert!(parse_health_addr("nonsense").is_err());
    }
}
