"""The engine side of the UI chrome: the event log, option changes at run time (checked, applied live,
saved to the config file), flow comments, clearing all but the marked flows, duplicates under
marked-only."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import wait_for

from proxycore.config import BY_FIELD, load_options
from proxycore.control.client import LocalEngine
from proxycore.control.commands import CommandContext, CommandError, registry
from proxycore.control.settings import LIVE_OPTIONS, save_option
from proxycore.eventlog import ERROR, INFO, WARN, EventLog
from proxycore.flows.flow import DONE, Flow, Headers, Request, Response
from proxycore.flows.view import FlowView
from proxycore.options import Options


def mk(path: str = "/", marked: bool = False) -> Flow:
    f = Flow(Request("GET", "http", "example.com", 80, path, headers=Headers.from_pairs([("Host", "example.com")])),
             client_addr=("127.0.0.1", 50000))
    f.response = Response(200, "OK", headers=Headers.from_pairs([("Content-Length", "0")]), body=b"")
    f.state = DONE
    f.marked = marked
    return f


# --------------------------------------------------------------------------- event log


def test_event_log_is_bounded_and_one_line_per_event() -> None:
    log = EventLog(maxlen=3, clock=lambda: 100.0)
    for i in range(5):
        log.add(INFO, f"fact {i}\nsecond line")
    assert [e.message for e in log.entries()] == ["fact 2 second line", "fact 3 second line", "fact 4 second line"]
    assert log.dropped == 2 and log.version == 5
    log.warn("w")
    log.error("e")
    assert [e.level for e in log.entries(WARN)] == [WARN, ERROR]
    assert [e.message for e in log.entries(ERROR)] == ["e"]
    with pytest.raises(ValueError):
        log.add("debug", "x")


def test_event_log_takes_events_from_other_threads() -> None:
    log = EventLog(maxlen=500)
    threads = [threading.Thread(target=lambda: [log.error("x") for _ in range(200)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(log) == 500 and log.dropped == 300


async def test_engine_logs_start_up_facts_and_errors(origin, tmp_path: Path) -> None:
    out = tmp_path / "cap.ndjson"
    engine = LocalEngine(Options(port=0, output=str(out)), on_error=lambda m: None)
    await engine.start()
    try:
        text = [e.message for e in engine.events.entries()]
        host, port = engine.address
        assert f"listening on {host}:{port}" in text
        assert f"CA certificate: {engine.ca_cert_path}" in text
        assert f"capture: {out} (ndjson)" in text
        # an engine error reaches the log too (here: an addon-style report through the proxy)
        engine.proxy.report_error("addon hook Tag.response failed: ValueError('boom')")
        assert engine.events.entries(ERROR)[-1].message == "addon hook Tag.response failed: ValueError('boom')"
    finally:
        await engine.stop()


async def test_addon_errors_land_in_the_event_log(origin, tmp_path: Path) -> None:
    script = tmp_path / "bad.py"
    script.write_text("class Bad:\n    def response(self, flow):\n        raise RuntimeError('broken addon')\n"
                      "addons = [Bad()]\n")
    engine = LocalEngine(Options(port=0, scripts=[str(script)]), on_error=lambda m: None)
    await engine.start()
    try:
        assert f"addon script loaded: {script}" in [e.message for e in engine.events.entries()]
        async with httpx.AsyncClient(proxy=f"http://127.0.0.1:{engine.address[1]}", trust_env=False,
                                     timeout=10) as client:
            r = await client.get(origin.url("/json"))
        assert r.status_code == 200  # the flow goes on
        await wait_for(lambda: engine.events.entries(ERROR), what="the addon error in the log")
        assert "broken addon" in engine.events.entries(ERROR)[-1].message
    finally:
        await engine.stop()


# --------------------------------------------------------------------------- options


def test_save_option_keeps_the_other_keys(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("server:\n  port: 9000  # mine\nmitm:\n  skipHosts: [a.example]\nupstream: null\n")
    save_option(cfg, BY_FIELD["connect_timeout"], 5.0)
    save_option(cfg, BY_FIELD["skip_hosts"], ["a.example", "b.example"])
    data = yaml.safe_load(cfg.read_text())
    assert data == {"server": {"port": 9000, "connectTimeout": 5.0}, "mitm": {"skipHosts": ["a.example", "b.example"]},
                    "upstream": None}
    opts = load_options(str(cfg), {})
    assert opts.port == 9000 and opts.connect_timeout == 5.0 and opts.skip_hosts == ["a.example", "b.example"]
    save_option(cfg, BY_FIELD["connect_timeout"], None, remove=True)
    assert "connectTimeout" not in yaml.safe_load(cfg.read_text())["server"]


def test_new_config_file_is_private(tmp_path: Path) -> None:
    cfg = tmp_path / "sub" / "config.yaml"
    save_option(cfg, BY_FIELD["port"], 9001)
    assert stat.S_IMODE(os.stat(cfg).st_mode) == 0o600
    assert load_options(str(cfg), {}).port == 9001


def test_option_set_checks_with_the_options_parser(tmp_path: Path) -> None:
    ctx = CommandContext(view=FlowView(), config_path=tmp_path / "c.yaml")
    for line, needle in [("option.set port 70000", "server.port"), ("option.set sample_rate 2", "capture.sampleRate"),
                         ("option.set max_body_size lots", "capture.maxBodySize"),
                         ("option.set format xml", "capture.format"), ("option.set conect_timeout 3", "connect_timeout")]:
        with pytest.raises(CommandError) as exc:
            registry.execute(ctx, line)
        assert needle in str(exc.value) and "\n" not in str(exc.value)
    assert not (tmp_path / "c.yaml").exists()  # nothing saved from a bad value
    msg = registry.execute(ctx, "option.set max_body_size 2MiB")
    assert "capture.maxBodySize = 2097152" in msg and "next start" in msg
    assert ctx.pending_options == {"max_body_size": 2097152}
    assert ctx.options.max_body_size == 1048576  # the running value is not touched
    assert load_options(str(tmp_path / "c.yaml"), {}).max_body_size == 2097152
    msg = registry.execute(ctx, "option.reset max_body_size")
    assert ctx.pending_options == {} and "maxBodySize" not in (tmp_path / "c.yaml").read_text()


async def test_live_option_changes_the_running_engine(tmp_path: Path, origin) -> None:
    """client_head_timeout set through option.set closes a silent client after the new deadline."""
    engine = LocalEngine(Options(port=0), on_error=lambda m: None)
    await engine.start()
    ctx = CommandContext(view=FlowView(), options=engine.options, config_path=tmp_path / "c.yaml")
    try:
        msg = engine.run_command("option.set", ctx, "client_head_timeout", "0.3")
        assert "applied" in msg and engine.proxy.options.client_head_timeout == 0.3
        assert "client_head_timeout" in LIVE_OPTIONS
        engine.run_command("option.set", ctx, "connect_timeout", "4")
        assert engine.proxy.pool.connect_timeout == 4.0  # the pool's own copy follows
        import asyncio

        reader, writer = await asyncio.open_connection("127.0.0.1", engine.address[1])
        writer.write(b"GET / HTTP/1.1\r\n")  # and never the rest of the head
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=10)  # the proxy gives up and closes
        assert data == b"" or data.startswith(b"HTTP/1.1 408")
        writer.close()
        # a start-only option is saved, not applied
        msg = engine.run_command("option.set", ctx, "port", "9999")
        assert "next start" in msg and engine.options.port == 0
        assert load_options(str(tmp_path / "c.yaml"), {}).port == 9999
    finally:
        await engine.stop()


# --------------------------------------------------------------------------- flows


def test_flow_comment_and_comment_filter() -> None:
    view = FlowView()
    a, b = mk("/a"), mk("/b")
    view.add_many([a, b])
    view.set_focus(b)
    ctx = CommandContext(view=view)
    assert registry.execute(ctx, 'flow.comment "slow on prod"') == "commented 1 flow"
    assert b.comment == "slow on prod" and a.comment == ""
    view.set_filter("~comment prod")
    assert view.shown() == [b]
    registry.call(ctx, "flow.comment", "", str(b.id))
    assert b.comment == "" and view.shown() == []


def test_clear_unmarked_keeps_marked_flows() -> None:
    view = FlowView()
    flows = [mk("/1"), mk("/2", marked=True), mk("/3"), mk("/4", marked=True)]
    view.add_many(flows)
    view.set_filter("~u /1")  # hidden flows are cleared too
    msg = registry.execute(CommandContext(view=view), "view.clear_unmarked")
    assert msg == "cleared 2 flows, kept 2 marked"
    assert [f.request.path for f in view.all_flows()] == ["/2", "/4"]


def test_duplicate_under_marked_only_is_visible() -> None:
    view = FlowView()
    f = mk("/m", marked=True)
    view.add_many([f, mk("/u")])
    view.set_marked_only(True)
    view.set_focus(f)
    registry.execute(CommandContext(view=view), "flow.duplicate")
    assert len(view) == 2 and view.focus is not f and view.focus.marked
