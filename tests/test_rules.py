"""Rewrite rules end to end: real clients through the real proxy to a real origin, one test per
kind, map-local traversal attempts, the flag / YAML / --rules parsing, the commands and edit-to-rule."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import os
from pathlib import Path

import httpx
import pytest
from conftest import collect_done, proxy_url, run, wait_for

from proxycore.addons.rules import RuleError, RulesAddon, load_rules_file, parse_flag, parse_line
from proxycore.config import ConfigError, load_options, parse_config_text
from proxycore.control.commands import CommandContext, CommandError, registry
from proxycore.flows.flow import Flow, Headers, Request, Response
from proxycore.flows.serialize import dumps_flow, loads_flow
from proxycore.flows.view import FlowView


def client(proxy) -> httpx.AsyncClient:
    return httpx.AsyncClient(proxy=proxy_url(proxy), timeout=20)


def sent_header(origin, name: str) -> list[str]:
    """The values of header `name` in the last request the origin received."""
    return [v for k, v in origin.requests[-1]["headers"] if k.lower() == name.lower()]


class Engine:
    """What the commands need of an engine: its rules (the real proxy's)."""

    def __init__(self, proxy) -> None:
        self.rules = proxy.rules


def ctx_for(proxy, flows: list[Flow] | None = None) -> CommandContext:
    view = FlowView(100)
    for f in flows or []:
        view.add(f)
    ctx = CommandContext(view=view)
    ctx.engine = Engine(proxy)  # type: ignore[assignment]
    return ctx


# ------------------------------------------------------------------ each kind, end to end


async def test_set_and_remove_headers_on_request_and_response(make_proxy, origin):
    proxy = await make_proxy(modify_headers=["/~q & ~u echo/X-Debug/1", "/~q/User-Agent/",
                                             "/~s/X-Served-By/omni"],
                             rules=[{"kind": "remove_header", "side": "response", "name": "Content-Type"}])
    done = collect_done(proxy)
    async with client(proxy) as c:
        r = await c.get(origin.url("/echo"), headers={"User-Agent": "test-agent"})
        r2 = await c.get(origin.url("/json"))
    assert r.status_code == 200
    sent = {k.lower(): v for k, v in json.loads(r.text)["headers"]}
    assert sent["x-debug"] == "1"
    assert "user-agent" not in sent
    assert r.headers["x-served-by"] == "omni"
    assert "content-type" not in r.headers
    assert "x-debug" not in {k.lower() for k, _ in origin.requests[-1]["headers"]}  # /json: filter said no
    assert r2.headers["x-served-by"] == "omni"
    await wait_for(lambda: len(done) == 2, what="two flows")
    f = next(f for f in done if f.request.path == "/echo")
    assert f.modified
    assert any("X-Debug" in label for label in f.rules_applied)
    assert any("remove_header" in label and "Content-Type" in label for label in f.rules_applied)
    hits = {r.name: r.hits for r in proxy.rules}
    assert hits["X-Debug"] == 1  # only /echo
    assert hits["X-Served-By"] == 2  # both responses
    assert [r.source for r in proxy.rules] == ["config", "flag", "flag", "flag"]  # config rules first


async def test_replace_body_request_and_response_decodes_gzip(make_proxy, origin):
    proxy = await make_proxy(modify_body=["/~q/secret/public", "/~s & ~u gzip/42/43"])
    async with client(proxy) as c:
        r = await c.post(origin.url("/echo"), content=b"the secret word is secret")
        g = await c.get(origin.url("/gzip"), headers={"Accept-Encoding": "gzip"})
    assert origin.requests[-2]["body"] == b"the public word is public"
    assert json.loads(r.text)["bodySha256"] == hashlib.sha256(b"the public word is public").hexdigest()
    assert json.loads(g.content) == {"compressed": True, "n": 43}
    assert "content-encoding" not in g.headers  # sent decoded, with the right length
    assert int(g.headers["content-length"]) == len(g.content)


async def test_map_remote_rewrites_the_url_before_upstream(make_proxy, origin):
    proxy = await make_proxy(map_remote=[r"|~d example\.invalid|^http://example\.invalid/api/|"
                                         f"http://127.0.0.1:{origin.port}/"])
    done = collect_done(proxy)
    async with client(proxy) as c:
        r = await c.get("http://example.invalid/api/json")
    assert r.status_code == 200 and r.json()["hello"] == "world"
    assert origin.requests[-1]["target"] == "/json"
    assert sent_header(origin, "host") == [f"127.0.0.1:{origin.port}"]
    await wait_for(lambda: done, what="flow")
    assert done[0].request.url == origin.url("/json")
    assert done[0].rules_applied and done[0].rules_applied[0].startswith("map_remote")


async def test_map_local_file_and_directory(make_proxy, origin, tmp_path):
    site = tmp_path / "site"
    (site / "css").mkdir(parents=True)
    (site / "index.html").write_text("<h1>home</h1>")
    (site / "css" / "a.css").write_text("body{}")
    one = tmp_path / "one.json"
    one.write_text('{"local": true}')
    proxy = await make_proxy(map_local=[f"|example.invalid/static/|{site}", f"|~m GET|/only\\.json|{one}"])
    async with client(proxy) as c:
        css = await c.get("http://example.invalid/static/css/a.css?v=2")
        home = await c.get("http://example.invalid/static/")
        missing = await c.get("http://example.invalid/static/nope.txt")
        single = await c.get(origin.url("/only.json"))
    assert (css.status_code, css.text, css.headers["content-type"]) == (200, "body{}", "text/css")
    assert home.text == "<h1>home</h1>"
    assert missing.status_code == 404
    assert single.json() == {"local": True}
    assert origin.requests == []  # nothing went upstream


async def _raw_get(proxy, target: str) -> bytes:
    """A request line sent exactly as written (clients normalise `..` away)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.address[1])
    writer.write(f"GET {target} HTTP/1.1\r\nHost: example.invalid\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await asyncio.wait_for(reader.read(-1), 20)
    writer.close()
    return data


async def test_map_local_refuses_every_way_out_of_the_directory(make_proxy, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "ok.txt").write_text("fine")
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    os.symlink(tmp_path / "secret.txt", site / "link.txt")  # a symlink pointing out
    os.symlink(tmp_path, site / "up")  # a directory symlink pointing out
    proxy = await make_proxy(map_local=[f"|example.invalid/s/|{site}"])
    ok = await _raw_get(proxy, "http://example.invalid/s/ok.txt")
    assert ok.startswith(b"HTTP/1.1 200") and ok.endswith(b"fine")
    for target in ("/s/../secret.txt", "/s/%2e%2e/secret.txt", "/s/%2E%2E%2Fsecret.txt", "/s/link.txt",
                   "/s/up/secret.txt", "/s/%2fetc%2fpasswd", "/s/..%5csecret.txt", "/s/a/../../secret.txt"):
        data = await _raw_get(proxy, "http://example.invalid" + target)
        assert b"TOP SECRET" not in data, target
        assert b"root:" not in data, target
        assert data.split(b" ", 2)[1] == b"403", (target, data[:80])


async def test_block_status_and_hang_up(make_proxy, origin):
    proxy = await make_proxy(block_list=[":~u /status/:451", ":~u /json:444"])
    done = collect_done(proxy)
    async with client(proxy) as c:
        r = await c.get(origin.url("/status/200"))
        assert r.status_code == 451
        with pytest.raises(httpx.HTTPError):
            await c.get(origin.url("/json"))
    assert origin.requests == []
    await wait_for(lambda: len(done) == 2, what="two flows")
    hung = next(f for f in done if f.request.path == "/json")
    assert hung.killed and hung.response is None


async def test_mock_response(make_proxy, origin):
    proxy = await make_proxy(rules=[{"kind": "mock", "filter": "~u /api/user", "status": 201,
                                     "headers": {"X-Mock": "yes"}, "body": '{"name": "mock"}'}])
    rc, out, err = await run("curl", "-sS", "-i", "-x", proxy_url(proxy), origin.url("/api/user"))
    assert rc == 0, err
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201")
    assert b"X-Mock: yes" in head and b"application/json" in head
    assert json.loads(body) == {"name": "mock"}
    assert origin.requests == []


async def test_rules_apply_in_order_and_disabled_rules_do_nothing(make_proxy, origin):
    proxy = await make_proxy(modify_headers=["/~q/X-Order/first", "/~q/X-Order/second"])
    async with client(proxy) as c:
        await c.get(origin.url("/echo"))
        assert sent_header(origin, "x-order") == ["second"]
        proxy.rules.toggle(2)
        await c.get(origin.url("/echo"))
        assert sent_header(origin, "x-order") == ["first"]
        proxy.rules.toggle(1)
        assert proxy._rules_addon is None  # nothing enabled: the addon is gone from the hooks
        await c.get(origin.url("/echo"))
        assert sent_header(origin, "x-order") == []


async def test_no_rules_no_addon(make_proxy):
    proxy = await make_proxy()
    assert proxy.addons.get(RulesAddon) is None
    assert proxy.addons.request is None or all(
        not isinstance(getattr(fn, "__self__", None), RulesAddon) for fn, _ in proxy.addons.request.fns)


# ------------------------------------------------------------------ commands


async def test_commands_add_toggle_move_delete_and_save(make_proxy, origin, omniproxy_home):
    proxy = await make_proxy()
    ctx = ctx_for(proxy)
    assert "no rewrite rules" in registry.run(ctx, "rules.list")
    assert "added" in registry.execute(ctx, "rules.add set_header@request /~d 127.0.0.1/X-A/1")
    registry.execute(ctx, "rules.add block :~u nothing-matches:404")
    assert proxy._rules_addon is not None
    async with client(proxy) as c:
        await c.get(origin.url("/echo"))
    assert sent_header(origin, "x-a") == ["1"]
    listing = registry.run(ctx, "rules.list")
    assert listing.splitlines()[0].startswith("1. [on] set_header@request X-A: 1") and "hits: 1" in listing
    registry.run(ctx, "rules.move", "2", "UP")
    assert [r.kind for r in proxy.rules] == ["block", "set_header"]
    registry.run(ctx, "rules.toggle", "2")
    assert not proxy.rules.rules[1].enabled
    saved = load_rules_file(omniproxy_home / "rules.yaml")
    assert [(r.kind, r.enabled) for r in saved] == [("block", True), ("set_header", False)]
    registry.run(ctx, "rules.delete", "1")
    assert [r.kind for r in load_rules_file(omniproxy_home / "rules.yaml")] == ["set_header"]
    with pytest.raises(CommandError, match="UP or DOWN"):
        registry.run(ctx, "rules.move", "1", "sideways")
    with pytest.raises(CommandError, match="no rule 5"):
        registry.run(ctx, "rules.toggle", "5")
    with pytest.raises(CommandError, match="unknown kind"):
        registry.execute(ctx, "rules.add frobnicate /a/b")
    with pytest.raises(CommandError, match="filter"):
        registry.execute(ctx, "rules.add set_header /~zz bad/X/1")


async def test_rules_file_is_loaded_and_flag_rules_are_not_saved(make_proxy, tmp_path):
    path = tmp_path / "my-rules.yaml"
    path.write_text("rules:\n  - {kind: block, filter: '~d ads.example', status: 404}\n")
    proxy = await make_proxy(rules_file=str(path), block_list=[":~d tracker:444"])
    assert [(r.kind, r.source) for r in proxy.rules] == [("block", "file"), ("block", "flag")]
    registry.execute(ctx_for(proxy), "rules.add remove_header /Cookie")
    kinds = [r.kind for r in load_rules_file(path)]
    assert kinds == ["block", "remove_header"]  # the --block rule is not written to the file


# ------------------------------------------------------------------ edit to rule


def _edited_flow(origin) -> Flow:
    req = Request("POST", "http", "127.0.0.1", origin.port, "/echo?x=1",
                  headers=Headers.from_pairs([("Host", f"127.0.0.1:{origin.port}"), ("X-Old", "1"),
                                              ("Content-Type", "text/plain")]), body=b"hello")
    f = Flow(req)
    f.original_request = Request("POST", "http", "127.0.0.1", origin.port, "/echo?x=1", headers=req.headers.copy(),
                                 body=b"hello")
    f.request.headers.remove("X-Old")
    f.request.headers.set("X-New", "yes")
    f.request.body = b"bonjour"
    return f


async def test_from_flow_request_edit_changes_a_later_real_flow(make_proxy, origin):
    proxy = await make_proxy()
    f = _edited_flow(origin)
    msg = registry.run(ctx_for(proxy, [f]), "rules.from_flow", str(f.id))
    assert "added 3 rules" in msg
    async with client(proxy) as c:
        r = await c.post(origin.url("/echo?x=1"), content=b"hello", headers={"X-Old": "1"})
        other = await c.post(origin.url("/echo?x=2"), content=b"hello", headers={"X-Old": "1"})
    assert r.status_code == 200 and other.status_code == 200
    first, second = origin.requests[-2:]
    assert first["body"] == b"bonjour"
    assert {k.lower(): v for k, v in first["headers"]}.get("x-new") == "yes"
    assert "x-old" not in {k.lower() for k, _ in first["headers"]}
    assert second["body"] == b"hello"  # another URL: untouched
    assert "x-old" in {k.lower() for k, _ in second["headers"]}


async def test_from_flow_url_edit_becomes_map_remote(make_proxy, origin):
    proxy = await make_proxy()
    f = Flow(Request("GET", "http", "127.0.0.1", origin.port, "/status/500"))
    f.original_request = Request("GET", "http", "127.0.0.1", origin.port, "/status/500")
    f.request.target = "/json"
    registry.run(ctx_for(proxy, [f]), "rules.from_flow", str(f.id))
    assert [r.kind for r in proxy.rules] == ["map_remote"]
    async with client(proxy) as c:
        r = await c.get(origin.url("/status/500"))
    assert r.status_code == 200 and r.json()["hello"] == "world"


async def test_from_flow_response_edit_becomes_mock(make_proxy, origin):
    proxy = await make_proxy()
    f = Flow(Request("GET", "http", "127.0.0.1", origin.port, "/json"))
    f.original_response = Response(200, "OK", headers=Headers.from_pairs([("Content-Type", "application/json")]),
                                   body=b'{"hello": "world"}')
    f.response = Response(200, "OK", headers=Headers.from_pairs([("Content-Type", "application/json"),
                                                                  ("Content-Encoding", "gzip")]),
                          body=gzip.compress(b'{"hello": "edited"}'))
    registry.run(ctx_for(proxy, [f]), "rules.from_flow", str(f.id))
    async with client(proxy) as c:
        r = await c.get(origin.url("/json"))
        other = await c.get(origin.url("/json?page=2"))
    assert r.json() == {"hello": "edited"}
    assert other.json()["hello"] == "world"
    with pytest.raises(CommandError, match="not edited"):
        registry.run(ctx_for(proxy, [Flow(Request("GET", "http", "a", 80, "/"))]), "rules.from_flow", "@all")


# ------------------------------------------------------------------ parsing and errors


def test_flag_syntax_matches_mitmproxy():
    r = parse_flag("modify_headers", "/~d example.com/X-Debug/1")
    assert (r.kind, r.filter, r.name, r.value) == ("set_header", "~d example.com", "X-Debug", "1")
    r = parse_flag("modify_headers", "|X-Debug|")  # no filter; empty value removes
    assert (r.kind, r.filter, r.name) == ("remove_header", "", "X-Debug")
    r = parse_flag("modify_body", ":~s:a/b:c:d")  # the replacement takes the rest
    assert (r.filter, r.pattern, r.value) == ("~s", "a/b", "c:d")
    r = parse_flag("block_list", ":~d example.com:444")
    assert (r.kind, r.status) == ("block", 444)
    r = parse_flag("map_remote", "|example.com/a|example.org/b")
    assert (r.filter, r.pattern, r.value) == ("", "example.com/a", "example.org/b")


def test_modify_headers_value_from_file(tmp_path):
    p = tmp_path / "token"
    p.write_text("abc")
    assert parse_flag("modify_headers", f"|X-Token|@{p}").value == "abc"


@pytest.mark.parametrize("field,spec,message", [
    ("modify_headers", "/~zz/X/1", "filter"),
    ("modify_headers", "/~q/bad name/1", "not a header name"),
    ("modify_body", "/~q/(/x", "bad regex"),
    ("block_list", ":~q:abc", "not a number"),
    ("block_list", ":~q:42", "not an HTTP status"),
    ("map_local", "|x|/no/such/dir", "no such file"),
    ("map_remote", "x", "not a rule"),
    ("modify_headers", "|X-Token|@/no/such/file", "cannot read"),
])
def test_bad_flag_specs_are_one_line_errors(field, spec, message):
    with pytest.raises(RuleError, match=message) as e:
        parse_flag(field, spec)
    assert "\n" not in str(e.value) and spec in str(e.value)


def test_flags_through_load_options_name_the_flag():
    with pytest.raises(ConfigError, match=r"--block") as e:
        load_options(None, {}, {"block_list": [":~q:abc"]})
    assert "\n" not in str(e.value)
    opts = load_options(None, {}, {"modify_headers": ["/~q/X-A/1,2"]})  # a comma is not a list separator
    assert opts.modify_headers == ["/~q/X-A/1,2"]


def test_yaml_config_rules_and_rewrite_section():
    text = """
rules:
  - {kind: set_header, side: request, filter: "~d example.com", name: X-Debug, value: "1"}
  - {kind: block, filter: "~d ads.example", status: hangup}
rewrite:
  modifyHeaders: ["/~s/X-Y/2"]
  rulesFile: /tmp/x.yaml
"""
    values = parse_config_text(text, "config.yaml")
    assert values["rules"][0]["name"] == "X-Debug"
    assert values["modify_headers"] == ["/~s/X-Y/2"]
    assert values["rules_file"] == "/tmp/x.yaml"


@pytest.mark.parametrize("text,message", [
    ("rules: {kind: block}", "expected a list"),
    ("rules:\n  - {kind: nope}", r"rules\[1\]: unknown kind"),
    ("rules:\n  - {kind: block, status: 4040}", r"rules\[1\] \(block\): status"),
    ("rules:\n  - {kind: set_header, name: X, value: 1, colour: red}", "unknown key 'colour'"),
    ("rules:\n  - {kind: replace_body, pattern: '(', replacement: x}", "bad regex"),
    ("rewrite:\n  block: [':~q:x']", "rewrite.block"),
])
def test_bad_yaml_rules_are_one_line_errors(text, message):
    with pytest.raises(ConfigError, match=message) as e:
        parse_config_text(text, "config.yaml")
    assert "\n" not in str(e.value)


def test_rules_file_errors(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("rules:\n  - {kind: block, status: 404}\n  - {kind: mock, status: x}\n")
    with pytest.raises(RuleError, match=r"r.yaml: rules\[2\] \(mock\): status"):
        load_rules_file(p)
    with pytest.raises(RuleError, match="not found"):
        load_rules_file(tmp_path / "none.yaml")
    p.write_text("rules: [a: b: c]")
    with pytest.raises(RuleError, match="YAML"):
        load_rules_file(p)


async def test_bad_rules_file_fails_start_with_one_line(tmp_path):
    from proxycore.errors import StartupError
    from proxycore.options import Options
    from proxycore.proxy.server import Proxy

    p = tmp_path / "r.yaml"
    p.write_text("rules:\n  - {kind: map_local, pattern: x, path: /no/such/dir}\n")
    proxy = Proxy(Options(port=0, rules_file=str(p)))
    with pytest.raises(StartupError, match="no such file") as e:
        await proxy.start()
    assert "\n" not in str(e.value)


def test_cli_rejects_bad_rule_flag_in_one_line(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "omniproxy_tui.cli", "--no-ui", "--port", "0",
                           "--modify-headers", "/~zz/X/1"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "OMNIPROXY_HOME": str(tmp_path)})
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--modify-headers" in lines[0], proc.stderr


def test_one_line_form_round_trips():
    for line in ["set_header@request /~d example.com/X-Debug/1", "remove_header@response /Server",
                 "replace_body /~s/a+/b", "map_remote |~d x|^http://x/|http://y/", "block :~d ads:444",
                 "mock /~u api/200/{\"ok\": true}"]:
        r = parse_line(line)
        again = parse_line(r.to_line())
        assert again.to_dict() == r.to_dict(), line


def test_rules_applied_survive_serialisation():
    f = Flow(Request("GET", "http", "a", 80, "/"))
    f.rules_applied = ("block 404",)
    assert loads_flow(dumps_flow(f)).rules_applied == ("block 404",)


def test_capture_record_lists_rules():
    from proxycore.capture.record import RecordOptions, flow_to_record
    from proxycore.options import Options

    f = Flow(Request("GET", "http", "a", 80, "/"))
    ro = RecordOptions.from_options(Options())
    assert "rules" not in flow_to_record(f, ro)
    f.rules_applied = ("set_header X: 1",)
    assert flow_to_record(f, ro)["rules"] == ["set_header X: 1"]


def test_default_rules_path(omniproxy_home):
    from proxycore.options import Options

    assert Options().rules_path == Path(omniproxy_home) / "rules.yaml"


async def test_a_rule_on_both_sides_counts_one_flow(make_proxy, origin):
    proxy = await make_proxy(modify_headers=["/X-Both/1"])
    done = collect_done(proxy)
    async with client(proxy) as c:
        r = await c.get(origin.url("/json"))
    assert r.headers["x-both"] == "1" and sent_header(origin, "x-both") == ["1"]
    await wait_for(lambda: done, what="flow")
    assert proxy.rules.rules[0].hits == 1
    assert done[0].rules_applied == ("set_header X-Both: 1",)


async def test_bodies_over_the_buffer_limit_stream_past_unchanged(make_proxy, origin):
    from origin import pattern_bytes

    proxy = await make_proxy(modify_body=["/~s/./X"], body_buffer_limit=4096)
    done = collect_done(proxy)
    async with client(proxy) as c:
        r = await c.get(origin.url("/bytes?n=200000"))
        small = await c.get(origin.url("/json"))
    assert r.content == pattern_bytes(200000)  # streamed: as the origin sent it
    assert set(small.content) == {ord("X")}  # buffered: rewritten
    await wait_for(lambda: len(done) == 2, what="two flows")
    big = next(f for f in done if f.request.path == "/bytes")
    assert not big.modified and big.rules_applied == ()


async def test_rules_apply_inside_https_mitm(make_proxy, tls_origin):
    proxy = await make_proxy(modify_headers=["/~s/X-Rule/tls"], block_list=[":~u /status/:403"])
    url = tls_origin.url("/json", host="localhost")
    rc, out, err = await run("curl", "-sS", "-i", "--cacert", str(proxy.ca.cert_path), "-x", proxy_url(proxy), url)
    assert rc == 0, err
    assert b"\r\nX-Rule: tls\r\n" in out  # (curl -i prints the CONNECT answer first)
    rc, out, err = await run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert",
                             str(proxy.ca.cert_path), "-x", proxy_url(proxy),
                             tls_origin.url("/status/200", host="localhost"))
    assert rc == 0 and out == b"403", err
