//! The action's configuration, as CodePipeline hands it over in
//! `actionConfiguration.configuration`: a map of strings, validated here
//! with messages that name the property and the accepted form.

use std::collections::BTreeMap;

use crate::image::{ImageRef, Platform};
use crate::policy::{
    Policy, PolicyError, PolicyFile, PolicyFileError, PolicyOverrides, cfg as pcfg,
};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "ImageUrl {value:?} is not a valid image reference: {reason}. Expected HOST/REPOSITORY:TAG or HOST/REPOSITORY@sha256:DIGEST, usually #{{BuildVariables.IMAGE_URL}}"
    )]
    BadImageUrl { value: String, reason: String },
    #[error(
        "ImageUrl is not set and the job has no input artifact to read imageDetail.json from: set ImageUrl (e.g. #{{BuildVariables.IMAGE_URL}})"
    )]
    NoImage,
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(
        "Platform {value:?} is not valid: {reason}. Expected OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm64/v8"
    )]
    BadPlatform { value: String, reason: String },
    #[error(
        "Engine {value:?} is not supported: use \"inspector\" (scangate's SBOM + Inspector ScanSbom), \"ecr-basic\" (ECR basic scanning) or \"ecr-enhanced\" (Amazon Inspector's continuous ECR scanning)"
    )]
    BadEngine { value: String },
    #[error(
        "Engine {engine} reads Amazon ECR's scan findings, so ImageUrl must be a private ECR image (ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY:TAG), not {image}; use Engine inspector for other registries"
    )]
    EngineNeedsEcr { engine: Engine, image: String },
    #[error(
        "PolicyFile {file:?} is set but the job has no input artifact to read it from: give the action an input artifact that contains it"
    )]
    PolicyFileWithoutArtifact { file: String },
    /// The policy's `signature:` section names a key that cannot be used
    /// (an `awskms:///` key KMS does not serve, a key kind cosign does not
    /// sign with).
    #[error("the policy's signature section cannot be used: {0}")]
    Signature(String),
    /// A user secret rule that does not compile (checked when the policy
    /// file is read; this is the last line).
    #[error("the policy's secrets section cannot be used: {0}")]
    Secrets(String),
    #[error(transparent)]
    PolicyFile(#[from] PolicyFileError),
}

/// Property names of the custom action type (DESIGN.md).
pub mod prop {
    pub const IMAGE_URL: &str = "ImageUrl";
    pub const CRITICAL: &str = "CriticalThreshold";
    pub const HIGH: &str = "HighThreshold";
    pub const MEDIUM: &str = "MediumThreshold";
    pub const LOW: &str = "LowThreshold";
    pub const FIXABLE_ONLY: &str = "FixableOnly";
    pub const POLICY_FILE: &str = "PolicyFile";
    pub const PLATFORM: &str = "Platform";
    pub const ENGINE: &str = "Engine";
    pub const ALL: [&str; 9] = [
        IMAGE_URL,
        CRITICAL,
        HIGH,
        MEDIUM,
        LOW,
        FIXABLE_ONLY,
        POLICY_FILE,
        PLATFORM,
        ENGINE,
    ];
}

/// Where the findings come from (the `Engine` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// Our SBOM, scanned by `inspector-scan:ScanSbom`.
    #[default]
    Inspector,
    /// ECR basic scanning: StartImageScan, then its findings.
    EcrBasic,
    /// The findings Inspector's continuous ECR scanning already holds.
    EcrEnhanced,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Inspector => "inspector",
            Engine::EcrBasic => "ecr-basic",
            Engine::EcrEnhanced => "ecr-enhanced",
        }
    }

    pub fn is_ecr(self) -> bool {
        matches!(self, Engine::EcrBasic | Engine::EcrEnhanced)
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Engine {
    type Err = ConfigError;

    /// Case and `_`/`-` are forgiven: the console makes both easy to type.
    fn from_str(s: &str) -> Result<Engine, ConfigError> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "inspector" => Ok(Engine::Inspector),
            "ecr-basic" => Ok(Engine::EcrBasic),
            "ecr-enhanced" => Ok(Engine::EcrEnhanced),
            _ => Err(ConfigError::BadEngine {
                value: s.to_owned(),
            }),
        }
    }
}

#[derive(Debug, Clone)]
pub struct JobConfig {
    /// `None`: take the image from the input artifact.
    pub image: Option<ImageRef>,
    /// The policy from the properties alone (defaults where unset); with a
    /// policy file use [`JobConfig::policy_with_file`].
    pub policy: Policy,
    /// The threshold and FixableOnly properties that were set: they
    /// override a policy file.
    pub overrides: PolicyOverrides,
    pub platform: Platform,
    pub policy_file: Option<String>,
    pub engine: Engine,
}

impl JobConfig {
    pub fn parse(map: &BTreeMap<String, String>) -> Result<JobConfig, ConfigError> {
        // An empty value is what the console stores for a cleared optional
        // property: treat it as unset.
        let get = |k: &str| map.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());

        let image = get(prop::IMAGE_URL)
            .map(|v| {
                v.parse::<ImageRef>().map_err(|e| ConfigError::BadImageUrl {
                    value: v.to_owned(),
                    reason: e.to_string(),
                })
            })
            .transpose()?;

        let mut overrides = PolicyOverrides::default();
        for (name, slot) in [
            (prop::CRITICAL, &mut overrides.critical),
            (prop::HIGH, &mut overrides.high),
            (prop::MEDIUM, &mut overrides.medium),
            (prop::LOW, &mut overrides.low),
        ] {
            if let Some(v) = get(name) {
                *slot = Some(pcfg::parse_threshold(name, v)?);
            }
        }
        overrides.fixable_only = get(prop::FIXABLE_ONLY)
            .map(|v| pcfg::parse_bool(prop::FIXABLE_ONLY, v))
            .transpose()?;
        let platform = match get(prop::PLATFORM) {
            Some(v) => v
                .parse::<Platform>()
                .map_err(|e| ConfigError::BadPlatform {
                    value: v.to_owned(),
                    reason: e.to_string(),
                })?,
            None => Platform::default(),
        };
        let engine = get(prop::ENGINE)
            .map(str::parse::<Engine>)
            .transpose()?
            .unwrap_or_default();
        // Checked here when ImageUrl is set; an image from imageDetail.json
        // is checked by the pipeline with [`check_engine_image`].
        if let Some(i) = &image {
            check_engine_image(engine, i)?;
        }
        Ok(JobConfig {
            image,
            policy: overrides.apply(Policy::default()),
            overrides,
            platform,
            policy_file: get(prop::POLICY_FILE).map(str::to_owned),
            engine,
        })
    }

    /// The policy of a policy file with the set properties applied on top.
    pub fn policy_with_file(&self, file: &PolicyFile) -> Policy {
        file.to_policy(&self.overrides)
    }

    /// Property names the action type does not declare. Logged by name only:
    /// values of unknown (possibly secret) properties are never printed.
    pub fn unknown_keys(map: &BTreeMap<String, String>) -> Vec<&str> {
        map.keys()
            .map(String::as_str)
            .filter(|k| !prop::ALL.contains(k))
            .collect()
    }
}

/// The ECR engines read findings ECR holds, so only an ECR image can have
/// any.
pub fn check_engine_image(engine: Engine, image: &ImageRef) -> Result<(), ConfigError> {
    if engine.is_ecr() && crate::image::auth::ecr::EcrHost::parse(&image.registry).is_none() {
        return Err(ConfigError::EngineNeedsEcr {
            engine,
            image: image.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Thresholds;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let c = JobConfig::parse(&map(&[("ImageUrl", "127.0.0.1:5000/app:1")])).unwrap();
        assert_eq!(c.policy.thresholds, Thresholds::default());
        assert!(!c.policy.fixable_only);
        assert_eq!(c.platform, Platform::default());
        assert_eq!(c.image.unwrap().to_string(), "127.0.0.1:5000/app:1");
    }

    #[test]
    fn all_properties() {
        let c = JobConfig::parse(&map(&[
            ("ImageUrl", "registry.example.com/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
            ("CriticalThreshold", "1"),
            ("HighThreshold", "2"),
            ("MediumThreshold", "3"),
            ("LowThreshold", "unlimited"),
            ("FixableOnly", "true"),
            ("Platform", "linux/arm64/v8"),
            ("Engine", "inspector"),
        ]))
        .unwrap();
        let t = c.policy.thresholds;
        assert_eq!(
            (t.critical, t.high, t.medium, t.low),
            (Some(1), Some(2), Some(3), None)
        );
        assert!(c.policy.fixable_only);
        assert_eq!(c.platform.to_string(), "linux/arm64/v8");
    }

    #[test]
    fn errors_name_the_property() {
        for (kv, needle) in [
            (("ImageUrl", "not a ref!"), "ImageUrl"),
            (("HighThreshold", "many"), "HighThreshold"),
            (("FixableOnly", "perhaps"), "FixableOnly"),
            (("Platform", "amd64"), "Platform"),
            (("Engine", "grype"), "Engine"),
        ] {
            let e = JobConfig::parse(&map(&[kv])).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn properties_override_the_policy_file() {
        let f = PolicyFile::parse(
            "p.yaml",
            "version: 1\nthresholds: {critical: 3, high: 3, medium: 3}\nfixable_only: true\nfail_on_kev: true\n",
        )
        .unwrap();
        let c = JobConfig::parse(&map(&[
            ("HighThreshold", "unlimited"),
            ("FixableOnly", "false"),
        ]))
        .unwrap();
        let p = c.policy_with_file(&f);
        assert_eq!(p.thresholds.critical, Some(3));
        assert_eq!(p.thresholds.high, None);
        assert_eq!(p.thresholds.medium, Some(3));
        assert!(!p.fixable_only);
        assert!(p.fail_on_kev);
        // Without properties the file decides.
        let c = JobConfig::parse(&map(&[])).unwrap();
        let p = c.policy_with_file(&f);
        assert_eq!(p.thresholds.high, Some(3));
        assert!(p.fixable_only);
        assert_eq!(c.policy, Policy::default());
    }

    #[test]
    fn engines() {
        let ecr = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:1";
        for (v, want) in [
            ("inspector", Engine::Inspector),
            ("ecr-basic", Engine::EcrBasic),
            ("ECR_ENHANCED", Engine::EcrEnhanced),
            (" ecr-enhanced ", Engine::EcrEnhanced),
        ] {
            let c = JobConfig::parse(&map(&[("ImageUrl", ecr), ("Engine", v)])).unwrap();
            assert_eq!(c.engine, want, "{v}");
        }
        assert_eq!(
            JobConfig::parse(&map(&[("ImageUrl", ecr)])).unwrap().engine,
            Engine::Inspector
        );
        // Without ImageUrl the image (from imageDetail.json) is checked later.
        let c = JobConfig::parse(&map(&[("Engine", "ecr-basic")])).unwrap();
        assert_eq!(c.engine, Engine::EcrBasic);
        for other in [
            "registry.example.com/team/app:1",
            "public.ecr.aws/docker/library/debian:12",
        ] {
            let e = JobConfig::parse(&map(&[("ImageUrl", other), ("Engine", "ecr-basic")]))
                .unwrap_err();
            assert!(matches!(e, ConfigError::EngineNeedsEcr { .. }), "{e}");
            let m = e.to_string();
            assert!(m.contains("ecr-basic") && m.contains(other), "{m}");
        }
        let e = JobConfig::parse(&map(&[("Engine", "ecr")])).unwrap_err();
        assert!(e.to_string().contains("ecr-enhanced"), "{e}");
    }

    #[test]
    fn empty_values_are_unset() {
        let c = JobConfig::parse(&map(&[("ImageUrl", " "), ("HighThreshold", "")])).unwrap();
        assert!(c.image.is_none());
        assert_eq!(c.policy.thresholds.high, Some(0));
    }
}
