"""Where a copy can go, so the UI says "copied" only when it went somewhere.

Two routes:
- OSC 52: the terminal sets its clipboard from an escape sequence; works over SSH. Inside tmux
  it reaches the terminal only with `set-clipboard on` (tmux's default, `external`, ignores
  applications' sequences), and GNU screen drops it: there we ask tmux, and give up under screen.
  Whether the terminal itself honours OSC 52 cannot be asked; most do (xterm, iTerm2, kitty,
  WezTerm, Windows Terminal, foot, Alacritty).
- the local clipboard through pyperclip (xclip/xsel/wl-copy, pbcopy, Windows), when one exists.

The answer is cached per environment (the commands run once, not per copy).
"""

from __future__ import annotations

import os
import subprocess

_cache: dict[tuple, list[str]] = {}
NO_CLIPBOARD_HINT = ("no clipboard reachable: in tmux run `tmux set -g set-clipboard on` (OSC 52), "
                     "or install xclip / wl-copy")


def _env_key() -> tuple:
    return tuple(os.environ.get(v) for v in ("TMUX", "STY", "DISPLAY", "WAYLAND_DISPLAY", "PATH"))


def _tmux_passes_osc52() -> bool:
    try:
        out = subprocess.run(["tmux", "show-options", "-gv", "set-clipboard"], capture_output=True,
                             text=True, timeout=2, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip() == "on"


def local_clipboard() -> bool:
    try:
        import pyperclip

        copy, _paste = pyperclip.determine_clipboard()
    except Exception:
        return False
    return type(copy).__name__ != "ClipboardUnavailable"


def routes() -> list[str]:
    """The routes a copy takes now: "OSC 52" and/or "local clipboard"; empty: it goes nowhere."""
    key = _env_key()
    found = _cache.get(key)
    if found is None:
        found = []
        if os.environ.get("STY"):
            pass  # GNU screen swallows OSC 52
        elif not os.environ.get("TMUX") or _tmux_passes_osc52():
            found.append("OSC 52")
        if local_clipboard():
            found.append("local clipboard")
        _cache[key] = found
    return list(found)
