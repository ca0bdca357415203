"""TCP flows through a real WireGuard tunnel (wireguard-go and wg in a network namespace, as in
tests/test_wireguard_netns.py, whose topology and helpers this reuses): a tcp_message hook changes
what the client sends, and a breakpoint holds one message until it is edited and resumed.
Skipped, with the reason, when not root, without /dev/net/tun or without the tools."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from conftest import run, wait_for
from test_wireguard_netns import _leaf, _start_client, _start_origin, topo  # noqa: F401 (topo: a fixture)

_CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
for m in (b"foo", b"stop"):
    s.sendall(m)
    print(s.recv(100).decode().strip(), flush=True)
"""


class _FooBar:
    def tcp_message(self, flow) -> None:
        msg = flow.messages[-1]
        if msg.from_client:
            msg.content = msg.content.replace(b"foo", b"bar")


async def test_tcp_hook_and_breakpoint_through_a_real_tunnel(topo, make_proxy, origin_ca,  # noqa: F811
                                                             tmp_path: Path) -> None:
    t = topo
    cert, key = _leaf(origin_ca, tmp_path)
    ports = await _start_origin(t, cert, key)
    conf_path = tmp_path / "wireguard.conf"
    proxy = await make_proxy(mode=f"wireguard:{conf_path}@0", host=t.host_a,
                             wireguard_dns=f"{t.b_ip}:{ports['dns']}")
    proxy.addons.add(_FooBar())
    proxy.intercept.set_filter("~tcp & ~bq stop")
    await _start_client(t, tmp_path, json.loads(conf_path.read_text()), proxy.address)
    client = asyncio.ensure_future(run("ip", "netns", "exec", t.a, sys.executable, "-c", _CLIENT, t.b_ip,
                                       str(ports["echo"]), timeout=60))
    try:
        await wait_for(lambda: proxy.intercept.paused or client.done(), timeout=30, what="a paused message")
        assert not client.done(), client.result()
        p = next(iter(proxy.intercept.paused.values()))
        assert p.message.content == b"stop" and p.flow.tcp_messages[0].content == b"bar"
        p.message.content = b"edited"
        proxy.intercept.resume([p.flow])
        code, out, err = await asyncio.wait_for(client, 60)
    finally:
        if not client.done():
            client.cancel()
    assert code == 0, err.decode(errors="replace")[-2000:]
    assert out.decode().split() == ["echo:bar", "echo:edited"]
