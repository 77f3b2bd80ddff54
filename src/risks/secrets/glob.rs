//! Path globs (`**/.npmrc`, `/usr/share/doc/**`, `*.pem`) as regexes, so
//! that matching is linear whatever the pattern (a hand-written matcher
//! with `*` backtracking is exponential on hostile globs).
//!
//! Globs match absolute image paths (`/etc/app/key.pem`); a glob without a
//! leading `/` or `**` is taken as absolute. `*` and `?` stay within one
//! path segment, `**/` is any number of directories, a trailing `**`
//! anything below.

use regex::Regex;

/// The regex source for one glob.
fn source(glob: &str) -> String {
    let glob = glob.trim();
    let mut out = String::from("^");
    if !glob.starts_with('/') && !glob.starts_with("**") {
        out.push('/');
    }
    let mut rest = glob;
    while let Some(c) = rest.chars().next() {
        if let Some(r) = rest.strip_prefix("**/") {
            out.push_str("(?:.*/)?");
            rest = r;
            // `/**/` after a segment: the slash before it is already out.
            continue;
        }
        if let Some(r) = rest.strip_prefix("**") {
            out.push_str(".*");
            rest = r;
            continue;
        }
        match c {
            '*' => out.push_str("[^/]*"),
            '?' => out.push_str("[^/]"),
            c => out.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
        }
        rest = &rest[c.len_utf8()..];
    }
    out.push('$');
    // `/**/x` written after a leading slash: `^/(?:.*/)?x` already allows
    // `/x`; nothing more to do.
    out
}

/// Compiles one glob (bounded like a user regex).
pub fn to_regex(glob: &str) -> Result<Regex, String> {
    if glob.len() > super::cfg::MAX_PATTERN_LEN {
        return Err(format!(
            "glob is longer than {} bytes",
            super::cfg::MAX_PATTERN_LEN
        ));
    }
    regex::RegexBuilder::new(&source(glob))
        .size_limit(super::cfg::MAX_USER_REGEX_BYTES)
        .build()
        .map_err(|e| format!("glob {glob:?} is not usable: {e}"))
}

/// Several globs as one regex (`None` for none).
pub fn any_of(globs: &[&str]) -> Result<Option<Regex>, String> {
    if globs.is_empty() {
        return Ok(None);
    }
    let alt: Vec<String> = globs.iter().map(|g| format!("(?:{})", source(g))).collect();
    regex::RegexBuilder::new(&alt.join("|"))
        .size_limit(super::cfg::MAX_USER_REGEX_BYTES * 4)
        .build()
        .map(Some)
        .map_err(|e| format!("globs {globs:?} are not usable: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_shells_with_double_star() {
        let m = |g: &str, p: &str| to_regex(g).unwrap().is_match(p);
        assert!(m("**/.npmrc", "/.npmrc"));
        assert!(m("**/.npmrc", "/root/.npmrc"));
        assert!(!m("**/.npmrc", "/root/.npmrc.bak"));
        assert!(m("/usr/share/doc/**", "/usr/share/doc/a/b"));
        assert!(!m("/usr/share/doc/**", "/usr/share/docs/a"));
        assert!(m("usr/lib/*.pem", "/usr/lib/k.pem"));
        assert!(!m("usr/lib/*.pem", "/usr/lib/x/k.pem"));
        assert!(m("/a/**/t?st/*.key", "/a/b/c/test/x.key"));
        assert!(m("/a/**/t?st/*.key", "/a/test/x.key"));
        assert!(!m("/a.b", "/axb"));
    }

    #[test]
    fn hostile_globs_stay_linear() {
        // A backtracking matcher takes exponential time on this.
        let r = to_regex(&"*a".repeat(40)).unwrap();
        let p = format!("/{}b", "a".repeat(5000));
        let t = std::time::Instant::now();
        assert!(!r.is_match(&p));
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        // Larger ones are refused, not compiled to any size.
        assert!(to_regex(&"*a".repeat(300)).is_err());
        assert!(to_regex(&"x".repeat(5000)).is_err());
    }
}
