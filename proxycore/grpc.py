"""gRPC and gRPC-Web calls read out of a flow: recognised by content type, bodies split into their
length-prefixed messages (flag byte + 4-byte big-endian length), compressed ones inflated per
`grpc-encoding`, gRPC-Web trailer frames (flag 0x80) parsed, and each message decoded: with a
schema (`--proto-path` / `--proto-descriptor`, loaded into a protobuf DescriptorPool) as named
fields, else as numbered wire fields (proxycore.protobuf).

Nothing here runs for a flow that is not gRPC: callers test the content type first, which is one
string comparison. Work is bounded: a message inflates to at most MAX_INFLATED bytes and a call
decodes at most MAX_MESSAGES messages per direction.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import subprocess
import sys
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from proxycore import protobuf

if TYPE_CHECKING:
    from proxycore.flows.flow import Flow, Request, Response

MAX_INFLATED = 16 * 1024 * 1024  # one decompressed message at most (a gzip bomb stays cheap)
MAX_MESSAGES = 10_000  # messages decoded per direction; a longer stream is said to go on

# https://grpc.github.io/grpc/core/md_doc_statuscodes.html
STATUS_NAMES = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
    "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
)


def status_name(code: int) -> str:
    return STATUS_NAMES[code] if 0 <= code < len(STATUS_NAMES) else "?"


def protocol_of(content_type: str | None) -> str | None:
    """"grpc", "grpc-web", "grpc-web-text" (base64 bodies) or None for anything else.
    application/grpc, application/grpc+proto, application/grpc-web+proto, ...-web-text+proto."""
    if not content_type or not content_type.startswith("application/grpc"):
        return None
    mime = content_type.split(";", 1)[0].strip().lower()
    base = mime.split("+", 1)[0]
    if base == "application/grpc":
        return "grpc"
    if base == "application/grpc-web":
        return "grpc-web"
    if base == "application/grpc-web-text":
        return "grpc-web-text"
    return None


def is_grpc(flow: Flow) -> bool:
    return protocol_of(flow.request.headers.get("content-type")) is not None


def method_of(path: str) -> tuple[str, str] | None:
    """("pkg.Service", "Method") from "/pkg.Service/Method"."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1]


# --- framing ------------------------------------------------------------------------------------


@dataclass
class Message:
    """One length-prefixed message of a call."""

    index: int  # from 0, per direction
    size: int  # bytes on the wire (after the 5-byte prefix)
    compressed: bool
    data: bytes | None  # the payload, inflated; None when it could not be
    error: str | None = None  # why it could not be inflated or decoded
    type_name: str | None = None  # the schema's message type, when one is known
    decoded: Any = None  # named fields (schema) or numbered wire fields: a JSON-ready dict
    fields: list[protobuf.Field] | None = None  # the wire fields (no schema), for display


@dataclass
class Body:
    """The messages of one body and what else it held."""

    messages: list[Message] = field(default_factory=list)
    trailers: list[tuple[str, str]] | None = None  # a gRPC-Web trailer frame
    leftover: int = 0  # bytes of a cut last frame (a body captured partially, a call cut short)
    more: bool = False  # more than MAX_MESSAGES messages
    error: str | None = None  # the body is not gRPC framing (bad base64, ...)


def web_text_decode(data: bytes) -> bytes:
    """A grpc-web-text body: base64, possibly several padded chunks one after the other (each
    message or flush of a stream is encoded on its own). Raises ValueError."""
    out = bytearray()
    for m in re.finditer(rb"[A-Za-z0-9+/]+={0,2}", data):
        chunk = m.group()
        cut = len(chunk.rstrip(b"=")) % 4
        if cut == 1:
            raise ValueError("not base64")
        try:
            out += base64.b64decode(chunk + b"=" * (-len(chunk) % 4 if cut else 0))
        except binascii.Error as e:
            raise ValueError(f"not base64 ({e})") from None
    return bytes(out)


def inflate(data: bytes, encoding: str | None) -> bytes:
    """A compressed message per its grpc-encoding (gzip, deflate; identity). Raises ValueError."""
    enc = (encoding or "identity").strip().lower()
    if enc == "identity":
        return data  # the flag says compressed but nothing was negotiated: take it as is
    if enc == "gzip":
        d = zlib.decompressobj(wbits=31)
    elif enc == "deflate":
        d = zlib.decompressobj(wbits=15)  # zlib framing, as grpc's deflate is
    else:
        raise ValueError(f"grpc-encoding {enc!r} is not supported")
    try:
        out = d.decompress(data, MAX_INFLATED)
    except zlib.error as e:
        raise ValueError(f"{enc} data is corrupt ({e})") from None
    if d.unconsumed_tail:
        raise ValueError(f"inflates to more than {MAX_INFLATED // (1024 * 1024)} MiB")
    return out


def parse_trailer_block(data: bytes) -> list[tuple[str, str]]:
    """A gRPC-Web trailer frame's payload: HTTP/1-style "name: value" lines."""
    out = []
    for line in data.decode("latin-1").split("\n"):
        name, sep, value = line.partition(":")
        if sep and name.strip():
            out.append((name.strip().lower(), value.strip()))
    return out


def split_body(data: bytes, protocol: str, encoding: str | None) -> Body:
    """The messages of a gRPC / gRPC-Web body (not yet decoded: see decode_messages)."""
    body = Body()
    if protocol == "grpc-web-text":
        try:
            data = web_text_decode(data)
        except ValueError as e:
            body.error = str(e)
            return body
    pos, n = 0, len(data)
    while pos + 5 <= n:
        flag = data[pos]
        length = int.from_bytes(data[pos + 1:pos + 5], "big")
        if pos + 5 + length > n:
            break
        payload = bytes(data[pos + 5:pos + 5 + length])
        pos += 5 + length
        if flag & 0x80 and protocol != "grpc":
            body.trailers = parse_trailer_block(payload)
            continue
        if len(body.messages) >= MAX_MESSAGES:
            body.more = True
            return body
        msg = Message(len(body.messages), length, bool(flag & 1), payload)
        if msg.compressed:
            try:
                msg.data = inflate(payload, encoding)
            except ValueError as e:
                msg.data, msg.error = None, str(e)
        body.messages.append(msg)
    body.leftover = n - pos
    return body


# --- decoding -----------------------------------------------------------------------------------


def wire_dict(fields: list[protobuf.Field]) -> dict[str, Any]:
    """Numbered wire fields as JSON: {"1": 150, "2": "text", "3": {...}}; a number that repeats
    holds a list; bytes are base64 (as proto3's JSON mapping writes bytes)."""
    out: dict[str, Any] = {}
    repeated: set[str] = set()
    for f in fields:
        if isinstance(f.value, list):
            v: Any = wire_dict(f.value)
        elif isinstance(f.value, bytes):
            v = base64.b64encode(f.value).decode("ascii")
        else:
            v = f.value
        key = str(f.number)
        if key not in out:
            out[key] = v
        elif key in repeated:
            out[key].append(v)
        else:
            out[key] = [out[key], v]
            repeated.add(key)
    return out


def decode_messages(body: Body, path: str, request: bool, schema: Schema | None = None) -> None:
    """Fill each message's `decoded` (and `type_name` / `fields`): named through the schema when it
    knows the method, else numbered wire fields."""
    schema = schema if schema is not None else _active
    mtype = schema.message_type(path, request) if schema is not None else None
    for msg in body.messages:
        if msg.data is None:
            continue
        if mtype is not None:
            try:
                msg.decoded = schema.decode(mtype, msg.data)  # type: ignore[union-attr]
                msg.type_name = mtype
                continue
            except ValueError as e:
                msg.error = f"not a {mtype} ({e}); wire fields shown"
        try:
            msg.fields = protobuf.decode(msg.data)
            msg.decoded = wire_dict(msg.fields)
        except protobuf.DecodeError as e:
            msg.error = f"not a protobuf message ({e})"


# --- a whole call -------------------------------------------------------------------------------


def _pairs(headers: Any) -> list[tuple[str, str]]:
    """Header-like things as (lower-case name, value): Headers, a list of byte or str pairs."""
    if headers is None:
        return []
    fields = getattr(headers, "fields", headers)
    out = []
    for k, v in fields:
        k = k.decode("latin-1") if isinstance(k, bytes) else k
        v = v.decode("latin-1") if isinstance(v, bytes) else v
        out.append((k.lower(), v))
    return out


@dataclass
class Call:
    protocol: str
    service: str | None
    method: str | None
    request: Body
    response: Body | None
    trailers: list[tuple[str, str]] = field(default_factory=list)  # HTTP/2 trailers or the web frame
    status: int | None = None
    message: str | None = None  # grpc-message, percent-decoded
    encoding: str | None = None  # the response's grpc-encoding (the request's when only it has one)

    @property
    def status_text(self) -> str | None:
        return None if self.status is None else f"{self.status} {status_name(self.status)}"


def _message_body(msg: Request | Response, protocol: str, path: str, request: bool,
                  schema: Schema | None, limit: int | None) -> Body:
    encoding = msg.headers.get("grpc-encoding")
    data = msg.body if limit is None or msg.captured_size <= limit else msg.body_head(limit)
    body = split_body(data, protocol, encoding)
    decode_messages(body, path, request, schema)
    return body


def read_call(flow: Flow, schema: Schema | None = None, limit: int | None = None) -> Call | None:
    """The gRPC call a flow carries, or None when it is not one. `limit`: read at most that many
    bytes of each body (a capture's cap)."""
    req = flow.request
    protocol = protocol_of(req.headers.get("content-type"))
    if protocol is None:
        return None
    names = method_of(req.path)
    call = Call(protocol, names[0] if names else None, names[1] if names else None,
                _message_body(req, protocol, req.path, True, schema, limit), None)
    call.encoding = req.headers.get("grpc-encoding")
    resp = flow.response
    if resp is not None:
        rproto = protocol_of(resp.headers.get("content-type")) or protocol
        call.response = _message_body(resp, rproto, req.path, False, schema, limit)
        call.encoding = resp.headers.get("grpc-encoding") or call.encoding
        trailers = _pairs(resp.trailers) or (call.response.trailers or [])
        call.trailers = trailers
        # a trailers-only response (an error before any message) puts the status in the headers
        status_src = trailers if any(k == "grpc-status" for k, _ in trailers) else _pairs(resp.headers)
        for k, v in status_src:
            if k == "grpc-status":
                try:
                    call.status = int(v.strip())
                except ValueError:
                    pass
            elif k == "grpc-message":
                call.message = unquote(v)
    return call


def _message_record(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"size": m.size}
    if m.compressed:
        out["compressed"] = True
    if m.type_name:
        out["type"] = m.type_name
    if m.decoded is not None:
        out["decoded"] = m.decoded
    if m.error:
        out["error"] = m.error
    return out


def call_record(call: Call) -> dict[str, Any]:
    """The `grpc` object of a capture record (docs/captures: the record's fields)."""
    out: dict[str, Any] = {"protocol": call.protocol}
    if call.service:
        out["service"] = call.service
        out["method"] = call.method
    if call.encoding and call.encoding != "identity":
        out["encoding"] = call.encoding
    out["requestMessages"] = [_message_record(m) for m in call.request.messages]
    if call.request.leftover or call.request.more:
        out["requestTruncated"] = True
    if call.response is not None:
        out["responseMessages"] = [_message_record(m) for m in call.response.messages]
        if call.response.leftover or call.response.more:
            out["responseTruncated"] = True
    if call.status is not None:
        out["status"] = call.status
        out["statusName"] = status_name(call.status)
    if call.message:
        out["message"] = call.message
    if call.trailers:
        out["trailers"] = dict(call.trailers)
    return out


# --- schemas ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MethodInfo:
    input_type: str
    output_type: str
    client_streaming: bool
    server_streaming: bool


class Schema:
    """Message types and methods from .proto files or a FileDescriptorSet (protoc -o)."""

    def __init__(self, fds_bytes: bytes, where: str) -> None:
        from google.protobuf import descriptor_pb2, descriptor_pool

        fds = descriptor_pb2.FileDescriptorSet()
        try:
            fds.ParseFromString(fds_bytes)
        except Exception as e:  # noqa: BLE001 - protobuf's DecodeError or a C-level error
            raise ValueError(f"{where}: not a FileDescriptorSet ({e})") from None
        if not fds.file:
            raise ValueError(f"{where}: no files in the descriptor set")
        self.pool = descriptor_pool.DescriptorPool()
        have = {f.name for f in fds.file}
        added: set[str] = set()

        def add(fp: Any) -> None:
            if fp.name in added:
                return
            for dep in fp.dependency:
                if dep not in have:
                    add(_well_known(dep, where))
                else:
                    add(by_name[dep])
            try:
                self.pool.Add(fp)
            except Exception as e:  # noqa: BLE001 - TypeError / conflicts from the pool
                raise ValueError(f"{where}: {fp.name}: {e}") from None
            added.add(fp.name)

        by_name = {f.name: f for f in fds.file}
        for fp in fds.file:
            add(fp)
        self.methods: dict[str, MethodInfo] = {}
        for name in added:
            fd = self.pool.FindFileByName(name)
            for svc in fd.services_by_name.values():
                for m in svc.methods:
                    self.methods[f"/{svc.full_name}/{m.name}"] = MethodInfo(
                        m.input_type.full_name, m.output_type.full_name,
                        m.client_streaming, m.server_streaming)
        self._classes: dict[str, Any] = {}

    def merge(self, other: Schema) -> None:
        """Methods of another schema too (a second --proto-descriptor)."""
        for path, info in other.methods.items():
            self.methods.setdefault(path, info)
            self._classes.setdefault(info.input_type, other._cls(info.input_type))
            self._classes.setdefault(info.output_type, other._cls(info.output_type))

    def message_type(self, path: str, request: bool) -> str | None:
        info = self.methods.get(path.split("?", 1)[0])
        if info is None:
            return None
        return info.input_type if request else info.output_type

    def _cls(self, type_name: str) -> Any:
        cls = self._classes.get(type_name)
        if cls is None:
            from google.protobuf import message_factory

            cls = self._classes[type_name] = message_factory.GetMessageClass(
                self.pool.FindMessageTypeByName(type_name))
        return cls

    def decode(self, type_name: str, data: bytes) -> dict[str, Any]:
        """The message as a dict with the .proto's field names (proto3 JSON mapping). ValueError."""
        from google.protobuf import json_format

        msg = self._cls(type_name)()
        try:
            msg.ParseFromString(data)
        except Exception as e:  # noqa: BLE001 - protobuf raises its own DecodeError (a plain Exception)
            raise ValueError(str(e) or "does not parse") from None
        return json_format.MessageToDict(msg, preserving_proto_field_name=True)

    @classmethod
    def load(cls, proto_paths: list[str], descriptors: list[str]) -> Schema | None:
        """The schema of the options (None when none is set). Raises ValueError: one line, naming
        the file or directory at fault."""
        schemas = [cls(_compile(d), f"--proto-path {d}") for d in proto_paths]
        for path in descriptors:
            try:
                data = Path(path).expanduser().read_bytes()
            except OSError as e:
                raise ValueError(f"--proto-descriptor {path}: {e.strerror or e}") from None
            schemas.append(cls(data, f"--proto-descriptor {path}"))
        if not schemas:
            return None
        first = schemas[0]
        for s in schemas[1:]:
            first.merge(s)
        return first


def _well_known(name: str, where: str) -> Any:
    """google/protobuf/*.proto a descriptor set may leave out (protoc -o without --include_imports)."""
    import importlib

    from google.protobuf import descriptor_pb2, descriptor_pool

    if name.startswith("google/protobuf/") and name.endswith(".proto"):
        try:
            importlib.import_module("google.protobuf." + name[16:-6] + "_pb2")
            fd = descriptor_pool.Default().FindFileByName(name)
            return descriptor_pb2.FileDescriptorProto.FromString(fd.serialized_pb)
        except (ImportError, KeyError):
            pass
    raise ValueError(f"{where}: imports {name}, which is not in it (protoc --include_imports)")


def _compile(directory: str) -> bytes:
    """The .proto files under `directory` compiled by grpc_tools' protoc into a FileDescriptorSet.
    protoc runs in a child process: its errors come back as text, not on our terminal."""
    root = Path(directory).expanduser().resolve()
    if not root.is_dir():
        raise ValueError(f"--proto-path {directory}: not a directory")
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*.proto"))
    if not files:
        raise ValueError(f"--proto-path {directory}: no .proto files in it")
    try:
        import grpc_tools
    except ImportError:
        raise ValueError("--proto-path needs grpcio-tools (pip install grpcio-tools)") from None
    bundled = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    with tempfile.TemporaryDirectory(prefix="omniproxy-proto-") as tmp:
        out = os.path.join(tmp, "set.pb")
        argv = [sys.executable, "-m", "grpc_tools.protoc", "-I.", f"-I{bundled}", "--include_imports",
                f"--descriptor_set_out={out}", *files]
        try:
            proc = subprocess.run(argv, cwd=root, capture_output=True, timeout=60, text=True)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ValueError(f"--proto-path {directory}: protoc did not run ({e})") from None
        if proc.returncode != 0:
            errors = [s.strip() for s in proc.stderr.splitlines() if s.strip()]
            first = errors[0] if errors else f"protoc exited with {proc.returncode}"
            more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
            raise ValueError(f"--proto-path {directory}: {first}{more}")
        return Path(out).read_bytes()


# The schema the running proxy loaded (Proxy.start): the capture and the UI decode with it.
_active: Schema | None = None


def set_schema(schema: Schema | None) -> None:
    global _active
    _active = schema


def active_schema() -> Schema | None:
    return _active
