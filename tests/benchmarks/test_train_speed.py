import json

import pytest

from benchmarks.train_speed import main, measure, parse_arch


def test_tiny_measurement_reports_each_architecture(tmp_path):
    recs = measure([(4, 4, 2, 1), (4, 4, 2, 2)], batch_size=2, patch_size=12, steps=1, repeats=2)
    assert [r["pixel_unshuffle"] for r in recs] == [1, 2]
    assert all(r["seconds_per_step"] > 0 and len(r["rounds"]) == 2 for r in recs)
    # the same channels/hidden/depth give the same parameter count with or without space-to-depth
    assert recs[0]["parameters"] == recs[1]["parameters"]
    out = tmp_path / "s.json"
    assert main(["--arch", "4:4:1:2", "--batch-size", "2", "--patch-size", "12", "--steps", "1",
                 "--repeats", "1", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["runs"][0]["channels"] == 4


def test_bad_arch_is_refused(capsys):
    with pytest.raises(ValueError, match="channels:hidden:depth"):
        parse_arch("32:32")
    assert main(["--arch", "a:b:c:d"]) == 2
    assert "channels:hidden:depth" in capsys.readouterr().err
    assert main(["--arch", "3:4:1:2"]) == 2  # 3 state channels < 1 * 2^2 after space-to-depth
    assert "pixel_unshuffle" in capsys.readouterr().err


def test_variant_settings_are_parsed_and_timed():
    assert parse_arch("4:4:2:1+factors=2+anchor+bias=false") == (4, 4, 2, 1, {"factors": 2, "anchor": True, "bias": False})
    with pytest.raises(ValueError, match="unknown variant"):
        parse_arch("4:4:2:1+depthwise")
    with pytest.raises(ValueError, match="true or false"):
        parse_arch("4:4:2:1+tied=maybe")
    recs = measure([(4, 4, 2, 1), parse_arch("4:4:2:1+tied")], batch_size=2, patch_size=12, steps=1, repeats=1)
    assert recs[1]["variant"] == {"tied": True}
    assert recs[1]["parameters"] < recs[0]["parameters"]  # one block instead of two
