//! The action's configuration, as CodePipeline hands it over in
//! `actionConfiguration.configuration`: a map of strings, validated here
//! with messages that name the property and the accepted form.

use std::collections::BTreeMap;

use crate::image::{ImageRef, Platform};
use crate::policy::{Policy, PolicyError, Thresholds, cfg as pcfg};

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
    #[error("Engine {value:?} is not supported by this worker: use \"inspector\"")]
    BadEngine { value: String },
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

#[derive(Debug, Clone)]
pub struct JobConfig {
    /// `None`: take the image from the input artifact.
    pub image: Option<ImageRef>,
    pub policy: Policy,
    pub platform: Platform,
    pub policy_file: Option<String>,
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

        let mut thresholds = Thresholds::default();
        for (name, slot) in [
            (prop::CRITICAL, &mut thresholds.critical),
            (prop::HIGH, &mut thresholds.high),
            (prop::MEDIUM, &mut thresholds.medium),
            (prop::LOW, &mut thresholds.low),
        ] {
            if let Some(v) = get(name) {
                *slot = pcfg::parse_threshold(name, v)?;
            }
        }
        let fixable_only = match get(prop::FIXABLE_ONLY) {
            Some(v) => pcfg::parse_bool(prop::FIXABLE_ONLY, v)?,
            None => false,
        };
        let platform = match get(prop::PLATFORM) {
            Some(v) => v
                .parse::<Platform>()
                .map_err(|e| ConfigError::BadPlatform {
                    value: v.to_owned(),
                    reason: e.to_string(),
                })?,
            None => Platform::default(),
        };
        if let Some(v) = get(prop::ENGINE)
            && !v.eq_ignore_ascii_case("inspector")
        {
            return Err(ConfigError::BadEngine {
                value: v.to_owned(),
            });
        }
        Ok(JobConfig {
            image,
            policy: Policy {
                thresholds,
                fixable_only,
            },
            platform,
            policy_file: get(prop::POLICY_FILE).map(str::to_owned),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn empty_values_are_unset() {
        let c = JobConfig::parse(&map(&[("ImageUrl", " "), ("HighThreshold", "")])).unwrap();
        assert!(c.image.is_none());
        assert_eq!(c.policy.thresholds.high, Some(0));
    }
}
