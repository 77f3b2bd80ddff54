# shellcheck shell=bash
# wild-uv-hardlinks — issue 10, class 1 (hard links whose target was not kept).
# `uv pip install --system` keeps uv's cache (/root/.cache/uv) and hard-links
# every installed file to it (uv's default link mode). Layer tars list entries
# in lexical order, as BuildKit does, so /root/.cache/… comes before
# /usr/local/…: each dist-info METADATA in site-packages is a tar hard link to
# a cache file that no cataloger asks for.
# Ground truth: importlib.metadata over the installed dir (what pip lists).
build_wild_uv_hardlinks() {
  pip_venv
  local r=$W/wild-uv.rootfs base=$W/wild-uv.base
  rm -rf "$r" "$base"
  debian_os_release "$base"
  local site=$r/usr/local/lib/python3.11/dist-packages
  mkdir -p "$site" "$r/root/.cache"
  "$CACHE/venv/bin/uv" pip install -q --python "$CACHE/venv/bin/python" --no-deps \
    --target "$site" --cache-dir "$r/root/.cache/uv" --link-mode hardlink \
    six==1.16.0 idna==3.4 attrs==23.1.0 packaging==23.2 certifi==2023.7.22 \
    urllib3==1.26.18 charset-normalizer==3.3.2 requests==2.31.0
  # uv keeps no wheel files, only unpacked trees; the links must be real
  local links
  links=$(find "$site" -name METADATA -links +1 | wc -l)
  ((links >= 8)) || die "wild-uv-hardlinks: expected hard-linked METADATA files, found $links"
  image wild-uv-hardlinks "$base" "$r"
  $PY "$WILD_LIB/expected.py" pip "$site" > "$W/wild-uv-hardlinks.expected.json"
  expected wild-uv-hardlinks
}
