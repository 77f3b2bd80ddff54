# shellcheck shell=bash
# wild-rpm-no-os-release — issue 10, class 7 (no os-release). A RHEL 8 rpm
# database (Berkeley DB, shared fixture rpm-bdb-rhel8) with no os-release or
# redhat-release beside it, as a `COPY --from=ubi8 /var/lib/rpm` stage or an
# image that deleted /etc leaves it. The packages must not be called Debian's;
# the release tags (`.el8`) say which distribution built them.
# Ground truth: the shared corpus's lib/expected.py (Debian's rpm -qa, bdb_ro).
build_wild_rpm_no_os_release() {
  local r=$W/wild-rpm.rootfs
  rm -rf "$r"
  mkdir -p "$r/var/lib/rpm"
  cp "$SHARED/corpus/fixtures/rpm-bdb-rhel8/var/lib/rpm/Packages" "$r/var/lib/rpm/Packages"
  image wild-rpm-no-os-release "$r"
  $PY "$CORPUS_LIB/expected.py" "$OUT/wild-rpm-no-os-release" "$W/wild-rpm-no-os-release.expected.json" >/dev/null
  expected wild-rpm-no-os-release
}
