//! Worker settings: every flag is also an environment variable (DESIGN.md,
//! "Worker configuration").

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

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
    /// How long an AcknowledgeJob whose answer was lost is rechecked.
    #[arg(long, env = "SCANGATE_ACK_RECHECK", default_value = "2m", value_parser = parse_duration, hide = true)]
    pub ack_recheck: Duration,
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
    /// Registry user for Basic/token auth (registries other than ECR).
    #[arg(long, env = "SCANGATE_REGISTRY_USERNAME")]
    pub registry_username: Option<String>,
    /// Registry password; never logged.
    #[arg(long, env = "SCANGATE_REGISTRY_PASSWORD", hide_env_values = true)]
    pub registry_password: Option<String>,
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

    #[test]
    fn health_addr_off() {
        assert_eq!(parse_health_addr("off").unwrap(), HealthAddr(None));
        assert!(parse_health_addr("nonsense").is_err());
    }
}
