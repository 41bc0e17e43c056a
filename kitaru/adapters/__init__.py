"""Adapters that make agent frameworks durable with Kitaru (each an optional extra)."""
