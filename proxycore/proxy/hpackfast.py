"""Cheaper HPACK for the h2 connections of the proxy (the pure-Python `hpack` is most of the cost
of a small h2 request: four header blocks per request).

- `PlainEncoder` never adds to the dynamic table (RFC 7541 allows an encoder never to index): a
  field is the static-table index when the static table has the pair, else a literal without
  indexing (with the static name index where there is one), never Huffman-coded. With no table
  state, a field's bytes depend on the field alone, so they are memoised: a header block is a few
  dict lookups and one join.
- `MemoDecoder` is hpack's decoder with a memo of the blocks that left its dynamic table as it
  was (indexed fields and literals without indexing): such a block decodes to the same list for
  as long as the table does not change, and clients like nghttp2 send the same fully indexed
  block for every request after the first. Any change of the table empties the memo.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hpack import Decoder
from hpack.struct import HeaderTuple, NeverIndexedHeaderTuple
from hpack.table import HeaderTable

_STATIC_PAIR: dict[tuple[bytes, bytes], int] = {}
_STATIC_NAME: dict[bytes, int] = {}
for _i, (_n, _v) in enumerate(HeaderTable.STATIC_TABLE, 1):
    _STATIC_PAIR.setdefault((_n, _v), _i)
    _STATIC_NAME.setdefault(_n, _i)

_MEMO_MAX = 8192  # encoded fields kept (shared by all connections: they carry no state)
_memo: dict[tuple[bytes, bytes], bytes] = {}


def _int(value: int, prefix_bits: int, first: int) -> bytearray:
    """An HPACK integer (RFC 7541 5.1) with the pattern bits `first` in its first byte."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytearray((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return out


def _string(s: bytes) -> bytes:
    return bytes(_int(len(s), 7, 0)) + s


def encode_field(name: bytes, value: bytes, sensitive: bool = False) -> bytes:
    """One field: static index, or literal without indexing / never indexed (RFC 7541 6.1, 6.2.2/3)."""
    if not sensitive:
        i = _STATIC_PAIR.get((name, value))
        if i is not None:
            return bytes(_int(i, 7, 0x80))
    pattern = 0x10 if sensitive else 0x00
    i = _STATIC_NAME.get(name)
    if i is not None:
        return bytes(_int(i, 4, pattern)) + _string(value)
    return bytes((pattern,)) + _string(name) + _string(value)


class PlainEncoder:
    """Stands in for `hpack.Encoder` as `H2Connection.encoder` (h2 calls `encode(headers)` and sets
    `header_table_size` when the peer's SETTINGS_HEADER_TABLE_SIZE changes)."""

    def __init__(self) -> None:
        self._max = 4096
        self._announce = False

    @property
    def header_table_size(self) -> int:
        return self._max

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        # The peer's limit changed: a decoder such as nghttp2 wants a size update at the start of
        # the next block when it shrank. Size 0 is within any limit and true: nothing is ever indexed.
        self._max = value
        self._announce = True

    def encode(self, headers: Iterable[Any], huffman: bool = False) -> bytes:
        memo = _memo
        parts = [b"\x20"] if self._announce else []
        self._announce = False
        for h in headers:
            if type(h) is NeverIndexedHeaderTuple or (len(h) > 2 and h[2]):
                parts.append(encode_field(_b(h[0]), _b(h[1]), True))
                continue
            key = (h[0], h[1])
            b = memo.get(key)
            if b is None:
                if type(key[0]) is not bytes or type(key[1]) is not bytes:
                    key = (_b(key[0]), _b(key[1]))
                b = encode_field(key[0], key[1])
                if len(memo) >= _MEMO_MAX:
                    memo.clear()
                memo[key] = b
            parts.append(b)
        return b"".join(parts)


def _b(s: bytes | str | Any) -> bytes:
    return s if isinstance(s, bytes) else str(s).encode("utf-8")


class MemoDecoder(Decoder):
    """hpack's Decoder, with the blocks that did not touch the dynamic table memoised."""

    MEMO_MAX = 256  # blocks per connection

    def __init__(self, max_header_list_size: int) -> None:
        super().__init__(max_header_list_size=max_header_list_size)
        self._memo: dict[tuple[bytes, bool], list[HeaderTuple]] = {}
        self._limits: tuple[int, int] = (0, 0)

    def decode(self, data: bytes, raw: bool = False) -> list[HeaderTuple]:  # type: ignore[override]
        memo = self._memo
        limits = (self.max_header_list_size, self.max_allowed_table_size)
        if limits != self._limits:  # what a block was checked against changed: check again
            memo.clear()
            self._limits = limits
        key = (bytes(data), raw)
        hit = memo.get(key)
        if hit is not None:
            return list(hit)
        table = self.header_table
        entries = table.dynamic_entries
        before = (entries[0] if entries else None, len(entries), table._current_size, table.maxsize)
        headers = list(super().decode(data, raw))
        if (entries[0] if entries else None) is before[0] and (len(entries), table._current_size,
                                                             table.maxsize) == before[1:]:
            if len(memo) >= self.MEMO_MAX:
                memo.clear()
            memo[key] = headers
            return list(headers)
        memo.clear()  # the table changed: what was decoded against the old one may differ now
        return headers
