"""Moved to ``diffc.runtime.compilation_cache``; this alias stays only until ``cli/train.py`` imports
it from there."""

from diffc.runtime.compilation_cache import ENV, cache_dir, enable_compilation_cache

__all__ = ["ENV", "cache_dir", "enable_compilation_cache"]
