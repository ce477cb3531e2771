"""The persistent XLA compilation cache, so that a second run on the same shapes does not compile.

The cache lives in ``$DIFFC_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/diffc/jax`` (by default
``~/.cache/diffc/jax``). Set ``DIFFC_CACHE_DIR=`` (empty) to disable it.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

ENV = "DIFFC_CACHE_DIR"


def cache_dir() -> Path | None:
    """Where compiled programs are cached, or None if disabled."""
    if ENV in os.environ:
        return Path(os.environ[ENV]).expanduser() if os.environ[ENV] else None
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "diffc" / "jax"


def enable_compilation_cache() -> Path | None:
    """Point JAX's persistent compilation cache at ``cache_dir()`` (idempotent); return it."""
    path = cache_dir()
    if path is None:
        return None
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
