"""A minimal PNG writer (8-bit RGB), so QC pictures need nothing beyond numpy and zlib."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RGB_COLOUR_TYPE = 2


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an (height, width, 3) uint8 array as a PNG file."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"need an (h, w, 3) uint8 array, got {rgb.shape} {rgb.dtype}")
    height, width = rgb.shape[:2]
    # Each scanline starts with its filter type; 0 (none) keeps the writer trivial, zlib does the rest.
    scanlines = np.hstack([np.zeros((height, 1), np.uint8), rgb.reshape(height, width * 3)])
    header = struct.pack(">IIBBBBB", width, height, 8, RGB_COLOUR_TYPE, 0, 0, 0)
    return b"".join(
        [
            PNG_SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 6)),
            _chunk(b"IEND", b""),
        ]
    )


def write_png(path, rgb: np.ndarray) -> Path:
    """Write atomically (temporary name, then rename), so a report never shows half a picture."""
    path = Path(path)
    temporary = path.with_name(f".partial-{os.getpid()}-{path.name}")
    temporary.write_bytes(png_bytes(rgb))
    os.replace(temporary, path)
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
