"""What the UI remembers across runs (theme, side pane): `~/.omniproxy/ui.json` (`OMNIPROXY_HOME`
moves it). Written through proxycore.safefile; a missing or broken file means defaults, never an
error at start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from proxycore.options import omniproxy_home

FILE_NAME = "ui.json"


def state_path() -> Path:
    return omniproxy_home() / FILE_NAME


def load() -> dict[str, Any]:
    try:
        data = json.loads(state_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save(**changes: Any) -> str | None:
    """Merge `changes` into the file; returns a one-line error instead of raising."""
    from proxycore.safefile import write_atomic

    state = load()
    state.update(changes)
    path = state_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, (json.dumps(state, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    except OSError as exc:
        return f"cannot remember UI settings in {path}: {exc.strerror or exc}"
    return None
