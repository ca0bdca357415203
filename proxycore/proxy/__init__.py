"""The proxy's runtime: the listener, connection pumps, the flow driver, upstream pool, tunnels."""
