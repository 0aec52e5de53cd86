"""Widgets of the terminal UI, one per module; they talk to their screens through messages."""
