"""The photo shipped with diffc, so that its main job runs with nothing beside the package.

``basil-tomatoes.png`` (256x256 RGB PNG): CID22 image 1391487 downscaled 2x with a box filter;
licence CC BY-SA 4.0 (``README.md`` beside it gives its source). ``diffc sample -o sample.png``
writes it out; Python reads it with ``read_bytes()``.
"""

from __future__ import annotations

from importlib import resources

NAME = "basil-tomatoes.png"
SIZE = (256, 256)  # width, height
ATTRIBUTION = "CID22 image 1391487 (Cloudinary), downscaled 2x, CC BY-SA 4.0"


def read_bytes() -> bytes:
    """The PNG file's bytes, from the installed package (a folder or an archive)."""
    return resources.files(__name__).joinpath(NAME).read_bytes()
