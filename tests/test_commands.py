"""The command registry: typed arguments, every view/flow/export command, jobs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proxycore.control.commands import (
    Arg,
    CommandContext,
    CommandError,
    CommandRegistry,
    Job,
    default_export_path,
    registry,
)
from proxycore.flows.flow import DONE, Flow, Headers, Request, Response
from proxycore.flows.view import FlowView

SCHEMA = Path(__file__).parent / "data" / "har-1.2.schema.json"


def mk(method: str = "GET", path: str = "/", status: int = 200, body: bytes = b"hello",
       start: float = 1_700_000_000.0) -> Flow:
    f = Flow(Request(method, "http", "example.com", 80, path,
                     headers=Headers.from_pairs([("Host", "example.com"), ("Accept", "*/*")])),
             client_addr=("127.0.0.1", 50000))
    f.timings.start = start
    f.timings.request_sent = start + 0.01
    f.timings.first_byte = start + 0.02
    f.timings.end = start + 0.03
    f.response = Response(status, "OK", headers=Headers.from_pairs([("Content-Type", "text/plain"),
                                                                     ("Content-Length", str(len(body)))]),
                          body=body)
    f.state = DONE
    return f


@pytest.fixture
def ctx(tmp_path: Path) -> CommandContext:
    v = FlowView()
    v.add_many([mk(path="/a", start=1_700_000_000.0), mk("POST", path="/b", status=404, start=1_700_000_001.0),
                mk(path="/c", status=500, start=1_700_000_002.0)])
    return CommandContext(view=v, cwd=tmp_path)


def test_every_documented_command_is_registered() -> None:
    names = {c.name for c in registry}
    for name in ("flow.mark", "flow.delete", "flow.duplicate", "view.clear", "view.filter.set",
                 "view.filter.toggle", "view.marked_only", "view.sort", "view.sort.reverse", "view.follow",
                 "export.clip", "export.har", "export.ndjson"):
        assert name in names
    for c in registry:
        assert c.help and c.signature.startswith(c.name)


def test_arg_conversion_and_errors(ctx: CommandContext) -> None:
    reg = CommandRegistry()
    seen: list[tuple] = []

    @reg.command("t.x", "test", Arg("n", int), Arg("flag", bool, default=None), Arg("c", str, default="a",
                                                                                   choices=("a", "b")))
    def _x(ctx: CommandContext, n: int, flag: bool | None, c: str) -> str:
        seen.append((n, flag, c))
        return "ok"

    assert reg.execute(ctx, "t.x 3 yes b") == "ok"
    assert reg.call(ctx, "t.x", 4) == "ok"
    assert seen == [(3, True, "b"), (4, None, "a")]
    with pytest.raises(CommandError, match="expected a number"):
        reg.execute(ctx, "t.x three")
    with pytest.raises(CommandError, match="not one of a, b"):
        reg.execute(ctx, "t.x 1 on z")
    with pytest.raises(CommandError, match="missing <n>"):
        reg.execute(ctx, "t.x")
    with pytest.raises(CommandError, match="at most"):
        reg.execute(ctx, "t.x 1 on a extra")
    with pytest.raises(CommandError, match="unknown command"):
        reg.execute(ctx, "nope")
    with pytest.raises(CommandError, match="cannot parse"):
        reg.execute(ctx, 't.x "unterminated')
    with pytest.raises(ValueError):
        reg.command("t.x", "again")(lambda ctx: None)


def test_mark_delete_duplicate(ctx: CommandContext) -> None:
    v = ctx.view
    v.follow = False
    v.set_focus_index(0)
    first = v.focus
    assert registry.execute(ctx, "flow.mark") == "marked 1 flow"
    assert first.marked
    registry.execute(ctx, "view.marked_only true")
    assert [f.id for f in v.shown()] == [first.id]
    registry.execute(ctx, "view.marked_only")
    assert len(v) == 3
    assert registry.execute(ctx, "flow.unmark_all") == "unmarked 1 flow"
    assert registry.execute(ctx, "flow.duplicate") == "duplicated 1 flow"
    assert v.total == 4 and v.focus is not first and v.focus.request.path == "/a"
    assert registry.execute(ctx, f"flow.delete {first.id}") == "deleted 1 flow"
    assert v.total == 3 and v.get(first.id) is None
    assert registry.execute(ctx, "view.clear") == "cleared 3 flows"
    with pytest.raises(CommandError, match="no flow selected"):
        registry.execute(ctx, "flow.mark")
    with pytest.raises(CommandError, match="bad flow selector"):
        registry.execute(ctx, "flow.delete @bogus")


def test_filter_sort_follow(ctx: CommandContext) -> None:
    v = ctx.view
    assert registry.execute(ctx, 'view.filter.set "~c 404 | ~c 500"') == "filter '~c 404 | ~c 500': 2/3"
    assert registry.execute(ctx, "view.filter.toggle") == "filter off: 3/3"
    assert registry.execute(ctx, "view.filter.toggle") == "filter on: 2/3"
    with pytest.raises(CommandError, match="filter: .* at"):
        registry.execute(ctx, "view.filter.set '~c'")
    assert len(v) == 2  # the old filter survives a syntax error
    registry.execute(ctx, "view.filter.set")
    assert len(v) == 3
    # a lone free-text argument takes the rest of the line, quotes and all
    assert registry.execute(ctx, 'view.filter.set ~c 404 | ~h "content-type: text"') == (
        "filter '~c 404 | ~h \"content-type: text\"': 3/3")
    registry.execute(ctx, "view.filter.set ''")
    assert v.filter is None
    assert registry.execute(ctx, "view.sort status") == "sorted by status"
    assert [f.response.status for f in v.shown()] == [200, 404, 500]
    assert registry.execute(ctx, "view.sort.reverse") == "sorted by status (reversed)"
    assert [f.response.status for f in v.shown()] == [500, 404, 200]
    assert registry.execute(ctx, "view.sort.cycle") == "sorted by time (reversed)"
    with pytest.raises(CommandError, match="not one of"):
        registry.execute(ctx, "view.sort colour")
    assert registry.execute(ctx, "view.follow off") == "follow: off"
    v.set_focus_index(2)
    assert registry.execute(ctx, "view.follow") == "follow: on"
    assert v.focus is v.newest_shown()


def test_export_clip_formats(ctx: CommandContext) -> None:
    msg = registry.execute(ctx, "export.clip curl")
    assert ctx.clipboard.startswith("curl")
    assert "http://example.com/c" in ctx.clipboard  # the focused (newest) flow
    assert msg == f"copied curl ({len(ctx.clipboard.encode()):,} bytes) to the clipboard"
    registry.execute(ctx, "export.clip raw_response")
    assert ctx.clipboard.startswith("HTTP/1.1 500")
    registry.execute(ctx, "export.clip raw_request @shown")
    assert ctx.clipboard.count("Host: example.com") == 3
    with pytest.raises(CommandError, match="not one of"):
        registry.execute(ctx, "export.clip word")


def test_default_export_path_is_unique(tmp_path: Path) -> None:
    import datetime as dt

    now = dt.datetime(2024, 5, 6, 7, 8, 9)
    p = default_export_path("har", tmp_path, now)
    assert p.name == "omniproxy-20240506-070809.har"
    p.write_text("x")
    assert default_export_path("har", tmp_path, now).name == "omniproxy-20240506-070809-2.har"


def test_export_har_job_writes_valid_har(ctx: CommandContext, tmp_path: Path) -> None:
    ctx.view.set_filter("~c 404 | ~c 500")
    job = registry.execute(ctx, "export.har")
    assert isinstance(job, Job)
    msg = job.fn()
    files = list(tmp_path.glob("omniproxy-*.har"))
    assert len(files) == 1 and str(files[0]) in msg and msg.startswith("wrote 2 flows")
    har = json.loads(files[0].read_text())
    assert har["log"]["version"] == "1.2"
    assert [e["response"]["status"] for e in har["log"]["entries"]] == [404, 500]
    if SCHEMA.exists():
        import jsonschema

        jsonschema.validate(har, json.loads(SCHEMA.read_text()))


def test_export_ndjson_writes_one_record_per_line(ctx: CommandContext, tmp_path: Path) -> None:
    out = tmp_path / "x.ndjson"
    msg = registry.run(ctx, "export.ndjson", str(out))
    assert msg == f"wrote 3 flows to {out}"
    lines = out.read_bytes().splitlines()
    assert len(lines) == 3
    recs = [json.loads(ln) for ln in lines]
    assert all(isinstance(r, dict) for r in recs)
    ctx.view.clear()
    with pytest.raises(CommandError, match="no flows to save"):
        registry.run(ctx, "export.ndjson")
