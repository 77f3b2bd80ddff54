//! The AWS settings of a one-off `scangate scan`, checked before anything
//! is sent: with no region or no credentials the SDK would only fail at the
//! first ScanSbom call, after the retries, as "Inspector is unavailable"
//! (40–54 s, issue 12). Here the same situation ends in well under two
//! seconds with what is missing and how to set it.
//!
//! The worker does not use this: it loads the SDK defaults and keeps its
//! long retries, because it serves jobs and waits out an outage.

use std::time::Duration;

use aws_config::Region;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::meta::region::{ProvideRegion, RegionProviderChain};
use aws_credential_types::provider::ProvideCredentials as _;
use aws_credential_types::provider::error::CredentialsError;

/// Each EC2 instance-metadata request (token, then value). On an instance
/// it answers within milliseconds; off one, the default (1 s, 4 attempts,
/// once for the region and once for the credentials) is what made a
/// machine with nothing configured wait.
const IMDS_TIMEOUT: Duration = Duration::from_millis(300);
/// A profile can run a `credential_process` or assume a role through STS:
/// real work, but not minutes of it.
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(15);

/// Said by every setup error: a way to try scangate with no account.
const NO_ACCOUNT: &str = "No AWS account? `scangate demo --serve` runs a local simulation to scan against (see README, \"Your first hour\").";

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "no AWS region is set, and Amazon Inspector is regional.\n  \
         Set one: --region us-east-1, or export AWS_REGION=us-east-1, or `region = us-east-1` \
         in the profile named by AWS_PROFILE (~/.aws/config).\n  {NO_ACCOUNT}"
    )]
    NoRegion,
    #[error(
        "no AWS credentials found{detail}.\n  \
         Set them: export AWS_PROFILE=NAME for a profile in ~/.aws/config (aws configure, aws sso login), \
         or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary keys). \
         The identity needs the IAM permission inspector-scan:ScanSbom.\n  {NO_ACCOUNT}"
    )]
    NoCredentials { detail: String },
    #[error(
        "no AWS credentials within {}s: the credential source ({profile}) did not answer in time",
        CREDENTIALS_TIMEOUT.as_secs()
    )]
    CredentialsTimeout { profile: String },
}

/// The SDK settings for `scan`: the usual sources (flag, environment,
/// profile, web identity, ECS, EC2 instance metadata), with instance
/// metadata asked once and briefly, and the region and credentials proven
/// present before the caller spends time pulling an image.
pub async fn load_for_cli(region_flag: Option<&str>) -> Result<aws_config::SdkConfig, SetupError> {
    let imds = aws_config::imds::Client::builder()
        .max_attempts(1)
        .connect_timeout(IMDS_TIMEOUT)
        .read_timeout(IMDS_TIMEOUT)
        .build();
    let region = match region_flag.filter(|r| !r.trim().is_empty()) {
        Some(r) => Region::new(r.trim().to_owned()),
        None => region_chain(imds.clone())
            .region()
            .await
            .ok_or(SetupError::NoRegion)?,
    };
    let credentials = DefaultCredentialsChain::builder()
        .region(region.clone())
        .imds_client(imds)
        .build()
        .await;
    let answer = tokio::time::timeout(CREDENTIALS_TIMEOUT, credentials.provide_credentials()).await;
    match answer {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(no_credentials(&e)),
        Err(_) => {
            return Err(SetupError::CredentialsTimeout {
                profile: profile_name(),
            });
        }
    }
    Ok(aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(region)
        .credentials_provider(credentials)
        .load()
        .await)
}

/// The SDK's default region chain (environment, profile, instance
/// metadata) with our instance-metadata client.
fn region_chain(imds: aws_config::imds::Client) -> impl ProvideRegion {
    RegionProviderChain::first_try(
        aws_config::environment::region::EnvironmentVariableRegionProvider::new(),
    )
    .or_else(aws_config::profile::ProfileFileRegionProvider::builder().build())
    .or_else(
        aws_config::imds::region::ImdsRegionProvider::builder()
            .imds_client(imds)
            .build(),
    )
}

fn profile_name() -> String {
    match std::env::var("AWS_PROFILE") {
        Ok(p) if !p.is_empty() => format!("profile {:?}", crate::report::terminal_safe(&p)),
        _ => "profile \"default\"".to_owned(),
    }
}

/// Where the default chain looks, for the message. When a source answered
/// with an error rather than "nothing here" (an expired SSO session, a
/// failing credential_process, instance metadata that refuses), what it
/// said is quoted too.
fn no_credentials(e: &CredentialsError) -> SetupError {
    let looked = format!(
        "looked at AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the {} in ~/.aws/credentials and \
         ~/.aws/config, web identity, ECS and EC2 instance metadata",
        profile_name()
    );
    let detail = match e {
        CredentialsError::CredentialsNotLoaded(_) => format!(" ({looked})"),
        other => format!(
            " ({looked}; one of them said: {})",
            crate::report::terminal_safe(&super::describe(other))
        ),
    };
    SetupError::NoCredentials { detail }
}
