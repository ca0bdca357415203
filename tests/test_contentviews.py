"""Content views: what the detail pane shows for a body, capped and lazy."""

from __future__ import annotations

import gzip
import json
import struct
import zlib

import pytest

from omniproxy_tui.views.contentviews import (
    DEFAULT_LIMIT,
    MAX_LINE_CHARS,
    clean_line,
    view_body,
)
from omniproxy_tui.views.imageinfo import describe, image_size

MIB = 1024 * 1024


def plain(view) -> list[str]:
    return [t.plain for t in view.lines]


def png(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + b"\x00" * 32


def jpeg(w: int, h: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    dqt = b"\xff\xdb" + struct.pack(">H", 67) + b"\x00" + bytes(64)
    sof = b"\xff\xc2" + struct.pack(">HBHHB", 17, 8, h, w, 3) + bytes(9)
    return b"\xff\xd8" + app0 + dqt + sof + b"\xff\xda\x00\x02" + bytes(20)


def gif(w: int, h: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", w, h) + b"\x00\x00\x00" + bytes(20)


# --- JSON ---------------------------------------------------------------------------------------


def test_json_pretty_printed_with_two_space_indent_and_source_order():
    v = view_body(b'{"b": 1, "a": [1, 2.50, {"c": null}], "e": {}, "s": "x\\"y"}', "application/json")
    assert v.name == "JSON" and not v.truncated and v.error is None
    assert plain(v) == [
        "{",
        '  "b": 1,',
        '  "a": [',
        "    1,",
        "    2.50,",
        "    {",
        '      "c": null',
        "    }",
        "  ],",
        '  "e": {},',
        '  "s": "x\\"y"',
        "}",
    ]
    assert v.total_lines == 12


def test_json_is_highlighted():
    v = view_body(b'{"key": "value", "n": 12, "t": true}', "application/vnd.api+json")
    line = v.lines[1]
    styles = {line.plain[s.start:s.end]: str(s.style) for s in line.spans}
    assert '"key"' in styles and '"value"' in styles
    assert styles['"key"'] != styles['"value"']


def test_json_detected_by_sniffing_without_content_type():
    v = view_body(b'  [1, 2]', None)
    assert v.name == "JSON"
    assert plain(v) == ["[", "  1,", "  2", "]"]


def test_ndjson_values_each_pretty_printed():
    v = view_body(b'{"a": 1}\n{"a": 2}\n', "application/x-ndjson")
    assert plain(v) == ["{", '  "a": 1', "}", "{", '  "a": 2', "}"]


def test_invalid_json_falls_back_to_text_with_a_reason():
    v = view_body(b'{"a": 1,, }', "application/json")
    assert v.name == "text"
    assert plain(v) == ['{"a": 1,, }']
    assert v.error and "not valid JSON" in v.error


def test_gzip_encoded_json_is_decoded_then_pretty_printed():
    body = gzip.compress(json.dumps({"z": [True]}).encode())
    v = view_body(body, "application/json; charset=utf-8", "gzip")
    assert v.name == "JSON" and v.error is None
    assert plain(v) == ["{", '  "z": [', "    true", "  ]", "}"]


def test_undecodable_encoding_reports_error_and_still_shows_something():
    v = view_body(b"not gzip at all", "text/plain", "gzip")
    assert v.error and "gzip" in v.error
    assert plain(v) == ["not gzip at all"]


def test_full_json_keeps_duplicate_keys_and_order():
    v = view_body(b'{"b": 1, "a": 2, "b": 3}', "application/json", mode="full")
    assert plain(v) == ["{", '  "b": 1,', '  "a": 2,', '  "b": 3', "}"]


# --- XML / HTML ---------------------------------------------------------------------------------


def test_xml_indented_and_highlighted():
    v = view_body(b'<?xml version="1.0"?><root a="1"><b>text</b><c/><d><e>1</e></d><!-- hi --></root>',
                  "application/xml")
    assert v.name == "XML/HTML"
    assert plain(v) == [
        '<?xml version="1.0"?>',
        '<root a="1">',
        "  <b>text</b>",
        "  <c/>",
        "  <d>",
        "    <e>1</e>",
        "  </d>",
        "  <!-- hi -->",
        "</root>",
    ]
    assert v.lines[1].spans  # tag and attribute colours


def test_html_void_elements_and_script_blocks():
    html = (b"<!DOCTYPE html><html><head><meta charset=utf-8><script>\n  var x = 1;\n</script></head>"
            b"<body><p>Hello</p><br><img src=x></body></html>")
    v = view_body(html, "text/html; charset=utf-8")
    assert plain(v) == [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        "    <meta charset=utf-8>",
        "    <script>",
        "      var x = 1;",
        "    </script>",
        "  </head>",
        "  <body>",
        "    <p>Hello</p>",
        "    <br>",
        "    <img src=x>",
        "  </body>",
        "</html>",
    ]


# --- form / multipart ---------------------------------------------------------------------------


def test_urlencoded_form_as_key_value_table():
    v = view_body(b"name=Ada+Lovelace&lang=en&empty=&x=%26%3D", "application/x-www-form-urlencoded")
    assert v.name == "form"
    assert plain(v) == ["name   Ada Lovelace", "lang   en", "empty  ", "x      &="]
    assert v.hang == 7  # wrapped values hang under the value column


def test_multipart_parts_with_headers_sizes_and_text_values():
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nHello\r\nworld\r\n"
            b"--XyZ\r\nContent-Disposition: form-data; name=\"pic\"; filename=\"a.png\"\r\n"
            b"Content-Type: image/png\r\n\r\n" + png(16, 8) + b"\r\n"
            b"--XyZ\r\nContent-Disposition: form-data; name=\"blob\"; filename=\"b.bin\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n\x00\x01\x02\r\n--XyZ--\r\n")
    v = view_body(body, 'multipart/form-data; boundary="XyZ"')
    lines = plain(v)
    assert v.name == "multipart"
    assert lines[0] == '── part 1  name="title"  (text/plain, 12B)'
    assert lines[2:4] == ["  Hello", "  world"]
    assert lines[4].startswith('── part 2  name="pic"  filename="a.png"  (image/png, ')
    assert "  PNG image, 16 × 8" in lines
    assert lines[-1] == "  <binary, 3B>"


def test_multipart_without_boundary_falls_back_with_error():
    v = view_body(b"--a\r\n\r\nx\r\n--a--", "multipart/form-data")
    assert v.name == "text" and "boundary" in v.error


# --- images -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data,expected",
    [
        (png(640, 480), ("PNG", 640, 480)),
        (jpeg(1024, 768), ("JPEG", 1024, 768)),
        (gif(3, 5), ("GIF", 3, 5)),
        (b"RIFF\x00\x00\x00\x00WEBPVP8X" + bytes(8) + (99).to_bytes(3, "little") + (49).to_bytes(3, "little"),
         ("WebP", 100, 50)),
        (b"RIFF\x00\x00\x00\x00WEBPVP8L\x00\x00\x00\x00\x2f" + struct.pack("<I", 63 | (31 << 14)),
         ("WebP", 64, 32)),
        (b"BM" + bytes(12) + struct.pack("<Iii", 40, 20, -10) + bytes(16), ("BMP", 20, 10)),
        (b"\x00\x00\x01\x00\x02\x00" + bytes([16, 16]) + bytes(14) + bytes([0, 0]) + bytes(14), ("ICO", 256, 256)),
    ],
)
def test_image_dimensions_from_header_bytes(data, expected):
    assert image_size(data) == expected


def test_image_view_shows_type_dimensions_and_size():
    v = view_body(png(640, 480), "image/png")
    assert v.name == "image"
    assert plain(v)[0] == "PNG image, 640 × 480"
    assert "bytes" in plain(v)[1]
    # sniffed without a content type, too
    assert view_body(jpeg(2, 3), "application/octet-stream").name == "image"


def test_truncated_image_headers_are_not_a_crash():
    assert image_size(b"\x89PNG\r\n\x1a\n\x00") is None
    assert image_size(b"\xff\xd8\xff\xe0\x00") is None
    assert describe(b"hello") is None
    v = view_body(b"\x89PNG\r\n", "image/png")
    assert v.name == "hex"


# --- hex / text / raw ---------------------------------------------------------------------------


def test_binary_shown_as_hex_dump():
    v = view_body(bytes(range(20)) + b"AB", "application/octet-stream")
    assert v.name == "hex"
    assert plain(v) == [
        "00000000  00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f  ................",
        "00000010  10 11 12 13 41 42                                 ....AB",
    ]


def test_text_control_characters_are_made_visible_and_crlf_is_a_line_end():
    v = view_body(b"a\tb\x00c\r\nline2\r\n", "text/plain")
    assert plain(v) == ["a   b\u2400c", "line2"]
    raw = view_body(b"a\r\n\xff", "text/plain", mode="raw")
    assert raw.name == "raw"
    assert plain(raw) == ["a\u240d", "\\xff"]
    assert clean_line("x\u2028y") == "x\ufffdy"


def test_explicit_mode_overrides_content_type():
    body = b'{"a": 1}'
    assert view_body(body, "application/json", mode="hex").name == "hex"
    assert view_body(body, "application/json", mode="text").name == "text"
    assert plain(view_body(body, "text/plain", mode="json")) == ["{", '  "a": 1', "}"]
    with pytest.raises(ValueError, match="unknown view mode"):
        view_body(body, None, mode="nope")


def test_empty_body():
    v = view_body(b"", "application/json")
    assert len(v.lines) == 0 and not v.truncated and v.error is None


# --- caps ---------------------------------------------------------------------------------------


def _big_json(size: int) -> bytes:
    item = b'{"id": 123456, "name": "abcdefghijklmnopqrstuvwxyz", "ok": true}'
    n = size // (len(item) + 1)
    return b"[" + b",".join([item] * n) + b"]"


def test_50_mib_json_body_gives_only_the_capped_lines():
    body = _big_json(50 * MIB)
    assert len(body) > 49 * MIB
    v = view_body(body, "application/json")
    assert v.name == "JSON"
    assert len(v.lines) == DEFAULT_LIMIT
    assert v.truncated and v.total_lines is None
    assert plain(v)[:3] == ["[", "  {", '    "id": 123456,']


def test_50_mib_single_line_text_is_capped_in_lines_and_line_length():
    body = b"x" * (50 * MIB)
    v = view_body(body, "text/plain", limit_lines=100)
    assert len(v.lines) == 100 and v.truncated
    assert all(len(s) <= MAX_LINE_CHARS for s in v.plain)


def test_50_mib_gzip_body_is_decoded_only_as_far_as_needed():
    body = gzip.compress(_big_json(50 * MIB), compresslevel=1)
    v = view_body(body, "application/json", "gzip")
    assert v.error is None  # our own decode cap is not an error
    assert len(v.lines) == DEFAULT_LIMIT and v.truncated


def test_50_mib_binary_hex_dump_is_lazy():
    body = bytes(range(256)) * (50 * MIB // 256)
    capped = view_body(body, "application/octet-stream")
    assert len(capped.lines) == DEFAULT_LIMIT and capped.truncated
    full = view_body(body, "application/octet-stream", mode="full")
    assert len(full.lines) == 50 * MIB // 16 and not full.truncated
    assert full.lines[-1].plain.startswith(f"{50 * MIB - 16:08x}  f0 f1")


def test_full_mode_formats_everything():
    body = _big_json(200_000)
    v = view_body(body, "application/json", mode="full")
    assert not v.truncated and v.total_lines == len(v.lines) > DEFAULT_LIMIT
    assert v.plain[-1] == "]"


def test_a_view_exactly_at_the_cap_is_not_marked_truncated():
    assert not view_body(b"[1,2,3]", "application/json", limit_lines=5).truncated
    cut = view_body(b"[1,2,3,4]", "application/json", limit_lines=5)
    assert cut.truncated and len(cut.lines) == 5
    assert not view_body(b"a\nb\n", "text/plain", limit_lines=2).truncated
    assert view_body(b"a\nb\nc", "text/plain", limit_lines=2).truncated


def test_mislabelled_octet_stream_is_sniffed():
    assert view_body(b'{"a": [1]}', "application/octet-stream").name == "JSON"
    assert view_body(b"\x00\x01\x02\x03" * 8, "application/octet-stream").name == "hex"
    assert view_body(b"<root><a/></root>", None).name == "XML/HTML"
