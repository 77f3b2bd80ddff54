# shellcheck shell=bash
# wild-apk-no-os-release — issue 10, class 7 (no os-release). An image that
# carries an apk database but no /etc/os-release or /etc/alpine-release, as
# `apk add --root DIR --initdb` into a scratch stage leaves it (only the
# packages' own files, and alpine-baselayout-data not among them). Its
# packages must be reported as Alpine's (from the database), never as Debian's.
# The database is Alpine 3.16's real lib/apk/db/installed (shared fixture).
# Ground truth: the shared corpus's lib/expected.py (P:/V: records).
build_wild_apk_no_os_release() {
  local r=$W/wild-apk.rootfs
  rm -rf "$r"
  mkdir -p "$r/lib/apk/db"
  cp "$SHARED/corpus/fixtures/alpine-3.16/lib/apk/db/installed" "$r/lib/apk/db/installed"
  image wild-apk-no-os-release "$r"
  $PY "$CORPUS_LIB/expected.py" "$OUT/wild-apk-no-os-release" "$W/wild-apk-no-os-release.expected.json" >/dev/null
  expected wild-apk-no-os-release
}
