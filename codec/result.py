"""What every lossless coder's encode result reports about its stream's size."""

from __future__ import annotations


class StreamSize:
    """``total_bits`` and ``bpd`` of a result with the container ``data`` and the ``dims`` coded."""

    data: bytes
    dims: int

    @property
    def total_bits(self) -> int:
        return 8 * len(self.data)

    @property
    def bpd(self) -> float:
        """Bits per subpixel of the whole stream, header included."""
        return self.total_bits / self.dims
