//! Platforms (`os/architecture[/variant]`) and the choice of one image out of
//! a multi-platform index, with containerd's normalisation so that
//! `linux/arm64`, `linux/arm64/v8` and `linux/aarch64` all mean the same.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::ImageError;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Default for Platform {
    fn default() -> Self {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = ImageError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| ImageError::InvalidPlatform {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(err("it is empty"));
        }
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() < 2 || parts.len() > 3 {
            return Err(err("it needs two or three '/'-separated parts"));
        }
        let valid = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        };
        if let Some(bad) = parts.iter().find(|p| !valid(p)) {
            return Err(err(&format!(
                "part {bad:?} is empty or has invalid characters"
            )));
        }
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            architecture: parts[1].to_ascii_lowercase(),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        })
    }
}

impl Platform {
    /// The canonical form used for comparison: `aarch64` → `arm64`,
    /// `arm64/v8` → `arm64`, `x86_64` → `amd64`, `arm` → `arm/v7`.
    pub fn normalized(&self) -> Platform {
        let os = match self.os.to_ascii_lowercase().as_str() {
            "macos" => "darwin".to_owned(),
            o => o.to_owned(),
        };
        let variant = self.variant.as_deref().map(str::to_ascii_lowercase);
        let (architecture, variant) = match self.architecture.to_ascii_lowercase().as_str() {
            "i386" | "386" => ("386".to_owned(), None),
            "x86_64" | "x86-64" | "amd64" => (
                "amd64".to_owned(),
                variant.filter(|v| v != "v1" && v != "1"),
            ),
            "aarch64" | "arm64" => (
                "arm64".to_owned(),
                variant.filter(|v| v != "v8" && v != "8"),
            ),
            "armhf" => ("arm".to_owned(), Some("v7".to_owned())),
            "armel" => ("arm".to_owned(), Some("v6".to_owned())),
            "arm" => {
                let v = match variant.as_deref() {
                    None | Some("7") | Some("v7") => "v7".to_owned(),
                    Some(v) if v.chars().all(|c| c.is_ascii_digit()) => format!("v{v}"),
                    Some(v) => v.to_owned(),
                };
                ("arm".to_owned(), Some(v))
            }
            a => (a.to_owned(), variant),
        };
        Platform {
            os,
            architecture,
            variant,
        }
    }

    /// `Some(true)` for an exact match, `Some(false)` for an acceptable one
    /// (the wanted platform names no variant, the candidate has one), `None`
    /// for a mismatch.
    fn matches(&self, candidate: &Platform) -> Option<bool> {
        let want = self.normalized();
        let have = candidate.normalized();
        if want.os != have.os || want.architecture != have.architecture {
            return None;
        }
        match (&want.variant, &have.variant) {
            (a, b) if a == b => Some(true),
            (None, Some(_)) => Some(false),
            _ => None,
        }
    }

    /// Whether `candidate` is this platform (exactly or acceptably).
    pub fn accepts(&self, candidate: &Platform) -> bool {
        self.matches(candidate).is_some()
    }

    /// Index of the best candidate: an exact match, else the first one that
    /// is acceptable. `None` entries (no platform in the index) never match.
    pub fn select(&self, candidates: &[Option<Platform>]) -> Option<usize> {
        let mut fallback = None;
        for (i, c) in candidates.iter().enumerate() {
            match c.as_ref().and_then(|c| self.matches(c)) {
                Some(true) => return Some(i),
                Some(false) if fallback.is_none() => fallback = Some(i),
                _ => {}
            }
        }
        fallback
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_displays() {
        assert_eq!(
            p("linux/amd64"),
            Platform {
                os: "linux".into(),
                architecture: "amd64".into(),
                variant: None
            }
        );
        assert_eq!(p("linux/arm64/v8").variant.as_deref(), Some("v8"));
        assert_eq!(p(" Linux/ARM64 ").to_string(), "linux/arm64");
        assert_eq!(p("linux/arm/v7").to_string(), "linux/arm/v7");
        assert_eq!(Platform::default().to_string(), "linux/amd64");
        for bad in [
            "",
            "linux",
            "linux/",
            "/amd64",
            "linux/amd64/v8/x",
            "linux/am d64",
        ] {
            let e = bad.parse::<Platform>().unwrap_err();
            assert!(
                matches!(e, ImageError::InvalidPlatform { .. }),
                "{bad}: {e}"
            );
            assert!(e.to_string().contains("linux/arm64/v8"), "{e}");
        }
    }

    #[test]
    fn selects_by_normalised_platform() {
        let cands = vec![
            Some(p("linux/amd64")),
            Some(p("linux/arm/v6")),
            Some(p("linux/arm/v7")),
            Some(p("linux/arm64/v8")),
            Some(p("linux/ppc64le")),
            Some(p("unknown/unknown")),
            None,
        ];
        assert_eq!(p("linux/amd64").select(&cands), Some(0));
        assert_eq!(p("linux/x86_64").select(&cands), Some(0));
        assert_eq!(p("linux/arm64").select(&cands), Some(3));
        assert_eq!(p("linux/aarch64").select(&cands), Some(3));
        assert_eq!(p("linux/arm64/v8").select(&cands), Some(3));
        assert_eq!(p("linux/arm").select(&cands), Some(2));
        assert_eq!(p("linux/arm/v6").select(&cands), Some(1));
        assert_eq!(p("linux/arm/v5").select(&cands), None);
        assert_eq!(p("linux/s390x").select(&cands), None);
        assert_eq!(p("windows/amd64").select(&cands), None);
    }

    #[test]
    fn prefers_exact_variant_and_falls_back() {
        let cands = vec![Some(p("linux/amd64/v3")), Some(p("linux/amd64"))];
        assert_eq!(p("linux/amd64").select(&cands), Some(1));
        let cands = vec![Some(p("linux/amd64/v3")), Some(p("linux/amd64/v2"))];
        assert_eq!(p("linux/amd64").select(&cands), Some(0));
        assert_eq!(p("linux/amd64/v2").select(&cands), Some(1));
        // arm64 without a variant is v8.
        let cands = vec![Some(p("linux/arm64"))];
        assert_eq!(p("linux/arm64/v8").select(&cands), Some(0));
    }
}
