"""The one vector codec: round trips, and the wire formats written before it still read."""

from __future__ import annotations

import base64
import zlib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from stream_monitor.scaleout.partials import decode_record, encode_pane, pane_key
from stream_monitor.state.vectors import (
    from_sparse_parts,
    pack,
    pack_text,
    sparse_parts,
    unpack,
    unpack_text,
)

VECTOR = np.array([0.0, 3.0, 0.0, 0.0, 1.5, -2.0, 0.0, 7.0])
#: ``VECTOR`` as a changelog pane record's "vector", written by the release before this codec.
CHANGELOG_TEXT = "eAFjYEAGHA7IPAT7hz2UfQAhBmLJOAAAOp8CnA=="
#: ``VECTOR`` as a partials pane record (offset 42, reference "ab"), written by that release.
PARTIAL_VALUE = (
    b'{"offset":42,"reference":"ab","width":8,"index":"AQAAAAQAAAAFAAAABwAAAA==",'
    b'"value":"AAAAAAAACEAAAAAAAAD4PwAAAAAAAADAAAAAAAAAHEA="}'
)

FLOATS = hnp.arrays(
    np.float64,
    st.integers(0, 300),
    elements=st.floats(allow_nan=False) | st.sampled_from([0.0, -0.0, 1.0]),
)


@settings(max_examples=100, deadline=None)
@given(FLOATS)
def test_every_form_round_trips_bit_for_bit(vector: np.ndarray) -> None:
    assert unpack(pack(vector)).tobytes() == vector.tobytes()
    assert unpack_text(pack_text(vector)).tobytes() == vector.tobytes()
    restored = from_sparse_parts(*sparse_parts(vector))
    assert np.array_equal(restored, vector) and restored.shape == vector.shape


def test_a_changelog_written_before_still_restores() -> None:
    assert unpack_text(CHANGELOG_TEXT).tolist() == VECTOR.tolist()
    old_encoding = base64.b64encode(zlib.compress(VECTOR.astype("<f8").tobytes(), 1))
    assert pack_text(VECTOR) == old_encoding.decode("ascii")


def test_partials_written_before_still_read_and_are_written_the_same() -> None:
    record = decode_record(pane_key(("t", 3), ("m", "v1"), 7), PARTIAL_VALUE)
    assert record is not None and record.vector.tolist() == VECTOR.tolist()  # type: ignore[union-attr]
    assert encode_pane(VECTOR, 42, "ab") == PARTIAL_VALUE


def test_decoded_vectors_are_writable_and_unpacked_panes_read_only() -> None:
    assert unpack_text(pack_text(VECTOR)).flags.writeable
    assert from_sparse_parts(*sparse_parts(VECTOR)).flags.writeable
    assert not unpack(pack(VECTOR)).flags.writeable
