"""OmniProxy engine: asyncio MITM proxy, flows, capture. No UI imports here."""

__version__ = "0.1.0"
