"""Captures you can keep and reopen, driven with Pilot against the real proxy and a real origin:
`-r` opens a capture beside new traffic, `w` saves (lossless, NDJSON, HAR), `L` loads from inside
the app, and the quit dialog's "save and quit" writes every flow and says where."""

from __future__ import annotations

import json
from pathlib import Path

from test_app import make_app, screen_text, send, until

from omniproxy_tui.app import OmniProxyApp
from omniproxy_tui.cli import _open_capture
from omniproxy_tui.widgets.capturedialogs import LoadScreen, SaveScreen
from omniproxy_tui.widgets.dialogs import ConfirmScreen
from proxycore.capture.convert import read_records
from proxycore.capture.load import read_capture
from proxycore.flows.flow import Flow, Headers, Request, Response
from proxycore.flows.serialize import flow_to_dict, read_flows, write_flows
from proxycore.options import Options

NARROW = (80, 24)


async def some_flows(pilot, origin, n: int = 4) -> list[Flow]:
    app = pilot.app
    paths = ["/json", "/status/404", "/png", "/gzip", "/cookies", "/echo"][:n]
    await send(app, origin, *paths)
    await until(pilot, lambda: app.view.total == n and all(f.is_finished for f in app.view.all_flows()),
                f"{n} finished flows")
    return app.view.all_flows()


def edit(flows: list[Flow]) -> None:
    """What the edit features leave on flows: originals beside edited messages, marks, comments."""
    a, b = flows[0], flows[1]
    a.original_request = Request(a.request.method, a.request.scheme, a.request.host, a.request.port,
                                 a.request.target, headers=a.request.headers.copy(), body=a.request.body)
    a.request.target = "/json?edited=1"
    a.request.headers.set("X-Edited", "yes")
    a.modified, a.comment, a.marked = True, "edited by hand\nsecond line", True
    r = b.response
    b.original_response = Response(r.status, r.reason, headers=r.headers.copy(), body=r.body)
    b.response = Response(200, "OK", headers=Headers.from_pairs([("Content-Type", "text/plain")]), body=b"patched")
    b.modified, b.tags = True, ["patched"]


async def test_r_opens_a_capture_beside_new_traffic(origin, workdir, tmp_path) -> None:
    # a capture written by the real proxy (NDJSON sink), opened with -r in a second run
    cap = tmp_path / "earlier.ndjson"
    app = make_app(output=str(cap))
    async with app.run_test(size=NARROW) as pilot:
        await some_flows(pilot, origin, 3)
        await pilot.press("q")
    assert len(list(read_records(cap))) == 3
    app = OmniProxyApp(Options(port=0, host="127.0.0.1"), read=str(cap), read_batches=_open_capture(str(cap)))
    async with app.run_test(size=NARROW) as pilot:
        await until(pilot, lambda: app.view.total == 3, "the loaded flows")
        await until(pilot, lambda: any("loaded 3 flows" in n.message for n in app._notifications), "the message")
        assert not app.needs_quit_confirmation()  # they are in a file already
        await send(app, origin, "/echo")  # the proxy still runs: new traffic joins them
        await until(pilot, lambda: app.view.total == 4, "the new flow beside them")
        ids = [f.id for f in app.view.all_flows()]
        assert len(set(ids)) == 4
        assert app.view.all_flows()[-1].request.path == "/echo"
        assert app.needs_quit_confirmation()  # the new one is only in memory


async def test_no_server_opens_without_proxying(tmp_path) -> None:
    f = Flow(Request("GET", "http", "a.test", 80, "/x"))
    f.state = "done"
    cap = tmp_path / "one.flows"
    write_flows(cap, [f])
    app = OmniProxyApp(Options(port=0, host="127.0.0.1"), start_proxy=False, read=str(cap))
    app.no_server = True
    async with app.run_test(size=NARROW) as pilot:
        await until(pilot, lambda: app.view.total == 1, "the loaded flow")
        await until(pilot, lambda: "not proxying" in screen_text(app), "the header saying so")
        assert not app.engine.running  # type: ignore[attr-defined]


async def test_w_then_r_round_trips_losslessly_with_edits(origin, workdir) -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        flows = await some_flows(pilot, origin, 4)
        edit(flows)
        before = [flow_to_dict(f) for f in flows]
        await pilot.press("w")
        dialog = await until(pilot, lambda: isinstance(app.screen, SaveScreen) and app.screen, "the save dialog")
        value = dialog.query_one("Input").value
        assert value.startswith("omniproxy-") and value.endswith(".flows")  # today's timestamped name
        await pilot.press("enter")  # lossless is the default
        files = await until(pilot, lambda: list(workdir.glob("omniproxy-*.flows")), "the flow file")
        await until(pilot, lambda: any("wrote 4 flows" in n.message and str(files[0]) in n.message
                                       for n in app._notifications), "the notification: how many, where")
        assert [flow_to_dict(f) for f in read_flows(files[0])] == before
        assert not app.needs_quit_confirmation()  # every flow is in the file now
    app = OmniProxyApp(Options(port=0, host="127.0.0.1"), read=str(files[0]))
    async with app.run_test(size=NARROW) as pilot:
        await until(pilot, lambda: app.view.total == 4, "the reopened flows")
        # everything, edits included; the ids were handed out already in this (test) process, so
        # the flows got new ones (a fresh `omniproxy-tui -r` keeps the file's: see test_capture_load)
        after = [flow_to_dict(f) for f in app.view.all_flows()]
        assert [{**d, "id": 0} for d in after] == [{**d, "id": 0} for d in before]
        assert len({d["id"] for d in after}) == 4
        assert "●" in screen_text(app)  # the mark survived


async def test_w_dialog_format_by_key_or_extension(origin, workdir) -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await some_flows(pilot, origin, 2)
        await pilot.press("f", *"~c 404", "enter")  # the shown flows are what `w` saves
        await until(pilot, lambda: len(app.view) == 1, "the filtered view")
        await pilot.press("w")
        dialog = await until(pilot, lambda: isinstance(app.screen, SaveScreen) and app.screen, "the dialog")
        assert "Save 1 shown flow (of 2)" in screen_text(app)
        await pilot.press("tab")  # NDJSON: the default name's extension follows
        assert dialog.fmt == "ndjson" and dialog.query_one("Input").value.endswith(".ndjson")
        await pilot.press("enter")
        nd = await until(pilot, lambda: list(workdir.glob("omniproxy-*.ndjson")), "the NDJSON file")
        await until(pilot, lambda: len(nd[0].read_text().splitlines()) == 1, "one record")
        await pilot.press("w")
        dialog = await until(pilot, lambda: isinstance(app.screen, SaveScreen) and app.screen, "the dialog")
        await pilot.press("ctrl+a", "ctrl+k", *"out.har")  # a typed extension picks the format
        assert dialog.fmt == "har"
        await pilot.press("enter")
        await until(pilot, lambda: (workdir / "out.har").exists(), "the HAR")
        har = json.loads((workdir / "out.har").read_text())
        assert [e["response"]["status"] for e in har["log"]["entries"]] == [404]
        await pilot.press("w")
        await until(pilot, lambda: isinstance(app.screen, SaveScreen), "the dialog")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, SaveScreen), "cancelled")


async def test_L_loads_a_capture_from_inside_the_app(origin, workdir, tmp_path) -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        flows = await some_flows(pilot, origin, 3)
        write_flows(workdir / "kept.flows", flows)  # same ids as the flows on screen: renumbered on load
        (workdir / "garbled.har").write_text('{"log": {"entries": [{"request": 1}]}}')
        await pilot.press("L")
        await until(pilot, lambda: isinstance(app.screen, LoadScreen), "the load prompt")
        await pilot.press(*"kep", "tab")  # completion from the directory
        assert app.screen.query_one("Input").value == "kept.flows"
        await pilot.press("enter")
        await until(pilot, lambda: app.view.total == 6, "the loaded flows beside the others")
        ids = [f.id for f in app.view.all_flows()]
        assert len(set(ids)) == 6
        assert sorted(f.request.path for f in app.view.all_flows()) == sorted(
            [f.request.path for f in flows] * 2)
        # a garbled file: a one-line error, nothing loaded
        await pilot.press("L")
        await until(pilot, lambda: isinstance(app.screen, LoadScreen), "the load prompt")
        await pilot.press(*"garbled.har", "enter")
        note = await until(pilot, lambda: [n for n in app._notifications if "garbled.har" in n.message],
                           "the error")
        assert "entries[0].request" in note[0].message and "\n" not in note[0].message
        assert app.view.total == 6


async def test_loaded_flows_are_bounded_by_max_flows(tmp_path) -> None:
    flows = []
    for i in range(1, 31):
        f = Flow(Request("GET", "http", "a.test", 80, f"/{i}"), assign_id=False)
        f.id, f.state = i, "done"
        flows.append(f)
    cap = tmp_path / "many.flows"
    write_flows(cap, flows)
    app = OmniProxyApp(Options(port=0, host="127.0.0.1", max_flows=10), start_proxy=False, read=str(cap))
    async with app.run_test(size=NARROW) as pilot:
        await until(pilot, lambda: any("loaded 30 flows" in n.message for n in app._notifications), "the load")
        await until(pilot, lambda: app.view.total == 10, "the newest 10")
        assert [f.request.path for f in app.view.all_flows()] == [f"/{i}" for i in range(21, 31)]


async def test_quit_dialog_saves_every_flow_and_names_the_file(origin, workdir) -> None:
    app = make_app()
    async with app.run_test(size=NARROW) as pilot:
        await some_flows(pilot, origin, 5)
        await pilot.press("f", *"~c 404", "enter")  # the filter shows 1 of the 5
        await until(pilot, lambda: len(app.view) == 1, "the filtered view")
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the quit question")
        assert "5 flows" in screen_text(app)
        await pilot.press("h")
        await until(pilot, lambda: app.return_code is not None, "the app exits after saving")
    har = list(workdir.glob("omniproxy-*.har"))
    assert len(har) == 1
    assert len(json.loads(har[0].read_text())["log"]["entries"]) == 5  # all, not the 1 shown
    assert app.exit_notes and str(har[0]) in app.exit_notes[0] and "5 flows" in app.exit_notes[0]


def test_lossless_reload_reads_what_was_saved(tmp_path: Path) -> None:
    """read_capture on a flow file gives the flows back field for field (the loader adds nothing)."""
    f = Flow(Request("POST", "https", "b.test", 443, "/p", body=b"\x00\xff"), ("127.0.0.1", 5))
    f.state, f.comment = "done", "c"
    write_flows(tmp_path / "x.flows", [f])
    assert [flow_to_dict(g) for g in read_capture(tmp_path / "x.flows")] == [flow_to_dict(f)]



async def test_palette_offers_load_and_lossless_save(workdir) -> None:
    f = Flow(Request("GET", "http", "a.test", 80, "/p"))
    f.state = "done"
    write_flows(workdir / "p.flows", [f])
    app = OmniProxyApp(Options(port=0, host="127.0.0.1"), start_proxy=False)
    async with app.run_test(size=NARROW) as pilot:
        await pilot.press("ctrl+p", *"capture.load")
        await until(pilot, lambda: "capture.load" in screen_text(app), "the palette hit")
        await pilot.press("enter")  # the argument is a path: the L prompt asks for it
        await until(pilot, lambda: isinstance(app.screen, LoadScreen), "the load prompt")
        await pilot.press(*"p.flows", "enter")
        await until(pilot, lambda: app.view.total == 1, "the loaded flow")
        await pilot.press("ctrl+p", *"export.flows")
        await until(pilot, lambda: "export.flows" in screen_text(app), "the palette hit")
        await pilot.press("enter")  # no argument: today's timestamped name
        saved = await until(pilot, lambda: list(workdir.glob("omniproxy-*.flows")), "the flow file")
        assert [g.request.path for g in read_flows(saved[0])] == ["/p"]
