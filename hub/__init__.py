"""Vendor Connections Hub: realtime coordination for wedding vendors."""

__version__ = "0.1.0"
