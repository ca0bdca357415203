"""The server certificate chain: kept by the engine for HTTPS flows (real TLS origin, real curl),
parsed for people by proxycore.certinfo, kept by the flow serialisation; cookies and queries
parsed by proxycore.cookies."""

from __future__ import annotations

import datetime as dt

from conftest import collect_done, proxy_url, run, wait_for

from proxycore.certinfo import describe_chain, split_pem
from proxycore.cookies import parse_cookie_header, parse_set_cookie
from proxycore.flows.serialize import dumps_flow, flow_from_dict, flow_to_dict, loads_flow


async def _https_flow(make_proxy, tls_origin, **options):
    proxy = await make_proxy(**options)
    done = collect_done(proxy)
    rc, _, err = await run("curl", "-sS", "--cacert", str(proxy.ca.cert_path), "-x", proxy_url(proxy),
                           tls_origin.url("/json", host="localhost"))
    assert rc == 0, err
    await wait_for(lambda: done, what="flow")
    return done[0]


async def test_https_flow_keeps_the_server_chain(make_proxy, tls_origin, origin_ca):
    f = await _https_flow(make_proxy, tls_origin)
    chain = f.server_tls.cert_chain
    assert len(split_pem(chain)) == 2  # the origin sends its leaf and its CA
    facts, error = describe_chain(chain)
    assert error is None
    leaf, ca = facts
    assert "CN=localhost" in leaf.subject and "Test Origin CA" in leaf.issuer
    assert leaf.sans == ["localhost"] and not leaf.is_ca
    assert ca.is_ca and ca.self_signed and "Test Origin CA" in ca.subject
    assert len(leaf.sha256.split(":")) == 32 and len(leaf.sha1.split(":")) == 20
    assert leaf.key and leaf.serial
    assert leaf.validity().startswith("valid")
    assert leaf.validity(leaf.not_after + dt.timedelta(days=1)) == "expired"
    assert leaf.validity(leaf.not_before - dt.timedelta(days=1)) == "not yet valid"


async def test_chain_is_kept_without_verification_too(make_proxy, tls_origin):
    f = await _https_flow(make_proxy, tls_origin, ssl_insecure=True)
    facts, _ = describe_chain(f.server_tls.cert_chain)
    assert facts and "CN=localhost" in facts[0].subject


async def test_chain_survives_serialisation(make_proxy, tls_origin):
    f = await _https_flow(make_proxy, tls_origin)
    back = loads_flow(dumps_flow(f))
    assert back.server_tls.cert_chain == f.server_tls.cert_chain
    d = flow_to_dict(f)
    del d["server_tls"]["cert_chain"]  # a file written before the chain was kept still loads
    assert flow_from_dict(d).server_tls.cert_chain == ""


def test_bad_pem_gives_an_error_not_a_traceback() -> None:
    facts, error = describe_chain("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
    assert facts == [] and error and error.startswith("certificate 1 could not be read")
    assert describe_chain("") == ([], None)


def test_cookie_header_pairs() -> None:
    assert parse_cookie_header("a=1; b=two=2;  c=; flag") == [("a", "1"), ("b", "two=2"), ("c", ""), ("", "flag")]


def test_set_cookie_attributes() -> None:
    c = parse_set_cookie("sid=abc123; Domain=.example.com; Path=/; Expires=Wed, 21 Oct 2037 07:28:00 GMT; "
                         "Secure; HttpOnly; SameSite=Lax")
    assert (c.name, c.value) == ("sid", "abc123")
    assert c.get("domain") == ".example.com" and c.get("path") == "/"
    assert c.get("secure") == "" and c.get("httponly") == "" and c.get("samesite") == "Lax"
    assert c.expiry() == "2037-10-21 07:28:00 UTC"
    m = parse_set_cookie("theme=dark; max-age=3600; expires=Wed, 21 Oct 2037 07:28:00 GMT; samesite=strict")
    assert m.expiry() == "in 1 h"  # Max-Age wins over Expires
    assert m.get("SameSite") == "strict" and m.get("secure") is None
    assert parse_set_cookie("gone=; Max-Age=0").expiry() == "now (deleted)"
    assert parse_set_cookie("s=1").expiry() == "end of session"
    assert "unparsable" in parse_set_cookie("s=1; Expires=tomorrow").expiry()
    assert "not a number" in parse_set_cookie("s=1; Max-Age=soon").expiry()
    odd = parse_set_cookie("novalue; X-Custom=1")
    assert (odd.name, odd.value) == ("", "novalue") and odd.get("X-Custom") == "1"
