"""The keys of the state, and a partition's share of it as stored in a checkpoint.

A leaf module: the Kafka changelog and the scale-out partials name state by
these keys without depending on how the state is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: An input partition: (topic, partition).
PartitionKey = tuple[str, int]
#: A model version: (model, version).
VersionKey = tuple[str, str]
#: One pane of a model version: ((model, version), pane index).
PaneKey = tuple[VersionKey, int]


@dataclass
class PartitionCheckpoint:
    """One partition's restored (or to-be-written) share of the state."""

    key: PartitionKey
    seq: int
    meta: dict[str, Any]
    panes: dict[PaneKey, np.ndarray] = field(default_factory=dict)
