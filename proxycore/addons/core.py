"""The addons every proxy runs when configured: capture scope, blind tunnels, and the flow events
that feed the flow store, the capture and the UI. Registered first (scope, passthrough) and last
(events), so user addons see a flow's scope and subscribers see what user addons left."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from proxycore.flows.flow import Flow

if TYPE_CHECKING:
    from proxycore.addons.scope import Scope
    from proxycore.proxy.server import Proxy


class ScopeAddon:
    """--include-*/--exclude-*: out-of-scope flows are proxied but neither captured nor shown."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def requestheaders(self, flow: Flow) -> None:
        req = flow.request
        if req.host:
            flow.in_scope = self.scope.matches(req.host, req.path, req.method)

    def connect(self, flow: Flow) -> None:
        self.requestheaders(flow)


class PassthroughAddon:
    """--no-mitm and --skip-host: such CONNECTs are tunnelled untouched (one flow each)."""

    def __init__(self, mitm: bool, skip: Callable[[str], bool] | None) -> None:
        self.mitm = mitm
        self.skip = skip

    def connect(self, flow: Flow) -> None:
        if not self.mitm or (self.skip is not None and self.skip(flow.request.host)):
            flow.passthrough = True


class EventsAddon:
    """Publishes flows to the engine's flow store and subscribers, and hands finished ones to the
    capture. A CONNECT is published once it is known what it became (see the tunnel code)."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    def requestheaders(self, flow: Flow) -> None:
        if flow.in_scope:
            self.proxy.publish("add", flow)

    def responseheaders(self, flow: Flow) -> None:
        if flow.in_scope:
            self.proxy.publish("update", flow)

    def done(self, flow: Flow) -> None:
        self.proxy.flow_done(flow)

    error = done
