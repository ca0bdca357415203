"""view.focus.next / view.focus.prev (the detail's space, J and K; mitmproxy's names)."""

from __future__ import annotations

import pytest

from proxycore.control.commands import CommandContext, CommandError, registry
from proxycore.flows.flow import Flow, Request, Response
from proxycore.flows.view import FlowView


def flows(n: int) -> list[Flow]:
    out = []
    for i in range(n):
        f = Flow(Request("GET" if i % 2 else "POST", "https", "api.example.com", 443, f"/item/{i}"))
        f.response = Response(200, "OK")
        out.append(f)
    return out


def test_next_and_prev_walk_the_shown_list_and_stop_following() -> None:
    view = FlowView()
    fs = flows(6)
    view.add_many(fs)
    ctx = CommandContext(view=view)
    view.set_filter("~m post")  # flows 0, 2, 4
    view.set_focus(fs[0])
    assert registry.execute(ctx, "view.focus.next") == f"flow {fs[2].id}"
    assert view.focus is fs[2] and not view.follow
    registry.execute(ctx, "view.focus.next")
    assert view.focus is fs[4]
    with pytest.raises(CommandError, match="no next flow"):
        registry.execute(ctx, "view.focus.next")
    assert view.focus is fs[4]  # no wrapping, as mitmproxy
    registry.execute(ctx, "view.focus.prev")
    registry.execute(ctx, "view.focus.prev")
    with pytest.raises(CommandError, match="no previous flow"):
        registry.execute(ctx, "view.focus.prev")
    assert view.focus is fs[0]


def test_empty_view() -> None:
    with pytest.raises(CommandError, match="no next flow"):
        registry.execute(CommandContext(view=FlowView()), "view.focus.next")
