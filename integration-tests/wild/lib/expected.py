#!/usr/bin/env python3
"""expected.py: ground-truth helpers for the wild corpus (stdlib only).

  sort IN.json OUT.json           sort and de-duplicate a list of
                                  {"type","name","version",...} entries
  pip DIR [--optional]            importlib.metadata over DIR: dist-info and
                                  egg-info (what pip itself lists)
  npm-ls PREFIX                   installed packages by their package.json,
                                  cross-checked with `npm ls -g --all`
  go BINARY...                    `go version -m`: main module, deps, stdlib
Each of the last three prints a JSON list on stdout.
"""
import json
import re
import subprocess
import sys


def sort(src, dst):
    items = json.load(open(src))
    seen, out = set(), []
    for e in sorted(items, key=lambda e: (e["type"], e["name"].lower(), e["version"])):
        k = (e["type"], e["name"], e["version"])
        if k not in seen:
            seen.add(k)
            out.append(e)
    with open(dst, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


def pip(dirs, optional=False):
    import importlib.metadata as md
    out = []
    for d in md.distributions(path=dirs):
        e = {"type": "pypi", "name": d.metadata["Name"], "version": d.version}
        if optional:
            e["optional"] = True
        out.append(e)
    return out


def npm_ls(prefix):
    """Every installed package dir under PREFIX/lib/node_modules (nested and
    bundled ones too), by its own package.json: an alias such as
    "string-width-cjs": "npm:string-width@^4" is installed as
    node_modules/string-width-cjs but IS string-width, which is what
    advisories name. Cross-checked with `npm ls -g --all` (same count of
    installed packages)."""
    import os
    out = []
    top = os.path.join(prefix, "lib", "node_modules")
    for dirpath, dirnames, files in os.walk(top):
        parent = os.path.basename(os.path.dirname(dirpath))
        grand = os.path.basename(os.path.dirname(os.path.dirname(dirpath)))
        is_pkg = parent == "node_modules" or (parent.startswith("@") and grand == "node_modules")
        if is_pkg and "package.json" in files:
            with open(os.path.join(dirpath, "package.json")) as f:
                meta = json.load(f)
            if meta.get("name") and meta.get("version"):
                out.append({"type": "npm", "name": meta["name"], "version": meta["version"]})
    res = subprocess.run(["npm", "ls", "-g", "--all", "--parseable", "--prefix", prefix],
                         capture_output=True, text=True)
    listed = {l for l in res.stdout.splitlines() if "/node_modules/" in l}
    if len(listed) != len(out):
        sys.exit(f"npm ls lists {len(listed)} installed packages, the walk found {len(out)}")
    return out


def go(binaries):
    out = []
    for b in binaries:
        text = subprocess.run(["go", "version", "-m", b], capture_output=True, text=True, check=True).stdout
        for line in text.splitlines():
            f = line.split("\t")
            if len(f) < 3:
                continue
            if f[1] == "dep" or f[1] == "=>":
                out.append({"type": "golang", "name": f[2], "version": f[3]})
            elif f[1] == "path" and f[0] == "":
                pass
        m = re.match(r"^.*: go(\S+)", text.splitlines()[0])
        if m:
            out.append({"type": "golang", "name": "stdlib", "version": m.group(1), "optional": True})
    return out


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "sort":
        sort(sys.argv[2], sys.argv[3])
    elif cmd == "pip":
        args = [a for a in sys.argv[2:] if not a.startswith("--")]
        json.dump(pip(args, "--optional" in sys.argv), sys.stdout, indent=1)
    elif cmd == "npm-ls":
        json.dump(npm_ls(sys.argv[2]), sys.stdout, indent=1)
    elif cmd == "go":
        json.dump(go(sys.argv[2:]), sys.stdout, indent=1)
    else:
        sys.exit(f"unknown command {cmd}")
