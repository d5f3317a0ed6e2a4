import json, shutil, sys
from pathlib import Path
R = Path("benchmarks/results/levin10-cal2/set12")
have = {json.loads(l)["key"] for l in open(R / "records.jsonl")}
added = []
for src in map(Path, sys.argv[1:]):
    for line in open(src / "records.jsonl"):
        r = json.loads(line)
        if r["key"] in have:
            continue
        have.add(r["key"]); added.append(line if line.endswith("\n") else line + "\n")
        if r.get("history_file"):
            (R / r["history_file"]).parent.mkdir(exist_ok=True)
            shutil.copy2(src / r["history_file"], R / r["history_file"])
with open(R / "records.jsonl", "a") as fh:
    fh.writelines(added)
print(len(added), "records added")
