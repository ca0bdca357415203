"""Content views: how bodies are shown (pretty-printing, images, hex ...)."""
