# shellcheck shell=bash
# wild-npm-global — issue 10, class 6 (npm beyond an application's
# node_modules). What the official node images and `npm install -g` leave:
#   - /usr/local/lib/node_modules/npm itself, whose ~200 dependencies are
#     bundled (bundleDependencies: shipped inside npm's tarball, in
#     node_modules/npm/node_modules, never resolved by the installer)
#   - global tools with nested dependencies (rimraf 3 → glob 7 → …)
# Ground truth: `npm ls -g --all --json --prefix` (bundled ones included).
build_wild_npm_global() {
  local r=$W/wild-npm.rootfs base=$W/wild-npm.base
  rm -rf "$r" "$base"
  debian_os_release "$base"
  mkdir -p "$r/usr/local"
  npm install -g --silent --no-audit --no-fund --prefix "$r/usr/local" \
    npm@10.2.4 rimraf@3.0.2 typescript@5.3.3 >/dev/null
  # the bin/ links point into lib/node_modules: kept, as npm made them
  image wild-npm-global "$base" "$r"
  $PY "$WILD_LIB/expected.py" npm-ls "$r/usr/local" > "$W/wild-npm-global.expected.json"
  expected wild-npm-global
}
