"""Measured switch levels of a zoo family, from ``benchmarks.set12_denoise`` records.

    python -m benchmarks.switch_levels --scores s10.json,s25.json,s50.json --out weights/rk-averaged.family.json

Members are the denoisers named in the records (their file stems), sorted by training level (read
from each checkpoint's metadata, or from the ``-sNN`` suffix of a zoo name). Between neighbouring
members ``a < b`` the winner at each measured level is the one with the higher PSNR (a level
where only one of them was measured counts for that one; a tie goes to ``a``). The switch level is
the geometric mean of the highest level where ``a`` wins and the lowest level where ``b`` wins;
if ``a`` wins anywhere above a level that ``b`` wins, the members do not order and the command
refuses. The output is the family file that :func:`denoisers.zoo.load` reads
(``switch_levels`` on the ``[0, 1]`` scale, plus the scores and the rule).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

__all__ = ["switch_levels", "main"]

RULE = ("between neighbouring members a < b, switch at the geometric mean of the highest level where a "
        "scored at least b and the lowest level where b scored higher (levels where only one of them was "
        "measured count for that one)")


def _member_sigma(name: str) -> float:
    path = Path(name)
    if path.suffix == ".safetensors" and path.is_file():
        from denoisers.checkpoint import load_checkpoint

        _, meta = load_checkpoint(path)
        if isinstance(meta.get("sigma"), (int, float)):
            return float(meta["sigma"])
    m = re.search(r"-s([0-9.]+?)(?:\.safetensors)?$", name)
    if not m:
        raise ValueError(f"cannot tell the training level of {name!r} (no checkpoint metadata, no -sNN suffix)")
    return float(m.group(1)) / 255


def switch_levels(scores: dict[str, dict[float, float]], sigmas: dict[str, float]) -> dict[str, Any]:
    """``scores[member][level_255] = psnr``; ``sigmas[member]`` = training level on ``[0, 1]``."""
    members = sorted(scores, key=lambda m: sigmas[m])
    if len(members) < 2:
        raise ValueError("need scores of at least two members")
    pairs, levels = [], []
    for a, b in zip(members, members[1:]):
        common = sorted(set(scores[a]) | set(scores[b]))
        wins_a, wins_b = [], []
        for lv in common:
            sa, sb = scores[a].get(lv), scores[b].get(lv)
            (wins_a if sb is None or (sa is not None and sa >= sb) else wins_b).append(lv)
        if not wins_a or not wins_b:
            raise ValueError(f"{a} / {b}: each member must win at some measured level (a: {wins_a}, b: {wins_b})")
        last_a, first_b = max(wins_a), min(wins_b)
        if last_a >= first_b:
            raise ValueError(f"{a} / {b}: {a} wins at {last_a}/255 above {b}'s win at {first_b}/255; "
                             "measure more levels or drop a member")
        t = math.sqrt(last_a * first_b)
        levels.append(t / 255)
        pairs.append({"below": a, "above": b, "last_level_below_wins_255": last_a,
                      "first_level_above_wins_255": first_b, "switch_255": t,
                      "scores": {f"{lv:g}": {m: scores[m][lv] for m in (a, b) if lv in scores[m]} for lv in common}})
    return {"members": members, "switch_levels": levels, "switch_levels_255": [t * 255 for t in levels],
            "rule": RULE, "pairs": pairs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.switch_levels", description=__doc__.split("\n\n")[0])
    ap.add_argument("--scores", required=True, help="comma-separated JSON files written by benchmarks.set12_denoise --json")
    ap.add_argument("--family", default="rk-averaged")
    ap.add_argument("--out", required=True, help="family file to write (e.g. denoisers/zoo/weights/rk-averaged.family.json)")
    ap.add_argument("--force", action="store_true", help="overwrite --out")
    a = ap.parse_args(argv)
    try:
        if Path(a.out).exists() and not a.force:
            raise FileExistsError(f"--out {a.out} exists; pass --force to overwrite")
        scores: dict[str, dict[float, float]] = {}
        where: dict[str, str] = {}
        for f in [t for t in a.scores.split(",") if t.strip()]:
            try:
                runs = json.loads(Path(f).read_text())["runs"]
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise ValueError(f"--scores {f}: not a benchmarks.set12_denoise record ({e})") from None
            for r in runs:
                if r.get("ensemble") or not r.get("rescaled", True):
                    continue  # the family serves plain, rescaled members
                name = r["denoiser"]
                scores.setdefault(Path(name).stem, {}).update({float(k): float(v) for k, v in r["psnr"].items()})
                where[Path(name).stem] = name
        sigmas = {m: _member_sigma(where[m]) for m in scores}
        fam = switch_levels(scores, sigmas)
    except (ValueError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    doc = {"family": a.family, **fam, "data": "Set12, numpy default_rng(0) noise per image, PSNR on [0,1] clipped",
           "command": " ".join(["python -m benchmarks.switch_levels", *(argv if argv is not None else sys.argv[1:])]),
           "measured": _dt.date.today().isoformat()}
    tmp = Path(a.out).with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(a.out)
    print(f"switch levels (/255): {', '.join(f'{t:.2f}' for t in fam['switch_levels_255'])}; wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
