//! Command-line arguments of `scangate jobs`.

use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use crate::util::parse_duration;

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// The reports store the workers write to: s3://bucket/prefix or
    /// file:///dir (the worker's SCANGATE_REPORTS).
    #[arg(long, env = "SCANGATE_REPORTS")]
    pub reports: String,
    /// Path-style S3 addressing (S3-compatible servers).
    #[arg(long, env = "SCANGATE_S3_FORCE_PATH_STYLE", default_value_t = false)]
    pub s3_force_path_style: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum JobsCommand {
    /// Jobs recorded in the reports store, newest first.
    List(ListArgs),
    /// One job: its record, its report and the URIs of its stored files.
    /// A job with no record yet is looked up in CodePipeline.
    Show(ShowArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only this pipeline's jobs (reads index/PIPELINE/ only).
    #[arg(long)]
    pub pipeline: Option<String>,
    /// At most this many jobs; 0 for all.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Only jobs finished within this long (e.g. 30m, 24h, 7d).
    #[arg(long, value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// Only jobs with this verdict (ERROR: the job failed without one,
    /// e.g. a configuration or permission error).
    #[arg(long, value_enum, ignore_case = true)]
    pub verdict: Option<VerdictFilter>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: ListFormat,
}

#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The CodePipeline job id (the action's external execution id).
    pub job_id: String,
    #[arg(long, value_enum, default_value = "text")]
    pub format: ShowFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerdictFilter {
    Pass,
    Fail,
    Error,
}

impl VerdictFilter {
    /// The `verdict` value in `record.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictFilter::Pass => "PASS",
            VerdictFilter::Fail => "FAIL",
            VerdictFilter::Error => "ERROR",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    Text,
    Json,
}
