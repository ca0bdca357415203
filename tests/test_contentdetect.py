"""The three-stage binary detector: Content-Type, magic bytes, byte heuristic."""

from __future__ import annotations

import pytest

from proxycore.contentdetect import CHECK_BYTES, Detection, detect, is_binary, normalize_content_type

# --- stage 1: Content-Type -------------------------------------------------------------------


@pytest.mark.parametrize(
    "ct, binary, ext",
    [
        ("image/png", True, "png"),
        ("image/jpeg", True, "jpg"),
        ("audio/mpeg", True, "mp3"),
        ("video/mp4", True, "mp4"),
        ("application/zip", True, "zip"),
        ("application/pdf", True, "pdf"),
        ("application/octet-stream", True, ""),
        ("font/woff2", True, "woff2"),
        ("application/wasm", True, "wasm"),
        ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", True, "xlsx"),
        ("text/plain", False, "txt"),
        ("text/html", False, "html"),
        ("application/json", False, "json"),
        ("application/ld+json", False, "jsonld"),
        ("application/x-www-form-urlencoded", False, ""),
        ("application/graphql", False, "graphql"),
        ("image/svg+xml", False, "svg"),
    ],
)
def test_content_type_table(ct: str, binary: bool, ext: str) -> None:
    d = detect(ct, b"whatever the body says")
    assert (d.is_binary, d.extension, d.method, d.mime_type) == (binary, ext, "content-type", ct)
    assert d.confidence == 0.9


def test_content_type_parameters_and_case_are_normalised() -> None:
    assert normalize_content_type("Text/HTML; charset=UTF-8") == "text/html"
    d = detect("  Application/JSON ; charset=utf-8", b"\x00\x01\x02")
    assert d == Detection(False, "application/json", "json", "content-type", 0.9)
    assert detect("IMAGE/PNG;q=1", b"plain text").is_binary


@pytest.mark.parametrize(
    "ct, binary, confidence",
    [
        ("text/x-unknown", False, 0.8),
        ("audio/x-weird", True, 0.8),
        ("video/x-new", True, 0.8),
        ("image/x-exotic", True, 0.8),
        ("application/vnd.api+json", False, 0.85),
        ("application/atom+xml", False, 0.85),
        ("application/problem+json; charset=utf-8", False, 0.85),
    ],
)
def test_content_type_prefix_and_suffix_rules(ct: str, binary: bool, confidence: float) -> None:
    d = detect(ct, b"\x00" * 20)
    assert (d.is_binary, d.method, d.confidence) == (binary, "content-type", confidence)


def test_svg_is_text_despite_image_prefix() -> None:
    assert not is_binary("image/svg+xml", b"<svg/>")


def test_unknown_content_type_falls_through() -> None:
    d = detect("application/x-something", b"\x89PNG\r\n\x1a\n" + b"\x00" * 10)
    assert (d.method, d.mime_type) == ("magic", "image/png")
    d = detect("application/x-something", b"hello world")
    assert (d.method, d.is_binary) == ("heuristic", False)


# --- stage 2: magic bytes --------------------------------------------------------------------

BINARY_SAMPLES = {
    "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF",
    "gif": b"GIF89a\x01\x00\x01\x00",
    "webp": b"RIFF\x24\x00\x00\x00WEBPVP8 ",
    "mp3": b"ID3\x03\x00\x00\x00",
    "ogg": b"OggS\x00\x02",
    "flac": b"fLaC\x00\x00\x00\x22",
    "mp4": b"\x00\x00\x00\x18ftypmp42",
    "m4a": b"\x00\x00\x00\x20ftypM4A ",
    "webm": b"\x1a\x45\xdf\xa3\x9f\x42\x86",
    "zip": b"PK\x03\x04\x14\x00",
    "gz": b"\x1f\x8b\x08\x00\x00\x00",
    "bz2": b"BZh91AY&SY",
    "xz": b"\xfd7zXZ\x00\x00",
    "7z": b"7z\xbc\xaf\x27\x1c\x00\x04",
    "rar": b"Rar!\x1a\x07\x01\x00",
    "pdf": b"%PDF-1.7\n%\xe2\xe3",
    "doc": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
    "exe": b"MZ\x90\x00\x03\x00",
    "woff2": b"wOF2\x00\x01\x00\x00",
    "otf": b"OTTO\x00\x0a",
    "wasm": b"\x00asm\x01\x00\x00\x00",
    "swf": b"CWS\x0a",
    "sqlite": b"SQLite format 3\x00\x10\x00",
}


@pytest.mark.parametrize("ext", sorted(BINARY_SAMPLES))
def test_magic_binary_formats(ext: str) -> None:
    d = detect(None, BINARY_SAMPLES[ext])
    assert (d.is_binary, d.method, d.extension, d.confidence) == (True, "magic", ext, 0.95)


def test_magic_elf_and_macho_have_no_extension() -> None:
    assert detect(None, b"\x7fELF\x02\x01\x01").mime_type == "application/x-elf"
    assert detect(None, b"\xcf\xfa\xed\xfe\x07").mime_type == "application/x-mach-binary"


def test_magic_tar_at_offset_257() -> None:
    data = b"file.txt" + b"\x00" * 249 + b"ustar\x0000" + b"\x00" * 100
    d = detect(None, data)
    assert (d.mime_type, d.method) == ("application/x-tar", "magic")


def test_magic_table_order_quirks_are_kept() -> None:
    # the first matching entry wins: every RIFF container reports webp, any "BM" is a bitmap
    assert detect(None, b"RIFF\x00\x00\x00\x00WAVEfmt ").extension == "webp"
    assert detect(None, b"BM plain looking text").extension == "bmp"


@pytest.mark.parametrize(
    "data, mime, ext",
    [
        (b'<?xml version="1.0"?><a/>', "application/xml", "xml"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"/>', "image/svg+xml", "svg"),
        (b"<!DOCTYPE html><html></html>", "text/html", "html"),
        (b"<!doctype html>", "text/html", "html"),
        (b"<HTML><BODY>", "text/html", "html"),
        (b"#!/bin/sh\necho hi\n", "application/x-sh", "sh"),
        (b"#!/usr/bin/env python3\n", "application/x-sh", "sh"),
        (b"%!PS-Adobe-3.0", "application/postscript", "ps"),
        (b"{\\rtf1\\ansi", "application/rtf", "rtf"),
    ],
)
def test_magic_text_formats(data: bytes, mime: str, ext: str) -> None:
    d = detect(None, data)
    assert (d.is_binary, d.method, d.mime_type, d.extension, d.confidence) == (False, "magic", mime, ext, 0.90)


# --- stage 3: heuristic ----------------------------------------------------------------------


def test_empty_is_text() -> None:
    d = detect(None, b"")
    assert (d.is_binary, d.method, d.confidence) == (False, "heuristic", 0.5)
    assert not is_binary(None, b"")


@pytest.mark.parametrize(
    "data",
    [
        "こんにちは、世界。日本語のテキストです。".encode(),
        ("中文文本" * 300).encode(),  # > 512 bytes: the cut splits a character, still text
        "Grüße aus Köln, ça va? Ελληνικά".encode(),
        b"   \n\t\r\n   ",
        b"plain ascii words and numbers 12345",
        b"line1\r\nline2\r\n",
    ],
)
def test_heuristic_text(data: bytes) -> None:
    d = detect(None, data)
    assert (d.is_binary, d.method) == (False, "heuristic")


def test_cjk_over_threshold_reports_utf8_text() -> None:
    d = detect(None, ("漢字" * 200).encode())
    assert (d.mime_type, d.confidence) == ("text/plain", 0.70)


def test_null_bytes_over_one_percent_are_binary() -> None:
    data = b"a" * 97 + b"\x00" * 3
    d = detect(None, data)
    assert (d.is_binary, d.confidence) == (True, 0.85)
    # exactly 1% is allowed through
    assert not detect(None, b"a" * 99 + b"\x00").is_binary


def test_control_bytes_over_five_percent_are_binary() -> None:
    assert detect(None, b"a" * 90 + b"\x01\x02\x03\x1b\x7f\x10").is_binary
    assert detect(None, b"a" * 90 + b"\x01\x02\x03\x1b\x7f\x10").confidence == 0.80
    assert not detect(None, b"a" * 95 + b"\x1b" * 5).is_binary  # exactly 5%


def test_high_bytes_not_utf8_are_binary() -> None:
    d = detect(None, bytes(range(0x80, 0x100)) * 2)
    assert (d.is_binary, d.confidence) == (True, 0.75)
    # C0/C1 overlong leads and bytes above F4 are not UTF-8
    assert detect(None, b"\xc0\x80" * 50).is_binary
    assert detect(None, b"\xf5\x80\x80\x80" * 30).is_binary


def test_json_like_text() -> None:
    d = detect(None, b'  \n{"a": [1, 2, {"b": "}"}]}\n')
    assert (d.is_binary, d.mime_type, d.extension) == (False, "application/json", "json")
    # truncated JSON (unclosed) still counts as JSON-like
    assert detect(None, b'[{"id": 1}, {"id": 2').mime_type == "application/json"
    # trailing garbage after the closing bracket: not JSON, but printable text
    d = detect(None, b'{"a": 1} trailing')
    assert (d.is_binary, d.mime_type) == (False, "text/plain")


def test_mostly_unprintable_is_binary() -> None:
    # 20% high bytes (under the 30% threshold), not UTF-8: only 80% printable -> binary
    data = (b"abcd" + b"\xff") * 50
    d = detect(None, data)
    assert (d.is_binary, d.confidence) == (True, 0.5)


def test_only_first_512_bytes_are_examined() -> None:
    data = b"a" * CHECK_BYTES + b"\x00" * 10_000
    assert not detect(None, data).is_binary


# --- precedence and options ------------------------------------------------------------------


def test_content_type_beats_magic_and_heuristic() -> None:
    png = BINARY_SAMPLES["png"]
    assert not detect("text/plain", png).is_binary
    assert detect("image/png", b"just text").is_binary
    assert detect("application/octet-stream", b'{"json": true}').is_binary


def test_magic_beats_heuristic() -> None:
    # "%PDF-" followed by printable text would be text to the heuristic
    assert detect(None, b"%PDF-1.4 all printable ascii here").is_binary


def test_trust_content_type_false_skips_stage_one() -> None:
    png = BINARY_SAMPLES["png"]
    d = detect("text/plain", png, trust_content_type=False)
    assert (d.is_binary, d.method) == (True, "magic")
    d = detect("image/png", b"hello", trust_content_type=False)
    assert (d.is_binary, d.method) == (False, "heuristic")


def test_none_and_blank_content_type() -> None:
    assert detect(None, b"hi").method == "heuristic"
    assert detect("", b"hi").method == "heuristic"
    assert detect(" ; charset=utf-8", b"hi").method == "heuristic"


def test_is_binary_matches_detect() -> None:
    for data in [*BINARY_SAMPLES.values(), b"text", b"", "日本".encode()]:
        assert is_binary(None, data) == detect(None, data).is_binary


def test_accepts_bytearray_and_memoryview() -> None:
    assert detect(None, bytearray(BINARY_SAMPLES["png"])).extension == "png"
    assert detect(None, memoryview(BINARY_SAMPLES["gz"])).extension == "gz"


def test_long_utf8_cut_mid_character_stays_text_for_any_buffer_type() -> None:
    data = ("€" * 400).encode()  # 3-byte characters: byte 512 falls inside one
    assert len(data) > CHECK_BYTES and CHECK_BYTES % 3
    for buf in (data, bytearray(data), memoryview(data)):
        assert not detect(None, buf).is_binary
