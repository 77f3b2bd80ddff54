//! The coordinates in an embedded `pom.xml`: `project/groupId`,
//! `artifactId` and `version`, the group and version inherited from
//! `project/parent` when absent, and `${…}` placeholders resolved from the
//! pom's own `<properties>` and `project.*` names. A value that still holds
//! a placeholder after that is dropped, never guessed: its real value came
//! from a parent pom or the command line that is not in the image.
//!
//! Read with a streaming tokenizer (no tree, no DTD, no entity expansion):
//! the input is at most the cataloger's text limit and only the few
//! elements above are kept.

use std::collections::BTreeMap;

use xmlparser::{ElementEnd, Token, Tokenizer};

/// Deeper nesting than any pom has is refused rather than tracked.
const MAX_DEPTH: usize = 64;
/// `<properties>` entries kept for placeholder resolution.
const MAX_PROPERTIES: usize = 1000;
/// Longest value kept (coordinates are far shorter).
const MAX_VALUE: usize = 256;
/// Rounds of `${a}` → `${b}` → value substitution.
const MAX_ROUNDS: usize = 4;

#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Pom {
    pub group: Option<String>,
    pub artifact: Option<String>,
    pub version: Option<String>,
}

#[derive(Default)]
struct Raw {
    group: Option<String>,
    artifact: Option<String>,
    version: Option<String>,
    parent_group: Option<String>,
    parent_version: Option<String>,
    props: BTreeMap<String, String>,
}

/// The pom's effective coordinates, each `None` when absent or unresolved.
pub(super) fn parse(text: &str) -> Result<Pom, String> {
    let raw = read(text)?;
    let resolve = |v: &Option<String>| v.as_deref().and_then(|v| substitute(v, &raw));
    let group = resolve(&raw.group).or_else(|| resolve(&raw.parent_group));
    let version = resolve(&raw.version).or_else(|| resolve(&raw.parent_version));
    Ok(Pom {
        group,
        artifact: resolve(&raw.artifact),
        version,
    })
}

fn read(text: &str) -> Result<Raw, String> {
    let mut raw = Raw::default();
    let mut path: Vec<&str> = Vec::new();
    let mut seen_root = false;
    for token in Tokenizer::from(text) {
        crate::cancel::checkpoint().map_err(|e| e.to_string())?;
        match token.map_err(|e| e.to_string())? {
            Token::ElementStart { local, .. } => {
                if path.len() >= MAX_DEPTH {
                    return Err(format!("nested deeper than {MAX_DEPTH}"));
                }
                if path.is_empty() && std::mem::replace(&mut seen_root, true) {
                    return Err("more than one root element".into());
                }
                path.push(local.as_str());
            }
            // `>` of a start tag opens it; `/>` and `</x>` close one
            Token::ElementEnd { end, .. } if !matches!(end, ElementEnd::Open) => {
                path.pop();
            }
            Token::Text { text } => keep(&mut raw, &path, text.as_str()),
            Token::Cdata { text, .. } => keep(&mut raw, &path, text.as_str()),
            Token::DtdStart { .. } | Token::EmptyDtd { .. } => {
                return Err("a DTD in pom.xml".into());
            }
            _ => {}
        }
    }
    if !seen_root || !path.is_empty() {
        return Err("not a complete XML document".into());
    }
    Ok(raw)
}

/// Records `text` if `path` is one of the elements the coordinates need.
fn keep(raw: &mut Raw, path: &[&str], text: &str) {
    let value = text.trim();
    if value.is_empty() || value.len() > MAX_VALUE || value.contains('&') {
        return;
    }
    let slot = match path {
        ["project", "groupId"] => &mut raw.group,
        ["project", "artifactId"] => &mut raw.artifact,
        ["project", "version"] => &mut raw.version,
        ["project", "parent", "groupId"] => &mut raw.parent_group,
        ["project", "parent", "version"] => &mut raw.parent_version,
        ["project", "properties", name] => {
            if raw.props.len() < MAX_PROPERTIES {
                raw.props.insert((*name).to_owned(), value.to_owned());
            }
            return;
        }
        _ => return,
    };
    slot.get_or_insert_with(|| value.to_owned());
}

/// `value` with every `${name}` replaced, or `None` if one cannot be.
fn substitute(value: &str, raw: &Raw) -> Option<String> {
    let mut v = value.to_owned();
    for _ in 0..MAX_ROUNDS {
        let Some(start) = v.find("${") else {
            return Some(v);
        };
        let end = start + v[start..].find('}')?;
        let name = &v[start + 2..end];
        let with = lookup(name, raw)?;
        v = format!("{}{}{}", &v[..start], with, &v[end + 1..]);
        if v.len() > MAX_VALUE {
            return None;
        }
    }
    (!v.contains("${")).then_some(v)
}

fn lookup<'a>(name: &str, raw: &'a Raw) -> Option<&'a str> {
    let name = name.strip_prefix("pom.").unwrap_or(name);
    let field = match name.strip_prefix("project.").unwrap_or(name) {
        "groupId" => raw.group.as_ref().or(raw.parent_group.as_ref()),
        "version" => raw.version.as_ref().or(raw.parent_version.as_ref()),
        "artifactId" => raw.artifact.as_ref(),
        "parent.groupId" => raw.parent_group.as_ref(),
        "parent.version" => raw.parent_version.as_ref(),
        _ => raw.props.get(name),
    };
    // A field that is itself a placeholder resolves in the next round.
    field.map(String::as_str)
}
