"""Breakpoint commands (mitmproxy's names where it has them): intercept.set, intercept.toggle,
flow.resume, flow.resume_all, flow.kill, flow.revert, and flow.edit.apply for the editor.

They act on the engine's `Intercept` controller (proxycore/addons/intercept.py), reached through
the command context's engine; registered in the one command registry by importing this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxycore.control.commands import _SELECTOR, Arg, CommandContext, CommandError, _flows, command
from proxycore.flows.flow import Flow

if TYPE_CHECKING:
    from proxycore.addons.intercept import Intercept


def _ctl(ctx: CommandContext) -> Intercept:
    ctl = getattr(ctx.engine, "intercept", None) if ctx.engine is not None else None
    if ctl is None:
        raise CommandError("breakpoints need a running proxy")
    return ctl


def _n(n: int) -> str:
    return f"{n} flow{'s' * (n != 1)}"


def _select(ctx: CommandContext, ctl: Intercept, selector: str) -> list[Flow]:
    """The selected flows; flow ids also find paused flows the view no longer shows (deleted,
    or not yet folded in by the UI's next tick): they still hold a client."""
    flows = _flows(ctx, selector)
    if selector.strip().startswith("@"):
        return flows
    have = {f.id for f in flows}
    for part in selector.split(","):
        p = ctl.paused.get(int(part.strip())) if part.strip().isdigit() else None
        if p is not None and p.flow.id not in have:
            flows.append(p.flow)
    return flows


def _paused(ctl: Intercept, flows: list[Flow]) -> list[Flow]:
    paused = [f for f in flows if ctl.is_paused(f)]
    if not paused:
        raise CommandError("no paused flow selected" if len(flows) == 1 else "none of these flows is paused")
    return paused


def describe(ctl: Intercept) -> str:
    if ctl.filter is None:
        return "breakpoints off (no intercept filter; press i to set one)"
    return f"breakpoints {'on' if ctl.active else 'off'}: {ctl.expr}"


@command("intercept.set", "Pause flows matching a filter (~q requests only, ~s responses only; empty: off)",
         Arg("expr", str, "filter expression, e.g. ~d example.com & ~m post", ""))
def _intercept_set(ctx: CommandContext, expr: str) -> str:
    from proxycore.flows.filter import FilterError

    ctl = _ctl(ctx)
    try:
        ctl.set_filter(expr)
    except FilterError as exc:
        raise CommandError(f"intercept filter: {exc}") from None
    return describe(ctl)


@command("intercept.toggle", "Switch breakpoints off and on again without losing the filter")
def _intercept_toggle(ctx: CommandContext) -> str:
    ctl = _ctl(ctx)
    if ctl.filter is None:
        raise CommandError("no intercept filter set (press i to set one)")
    ctl.toggle()
    return describe(ctl)


@command("flow.resume", "Let paused flows go on", _SELECTOR)
def _flow_resume(ctx: CommandContext, selector: str) -> str:
    ctl = _ctl(ctx)
    n = ctl.resume(_paused(ctl, _select(ctx, ctl, selector)))
    return f"resumed {_n(n)}"


@command("flow.resume_all", "Let every paused flow go on")
def _flow_resume_all(ctx: CommandContext) -> str:
    n = _ctl(ctx).resume_all()
    return f"resumed {_n(n)}" if n else "no flow is paused"


@command("flow.kill", "Kill paused flows: the client connection is closed without a response", _SELECTOR)
def _flow_kill(ctx: CommandContext, selector: str) -> str:
    ctl = _ctl(ctx)
    n = ctl.kill(_paused(ctl, _select(ctx, ctl, selector)))
    return f"killed {_n(n)}"


def _changed(ctx: CommandContext, flow: Flow) -> None:
    """Tell the store (and so every subscriber) and the view that a flow changed."""
    ctl = getattr(ctx.engine, "intercept", None) if ctx.engine is not None else None
    if ctl is not None:
        ctl.publish("update", flow)
    ctx.view.update_many([flow])


def _editable(ctx: CommandContext, flow: Flow) -> None:
    ctl = getattr(ctx.engine, "intercept", None) if ctx.engine is not None else None
    if not flow.is_finished and not (ctl is not None and ctl.is_paused(flow)):
        raise CommandError(f"flow #{flow.id} is in flight: only paused or finished flows can be changed")


@command("flow.revert", "Undo the edits of flows (the original request and response back)", _SELECTOR)
def _flow_revert(ctx: CommandContext, selector: str) -> str:
    flows = _flows(ctx, selector)
    for f in flows:
        _editable(ctx, f)
    n = 0
    from proxycore.flows.rawedit import revert

    for f in flows:
        if revert(f):
            n += 1
            _changed(ctx, f)
    if not n:
        raise CommandError("nothing to revert: not edited" if len(flows) == 1 else "none of these flows was edited")
    return f"reverted {_n(n)}"


@command("flow.edit.apply", "Replace a flow's request or response with raw HTTP text (headers, blank line, body)",
         Arg("text", str, "the message as raw HTTP text"),
         Arg("part", str, "which message; auto: the paused one, else the response when there is one",
             "auto", choices=("auto", "request", "response")),
         Arg("flows", str, "the flow", "@focus"))
def _flow_edit_apply(ctx: CommandContext, text: str, part: str, selector: str) -> str:
    from proxycore.flows.rawedit import EditError, apply_text

    ctl = getattr(ctx.engine, "intercept", None) if ctx.engine is not None else None
    flows = _select(ctx, ctl, selector) if ctl is not None else _flows(ctx, selector)
    if len(flows) != 1:
        raise CommandError("an edit applies to one flow")
    flow = flows[0]
    _editable(ctx, flow)
    paused = ctl.paused.get(flow.id) if ctl is not None else None
    if paused is not None:
        if part not in ("auto", paused.phase):
            raise CommandError(f"flow #{flow.id} is paused at its {paused.phase}: only that can be edited now")
        part = paused.phase
    try:
        done = apply_text(flow, text, None if part == "auto" else part)
    except EditError as exc:
        raise CommandError(f"edit not applied: {exc}") from None
    _changed(ctx, flow)
    return f"edited the {done} of flow #{flow.id}"


# --- WebSocket and TCP messages (a paused message has the same fields in both) ---------------------


def _paused_message(ctx: CommandContext, selector: str) -> tuple[Intercept, Flow, object]:
    ctl = _ctl(ctx)
    flows = _select(ctx, ctl, selector)
    if len(flows) != 1:
        raise CommandError("this applies to one flow")
    p = ctl.paused.get(flows[0].id)
    if p is None or p.phase != "message":
        raise CommandError(f"flow #{flows[0].id} has no paused message")
    return ctl, flows[0], p.message


@command("websocket.message.edit", "Replace the content of the paused WebSocket or TCP message (UTF-8 text)",
         Arg("text", str, "the new content"), Arg("flows", str, "the flow", "@focus"))
def _ws_edit(ctx: CommandContext, text: str, selector: str) -> str:
    _ctl_, flow, msg = _paused_message(ctx, selector)
    msg.content = text.encode("utf-8")  # type: ignore[attr-defined]
    msg.size = len(msg.content)  # type: ignore[attr-defined]
    flow.modified = True
    _changed(ctx, flow)
    return f"edited the paused message of flow #{flow.id} (resume to send it)"


@command("websocket.message.drop", "Drop the paused WebSocket or TCP message (it is not sent on) and go on",
         Arg("flows", str, "the flow", "@focus"))
def _ws_drop(ctx: CommandContext, selector: str) -> str:
    ctl, flow, msg = _paused_message(ctx, selector)
    msg.drop()  # type: ignore[attr-defined]
    ctl.resume([flow])
    return f"dropped the paused message of flow #{flow.id}"


@command("inject.websocket", "Send a new WebSocket message on a live WebSocket flow (mitmproxy's inject.websocket)",
         Arg("flows", str, "the flow", "@focus"),
         Arg("to_client", bool, "true: to the client; false: to the server"),
         Arg("message", str, "the message"),
         Arg("is_text", bool, "a text message (else binary: the UTF-8 bytes of message)", True))
def _ws_inject(ctx: CommandContext, selector: str, to_client: bool, message: str, is_text: bool) -> str:
    flows = _flows(ctx, selector)
    if len(flows) != 1:
        raise CommandError("a message goes to one flow")
    flow = flows[0]
    if flow.websocket is None:
        raise CommandError(f"flow #{flow.id} is not a WebSocket flow")
    inject = getattr(ctx.engine, "websocket_inject", None) if ctx.engine is not None else None
    if inject is None:
        raise CommandError("injecting needs a running proxy")
    try:
        inject(flow.id, to_client, message.encode("utf-8"), is_text)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    return f"sent a message to the {'client' if to_client else 'server'} of flow #{flow.id}"


@command("inject.tcp", "Send new data on a live TCP flow (mitmproxy's inject.tcp)",
         Arg("flows", str, "the flow", "@focus"),
         Arg("to_client", bool, "true: to the client; false: to the server"),
         Arg("message", str, "the data (sent as UTF-8)"))
def _tcp_inject(ctx: CommandContext, selector: str, to_client: bool, message: str) -> str:
    flows = _flows(ctx, selector)
    if len(flows) != 1:
        raise CommandError("a message goes to one flow")
    flow = flows[0]
    if flow.tcp_messages is None:
        raise CommandError(f"flow #{flow.id} is not a TCP flow")
    inject = getattr(ctx.engine, "tcp_inject", None) if ctx.engine is not None else None
    if inject is None:
        raise CommandError("injecting needs a running proxy")
    try:
        inject(flow.id, to_client, message.encode("utf-8"))
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    return f"sent a message to the {'client' if to_client else 'server'} of flow #{flow.id}"
