//! What is not searched for secrets, and why. Each entry is a place where a
//! match is expected and is not a credential of this image: documentation
//! and the test suites that packages ship with their example keys.
//! (`docs/secrets.md` has the same list for users.)

use regex::Regex;
use std::sync::OnceLock;

/// Files larger than this are not searched (1 MiB): configuration and
/// credential files are small; larger text is data, logs or bundles.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Path globs never searched, with the reason.
pub const SKIPPED_PATHS: &[(&str, &str)] = &[
    (
        "/usr/share/doc/**",
        "package documentation: examples of keys and URLs",
    ),
    ("/usr/share/man/**", "manual pages"),
    ("/usr/share/info/**", "GNU info manuals"),
    ("/usr/share/gtk-doc/**", "API documentation"),
    ("/usr/share/help/**", "desktop help"),
    ("/usr/share/common-licenses/**", "licence texts"),
    ("/usr/share/locale/**", "message translations"),
    ("/usr/share/zoneinfo/**", "time-zone data"),
    ("/usr/share/mime/**", "MIME database"),
    ("/usr/share/i18n/**", "locale sources"),
    (
        "/var/lib/dpkg/**",
        "dpkg's own state (file lists, checksums)",
    ),
    ("/var/lib/rpm/**", "the rpm database"),
    ("/var/lib/apt/lists/**", "repository indexes"),
    ("/var/cache/**", "package caches"),
    (
        "/usr/lib/python3*/test/**",
        "CPython's own test suite: its keycert*.pem are published test keys",
    ),
    (
        "/usr/local/lib/python3*/test/**",
        "CPython's own test suite",
    ),
    ("/usr/lib/python3*/idlelib/idle_test/**", "IDLE's tests"),
    (
        "/usr/local/lib/python3*/idlelib/idle_test/**",
        "IDLE's tests",
    ),
    (
        "**/site-packages/**/tests/**",
        "tests that Python packages ship",
    ),
    (
        "**/site-packages/**/test/**",
        "tests that Python packages ship",
    ),
    (
        "**/dist-packages/**/tests/**",
        "tests that Python packages ship",
    ),
    (
        "**/dist-packages/**/test/**",
        "tests that Python packages ship",
    ),
    ("**/node_modules/**/test/**", "tests that npm packages ship"),
    (
        "**/node_modules/**/tests/**",
        "tests that npm packages ship",
    ),
    (
        "**/node_modules/**/__tests__/**",
        "tests that npm packages ship",
    ),
    (
        "**/node_modules/**/*.md",
        "npm package READMEs: token examples",
    ),
    ("**/node_modules/**/*.markdown", "npm package READMEs"),
    (
        "**/testdata/**",
        "Go test fixtures (the standard library's test keys)",
    ),
    ("**/*_test.go", "Go tests"),
    (
        "/usr/lib/go*/src/**",
        "the Go standard library's sources and tests",
    ),
    (
        "/usr/local/go/src/**",
        "the Go standard library's sources and tests",
    ),
    ("/usr/share/perl*/**/t/**", "Perl module tests"),
    (
        "**/*.map",
        "JavaScript source maps: copies of bundled sources",
    ),
];

fn skipped() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        let globs: Vec<&str> = SKIPPED_PATHS.iter().map(|(g, _)| *g).collect();
        super::glob::any_of(&globs)
            .ok()
            .flatten()
            .unwrap_or_else(|| Regex::new("^$").expect("literal regex"))
    })
}

/// Whether an absolute path is on the skip list.
pub fn path_skipped(abs_path: &str) -> bool {
    skipped().is_match(abs_path)
}

/// Bytes of a file's head looked at to tell text from the rest.
pub const SNIFF_BYTES: usize = 1024;

/// Whether a file whose first bytes are `head` is not text worth
/// searching: executables, archives, compressed data, images, databases
/// (by magic number), or anything with a NUL byte at its start.
pub fn content_skipped(head: &[u8]) -> bool {
    const MAGIC: &[&[u8]] = &[
        b"\x7fELF",
        b"\xfe\xed\xfa\xce",
        b"\xfe\xed\xfa\xcf",
        b"\xce\xfa\xed\xfe",
        b"\xcf\xfa\xed\xfe",
        b"\xca\xfe\xba\xbe", // Mach-O fat binary, Java class
        b"MZ",               // PE (and DOS) executables
        b"\x1f\x8b",         // gzip
        b"\x28\xb5\x2f\xfd", // zstd
        b"BZh",
        b"\xfd7zXZ\x00",
        b"PK\x03\x04", // zip, jar, wheel
        b"PK\x05\x06",
        b"7z\xbc\xaf\x27\x1c",
        b"Rar!",
        b"\x89PNG",
        b"\xff\xd8\xff",
        b"GIF8",
        b"%PDF",
        b"SQLite format 3",
        b"\x00asm",
        b"!<arch>",          // ar, .deb
        b"\xed\xab\xee\xdb", // rpm
    ];
    if MAGIC.iter().any(|m| head.starts_with(m)) {
        return true;
    }
    if head.len() > 262 && &head[257..262] == b"ustar" {
        return true;
    }
    head[..head.len().min(SNIFF_BYTES)].contains(&0)
}
