//! One byte budget for the whole process, shared by every job.
//!
//! Per-job limits alone do not bound a worker: two jobs, each within its
//! own limits, can together exceed the task's memory and get the process
//! OOM-killed, losing both results. Every byte the image readers keep (file
//! contents, names, link targets) is therefore also reserved here, against
//! a budget derived from the container's memory limit (cgroup v2
//! `memory.max`, cgroup v1 `memory.limit_in_bytes`, else physical memory)
//! and overridable with `SCANGATE_MEMORY_BUDGET`. A reservation is RAII:
//! dropping it gives the bytes back, so a failed or cancelled job cannot
//! leak budget.
//!
//! The fraction left outside the budget is for what is not counted: the
//! runtime, TLS buffers, the SBOM and reports built from the kept files.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// The environment variable that overrides the budget: bytes (`805306368`),
/// a size (`768MiB`, `1GiB`, `500MB`) or a share of the detected limit
/// (`60%`).
pub const BUDGET_ENV: &str = "SCANGATE_MEMORY_BUDGET";

/// Share of the memory limit the budget takes when not overridden.
pub const DEFAULT_PERCENT: u64 = 50;

/// Used when no limit can be read at all (not Linux, no /proc).
const FALLBACK_LIMIT: u64 = 1 << 30;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    #[error(
        "the worker's memory budget is exhausted: {requested} more bytes wanted, {used} of {limit} in use by all jobs (SCANGATE_MEMORY_BUDGET)"
    )]
    Exhausted {
        requested: u64,
        used: u64,
        limit: u64,
    },
    #[error(
        "invalid {BUDGET_ENV} {value:?}: {reason} (bytes, a size such as 768MiB, or a percentage such as 60%)"
    )]
    BadSetting { value: String, reason: String },
}

/// A byte budget; share it through an `Arc`.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    used: AtomicU64,
}

impl MemoryBudget {
    pub fn new(limit: u64) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            limit,
            used: AtomicU64::new(0),
        })
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes reserved now, by all holders together.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// Reserves `bytes`, or fails without reserving anything.
    pub fn try_reserve(self: &Arc<Self>, bytes: u64) -> Result<Reservation, MemoryError> {
        self.take(bytes)?;
        Ok(Reservation {
            budget: self.clone(),
            bytes,
        })
    }

    /// An empty reservation to [`Reservation::grow`] as data arrives.
    pub fn reservation(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: self.clone(),
            bytes: 0,
        }
    }

    fn take(&self, bytes: u64) -> Result<(), MemoryError> {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            let next = used.checked_add(bytes).filter(|n| *n <= self.limit).ok_or(
                MemoryError::Exhausted {
                    requested: bytes,
                    used,
                    limit: self.limit,
                },
            )?;
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(now) => used = now,
            }
        }
    }

    fn give_back(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Bytes held against a [`MemoryBudget`] until dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<MemoryBudget>,
    bytes: u64,
}

impl Reservation {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Reserves `more` bytes on top; on failure nothing changes.
    pub fn grow(&mut self, more: u64) -> Result<(), MemoryError> {
        self.budget.take(more)?;
        self.bytes += more;
        Ok(())
    }

    /// Gives back up to `less` bytes (data dropped or shrunk) early.
    pub fn shrink(&mut self, less: u64) {
        let less = less.min(self.bytes);
        self.budget.give_back(less);
        self.bytes -= less;
    }

    /// Moves `other`'s bytes into this reservation (same budget).
    pub fn absorb(&mut self, mut other: Reservation) {
        debug_assert!(Arc::ptr_eq(&self.budget, &other.budget));
        self.bytes += std::mem::take(&mut other.bytes);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.budget.give_back(self.bytes);
        }
    }
}

/// The process-wide budget: from `SCANGATE_MEMORY_BUDGET`, else
/// [`DEFAULT_PERCENT`] of the detected memory limit. Read once.
pub fn global() -> &'static Arc<MemoryBudget> {
    static GLOBAL: OnceLock<Arc<MemoryBudget>> = OnceLock::new();
    GLOBAL.get_or_init(|| {
        let setting = std::env::var(BUDGET_ENV).ok();
        let limit = match budget_bytes(setting.as_deref(), detect_limit()) {
            Ok(b) => b,
            Err(e) => {
                // Validated at start-up by the worker (`check_setting`);
                // reaching here means a caller skipped that: be safe.
                tracing::error!(error = %e, "using the default memory budget");
                budget_bytes(None, detect_limit()).unwrap_or(FALLBACK_LIMIT / 2)
            }
        };
        MemoryBudget::new(limit)
    })
}

/// Validates `SCANGATE_MEMORY_BUDGET` (for a clear start-up error).
pub fn check_setting() -> Result<u64, MemoryError> {
    budget_bytes(std::env::var(BUDGET_ENV).ok().as_deref(), detect_limit())
}

/// The budget for `setting` (the override, if any) under `limit` (the
/// detected memory limit, if any).
pub fn budget_bytes(setting: Option<&str>, limit: Option<u64>) -> Result<u64, MemoryError> {
    let limit = limit.unwrap_or(FALLBACK_LIMIT);
    let Some(value) = setting.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(limit / 100 * DEFAULT_PERCENT);
    };
    let bad = |reason: &str| MemoryError::BadSetting {
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    if let Some(p) = value.strip_suffix('%') {
        let p: u64 = p
            .trim()
            .parse()
            .map_err(|_| bad("not a whole percentage"))?;
        if !(1..=100).contains(&p) {
            return Err(bad("a percentage must be 1 to 100"));
        }
        return Ok(limit / 100 * p);
    }
    let bytes = parse_size(value).ok_or_else(|| bad("not a size"))?;
    if bytes == 0 {
        return Err(bad("must be more than 0"));
    }
    Ok(bytes)
}

/// `123`, `64KiB`, `768MiB`, `1GiB`, `500MB`, `2GB`.
fn parse_size(s: &str) -> Option<u64> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// The memory this process may use: the cgroup limit if one is set, else
/// physical memory.
pub fn detect_limit() -> Option<u64> {
    cgroup_limit(Path::new("/")).or_else(physical_memory)
}

/// The cgroup memory limit seen under `root` (`/` in production; a fake
/// tree in tests): cgroup v2 first, then v1.
fn cgroup_limit(root: &Path) -> Option<u64> {
    let v2 = std::fs::read_to_string(root.join("sys/fs/cgroup/memory.max")).ok();
    let v1 =
        || std::fs::read_to_string(root.join("sys/fs/cgroup/memory/memory.limit_in_bytes")).ok();
    v2.and_then(|s| parse_limit(&s))
        .or_else(|| v1().and_then(|s| parse_limit(&s)))
}

/// A cgroup limit file's value; `max` (v2) and v1's "unlimited" (a value
/// near `i64::MAX`, rounded to the page size) mean no limit.
fn parse_limit(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return None;
    }
    t.parse::<u64>()
        .ok()
        .filter(|v| *v > 0 && *v < (1u64 << 62))
}

fn physical_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory removed on drop (no tempfile in this crate).
    struct Scratch(std::path::PathBuf);
    impl Scratch {
        fn new() -> Scratch {
            let p = std::env::temp_dir().join(format!(
                "scangate-{}-{}",
                module_path!().replace("::", "-"),
                uuid::Uuid::new_v4()
            ));
            std::fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }
        fn path(&self) -> &std::path::Path {
            &self.0
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn reservations_are_bounded_and_returned_on_drop() {
        let b = MemoryBudget::new(100);
        let r1 = b.try_reserve(60).unwrap();
        assert_eq!(b.used(), 60);
        let e = b.try_reserve(41).unwrap_err();
        assert_eq!(
            e,
            MemoryError::Exhausted {
                requested: 41,
                used: 60,
                limit: 100
            }
        );
        assert_eq!(b.used(), 60, "a refused reservation takes nothing");
        let r2 = b.try_reserve(40).unwrap();
        assert_eq!(b.used(), 100);
        drop(r1);
        assert_eq!(b.used(), 40);
        drop(r2);
        assert_eq!(b.used(), 0);
        assert!(b.try_reserve(u64::MAX).is_err(), "no overflow");
    }

    #[test]
    fn a_reservation_grows_shrinks_and_absorbs() {
        let b = MemoryBudget::new(100);
        let mut r = b.reservation();
        r.grow(30).unwrap();
        r.grow(30).unwrap();
        assert!(r.grow(41).is_err());
        assert_eq!((r.bytes(), b.used()), (60, 60));
        r.shrink(10);
        r.shrink(1000);
        assert_eq!((r.bytes(), b.used()), (0, 0));
        r.grow(20).unwrap();
        let other = b.try_reserve(5).unwrap();
        r.absorb(other);
        assert_eq!((r.bytes(), b.used()), (25, 25));
        drop(r);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn jobs_on_many_threads_never_exceed_the_budget_together() {
        let b = MemoryBudget::new(1000);
        let peak = Arc::new(AtomicU64::new(0));
        std::thread::scope(|s| {
            for _ in 0..8 {
                let (b, peak) = (b.clone(), peak.clone());
                s.spawn(move || {
                    let mut held = Vec::new();
                    for i in 0..2000u64 {
                        if let Ok(r) = b.try_reserve(1 + i % 97) {
                            held.push(r);
                        }
                        peak.fetch_max(b.used(), Ordering::Relaxed);
                        if held.len() > 3 {
                            held.remove(0);
                        }
                    }
                });
            }
        });
        assert!(peak.load(Ordering::Relaxed) <= 1000);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn the_budget_follows_the_setting_or_the_limit() {
        let gib = 1u64 << 30;
        assert_eq!(budget_bytes(None, Some(gib)).unwrap(), gib / 100 * 50);
        assert_eq!(budget_bytes(Some(" "), Some(gib)).unwrap(), gib / 100 * 50);
        assert_eq!(
            budget_bytes(Some("60%"), Some(gib)).unwrap(),
            gib / 100 * 60
        );
        assert_eq!(budget_bytes(Some("768MiB"), Some(gib)).unwrap(), 768 << 20);
        assert_eq!(budget_bytes(Some("500MB"), None).unwrap(), 500_000_000);
        assert_eq!(budget_bytes(Some("4096"), None).unwrap(), 4096);
        assert_eq!(budget_bytes(None, None).unwrap(), FALLBACK_LIMIT / 100 * 50);
        for bad in ["0", "0%", "101%", "lots", "12XB", "99999999999999999999GiB"] {
            assert!(
                matches!(
                    budget_bytes(Some(bad), Some(gib)),
                    Err(MemoryError::BadSetting { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn cgroup_limits_are_read_v2_then_v1() {
        let root = Scratch::new();
        let cg = root.path().join("sys/fs/cgroup");
        std::fs::create_dir_all(cg.join("memory")).unwrap();
        assert_eq!(cgroup_limit(root.path()), None);
        std::fs::write(
            cg.join("memory/memory.limit_in_bytes"),
            "9223372036854771712\n",
        )
        .unwrap();
        assert_eq!(cgroup_limit(root.path()), None, "v1 unlimited");
        std::fs::write(cg.join("memory/memory.limit_in_bytes"), "536870912\n").unwrap();
        assert_eq!(cgroup_limit(root.path()), Some(512 << 20));
        std::fs::write(cg.join("memory.max"), "max\n").unwrap();
        assert_eq!(
            cgroup_limit(root.path()),
            Some(512 << 20),
            "v2 max: v1 decides"
        );
        std::fs::write(cg.join("memory.max"), "1073741824\n").unwrap();
        assert_eq!(cgroup_limit(root.path()), Some(1 << 30));
    }

    #[test]
    fn this_machine_has_a_limit() {
        let l = detect_limit().expect("a cgroup limit or /proc/meminfo");
        assert!(l > 16 << 20, "{l}");
    }
}
