"""What the bits-back coder borrows from the lossy coder (``codec/lossy.py``): the pixels' model
input, and the float discretised decoder p(x | z_0) that pushes and pops pixels (VDM eq. 28-30).
(The gamma codes come from the shared ``codec/fixed_point.py``.)

They are to move to a module of numerics that both coders share; until then this is the one file
of the package that imports ``codec.lossy``, and every other file takes them from here.
"""

from __future__ import annotations

import numpy as np

from diffc.codec.lossy import pixels_to_model, pop_pixels, push_pixels

__all__ = ["model_input", "pop_pixels", "push_pixels"]


def model_input(pixels: np.ndarray) -> np.ndarray:
    """(h, w, C) uint8 to the (1, h, w, 3) float64 x the model codes (exact: x is k/128 + c)."""
    return np.asarray(pixels_to_model(pixels), np.float64)
