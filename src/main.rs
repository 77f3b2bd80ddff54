//! The `scangate` command line (DESIGN.md, "Command line").

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use scangate::image::reference::{LocalPath, local_path_hint};
use scangate::image::{ImageSource, Platform};
use scangate::inspector::{Inspector, RetryBudget, RetryPolicy};
use scangate::pipeline::{self, Context};
use scangate::policy::{Policy, PolicyFile, PolicyOverrides, Verdict, cfg as pcfg};
use scangate::report::terminal_safe;
use scangate::risks::secrets::{SecretScan, SecretsPolicy};
use scangate::worker::{self, WorkerConfig, cfg::RegistryArgs};

/// A line on stderr. `eprintln!` panics when stderr is a closed pipe, and
/// a panic is exit status 101, which no caller expects.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

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
        /// Instead of the three jobs: keep the emulators and the bundled
        /// image running and print the variables to export, so that
        /// `scangate scan` (or a worker) runs against them. A simulation:
        /// Inspector's knowledge is a fixed sample of recorded answers.
        #[arg(long)]
        serve: bool,
        /// Where --serve listens (loopback only; port 0 picks free ports).
        #[arg(long, default_value = "127.0.0.1:0", requires = "serve")]
        listen: std::net::SocketAddr,
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
    /// Findings allowed at OTHER: no NVD, vendor or Inspector severity
    /// rating yet [default: unlimited, or the policy file's]
    #[arg(long)]
    other_threshold: Option<String>,
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
    /// Exit code for a policy failure (default 1; errors are always 2, so
    /// 0 and 2 are refused).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_exit_code)]
    exit_code: u8,
    /// The AWS region of Amazon Inspector (else AWS_REGION, or the
    /// profile's region).
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
}

/// `--exit-code`: a policy failure must look neither like a pass (0) nor
/// like an error (2), or a script cannot tell them apart.
fn parse_exit_code(s: &str) -> Result<u8, String> {
    match s.parse::<u8>() {
        Ok(0) => Err(
            "0 would make a policy failure look like a pass; to report without \
                      failing, raise the thresholds (e.g. --critical-threshold unlimited \
                      --high-threshold unlimited)"
                .into(),
        ),
        Ok(2) => Err(
            "2 is the exit status of an error; a policy failure must be told apart \
                      from one: use 1 or 3 to 255"
                .into(),
        ),
        Ok(n) => Ok(n),
        Err(_) => Err("an exit code is 1 or 3 to 255".into()),
    }
}

/// Writes to stdout. A reader that went away (`| head -1`) is not an
/// error: the verdict, and so the exit status, stand.
fn print_stdout(text: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(|e| format!("writing the output: {e}")),
    }
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
    /// The self-contained report.html the worker stores (use with -o).
    Html,
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
    /// Also run every image-risk producer that needs no service (the
    /// configuration rules and the secret scan, default policy) and write
    /// all their findings here as JSON: what `scan` adds to the SBOM's
    /// cost, measurable offline.
    #[arg(long, value_name = "FILE")]
    risks: Option<std::path::PathBuf>,
}

/// Logs go to stderr, where a person at the command line sees them beside
/// the output; the worker's go to stdout (DESIGN, Operations: JSON lines on
/// stdout, with the EMF lines), which is what ECS ships to CloudWatch Logs.
fn init_logging(format: LogFormat, default_level: &str, to_stdout: bool) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // Colour codes are for a person at a terminal; in a CI log or a file
    // they are noise (https://no-color.org too).
    let terminal = if to_stdout {
        std::io::stdout().is_terminal()
    } else {
        std::io::stderr().is_terminal()
    };
    let ansi = terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let writer = if to_stdout {
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stdout)
    } else {
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr)
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
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
            say!("error: cannot start the async runtime: {e}");
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
        // The SDK's own warnings (an instance-metadata probe that failed)
        // say less than scan's setup check, which names what is missing.
        Command::Scan(_) | Command::Sbom(_) => (LogFormat::Text, "warn,aws_config=error"),
        _ => (LogFormat::Text, "info"),
    };
    let to_stdout = matches!(cli.command, Command::Worker(_));
    init_logging(
        cli.log_format.unwrap_or(default_format),
        default_level,
        to_stdout,
    );
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
                say!("error: {}", terminal_safe(&e.to_string()));
                ExitCode::from(2)
            }
        },
        Command::Healthcheck { addr } => {
            match scangate::worker::health::probe(&addr, std::time::Duration::from_secs(3)).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    say!("unhealthy: {}", terminal_safe(&e));
                    ExitCode::from(1)
                }
            }
        }
        Command::Demo {
            reports,
            serve,
            listen,
        } => {
            let opts = scangate::demo::DemoOptions { reports };
            let done = if serve {
                scangate::demo::serve(listen, shutdown_signal()).await
            } else {
                scangate::demo::run(opts).await
            };
            match done {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    say!("error: {}", terminal_safe(&e.to_string()));
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// Ctrl-C or SIGTERM, for `demo --serve`.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

fn parse_image(a: &ImageArgs) -> Result<(ImageSource, Platform), String> {
    // `app.tar` or `./dir` would otherwise be looked up on Docker Hub.
    if let Some(hint) = local_path_hint(&a.image, LocalPath::of(&a.image)) {
        return Err(hint);
    }
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
    out: &scangate::risks::secrets::SecretsOutcome,
    path: &std::path::Path,
) -> Result<(), String> {
    let json = serde_json::to_vec_pretty(out).map_err(|e| e.to_string())?;
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

/// The findings of `sbom --risks`: every producer of `risks::PRODUCERS`
/// (default policy, no base image) plus the secret scan, as `scan` would
/// combine them, as JSON.
fn write_risks(
    secrets: scangate::risks::secrets::SecretsOutcome,
    s: &pipeline::ImageSbom,
    reference: &str,
    path: &std::path::Path,
) -> Result<(), String> {
    let digests: Vec<String> = s.pulled.layers.iter().map(|l| l.digest.clone()).collect();
    let policy = scangate::policy::risks::RiskPolicy::default();
    let view = scangate::risks::ImageView {
        reference,
        manifest_digest: &s.pulled.manifest_digest,
        config: &s.pulled.config,
        annotations: &s.pulled.annotations,
        layer_digests: &digests,
        files: Some(&s.pulled.files),
        packages: &s.catalog.packages,
        base_layers: None,
        policy: &policy,
    };
    let mut out = scangate::risks::produce_all(&view).map_err(|e| e.to_string())?;
    out.findings.extend(secrets.findings);
    out.warnings.extend(secrets.warnings);
    let json = serde_json::to_vec_pretty(&out).map_err(|e| e.to_string())?;
    std::fs::write(path, json).map_err(|e| format!("writing {}: {e}", path.display()))?;
    for w in &out.warnings {
        eprintln!("warning: {}", terminal_safe(w));
    }
    eprintln!("risks: {} findings", out.findings.len());
    Ok(())
}

async fn sbom(args: SbomArgs) -> ExitCode {
    let run = async {
        let (image, platform) = parse_image(&args.image)?;
        let mut pull = worker::pull_options(&args.image.registry)?;
        // --risks includes the secret scan: it runs in the same pass.
        let secrets = if args.secrets.is_some() || args.risks.is_some() {
            Some(SecretScan::new(&SecretsPolicy::default()).map_err(|e| e.to_string())?)
        } else {
            None
        };
        pull.observer = secrets.as_ref().map(SecretScan::observer);
        let s = pipeline::build_sbom(&pull, &image, &platform)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(scan) = &secrets {
            let today = time::OffsetDateTime::now_utc().date();
            let found = scan
                .findings(&s.pulled.layers, &s.pulled.config, today)
                .map_err(|e| e.to_string())?;
            if let Some(path) = &args.secrets {
                write_secrets(&found, path)?;
            }
            if let Some(path) = &args.risks {
                write_risks(found, &s, &image.to_string(), path)?;
            }
        }
        let json = serde_json::to_vec_pretty(&s.bom).map_err(|e| e.to_string())?;
        match &args.output {
            Some(p) => {
                std::fs::write(p, &json).map_err(|e| format!("writing {}: {e}", p.display()))?
            }
            None => print_stdout(&(String::from_utf8_lossy(&json).into_owned() + "\n"))?,
        }
        // stdout may be the SBOM: notes go to stderr, where a person sees them
        for w in s.pulled.warnings.iter().chain(&s.catalog.warnings) {
            say!("warning: {}", terminal_safe(w));
        }
        say!(
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
            say!("error: {}", terminal_safe(&e.to_string()));
            ExitCode::from(2)
        }
    }
}

/// Why `scan` stopped: a message from anywhere (shown with its control
/// characters escaped), or the setup check's, which is ours, already safe,
/// and spans lines on purpose.
enum ScanError {
    Message(String),
    Setup(scangate::inspector::setup::SetupError),
}

impl From<String> for ScanError {
    fn from(s: String) -> Self {
        ScanError::Message(s)
    }
}

async fn scan(args: ScanArgs) -> ExitCode {
    let run = async {
        let (image, platform) = parse_image(&args.image)?;
        let pull = worker::pull_options(&args.image.registry)?;
        let policy = scan_policy(&args)?;
        // Before the pull: a missing region or credentials is known now,
        // not after minutes of pulling and retries.
        let sdk = scangate::inspector::setup::load_for_cli(args.region.as_deref())
            .await
            .map_err(ScanError::Setup)?;
        let ctx = Context {
            pull,
            inspector: Inspector::new(&sdk, RetryPolicy::default()).with_budget(RetryBudget::cli()),
            // `scan` is the inspector engine; the context is shared with the worker.
            ecr: scangate::inspector::ecr::EcrScanner::new(
                &sdk,
                RetryPolicy::default(),
                Default::default(),
            ),
            kms: scangate::signature::kms::AwsKms::new(&sdk),
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
                pipeline::Progress::Pulling => say!("pulling {name}…"),
                pipeline::Progress::Catalogued { packages } => {
                    say!("{packages} packages catalogued")
                }
                pipeline::Progress::Scanning { components } => {
                    say!("scanning {components} components with Inspector…")
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
                "policy": report.decision.policy,
                "rules": report.decision.rules,
                "suppressed": report.decision.suppressed,
                "suppressions": report.decision.suppressions,
                "expired_rules": report.decision.expired_rules,
                "stale_rules": report.decision.stale_rules,
                "packages": report.packages,
                "warnings": report.warnings,
                "findings": report.result.findings,
                "risks": scangate::report::risks::json(&report),
                "risk_gates": report.decision.risks,
                "signature": report.risks.signature,
            }))?,
            ScanFormat::Markdown => scangate::report::markdown::render("-", &report),
            ScanFormat::Sarif => pretty(&scangate::report::sarif::render(&meta, &report))?,
            ScanFormat::Junit => scangate::report::junit::render(&meta, &report),
            ScanFormat::Cyclonedx => pretty(&scangate::report::cyclonedx::render(&report))?,
            ScanFormat::Html => scangate::report::html::render(&meta, &report),
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
                say!(
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
            None => print_stdout(&format!("{}\n", text.trim_end()))?,
        }
        Ok::<Verdict, ScanError>(report.decision.verdict)
    };
    match run.await {
        Ok(Verdict::Pass) => ExitCode::SUCCESS,
        Ok(Verdict::Fail) => ExitCode::from(args.exit_code),
        Err(ScanError::Message(e)) => {
            say!("error: {}", terminal_safe(&e));
            ExitCode::from(2)
        }
        Err(ScanError::Setup(e)) => {
            say!("error: {e}");
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
        other: threshold("--other-threshold", &args.other_threshold)?,
        fixable_only: args.fixable_only.then_some(true),
        via: scangate::policy::explain::OverrideVia::CommandLine,
    };
    match &args.policy {
        None => Ok(overrides.apply(Policy::default())),
        Some(path) => {
            let file = read_policy_file(path).map_err(|(_, e)| e)?;
            for w in file.warnings(scangate::policy::file::today_utc()) {
                say!("warning: {}", terminal_safe(&w));
            }
            Ok(file.to_policy(&overrides))
        }
    }
}

/// Reads and parses a policy file; the exit code says which went wrong.
fn read_policy_file(path: &std::path::Path) -> Result<PolicyFile, (u8, String)> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| (2, format!("reading {name}: {e}")))?;
    let mut file = PolicyFile::parse(&name, &text).map_err(|e| (1, e.to_string()))?;
    // Keys and roots the signature section names are beside the file.
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let read = |entry: &str| -> Result<String, String> {
        let p = dir.join(entry);
        let len = std::fs::metadata(&p).map_err(|e| e.to_string())?.len();
        if len > scangate::signature::cfg::MAX_TRUST_FILE_BYTES as u64 {
            return Err(format!("{len} bytes: not a key file"));
        }
        std::fs::read_to_string(&p).map_err(|e| e.to_string())
    };
    file.resolve_signature_files(&read)
        .map_err(|e| (2, e.to_string()))?;
    Ok(file)
}

fn policy_check(path: &std::path::Path) -> ExitCode {
    let file = match read_policy_file(path) {
        Ok(f) => f,
        Err((code, e)) => {
            say!("error: {}", terminal_safe(&e.to_string()));
            return ExitCode::from(code);
        }
    };
    let today = scangate::policy::file::today_utc();
    let mut o = String::new();
    let p = file.to_policy(&PolicyOverrides::default());
    let limit = |t: Option<u64>| t.map_or("unlimited".to_owned(), |n| n.to_string());
    let t = p.thresholds;
    let _ = writeln!(o, "{}: valid (version {})", path.display(), file.version);
    let _ = writeln!(
        o,
        "thresholds: critical {}, high {}, medium {}, low {}, other {}",
        limit(t.critical),
        limit(t.high),
        limit(t.medium),
        limit(t.low),
        limit(t.other)
    );
    let _ = writeln!(o, "fixable_only: {}", p.fixable_only);
    let _ = writeln!(o, "fail_on_kev: {}", p.fail_on_kev);
    let _ = writeln!(
        o,
        "epss_threshold: {}",
        p.epss_threshold
            .map_or("none".to_owned(), |e| e.to_string())
    );
    if !p.fail_on_ids.is_empty() {
        let _ = writeln!(
            o,
            "fail_on_ids: {}",
            terminal_safe(&p.fail_on_ids.iter().cloned().collect::<Vec<_>>().join(", "))
        );
    }
    for r in &p.ignore {
        let _ = writeln!(
            o,
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
    for line in scangate::policy::risks::describe(&p.risks) {
        println!("{}", terminal_safe(&line));
    }
    for w in file.warnings(today) {
        let _ = writeln!(o, "warning: {}", terminal_safe(&w));
    }
    match print_stdout(&o) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say!("error: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_that_look_like_a_pass_or_an_error_are_refused() {
        for (value, want) in [
            ("0", "0 would make a policy failure look like a pass"),
            ("2", "2 is the exit status of an error"),
            ("256", "an exit code is 1 or 3 to 255"),
        ] {
            let err = Cli::try_parse_from(["scangate", "scan", "r/x:1", "--exit-code", value])
                .err()
                .unwrap_or_else(|| panic!("--exit-code {value} was accepted"));
            assert_eq!(err.exit_code(), 2, "{value}");
            let text = err.render().to_string();
            assert!(text.contains(want), "{value}: {text}");
        }
        for ok in ["1", "3", "255"] {
            assert!(
                Cli::try_parse_from(["scangate", "scan", "r/x:1", "--exit-code", ok]).is_ok(),
                "{ok}"
            );
        }
    }

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
                "3",
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
            vec!["scangate", "demo", "--serve", "--listen", "127.0.0.1:0"],
            vec!["scangate", "scan", "r/x:1", "--region", "eu-west-1"],
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
