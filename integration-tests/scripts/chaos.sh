#!/usr/bin/env bash
# chaos.sh [JOBS] [FAULT_RATE] — the long chaos run (issue 9): JOBS jobs
# (default 1000) through the real worker binary with FAULT_RATE (default
# 0.21) faults on every dependency (CodePipeline and Inspector emulators,
# docker-registry and moto S3 behind the TCP fault proxy) while workers are
# SIGTERMed and SIGKILLed and restarted. Prints jobs, faults by kind, results,
# swept, duplicates, lost and left-to-timeout; fails if a job got two results,
# none, or was left to CodePipeline's timeout (leases: 1 s heartbeat, 5 s TTL). CI runs the
# same test with 60 jobs (integration-tests/tests/chaos.rs).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
CHAOS_JOBS=${1:-1000} CHAOS_FAULT_RATE=${2:-0.21} \
  cargo test -p integration-tests --test chaos -- --nocapture
