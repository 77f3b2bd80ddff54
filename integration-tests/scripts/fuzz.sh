#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets/*.rs) for a bounded time,
# one after the other, on the nightly toolchain, with a memory limit and a
# per-input time limit, so that a resource blow-up counts as a crash like a
# panic does. What libFuzzer reports (crash-*, oom-*, timeout-*) is copied
# to fuzz/regressions/<target>/, which `cargo test -p scangate --lib fuzzing`
# replays on stable.
#
#   integration-tests/scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 60; no TARGET means all of them. The
# working corpus (seeds from fuzz/corpus/<target>/ plus what libFuzzer
# keeps) lives in $FUZZ_WORK (default target/fuzz-work), not in the
# repository. Environment: FUZZ_RSS_LIMIT_MB (512), FUZZ_TIMEOUT (10 s per
# input), FUZZ_JOBS (1: libFuzzer forks one child at a time and goes on
# after a crash), CARGO_TARGET_DIR (default fuzz/target: the instrumented
# build never mixes with the stable one).
#
# Needs a nightly toolchain (`rustup toolchain install nightly`); installs
# cargo-fuzz from crates.io when it is missing. Never used by CI or by
# `cargo build`/`cargo test`: those stay on stable.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SECS=${1:-60}
shift || true
[[ $SECS =~ ^[0-9]+$ ]] || { echo "fuzz.sh: SECONDS_PER_TARGET must be a number, not $SECS" >&2; exit 2; }

RSS_LIMIT_MB=${FUZZ_RSS_LIMIT_MB:-512}
TIMEOUT=${FUZZ_TIMEOUT:-10}
JOBS=${FUZZ_JOBS:-1}
WORK=${FUZZ_WORK:-$REPO/target/fuzz-work}
CARGO_FUZZ_VERSION=0.13.2
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/fuzz/target}

# Inputs past these are truncated by libFuzzer: large enough for the seeds
# (an rpm database, a saved Inspector answer, a layer with a few files),
# small enough to keep executions fast.
max_len() {
  case $1 in
    layer | image_layer | rpm_sqlite | rpm_bdb | scan_answer) echo 262144 ;;
    jar | rpm_ndb | dpkg_status | apk_installed) echo 131072 ;;
    image_reference) echo 4096 ;;
    *) echo 65536 ;;
  esac
}

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz.sh: no nightly toolchain (rustup toolchain install nightly)" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked "cargo-fuzz@$CARGO_FUZZ_VERSION"
fi

cd "$REPO/fuzz"
if (($# == 0)); then
  set -- $(ls fuzz_targets | sed -n 's/\.rs$//p')
fi

# One build of every target (cargo-fuzz's default: release with debug
# assertions and overflow checks). No ASan: the code is safe Rust plus the
# bundled SQLite, and ASan's shadow memory would blur -rss_limit_mb.
cargo +nightly fuzz build --sanitizer none 2>&1 | tail -3

declare -A FOUND=()
for t in "$@"; do
  work=$WORK/$t
  artifacts=$WORK/artifacts/$t
  mkdir -p "$work" "$artifacts"
  printf '\n==> fuzz %s: %ss, rss %s MB, timeout %ss, max_len %s\n' \
    "$t" "$SECS" "$RSS_LIMIT_MB" "$TIMEOUT" "$(max_len "$t")"
  # The first directory is written to; fuzz/corpus/<t> only seeds it.
  # Fork mode goes on after a crash, an OOM or a timeout, so one run finds
  # more than the first.
  set +e
  cargo +nightly fuzz run --sanitizer none "$t" "$work" "corpus/$t" -- \
    -max_total_time="$SECS" -rss_limit_mb="$RSS_LIMIT_MB" -malloc_limit_mb="$RSS_LIMIT_MB" \
    -timeout="$TIMEOUT" -max_len="$(max_len "$t")" \
    -fork="$JOBS" -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 >"$WORK/$t.log" 2>&1
  rc=$?
  set -e
  grep -E '^#[0-9]+.*(DONE|pulse)|^INFO: fuzzed for|stat::number_of_executed_units|crash|oom|timeout' "$WORK/$t.log" |
    tail -4 || true
  n=0
  for a in "$artifacts"/crash-* "$artifacts"/oom-* "$artifacts"/timeout-*; do
    [[ -f $a ]] || continue
    mkdir -p "regressions/$t"
    if [[ ! -f regressions/$t/$(basename "$a") ]]; then
      cp "$a" "regressions/$t/"
      n=$((n + 1))
    fi
  done
  FOUND[$t]=$n
  printf '    rc=%s, new findings copied to fuzz/regressions/%s/: %s\n' "$rc" "$t" "$n"
done

printf '\n==> summary (new files in fuzz/regressions)\n'
total=0
for t in "$@"; do
  printf '  %-20s %s\n' "$t" "${FOUND[$t]}"
  total=$((total + FOUND[$t]))
done
printf 'logs: %s/<target>.log\n' "$WORK"
if ((total > 0)); then
  echo "fuzz.sh: $total new finding(s): replay with cargo test -p scangate --lib fuzzing; list unfixed ones in fuzz/regressions/open.txt"
  exit 1
fi
