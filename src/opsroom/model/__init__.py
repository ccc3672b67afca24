"""Shared value types: frozen dataclasses and string enums, no I/O."""
