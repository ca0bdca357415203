"""What drives the engine: named commands and the UI's client interface."""
