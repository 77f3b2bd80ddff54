//! Policy configuration: thresholds as they arrive from action properties.

use serde::Serialize;

use crate::inspector::Severity;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error(
        "{property} must be a whole number ≥ 0 (findings allowed at that severity) or \"unlimited\", got {value:?}"
    )]
    BadThreshold { property: String, value: String },
    #[error("{property} must be true or false, got {value:?}")]
    BadBoolean { property: String, value: String },
}

/// Findings allowed per severity; `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Thresholds {
    pub critical: Option<u64>,
    pub high: Option<u64>,
    pub medium: Option<u64>,
    pub low: Option<u64>,
    pub other: Option<u64>,
}

impl Default for Thresholds {
    /// DESIGN.md: critical 0, high 0, the rest unlimited.
    fn default() -> Self {
        Thresholds {
            critical: Some(0),
            high: Some(0),
            medium: None,
            low: None,
            other: None,
        }
    }
}

impl Thresholds {
    pub fn get(&self, s: Severity) -> Option<u64> {
        match s {
            Severity::Critical => self.critical,
            Severity::High => self.high,
            Severity::Medium => self.medium,
            Severity::Low => self.low,
            Severity::Other => self.other,
        }
    }
}

/// Parses a Number action property. CodePipeline hands every property over
/// as a string; users write `5`, sometimes `5.0`, and need a way to say "no
/// limit" for a severity that defaults to 0.
pub fn parse_threshold(property: &str, value: &str) -> Result<Option<u64>, PolicyError> {
    let v = value.trim();
    let bad = || PolicyError::BadThreshold {
        property: property.to_owned(),
        value: value.to_owned(),
    };
    if v.eq_ignore_ascii_case("unlimited") || v.eq_ignore_ascii_case("none") || v == "-1" {
        return Ok(None);
    }
    if let Ok(n) = v.parse::<u64>() {
        return Ok(Some(n));
    }
    // Number properties typed into the console sometimes arrive as "5.0".
    match v.parse::<f64>() {
        Ok(f) if f >= 0.0 && f.fract() == 0.0 && f <= u32::MAX as f64 => Ok(Some(f as u64)),
        _ => Err(bad()),
    }
}

pub fn parse_bool(property: &str, value: &str) -> Result<bool, PolicyError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" | "" => Ok(false),
        _ => Err(PolicyError::BadBoolean {
            property: property.to_owned(),
            value: value.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_accept_numbers_and_unlimited() {
        assert_eq!(parse_threshold("HighThreshold", "3"), Ok(Some(3)));
        assert_eq!(parse_threshold("HighThreshold", " 3.0 "), Ok(Some(3)));
        assert_eq!(parse_threshold("HighThreshold", "unlimited"), Ok(None));
        assert_eq!(parse_threshold("HighThreshold", "-1"), Ok(None));
    }

    #[test]
    fn thresholds_reject_garbage_naming_the_property() {
        let e = parse_threshold("CriticalThreshold", "lots").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("CriticalThreshold"), "{msg}");
        assert!(msg.contains("\"lots\""), "{msg}");
        assert!(parse_threshold("X", "-3").is_err());
        assert!(parse_threshold("X", "1.5").is_err());
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_bool("FixableOnly", "TRUE"), Ok(true));
        assert_eq!(parse_bool("FixableOnly", "false"), Ok(false));
        assert!(parse_bool("FixableOnly", "maybe").is_err());
    }
}
