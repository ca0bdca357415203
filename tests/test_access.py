"""Proxy authentication (--proxy-auth) through the real proxy with curl, and the access helpers.

The client-network checks (--allow-client, loopback targets) need a client on another address:
they are in test_access_netns.py, which builds its own network namespace.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import bcrypt
import pytest
from conftest import collect_done, proxy_url, run, wait_for

from proxycore.addons.access import (
    AccessError,
    ProxyAuthAddon,
    is_loopback_host,
    is_loopback_target,
    parse_allow_clients,
    parse_basic,
    parse_proxy_auth,
)

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")

PASSWORD = "s3cr:et-pw"  # a colon in the password: RFC 7617 splits at the first one only


@pytest.mark.parametrize("host", ["127.0.0.1", "127.9.9.9", "localhost", "LOCALHOST.", "api.localhost", "::1",
                                  "[::1]", "0.0.0.0", "::", "::ffff:127.0.0.1", "127.1", "2130706433",
                                  "0x7f000001", "0.1.2.3"])
def test_loopback_targets(host: str) -> None:
    assert is_loopback_target(host)


@pytest.mark.parametrize("host", ["example.com", "10.0.0.1", "192.168.1.1", "203.0.113.5", "1.2.3.4",
                                  "localhost.example.com", "8.8.8.8", "fe80::1", "1example.com"])
def test_not_loopback_targets(host: str) -> None:
    assert not is_loopback_target(host)


def test_listening_host_and_allow_client_parsing() -> None:
    assert is_loopback_host("127.0.0.1") and is_loopback_host("localhost") and is_loopback_host("::1")
    assert not is_loopback_host("0.0.0.0") and not is_loopback_host("10.1.2.3") and not is_loopback_host("::")
    assert [str(n) for n in parse_allow_clients(["10.0.0.0/8", "203.0.113.7", "fd00::/8"])] == [
        "10.0.0.0/8", "203.0.113.7/32", "fd00::/8"]
    with pytest.raises(AccessError, match=r"--allow-client .*'10\.0\.0\.0/33' is not an IP network"):
        parse_allow_clients(["10.0.0.0/33"])


def test_parse_basic_and_specs(tmp_path: Path) -> None:
    token = base64.b64encode(b"alice:" + PASSWORD.encode()).decode()
    assert parse_basic(f"Basic {token}") == ("alice", PASSWORD)
    assert parse_basic(f"basic  {token}") == ("alice", PASSWORD)
    assert parse_basic("Bearer abc") is None and parse_basic("Basic !!!") is None
    assert parse_basic("Basic " + base64.b64encode(b"nocolon").decode()) is None
    for bad in ("bob", "bob:", ":pw", "@"):
        with pytest.raises(AccessError, match="--proxy-auth"):
            parse_proxy_auth(bad)
    with pytest.raises(AccessError, match="no such htpasswd file"):
        parse_proxy_auth(f"@{tmp_path / 'missing'}")
    md5 = tmp_path / "md5.htpasswd"
    md5.write_text("alice:$apr1$abc$def\n")
    with pytest.raises(AccessError, match=r"line 1: the hash for 'alice' is not bcrypt"):
        parse_proxy_auth(f"@{md5}")


def _htpasswd(path: Path, users: dict[str, str]) -> Path:
    # htpasswd -B writes $2y$; rounds=4 keeps the test quick (the check is the same at any cost)
    lines = [f"{u}:" + bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$", 1)
             for u, p in users.items()]
    path.write_text("# test users\n" + "\n".join(lines) + "\n")
    return path


def _sent_header_values(flow) -> list[str]:
    return [v.decode("latin-1") for _, v in flow.request.headers.fields]


async def test_proxy_auth_plain_requests(make_proxy, origin) -> None:
    proxy = await make_proxy(proxy_auth=f"alice:{PASSWORD}")
    done = collect_done(proxy)
    url = origin.url("/echo")

    # no credentials: 407 with the Basic challenge; the origin is never contacted
    rc, out, err = await run("curl", "-sS", "-i", "-x", proxy_url(proxy), url)
    assert rc == 0, err
    head = out.decode("latin-1")
    assert head.startswith("HTTP/1.1 407 Proxy Authentication Required"), head
    assert 'Proxy-Authenticate: Basic realm="omniproxy"' in head
    assert origin.requests == []

    # wrong password: 407; the flow names the user, and holds the password nowhere
    rc, out, err = await run("curl", "-sS", "-i", "-x", proxy_url(proxy), "--proxy-user", "alice:wrong-pw", url)
    assert rc == 0 and out.startswith(b"HTTP/1.1 407"), (out, err)
    failed = await wait_for(lambda: [f for f in done if f.response is not None and f.response.status == 407
                                     and "alice" in (f.error or "")], what="the failed attempt")
    f = failed[0]
    assert f.request.headers.get("proxy-authorization") == "[REDACTED]"
    wrong_b64 = base64.b64encode(b"alice:wrong-pw").decode()
    assert not any("wrong-pw" in v or wrong_b64 in v for v in _sent_header_values(f))
    assert "wrong-pw" not in (f.error or "")

    # valid credentials: forwarded, and Proxy-Authorization never reaches the origin nor stays in the flow
    rc, out, err = await run("curl", "-sS", "-x", proxy_url(proxy), "--proxy-user", f"alice:{PASSWORD}", url)
    assert rc == 0, err
    echoed = json.loads(out)
    assert not [k for k, _ in echoed["headers"] if k.lower() == "proxy-authorization"], echoed["headers"]
    assert len(origin.requests) == 1
    ok = await wait_for(lambda: [x for x in done if x.response is not None and x.response.status == 200],
                        what="the authenticated flow")
    assert ok[0].request.headers.get("proxy-authorization") is None
    assert ok[0].error is None


async def test_proxy_auth_connect_authenticates_the_tunnel(make_proxy, tls_origin, origin_ca) -> None:
    proxy = await make_proxy(proxy_auth=f"alice:{PASSWORD}")
    done = collect_done(proxy)
    url = tls_origin.url("/echo", host="localhost")

    rc, out, err = await run("curl", "-sS", "--cacert", str(origin_ca.cert_path), "-x", proxy_url(proxy), url)
    assert rc != 0 and b"407" in err, err  # CONNECT refused: no tunnel
    assert tls_origin.requests == []
    refused = await wait_for(lambda: [f for f in done if f.request.method == "CONNECT"], what="refused CONNECT")
    assert refused[0].response is not None and refused[0].response.status == 407

    # the CONNECT carries the credentials; the requests inside the tunnel carry none, and pass
    rc, out, err = await run("curl", "-sS", "--cacert", str(proxy.ca.cert_path), "-x", proxy_url(proxy),
                             "--proxy-user", f"alice:{PASSWORD}", url, url)
    assert rc == 0, err
    assert len(tls_origin.requests) == 2
    for req in tls_origin.requests:
        assert not [k for k, _ in req["headers"] if k.lower() == "proxy-authorization"]
    inner = await wait_for(lambda: [f for f in done if f.request.scheme == "https" and f.response is not None
                                    and f.response.status == 200], what="flows inside the tunnel")
    assert inner[0].request.headers.get("proxy-authorization") is None


async def test_proxy_auth_htpasswd_bcrypt_cached(make_proxy, origin, tmp_path: Path) -> None:
    path = _htpasswd(tmp_path / "htpasswd", {"alice": PASSWORD, "bob": "hunter2"})
    proxy = await make_proxy(proxy_auth=f"@{path}")
    assert "proxy auth: htpasswd" in " ".join(proxy.access_facts) and "(2 users)" in " ".join(proxy.access_facts)
    addon = proxy.addons.get(ProxyAuthAddon)
    url = origin.url("/json")

    for creds, status in ((f"alice:{PASSWORD}", 200), ("bob:hunter2", 200), ("bob:wrong", 407),
                          ("carol:hunter2", 407), (f"alice:{PASSWORD}", 200)):
        rc, out, err = await run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-x", proxy_url(proxy),
                                 "--proxy-user", creds, url)
        assert rc == 0, err
        assert out.decode() == str(status), creds
    # the two valid header values are remembered (bcrypt ran once for each), the invalid ones are not
    assert len(addon.good) == 2
    assert len(origin.requests) == 3
