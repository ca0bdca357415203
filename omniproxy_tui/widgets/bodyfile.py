"""A body out of the app: `b` saves it to a file, `v` opens it in $PAGER.

Both take the body whole (a spilled one is read back from its file) and decoded (gzip, br,
deflate, zstd undone), as mitmproxy's `cut.save` / "view in pager" give the content, not the wire
bytes. The work runs in a thread; the file is written through `proxycore.safefile` (0600 when new,
never through a symlink).
"""

from __future__ import annotations

import mimetypes
import os
import re
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from proxycore import safefile
from proxycore.encoding import decode_body
from proxycore.flows.flow import Flow, Request, Response

_DECODED_MAX = 1 << 32  # a decoded body bigger than 4 GiB is cut there (a zip bomb, not a body)
_EXTENSIONS = {"application/json": ".json", "text/plain": ".txt", "text/javascript": ".js",
               "application/javascript": ".js", "image/jpeg": ".jpg", "application/octet-stream": ".bin",
               "text/xml": ".xml", "application/xml": ".xml"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def decoded_body(msg: Request | Response) -> tuple[bytes, str | None]:
    """The whole body with its Content-Encoding undone; (raw bytes, why) when that failed."""
    return decode_body(msg.body, msg.headers.get("content-encoding"), max_size=_DECODED_MAX)


def default_name(flow: Flow, msg: Request | Response, directory: Path | None = None) -> str:
    """A file name from the URL's last path segment and the content type: `items.json`,
    `example.com-response.html`; `-1`, `-2` ... added when the name is taken in `directory`."""
    req = flow.request
    seg = unquote(req.path.rstrip("/").rsplit("/", 1)[-1]) if req.method != "CONNECT" else ""
    stem = _UNSAFE.sub("_", seg).strip("._") or _UNSAFE.sub("_", req.host or "body").strip("._")
    part = "request" if msg is req else "response"
    if not seg:
        stem = f"{stem}-{part}"
    mime = (msg.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    ext = _EXTENSIONS.get(mime) or (mimetypes.guess_extension(mime) if mime else None) or ""
    if not ext and "+json" in mime:
        ext = ".json"
    base, have = os.path.splitext(stem)
    if ext and have.lower() == ext:
        stem, ext = base, have  # items.json stays items.json
    elif not ext:
        stem, ext = (base, have) if have else (stem, ".bin")
    stem = stem[:100]
    name = f"{stem}{ext}"
    where = directory or Path.cwd()
    n = 1
    while (where / name).exists():
        name = f"{stem}-{n}{ext}"
        n += 1
    return name


def write_body(path: Path, data: bytes) -> None:
    """Write `data` to `path` (0600 when new, atomically, never through a link)."""
    safefile.write_atomic(path, data)


class PathPrompt(ModalScreen["str | None"]):
    """Ask for a file path, with a default; Enter answers it, Esc answers None."""

    DEFAULT_CSS = """
    PathPrompt { align: center middle; background: $background 60%; }
    PathPrompt > Vertical { width: 90%; max-width: 100; height: auto; border: round $accent;
                            background: $surface; padding: 0 1; }
    PathPrompt .dialog-title { text-style: bold; color: $text-accent; }
    PathPrompt .dialog-keys { color: $text-muted; }
    PathPrompt Input, PathPrompt Input:focus { border: none; height: 1; padding: 0 1; margin: 1 0; width: 1fr;
                                              background: $boost; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, title: str, default: str, note: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.default = default
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, classes="dialog-title", markup=False)
            if self.note:
                yield Static(self.note, classes="dialog-keys", markup=False)
            yield Input(self.default, id="path-input")
            yield Static("[b]⏎[/b] save   [b]esc[/b] cancel", classes="dialog-keys")

    def on_mount(self) -> None:
        box = self.query_one(Input)
        box.focus()
        box.cursor_position = len(box.value)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


__all__ = ["PathPrompt", "decoded_body", "default_name", "write_body"]
