"""Request.url is cached; changing any part of it must show in the next read."""

from __future__ import annotations

import copy

from proxycore.flows.flow import Request


def test_url_follows_every_part_it_is_made_of() -> None:
    r = Request("GET", "http", "example.com", 80, "/a?b=1")
    assert r.url == "http://example.com/a?b=1"
    r.host = "api.example.com"
    assert r.url == "http://api.example.com/a?b=1"
    r.port = 8080
    assert r.url == "http://api.example.com:8080/a?b=1"
    r.scheme = "https"
    assert r.url == "https://api.example.com:8080/a?b=1"
    r.port = 443
    r.target = "/c"
    assert r.url == "https://api.example.com/c"
    r.host = "::1"
    assert r.url == "https://[::1]/c"
    r.method, r.target = "CONNECT", "example.com:443"
    assert r.url == "example.com:443"
    dup = copy.deepcopy(r)  # duplicated flows (D) keep working copies of the parts and the cache
    dup.method, dup.target = "GET", "/d"
    assert dup.url == "https://[::1]/d" and r.url == "example.com:443"
