"""The flow model, the engine's flow store, the lossless serialisation, views and filters."""
