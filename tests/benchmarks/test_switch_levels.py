import json
import math

import pytest

from benchmarks.switch_levels import main, switch_levels


def test_rule_on_a_hand_example():
    scores = {"m-s10": {10: 32.0, 12.5: 31.0, 15: 30.0}, "m-s25": {12.5: 31.2, 15: 30.5, 25: 28.0},
              "m-s50": {35: 26.5, 50: 25.0}}
    scores["m-s25"][35] = 26.3
    fam = switch_levels(scores, {"m-s10": 10 / 255, "m-s25": 25 / 255, "m-s50": 50 / 255})
    assert fam["members"] == ["m-s10", "m-s25", "m-s50"]
    # s10 wins only at 10, s25 first wins at 12.5; s25 wins at 25, s50 first at 35
    assert fam["switch_levels_255"] == pytest.approx([math.sqrt(10 * 12.5), math.sqrt(25 * 35)])
    assert fam["switch_levels"][0] == pytest.approx(math.sqrt(10 * 12.5) / 255)


def test_unordered_members_are_refused():
    scores = {"a-s10": {10: 30.0, 20: 29.0}, "b-s25": {15: 31.0, 20: 28.0}}
    with pytest.raises(ValueError, match="wins at 20"):
        switch_levels(scores, {"a-s10": 0.04, "b-s25": 0.1})


def test_cli_writes_a_family_file_the_zoo_reads(tmp_path, monkeypatch):
    from denoisers import zoo

    rec = {"runs": [{"denoiser": "x/rk-averaged-s10.safetensors", "psnr": {"10": 32.0, "15": 30.0}},
                    {"denoiser": "rk-averaged-s25", "psnr": {"15": 30.5, "25": 28.0}},
                    {"denoiser": "rk-averaged-s25", "ensemble": True, "psnr": {"10": 99.0}}]}
    (tmp_path / "s.json").write_text(json.dumps(rec))
    out = tmp_path / "rk-averaged.family.json"
    assert main(["--scores", str(tmp_path / "s.json"), "--out", str(out)]) == 0
    monkeypatch.setattr(zoo, "_WEIGHTS", tmp_path)
    assert zoo._switch_levels("rk-averaged") == pytest.approx([math.sqrt(10 * 15) / 255])
    assert main(["--scores", str(tmp_path / "s.json"), "--out", str(out)]) == 2  # exists, no --force
    assert main(["--scores", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o.json")]) == 2
