"""Ten addons whose every hook does nothing: `bench_proxy.py --script bench/noop_addons.py` measures
what dispatching the hooks costs (omniproxy `-s FILE`, like mitmproxy's -s).

Every hook is a plain (not async) method that takes the flow or connection and returns None.
"""

from __future__ import annotations


class NoopAddon:
    def requestheaders(self, flow) -> None:
        return None

    def request(self, flow) -> None:
        return None

    def responseheaders(self, flow) -> None:
        return None

    def response(self, flow) -> None:
        return None

    def error(self, flow) -> None:
        return None

    def done(self, flow) -> None:
        return None

    def client_connected(self, client) -> None:
        return None

    def client_disconnected(self, client) -> None:
        return None


addons = [NoopAddon() for _ in range(10)]
