"""Coders: the rANS entropy layer now; lossy DiffC and the lossless coders as they land."""
