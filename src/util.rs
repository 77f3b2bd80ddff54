//! Small helpers shared by several stages.

/// Cuts `s` to at most `max` characters (Unicode scalar values, which is how
/// the CodePipeline limits count), ending with an ellipsis when cut, never in
/// the middle of a character.
pub fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    let keep = max - 1;
    let end = s.char_indices().nth(keep).map_or(s.len(), |(i, _)| i);
    let mut out = String::with_capacity(end + 3);
    out.push_str(&s[..end]);
    out.push('…');
    out
}

/// Parses durations such as `2s`, `100s`, `1m30s`, `250ms`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?}: {e} (examples: 2s, 100s, 1m30s)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_keeps_short_strings() {
        assert_eq!(truncate_chars("abc", 3), "abc");
    }

    #[test]
    fn truncate_counts_chars_not_bytes() {
        let s = "é".repeat(10);
        let t = truncate_chars(&s, 5);
        assert_eq!(t.chars().count(), 5);
        assert!(t.ends_with('…'));
        assert!(t.starts_with("éééé"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s").unwrap().as_secs(), 2);
        assert_eq!(parse_duration("1m30s").unwrap().as_secs(), 90);
        assert!(parse_duration("soon").is_err());
    }
}
