"""Content-Encoding decoding for capture: round trips, stacking, truncation, bombs, bad input."""

from __future__ import annotations

import gzip
import json
import os
import sys
import zlib

import brotli
import pytest
import zstandard

from proxycore.encoding import DEFAULT_MAX_SIZE, decode_body, parse_codings, supported_codings

DATA = json.dumps([{"id": i, "token": os.urandom(6).hex(), "name": f"user {i}"} for i in range(5000)]).encode()


def _raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)
    return c.compress(data) + c.flush()


def _zstd_streamed(data: bytes) -> bytes:
    """A frame without a content size, as a streaming server writes it."""
    c = zstandard.ZstdCompressor().compressobj()
    return c.compress(data) + c.flush()


def _br(data: bytes) -> bytes:
    return brotli.compress(data, quality=5)  # the default (11) is slow for no benefit here


ENCODERS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": _br,
    "zstd": zstandard.ZstdCompressor().compress,
}


@pytest.mark.parametrize("coding", sorted(ENCODERS))
def test_round_trip(coding: str) -> None:
    encoded = ENCODERS[coding](DATA)
    assert encoded != DATA
    assert decode_body(encoded, coding) == (DATA, None)


def test_coding_names_are_case_and_space_insensitive() -> None:
    assert decode_body(gzip.compress(DATA), "  GZip ") == (DATA, None)
    assert parse_codings("gzip, identity, BR") == ["gzip", "br"]
    assert parse_codings(None) == [] and parse_codings("") == []


def test_raw_deflate_without_zlib_header() -> None:
    assert decode_body(_raw_deflate(DATA), "deflate") == (DATA, None)


def test_zstd_frame_without_content_size() -> None:
    blob = _zstd_streamed(DATA)
    assert zstandard.get_frame_parameters(blob).content_size == zstandard.CONTENTSIZE_UNKNOWN
    assert decode_body(blob, "zstd") == (DATA, None)


def test_multiple_gzip_members_and_zstd_frames() -> None:
    assert decode_body(gzip.compress(b"hello ") + gzip.compress(b"world"), "gzip") == (b"hello world", None)
    z = zstandard.ZstdCompressor()
    assert decode_body(z.compress(b"hello ") + z.compress(b"world"), "zstd") == (b"hello world", None)


def test_stacked_codings_undone_in_reverse_order() -> None:
    blob = _br(gzip.compress(DATA))  # gzip applied first, then br
    assert decode_body(blob, "gzip, br") == (DATA, None)
    blob = gzip.compress(zstandard.ZstdCompressor().compress(DATA))
    assert decode_body(blob, "zstd,gzip") == (DATA, None)
    # the wrong order cannot decode and leaves the data alone
    out, err = decode_body(_br(gzip.compress(DATA)), "br, gzip")
    assert out == _br(gzip.compress(DATA)) and err and err.startswith("cannot decode gzip")


def test_identity_and_no_coding_return_data_unchanged() -> None:
    assert decode_body(b"abc", None) == (b"abc", None)
    assert decode_body(b"abc", "identity") == (b"abc", None)
    assert decode_body(b"", "gzip") == (b"", None)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_truncated_returns_original_with_error(coding: str) -> None:
    encoded = ENCODERS[coding](DATA)
    cut = encoded[: len(encoded) // 2]
    out, err = decode_body(cut, coding)
    assert out is cut
    assert err == f"truncated {coding} data"


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_truncated_allowed_returns_decoded_prefix(coding: str) -> None:
    encoded = ENCODERS[coding](DATA)
    out, err = decode_body(encoded[: len(encoded) // 2], coding, allow_truncated=True)
    assert err == f"truncated {coding} data"
    assert len(out) > 1000 and DATA.startswith(out)


def test_truncated_stacked_prefix_is_fully_decoded() -> None:
    blob = _br(gzip.compress(DATA))
    out, err = decode_body(blob[: len(blob) * 2 // 3], "gzip, br", allow_truncated=True)
    assert err is not None and "truncated" in err
    assert out and DATA.startswith(out)


@pytest.mark.parametrize("coding", ["gzip", "x-gzip", "deflate", "br", "zstd"])
def test_garbage_is_reported_not_raised(coding: str) -> None:
    junk = b"this is definitely not compressed at all" * 3
    out, err = decode_body(junk, coding)
    assert out is junk
    assert err is not None and err.startswith("cannot decode") or err == f"truncated {coding} data"


def test_unknown_coding() -> None:
    out, err = decode_body(b"xyz", "compress")
    assert (out, err) == (b"xyz", "unsupported content-encoding: compress")
    out, err = decode_body(gzip.compress(b"x"), "gzip, snappy")
    assert err == "unsupported content-encoding: snappy"


def _bomb(coding: str, size: int) -> bytes:
    chunk = b"\x00" * (1 << 20)
    n = size >> 20
    if coding == "gzip":
        c = zlib.compressobj(9, zlib.DEFLATED, 31)
        return b"".join(c.compress(chunk) for _ in range(n)) + c.flush()
    if coding == "br":
        c = brotli.Compressor(quality=5)
        return b"".join(c.process(chunk) for _ in range(n)) + c.finish()
    c = zstandard.ZstdCompressor(level=3).compressobj()
    return b"".join(c.compress(chunk) for _ in range(n)) + c.flush()


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_bomb_is_capped(coding: str) -> None:
    bomb = _bomb(coding, 64 << 20)  # 64 MiB of zeros in a few KiB
    assert len(bomb) < 200_000
    out, err = decode_body(bomb, coding, max_size=1 << 20)
    assert len(out) == 1 << 20 and out == b"\x00" * (1 << 20)
    assert err == f"decoded body larger than {1 << 20} bytes; cut at that size"


def test_default_cap_is_64_mib() -> None:
    assert DEFAULT_MAX_SIZE == 64 * 1024 * 1024
    out, err = decode_body(_bomb("zstd", 80 << 20), "zstd")
    assert len(out) == DEFAULT_MAX_SIZE and err is not None


def test_exact_cap_is_not_an_error() -> None:
    assert decode_body(gzip.compress(b"a" * 1000), "gzip", max_size=1000) == (b"a" * 1000, None)
    out, err = decode_body(gzip.compress(b"a" * 1001), "gzip", max_size=1000)
    assert len(out) == 1000 and err is not None


def test_missing_optional_decoders(monkeypatch: pytest.MonkeyPatch) -> None:
    # simulate an install without brotli/zstandard (None in sys.modules makes import fail)
    for mod in ("brotli", "brotlicffi", "zstandard"):
        monkeypatch.setitem(sys.modules, mod, None)
    out, err = decode_body(b"\x0b\x02\x80abc\x03", "br")
    assert out == b"\x0b\x02\x80abc\x03" and err == "br decoder not installed (pip install brotli)"
    out, err = decode_body(b"\x28\xb5\x2f\xfd", "zstd")
    assert err == "zstd decoder not installed (pip install zstandard)"
    assert supported_codings() == ["gzip", "x-gzip", "deflate"]
    assert decode_body(gzip.compress(b"ok"), "gzip") == (b"ok", None)


def test_supported_codings_with_everything_installed() -> None:
    assert supported_codings() == ["gzip", "x-gzip", "deflate", "br", "zstd"]


class _OldBrotli:
    """brotli < 1.2: process() has no output_buffer_limit; only small inputs bound the output."""

    error = brotli.error

    class Decompressor:
        def __init__(self) -> None:
            self._d = brotli.Decompressor()

        def process(self, data: bytes) -> bytes:
            return self._d.process(data)

        def is_finished(self) -> bool:
            return self._d.is_finished()


def test_brotli_without_output_limit_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "brotli", _OldBrotli)
    assert decode_body(_br(DATA), "br") == (DATA, None)
    out, err = decode_body(_bomb("br", 8 << 20), "br", max_size=1 << 20)
    assert len(out) == 1 << 20 and err is not None
    enc = _br(DATA)
    assert decode_body(enc[:100], "br")[1] == "truncated br data"
