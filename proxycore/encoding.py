"""Undo Content-Encoding for capture and display (never for the bytes forwarded).

`decode_body` never raises: an undecodable, truncated, unknown or unsupported coding gives back
the original bytes with a one-line reason. Output is capped (`max_size`) so a decompression bomb
cannot exhaust memory: every decoder is driven with a bounded output size.

brotli and zstandard are optional: imported on first use, and their absence is reported as an
error message rather than an ImportError.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

DEFAULT_MAX_SIZE = 64 * 1024 * 1024

# zlib output is bounded exactly by max_length; for the two decoders without a hard output
# bound we feed small input slices so one call can expand at most ~32 MiB (zstd's worst ratio).
_ZSTD_IN_CHUNK = 1024
_BROTLI_IN_CHUNK = 1024
_OUT_STEP = 256 * 1024


class _Truncated(Exception):
    """The stream ended before its end marker; carries what was decoded so far."""

    def __init__(self, msg: str, partial: bytes) -> None:
        super().__init__(msg)
        self.partial = partial


class _Missing(Exception):
    """The optional decoder library is not installed."""


class _TooBig(Exception):
    def __init__(self, partial: bytes) -> None:
        super().__init__("too big")
        self.partial = partial


class _Sink:
    """Collects decoded output in one buffer and stops at max_size (no list-join copies)."""

    __slots__ = ("buf", "max_size")

    def __init__(self, max_size: int) -> None:
        self.buf = bytearray()
        self.max_size = max_size

    def room(self) -> int:
        return self.max_size - len(self.buf)

    def add(self, chunk: bytes) -> None:
        if chunk:
            self.buf += chunk
            if len(self.buf) > self.max_size:
                del self.buf[self.max_size:]
                raise _TooBig(bytes(self.buf))

    def truncated(self, name: str) -> _Truncated:
        return _Truncated(f"truncated {name} data", bytes(self.buf))


def parse_codings(content_encoding: str | None) -> list[str]:
    """'gzip, br' -> ['gzip', 'br'] (lower-cased; identity and empties dropped)."""
    if not content_encoding:
        return []
    out = []
    for c in content_encoding.split(","):
        c = c.strip().lower()
        if c and c != "identity":
            out.append(c)
    return out


def _zlib_stream(data: bytes, wbits: int, name: str, max_size: int, multi_member: bool) -> bytes:
    sink = _Sink(max_size)
    rest = data
    while True:
        d = zlib.decompressobj(wbits)
        buf = rest
        while True:
            sink.add(d.decompress(buf, sink.room() + 1))  # max_length: exact output bound
            buf = d.unconsumed_tail
            if d.eof or not buf:
                break
        if not d.eof:
            sink.add(d.flush())  # output still buffered inside zlib; a complete stream ends here
            if not d.eof:
                raise sink.truncated(name)
        rest = d.unused_data
        # a gzip body may be several concatenated members; other trailing bytes are ignored,
        # as browsers do
        if not (multi_member and rest.startswith(b"\x1f\x8b")):
            return bytes(sink.buf)


def _gunzip(data: bytes, max_size: int) -> bytes:
    return _zlib_stream(data, 31, "gzip", max_size, True)


def _inflate(data: bytes, max_size: int) -> bytes:
    # "deflate" is meant to be zlib-wrapped (RFC 9110) but some servers send raw deflate;
    # a zlib header is recognisable: CM=8 and the 16-bit header a multiple of 31.
    if len(data) >= 2 and data[0] & 0x0F == 8 and ((data[0] << 8) | data[1]) % 31 == 0:
        return _zlib_stream(data, 15, "deflate", max_size, False)
    return _zlib_stream(data, -15, "deflate", max_size, False)


def _brotli_module() -> Any:
    try:
        import brotli  # type: ignore[import-not-found]
    except ImportError:
        try:
            import brotlicffi as brotli  # type: ignore[import-not-found,no-redef]
        except ImportError:
            return None
    return brotli


def _unbrotli(data: bytes, max_size: int) -> bytes:
    brotli = _brotli_module()
    if brotli is None:
        raise _Missing("br decoder not installed (pip install brotli)")
    d = brotli.Decompressor()
    sink = _Sink(max_size)
    try:
        # brotli >= 1.2 can bound each call's output; older versions only get small inputs
        sink.add(d.process(b"", output_buffer_limit=_OUT_STEP))
        bounded = True
    except TypeError:
        bounded = False
    for i in range(0, len(data), _BROTLI_IN_CHUNK):
        piece = data[i:i + _BROTLI_IN_CHUNK]
        if not bounded:
            sink.add(d.process(piece))
            continue
        sink.add(d.process(piece, output_buffer_limit=_OUT_STEP))
        while not d.can_accept_more_data():  # drain with empty input, as the API requires
            sink.add(d.process(b"", output_buffer_limit=_OUT_STEP))
    if not d.is_finished():
        raise sink.truncated("br")
    return bytes(sink.buf)


def _zstd_module() -> Any:
    try:
        import zstandard  # type: ignore[import-not-found]
    except ImportError:
        return None
    return zstandard


def _unzstd(data: bytes, max_size: int) -> bytes:
    zstandard = _zstd_module()
    if zstandard is None:
        raise _Missing("zstd decoder not installed (pip install zstandard)")
    # decompressobj streams, so frames without a content size work; a body may hold several
    # frames back to back, each needing a fresh decompressor.
    dctx = zstandard.ZstdDecompressor()
    sink = _Sink(max_size)
    rest = data
    while rest:
        d = dctx.decompressobj()
        pos = 0
        view = memoryview(rest)
        while pos < len(rest) and not d.eof:
            sink.add(d.decompress(view[pos:pos + _ZSTD_IN_CHUNK]))
            pos += _ZSTD_IN_CHUNK
        if not d.eof:
            raise sink.truncated("zstd")
        rest = d.unused_data + rest[pos:]
    return bytes(sink.buf)


_DECODERS: dict[str, Callable[[bytes, int], bytes]] = {
    "gzip": _gunzip,
    "x-gzip": _gunzip,
    "deflate": _inflate,
    "br": _unbrotli,
    "zstd": _unzstd,
}


def supported_codings() -> list[str]:
    """Codings this installation can decode (for Accept-Encoding or help texts)."""
    names = ["gzip", "x-gzip", "deflate"]
    if _brotli_module() is not None:
        names.append("br")
    if _zstd_module() is not None:
        names.append("zstd")
    return names


def decode_body(
    data: bytes,
    content_encoding: str | None,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    allow_truncated: bool = False,
) -> tuple[bytes, str | None]:
    """Undo Content-Encoding. Returns (decoded, None) or (data, "reason") on failure.

    Several codings ("gzip, br") are undone last-applied first. Output larger than `max_size`
    is cut there and returned with a note. With `allow_truncated` (for bodies the capture
    itself cut short), an unfinished stream returns what it decoded plus a note instead of
    the original bytes.
    """
    codings = parse_codings(content_encoding)
    if not codings or not data:
        return data, None
    for c in codings:
        if c not in _DECODERS:
            return data, f"unsupported content-encoding: {c}"
    body = data
    note: str | None = None
    for c in reversed(codings):
        try:
            body = _DECODERS[c](body, max_size)
        except _TooBig as e:
            # later stages are still applied (to the cut data) so the caller gets plain bytes
            body, note = e.partial, f"decoded body larger than {max_size} bytes; cut at that size"
            allow_truncated = True
        except _Truncated as e:
            if not allow_truncated:
                return data, str(e)
            body, note = e.partial, note or str(e)
        except _Missing as e:
            return data, str(e)
        except Exception as e:  # zlib.error, brotli.error, ZstdError: bad data
            return data, f"cannot decode {c}: {e}"
    return body, note
