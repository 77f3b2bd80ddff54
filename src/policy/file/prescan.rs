//! Bounds a policy file before a YAML parser sees it.
//!
//! libyaml (under serde_yaml_ng) checks every "simple key" of every open
//! flow collection on each token, so its time grows with tokens × flow
//! depth: 400 KB of `{a: ` took 95 s. serde_yaml_ng's own recursion limit
//! only applies after the whole document is scanned. So the bytes are
//! bounded here first, in one linear pass: size, nesting, aliases, and the
//! number of flow collections.
//!
//! The pass is a light tokenizer, not a YAML parser. Where it could read a
//! hostile file differently from libyaml, it errs towards counting more:
//! every `[`/`{` in a flow collection counts as an opening, even inside
//! what looks like a quoted string, and the total number of `[`/`{` bytes
//! anywhere in the file (quotes, comments and plain text included) is
//! capped as well, which bounds libyaml's flow depth however a hostile file
//! is read. The depth limit gives the precise message for honest files.

/// A policy file is a few KiB; 256 KiB holds thousands of ignore rules.
pub const MAX_BYTES: usize = 256 * 1024;
/// A real policy nests four deep (`ignore` → list → rule → value).
pub const MAX_DEPTH: usize = 32;
/// `[` and `{` bytes in the whole file: flow-style lists and inline maps
/// (`thresholds: { high: 2 }`, `- {id: …, reason: …}`).
/// libyaml's time at this flow depth over the rest of 256 KiB is the worst
/// a file can cost: 3 s of CPU at 4096 in a debug build, linear in the
/// depth, so about 0.75 s at 1024 in debug and a fraction in release.
pub const MAX_FLOW_OPENINGS: usize = 1024;
/// `*alias` references; anchors are for sharing a reason or two.
pub const MAX_ALIASES: usize = 64;

/// The first limit the text exceeds, as a message with its line.
pub fn check(text: &str) -> Result<(), String> {
    if text.len() > MAX_BYTES {
        return Err(format!(
            "the file is {} bytes, more than the {MAX_BYTES} bytes a policy file may have",
            text.len()
        ));
    }
    Scan::default().run(text.as_bytes())
}

#[derive(Default)]
struct Scan {
    line: usize,
    /// Open flow collections (as far as this pass can tell).
    flow: usize,
    /// Columns of the open block collections, innermost last.
    indents: Vec<usize>,
    openings: usize,
    aliases: usize,
}

impl Scan {
    fn run(mut self, b: &[u8]) -> Result<(), String> {
        self.line = 1;
        let mut i = 0;
        let mut col = 0;
        let mut line_start = true;
        // Where a node may begin: the start of a line, or after an
        // indicator (`- `, `: `, `[`, `,`, …), an anchor or a tag and any
        // blanks. Blanks inside a plain scalar (`not *reachable*`) do not
        // start one.
        let mut token_start = true;
        // A `#` starts a comment only after a blank.
        let mut after_blank = true;
        while i < b.len() {
            let c = b[i];
            if c == b'\n' {
                self.line += 1;
                (i, col, line_start, token_start, after_blank) = (i + 1, 0, true, true, true);
                continue;
            }
            if matches!(c, b' ' | b'\t' | b'\r') {
                (i, col, after_blank) = (i + 1, col + 1, true);
                continue;
            }
            let blank_before = std::mem::replace(&mut after_blank, false);
            if line_start && self.flow == 0 && c != b'#' {
                self.block_entry(col)?;
            }
            line_start = false;
            match c {
                b'#' if blank_before => {
                    // A comment: to the end of the line.
                    while i < b.len() && b[i] != b'\n' {
                        self.opening(b[i])?;
                        i += 1;
                    }
                    continue;
                }
                b'[' | b'{' => {
                    self.opening(c)?;
                    if token_start || self.flow > 0 {
                        self.flow += 1;
                        self.depth()?;
                    }
                    token_start = true;
                }
                b']' | b'}' if self.flow > 0 => {
                    self.flow -= 1;
                    token_start = true;
                }
                b',' if self.flow > 0 => token_start = true,
                b'\'' | b'"' if token_start && self.flow > 0 => {
                    i = self.quoted(b, i)?;
                    token_start = false;
                    continue;
                }
                // An anchor or a tag: the node it names follows.
                b'&' | b'!' if token_start => {
                    while i + 1 < b.len()
                        && !matches!(
                            b[i + 1],
                            b' ' | b'\t' | b'\r' | b'\n' | b',' | b'[' | b']' | b'{' | b'}'
                        )
                    {
                        i += 1;
                        col += 1;
                    }
                }
                b'*' if token_start => {
                    self.aliases += 1;
                    if self.aliases > MAX_ALIASES {
                        return Err(format!(
                            "more than {MAX_ALIASES} aliases (`*name`) at line {}",
                            self.line
                        ));
                    }
                    token_start = false;
                }
                // `- `, `? `, `: ` (and `:` before a flow indicator): what
                // follows starts a new node.
                b':' if next_is_blank_or_flow(b, i, self.flow > 0) => token_start = true,
                b'-' | b'?' if token_start && next_is_blank_or_flow(b, i, self.flow > 0) => {
                    if self.flow == 0 {
                        // A compact nested entry (`- - x`, `- key: v`) is a
                        // block collection at the next column.
                        self.compact(b, i, col)?;
                    }
                    token_start = true;
                }
                _ => token_start = false,
            }
            i += 1;
            col += 1;
        }
        Ok(())
    }

    /// A block-context line starting at `col`: collections indented less
    /// end; a deeper one begins.
    fn block_entry(&mut self, col: usize) -> Result<(), String> {
        while self.indents.last().is_some_and(|&t| t > col) {
            self.indents.pop();
        }
        if self.indents.last() != Some(&col) {
            self.indents.push(col);
            self.depth()?;
        }
        Ok(())
    }

    /// After `- ` or `? ` in block context, the content's column opens a
    /// nested collection when something follows on the same line.
    fn compact(&mut self, b: &[u8], i: usize, col: usize) -> Result<(), String> {
        let mut j = i + 1;
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        if j < b.len() && !matches!(b[j], b'\n' | b'\r' | b'#') {
            self.block_entry(col + (j - i))?;
        }
        Ok(())
    }

    /// Every `[`/`{` byte counts, wherever it is: this cap holds however
    /// the rest of the file is read.
    fn opening(&mut self, c: u8) -> Result<(), String> {
        if matches!(c, b'[' | b'{') {
            self.openings += 1;
            if self.openings > MAX_FLOW_OPENINGS {
                return Err(format!(
                    "more than {MAX_FLOW_OPENINGS} `[` or `{{` at line {}: write long lists in block style (`- item` per line)",
                    self.line
                ));
            }
        }
        Ok(())
    }

    fn depth(&self) -> Result<(), String> {
        let d = self.indents.len() + self.flow;
        if d > MAX_DEPTH {
            return Err(format!(
                "nesting deeper than {MAX_DEPTH} levels at line {} (a policy file nests 4 deep)",
                self.line
            ));
        }
        Ok(())
    }

    /// Skips a quoted scalar opening at `i`; returns the index after it.
    /// `[`/`{` inside still count towards the cap (see the module comment).
    fn quoted(&mut self, b: &[u8], i: usize) -> Result<usize, String> {
        let q = b[i];
        let mut j = i + 1;
        while j < b.len() {
            match b[j] {
                b'\\' if q == b'"' => {
                    // The escaped byte still counts (and still ends a line).
                    match b.get(j + 1) {
                        Some(b'\n') => self.line += 1,
                        Some(&n) => self.opening(n)?,
                        None => {}
                    }
                    j += 1;
                }
                b'\'' if q == b'\'' && b.get(j + 1) == Some(&b'\'') => j += 1,
                c if c == q => return Ok(j + 1),
                b'\n' => self.line += 1,
                c => self.opening(c)?,
            }
            j += 1;
        }
        Ok(j)
    }
}

fn next_is_blank_or_flow(b: &[u8], i: usize, flow: bool) -> bool {
    match b.get(i + 1) {
        None => true,
        Some(b' ' | b'\t' | b'\n' | b'\r') => true,
        Some(b',' | b'[' | b']' | b'{' | b'}') => flow,
        Some(_) => false,
    }
}
