"""The proxy's HPACK shortcuts (proxycore/proxy/hpackfast.py) against the hpack library."""

from __future__ import annotations

from hpack import Decoder, Encoder
from hpack.struct import NeverIndexedHeaderTuple

from proxycore.proxy.hpackfast import MemoDecoder, PlainEncoder

FIELDS = [(b":status", b"200"), (b":method", b"GET"), (b"server", b"nginx"), (b"content-length", b"103"),
          (b"x-long", b"a" * 300), (b"custom-" + b"n" * 200, b"v"), (b"accept-encoding", b"gzip, deflate")]


def test_plain_encoder_round_trips_through_hpack_and_never_indexes() -> None:
    enc, dec = PlainEncoder(), Decoder()
    for _ in range(2):  # the second block comes from the memo
        assert dec.decode(enc.encode(FIELDS), raw=True) == FIELDS
    assert len(dec.header_table.dynamic_entries) == 0
    block = enc.encode([(b":status", b"200")])
    assert block == b"\x88"  # static index 8


def test_plain_encoder_announces_a_table_size_change_once() -> None:
    enc = PlainEncoder()
    enc.header_table_size = 0  # the peer's SETTINGS_HEADER_TABLE_SIZE shrank
    first = enc.encode(FIELDS)
    assert first[:1] == b"\x20"  # dynamic table size update to 0 before any field
    dec = Decoder()
    dec.max_allowed_table_size = 0
    assert dec.decode(first, raw=True) == FIELDS
    assert enc.encode(FIELDS)[:1] != b"\x20"


def test_plain_encoder_keeps_never_indexed_fields() -> None:
    dec = Decoder()
    out = dec.decode(PlainEncoder().encode([NeverIndexedHeaderTuple(b"authorization", b"secret")]), raw=True)
    assert out == [(b"authorization", b"secret")] and isinstance(out[0], NeverIndexedHeaderTuple)


def test_memo_decoder_matches_hpack_as_the_table_changes() -> None:
    enc, ref, memo = Encoder(), Decoder(), MemoDecoder(65536)
    blocks = [[(b":method", b"GET"), (b":path", b"/a"), (b"x-id", str(i // 3).encode())] for i in range(12)]
    blocks += [blocks[0]] * 3
    for fields in blocks:
        block = enc.encode(fields)
        assert memo.decode(block, raw=True) == ref.decode(block, raw=True) == fields
    assert memo._memo  # the repeated fully indexed blocks were memoised
    # an indexed block whose entry was replaced must not come from the memo
    enc2, memo2 = Encoder(), MemoDecoder(65536)
    enc2.header_table_size = 60  # room for one entry only
    memo2.decode(enc2.encode([(b"x-a", b"1")]), raw=True)
    assert memo2.decode(b"\xbe", raw=True) == [(b"x-a", b"1")]
    memo2.decode(enc2.encode([(b"x-a", b"2")]), raw=True)  # evicts x-a: 1, same index
    assert memo2.decode(b"\xbe", raw=True) == [(b"x-a", b"2")]
