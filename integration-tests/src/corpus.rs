//! The shared SBOM test corpus (`../shared/corpus`): real multi-layer images
//! built by `build.sh` (debootstrap, pip, npm …) and pushed with skopeo.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::registry::Registry;

/// The workspace root (the directory holding `integration-tests/`).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration-tests has a parent")
        .to_path_buf()
}

/// `SCANGATE_SHARED_DIR`, else `../shared` beside the repository.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("SCANGATE_SHARED_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => workspace_dir().join("..").join("shared"),
    }
}

/// Real Inspector SBOMs and ScanSbom answers (`shared/fixtures/inspector`).
pub fn inspector_fixtures_dir() -> PathBuf {
    shared_dir().join("fixtures").join("inspector")
}

/// `SCANGATE_CORPUS_DIR`, else `$XDG_CACHE_HOME/scangate/corpus` (or
/// `~/.cache/…`), where `.ci/run` builds it. Never inside the repository:
/// Go stamps a binary with the VCS state of the checkout around its build
/// directory, and the corpus's ground truth lists hello-go with no version.
pub fn corpus_dir() -> PathBuf {
    match std::env::var_os("SCANGATE_CORPUS_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => default_corpus_dir(),
    }
}

fn default_corpus_dir() -> PathBuf {
    let cache = match std::env::var_os("XDG_CACHE_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache")
        }
    };
    cache.join("scangate").join("corpus")
}

/// The ground truth `build.sh` recomputed for `name` from the built image,
/// else the corpus's own (build.sh checks they agree; a build of a subset
/// of the images rewrites only that subset's recomputed lists).
pub fn expected_path(name: &str) -> PathBuf {
    let built = corpus_dir().join("expected").join(format!("{name}.json"));
    if built.is_file() {
        built
    } else {
        shared_dir()
            .join("corpus")
            .join("expected")
            .join(format!("{name}.json"))
    }
}

fn built(out: &Path, name: &str) -> bool {
    out.join(name).join("index.json").is_file()
}

/// Builds the named corpus images unless they are there already, and returns
/// the corpus directory (`DIR/NAME/` is an OCI layout, `DIR/NAME.tar` a
/// `docker save` archive). Test binaries run in parallel, so the build runs
/// under an exclusive lock on `DIR/.build.lock`; whoever waited finds the
/// images built. Needs root and the Debian mirror (see the corpus README).
pub fn ensure_corpus(names: &[&str]) -> Result<PathBuf> {
    let out = corpus_dir();
    if names.iter().all(|n| built(&out, n)) {
        return Ok(out);
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(out.join(".build.lock"))?;
    lock.lock().context("locking the corpus directory")?;
    let missing: Vec<&str> = names.iter().copied().filter(|n| !built(&out, n)).collect();
    if missing.is_empty() {
        return Ok(out);
    }
    let script = shared_dir().join("corpus").join("build.sh");
    if !script.is_file() {
        bail!(
            "corpus script {} not found: set SCANGATE_SHARED_DIR or check out shared/ beside the repository",
            script.display()
        );
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "building corpus images {missing:?} needs root (debootstrap, chroot): run .ci/run, or `sudo CORPUS_ONLY=\"{}\" {} {}`",
            missing.join(" "),
            script.display(),
            out.display()
        );
    }
    let t0 = Instant::now();
    eprintln!(
        "[corpus] building {missing:?} into {} (a few minutes the first time)",
        out.display()
    );
    // Only the missing ones: build.sh rebuilds nothing that is cached, but
    // its expected-list check still costs seconds per image.
    let status = Command::new("bash")
        .arg(&script)
        .arg(&out)
        .env("CORPUS_ONLY", missing.join(" "))
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    if !status.success() {
        bail!("{} failed ({status})", script.display());
    }
    for n in &missing {
        if !built(&out, n) {
            bail!(
                "{} succeeded but {n}/index.json is missing",
                script.display()
            );
        }
    }
    eprintln!("[corpus] built {missing:?} in {:.0?}", t0.elapsed());
    Ok(out)
}

/// Copies an OCI image layout directory (all platforms) to `registry` as
/// `repo:tag` with skopeo, keeping digests. Returns the manifest digest
/// skopeo reports (the index digest for a multi-platform layout).
pub fn push_oci_layout(registry: &Registry, dir: &Path, repo_tag: &str) -> Result<String> {
    // The corpus layouts have exactly one entry in index.json (ref name
    // "latest"), so the bare `oci:DIR` form selects it without naming it.
    skopeo_copy(registry, &format!("oci:{}", dir.display()), repo_tag)
}

/// Copies a `docker save` archive to `registry` as `repo:tag`.
pub fn push_docker_archive(registry: &Registry, tar: &Path, repo_tag: &str) -> Result<String> {
    skopeo_copy(
        registry,
        &format!("docker-archive:{}", tar.display()),
        repo_tag,
    )
}

/// `skopeo copy SOURCE docker://ADDR/repo:tag` over plain HTTP.
pub fn skopeo_copy(registry: &Registry, source: &str, repo_tag: &str) -> Result<String> {
    if which("skopeo").is_none() {
        bail!("skopeo not installed: run .ci/run or apt-get install skopeo");
    }
    let tmp = tempfile::tempdir()?;
    let digestfile = tmp.path().join("digest");
    let mut cmd = Command::new("skopeo");
    cmd.args(["copy", "--quiet", "--all", "--insecure-policy"])
        .arg("--dest-tls-verify=false")
        .arg("--digestfile")
        .arg(&digestfile)
        // without a home config skopeo may look for auth in odd places
        .env("REGISTRY_AUTH_FILE", tmp.path().join("auth.json"));
    if !source.starts_with("docker-archive:") {
        // docker-archive layers are uncompressed and must be compressed on push
        cmd.arg("--preserve-digests");
    }
    match &registry.credentials {
        Some(c) => cmd.arg("--dest-creds").arg(c.colon_joined()),
        None => cmd.arg("--dest-no-creds"),
    };
    cmd.arg(source)
        .arg(format!("docker://{}/{repo_tag}", registry.addr));
    let out = cmd.output().context("running skopeo")?;
    if !out.status.success() {
        bail!(
            "skopeo copy {source} → {}/{repo_tag} failed ({}):\n{}",
            registry.addr,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let digest = std::fs::read_to_string(&digestfile).context("skopeo wrote no digest")?;
    Ok(digest.trim().to_owned())
}

fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(prog))
            .find(|p| p.is_file())
    })
}

/// The scangate binary under test. `cargo test` does not build another
/// package's binaries, so it is built here when it is missing or older than
/// the sources (`.ci/run` builds it beforehand, so CI never waits here).
pub fn scangate_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let ws = workspace_dir();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| ws.join("target"));
        let bin = target.join("debug/scangate");
        let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
        let newest_source = newest_mtime(&ws.join("src"))
            .max(newest_mtime(&ws.join("integration-tests/src")))
            .max(newest_mtime(&ws.join("Cargo.lock")));
        if built.is_none_or(|b| Some(b) < newest_source) {
            let status = Command::new(env!("CARGO"))
                .args(["build", "-q", "-p", "scangate", "--bin", "scangate"])
                .current_dir(&ws)
                .status()
                .expect("running cargo build");
            assert!(status.success(), "building scangate failed");
        }
        bin
    })
}

fn newest_mtime(p: &Path) -> Option<std::time::SystemTime> {
    let m = std::fs::metadata(p).ok()?;
    let mut newest = m.modified().ok();
    if m.is_dir() {
        for e in std::fs::read_dir(p).ok()?.flatten() {
            newest = newest.max(newest_mtime(&e.path()));
        }
    }
    newest
}

/// What the shared `score.py` says of one `scangate sbom` run.
pub struct Score {
    pub recall: f64,
    pub precision: f64,
    /// score.py's table (with `--show`, the missed and extra packages too).
    pub text: String,
    /// The SBOM scored.
    pub sbom: serde_json::Value,
}

/// Runs `scangate sbom SOURCE` and scores its SBOM against `expected` with
/// the shared corpus's `score.py` (`--show` lists what was missed or extra).
pub fn score(source: &str, expected: &Path, show: bool) -> Score {
    let tmp = tempfile::tempdir().expect("temp dir");
    let sbom_path = tmp.path().join("sbom.cdx.json");
    let run = Command::new(scangate_bin())
        .args(["sbom", source, "--output"])
        .arg(&sbom_path)
        .output()
        .expect("running scangate sbom");
    assert!(
        run.status.success(),
        "scangate sbom {source}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut cmd = Command::new("python3");
    cmd.arg(shared_dir().join("corpus/score.py"))
        .arg(expected)
        .arg(&sbom_path);
    if show {
        cmd.arg("--show");
    }
    let scored = cmd.output().expect("running score.py");
    let text = String::from_utf8_lossy(&scored.stdout).into_owned();
    let last = text.lines().last().unwrap_or_default();
    let num = |key: &str| -> f64 {
        last.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "no {key} in score.py output:\n{text}\n{}",
                    String::from_utf8_lossy(&scored.stderr)
                )
            })
    };
    let sbom = std::fs::read(&sbom_path).expect("reading the SBOM");
    Score {
        recall: num("recall="),
        precision: num("precision="),
        sbom: serde_json::from_slice(&sbom).expect("the SBOM is JSON"),
        text,
    }
}
