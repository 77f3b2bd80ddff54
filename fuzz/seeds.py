#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/<target>/seed-* from the real fixtures.

Run from anywhere: python3 fuzz/seeds.py [SHARED_DIR] (default ../shared
beside the repository, or $SCANGATE_SHARED_DIR). Each target gets a few
small files (< 1 MiB per target): the catalogers' own fixtures, the
Inspector answers of shared/fixtures/inspector, rpm header blobs and a
shrunken rpmdb.sqlite taken from the rpm fixtures, the Go and
cargo-auditable sections cut out of the fixture executables, and tar layers
with the shapes the layer reader handles (symlinks, hard links, whiteouts,
opaque directories, PAX and GNU long names, gzip and zstd). Files fuzzing
adds to a corpus (named by their sha1) are left alone.
"""
import gzip
import hashlib
import io
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import tarfile
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = (sys.argv[1] if len(sys.argv) > 1
          else os.environ.get("SCANGATE_SHARED_DIR", os.path.join(REPO, "..", "shared")))
CORPUS = os.path.join(REPO, "fuzz", "corpus")
CAT = os.path.join(REPO, "src", "catalog")
MAX_TARGET = 1 << 20


def fixture(rel):
    with open(os.path.join(CAT, rel), "rb") as f:
        return f.read()


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def clean():
    if not os.path.isdir(CORPUS):
        return
    for target in os.listdir(CORPUS):
        d = os.path.join(CORPUS, target)
        for f in os.listdir(d):
            if f.startswith("seed-"):
                os.remove(os.path.join(d, f))


# ---- layers ----------------------------------------------------------------

def tar_layer(entries, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for e in entries:
            kind, name = e[0], e[1]
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            if kind == "file":
                info.size = len(e[2])
                info.mode = e[3] if len(e) > 3 else 0o644
                t.addfile(info, io.BytesIO(e[2]))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                t.addfile(info)
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = e[2]
                t.addfile(info)
            elif kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = e[2]
                t.addfile(info)
    return buf.getvalue()


def layers():
    status = fixture("dpkg/fixtures/status")[:4000]
    status = status[: status.rfind(b"\n\n") + 2]
    os_release = fixture("osrelease/fixtures/debian-12")
    debian = tar_layer([
        ("dir", "etc"),
        ("file", "etc/os-release", os_release),
        ("dir", "var/lib/dpkg"),
        ("file", "var/lib/dpkg/status", status),
        ("file", "var/lib/dpkg/info/python3-six.list", fixture("dpkg/fixtures/owned/python3-six.list")),
        ("file", "usr/lib/python3/dist-packages/six-1.16.0.egg-info",
         fixture("dpkg/fixtures/owned/six-1.16.0.PKG-INFO")),
    ])
    links = tar_layer([
        ("symlink", "lib", "usr/lib"),
        ("dir", "usr/lib/apk/db"),
        ("file", "usr/lib/apk/db/installed", fixture("apk/fixtures/installed")[:3000]),
        ("symlink", "etc/os-release", "../usr/lib/os-release"),
        ("file", "usr/lib/os-release", fixture("osrelease/fixtures/alpine-3.16")),
        ("hardlink", "usr/lib/node_modules/ms/package.json", "usr/lib/os-release"),
        ("file", "usr/lib/node_modules/ms/package.json", fixture("npm/fixtures/ms-package.json")),
        ("hardlink", "app/node_modules/ms/package.json", "usr/lib/node_modules/ms/package.json"),
        ("symlink", "loop/a", "b"),
        ("symlink", "loop/b", "a"),
    ])
    whiteouts = tar_layer([
        ("dir", "var/lib/dpkg"),
        ("file", "var/lib/dpkg/.wh..wh..opq", b""),
        ("file", "etc/.wh.os-release", b""),
        ("file", "usr/local/lib/python3.11/site-packages/certifi-2024.2.2.dist-info/METADATA",
         fixture("python/fixtures/certifi-METADATA")),
        ("file", "opt/app/lib/guice-jndi.jar", fixture("java/fixtures/guice-jndi.jar")),
    ])
    long_name = "usr/lib/node_modules/" + "n" * 120 + "/package.json"
    long_names = tar_layer([
        ("file", long_name, fixture("npm/fixtures/isaacs-string-locale-compare-package.json")),
        ("symlink", "usr/share/" + "l" * 150, "/" + "t" * 200),
    ], fmt=tarfile.GNU_FORMAT)
    pax = tar_layer([
        ("file", "app/" + "p" * 130 + "/App.deps.json", fixture("dotnet/fixtures/TestLibrary.deps.json")),
    ])
    out = {
        "debian.tar": debian,
        "links.tar": links,
        "whiteouts.tar": whiteouts,
        "gnu-long-names.tar": long_names,
        "pax.tar": pax,
        "debian.tar.gz": gzip.compress(debian, mtime=0),
    }
    zst = subprocess.run(["zstd", "-q", "-c", "-19"], input=links, capture_output=True)
    if zst.returncode == 0:
        out["links.tar.zst"] = zst.stdout
    return out


# ---- rpm -------------------------------------------------------------------

def rpm_sqlite_and_headers():
    """A copy of the Mariner rpmdb.sqlite with 3 packages, and header blobs."""
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "rpmdb.sqlite")
        shutil.copy(os.path.join(CAT, "rpm/fixtures/cbl-mariner-2.0-rpmdb.sqlite"), db)
        os.chmod(db, 0o644)
        con = sqlite3.connect(db)
        rows = con.execute("SELECT hnum, blob FROM Packages ORDER BY length(blob)").fetchall()
        keep = [r[0] for r in rows[:3]]
        headers = [r[1] for r in rows[:2]] + [rows[len(rows) // 2][1]]
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT IN ('Packages', 'sqlite_sequence')")]
        for t in tables:
            con.execute(f'DROP TABLE "{t}"')
        con.execute(f"DELETE FROM Packages WHERE hnum NOT IN ({','.join(map(str, keep))})")
        con.commit()
        con.execute("VACUUM")
        con.close()
        with open(db, "rb") as f:
            small = f.read()
    return small, headers


def ndb(headers):
    """An NDB Packages.db (rpm's lib/backend/ndb/rpmpkg.c layout, see
    src/catalog/rpm/ndb.rs) holding `headers`: the SUSE fixture is 1.3 MiB."""
    page, block = 4096, 16
    slots, blobs = b"", b""
    for i, h in enumerate(headers, start=1):
        off = (page + len(blobs)) // block
        body = b"BlbS" + struct.pack("<III", i, 1, len(h)) + h
        body += b"\0" * (-(len(body) + 12) % block)
        body += struct.pack("<II", 0, len(h)) + b"BlbE"
        slots += b"Slot" + struct.pack("<III", i, off, len(body) // block)
        blobs += body
    head = b"RpmP" + struct.pack("<IIII", 0, 1, 1, len(headers) + 1) + b"\0" * 12
    # free slots keep their magic (pkgidx 0), as rpm writes them
    free = b"Slot" + b"\0" * 12
    table = head + slots + free * ((page - len(head) - len(slots)) // len(free))
    return table + blobs


# ---- executables -----------------------------------------------------------

def section(gz_rel, name):
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "exe")
        with open(exe, "wb") as f:
            f.write(gzip.decompress(fixture(gz_rel)))
        out = os.path.join(tmp, "section")
        subprocess.run(["objcopy", f"--dump-section={name}={out}", exe, os.path.join(tmp, "rest")], check=True)
        return open(out, "rb").read()


def main():
    clean()
    for name, data in layers().items():
        write("layer", name, data)
        write("image_layer", name, data)

    for i, r in enumerate([
        "debian", "docker.io/library/debian:bookworm-slim",
        "public.ecr.aws/docker/library/alpine:3.19@sha256:" + "a" * 64,
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:v1.2.3",
        "localhost:5000/a/b/c", "[::1]:5000/x:y", "registry.example.com:443/ns/img@sha256:" + "0" * 64,
    ]):
        write("image_reference", f"{i}", r.encode())

    corpus_dir = os.environ.get("SCANGATE_CORPUS_DIR", os.path.join(REPO, "target", "corpus"))
    n = 0
    for image in ["alpine-like", "python-app", "rpm-ndb"]:
        blobs = os.path.join(corpus_dir, image, "blobs", "sha256")
        if not os.path.isdir(blobs):
            continue
        write("manifest", f"{image}-index.json", open(os.path.join(corpus_dir, image, "index.json"), "rb").read())
        for b in sorted(os.listdir(blobs)):
            data = open(os.path.join(blobs, b), "rb").read()
            if len(data) < 20_000 and data.lstrip().startswith(b"{"):
                write("manifest", f"{image}-{b[:12]}.json", data)
                n += 1
    write("manifest", "docker-list.json", json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [
            {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 528,
             "digest": "sha256:" + "1" * 64, "platform": {"architecture": "arm", "os": "linux", "variant": "v7"}},
            {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 528,
             "digest": "sha256:" + "2" * 64, "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 566, "digest": "sha256:" + "3" * 64,
             "platform": {"architecture": "unknown", "os": "unknown"},
             "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
        ]}).encode())

    for f in ["debian-12", "rhel-9.3", "alpine-3.16", "ubuntu-22.04"]:
        write("os_release", f, fixture("osrelease/fixtures/" + f))
    write("dpkg_status", "status", fixture("dpkg/fixtures/status"))
    write("dpkg_status", "status-states", fixture("dpkg/fixtures/status-states"))
    write("apk_installed", "installed", fixture("apk/fixtures/installed"))

    small_db, headers = rpm_sqlite_and_headers()
    write("rpm_sqlite", "mariner-3-packages.sqlite", small_db)
    for i, h in enumerate(headers):
        write("rpm_header", f"mariner-{i}", h)
    write("rpm_bdb", "rhel8-libuuid-Packages", fixture("rpm/fixtures/rhel8-libuuid-Packages"))
    write("rpm_ndb", "mariner-3-packages.db", ndb(headers))

    for f in ["typing_extensions-METADATA", "certifi-METADATA", "PyJWT-PKG-INFO"]:
        write("python_metadata", f, fixture("python/fixtures/" + f))
    for f in ["ms-package.json", "npm-package.json", "isaacs-string-locale-compare-package.json"]:
        write("npm_package_json", f, fixture("npm/fixtures/" + f))
    write("go_buildinfo", "hello-go.go.buildinfo", section("golang/fixtures/hello-go.gz", ".go.buildinfo"))
    write("cargo_auditable", "hello-rust.dep-v0", section("rust/fixtures/hello-rust.gz", ".dep-v0"))
    for f in ["guice-jndi.jar", "maven3-slf4j-provider.jar", "webapp.war"]:
        write("jar", f, fixture("java/fixtures/" + f))
    for f in ["webrick-1.8.1.gemspec", "abbrev-0.1.0.gemspec"]:
        write("gemspec", f, fixture("ruby/fixtures/" + f))
    for f in ["composer1-installed.json", "composer2-installed.json"]:
        write("composer", f, fixture("php/fixtures/" + f))
    write("deps_json", "TestLibrary.deps.json", fixture("dotnet/fixtures/TestLibrary.deps.json"))

    scans = os.path.join(SHARED, "fixtures", "inspector", "scans")
    for f in ["alpine_latest.json.scan", "alpine_3.18.2.json.scan", "debian_latest.json.scan",
              "fedora_latest.json.scan"]:
        write("scan_answer", f, open(os.path.join(scans, f), "rb").read())

    policy_examples = [
        b"version: 1\n",
        b'{"version": 1, "thresholds": {"critical": 1, "low": 10}, "fail_on_ids": ["CVE-2024-0001"]}\n',
        b"""version: 1
thresholds: { critical: 0, high: 2, medium: null }
fixable_only: true
fail_on_kev: true
epss_threshold: 0.7
fail_on_ids: [CVE-2021-44228]
ignore:
  - id: CVE-2023-0464
    package: pkg:deb/debian/openssl
    reason: not reachable from our code
    expires: 2027-01-31
  - id: CVE-2024-1
    purl: pkg:npm/lodash
    reason: dev only
base_image:
  ref: public.ecr.aws/docker/library/debian:bookworm-slim
  thresholds: { critical: null, high: null }
""",
    ]
    for i, p in enumerate(policy_examples):
        write("policy_file", f"{i}", p)

    for target in sorted(os.listdir(CORPUS)):
        d = os.path.join(CORPUS, target)
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        print(f"{target:20} {len(os.listdir(d)):3} files {size:8} bytes")
        assert size < MAX_TARGET, f"{target}: {size} bytes of seeds, over {MAX_TARGET}"


if __name__ == "__main__":
    main()
