"""gRPC test helpers: the echo service's generated modules (compiled at test time with
grpc_tools.protoc from tests/data/grpc/echo.proto) and gRPC message framing."""

from __future__ import annotations

import gzip
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

PROTO_DIR = Path(__file__).parent / "data" / "grpc"


def compile_echo(out: Path) -> tuple[ModuleType, ModuleType]:
    """echo_pb2 and echo_pb2_grpc, generated into `out` and imported from there."""
    from grpc_tools import protoc

    out.mkdir(parents=True, exist_ok=True)
    rc = protoc.main(["protoc", f"-I{PROTO_DIR}", f"--python_out={out}", f"--grpc_python_out={out}",
                      str(PROTO_DIR / "echo.proto")])
    assert rc == 0, "protoc failed"
    mods = []
    for name in ("echo_pb2", "echo_pb2_grpc"):
        if name in sys.modules:  # generated once per session (the descriptor pool is global)
            mods.append(sys.modules[name])
            continue
        spec = importlib.util.spec_from_file_location(name, out / f"{name}.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod  # echo_pb2_grpc imports echo_pb2 by name
        spec.loader.exec_module(mod)
        mods.append(mod)
    return mods[0], mods[1]


def frame(payload: bytes, compress: bool = False) -> bytes:
    """One length-prefixed gRPC message (gzip when `compress`)."""
    if compress:
        payload = gzip.compress(payload)
    return bytes([1 if compress else 0]) + len(payload).to_bytes(4, "big") + payload


def trailer_frame(pairs: list[tuple[str, str]]) -> bytes:
    """A gRPC-Web trailer frame (flag 0x80)."""
    block = "".join(f"{k}: {v}\r\n" for k, v in pairs).encode()
    return b"\x80" + len(block).to_bytes(4, "big") + block
