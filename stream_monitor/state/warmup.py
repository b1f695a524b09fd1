"""A model version's events buffered while its reference is collected from them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from stream_monitor.decode.batches import ModelBatch

if TYPE_CHECKING:
    from stream_monitor.state.ledger import PartitionLedger


class WarmupBuffer:
    """Batches held with the ledger of the partition they came from, in arrival order.

    The buffer is emptied as soon as it holds ``reference.warmup_events`` rows,
    so it stays bounded.
    """

    def __init__(self) -> None:
        self.parts: list[tuple[PartitionLedger, ModelBatch]] = []
        self.rows = 0

    def add(self, ledger: PartitionLedger, batches: Iterable[ModelBatch]) -> None:
        """Hold ``batches`` from ``ledger``'s partition."""
        for batch in batches:
            self.parts.append((ledger, batch))
            self.rows += len(batch)

    def take(self) -> list[tuple[PartitionLedger, ModelBatch]]:
        """Everything held, in arrival order; the buffer is empty after."""
        parts, self.parts, self.rows = self.parts, [], 0
        return parts

    def drop(self, ledger: PartitionLedger) -> None:
        """Let go of the batches of ``ledger``'s partition (revoked)."""
        self.parts = [(owner, batch) for owner, batch in self.parts if owner is not ledger]
        self.rows = sum(len(batch) for _, batch in self.parts)

    def of(self, ledger: PartitionLedger) -> list[ModelBatch]:
        """The batches held from ``ledger``'s partition."""
        return [batch for owner, batch in self.parts if owner is ledger]
