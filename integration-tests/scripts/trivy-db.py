#!/usr/bin/env python3
"""trivy-db.py CACHE_DIR [--debian 12] [--alpine 3.16 ...] — write a trivy
vulnerability DB (schema 2) that trivy accepts offline, for benchmarks.

trivy refuses to scan for vulnerabilities without `CACHE_DIR/db/trivy.db`
and `CACHE_DIR/db/metadata.json`, and the published DB cannot be downloaded
where scangate is measured (no registry serves it). This writes one:

- `db/trivy.db`: a BoltDB (bbolt) file written here from its documented
  on-disk format (two meta pages, a freelist page, one leaf page per
  bucket; no Go needed). Buckets follow trivy-db's layout (pkg/db):
  `debian 12` / `alpine 3.16` -> source package -> CVE id ->
  `{"FixedVersion": ...}` (or `{"Status": 2}`, "affected", when no fix is
  known); `npm::GitHub Security Advisory npm` -> name -> id ->
  `{"PatchedVersions", "VulnerableVersions"}`; `vulnerability` -> CVE id ->
  description, severities, CWEs, references, dates; `data-source` -> bucket
  name -> source; `Red Hat CPE` -> repository / cpe (see redhat_cpes).
- `db/metadata.json`: Version 2 (trivy-db's SchemaVersion), NextUpdate in
  the future, so `--skip-db-update` uses it as it is.

The advisory rows are real: every vulnerability of the real Amazon
Inspector `ScanSbom` answers in $SCANGATE_SHARED_DIR/fixtures/inspector/
scans (CVE id, package, fixed version, description, ratings), so trivy
does real lookups, version comparisons and reporting on the corpus's
Debian and Alpine images. Those answers are for other releases of the same
distributions (Debian 12 images of 2024, Alpine 3.18 / 3.19): the rows of a
distribution are written under each release given on the command line,
which is the release of the images being scanned. This is a benchmark DB,
not a vulnerability feed: the rows are far fewer than trivy's real DB, so
trivy's time with it is a lower bound of its time with the real one.
"""
import argparse
import datetime
import glob
import json
import os
import struct
import sys

PAGE = 4096
# bbolt's on-disk constants (go.etcd.io/bbolt, internal/common)
MAGIC = 0xED0CDAED
VERSION = 2
BRANCH, LEAF, META, FREELIST = 0x01, 0x02, 0x04, 0x10
BUCKET_LEAF_FLAG = 0x01
PAGE_HEADER = struct.Struct("<QHHI")  # id, flags, count, overflow
LEAF_ELEMENT = struct.Struct("<IIII")  # flags, pos, ksize, vsize
BUCKET_HEADER = struct.Struct("<QQ")  # root page id, sequence
SEVERITY = {"unknown": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


def fnv64a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


class BoltWriter:
    """Lays a tree of buckets out as bbolt pages. A bucket is a dict of
    bytes -> bytes (a value) or bytes -> dict (a nested bucket). Every
    bucket gets its own leaf page (with overflow pages when it is bigger
    than one page): valid for readers, which is all trivy is here."""

    def __init__(self):
        self.pages = [b"", b"", b""]  # meta 0, meta 1, freelist: filled at the end

    def _alloc(self, content: bytes) -> int:
        pgid = len(self.pages)
        n = max(1, -(-len(content) // PAGE))
        self.pages.append(content.ljust(n * PAGE, b"\0"))
        self.pages.extend([None] * (n - 1))  # the overflow pages are in the first
        return pgid

    def bucket(self, tree: dict) -> int:
        items = []
        for key in sorted(tree):  # bbolt binary-searches keys in byte order
            value = tree[key]
            if isinstance(value, dict):
                items.append((BUCKET_LEAF_FLAG, key, BUCKET_HEADER.pack(self.bucket(value), 0)))
            else:
                items.append((0, key, value))
        return self._leaf(items)

    def _leaf(self, items) -> int:
        n = len(items)
        if n > 0xFFFF:
            raise ValueError("more than 65535 keys in one bucket")
        data_start = PAGE_HEADER.size + n * LEAF_ELEMENT.size
        elements, data = bytearray(), bytearray()
        for i, (flags, key, value) in enumerate(items):
            elem_at = PAGE_HEADER.size + i * LEAF_ELEMENT.size
            pos = data_start + len(data) - elem_at  # from the element to its key
            elements += LEAF_ELEMENT.pack(flags, pos, len(key), len(value))
            data += key + value
        size = data_start + len(data)
        overflow = max(1, -(-size // PAGE)) - 1
        pgid = len(self.pages)
        header = PAGE_HEADER.pack(pgid, LEAF, n, overflow)
        assert self._alloc(header + bytes(elements) + bytes(data)) == pgid
        return pgid

    def write(self, path: str, root: dict):
        root_pgid = self.bucket(root)
        self.pages[2] = PAGE_HEADER.pack(2, FREELIST, 0, 0).ljust(PAGE, b"\0")
        for i in (0, 1):
            meta = struct.pack("<IIIIQQQQQ", MAGIC, VERSION, PAGE, 0, root_pgid, 0, 2,
                               len(self.pages), i)  # root bucket, freelist, high water, txid
            meta += struct.pack("<Q", fnv64a(meta))
            self.pages[i] = (PAGE_HEADER.pack(i, META, 0, 0) + meta).ljust(PAGE, b"\0")
        with open(path, "wb") as f:
            for p in self.pages:
                if p is not None:
                    f.write(p)


def components(bom):
    """bom-ref -> (purl, the purl of the component it is nested in)."""
    out = {}

    def walk(cs, parent):
        for c in cs:
            out[c["bom-ref"]] = (c.get("purl", ""), parent)
            walk(c.get("components", []), c.get("purl", ""))

    walk(bom.get("components", []), "")
    return out


def purl_name(purl: str):
    """('deb', 'openssl') from pkg:deb/debian/openssl@3.0.11-1?...;
    scoped npm names keep their scope."""
    body = purl[len("pkg:"):].split("?")[0].split("@")[0]
    kind, _, rest = body.partition("/")
    if kind in ("deb", "apk", "rpm"):
        rest = rest.partition("/")[2]
    return kind, rest.replace("%40", "@")


def severities(vuln):
    vendor, best = {}, 0
    for r in vuln.get("ratings", []):
        name = r.get("source", {}).get("name", "").lower()
        sev = SEVERITY.get(r.get("severity", ""), None)
        if sev is None or name in ("epss", ""):
            continue
        vendor["nvd" if name == "nvd" else name.split()[0]] = sev
        best = max(best, sev)
    return vendor, best


def advisory_rows(scan_dir):
    """(kind, package, vuln id, fixed version or None, vulnerability detail)
    for every affected component of every real Inspector answer."""
    for path in sorted(glob.glob(os.path.join(scan_dir, "*.scan"))):
        bom = json.load(open(path))["sbom"]
        refs = components(bom)
        for v in bom.get("vulnerabilities", []):
            fixed = {p["name"].rsplit(":", 1)[1]: p["value"] for p in v.get("properties", [])
                     if p["name"].startswith("amazon:inspector:sbom_scanner:fixed_version:")}
            vendor, best = severities(v)
            detail = {
                "Description": v.get("description", ""),
                "Severity": [k for k, s in SEVERITY.items() if s == best][0].upper(),
                "VendorSeverity": vendor,
                "CweIDs": [f"CWE-{c}" for c in v.get("cwes", [])],
                "References": [a["url"] for a in v.get("advisories", []) if "url" in a],
                "PublishedDate": v.get("created"),
                "LastModifiedDate": v.get("updated"),
            }
            detail = {k: x for k, x in detail.items() if x}
            for a in v.get("affects", []):
                purl, parent = refs.get(a["ref"], ("", ""))
                if not purl:
                    continue
                kind, name = purl_name(parent or purl)  # OS advisories are per source package
                fv = fixed.get(a["ref"])
                if fv and fv.startswith("0:"):
                    fv = fv[2:]
                yield kind, name, v["id"], fv or None, detail


def build(scan_dir, debian, alpine):
    sources = {}
    for r in debian:
        sources[f"debian {r}"] = ("deb", {"ID": "debian", "Name": "Debian Security Tracker",
                                          "URL": "https://salsa.debian.org/security-tracker-team/security-tracker"})
    for r in alpine:
        sources[f"alpine {r}"] = ("apk", {"ID": "alpine", "Name": "Alpine Secdb",
                                          "URL": "https://secdb.alpinelinux.org/"})
    npm = "npm::GitHub Security Advisory npm"
    sources[npm] = ("npm", {"ID": "ghsa", "Name": "GitHub Security Advisory npm",
                            "URL": "https://github.com/advisories?query=type%3Areviewed+ecosystem%3Anpm"})
    root = {b"vulnerability": {}, b"data-source": {}}
    rows = 0
    for kind, name, vid, fixed, detail in advisory_rows(scan_dir):
        if kind == "npm":
            adv = {"PatchedVersions": [fixed], "VulnerableVersions": [f"<{fixed}"]} if fixed else \
                  {"VulnerableVersions": [">=0"]}
        else:
            adv = {"FixedVersion": fixed} if fixed else {"Status": 2}  # 2: affected
        for bucket, (k, _) in sources.items():
            if k == kind:
                pkg = root.setdefault(bucket.encode(), {}).setdefault(name.encode(), {})
                pkg[vid.encode()] = json.dumps(adv, separators=(",", ":")).encode()
                rows += 1
        root[b"vulnerability"][vid.encode()] = json.dumps(detail, separators=(",", ":")).encode()
    for bucket, (_, src) in sources.items():
        root[b"data-source"][bucket.encode()] = json.dumps(src, separators=(",", ":")).encode()
    root[b"Red Hat CPE"] = redhat_cpes()
    return root, rows


def redhat_cpes():
    """trivy's Red Hat detector fails ("unable to find CPE indices") unless
    the repositories it assumes for an image without content sets map to
    CPEs: the default repositories of RHEL 6-9 and their CPEs (Red Hat's
    published repository-to-CPE mapping). No Red Hat advisories: the
    Inspector answers hold none, so RHEL images are looked up, not matched."""
    repos = {
        "rhel-6-server-rpms": "cpe:/o:redhat:enterprise_linux:6::server",
        "rhel-6-server-extras-rpms": "cpe:/a:redhat:rhel_extras:6",
        "rhel-7-server-rpms": "cpe:/o:redhat:enterprise_linux:7::server",
        "rhel-7-server-extras-rpms": "cpe:/a:redhat:rhel_extras:7",
        "rhel-8-for-x86_64-baseos-rpms": "cpe:/o:redhat:enterprise_linux:8::baseos",
        "rhel-8-for-x86_64-appstream-rpms": "cpe:/a:redhat:enterprise_linux:8::appstream",
        "rhel-9-for-x86_64-baseos-rpms": "cpe:/o:redhat:enterprise_linux:9::baseos",
        "rhel-9-for-x86_64-appstream-rpms": "cpe:/a:redhat:enterprise_linux:9::appstream",
    }
    enc = lambda x: json.dumps(x).encode()
    return {
        b"repository": {r.encode(): enc([i]) for i, r in enumerate(repos)},
        b"nvr": {},
        b"cpe": {str(i).encode(): enc(c) for i, c in enumerate(repos.values())},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cache_dir")
    ap.add_argument("--debian", action="append", default=[], help="Debian major release(s), e.g. 12")
    ap.add_argument("--alpine", action="append", default=[], help="Alpine release(s), e.g. 3.16")
    here = os.path.dirname(os.path.abspath(__file__))
    shared = os.environ.get("SCANGATE_SHARED_DIR", os.path.join(here, "../../../shared"))
    ap.add_argument("--scans", default=os.path.join(shared, "fixtures/inspector/scans"))
    a = ap.parse_args()
    if not glob.glob(os.path.join(a.scans, "*.scan")):
        sys.exit(f"trivy-db: no Inspector answers in {a.scans} (set SCANGATE_SHARED_DIR)")
    root, rows = build(a.scans, a.debian or ["12"], a.alpine or ["3.16"])
    d = os.path.join(a.cache_dir, "db")
    os.makedirs(d, exist_ok=True)
    BoltWriter().write(os.path.join(d, "trivy.db"), root)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with open(os.path.join(d, "metadata.json"), "w") as f:
        json.dump({"Version": 2, "NextUpdate": "2099-01-01T00:00:00Z", "UpdatedAt": now,
                   "DownloadedAt": now}, f)
    print(f"trivy-db: {rows} advisory rows, {len(root[b'vulnerability'])} vulnerabilities "
          f"-> {d}", file=sys.stderr)


if __name__ == "__main__":
    main()
