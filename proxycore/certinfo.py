"""Facts about a certificate chain for people: subject, issuer, validity, names, fingerprints.

The engine keeps the peer's chain as PEM text on `TLSInfo.cert_chain` (cheap to keep, lossless
to serialise); it is parsed here only when someone looks at it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

_PEM_END = "-----END CERTIFICATE-----"
MAX_CERTS = 10  # a chain longer than this is noise (or hostile): the rest is not parsed


@dataclass
class CertFacts:
    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    sans: list[str] = field(default_factory=list)
    sha256: str = ""
    sha1: str = ""
    serial: str = ""
    key: str = ""
    is_ca: bool = False
    self_signed: bool = False

    def validity(self, now: dt.datetime | None = None) -> str:
        now = now or dt.datetime.now(dt.UTC)
        if now > self.not_after:
            return "expired"
        if now < self.not_before:
            return "not yet valid"
        days = (self.not_after - now).days
        return f"valid, {days} day{'' if days == 1 else 's'} left"


def split_pem(text: str) -> list[str]:
    """The PEM blocks of a chain, in order (leaf first as servers send it)."""
    out = []
    for block in text.split(_PEM_END)[:MAX_CERTS]:
        start = block.find("-----BEGIN CERTIFICATE-----")
        if start >= 0:
            out.append(block[start:] + _PEM_END + "\n")
    return out


def _hex(b: bytes) -> str:
    return ":".join(f"{x:02X}" for x in b)


def _key(cert: x509.Certificate) -> str:
    try:
        k = cert.public_key()
    except (ValueError, TypeError):  # an algorithm cryptography does not know
        return "unknown"
    if isinstance(k, rsa.RSAPublicKey):
        return f"RSA {k.key_size} bits"
    if isinstance(k, ec.EllipticCurvePublicKey):
        return f"EC {k.curve.name}"
    if isinstance(k, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(k, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(k, dsa.DSAPublicKey):
        return f"DSA {k.key_size} bits"
    return type(k).__name__


def describe(cert: x509.Certificate) -> CertFacts:
    try:
        sans_ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = [str(n.value) for n in sans_ext]
    except (x509.ExtensionNotFound, ValueError):
        sans = []
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except (x509.ExtensionNotFound, ValueError):
        is_ca = False
    return CertFacts(
        subject=cert.subject.rfc4514_string() or "(empty)",
        issuer=cert.issuer.rfc4514_string() or "(empty)",
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sans=sans,
        sha256=_hex(cert.fingerprint(hashes.SHA256())),
        sha1=_hex(cert.fingerprint(hashes.SHA1())),  # noqa: S303 - a fingerprint, as browsers show it
        serial=f"{cert.serial_number:X}",
        key=_key(cert),
        is_ca=is_ca,
        self_signed=cert.subject == cert.issuer,
    )


def describe_chain(pem: str) -> tuple[list[CertFacts], str | None]:
    """(facts for each certificate that parsed, an error for the first that did not)."""
    facts: list[CertFacts] = []
    for i, block in enumerate(split_pem(pem)):
        try:
            facts.append(describe(x509.load_pem_x509_certificate(block.encode("ascii"))))
        except (ValueError, UnicodeEncodeError) as e:
            return facts, f"certificate {i + 1} could not be read: {e}"
    return facts, None
