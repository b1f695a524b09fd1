"""The one byte codec of float64 vectors: pane state, checkpoints and partials.

A vector's bytes are its little-endian float64 values. Stored panes
(:mod:`stream_monitor.state.ledger`) and changelog checkpoints
(:mod:`stream_monitor.kafka.changelog`) keep them zlib-compressed (:func:`pack`);
a JSON record carries those as base64 text (:func:`pack_text`). Partials
(:mod:`stream_monitor.scaleout.partials`) send a vector sparse: its width, the
little-endian int32 positions of its non-zero slots and their float64 values
(:func:`sparse_parts`). Counts are small integers and mostly zeros, so both
forms are small; nothing is rounded. :class:`SlotRange` gives a summary (a run
of slots) its ``to_bytes``/``from_bytes`` through the same codec.
"""

from __future__ import annotations

import base64
import zlib

import numpy as np

#: zlib level: level 1 packs a pane in well under a millisecond.
PACK_LEVEL = 1
FLOAT = np.dtype("<f8")
POSITION = np.dtype("<i4")


def pack(vector: np.ndarray) -> bytes:
    """``vector`` as compressed little-endian float64 bytes."""
    return zlib.compress(np.ascontiguousarray(vector, dtype=FLOAT).tobytes(), PACK_LEVEL)


def unpack(packed: bytes) -> np.ndarray:
    """The vector of :func:`pack` bytes (read-only).

    >>> unpack(pack(np.array([1.0, 0.0, 2.5]))).tolist()
    [1.0, 0.0, 2.5]
    """
    return np.frombuffer(zlib.decompress(packed), dtype=FLOAT)


def pack_text(vector: np.ndarray) -> str:
    """:func:`pack` as base64 text, for a JSON record."""
    return base64.b64encode(pack(vector)).decode("ascii")


def unpack_text(text: str) -> np.ndarray:
    """The vector of :func:`pack_text` text (a writable copy).

    >>> unpack_text(pack_text(np.array([1.0, 0.0, 2.5]))).tolist()
    [1.0, 0.0, 2.5]
    """
    return unpack(base64.b64decode(text)).copy()


def sparse_parts(vector: np.ndarray) -> tuple[int, bytes, bytes]:
    """``vector`` as its width and the bytes of its non-zero slots' positions and values."""
    index = np.flatnonzero(vector)
    values = np.asarray(vector, dtype=np.float64)[index]
    return len(vector), index.astype(POSITION).tobytes(), values.astype(FLOAT).tobytes()


def from_sparse_parts(width: int, index: bytes, values: bytes) -> np.ndarray:
    """The vector of :func:`sparse_parts` (writable).

    >>> from_sparse_parts(*sparse_parts(np.array([0.0, 2.0, 0.0, 1.5]))).tolist()
    [0.0, 2.0, 0.0, 1.5]
    """
    vector = np.zeros(int(width))
    vector[np.frombuffer(index, dtype=POSITION)] = np.frombuffer(values, dtype=FLOAT)
    return vector


class SlotRange:
    """Slots ``start .. start + width`` of a vector (a summary's), to bytes and back.

    >>> class Run(SlotRange):
    ...     start, width = 1, 2
    >>> Run().from_bytes(Run().to_bytes(np.array([9.0, 1.0, 2.0, 9.0]))).tolist()
    [0.0, 1.0, 2.0]
    """

    start: int

    @property
    def width(self) -> int:
        """Slots in the range."""
        raise NotImplementedError

    def to_bytes(self, vector: np.ndarray) -> bytes:
        """This range of ``vector`` as :func:`pack` bytes."""
        return pack(vector[self.start : self.start + self.width])

    def from_bytes(self, data: bytes) -> np.ndarray:
        """A vector of ``start + width`` slots holding the range saved by :meth:`to_bytes`."""
        values = unpack(data)
        if values.size != self.width:
            raise ValueError(f"state has {values.size} slots, the range has {self.width}")
        vector = np.zeros(self.start + self.width)
        vector[self.start :] = values
        return vector
