#!/usr/bin/env bash
# wild/build.sh OUTDIR — build the "wild" corpus: images laid out the way
# other builders lay them out (uv's hard-linked cache, Go's -ldflags -X and
# VCS stamping, setuptools eggs, pip --target, npm -g with bundled
# dependencies, Debian-packaged jars repackaged as Spring Boot / WAR / shaded
# jars, Microsoft's .NET shared framework, package databases with no
# os-release), none of them made by the shared corpus script.
#
# For every image NAME it writes OUTDIR/NAME/ (OCI layout) and OUTDIR/NAME.tar
# (docker save), and OUTDIR/expected/NAME.json: the ground truth taken from
# the real tools (pip, uv, go version -m, npm ls, dpkg-deb) while building,
# by hand where no tool exists (the reason is in README.md). The lists are
# compared with the stored ones in expected/ (a difference means a registry
# moved on: the build says so and uses its own).
#
# Needs: Debian 12, root (files owned by root in the layers), the shared
# corpus's lib/imgtool.py (SCANGATE_SHARED_DIR or ../shared), python3 + pip,
# npm, go, javac/jar, and the PyPI, npm and Debian registries. Caches in
# OUTDIR/.cache; a second run with unchanged recipes takes seconds.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SHARED=${SCANGATE_SHARED_DIR:-$HERE/../../../shared}
CORPUS_LIB=$(cd "$SHARED/corpus/lib" && pwd)
# shellcheck source=/dev/null
. "$CORPUS_LIB/common.sh"
corpus_init "$@"
RH=$(cd "$HERE" && recipe_hash build.sh lib recipes)
WILD_LIB=$HERE/lib
IMAGES=(wild-uv-hardlinks wild-go-stamped wild-python-odd wild-npm-global wild-java-layouts wild-dotnet-runtime wild-apk-no-os-release wild-rpm-no-os-release)
[[ -n ${WILD_ONLY:-} ]] && read -r -a IMAGES <<<"$WILD_ONLY"
want() { [[ " ${IMAGES[*]} " == *" $1 "* ]]; }
mkdir -p "$OUT/expected" "$CACHE/dl"

for t in go npm javac jar dpkg-deb git; do
  command -v "$t" >/dev/null || die "$t not found (apt-get install golang-go npm openjdk-17-jdk-headless git)"
done

# Debian 12's own os-release, as /usr/lib/os-release with the /etc symlink.
debian_os_release() {
  local r=$1
  mkdir -p "$r/usr/lib" "$r/etc"
  cp "$WILD_LIB/debian12-os-release" "$r/usr/lib/os-release"
  ln -sfn ../usr/lib/os-release "$r/etc/os-release"
}

# image NAME LAYER_DIR... : one layer per directory, then OCI + docker-archive
image() {
  local name=$1; shift
  local i=0 layers=()
  for d in "$@"; do
    i=$((i + 1))
    $IMG dirlayer "$d" "$LAY/$name-$i.tar" >/dev/null
    layers+=("{\"tar\":\"$name-$i.tar\",\"created_by\":\"wild: $(basename "$d")\"}")
  done
  local joined
  joined=$(IFS=,; echo "${layers[*]}")
  cat > "$LAY/$name.json" <<EOF
{"name":"$name","out":"$OUT","layers":[$joined],
 "config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}}
EOF
  $IMG image "$LAY/$name.json"
}

# expected NAME : sorts and stores W/NAME.expected.json as OUT/expected/NAME.json
expected() {
  local name=$1
  $PY "$WILD_LIB/expected.py" sort "$W/$name.expected.json" "$OUT/expected/$name.json"
  if ! $PY "$CORPUS_LIB/jsondiff.py" "$HERE/expected/$name.json" "$OUT/expected/$name.json" >&2; then
    log "WARNING: $name: the ground truth differs from expected/$name.json (see above): a registry moved on; the regenerated list is used"
  fi
}

pip_venv() {
  [[ -x $CACHE/venv/bin/pip ]] || $PY -m venv "$CACHE/venv"
  "$CACHE/venv/bin/pip" install -q --disable-pip-version-check 'uv==0.13.9' 'setuptools==69.5.1' wheel
}

for name in "${IMAGES[@]}"; do
  # shellcheck source=/dev/null
  . "$HERE/recipes/$name.sh"
  need_outputs "$name" "$OUT/$name/index.json" "$OUT/$name.tar" "$OUT/expected/$name.json"
  step "$name" "build_${name//-/_}"
done
log "wild corpus in $OUT"
