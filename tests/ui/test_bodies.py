"""Whole bodies in the app: a 22 MB JSON through the real proxy shows whole and pretty-printed,
`b` saves the focused body decoded, `v` opens it in $PAGER, spill files go on exit."""

from __future__ import annotations

import functools
import gzip
import json
import stat
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))

from test_app import until as app_until  # noqa: E402
from test_spill import BigOrigin  # noqa: E402

from omniproxy_tui.app import OmniProxyApp  # noqa: E402
from omniproxy_tui.widgets.bodyfile import PathPrompt, default_name  # noqa: E402
from omniproxy_tui.widgets.detail import DetailScreen, FlowDetail  # noqa: E402
from proxycore.flows.flow import Flow, Headers, Request, Response  # noqa: E402
from proxycore.options import Options  # noqa: E402

NARROW = (80, 24)
# 22 MB that pretty-prints to ~80 000 lines: big items, so the whole view stays quick to build
BIG = json.dumps({"items": [{"id": i, "blob": f"{i:08d}" + "x" * 1080} for i in range(20_000)]}).encode()


# test_app's helper, with more time: these tests move tens of megabytes
until = functools.partial(app_until, timeout=60.0)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "cwd"
    d.mkdir()
    monkeypatch.chdir(d)
    return d


@pytest.fixture
async def big_origin():
    o = await BigOrigin(BIG).start()
    yield o
    await o.stop()


def make_app(**options) -> OmniProxyApp:
    options.setdefault("port", 0)
    options.setdefault("host", "127.0.0.1")
    return OmniProxyApp(Options(**options))


async def fetch(app: OmniProxyApp, url: str) -> bytes:
    async with httpx.AsyncClient(proxy=f"http://127.0.0.1:{app.proxy.address[1]}", trust_env=False,
                                 timeout=60) as c:
        return (await c.get(url)).content


async def open_big_flow(pilot, app: OmniProxyApp, big_origin) -> FlowDetail:
    assert await fetch(app, big_origin.url("/big")) == BIG
    await until(pilot, lambda: app.view.focus is not None and app.view.focus.is_finished, "the flow")
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, DetailScreen), "detail screen")
    await pilot.press("2")
    detail = app.screen.query_one(FlowDetail)
    await until(pilot, lambda: detail.active_tab == "response", "response tab")
    return detail


async def test_22mb_json_shows_whole_and_pretty_and_the_capture_stays_capped(big_origin, workdir,
                                                                            omniproxy_home) -> None:
    out = workdir / "cap.ndjson"
    app = make_app(output=str(out))
    async with app.run_test(size=NARROW) as pilot:
        detail = await open_big_flow(pilot, app, big_origin)
        flow = app.screen.flow
        assert flow.response.spilled is not None and flow.response.body_size == len(BIG) > 22_000_000
        assert list((omniproxy_home / "spill").rglob("*.body"))
        view = detail.view("response")
        await until(pilot, lambda: "JSON" in detail.status_text, "JSON view")
        assert "first 512 lines, f: all" in detail.status_text
        await pilot.press("f")
        await until(pilot, lambda: "lines" in detail.status_text and "first" not in detail.status_text
                    and "computing" not in detail.status_text, "the whole body", timeout=120)
        text = "\n".join(view.doc.plain(i) for i in range(len(view.doc)))
        assert "not valid JSON" not in text and "captured partially" not in text
        assert '      "id": 19999,' in text and '      "id": 0,' in text  # pretty-printed, to the end
        assert len(view.doc) > 80_000  # 4 lines per item
    # the capture record is still cut at --max-body-size; exit removed the spill files
    rec = json.loads(out.read_text().splitlines()[0])
    assert rec["response"]["bodyTruncated"] is True and len(rec["response"]["body"]) == 1048576
    assert not (omniproxy_home / "spill").exists()


async def test_b_saves_the_decoded_whole_body(big_origin, workdir) -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await open_big_flow(pilot, app, big_origin)
        await pilot.press("b")
        prompt = await until(pilot, lambda: app.screen if isinstance(app.screen, PathPrompt) else None,
                             "path prompt")
        assert prompt.default == "big.json"  # the URL's last segment, the content type's extension
        await pilot.press("enter")
        target = workdir / "big.json"
        await until(pilot, lambda: target.exists() and target.stat().st_size == len(BIG), "the saved body")
        assert target.read_bytes() == BIG
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        await until(pilot, lambda: any("Saved" in n.message for n in app._notifications), "saved note")
        # a bad path: one line, no traceback
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, PathPrompt), "path prompt")
        prompt = app.screen
        prompt.query_one("Input").value = str(workdir / "no" / "such" / "dir" / "x.json")
        await pilot.press("enter")
        await until(pilot, lambda: any("Cannot save" in n.message for n in app._notifications), "error")
        err = next(n.message for n in app._notifications if "Cannot save" in n.message)
        assert "\n" not in err and "Traceback" not in err
        assert isinstance(app.screen, DetailScreen)


def _gzip_flow() -> Flow:
    body = json.dumps({"hello": "world"}).encode()
    req = Request("GET", "https", "api.example.com", 443, "/v1/users?x=1",
                  headers=Headers.from_pairs([("Host", "api.example.com")]))
    flow = Flow(req)
    flow.response = Response(200, "OK", headers=Headers.from_pairs(
        [("Content-Type", "application/json; charset=utf-8"), ("Content-Encoding", "gzip")]),
        body=gzip.compress(body))
    flow.state = "done"
    return flow


async def test_b_decodes_and_v_opens_the_pager(workdir, tmp_path, monkeypatch) -> None:
    seen = tmp_path / "paged.txt"
    pager = tmp_path / "pager.sh"
    pager.write_text(f"#!/bin/sh\ncat \"$1\" > {seen}\necho \"$1\" >> {seen}.name\n")
    pager.chmod(0o700)
    monkeypatch.setenv("PAGER", f"{pager}")
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        flow = _gzip_flow()
        app.engine.add_flow(flow)
        await until(pilot, lambda: app.view.focus is not None, "the flow")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), "detail screen")
        await pilot.press("2")
        await pilot.press("v")
        await until(pilot, lambda: seen.exists() and Path(f"{seen}.name").exists(), "the pager ran")
        assert json.loads(seen.read_text()) == {"hello": "world"}  # decoded, not gzip
        paged = Path(Path(f"{seen}.name").read_text().strip())
        assert paged.name == "users.json"
        await until(pilot, lambda: not paged.parent.exists(), "the temporary copy removed")
        assert isinstance(app.screen, DetailScreen)
        # b on the same body writes it decoded
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, PathPrompt), "path prompt")
        await pilot.press("enter")
        target = workdir / "users.json"
        await until(pilot, lambda: target.exists(), "the saved body")
        assert json.loads(target.read_bytes()) == {"hello": "world"}
        # a pager that does not exist: one line
        monkeypatch.setenv("PAGER", str(tmp_path / "no-such-pager"))
        await pilot.press("v")
        await until(pilot, lambda: any("Cannot run $PAGER" in n.message for n in app._notifications), "error")
        assert isinstance(app.screen, DetailScreen)


def test_default_names(tmp_path: Path) -> None:
    flow = _gzip_flow()
    assert default_name(flow, flow.response, tmp_path) == "users.json"
    (tmp_path / "users.json").write_text("x")
    assert default_name(flow, flow.response, tmp_path) == "users-1.json"
    flow.request.target = "/"
    assert default_name(flow, flow.response, tmp_path) == "api.example.com-response.json"
    flow.request.target = "/img/logo.png"
    flow.response.headers.set("Content-Type", "image/png")
    assert default_name(flow, flow.response, tmp_path) == "logo.png"
    flow.response.headers.set("Content-Type", "application/octet-stream")
    flow.request.target = "/download"
    assert default_name(flow, flow.request, tmp_path) == "download.bin"


async def test_help_lists_b_and_v(workdir) -> None:
    from omniproxy_tui.widgets.help import HelpScreen

    app = make_app()
    async with app.run_test(size=(120, 48)) as pilot:
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        sections = dict(app.screen.sections)
        rows = dict(next(rows for title, rows in sections.items() if title.startswith("Detail")))
        assert "Save the body" in rows["b"] and "$PAGER" in rows["v"]


async def test_main_screen_v_still_reverses_the_sort(workdir) -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        before = app.view.sort_reverse
        await pilot.press("v")
        await until(pilot, lambda: app.view.sort_reverse != before, "reversed sort")
        assert not isinstance(app.screen, PathPrompt)


async def test_wide_layout_b_in_the_detail_pane_and_v_in_the_table(workdir) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        app.engine.add_flow(_gzip_flow())
        await until(pilot, lambda: app.view.focus is not None, "the flow")
        before = app.view.sort_reverse
        await pilot.press("v")  # the table has the focus: reverse the sort
        await until(pilot, lambda: app.view.sort_reverse != before, "reversed sort")
        await pilot.press("tab")
        await until(pilot, lambda: app.screen.query_one(FlowDetail).has_focus_within, "detail pane focused")
        await pilot.press("b")  # the Request tab: this request has no body
        await until(pilot, lambda: any("no body to save" in n.message for n in app._notifications), "note")
        await pilot.press("2")
        await pilot.press("b")
        prompt = await until(pilot, lambda: app.screen if isinstance(app.screen, PathPrompt) else None,
                             "path prompt")
        assert prompt.default == "users.json"
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, PathPrompt), "prompt closed")
        assert not (workdir / prompt.default).exists()
