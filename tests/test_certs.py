"""Certificate authority: files on disk, leaf minting, SNI switching, upstream contexts — with real TLS."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import shutil
import ssl
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from proxycore.certs import (
    CAError,
    CertificateAuthority,
    client_context,
    get_sni,
    trust_instructions,
)

TIMEOUT = 10.0
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.generate(tmp_path / "ca" / "ca.crt", tmp_path / "ca" / "ca.key")


def run(loop_name: str, coro_fn: Callable[[], object]):
    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        loop = runner.get_loop()
        if loop_name == "uvloop":
            assert isinstance(loop, uvloop.Loop)
        return runner.run(asyncio.wait_for(coro_fn(), TIMEOUT))


def peer_cert(writer: asyncio.StreamWriter) -> x509.Certificate:
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der)


def self_signed(tmp_path: Path, host: str = "localhost") -> tuple[Path, Path]:
    """A self-signed server certificate (no CA involved), written to files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "self.crt", tmp_path / "self.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


# ------------------------------------------------------------------------------------------ CA files


def test_generate_writes_private_key_and_ca_cert(tmp_path: Path) -> None:
    cert_path, key_path = tmp_path / "new" / "ca.crt", tmp_path / "new" / "ca.key"
    old_umask = os.umask(0)  # even a permissive umask must not widen the key
    try:
        ca = CertificateAuthority.generate(cert_path, key_path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert_path.stat().st_mode) == 0o644
    assert stat.S_IMODE(cert_path.parent.stat().st_mode) == 0o700
    assert key_path.read_bytes().startswith(b"-----BEGIN EC PRIVATE KEY-----")
    assert sorted(p.name for p in cert_path.parent.iterdir()) == ["ca.crt", "ca.key"]  # no temp leftovers

    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert cert == ca.cert and ca.cert_pem == cert_path.read_bytes()
    assert cert.subject.rfc4514_string() == "CN=OmniProxy Root CA,O=OmniProxy"
    assert cert.issuer == cert.subject
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and ku.value.digital_signature
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    days = (cert.not_valid_after_utc - dt.datetime.now(dt.UTC)).days
    assert 3648 <= days <= 3650
    assert cert.not_valid_before_utc <= dt.datetime.now(dt.UTC)
    assert cert.serial_number.bit_length() > 100
    other = CertificateAuthority.generate(tmp_path / "o.crt", tmp_path / "o.key", org="Acme", cn="Acme CA")
    assert other.cert.serial_number != cert.serial_number
    assert other.cert.subject.rfc4514_string() == "CN=Acme CA,O=Acme"


def test_load_round_trip_and_info(ca: CertificateAuthority) -> None:
    loaded = CertificateAuthority.load(ca.cert_path, ca.key_path)
    assert loaded.cert.serial_number == ca.cert.serial_number
    info = loaded.info()
    assert info["subject"] == info["issuer"] == "CN=OmniProxy Root CA,O=OmniProxy"
    assert info["serial"] == format(ca.cert.serial_number, "X")
    fp = ca.cert.fingerprint(hashes.SHA256()).hex().upper()
    assert info["sha256"].replace(":", "") == fp and info["sha256"].count(":") == 31
    assert info["key_type"] == "ECDSA P-256"
    assert dt.datetime.fromisoformat(info["not_after"]) == ca.cert.not_valid_after_utc
    assert dt.datetime.fromisoformat(info["not_before"]) == ca.cert.not_valid_before_utc


def test_load_pkcs8_ec_key(ca: CertificateAuthority, tmp_path: Path) -> None:
    pkcs8 = tmp_path / "pkcs8.key"
    pkcs8.write_bytes(
        ca.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    assert CertificateAuthority.load(ca.cert_path, pkcs8).cert.serial_number == ca.cert.serial_number


def test_load_or_create_is_stable(tmp_path: Path) -> None:
    cert_path, key_path = tmp_path / "h" / "ca.crt", tmp_path / "h" / "ca.key"
    first = CertificateAuthority.load_or_create(cert_path, key_path)
    second = CertificateAuthority.load_or_create(cert_path, key_path)
    assert first.cert.serial_number == second.cert.serial_number
    key_path.unlink()
    with pytest.raises(CAError) as err:
        CertificateAuthority.load_or_create(cert_path, key_path)
    assert str(key_path) in str(err.value) and str(cert_path) in str(err.value)


def _load_error(cert_path: Path, key_path: Path) -> str:
    with pytest.raises(CAError) as err:
        CertificateAuthority.load(cert_path, key_path)
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_load_errors_name_the_file(ca: CertificateAuthority, tmp_path: Path) -> None:
    missing = tmp_path / "nope.crt"
    msg = _load_error(missing, ca.key_path)
    assert str(missing) in msg and "does not exist" in msg

    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"this is not PEM\n")
    msg = _load_error(garbage, ca.key_path)
    assert str(garbage) in msg and "not a PEM certificate" in msg
    msg = _load_error(ca.cert_path, garbage)
    assert str(garbage) in msg and "not a PEM private key" in msg

    not_a_dir = garbage / "ca.key"  # parent is a file: the OS refuses to read it
    msg = _load_error(ca.cert_path, not_a_dir)
    assert msg.startswith(f"cannot read CA key {not_a_dir}: ") and "--ca-key" in msg

    other = CertificateAuthority.generate(tmp_path / "other.crt", tmp_path / "other.key")
    msg = _load_error(ca.cert_path, other.key_path)
    assert str(other.key_path) in msg and "does not match" in msg

    encrypted = tmp_path / "enc.key"
    encrypted.write_bytes(
        ca.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    msg = _load_error(ca.cert_path, encrypted)
    assert str(encrypted) in msg and "encrypted" in msg

    v1_cert, v1_key = self_signed(tmp_path)  # no BasicConstraints at all: accepted like an old v1 root
    assert CertificateAuthority.load(v1_cert, v1_key).cert.subject.rfc4514_string() == "CN=localhost"


def test_non_ca_certificate_is_refused(ca: CertificateAuthority, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "leaf.crt", tmp_path / "leaf.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    msg = _load_error(cert_path, key_path)
    assert str(cert_path) in msg and "not a CA certificate" in msg


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of their mode")
def test_unreadable_key_says_permission_denied(ca: CertificateAuthority) -> None:
    ca.key_path.chmod(0)
    msg = _load_error(ca.cert_path, ca.key_path)
    assert msg == f"cannot read CA key {ca.key_path}: Permission denied (fix the permissions or pass --ca-key)"


def test_unwritable_location_is_a_caerror(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CAError) as err:
        CertificateAuthority.generate(blocker / "ca.crt", blocker / "ca.key")
    assert str(blocker / "ca.key") in str(err.value)


# ------------------------------------------------------------------------------------------ leaves


def test_leaf_certificate_fields(ca: CertificateAuthority, tmp_path: Path) -> None:
    host = "a" * 60 + ".example.test"  # longer than the 64-char CN limit
    ca.server_context(host)
    cert = _leaf_via_tls(ca, host)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == host[:64]
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    ) == [host]
    assert cert.issuer == ca.cert.subject
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    now = dt.datetime.now(dt.UTC)
    assert cert.not_valid_before_utc <= now - dt.timedelta(days=1)
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc) <= dt.timedelta(days=399)
    assert (cert.not_valid_after_utc - now).days >= 396


def _leaf_via_tls(ca: CertificateAuthority, host: str) -> x509.Certificate:
    async def main() -> x509.Certificate:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=ca.mitm_context(host))
        port = server.sockets[0].getsockname()[1]
        client = ssl.create_default_context(cafile=ca.cert_path)
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname=host)
        cert = peer_cert(writer)
        writer.close()
        server.close()
        return cert

    return run("asyncio", main)


def test_ipv6_literal_gets_ip_san(ca: CertificateAuthority) -> None:
    assert ca.server_context("[::1]") is ca.server_context("::1")  # brackets do not mint again
    # clients send no SNI for IP literals; hostname checking matches the IP SAN, whatever the socket
    leaf = _leaf_via_tls(ca, "::1")
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("::1")]
    assert san.get_values_for_type(x509.DNSName) == []
    assert ca.certs_minted == 1


def test_same_context_for_same_host(ca: CertificateAuthority) -> None:
    a = ca.server_context("one.example.test")
    assert ca.server_context("one.example.test") is a
    assert ca.server_context("ONE.example.test.") is a  # case and trailing dot do not mint again
    assert ca.mitm_context("one.example.test") is a
    assert (ca.certs_minted, ca.cache_misses, ca.cache_hits) == (1, 1, 3)
    b = ca.server_context("two.example.test")
    assert b is not a and ca.certs_minted == 2


def test_cache_is_lru_with_ttl(ca: CertificateAuthority) -> None:
    ca.cache_capacity = 2
    a = ca.server_context("a.test")
    ca.server_context("b.test")
    assert ca.server_context("a.test") is a  # a is now most recent, b is evicted next
    ca.server_context("c.test")
    assert ca.server_context("a.test") is a
    minted = ca.certs_minted
    ca.server_context("b.test")
    assert ca.certs_minted == minted + 1
    ca.cache_ttl = 0.0  # everything already cached has expired by the next look-up
    ca.server_context("x.test")
    assert ca.server_context("x.test") is not ca.server_context("x.test")


# ------------------------------------------------------------------------------------------ real TLS


@pytest.mark.parametrize("loop_name", list(LOOPS))
def test_sni_switches_certificate_and_is_recorded(ca: CertificateAuthority, loop_name: str) -> None:
    async def main() -> tuple[bytes, list[str], bytes, list[str]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sni = get_sni(writer.get_extra_info("ssl_object"))
            writer.write(f"{sni}\n".encode())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ca.mitm_context("example.test"))
        port = server.sockets[0].getsockname()[1]
        client = ssl.create_default_context(cafile=ca.cert_path)
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname="a.example.test")
        sans = peer_cert(writer).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        said = await reader.readline()
        writer.close()

        # no SNI at all: the default host's certificate, and get_sni reports None
        no_sni = ssl.create_default_context(cafile=ca.cert_path)
        no_sni.check_hostname = False  # chain is still verified (CERT_REQUIRED)
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=no_sni, server_hostname="")
        default_sans = peer_cert(writer).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        said_none = await reader.readline()
        writer.close()
        server.close()
        await server.wait_closed()
        return said, sans.get_values_for_type(x509.DNSName), said_none, default_sans.get_values_for_type(x509.DNSName)

    said, sans, said_none, default_sans = run(loop_name, main)
    assert said == b"a.example.test\n"
    assert sans == ["a.example.test"]
    assert said_none == b"None\n"
    assert default_sans == ["example.test"]
    assert ca.certs_minted == 2


def test_ip_literal_verifies_with_ip_san(ca: CertificateAuthority) -> None:
    async def main() -> list:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=ca.mitm_context("127.0.0.1"))
        port = server.sockets[0].getsockname()[1]
        client = ssl.create_default_context(cafile=ca.cert_path)  # check_hostname on: must match the IP
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname="127.0.0.1")
        san = peer_cert(writer).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        writer.close()
        server.close()
        return san.get_values_for_type(x509.IPAddress)

    assert run("asyncio", main) == [ipaddress.ip_address("127.0.0.1")]


@pytest.mark.parametrize("loop_name", list(LOOPS))
def test_start_tls_after_connect_captures_sni(ca: CertificateAuthority, loop_name: str) -> None:
    """The proxy's path: plain TCP, CONNECT, then loop.start_tls(server_side=True) on the accepted socket."""

    async def main() -> tuple[str | None, str, list[str]]:
        loop = asyncio.get_running_loop()
        seen: asyncio.Future[str | None] = loop.create_future()

        class Upgrading(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport
                self.buf = b""

            def data_received(self, data: bytes) -> None:
                self.buf += data
                if self.buf.endswith(b"\r\n\r\n"):
                    self.transport.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    loop.create_task(self.upgrade())

            async def upgrade(self) -> None:
                try:
                    tls = await loop.start_tls(
                        self.transport, self, ca.mitm_context("origin.test"), server_side=True
                    )
                    seen.set_result(get_sni(tls.get_extra_info("ssl_object")))
                    tls.write(b"hello over tls\n")
                except Exception as exc:  # surface it in the test, not in a log
                    if not seen.done():
                        seen.set_exception(exc)

        server = await loop.create_server(Upgrading, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"CONNECT b.example.test:443 HTTP/1.1\r\nHost: b.example.test:443\r\n\r\n")
            status = await reader.readuntil(b"\r\n\r\n")
            assert status.startswith(b"HTTP/1.1 200")
            await writer.start_tls(ssl.create_default_context(cafile=ca.cert_path), server_hostname="b.example.test")
            line = (await reader.readline()).decode()
            sans = peer_cert(writer).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            sni = await seen
            writer.close()
            return sni, line, sans.get_values_for_type(x509.DNSName)
        finally:
            server.close()
            if seen.done():
                seen.exception()  # a client-side failure is the one to report; mark this one as seen
            else:
                seen.cancel()

    sni, line, sans = run(loop_name, main)
    assert sni == "b.example.test"
    assert line == "hello over tls\n"
    assert sans == ["b.example.test"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_server_sends_leaf_and_ca_chain(ca: CertificateAuthority) -> None:
    async def main() -> tuple[int, bytes]:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=ca.mitm_context("chain.test"))
        port = server.sockets[0].getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            "openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "chain.test",
            "-showcerts", "-CAfile", str(ca.cert_path), "-verify_return_error", "-alpn", "http/1.1",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        server.close()
        return proc.returncode, out

    rc, out = run("asyncio", main)
    assert out.count(b"-----BEGIN CERTIFICATE-----") == 2, out.decode(errors="replace")
    assert b"Verify return code: 0 (ok)" in out
    assert b"ALPN protocol: http/1.1" in out
    assert b"Protocol  : TLSv1.3" in out or b"Protocol: TLSv1.3" in out or b"TLSv1.3" in out


def test_tempdir_fallback_keeps_key_private_and_cleans_up(ca: CertificateAuthority) -> None:
    """Where memfd is unavailable (macOS, Windows) leaves load through a private temp dir."""
    import gc

    from proxycore.certs import _ChainLoader, _get_leaf_key

    ca._loader = _ChainLoader(_get_leaf_key()[1], use_memfd=False)
    tempdir = Path(ca._loader.tempdir)
    leaf = _leaf_via_tls(ca, "fallback.example.test")
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "fallback.example.test"
    assert stat.S_IMODE(tempdir.stat().st_mode) == 0o700
    assert [p.name for p in tempdir.iterdir()] == ["leaf.key"]  # chain files are gone once loaded
    assert stat.S_IMODE((tempdir / "leaf.key").stat().st_mode) == 0o600
    ca._loader = None
    gc.collect()
    assert not tempdir.exists()


def test_rsa_ca_mints_verifiable_leaves(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "RSA Root")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "rsa.crt", tmp_path / "rsa.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(  # PKCS#1 "RSA PRIVATE KEY"
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    ca = CertificateAuthority.load(cert_path, key_path)
    assert ca.info()["key_type"] == "RSA 2048"
    leaf = _leaf_via_tls(ca, "rsa.example.test")
    assert leaf.issuer == cert.subject
    # the CA expires in 30 days: the leaf never outlives it
    assert leaf.not_valid_after_utc <= cert.not_valid_after_utc


# ------------------------------------------------------------------------------------------ upstream


def test_client_context_verifies_upstream(tmp_path: Path) -> None:
    cert_path, key_path = self_signed(tmp_path, "localhost")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_path, key_path)

    async def connect(ctx: ssl.SSLContext) -> bytes:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"ok\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
            line = await reader.readline()
            writer.close()
            return line
        finally:
            server.close()

    with pytest.raises(ssl.SSLCertVerificationError):
        run("asyncio", lambda: connect(client_context()))
    assert run("asyncio", lambda: connect(client_context(insecure=True))) == b"ok\n"
    assert run("asyncio", lambda: connect(client_context(extra_ca=str(cert_path)))) == b"ok\n"

    strict = client_context()
    assert strict.verify_mode == ssl.CERT_REQUIRED and strict.check_hostname
    assert strict.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert client_context() is strict
    assert client_context(insecure=True).verify_mode == ssl.CERT_NONE


def test_client_context_bad_extra_ca(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(CAError) as err:
        client_context(extra_ca=str(missing))
    assert str(missing) in str(err.value) and "--upstream-ca" in str(err.value)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(CAError) as err:
        client_context(extra_ca=str(garbage))
    assert str(garbage) in str(err.value)


def test_trust_instructions_cover_platforms(tmp_path: Path) -> None:
    cert = tmp_path / "ca.crt"
    text = trust_instructions(cert)
    for needle in (
        "update-ca-certificates",
        "update-ca-trust",
        f"curl --cacert {cert}",
        f"SSL_CERT_FILE={cert}",
        f"certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n omniproxy -i {cert}",
        f"security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {cert}",
        f"certutil -addstore -user Root {cert}",
        f"REQUESTS_CA_BUNDLE={cert}",
    ):
        assert needle in text
