"""Minimal codec for 16-bit colour PNG (Pillow reads them as 8-bit and cannot write them).

Only what :mod:`pnp.io` needs: non-interlaced, bit depth 16, colour type 2 (RGB) or 6 (RGBA).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["is_png16_colour", "read_png16", "write_png16"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunks(data: bytes):
    pos = len(_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        yield kind, data[pos + 8 : pos + 8 + length]
        pos += 12 + length


def is_png16_colour(path: Path) -> bool:
    """True for a PNG whose header says bit depth 16 and colour type 2 or 6."""
    with open(path, "rb") as f:
        head = f.read(33)
    if len(head) < 33 or not head.startswith(_SIGNATURE) or head[12:16] != b"IHDR":
        return False
    depth, colour = head[24], head[25]
    return depth == 16 and colour in (2, 6)


def read_png16(path: Path) -> np.ndarray:
    """Decode a 16-bit RGB/RGBA PNG into an ``[H, W, C]`` uint16 array."""
    data = Path(path).read_bytes()
    if not data.startswith(_SIGNATURE):
        raise ValueError("not a PNG file")
    ihdr = None
    idat = []
    for kind, body in _chunks(data):
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body[:13])
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if ihdr is None:
        raise ValueError("PNG without IHDR")
    width, height, depth, colour, _, _, interlace = ihdr
    if depth != 16 or colour not in (2, 6):
        raise ValueError("not a 16-bit colour PNG")
    if interlace:
        raise ValueError("interlaced 16-bit colour PNG is not supported")
    channels = 3 if colour == 2 else 4
    bpp = 2 * channels
    stride = width * bpp
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    if raw.size != height * (stride + 1):
        raise ValueError("corrupt PNG data")
    rows = raw.reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.int32)
    prev = np.zeros(stride, dtype=np.int32)
    for r in range(height):
        ftype = int(rows[r, 0])
        line = rows[r, 1:].astype(np.int32)
        if ftype == 0:
            cur = line
        elif ftype == 1:  # Sub: cumulative sum per byte position modulo 256
            cur = np.cumsum(line.reshape(width, bpp), axis=0).reshape(-1) % 256
        elif ftype == 2:  # Up
            cur = (line + prev) % 256
        elif ftype in (3, 4):  # Average, Paeth: sequential over pixels
            cur = np.empty(stride, dtype=np.int32)
            left = np.zeros(bpp, dtype=np.int32)
            upleft = np.zeros(bpp, dtype=np.int32)
            for i in range(width):
                sl = slice(i * bpp, (i + 1) * bpp)
                up = prev[sl]
                if ftype == 3:
                    pred = (left + up) // 2
                else:
                    p = left + up - upleft
                    pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - upleft)
                    pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
                cur[sl] = (line[sl] + pred) % 256
                left = cur[sl]
                upleft = up
        else:
            raise ValueError(f"corrupt PNG data (filter type {ftype})")
        out[r] = cur
        prev = cur
    bytes_ = out.astype(np.uint8).reshape(height, width, channels, 2)
    return (bytes_[..., 0].astype(np.uint16) << 8) | bytes_[..., 1].astype(np.uint16)


def write_png16(path: Path, arr: np.ndarray) -> None:
    """Encode an ``[H, W, 3]`` uint16 array as a 16-bit RGB PNG (filter 0)."""
    if arr.dtype != np.uint16 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError("write_png16 needs an [H, W, 3] uint16 array")
    height, width, _ = arr.shape
    body = np.ascontiguousarray(arr.astype(">u2")).view(np.uint8).reshape(height, width * 6)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), body], axis=1).tobytes()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    data = _SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 6))
    data += chunk(b"IEND", b"")
    Path(path).write_bytes(data)
