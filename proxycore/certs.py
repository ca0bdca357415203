"""Certificate authority for HTTPS interception: root CA files, per-host leaf contexts, upstream contexts.

The root CA is ECDSA P-256 (or any EC/RSA key the user brings). Leaves share ONE P-256 key per process
(as mitmproxy does): signing a certificate is cheap, generating a key is not, and the leaf key never
leaves this process. Each host's leaf is minted once and its ``SSLContext`` cached (LRU + TTL).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import shutil
import ssl
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CAError",
    "CertificateAuthority",
    "client_context",
    "get_sni",
    "trust_instructions",
]

CA_VALIDITY_DAYS = 3650
LEAF_VALIDITY_DAYS = 397  # browsers reject TLS server certificates valid for longer
LEAF_BACKDATE = dt.timedelta(days=2)  # tolerate clients whose clock is behind
CACHE_CAPACITY = 1000
CACHE_TTL = 3600.0  # seconds
ALPN = ["http/1.1"]  # what the origin side offers; the client side offers options.alpn (CertificateAuthority.alpn)
_SNI_ATTR = "_omniproxy_sni"


class CAError(Exception):
    """A CA or TLS configuration problem, phrased for the user: what went wrong and how to fix it."""


# --------------------------------------------------------------------------------------------- helpers


def _oserror_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _read_file(path: Path, what: str, flag: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CAError(f"{what} {path} does not exist (create it with `omniproxy-tui ca generate` or pass {flag})") from None
    except IsADirectoryError:
        raise CAError(f"{what} {path} is a directory, not a file (pass the file with {flag})") from None
    except OSError as exc:
        raise CAError(
            f"cannot read {what} {path}: {_oserror_reason(exc)} (fix the permissions or pass {flag})"
        ) from None


def _write_private(path: Path, data: bytes, mode: int, what: str, flag: str) -> None:
    """Atomically write ``data``; the file is created with ``mode`` so a secret is never world-readable."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                if hasattr(os, "fchmod") and mode != 0o600:
                    os.fchmod(fh.fileno(), mode)  # umask may have narrowed a public file; never widens a key
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise CAError(
            f"cannot write {what} {path}: {_oserror_reason(exc)} (fix the permissions or pass {flag})"
        ) from None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _public_der(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _key_type(key) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        names = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        return f"ECDSA {names.get(key.curve.name, key.curve.name)}"
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return f"RSA {key.key_size}"
    return type(key).__name__


def _normalize_host(host: str) -> str:
    """Cache key and certificate name for a host: lower-case, no brackets or trailing dot, IDNA A-labels."""
    h = host.strip().strip("[]").rstrip(".").lower()
    if not h:
        raise CAError(f"cannot mint a certificate for an empty host name ({host!r})")
    if not h.isascii():
        try:
            h = h.encode("idna").decode("ascii")
        except UnicodeError:
            raise CAError(f"cannot mint a certificate for {host!r}: not a valid host name") from None
    return h


# One leaf key per process, created on first use (key generation is the slow part of minting).
_leaf_lock = threading.Lock()
_leaf_key: ec.EllipticCurvePrivateKey | None = None
_leaf_key_pem: bytes = b""


def _get_leaf_key() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    global _leaf_key, _leaf_key_pem
    if _leaf_key is None:
        with _leaf_lock:
            if _leaf_key is None:
                key = ec.generate_private_key(ec.SECP256R1())
                _leaf_key_pem = key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.TraditionalOpenSSL,  # SEC1 loads faster than PKCS#8
                    serialization.NoEncryption(),
                )
                _leaf_key = key
    return _leaf_key, _leaf_key_pem


def get_sni(ssl_object: object) -> str | None:
    """The server name the client sent in its ClientHello, recorded by a ``mitm_context`` (None if none)."""
    return getattr(ssl_object, _SNI_ATTR, None)


# ------------------------------------------------------------------------------------ chain loading

# ssl.SSLContext.load_cert_chain only reads paths. On Linux anonymous memory files opened through
# /proc/self/fd keep the leaf key off every filesystem; elsewhere a private temp dir (0700) holds it.
# The key lives in its own file, written once: OpenSSL decodes a key-only file faster than one that
# also holds certificates (load_cert_chain alone: 0.83 ms vs 1.27 ms here).
_HAVE_MEMFD = hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd")


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


class _ChainLoader:
    """Loads [leaf, CA] + the shared leaf key into SSLContexts; owns the key file for one CA object."""

    def __init__(self, key_pem: bytes, use_memfd: bool = _HAVE_MEMFD) -> None:
        self.use_memfd = use_memfd
        self.tempdir: str | None = None
        self._seq = 0
        if use_memfd:
            try:
                fd = os.memfd_create("omniproxy-leaf-key", os.MFD_CLOEXEC)
            except OSError:  # e.g. refused by a seccomp sandbox
                self.use_memfd = use_memfd = False
        if use_memfd:
            os.write(fd, key_pem)
            weakref.finalize(self, _close_quietly, fd)
            self._key_path = f"/proc/self/fd/{fd}"
        else:
            self.tempdir = tempfile.mkdtemp(prefix="omniproxy-leaf-")  # mkdtemp creates it 0700
            weakref.finalize(self, shutil.rmtree, self.tempdir, ignore_errors=True)  # also runs at exit
            self._key_path = os.path.join(self.tempdir, "leaf.key")
            fd = os.open(self._key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key_pem)

    def load(self, ctx: ssl.SSLContext, chain_pem: bytes) -> None:
        if self.use_memfd:
            fd = os.memfd_create("omniproxy-leaf", os.MFD_CLOEXEC)
            try:
                os.write(fd, chain_pem)
                ctx.load_cert_chain(f"/proc/self/fd/{fd}", self._key_path)
            finally:
                os.close(fd)
            return
        self._seq += 1
        path = os.path.join(self.tempdir, f"chain-{threading.get_ident()}-{self._seq}.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(chain_pem)
            ctx.load_cert_chain(path, self._key_path)
        finally:
            os.unlink(path)  # only needed while OpenSSL reads it


# ------------------------------------------------------------------------------------ the authority


class CertificateAuthority:
    """A root CA on disk plus a cache of per-host server ``SSLContext`` objects signed by it."""

    def __init__(self, cert: x509.Certificate, key, cert_path: Path, key_path: Path) -> None:
        self.cert = cert
        self.key = key
        self.cert_path = Path(cert_path)
        self.key_path = Path(key_path)
        self.cert_pem: bytes = cert.public_bytes(serialization.Encoding.PEM)
        self.cache_hits = 0
        self.cache_misses = 0
        self.certs_minted = 0
        self.cache_capacity = CACHE_CAPACITY
        self.cache_ttl = CACHE_TTL
        self._cache: OrderedDict[str, tuple[float, ssl.SSLContext]] = OrderedDict()
        self._lock = threading.Lock()
        self._loader: _ChainLoader | None = None  # created on the first mint
        try:
            ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            self._aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
        except x509.ExtensionNotFound:
            self._aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key())
        org = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        self._leaf_org = str(org[0].value) if org else None
        self.alpn: list[str] = list(ALPN)  # offered to clients by minted contexts (options.alpn)
        self._h2_contexts: weakref.WeakSet[ssl.SSLContext] = weakref.WeakSet()  # minted with h2 offered
        self._sni_cb = _make_sni_callback(weakref.ref(self))

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def generate(
        cls,
        cert_path: Path,
        key_path: Path,
        org: str = "OmniProxy",
        cn: str = "OmniProxy Root CA",
    ) -> CertificateAuthority:
        """Create a new root CA and write it (cert 0644, key 0600), replacing files already there."""
        cert_path, key_path = Path(cert_path).expanduser(), Path(key_path).expanduser()
        key = ec.generate_private_key(ec.SECP256R1())
        try:
            name = x509.Name([
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
            ])
        except ValueError as exc:
            raise CAError(f"invalid CA name (org={org!r}, cn={cn!r}): {exc}") from None
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(_random_serial())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=CA_VALIDITY_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,  # SEC1 "EC PRIVATE KEY", as the Go tool wrote
            serialization.NoEncryption(),
        )
        # key first: a cert without its key would make load_or_create refuse to start
        _write_private(key_path, key_pem, 0o600, "CA key", "--ca-key")
        _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644, "CA certificate", "--ca-cert")
        return cls(cert, key, cert_path, key_path)

    @classmethod
    def load(cls, cert_path: Path, key_path: Path) -> CertificateAuthority:
        """Load a PEM CA certificate and its unencrypted PEM EC/RSA key (SEC1, PKCS#1 or PKCS#8)."""
        cert_path, key_path = Path(cert_path).expanduser(), Path(key_path).expanduser()
        cert_data = _read_file(cert_path, "CA certificate", "--ca-cert")
        key_data = _read_file(key_path, "CA key", "--ca-key")
        try:
            cert = x509.load_pem_x509_certificate(cert_data)
        except ValueError:
            raise CAError(
                f"CA certificate {cert_path} is not a PEM certificate (expected '-----BEGIN CERTIFICATE-----'; "
                "regenerate with `omniproxy-tui ca generate` or pass --ca-cert)"
            ) from None
        try:
            key = serialization.load_pem_private_key(key_data, password=None)
        except TypeError:
            raise CAError(
                f"CA key {key_path} is encrypted (decrypt it, e.g. `openssl pkey -in {key_path} -out plain.key`, "
                "and pass --ca-key)"
            ) from None
        except (ValueError, UnsupportedAlgorithm):
            raise CAError(
                f"CA key {key_path} is not a PEM private key (expected '-----BEGIN ... PRIVATE KEY-----'; "
                "regenerate with `omniproxy-tui ca generate` or pass --ca-key)"
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise CAError(f"CA key {key_path} is a {_key_type(key)} key; only EC and RSA keys are supported")
        if _public_der(key.public_key()) != _public_der(cert.public_key()):
            raise CAError(
                f"CA key {key_path} does not match certificate {cert_path} (pass the matching --ca-cert/--ca-key pair)"
            )
        try:
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            if not bc.ca:
                raise CAError(
                    f"{cert_path} is not a CA certificate (BasicConstraints CA:false; "
                    "use `omniproxy-tui ca generate` or pass a CA with --ca-cert)"
                )
        except x509.ExtensionNotFound:
            pass  # old v1 roots have no extensions; clients still accept them as trust anchors
        if cert.not_valid_after_utc <= _now():
            raise CAError(
                f"CA certificate {cert_path} expired on {cert.not_valid_after_utc:%Y-%m-%d} "
                "(regenerate with `omniproxy-tui ca generate` and trust the new one)"
            )
        return cls(cert, key, cert_path, key_path)

    @classmethod
    def load_or_create(cls, cert_path: Path, key_path: Path) -> CertificateAuthority:
        """Load the CA if both files exist, create it if neither does; refuse a half-present pair."""
        cert_path, key_path = Path(cert_path).expanduser(), Path(key_path).expanduser()
        has_cert, has_key = cert_path.exists(), key_path.exists()
        if has_cert and has_key:
            return cls.load(cert_path, key_path)
        if not has_cert and not has_key:
            return cls.generate(cert_path, key_path)
        present, missing = (cert_path, key_path) if has_cert else (key_path, cert_path)
        raise CAError(
            f"{present} exists but {missing} is missing (restore it, pass both --ca-cert and --ca-key, "
            f"or delete {present} to generate a new CA)"
        )

    # -- facts -----------------------------------------------------------------------------------

    def info(self) -> dict:
        """Human-facing facts about the CA certificate (for `ca info`)."""
        fp = self.cert.fingerprint(hashes.SHA256()).hex().upper()
        return {
            "cert_path": str(self.cert_path),
            "key_path": str(self.key_path),
            "subject": self.cert.subject.rfc4514_string(),
            "issuer": self.cert.issuer.rfc4514_string(),
            "not_before": self.cert.not_valid_before_utc.isoformat(),
            "not_after": self.cert.not_valid_after_utc.isoformat(),
            "serial": format(self.cert.serial_number, "X"),
            "sha256": ":".join(fp[i : i + 2] for i in range(0, len(fp), 2)),
            "key_type": _key_type(self.key),
        }

    # -- leaves --------------------------------------------------------------------------------

    def server_context(self, host: str, h2: bool = False) -> ssl.SSLContext:
        """Server-side context presenting a leaf for ``host`` signed by this CA (cached, one mint per host).
        ``h2``: the context offers the full ``alpn`` list (h2 included); without it h2 is left out,
        since a client is offered h2 only when its origin speaks it (an extra mint per such host)."""
        name = _normalize_host(host)
        key = name + "\0h2" if h2 else name
        now = time.monotonic()
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None and entry[0] > now:
                self._cache.move_to_end(key)
                self.cache_hits += 1
                return entry[1]
            self.cache_misses += 1
            ctx = self._mint(name, h2)
            self._cache[key] = (now + self.cache_ttl, ctx)
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_capacity:
                self._cache.popitem(last=False)
            return ctx

    def mitm_context(self, default_host: str, h2: bool = False) -> ssl.SSLContext:
        """Context for ``default_host`` that switches to the SNI host's leaf and records the SNI
        (``h2``: offering h2 too, see server_context)."""
        # every minted context carries the SNI callback, so this is the cached context itself
        return self.server_context(default_host, h2)

    def offers_h2(self, ctx: ssl.SSLContext) -> bool:
        """Whether ``ctx`` is a context minted to offer h2 (the SNI callback keeps the variant)."""
        return ctx in self._h2_contexts

    def _mint(self, name: str, h2: bool = False) -> ssl.SSLContext:
        leaf_key, leaf_key_pem = _get_leaf_key()
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            ip = None
        san: x509.GeneralName = x509.IPAddress(ip) if ip is not None else x509.DNSName(name)
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, name[:64])]  # X.509 caps CN at 64 chars
        if self._leaf_org:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, self._leaf_org))
        now = _now()
        not_after = min(now + dt.timedelta(days=LEAF_VALIDITY_DAYS), self.cert.not_valid_after_utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(self.cert.subject)
            .public_key(leaf_key.public_key())
            .serial_number(_random_serial())
            .not_valid_before(now - LEAF_BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(self._aki, critical=False)
            .sign(self.key, hashes.SHA256())
        )
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if h2 and "h2" in self.alpn:
            ctx.set_alpn_protocols(self.alpn)
            self._h2_contexts.add(ctx)
        else:
            ctx.set_alpn_protocols([p for p in self.alpn if p != "h2"] or list(ALPN))
        if self._loader is None:
            self._loader = _ChainLoader(leaf_key_pem)
        self._loader.load(ctx, cert.public_bytes(serialization.Encoding.PEM) + self.cert_pem)
        ctx.sni_callback = self._sni_cb
        self.certs_minted += 1
        return ctx


def _random_serial() -> int:
    return secrets.randbits(127) | (1 << 126)  # positive, < 20 octets, always ~128-bit wide


def _make_sni_callback(ca_ref: weakref.ref):
    """SNI hook shared by all of a CA's contexts; holds the CA weakly so contexts don't keep it alive."""

    def on_sni(ssl_obj, server_name: str | None, ctx: ssl.SSLContext) -> int | None:
        if server_name is None:
            return None  # no SNI: keep the default host's certificate
        try:
            setattr(ssl_obj, _SNI_ATTR, server_name)
            ca = ca_ref()
            if ca is None:
                return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
            new_ctx = ca.server_context(server_name, ca.offers_h2(ctx))
            if new_ctx is not ctx:
                ssl_obj.context = new_ctx
        except Exception:
            # an exception here would only reach sys.unraisablehook; fail this handshake cleanly instead
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        return None

    return on_sni


# ------------------------------------------------------------------------------------- upstream side

_client_ctx_cache: dict[tuple[bool, str | None, bool], ssl.SSLContext] = {}


def client_context(insecure: bool = False, extra_ca: str | None = None, h2: bool = False) -> ssl.SSLContext:
    """Context for connecting to origin servers: system trust (+ ``extra_ca``), verified unless insecure;
    ``h2``: offering ALPN h2 before http/1.1 (only for connections that can carry HTTP/2)."""
    key = (insecure, extra_ca, h2)
    ctx = _client_ctx_cache.get(key)
    if ctx is not None:
        return ctx
    ctx = ssl.create_default_context()
    if extra_ca:
        path = Path(extra_ca).expanduser()
        try:
            ctx.load_verify_locations(cafile=str(path))
        except FileNotFoundError:
            raise CAError(f"upstream CA file {path} does not exist (fix the path given to --upstream-ca)") from None
        except OSError as exc:
            raise CAError(
                f"cannot read upstream CA file {path}: {_oserror_reason(exc)} (fix the permissions or the --upstream-ca path)"
            ) from None
        except ssl.SSLError:
            raise CAError(f"upstream CA file {path} holds no PEM certificate (pass a PEM file to --upstream-ca)") from None
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["h2", *ALPN] if h2 else ALPN)
    _client_ctx_cache[key] = ctx
    return ctx


# ---------------------------------------------------------------------------------- trust help text


def trust_instructions(cert_path: Path) -> str:
    """How to make clients trust the CA, per platform (printed by `ca info`)."""
    c = str(cert_path)
    return f"""\
To intercept HTTPS, clients must trust the CA certificate:
  {c}

Linux (Debian/Ubuntu):
  sudo cp {c} /usr/local/share/ca-certificates/omniproxy-ca.crt && sudo update-ca-certificates
Linux (Fedora/RHEL):
  sudo cp {c} /etc/pki/ca-trust/source/anchors/omniproxy-ca.crt && sudo update-ca-trust
Firefox / Chrome on Linux (NSS database):
  certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n omniproxy -i {c}
One program only:
  curl --cacert {c} ...
  SSL_CERT_FILE={c} <command>          (OpenSSL-based tools)

macOS:
  sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {c}

Windows (current user):
  certutil -addstore -user Root {c}

Python:
  REQUESTS_CA_BUNDLE={c} python ...     (requests)
  SSL_CERT_FILE={c} python ...          (httpx, urllib, aiohttp)
"""
