"""Built-in addons: the engine's own features, written against the same hooks as user addons."""
