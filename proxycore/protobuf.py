"""Protocol Buffers without a schema: the wire format decoded into numbered fields, as
`protoc --decode_raw` does, for showing bodies (and, later, gRPC messages).

Each field is (number, wire type, value). A length-delimited value is shown as a nested message
when its bytes parse as one and are not plain text, as a string when they are UTF-8 text, and as
bytes otherwise. Work is bounded: nesting depth, field count and input size all have limits, and
anything that does not parse is reported, never raised.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5
WIRE_NAMES = {VARINT: "varint", I64: "fixed64", LEN: "bytes", SGROUP: "group", I32: "fixed32"}
MAX_DEPTH = 16
MAX_FIELDS = 100_000
MAX_FIELD_NUMBER = (1 << 29) - 1


class DecodeError(ValueError):
    """Not a message. `cut` when the bytes were fine up to where they ended (or the field limit
    was reached): what came before is worth showing."""

    def __init__(self, message: str, cut: bool = False) -> None:
        super().__init__(message)
        self.cut = cut


@dataclass
class Field:
    number: int
    wire: int
    value: int | bytes | str | list[Field]  # list: a nested message or a group
    raw: bytes = b""  # a length-delimited value's bytes (what a nested message was parsed from)
    children: list[Field] = field(default_factory=list)

    @property
    def is_message(self) -> bool:
        return isinstance(self.value, list)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    n = len(data)
    while True:
        if pos >= n:
            raise DecodeError("truncated varint", cut=True)
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise DecodeError("varint longer than 10 bytes")


class _Budget:
    __slots__ = ("fields",)

    def __init__(self) -> None:
        self.fields = 0


def _is_text(b: bytes) -> bool:
    """UTF-8 without control characters other than tab/newline/CR: a string, not a message."""
    try:
        s = b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c >= " " or c in "\t\n\r" for c in s)


def _parse(data: bytes, depth: int, budget: _Budget, end_group: int | None = None,
           start: int = 0, out: list[Field] | None = None) -> tuple[list[Field], int]:
    fields: list[Field] = out if out is not None else []
    pos, n = start, len(data)
    while pos < n:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0 or number > MAX_FIELD_NUMBER:
            raise DecodeError(f"invalid field number {number}")
        budget.fields += 1
        if budget.fields > MAX_FIELDS:
            raise DecodeError(f"more than {MAX_FIELDS:,} fields", cut=True)
        if wire == VARINT:
            value, pos = _varint(data, pos)
            fields.append(Field(number, wire, value))
        elif wire == I64:
            if pos + 8 > n:
                raise DecodeError("truncated fixed64", cut=True)
            fields.append(Field(number, wire, int.from_bytes(data[pos:pos + 8], "little")))
            pos += 8
        elif wire == I32:
            if pos + 4 > n:
                raise DecodeError("truncated fixed32", cut=True)
            fields.append(Field(number, wire, int.from_bytes(data[pos:pos + 4], "little")))
            pos += 4
        elif wire == LEN:
            length, pos = _varint(data, pos)
            if pos + length > n:
                raise DecodeError("length-delimited field runs past the end", cut=True)
            chunk = data[pos:pos + length]
            pos += length
            fields.append(_len_field(number, chunk, depth, budget))
        elif wire == SGROUP:
            if depth >= MAX_DEPTH:
                raise DecodeError("groups nested too deeply")
            inner, pos = _parse(data, depth + 1, budget, end_group=number, start=pos)
            fields.append(Field(number, wire, inner))
        elif wire == EGROUP:
            if end_group != number:
                raise DecodeError(f"unexpected end of group {number}")
            return fields, pos
        else:
            raise DecodeError(f"invalid wire type {wire}")
    if end_group is not None:
        raise DecodeError(f"group {end_group} not closed", cut=True)
    return fields, pos


def _len_field(number: int, chunk: bytes, depth: int, budget: _Budget) -> Field:
    if chunk and not _is_text(chunk) and depth < MAX_DEPTH:
        saved = budget.fields
        try:
            inner, _ = _parse(chunk, depth + 1, budget)
            return Field(number, LEN, inner, raw=chunk)
        except DecodeError:
            budget.fields = saved
    if _is_text(chunk):
        return Field(number, LEN, chunk.decode("utf-8"), raw=chunk)
    return Field(number, LEN, chunk, raw=chunk)


def decode(data: bytes) -> list[Field]:
    """The fields of one message. Raises DecodeError (a ValueError) when it is not one."""
    fields, _ = _parse(bytes(data), 0, _Budget())
    return fields


def decode_partial(data: bytes) -> tuple[list[Field], str | None]:
    """The fields up to where the message stops parsing (a cut body, the field limit) and why it
    stopped; DecodeError only when not even the first field parses."""
    fields: list[Field] = []
    try:
        _parse(bytes(data), 0, _Budget(), out=fields)
    except DecodeError as e:
        if not fields or not e.cut:  # bad bytes, not a cut message: not protobuf at all
            raise
        return fields, str(e)
    return fields, None


def grpc_messages(data: bytes) -> Iterator[tuple[bool, bytes]]:
    """gRPC's length-prefixed frames: (compressed, message bytes); a cut frame ends the walk."""
    pos, n = 0, len(data)
    while pos + 5 <= n:
        compressed = data[pos] == 1
        length = int.from_bytes(data[pos + 1:pos + 5], "big")
        if pos + 5 + length > n:
            return
        yield compressed, data[pos + 5:pos + 5 + length]
        pos += 5 + length


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") \
        .replace("\t", "\\t") + '"'


def _fixed(value: int, wire: int) -> str:
    if wire == I32:
        f = struct.unpack("<f", value.to_bytes(4, "little"))[0]
        signed = value - (1 << 32) if value >= 1 << 31 else value
        hexs = f"0x{value:08x}"
    else:
        f = struct.unpack("<d", value.to_bytes(8, "little"))[0]
        signed = value - (1 << 64) if value >= 1 << 63 else value
        hexs = f"0x{value:016x}"
    kind = WIRE_NAMES[wire]
    # a float only when it reads as one (not a denormal or NaN from an integer's bits)
    if math.isfinite(f) and (f == 0 or 1e-7 < abs(f) < 1e15):
        return f"{f:g}  ({kind} {hexs}, int {signed})"
    return f"{signed}  ({kind} {hexs})"


def format_lines(fields: list[Field], indent: int = 0, max_bytes: int = 64) -> Iterator[str]:
    """protoc --decode_raw style lines: `1: 150`, `2: "text"`, `3 {` ... `}`."""
    pad = "  " * indent
    for f in fields:
        if isinstance(f.value, list):
            yield f"{pad}{f.number} {{" + ("  (group)" if f.wire == SGROUP else "")
            yield from format_lines(f.value, indent + 1, max_bytes)
            yield f"{pad}}}"
        elif f.wire == VARINT:
            v = f.value
            extra = f"  (int64 {v - (1 << 64)})" if v >= 1 << 63 else ""  # a negative int32/int64
            yield f"{pad}{f.number}: {v}{extra}"
        elif f.wire in (I32, I64):
            yield f"{pad}{f.number}: {_fixed(f.value, f.wire)}"  # type: ignore[arg-type]
        elif isinstance(f.value, str):
            yield f"{pad}{f.number}: {_quote(f.value)}"
        else:
            b = f.value
            assert isinstance(b, bytes)
            shown = b[:max_bytes].hex(" ")
            more = f" … ({len(b):,} bytes)" if len(b) > max_bytes else ""
            yield f"{pad}{f.number}: <{shown}{more}>"
