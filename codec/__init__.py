"""diffc's coders. ``compress`` and ``decompress`` (from ``api``) load on first use, so that
importing the entropy layer does not load JAX."""

from typing import Any

__all__ = ["compress", "decompress"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from diffc.codec import api

        return getattr(api, name)
    raise AttributeError(f"module 'diffc.codec' has no attribute {name!r}")
