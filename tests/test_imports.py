"""Import hygiene: the UI reaches the engine only through its client interface, and the engine
never loads the UI's libraries."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The engine's runtime (connections, protocol layers, the proxy itself): the UI must go through
# proxycore.control.client (EngineClient) instead.
ENGINE_INTERNAL = ("proxycore.proxy", "proxycore.layers")


def _imported_modules(path: Path, package: str) -> list[tuple[int, str]]:
    """Every module an import statement in `path` names, anywhere (functions included), with
    relative imports resolved against `package`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
            # `from proxycore import server` names the module in the alias
            out += [(node.lineno, f"{mod}.{a.name}") for a in node.names]
    return sorted(out)


def _is_internal(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in ENGINE_INTERNAL)


def test_ui_imports_no_engine_internals() -> None:
    files = sorted((ROOT / "omniproxy_tui").rglob("*.py"))
    assert files
    bad = []
    for path in files:
        rel = path.relative_to(ROOT)
        package = ".".join(rel.with_suffix("").parts[:-1]) if rel.name != "__init__.py" else \
            ".".join(rel.parent.parts)
        bad += [f"{rel}:{line}: {mod}" for line, mod in _imported_modules(path, package) if _is_internal(mod)]
    assert not bad, "the UI must use proxycore.control.client, not:\n" + "\n".join(bad)


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from proxycore.proxy.server import Proxy\n    import proxycore.proxy.http1\n"
                   "from proxycore.proxy import tunnel\nfrom ..proxycore import upstream\n")
    mods = [m for _, m in _imported_modules(src, "omniproxy_tui.sub")]
    assert {m for m in mods if _is_internal(m)} == {"proxycore.proxy.server", "proxycore.proxy.server.Proxy",
                                                    "proxycore.proxy.http1", "proxycore.proxy",
                                                    "proxycore.proxy.tunnel"}
    assert "omniproxy_tui.proxycore" in mods  # relative: resolved against the package, not the engine


def test_engine_imports_no_ui_libraries() -> None:
    code = ("import sys, proxycore, proxycore.control.client, proxycore.flows.store, proxycore.flows.serialize, "
            "proxycore.errors, proxycore.control.commands, proxycore.flows.view\n"
            "bad = [m for m in ('textual', 'click', 'rich') if m in sys.modules]\n"
            "assert not bad, bad\n"
            "print('ok')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIPROXY_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
