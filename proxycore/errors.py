"""Errors the engine's clients see (no engine internals needed to catch them)."""

from __future__ import annotations


class StartupError(Exception):
    """A problem that stops the proxy from starting; the message is one line for the user."""


__all__ = ["StartupError"]
