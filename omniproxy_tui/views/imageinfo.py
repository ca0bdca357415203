"""Image type and dimensions from header bytes alone (no PIL): PNG, GIF, JPEG, WebP, BMP, ICO.

Only the first bytes are read (JPEG walks its segment lengths to the first SOF marker), so this is
cheap for any body size. Truncated or malformed headers give None, never an exception.
"""

from __future__ import annotations

import struct


def image_size(data: bytes) -> tuple[str, int, int] | None:
    """(format, width, height) or None when `data` does not start with a known image header."""
    try:
        return _sniff(data)
    except (struct.error, IndexError, ValueError):
        return None


def describe(data: bytes) -> str | None:
    """'PNG image, 640 × 480' (ICO: the largest entry and the count), or None."""
    info = image_size(data)
    if info is None:
        return None
    kind, w, h = info
    text = f"{kind} image, {w} × {h}"
    if kind == "ICO":
        text += f" (largest of {struct.unpack_from('<H', data, 4)[0]})"
    return text


def _sniff(d: bytes) -> tuple[str, int, int] | None:
    if d.startswith(b"\x89PNG\r\n\x1a\n") and d[12:16] == b"IHDR":
        w, h = struct.unpack_from(">II", d, 16)
        return "PNG", w, h
    if d[:6] in (b"GIF87a", b"GIF89a"):
        w, h = struct.unpack_from("<HH", d, 6)
        return "GIF", w, h
    if d.startswith(b"\xff\xd8"):
        return _jpeg(d)
    if d.startswith(b"RIFF") and d[8:12] == b"WEBP":
        return _webp(d)
    if d.startswith(b"BM") and len(d) >= 26:
        dib = struct.unpack_from("<I", d, 14)[0]
        if dib == 12:  # BITMAPCOREHEADER: 16-bit sizes
            w, h = struct.unpack_from("<HH", d, 18)
        else:
            w, h = struct.unpack_from("<ii", d, 18)  # height < 0 means top-down rows
        return "BMP", abs(w), abs(h)
    if d.startswith(b"\x00\x00\x01\x00"):
        count = struct.unpack_from("<H", d, 4)[0]
        if not 0 < count <= 256 or len(d) < 6 + 16 * count:
            return None
        # a 0 in the directory means 256 pixels
        sizes = [(d[6 + 16 * i] or 256, d[7 + 16 * i] or 256) for i in range(count)]
        w, h = max(sizes, key=lambda s: s[0] * s[1])
        return "ICO", w, h
    return None


# SOF markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg(d: bytes) -> tuple[str, int, int] | None:
    pos = 2
    n = len(d)
    while pos + 4 <= n:
        if d[pos] != 0xFF:
            return None
        marker = d[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        length = struct.unpack_from(">H", d, pos + 2)[0]
        if marker in _SOF:
            h, w = struct.unpack_from(">HH", d, pos + 5)
            return "JPEG", w, h
        if marker == 0xDA:  # start of scan before any SOF: give up
            return None
        pos += 2 + length
    return None


def _webp(d: bytes) -> tuple[str, int, int] | None:
    chunk = d[12:16]
    if chunk == b"VP8 " and d[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack_from("<HH", d, 26)
        return "WebP", w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and d[20] == 0x2F:
        bits = struct.unpack_from("<I", d, 21)[0]
        return "WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        w = int.from_bytes(d[24:27], "little") + 1
        h = int.from_bytes(d[27:30], "little") + 1
        return "WebP", w, h
    return None
