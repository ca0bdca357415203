"""The Textual widgets and screens of the UI."""
