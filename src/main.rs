//! The `scangate` command line (DESIGN.md, "Command line").

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use scangate::image::{ImageSource, Platform};
use scangate::inspector::{Inspector, RetryPolicy};
use scangate::pipeline::{self, Context};
use scangate::policy::{Policy, PolicyFile, PolicyOverrides, Verdict, cfg as pcfg};
use scangate::report::terminal_safe;
use scangate::risks::secrets::{SecretScan, SecretsPolicy};
use scangate::worker::{self, WorkerConfig, cfg::RegistryArgs};

#[derive(Parser)]
#[command(
    name = "scangate",
    version,
    about = "Container-image security gate for AWS CodePipeline"
)]
struct Cli {
    /// Log format: json (default for the worker) or text.
    #[arg(long, global = true, env = "SCANGATE_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

#[derive(Subcommand)]
enum Command {
    /// Run the CodePipeline job worker (the production entry point).
    Worker(WorkerConfig),
    /// Scan one image: SBOM, Amazon Inspector ScanSbom, policy.
    /// Exit code 0 pass, 1 policy failure, 2 error.
    Scan(ScanArgs),
    /// Print the CycloneDX 1.5 SBOM of an image (no AWS calls).
    Sbom(SbomArgs),
    /// Policy files (DESIGN.md, "Policy file").
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Past and running jobs, from the reports store (and CodePipeline for
    /// a job with no record yet). Exit code 0, or 2 on an error or an
    /// unknown job.
    #[command(subcommand)]
    Jobs(scangate::jobs::JobsCommand),
    /// The whole loop on this machine with no AWS account: embedded
    /// CodePipeline and Inspector emulators, a bundled image, reports in a
    /// local folder.
    Demo {
        /// Where the job records and reports go.
        #[arg(long, default_value = "scangate-demo-reports")]
        reports: std::path::PathBuf,
    },
    /// Probe the worker's /healthz (for container health checks in images
    /// without a shell). Exit code 0 healthy, 1 not.
    Healthcheck {
        /// The worker's health address (`0.0.0.0` is probed on loopback).
        #[arg(long, env = "SCANGATE_HEALTH_ADDR", default_value = "0.0.0.0:8080")]
        addr: String,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a policy file and print the policy it describes.
    /// Exit code 0 valid, 1 invalid, 2 unreadable.
    Check {
        /// The policy file (YAML, or JSON with a .json name).
        file: std::path::PathBuf,
    },
}

#[derive(clap::Args)]
struct ImageArgs {
    /// Image: host/repo:tag, host/repo@sha256:…, a Docker Hub name,
    /// oci:DIR[:tag] (OCI image layout) or docker-archive:FILE.tar
    /// (`docker save` output). The digest reported is the scanned platform
    /// manifest's; a docker-archive has none, so its image ID (config
    /// digest) is reported instead.
    image: String,
    /// Platform to pick from a multi-platform index.
    #[arg(long, default_value = "linux/amd64")]
    platform: String,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(clap::Args)]
struct ScanArgs {
    #[command(flatten)]
    image: ImageArgs,
    /// A policy file (YAML or JSON); the flags below override it.
    #[arg(long, value_name = "FILE")]
    policy: Option<std::path::PathBuf>,
    /// Findings allowed at CRITICAL ("unlimited" for no limit) [default: 0,
    /// or the policy file's].
    #[arg(long)]
    critical_threshold: Option<String>,
    /// [default: 0, or the policy file's]
    #[arg(long)]
    high_threshold: Option<String>,
    /// [default: unlimited, or the policy file's]
    #[arg(long)]
    medium_threshold: Option<String>,
    /// [default: unlimited, or the policy file's]
    #[arg(long)]
    low_threshold: Option<String>,
    /// Thresholds count only findings that have a fixed version (overrides
    /// the policy file's fixable_only).
    #[arg(long)]
    fixable_only: bool,
    #[arg(long, value_enum, default_value = "table")]
    format: ScanFormat,
    /// Write the report here instead of stdout (a one-line verdict still
    /// goes to stderr).
    #[arg(long, short, value_name = "FILE")]
    output: Option<std::path::PathBuf>,
    /// Exit code for a policy failure (default 1; errors are always 2).
    #[arg(long, value_name = "N", default_value_t = 1)]
    exit_code: u8,
}

#[derive(Clone, Copy, ValueEnum)]
enum ScanFormat {
    Table,
    Json,
    Markdown,
    Sarif,
    Junit,
    /// The SBOM with the findings as CycloneDX 1.5 vulnerabilities.
    Cyclonedx,
}

#[derive(clap::Args)]
struct SbomArgs {
    #[command(flatten)]
    image: ImageArgs,
    /// Write the SBOM here instead of stdout.
    #[arg(long, short)]
    output: Option<std::path::PathBuf>,
    /// Also search the image for embedded secrets (same pass over the
    /// layers) and write the findings here as JSON (values redacted).
    #[arg(long, value_name = "FILE")]
    secrets: Option<std::path::PathBuf>,
}

fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(run());
    // Dropping a runtime waits for every blocking task; CPU-bound work that
    // was cancelled but has not reached its next checkpoint must not keep a
    // stopped worker alive past its shutdown grace (issue 9, defect 5).
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

async fn run() -> ExitCode {
    let cli = Cli::parse();
    let (default_format, default_level) = match cli.command {
        Command::Worker(_) => (LogFormat::Json, "info"),
        // The demo prints its own story; the worker's logs are detail.
        Command::Demo { .. } => (LogFormat::Text, "warn"),
        // Output is the point, and failures come back as errors with their
        // cause: the SDK's warnings on the way (IMDS probes) would bury it.
        Command::Jobs(_) => (LogFormat::Text, "error"),
        // They print their own result, warnings and (on a terminal)
        // progress; the pipeline's info lines would be noise in another CI
        // system's log. RUST_LOG=info brings them back.
        Command::Scan(_) | Command::Sbom(_) => (LogFormat::Text, "warn"),
        _ => (LogFormat::Text, "info"),
    };
    init_logging(cli.log_format.unwrap_or(default_format), default_level);
    match cli.command {
        Command::Worker(cfg) => {
            let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            match worker::run(cfg, sdk).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "worker failed to start");
                    ExitCode::from(2)
                }
            }
        }
        Command::Scan(args) => scan(args).await,
        Command::Sbom(args) => sbom(args).await,
        Command::Policy(PolicyCommand::Check { file }) => policy_check(&file),
        Command::Jobs(cmd) => match scangate::jobs::run(cmd).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {}", terminal_safe(&e.to_string()));
                ExitCode::from(2)
            }
        },
        Command::Healthcheck { addr } => {
            match scangate::worker::health::probe(&addr, std::time::Duration::from_secs(3)).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("unhealthy: {}", terminal_safe(&e));
                    ExitCode::from(1)
                }
            }
        }
        Command::Demo { reports } => {
            match scangate::demo::run(scangate::demo::DemoOptions { reports }).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {}", terminal_safe(&e.to_string()));
                    ExitCode::from(2)
                }
            }
        }
    }
}

fn parse_image(a: &ImageArgs) -> Result<(ImageSource, Platform), String> {
    // The error already names the input.
    let image = a.image.parse::<ImageSource>().map_err(|e| e.to_string())?;
    let platform = a
        .platform
        .parse::<Platform>()
        .map_err(|e| format!("invalid platform {:?}: {e}", a.platform))?;
    Ok((image, platform))
}

/// The secret findings of `sbom --secrets`, as JSON.
fn write_secrets(
    scan: &SecretScan,
    pulled: &scangate::image::PulledImage,
    path: &std::path::Path,
) -> Result<(), String> {
    let today = time::OffsetDateTime::now_utc().date();
    let out = scan
        .findings(&pulled.layers, &pulled.config, today)
        .map_err(|e| e.to_string())?;
    let json = serde_json::to_vec_pretty(&out).map_err(|e| e.to_string())?;
    std::fs::write(path, json).map_err(|e| format!("writing {}: {e}", path.display()))?;
    for w in &out.warnings {
        eprintln!("warning: {}", terminal_safe(w));
    }
    eprintln!(
        "secrets: {} findings ({} allowed), {} files searched",
        out.findings.len(),
        out.allowed,
        out.stats.files_searched
    );
    Ok(())
}

async fn sbom(args: SbomArgs) -> ExitCode {
    let run = async {
        let (image, platform) = parse_image(&args.image)?;
        let mut pull = worker::pull_options(&args.image.registry)?;
        let secrets = match &args.secrets {
            Some(_) => Some(SecretScan::new(&SecretsPolicy::default()).map_err(|e| e.to_string())?),
            None => None,
        };
        pull.observer = secrets.as_ref().map(SecretScan::observer);
        let s = pipeline::build_sbom(&pull, &image, &platform)
            .await
            .map_err(|e| e.to_string())?;
        if let (Some(scan), Some(path)) = (&secrets, &args.secrets) {
            write_secrets(scan, &s.pulled, path)?;
        }
        let json = serde_json::to_vec_pretty(&s.bom).map_err(|e| e.to_string())?;
        match &args.output {
            Some(p) => {
                std::fs::write(p, &json).map_err(|e| format!("writing {}: {e}", p.display()))?
            }
            None => {
                let mut out = std::io::stdout().lock();
                out.write_all(&json)
                    .and_then(|_| out.write_all(b"\n"))
                    .map_err(|e| e.to_string())?;
            }
        }
        // stdout may be the SBOM: notes go to stderr, where a person sees them
        for w in s.pulled.warnings.iter().chain(&s.catalog.warnings) {
            eprintln!("warning: {}", terminal_safe(w));
        }
        eprintln!(
            "{}: {} packages, digest {}",
            image,
            s.catalog.packages.len(),
            s.pulled.manifest_digest
        );
        Ok::<(), String>(())
    };
    match run.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", terminal_safe(&e.to_string()));
            ExitCode::from(2)
        }
    }
}

async fn scan(args: ScanArgs) -> ExitCode {
    let run = async {
        let (image, platform) = parse_image(&args.image)?;
        let pull = worker::pull_options(&args.image.registry)?;
        let policy = scan_policy(&args)?;
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let ctx = Context {
            pull,
            inspector: Inspector::new(&sdk, RetryPolicy::default()),
            // `scan` is the inspector engine; the context is shared with the worker.
            ecr: scangate::inspector::ecr::EcrScanner::new(
                &sdk,
                RetryPolicy::default(),
                Default::default(),
            ),
        };
        // Only a person watching needs to know why it is taking a while;
        // piped into a CI log or a test, stderr carries just the outcome.
        let show_progress = {
            use std::io::IsTerminal as _;
            std::io::stderr().is_terminal()
        };
        let name = &args.image.image;
        let progress = |p: pipeline::Progress| {
            if !show_progress {
                return;
            }
            match p {
                pipeline::Progress::Pulling => eprintln!("pulling {name}…"),
                pipeline::Progress::Catalogued { packages } => {
                    eprintln!("{packages} packages catalogued")
                }
                pipeline::Progress::Scanning { components } => {
                    eprintln!("scanning {components} components with Inspector…")
                }
            }
        };
        let report =
            pipeline::scan_source_with_progress(&ctx, &image, &platform, &policy, &progress)
                .await
                .map_err(|e| e.to_string())?;
        let generated = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let meta = scangate::report::Meta {
            job_id: "-",
            generated: &generated,
        };
        let pretty =
            |v: &serde_json::Value| serde_json::to_string_pretty(v).map_err(|e| e.to_string());
        let text = match args.format {
            ScanFormat::Json => pretty(&serde_json::json!({
                "image": report.image,
                "digest": report.manifest_digest,
                "verdict": report.decision.verdict,
                "counts": report.decision.counts,
                "violations": report.decision.violations,
                "suppressed": report.decision.suppressed,
                "suppressions": report.decision.suppressions,
                "expired_rules": report.decision.expired_rules,
                "stale_rules": report.decision.stale_rules,
                "packages": report.packages,
                "warnings": report.warnings,
                "findings": report.result.findings,
            }))?,
            ScanFormat::Markdown => scangate::report::markdown::render("-", &report),
            ScanFormat::Sarif => pretty(&scangate::report::sarif::render(&meta, &report))?,
            ScanFormat::Junit => scangate::report::junit::render(&meta, &report),
            ScanFormat::Cyclonedx => pretty(&scangate::report::cyclonedx::render(&report))?,
            ScanFormat::Table => {
                use std::io::IsTerminal as _;
                // https://no-color.org: any non-empty NO_COLOR turns colour off.
                let color = args.output.is_none()
                    && std::io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
                scangate::report::table::render(&report, color)
            }
        };
        match &args.output {
            Some(p) => {
                std::fs::write(p, text.trim_end().to_owned() + "\n")
                    .map_err(|e| format!("writing {}: {e}", p.display()))?;
                let c = report.decision.counts;
                eprintln!(
                    "{}: {} — {} critical, {} high, {} medium, {} low, {} other; report in {}",
                    report.image,
                    report.decision.verdict,
                    c.critical,
                    c.high,
                    c.medium,
                    c.low,
                    c.other,
                    p.display()
                );
            }
            None => println!("{}", text.trim_end()),
        }
        Ok::<Verdict, String>(report.decision.verdict)
    };
    match run.await {
        Ok(Verdict::Pass) => ExitCode::SUCCESS,
        Ok(Verdict::Fail) => ExitCode::from(args.exit_code),
        Err(e) => {
            eprintln!("error: {}", terminal_safe(&e.to_string()));
            ExitCode::from(2)
        }
    }
}

/// The flags' policy, on top of the policy file when one is given.
fn scan_policy(args: &ScanArgs) -> Result<Policy, String> {
    let threshold = |name: &str, v: &Option<String>| {
        v.as_deref()
            .map(|v| pcfg::parse_threshold(name, v))
            .transpose()
            .map_err(|e| e.to_string())
    };
    let overrides = PolicyOverrides {
        critical: threshold("--critical-threshold", &args.critical_threshold)?,
        high: threshold("--high-threshold", &args.high_threshold)?,
        medium: threshold("--medium-threshold", &args.medium_threshold)?,
        low: threshold("--low-threshold", &args.low_threshold)?,
        other: None,
        fixable_only: args.fixable_only.then_some(true),
    };
    match &args.policy {
        None => Ok(overrides.apply(Policy::default())),
        Some(path) => {
            let file = read_policy_file(path).map_err(|(_, e)| e)?;
            for w in file.warnings(scangate::policy::file::today_utc()) {
                eprintln!("warning: {}", terminal_safe(&w));
            }
            Ok(file.to_policy(&overrides))
        }
    }
}

/// Reads and parses a policy file; the exit code says which went wrong.
fn read_policy_file(path: &std::path::Path) -> Result<PolicyFile, (u8, String)> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| (2, format!("reading {name}: {e}")))?;
    PolicyFile::parse(&name, &text).map_err(|e| (1, e.to_string()))
}

fn policy_check(path: &std::path::Path) -> ExitCode {
    let file = match read_policy_file(path) {
        Ok(f) => f,
        Err((code, e)) => {
            eprintln!("error: {}", terminal_safe(&e.to_string()));
            return ExitCode::from(code);
        }
    };
    let today = scangate::policy::file::today_utc();
    let p = file.to_policy(&PolicyOverrides::default());
    let limit = |t: Option<u64>| t.map_or("unlimited".to_owned(), |n| n.to_string());
    let t = p.thresholds;
    println!("{}: valid (version {})", path.display(), file.version);
    println!(
        "thresholds: critical {}, high {}, medium {}, low {}, other {}",
        limit(t.critical),
        limit(t.high),
        limit(t.medium),
        limit(t.low),
        limit(t.other)
    );
    println!("fixable_only: {}", p.fixable_only);
    println!("fail_on_kev: {}", p.fail_on_kev);
    println!(
        "epss_threshold: {}",
        p.epss_threshold
            .map_or("none".to_owned(), |e| e.to_string())
    );
    if !p.fail_on_ids.is_empty() {
        println!(
            "fail_on_ids: {}",
            terminal_safe(&p.fail_on_ids.iter().cloned().collect::<Vec<_>>().join(", "))
        );
    }
    for r in &p.ignore {
        println!(
            "ignore {}{}: {}",
            terminal_safe(&r.to_string()),
            if r.is_expired(today) {
                " [EXPIRED]"
            } else {
                ""
            },
            terminal_safe(&r.reason)
        );
    }
    for w in file.warnings(today) {
        println!("warning: {}", terminal_safe(&w));
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// clap checks its definitions only when a command is parsed: check
    /// them all here rather than in production.
    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        for args in [
            vec!["scangate", "worker"],
            vec![
                "scangate",
                "worker",
                "--health-addr",
                "off",
                "--concurrency",
                "4",
            ],
            vec!["scangate", "scan", "r/x:1", "--high-threshold", "3"],
            vec!["scangate", "sbom", "r/x:1"],
            vec![
                "scangate",
                "scan",
                "r/x:1",
                "--policy",
                "p.yaml",
                "--fixable-only",
            ],
            vec!["scangate", "policy", "check", "p.yaml"],
            vec![
                "scangate",
                "scan",
                "oci:dir",
                "--format",
                "sarif",
                "--output",
                "r.sarif",
                "--exit-code",
                "0",
            ],
            vec![
                "scangate",
                "scan",
                "r/x:1",
                "--format",
                "cyclonedx",
                "-o",
                "b.json",
            ],
            vec!["scangate", "scan", "r/x:1", "--format", "junit"],
            vec!["scangate", "demo"],
            vec![
                "scangate",
                "jobs",
                "list",
                "--reports",
                "file:///r",
                "--pipeline",
                "app",
                "--since",
                "7d",
                "--verdict",
                "fail",
                "--format",
                "json",
            ],
            vec!["scangate", "jobs", "show", "--reports", "s3://b/p", "ID"],
        ] {
            Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
    }
}
