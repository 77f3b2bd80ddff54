//! Command-line arguments of `scangate jobs`.

use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use crate::util::parse_duration;

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// The reports store the workers write to: s3://bucket/prefix,
    /// file:///dir, or a plain directory such as the demo's
    /// `scangate-demo-reports` (the worker's SCANGATE_REPORTS).
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
    /// Every column in full (job ids, stage and action, failure type,
    /// report URI); by default the table fits 120 columns.
    #[arg(long)]
    pub wide: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The CodePipeline job id (the action's external execution id), or
    /// the start of one that no other job shares.
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
