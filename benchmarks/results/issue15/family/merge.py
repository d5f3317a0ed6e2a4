"""Append the shard folders' records made with the current weights of their denoiser (each shard folder also holds
the copied older records) to benchmarks/results/levin10-cal2/set12 where the key is new or was recorded with other
weights (the records file is keyed, last line wins), with their history files.
Usage: python merge.py SHARD_FOLDER...
"""
import json
import shutil
import sys
from pathlib import Path

from benchmarks.baselines import denoiser_fingerprint

R = Path("benchmarks/results/levin10-cal2/set12")
have = {}
for line in open(R / "records.jsonl"):
    r = json.loads(line)
    have[r["key"]] = r.get("denoiser_sha256")
added = []
prints: dict = {}
for src in map(Path, sys.argv[1:]):
    for line in open(src / "records.jsonl"):
        r = json.loads(line)
        if r.get("denoiser_sha256") != prints.setdefault(r["denoiser"], denoiser_fingerprint(r["denoiser"])):
            continue  # made with other weights (a copied older record)
        if r["key"] in have and have[r["key"]] == r.get("denoiser_sha256"):
            continue
        have[r["key"]] = r.get("denoiser_sha256")
        added.append(line if line.endswith("\n") else line + "\n")
        if r.get("history_file"):
            (R / r["history_file"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / r["history_file"], R / r["history_file"])
with open(R / "records.jsonl", "a") as fh:
    fh.writelines(added)
print(len(added), "records added")
