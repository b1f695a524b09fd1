"""The block reader of JSON Lines numbers and skips lines exactly as a plain line loop."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from stream_monitor import files
from stream_monitor.decode.batches import RawMessage
from stream_monitor.files import jsonl_batches


def reference_lines(path: Path, timestamp_ms: int | None) -> list[RawMessage]:
    """The obvious reader: every line of the file, stripped, numbered from 0, blanks skipped."""
    messages = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle):
            if line.strip():
                messages.append(RawMessage(line.strip(), timestamp_ms, str(path), -1, number))
    return messages


TRICKY = [
    b"",
    b"\n",
    b"\n\n\n",
    b'{"a": 1}',
    b'{"a": 1}\n',
    b'{"a": 1}\r\n{"b": 2}\r\n',
    b'\n\n{"a": 1}\n  \n\t\n{"b": 2}',
    b'  {"a": 1}  \n\r\n \x0b\x0c \n{"b": "x y"}\r',
    b"no json at all\n\n\xff\xfe bad utf-8\n",
    b"\r\r\n\r",
]


def random_file(seed: int) -> bytes:
    """Lines of random lengths (some longer than a block), blanks, whitespace and CRLF endings."""
    rng = random.Random(seed)
    pieces = []
    for _ in range(rng.randint(0, 60)):
        body = b"x" * rng.choice([0, 1, 5, 40, 300])
        pad = rng.choice([b"", b" ", b"\t", b"\r", b" \r"])
        pieces.append(pad + body + pad + rng.choice([b"\n", b"\r\n", b"\n\n"]))
    return b"".join(pieces) + rng.choice([b"", b"tail", b"  ", b"\r"])


@pytest.mark.parametrize("block_bytes", [1, 3, 7, 64, 1 << 20])
def test_lines_and_numbers_match_a_plain_line_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_bytes: int
) -> None:
    monkeypatch.setattr(files, "READ_BLOCK_BYTES", block_bytes)
    contents = TRICKY + [random_file(seed) for seed in range(40)]
    for index, content in enumerate(contents):
        path = tmp_path / f"{index}.jsonl"
        path.write_bytes(content)
        for batch_size in (0, 1, 2, 1000):
            batches = list(jsonl_batches(path, batch_size, timestamp_ms=7))
            assert all(0 < len(batch) <= max(1, batch_size) for batch in batches)
            assert all(len(batch) == max(1, batch_size) for batch in batches[:-1])
            got = [message for batch in batches for message in batch]
            assert got == reference_lines(path, 7), content
            assert all(type(message) is RawMessage for message in got)


def test_on_read_hears_every_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "READ_BLOCK_BYTES", 10)
    path = tmp_path / "e.jsonl"
    path.write_bytes(b'{"a": 1}\n' * 25)
    heard: list[int] = []
    list(jsonl_batches(path, 4, on_read=heard.append))
    assert sum(heard) == path.stat().st_size and max(heard) == 10
