"""Image I/O round-trips (8/16 bit, grey/colour, PNG/TIFF) and clear errors."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch

from pnp import read_image, write_image
from pnp._png16 import read_png16


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_round_trip(tmp_path, channels, bits, suffix):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, channels, 11, 14, generator=g)
    p = tmp_path / f"img{suffix}"
    write_image(p, x, bits=bits)
    r = read_image(p)
    assert r.shape == x.shape and r.dtype == torch.float32
    maxval = 2**bits - 1
    assert float((r - x).abs().max()) <= 0.5 / maxval + 1e-6
    # exact round trip of quantised values
    q = torch.round(x * maxval) / maxval
    p2 = tmp_path / f"q{suffix}"
    write_image(p2, q, bits=bits)
    assert torch.allclose(read_image(p2), q, atol=1e-6)


def test_jpeg(tmp_path):
    x = torch.full((1, 3, 8, 8), 0.5)
    write_image(tmp_path / "a.jpg", x)
    assert float((read_image(tmp_path / "a.jpg") - x).abs().max()) < 0.02
    with pytest.raises(ValueError, match="16"):
        write_image(tmp_path / "b.jpg", x, bits=16)


def _png16_with_filters(arr: np.ndarray) -> bytes:
    """Reference encoder using PNG filters Sub/Up/Average/Paeth (one per row, cycling)."""
    h, w, c = arr.shape
    bpp = 2 * c
    raw = arr.astype(">u2").view(np.uint8).reshape(h, w * bpp).astype(int)
    out = bytearray()
    for r in range(h):
        f = 1 + r % 4
        line = raw[r]
        prev = raw[r - 1] if r else np.zeros_like(line)
        enc = []
        for i in range(len(line)):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            cc = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                pred = a
            elif f == 2:
                pred = b
            elif f == 3:
                pred = (a + b) // 2
            else:
                p = a + b - cc
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)
            enc.append((line[i] - pred) % 256)
        out += bytes([f]) + bytes(enc)

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(
            ">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)

    colour = 2 if c == 3 else 6
    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(out)))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("channels", [3, 4])
def test_png16_decoder_all_filters(tmp_path, channels):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 65536, size=(6, 5, channels), dtype=np.uint16)
    p = tmp_path / "f.png"
    p.write_bytes(_png16_with_filters(arr))
    assert np.array_equal(read_png16(p), arr)
    t = read_image(p)
    assert t.shape == (1, 3, 6, 5)
    assert torch.allclose(t[0].permute(1, 2, 0), torch.from_numpy(arr[..., :3] / 65535.0).float())


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        read_image(tmp_path / "missing.png")
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match="cannot read"):
        read_image(bad)
    x = torch.rand(1, 1, 4, 4)
    out = tmp_path / "o.png"
    write_image(out, x)
    with pytest.raises(FileExistsError, match="exists"):
        write_image(out, x)
    write_image(out, torch.zeros(1, 1, 4, 4), overwrite=True)
    assert float(read_image(out).max()) == 0.0
    with pytest.raises(ValueError, match="must end with"):
        write_image(tmp_path / "o.bmpx", x)
    with pytest.raises(ValueError, match="one image"):
        write_image(tmp_path / "b.png", torch.rand(2, 1, 4, 4))
