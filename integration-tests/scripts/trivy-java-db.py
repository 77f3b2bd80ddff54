#!/usr/bin/env python3
"""trivy-java-db.py DIR — an empty but valid trivy Java DB in DIR.

trivy insists on a Java DB before it scans an image; an empty one (the
schema, no rows, NextUpdate far ahead) keeps it offline. Used by the bench
scripts and wild/peers.sh (the same trick as ../shared/corpus/peers/run_peers.py).
"""
import datetime
import json
import os
import sqlite3
import sys

d = sys.argv[1]
os.makedirs(d, exist_ok=True)
con = sqlite3.connect(os.path.join(d, "trivy-java.db"))
con.execute("CREATE TABLE artifacts(id INTEGER PRIMARY KEY, group_id TEXT, artifact_id TEXT)")
con.execute("CREATE TABLE indices(artifact_id INTEGER, version TEXT, sha1 BLOB, archive_type TEXT)")
con.commit()
con.close()
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
with open(os.path.join(d, "metadata.json"), "w") as f:
    json.dump({"Version": 1, "NextUpdate": "2099-01-01T00:00:00Z", "UpdatedAt": now, "DownloadedAt": now}, f)
