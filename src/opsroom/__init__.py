"""opsroom: scripts become typed chat commands."""

__version__ = "0.1.0"

__all__ = ["__version__"]
