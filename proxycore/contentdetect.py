"""Binary-or-text detection for captured bodies, in three stages.

1. the Content-Type header (parameters dropped, lower-cased) against known tables;
2. magic bytes (file signatures) at the start of the data;
3. a byte heuristic over the first 512 bytes.

The first stage that decides wins. This mirrors the original OmniProxy detector (tables, order
and thresholds) so captures classify bodies the same way. Everything is precomputed at import
and no stage looks past the first 512 bytes, because this runs for every captured body.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from functools import lru_cache

CHECK_BYTES = 512
HIGH_BIT_THRESHOLD = 0.30

CONTENT_TYPE = "content-type"
MAGIC = "magic"
HEURISTIC = "heuristic"


@dataclass(frozen=True, slots=True)
class Detection:
    is_binary: bool
    mime_type: str
    extension: str
    method: str  # "content-type" | "magic" | "heuristic"
    confidence: float

    @property
    def is_text(self) -> bool:
        return not self.is_binary


# --- stage 1: Content-Type -------------------------------------------------------------------

_BINARY_TYPES: dict[str, str] = {
    # images
    "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp",
    "image/bmp": "bmp", "image/tiff": "tiff", "image/x-icon": "ico", "image/avif": "avif",
    "image/heic": "heic", "image/heif": "heif",
    # audio
    "audio/mpeg": "mp3", "audio/wav": "wav", "audio/ogg": "ogg", "audio/webm": "webm",
    "audio/flac": "flac", "audio/aac": "aac", "audio/mp4": "m4a",
    # video
    "video/mp4": "mp4", "video/webm": "webm", "video/ogg": "ogv", "video/quicktime": "mov",
    "video/x-msvideo": "avi", "video/x-matroska": "mkv",
    # archives
    "application/zip": "zip", "application/gzip": "gz", "application/x-tar": "tar",
    "application/x-rar-compressed": "rar", "application/x-7z-compressed": "7z",
    "application/x-bzip2": "bz2", "application/x-xz": "xz",
    # documents
    "application/pdf": "pdf", "application/msword": "doc", "application/vnd.ms-excel": "xls",
    "application/vnd.ms-powerpoint": "ppt",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    # executables
    "application/octet-stream": "", "application/x-executable": "exe",
    "application/x-mach-binary": "", "application/x-elf": "", "application/x-dosexec": "exe",
    # fonts
    "font/woff": "woff", "font/woff2": "woff2", "font/ttf": "ttf", "font/otf": "otf",
    "application/font-woff": "woff", "application/font-woff2": "woff2",
    # other
    "application/x-shockwave-flash": "swf", "application/wasm": "wasm",
}

_TEXT_TYPES: dict[str, str] = {
    "text/plain": "txt", "text/html": "html", "text/css": "css", "text/javascript": "js",
    "text/xml": "xml", "text/csv": "csv", "text/markdown": "md", "text/calendar": "ics",
    "application/json": "json", "application/xml": "xml", "application/javascript": "js",
    "application/x-javascript": "js", "application/ecmascript": "js",
    "application/ld+json": "jsonld", "application/x-yaml": "yaml", "application/yaml": "yaml",
    "application/x-www-form-urlencoded": "", "application/graphql": "graphql",
    "image/svg+xml": "svg",
}

# One shared, immutable Detection per table entry: look-ups allocate nothing.
_CT_TABLE: dict[str, Detection] = {
    **{ct: Detection(True, ct, ext, CONTENT_TYPE, 0.9) for ct, ext in _BINARY_TYPES.items()},
    **{ct: Detection(False, ct, ext, CONTENT_TYPE, 0.9) for ct, ext in _TEXT_TYPES.items()},
}


def normalize_content_type(content_type: str | None) -> str:
    """'Text/HTML; charset=utf-8' -> 'text/html'."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


@lru_cache(maxsize=512)
def _by_content_type(ct: str) -> Detection | None:
    """Stage 1 on a normalised type; cached because real traffic uses a handful of types."""
    hit = _CT_TABLE.get(ct)
    if hit is not None:
        return hit
    if ct.startswith("text/"):
        return Detection(False, ct, "", CONTENT_TYPE, 0.8)
    if ct.startswith(("audio/", "video/", "image/")):  # image/svg+xml is in the text table
        return Detection(True, ct, "", CONTENT_TYPE, 0.8)
    if ct.endswith(("+json", "+xml")):
        return Detection(False, ct, "", CONTENT_TYPE, 0.85)
    return None


# --- stage 2: magic bytes --------------------------------------------------------------------

# (signature, offset, mime, extension) in the original's table order; the first match wins, so
# e.g. every RIFF container reports "image/webp" and ftyp size 0x14 reports mp4, not quicktime.
_BINARY_MAGIC: list[tuple[bytes, int, str, str]] = [
    (b"\x89PNG\r\n\x1a\n", 0, "image/png", "png"),
    (b"\xff\xd8\xff", 0, "image/jpeg", "jpg"),
    (b"GIF87a", 0, "image/gif", "gif"),
    (b"GIF89a", 0, "image/gif", "gif"),
    (b"RIFF", 0, "image/webp", "webp"),
    (b"BM", 0, "image/bmp", "bmp"),
    (b"II*\x00", 0, "image/tiff", "tiff"),
    (b"MM\x00*", 0, "image/tiff", "tiff"),
    (b"\x00\x00\x01\x00", 0, "image/x-icon", "ico"),
    (b"\x00\x00\x02\x00", 0, "image/x-icon", "cur"),
    (b"ID3", 0, "audio/mpeg", "mp3"),
    (b"\xff\xfb", 0, "audio/mpeg", "mp3"),
    (b"\xff\xfa", 0, "audio/mpeg", "mp3"),
    (b"\xff\xf3", 0, "audio/mpeg", "mp3"),
    (b"\xff\xf2", 0, "audio/mpeg", "mp3"),
    (b"OggS", 0, "audio/ogg", "ogg"),
    (b"fLaC", 0, "audio/flac", "flac"),
    (b"\x00\x00\x00\x20ftyp", 0, "audio/mp4", "m4a"),
    (b"\x00\x00\x00\x1cftyp", 0, "video/mp4", "mp4"),
    (b"\x00\x00\x00\x18ftyp", 0, "video/mp4", "mp4"),
    (b"\x00\x00\x00\x14ftyp", 0, "video/mp4", "mp4"),
    (b"\x1a\x45\xdf\xa3", 0, "video/webm", "webm"),
    (b"FLV\x01", 0, "video/x-flv", "flv"),
    (b"PK\x03\x04", 0, "application/zip", "zip"),
    (b"PK\x05\x06", 0, "application/zip", "zip"),
    (b"PK\x07\x08", 0, "application/zip", "zip"),
    (b"\x1f\x8b\x08", 0, "application/gzip", "gz"),
    (b"BZh", 0, "application/x-bzip2", "bz2"),
    (b"\xfd7zXZ\x00", 0, "application/x-xz", "xz"),
    (b"7z\xbc\xaf\x27\x1c", 0, "application/x-7z-compressed", "7z"),
    (b"Rar!\x1a\x07\x00", 0, "application/x-rar-compressed", "rar"),
    (b"Rar!\x1a\x07\x01\x00", 0, "application/x-rar-compressed", "rar"),
    (b"ustar", 257, "application/x-tar", "tar"),
    (b"%PDF-", 0, "application/pdf", "pdf"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 0, "application/msword", "doc"),
    (b"MZ", 0, "application/x-dosexec", "exe"),
    (b"\x7fELF", 0, "application/x-elf", ""),
    (b"\xcf\xfa\xed\xfe", 0, "application/x-mach-binary", ""),
    (b"\xce\xfa\xed\xfe", 0, "application/x-mach-binary", ""),
    (b"\xca\xfe\xba\xbe", 0, "application/x-mach-binary", ""),
    (b"\xfe\xed\xfa\xcf", 0, "application/x-mach-binary", ""),
    (b"\xfe\xed\xfa\xce", 0, "application/x-mach-binary", ""),
    (b"wOFF", 0, "font/woff", "woff"),
    (b"wOF2", 0, "font/woff2", "woff2"),
    (b"\x00\x01\x00\x00", 0, "font/ttf", "ttf"),
    (b"OTTO", 0, "font/otf", "otf"),
    (b"\x00asm", 0, "application/wasm", "wasm"),
    (b"FWS", 0, "application/x-shockwave-flash", "swf"),
    (b"CWS", 0, "application/x-shockwave-flash", "swf"),
    (b"SQLite format 3\x00", 0, "application/x-sqlite3", "sqlite"),
]

# Text formats with a signature: checked only after every binary signature failed.
_TEXT_MAGIC: list[tuple[bytes, str, str]] = [
    (b"<?xml", "application/xml", "xml"),
    (b"<svg", "image/svg+xml", "svg"),
    (b"<!DOCTYPE svg", "image/svg+xml", "svg"),
    (b"<!DOCTYPE html", "text/html", "html"),
    (b"<!doctype html", "text/html", "html"),
    (b"<html", "text/html", "html"),
    (b"<HTML", "text/html", "html"),
    (b"<!DOCTYPE HTML", "text/html", "html"),
    (b"#!/bin/bash", "application/x-sh", "sh"),
    (b"#!/bin/sh", "application/x-sh", "sh"),
    (b"#!/usr/bin/env", "application/x-sh", "sh"),
    (b"%!PS", "application/postscript", "ps"),
    (b"{\\rtf", "application/rtf", "rtf"),
    (b"-----BEGIN ", "application/x-pem-file", "pem"),  # certificates and keys (PEM is text)
]


def _bucket(entries: list[tuple[bytes, Detection, int]]) -> dict[int, tuple[tuple[bytes, Detection, int], ...]]:
    """Bucket offset-0 signatures by first byte (order kept) so a lookup tries 0-6, not ~50."""
    buckets: dict[int, list[tuple[bytes, Detection, int]]] = {}
    for entry in entries:
        buckets.setdefault(entry[0][0], []).append(entry)
    return {k: tuple(v) for k, v in buckets.items()}


_TAR_SIG = b"ustar"
_TAR_OFFSET = 257
_TAR_DET = Detection(True, "application/x-tar", "tar", MAGIC, 0.95)
# The one signature not at offset 0; it keeps its place in the table order through its rank.
_TAR_RANK = next(i for i, s in enumerate(_BINARY_MAGIC) if s[1] == _TAR_OFFSET)
_BIN_BY_BYTE = _bucket(
    [(sig, Detection(True, mime, ext, MAGIC, 0.95), rank)
     for rank, (sig, off, mime, ext) in enumerate(_BINARY_MAGIC) if off == 0]
)
_TEXT_BY_BYTE = _bucket(
    [(sig, Detection(False, mime, ext, MAGIC, 0.90), rank) for rank, (sig, mime, ext) in enumerate(_TEXT_MAGIC)]
)


def _by_magic(data: bytes) -> Detection | None:
    first = data[0]
    for sig, det, rank in _BIN_BY_BYTE.get(first, ()):
        if data.startswith(sig):
            if rank > _TAR_RANK and data.startswith(_TAR_SIG, _TAR_OFFSET):
                return _TAR_DET
            return det
    if data.startswith(_TAR_SIG, _TAR_OFFSET):
        return _TAR_DET
    for sig, det, _rank in _TEXT_BY_BYTE.get(first, ()):
        if data.startswith(sig):
            return det
    return None


# --- stage 3: heuristic ----------------------------------------------------------------------

_CONTROL = bytes([*range(0x01, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])  # NUL counted apart
_NOT_HIGH = bytes(range(0x80))

_H_EMPTY = Detection(False, "", "", HEURISTIC, 0.5)
_H_NULLS = Detection(True, "application/octet-stream", "", HEURISTIC, 0.85)
_H_CONTROL = Detection(True, "application/octet-stream", "", HEURISTIC, 0.80)
_H_UTF8 = Detection(False, "text/plain", "", HEURISTIC, 0.70)
_H_HIGH = Detection(True, "application/octet-stream", "", HEURISTIC, 0.75)
_H_JSON = Detection(False, "application/json", "json", HEURISTIC, 0.75)
_H_PRINTABLE = Detection(False, "text/plain", "txt", HEURISTIC, 0.70)
_H_UNSURE = Detection(True, "application/octet-stream", "", HEURISTIC, 0.5)

_JSON_WS = b" \t\n\r"


def _valid_utf8(sample: bytes, cut: bool) -> bool:
    """Strict UTF-8 check. When the sample was cut at CHECK_BYTES, a multi-byte character split
    by the cut is not an error (otherwise every long CJK text would look binary)."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=not cut)
    except UnicodeDecodeError:
        return False
    return True


def _looks_like_json(sample: bytes) -> bool:
    """Leading whitespace, then '{' or '['; brackets of that kind balanced outside strings.

    Unclosed structures still count (a truncated body is still JSON-like); text after the
    closing bracket other than whitespace does not.
    """
    s = sample.lstrip(_JSON_WS)
    if not s or s[0] not in b"{[":
        return False
    opening = s[0]
    closing = 0x7D if opening == 0x7B else 0x5D  # } or ]
    depth = 1
    in_string = False
    escaped = False
    for i in range(1, len(s)):
        b = s[i]
        if escaped:
            escaped = False
        elif in_string:
            if b == 0x5C:  # backslash
                escaped = True
            elif b == 0x22:
                in_string = False
        elif b == 0x22:
            in_string = True
        elif b == opening:
            depth += 1
        elif b == closing:
            depth -= 1
            if depth == 0:
                return not s[i + 1:].strip(_JSON_WS)
    return depth < 100


def _by_heuristic(data: bytes) -> Detection:
    if not data:
        return _H_EMPTY
    sample = data[:CHECK_BYTES]
    total = len(sample)
    nulls = sample.count(0)
    if nulls and nulls / total > 0.01:
        return _H_NULLS
    control = total - len(sample.translate(None, _CONTROL))
    if control / total > 0.05:
        return _H_CONTROL
    high = len(sample.translate(None, _NOT_HIGH))
    if high / total > HIGH_BIT_THRESHOLD:
        return _H_UTF8 if _valid_utf8(sample, len(data) > CHECK_BYTES) else _H_HIGH
    if _looks_like_json(sample):
        return _H_JSON
    printable = total - nulls - control - high  # tab, LF, CR and 0x20-0x7E
    if printable / total > 0.85:
        return _H_PRINTABLE
    return _H_UNSURE


# --- API -------------------------------------------------------------------------------------


def detect(content_type: str | None, data: bytes, trust_content_type: bool = True) -> Detection:
    """Classify a body. `content_type` is the raw header value (or None)."""
    if trust_content_type and content_type:
        ct = normalize_content_type(content_type)
        if ct:
            hit = _by_content_type(ct)
            if hit is not None:
                return hit
    if data:
        if not isinstance(data, bytes | bytearray):
            # one byte past the window keeps "was the sample cut?" for the UTF-8 check
            data = bytes(data[:CHECK_BYTES + 1])
        hit = _by_magic(data)
        if hit is not None:
            return hit
    return _by_heuristic(data)


def is_binary(content_type: str | None, data: bytes) -> bool:
    """Fast path: just the verdict."""
    return detect(content_type, data).is_binary


def binary_by_content_type(content_type: str | None) -> bool:
    """True when the Content-Type alone says binary (stage 1 only; no body needed)."""
    if not content_type:
        return False
    det = _by_content_type(normalize_content_type(content_type))
    return det is not None and det.is_binary
