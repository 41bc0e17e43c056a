"""Kitaru's engine. The public API is the ``kitaru`` package; this is what is behind it."""

__version__ = "0.1.0"
