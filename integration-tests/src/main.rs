//! `scangate-emulators`: the CodePipeline and Inspector Scan emulators as a
//! process. Prints one JSON line with the URLs, then serves until killed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use integration_tests::codepipeline::CodePipelineOptions;
use integration_tests::inspector::{DEFAULT_MAX_COMPONENTS, InspectorOptions};
use integration_tests::{EmulatorOptions, start};
use tokio::io::AsyncWriteExt;

#[derive(Debug, Parser)]
#[command(
    name = "scangate-emulators",
    about = "CodePipeline job-worker API and Inspector Scan emulators for scangate"
)]
struct Args {
    /// Address to serve on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Folder of real ScanSbom answers (`*.json.scan`) to learn vulnerabilities from.
    #[arg(long, env = "SCANGATE_EMULATOR_FIXTURES")]
    fixtures: Option<PathBuf>,
    /// Largest number of components (nested included) one ScanSbom call takes.
    #[arg(long, default_value_t = DEFAULT_MAX_COMPONENTS)]
    max_components: usize,
    /// Seconds a dispatched job waits for AcknowledgeJob before it is handed out again.
    #[arg(long, default_value_t = 60.0)]
    dispatch_timeout: f64,
    /// Seconds a job may stay InProgress before it times out (default: never).
    #[arg(long)]
    job_timeout: Option<f64>,
    /// Account id in jobs and pipeline ARNs.
    #[arg(long, default_value = "123456789012")]
    account_id: String,
}

fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let opts = EmulatorOptions {
        codepipeline: CodePipelineOptions {
            account_id: args.account_id,
            dispatch_timeout: seconds(args.dispatch_timeout),
            job_timeout: args.job_timeout.map(seconds),
            ..CodePipelineOptions::default()
        },
        inspector: InspectorOptions {
            max_components: args.max_components,
            fixtures_dir: args.fixtures,
            ..InspectorOptions::default()
        },
    };
    let emulators = match start(args.listen, opts).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("scangate-emulators: {e}");
            return ExitCode::from(2);
        }
    };
    let line = serde_json::to_string(&emulators.urls).unwrap_or_default();
    let mut stdout = tokio::io::stdout();
    // Whoever started us reads this line to find the port: flush it now.
    if stdout
        .write_all(format!("{line}\n").as_bytes())
        .await
        .is_err()
        || stdout.flush().await.is_err()
    {
        return ExitCode::from(2);
    }
    wait_for_signal().await;
    emulators.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
