"""OmniProxy TUI: the command line and the Textual terminal UI."""

__version__ = "0.1.0"
