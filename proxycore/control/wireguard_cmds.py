"""The WireGuard mode's command (the UI opens its screen for it: key W)."""

from __future__ import annotations

from proxycore.control.commands import CommandContext, CommandError, command


@command("wireguard.config", "Show the WireGuard client configuration and its QR code (--mode wireguard)")
def _wireguard_config(ctx: CommandContext) -> str:
    conf = ctx.engine.wireguard_config if ctx.engine is not None else None
    if not conf:
        raise CommandError("not in WireGuard mode (start with --mode wireguard)")
    return conf
