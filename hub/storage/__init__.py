"""Persistence: the storage actor (group commit), the operations by domain, and the two engines."""

from hub.storage.handle import Storage, open_storage
from hub.storage.opening import make_engine, open_engine

__all__ = ["Storage", "make_engine", "open_engine", "open_storage"]
