# shellcheck shell=bash
# wild-go-stamped — issue 10, class 4 (Go main modules stamped at build time).
# Three binaries as release pipelines build them (Debian's go 1.19, whose main
# module version is always "(devel)"):
#   greeter  -ldflags "-s -w -X main.version=v1.2.3", a vendored dependency
#            (github.com/google/uuid from Debian's golang-github-google-uuid-dev)
#   stamped  built inside a git checkout: vcs.revision / vcs.time / vcs.modified
#   cli      -trimpath -ldflags "-X example.com/cli/internal/build.Version=v0.9.1"
#            (as many release builds do: with -trimpath the go command does
#            not record -ldflags at all, go.dev/issue/52372, so only the
#            version string in the binary's data is left)
# Ground truth: `go version -m` for the dependencies and the stdlib; the main
# modules' versions by the rule syft documents and applies (an -X flag whose
# variable is named version/Version/... wins; else a pseudo-version
# v0.0.0-<vcs.time as yyyymmddhhmmss>-<first 12 hex of vcs.revision>).
build_wild_go_stamped() {
  local r=$W/wild-go.rootfs src=$W/wild-go.src base=$W/wild-go.base
  rm -rf "$r" "$src" "$base"
  debian_os_release "$base"
  mkdir -p "$r/usr/local/bin" "$src"
  apt_update_once
  (cd "$CACHE/dl" && [[ -n $(ls golang-github-google-uuid-dev_*.deb 2>/dev/null) ]] || apt-get download -qq golang-github-google-uuid-dev)
  local uuid_deb
  uuid_deb=$(ls "$CACHE"/dl/golang-github-google-uuid-dev_*.deb | head -1)
  dpkg-deb -x "$uuid_deb" "$src/uuid-deb"
  export GOFLAGS=-mod=vendor GOPROXY=off GOCACHE=$CACHE/gocache GOPATH=$CACHE/gopath CGO_ENABLED=0 GOTOOLCHAIN=local
  # greeter: ldflags-stamped, one vendored dependency
  mkdir -p "$src/greeter/vendor/github.com/google"
  cp -r "$src/uuid-deb/usr/share/gocode/src/github.com/google/uuid" "$src/greeter/vendor/github.com/google/uuid"
  cat > "$src/greeter/go.mod" <<'GO'
module example.com/greeter

go 1.19

require github.com/google/uuid v1.3.0
GO
  printf '# github.com/google/uuid v1.3.0\n## explicit\ngithub.com/google/uuid\n' > "$src/greeter/vendor/modules.txt"
  cat > "$src/greeter/main.go" <<'GO'
package main

import (
	"fmt"

	"github.com/google/uuid"
)

var version = "dev"

func main() { fmt.Println("greeter", version, uuid.NewString()) }
GO
  (cd "$src/greeter" && go build -buildvcs=false -ldflags "-s -w -X main.version=v1.2.3" -o "$r/usr/local/bin/greeter" .)
  # stamped: a git checkout, no ldflags
  mkdir -p "$src/stamped"
  printf 'module example.com/stamped\n\ngo 1.19\n' > "$src/stamped/go.mod"
  printf 'package main\n\nfunc main() { println("stamped") }\n' > "$src/stamped/main.go"
  (cd "$src/stamped" && git init -q && git add . &&
    GIT_AUTHOR_NAME=wild GIT_AUTHOR_EMAIL=wild@example.com GIT_COMMITTER_NAME=wild GIT_COMMITTER_EMAIL=wild@example.com \
    GIT_AUTHOR_DATE=2024-05-06T07:08:09Z GIT_COMMITTER_DATE=2024-05-06T07:08:09Z git commit -qm v0.4.0 &&
    GOFLAGS=-mod=mod go build -ldflags "-s -w" -o "$r/usr/local/bin/stamped" .)
  # cli: the version variable lives in an internal package
  mkdir -p "$src/cli/internal/build"
  printf 'module example.com/cli\n\ngo 1.19\n' > "$src/cli/go.mod"
  printf 'package build\n\nvar Version = "unknown"\n' > "$src/cli/internal/build/build.go"
  printf 'package main\n\nimport "example.com/cli/internal/build"\n\nfunc main() { println(build.Version) }\n' > "$src/cli/main.go"
  (cd "$src/cli" && GOFLAGS=-mod=mod go build -trimpath -buildvcs=false \
    -ldflags "-s -w -X example.com/cli/internal/build.Version=v0.9.1" -o "$r/usr/local/bin/cli" .)
  image wild-go-stamped "$base" "$r"
  local rev time
  rev=$(cd "$src/stamped" && git rev-parse HEAD)
  time=$(go version -m "$r/usr/local/bin/stamped" | awk -F'\t' '$3 ~ /^vcs.time=/ {sub("vcs.time=","",$3); print $3}')
  $PY "$WILD_LIB/expected.py" go "$r/usr/local/bin/greeter" "$r/usr/local/bin/stamped" "$r/usr/local/bin/cli" > "$W/wild-go.deps.json"
  $PY - "$W/wild-go.deps.json" "$rev" "$time" > "$W/wild-go-stamped.expected.json" <<'PY'
import json, sys
deps = json.load(open(sys.argv[1]))
rev, t = sys.argv[2], sys.argv[3]
stamp = t.replace("-", "").replace(":", "").replace("T", "").replace("Z", "")
deps += [
    {"type": "golang", "name": "example.com/greeter", "version": "v1.2.3"},
    {"type": "golang", "name": "example.com/stamped", "version": f"v0.0.0-{stamp}-{rev[:12]}"},
    # -trimpath: the go command recorded no -ldflags, so nothing in the
    # build info says v0.9.1; only a guess from the binary's strings could
    # (syft 1.18 guessed by default; current syft has turned that guess off
    # for its false positives). A scanner may or may not report it.
    {"type": "golang", "name": "example.com/cli", "version": "v0.9.1", "optional": True},
]
json.dump(deps, sys.stdout, indent=1)
PY
  expected wild-go-stamped
}
