"""WireGuard mode without a WireGuard client: the --mode syntax, the key file, the client
configuration, SNI from a real ClientHello, and TCP flows through filters, records, HAR and the
lossless serialisation. The end-to-end test with wireguard-go is tests/test_wireguard_netns.py."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import pytest

from proxycore.capture.har import records_to_har
from proxycore.capture.load import record_to_flow
from proxycore.capture.record import RecordOptions, flow_to_record
from proxycore.config import ConfigError, load_options
from proxycore.errors import StartupError
from proxycore.flows.filter import parse
from proxycore.flows.flow import DONE, Flow, Request
from proxycore.flows.serialize import dumps_flow, loads_flow
from proxycore.flows.tcp import add_message, new_tcp_flow, sizes
from proxycore.headless import format_flow_line
from proxycore.options import Options
from proxycore.proxy.server import Proxy
from proxycore.proxy.wireguard import client_hello_sni
from proxycore.wgconf import DEFAULT_PORT, client_config, load_or_create_keys, parse_mode, parse_resolver


def test_mode_syntax_is_mitmproxys(omniproxy_home: Path) -> None:
    assert parse_mode("regular").kind == "regular"
    m = parse_mode("wireguard")
    assert (m.kind, m.conf_path, m.port) == ("wireguard", omniproxy_home / "wireguard.conf", DEFAULT_PORT)
    assert parse_mode("wireguard@51821").port == 51821
    m = parse_mode("wireguard:/tmp/k.conf@1234")
    assert (m.conf_path, m.port) == (Path("/tmp/k.conf"), 1234)
    for bad in ("wg", "transparent", "wireguard@x", "wireguard@70000", "wireguard:/k@"):
        with pytest.raises(ValueError):
            parse_mode(bad)


def test_bad_mode_is_a_config_error_naming_the_flag() -> None:
    with pytest.raises(ConfigError, match="--mode.*wireguard"):
        load_options(None, {}, {"mode": "wiregard"})
    assert load_options(None, {"OMNIPROXY_MODE": "wireguard@5"}, {}).mode == "wireguard@5"


def test_keys_are_made_once_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "wireguard.conf"
    keys = load_or_create_keys(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text()) == {"server_key": keys.server_key, "client_key": keys.client_key}
    assert load_or_create_keys(path) == keys
    conf = client_config(keys, "192.0.2.1", 51820)
    assert f"PrivateKey = {keys.client_key}" in conf and f"PublicKey = {keys.server_public}" in conf
    assert keys.server_key not in conf  # the server's private key is never shown
    for line in ("Address = 10.0.0.1/32", "DNS = 10.0.0.53", "AllowedIPs = 0.0.0.0/0", "Endpoint = 192.0.2.1:51820"):
        assert line in conf


async def test_a_file_that_is_not_a_key_file_is_a_startup_error(tmp_path: Path) -> None:
    path = tmp_path / "wireguard.conf"
    path.write_text("not json")
    proxy = Proxy(Options(mode=f"wireguard:{path}@0"))
    with pytest.raises(StartupError, match="not a WireGuard key file"):
        await proxy.start()
    assert path.read_text() == "not json"  # never overwritten


async def test_wireguard_mode_listens_on_udp_and_says_where(tmp_path: Path) -> None:
    proxy = Proxy(Options(mode=f"wireguard:{tmp_path / 'k.conf'}@0", wireguard_dns="127.0.0.1:5353"))
    await proxy.start()
    try:
        assert proxy.wireguard is not None and proxy._server is None  # no HTTP listener, as mitmproxy
        assert proxy.address[0] == "127.0.0.1" and proxy.address[1] > 0
        facts = [e.message for e in proxy.events.entries()]
        assert any("WireGuard server on 127.0.0.1:" in f for f in facts)
        assert "WireGuard DNS forwarded to 127.0.0.1:5353" in facts
    finally:
        await proxy.stop()


def test_resolver_syntax() -> None:
    assert parse_resolver("10.1.2.3") == ("10.1.2.3", 53)
    assert parse_resolver("10.1.2.3:5353") == ("10.1.2.3", 5353)
    assert parse_resolver("[::1]:54") == ("::1", 54)
    with pytest.raises(ValueError):
        parse_resolver("a:b")


def _client_hello(server_name: str | None) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def test_sni_is_read_from_a_real_client_hello() -> None:
    assert client_hello_sni(_client_hello("Api.Example.test")) == "api.example.test"
    assert client_hello_sni(_client_hello(None)) is None
    hello = _client_hello("example.test")
    assert client_hello_sni(hello[:40]) is None  # cut short: no name, no exception
    assert client_hello_sni(b"GET / HTTP/1.1\r\n") is None


def _tcp_flow() -> Flow:
    f = new_tcp_flow("10.9.8.7", 7007, ("10.0.0.1", 40000))
    add_message(f, True, b"ping", None)
    add_message(f, False, b"\xff\x00binary", None)
    f.state = DONE
    f.timings.end = f.timings.start + 0.5
    return f


def test_tcp_flow_filters_follow_mitmproxy() -> None:
    tcp = _tcp_flow()
    http = Flow(Request("GET", "http", "h", 80, "/"))
    assert parse("~tcp")(tcp) and not parse("~http")(tcp)
    assert parse("~http")(http) and not parse("~tcp")(http)
    assert parse("~d 10.9.8.7")(tcp) and parse("~dst :7007")(tcp) and not parse("~s")(tcp)
    assert tcp.request.url == "tcp://10.9.8.7:7007"


def test_content_is_capped_per_flow_sizes_are_not() -> None:
    f = new_tcp_flow("h", 1, None)
    room = 6
    room -= add_message(f, True, b"abcd", room)
    room -= add_message(f, False, b"efgh", room)
    add_message(f, True, b"ijkl", room)
    assert [m.content for m in f.tcp_messages] == [b"abcd", b"ef", b""]
    assert sizes(f) == (8, 4) and f.request.body_truncated


def test_tcp_flows_survive_serialisation_records_and_loading() -> None:
    f = _tcp_flow()
    back = loads_flow(dumps_flow(f))
    assert back.tcp_messages == f.tcp_messages
    rec = flow_to_record(f, RecordOptions())
    assert [m.get("text") for m in rec["tcpMessages"]] == ["ping", None]
    loaded = record_to_flow(json.loads(json.dumps(rec)))
    assert [(m.from_client, m.content, m.size) for m in loaded.tcp_messages] == \
        [(m.from_client, m.content, m.size) for m in f.tcp_messages]
    assert loaded.request.url == "tcp://10.9.8.7:7007" and parse("~tcp")(loaded)
    no_bodies = flow_to_record(f, RecordOptions(include_body=False))
    assert all("text" not in m and "base64" not in m for m in no_bodies["tcpMessages"])


def test_har_skips_tcp_flows_as_mitmproxy_does() -> None:
    http = Flow(Request("GET", "http", "h", 80, "/"))
    recs = [flow_to_record(_tcp_flow(), RecordOptions()), flow_to_record(http, RecordOptions())]
    entries = records_to_har(recs, "t")["log"]["entries"]
    assert [e["request"]["url"] for e in entries] == ["http://h/"]


def test_headless_line_of_a_tcp_flow() -> None:
    line = format_flow_line(_tcp_flow())
    assert "TCP" in line and "tcp://10.9.8.7:7007" in line and "[tcp]" in line


def test_a_tcp_flow_is_neither_exported_as_a_request_nor_replayed() -> None:
    from proxycore.capture.exporters import to_curl
    from proxycore.proxy.replay import replay_problem

    with pytest.raises(ValueError, match="TCP flow"):
        to_curl(_tcp_flow())
    assert replay_problem(_tcp_flow()) == "cannot replay a TCP flow"


def test_body_filters_search_tcp_messages_by_side_as_mitmproxy() -> None:
    f = _tcp_flow()
    assert parse("~b ping")(f) and parse("~bq ping")(f) and not parse("~bs ping")(f)
    assert parse("~bs binary")(f) and not parse("~bq binary")(f)
    assert not parse("~b absent")(f)
