"""The throttling commands (`throttle.set`, `throttle.custom`, `throttle.off`, `throttle.status`,
`throttle.filter`): registered into the one command registry when `proxycore.control.commands` loads.

They act on the engine's `Throttle` (`EngineClient.throttle`); the UI's throttle panel, the palette and
tests all go through them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxycore.control.commands import Arg, CommandContext, CommandError, command
from proxycore.throttle import PRESETS, custom_profile, preset

if TYPE_CHECKING:
    from proxycore.throttle import Throttle


def _throttle(ctx: CommandContext) -> Throttle:
    th = ctx.engine.throttle if ctx.engine is not None else None
    if th is None:
        raise CommandError("throttling is not available without a running engine")
    return th


@command("throttle.set", "Throttle matching traffic with a preset network profile",
         Arg("preset", str, "network preset", choices=tuple(PRESETS)))  # choices: one palette entry each
def _throttle_set(ctx: CommandContext, name: str) -> str:
    th = _throttle(ctx)
    th.set(preset(name))
    return th.status()


@command("throttle.custom", "Throttle matching traffic with custom values (rates in bit/kbit/mbit, "
         "latency in ms; 0 = unlimited)",
         Arg("down", str, "download rate, e.g. 1mbit"), Arg("up", str, "upload rate, e.g. 512kbit"),
         Arg("latency", str, "latency each request's round trip gains, e.g. 100ms", "0"))
def _throttle_custom(ctx: CommandContext, down: str, up: str, latency: str) -> str:
    th = _throttle(ctx)
    th.set(custom_profile(down, up, latency))
    return th.status()


@command("throttle.off", "Stop throttling (queued bytes go out at once)")
def _throttle_off(ctx: CommandContext) -> str:
    th = _throttle(ctx)
    th.set(None)
    return th.status()


@command("throttle.status", "Show the throttle profile, its scope and the live throughput")
def _throttle_status(ctx: CommandContext) -> str:
    return _throttle(ctx).status()


@command("throttle.filter", "Throttle only flows matching a filter expression (empty: all flows)",
         Arg("expr", str, "filter expression, e.g. ~d api.example.com", ""))
def _throttle_filter(ctx: CommandContext, expr: str) -> str:
    th = _throttle(ctx)
    th.set_filter(expr)
    return f"throttle scope: {th.filter_expr!r}" if th.filter_expr else "throttle scope: all flows"
