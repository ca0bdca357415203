"""Protocol layers: sans-io codecs (bytes in, events out; events in, bytes out) and the TLS layer.

Nothing here touches a socket; the connection pumps in `proxycore.proxy` feed them.
"""
