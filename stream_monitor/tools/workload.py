"""The benchmark's workload: its options, the monitor config it implies, and its traffic.

:class:`Workload` holds every option of ``stream-monitor bench`` that shapes the
events; :class:`BenchTraffic` generates them, seeded, drifting half-way (one
numeric feature, one categorical feature with new categories, and the score),
so that evaluation emits drift events as in production; :func:`row_messages`
and :func:`micro_batch_messages` encode them as Kafka message values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from stream_monitor.config import MonitorConfig
from stream_monitor.config_file import config_from_dict, parse_duration_s
from stream_monitor.decode.batches import RawMessage

#: Event time of the first synthetic event (2023-11-14T22:13:20Z).
START_S = 1_700_000_000.0
#: Largest message the benchmark config accepts (a micro-batch of wide events is big).
BENCH_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: After the steady state, the memory run feeds this many times ``events`` more.
MEMORY_GROWTH_FACTOR = 10


@dataclass(frozen=True)
class Workload:
    """What the benchmark feeds the engine; every field has a command-line option."""

    events: int = 200_000
    features: int = 23
    categorical: int = 3
    categories: int = 12
    models: int = 1
    windows: tuple[str, ...] = ("5m", "1h", "24h")
    pane_s: float = 60.0
    batch: int = 2000
    micro_batch: int = 1000
    rate_per_s: float = 1000.0
    label_ratio: float = 0.3
    null_ratio: float = 0.05
    repeats: int = 3
    seed: int = 42

    def __post_init__(self) -> None:
        if self.events < 1 or self.batch < 1 or self.micro_batch < 1 or self.repeats < 1:
            raise ValueError("--events, --batch, --micro-batch and --repeats must be positive")
        if self.models < 1:
            raise ValueError("--models must be at least 1")
        if not 0 <= self.categorical <= self.features or self.features < 1:
            raise ValueError("--features must be >= 1 and --categorical within 0..--features")
        if self.categories < 2:
            raise ValueError("--categories must be at least 2")
        if self.rate_per_s <= 0:
            raise ValueError("--rate must be positive")

    @property
    def numeric(self) -> int:
        """Number of numeric features."""
        return self.features - self.categorical

    def numeric_names(self) -> list[str]:
        """Names of the numeric features."""
        return [f"num_{j:02d}" for j in range(self.numeric)]

    def categorical_names(self) -> list[str]:
        """Names of the categorical features."""
        return [f"cat_{j}" for j in range(self.categorical)]

    def model_names(self) -> list[str]:
        """Names of the models the events are spread over (round robin)."""
        return [f"bench-{m}" for m in range(self.models)]

    @property
    def keep_s(self) -> float:
        """Event time the engine keeps per model: the largest window plus the lateness."""
        largest = max(parse_duration_s(w, "--windows") for w in self.windows)
        return largest + WINDOW_LATENESS_S + self.pane_s


#: Allowed lateness of the benchmark config (the product default).
WINDOW_LATENESS_S = 300.0


def workload_from_dict(data: dict[str, Any]) -> Workload:
    """Inverse of :func:`dataclasses.asdict` for :class:`Workload`."""
    return Workload(**{**data, "windows": tuple(data["windows"])})


def bench_config(workload: Workload) -> MonitorConfig:
    """The monitor config of the benchmark: one binary classifier per model, product defaults.

    Only the message-size limits are raised, so that micro-batches of wide events fit.
    """
    return config_from_dict(bench_config_data(workload))


def bench_config_data(workload: Workload) -> dict[str, Any]:
    """:func:`bench_config` as the YAML document a monitor process reads."""
    features = dict.fromkeys(workload.numeric_names(), "numeric")
    features.update(dict.fromkeys(workload.categorical_names(), "categorical"))
    return dict(
        {
            "models": [
                {"name": name, "task": "binary", "features": features}
                for name in workload.model_names()
            ],
            "windows": {
                "pane_s": workload.pane_s,
                "sizes": list(workload.windows),
                "allowed_lateness_s": WINDOW_LATENESS_S,
            },
            "limits": {
                "max_message_bytes": BENCH_MAX_MESSAGE_BYTES,
                "max_batch_events": max(10_000, workload.micro_batch),
            },
        }
    )


class BenchTraffic:
    """Seeded synthetic events of :class:`Workload`, generated in chunks (numpy, then dicts).

    Numeric features cycle through four shapes: normal, log-normal, zero-inflated
    (many equal quantiles, so merged bin edges) and small integer counts. The
    log-normal ones (every fourth numeric feature) are nullable, each value null
    with probability ``null_ratio``; the others are always present. Categorical values
    follow a Zipf law over ``categories`` values. From event ``drift_at`` on,
    ``num_00`` shifts by half a standard deviation, ``cat_0``'s frequencies
    reverse and 5% of its values are new, and the score shifts up.

    >>> traffic = BenchTraffic(Workload(features=3, categorical=1, categories=3), rate_per_s=10)
    >>> [sorted(e) for e in traffic.take(2)][0]
    ['event_id', 'features', 'latency_ms', 'model', 'model_version', 'prediction', 'timestamp']
    >>> traffic.sent
    2
    """

    def __init__(
        self,
        workload: Workload,
        rate_per_s: float,
        drift_at: int | None = None,
        start_s: float = START_S,
    ) -> None:
        self.workload = workload
        self.rate_per_s = rate_per_s
        self.drift_at = workload.events // 2 if drift_at is None else drift_at
        self.start_s = start_s
        self.rng = np.random.default_rng(workload.seed)
        self.sent = 0
        self._models = workload.model_names()
        self._numeric = workload.numeric_names()
        self._categorical = workload.categorical_names()
        ranks = np.arange(1, workload.categories + 1, dtype=np.float64)
        self._weights = (1.0 / ranks) / (1.0 / ranks).sum()
        self._values = np.array([f"v{k:02d}" for k in range(workload.categories)], dtype=object)
        self._new_values = np.array([f"new-{k}" for k in range(5)], dtype=object)

    def _numeric_column(self, j: int, n: int, drifted: np.ndarray) -> list[Any]:
        rng = self.rng
        shape = j % 4
        values: np.ndarray
        if shape == 0:
            values = rng.normal(50.0 + 10.0 * j, 10.0, n)
            if j == 0:
                values = values + 5.0 * drifted
            values = np.round(values, 3)
        elif shape == 1:
            values = np.round(rng.lognormal(3.0, 0.8, n), 2)
        elif shape == 2:
            values = np.round(rng.exponential(100.0, n), 2)
            values[rng.random(n) < 0.35] = 0.0
        else:
            values = rng.poisson(3.0, n)
        column: list[Any] = values.tolist()
        if shape == 1:
            for row in np.flatnonzero(rng.random(n) < self.workload.null_ratio).tolist():
                column[row] = None
        return column

    def _categorical_column(self, j: int, n: int, drifted: np.ndarray) -> list[Any]:
        rng = self.rng
        values = self._values[rng.choice(len(self._values), n, p=self._weights)]
        if j == 0 and drifted.any():
            reversed_values = self._values[rng.choice(len(self._values), n, p=self._weights[::-1])]
            values = np.where(drifted, reversed_values, values)
            new = drifted & (rng.random(n) < 0.05)
            values[new] = self._new_values[rng.integers(0, len(self._new_values), int(new.sum()))]
        return list(values)

    def take(self, n: int) -> list[dict[str, Any]]:
        """The next ``n`` events (dicts in the inference-event schema)."""
        rng = self.rng
        first = self.sent
        index = np.arange(first, first + n)
        self.sent += n
        drifted = index >= self.drift_at
        timestamps = np.round(self.start_s + index / self.rate_per_s, 3).tolist()
        columns = [self._numeric_column(j, n, drifted) for j in range(len(self._numeric))]
        columns += [self._categorical_column(j, n, drifted) for j in range(len(self._categorical))]
        names = self._numeric + self._categorical
        score = np.round(1.0 / (1.0 + np.exp(-(rng.normal(-1.0, 1.0, n) + 0.6 * drifted))), 5)
        labelled = rng.random(n) < self.workload.label_ratio
        label = (rng.random(n) < score).astype(np.int64).tolist()
        latency = np.round(rng.lognormal(np.log(12.0), 0.4, n), 3).tolist()
        models = self._models
        events = []
        for row, values in enumerate(zip(*columns, strict=True)):
            number = first + row
            event: dict[str, Any] = {
                "event_id": f"ev-{number}",
                "model": models[number % len(models)],
                "model_version": "v1",
                "timestamp": timestamps[row],
                "features": dict(zip(names, values, strict=True)),
                "prediction": float(score[row]),
                "latency_ms": latency[row],
            }
            if labelled[row]:
                event["label"] = label[row]
            events.append(event)
        return events


def _dumps(value: Any) -> bytes:
    """orjson bytes, copied to their exact size (orjson's own buffer keeps its spare capacity,
    which would inflate the benchmark's memory far above a Kafka client's message values)."""
    return bytes(memoryview(orjson.dumps(value)))


def row_messages(events: Sequence[dict[str, Any]]) -> list[RawMessage]:
    """One Kafka message per event (orjson bytes; the message timestamp is the event's)."""
    return [RawMessage(_dumps(e), int(e["timestamp"] * 1000)) for e in events]


def micro_batch_messages(events: Sequence[dict[str, Any]], size: int) -> list[RawMessage]:
    """Messages holding a JSON array of ``size`` events each (the last one may hold fewer)."""
    return [
        RawMessage(_dumps(events[i : i + size]), int(events[i]["timestamp"] * 1000))
        for i in range(0, len(events), size)
    ]


def workload_messages(workload: Workload) -> tuple[list[RawMessage], list[RawMessage]]:
    """The events of ``workload``, as row messages and as micro-batch messages."""
    events = BenchTraffic(workload, rate_per_s=workload.rate_per_s).take(workload.events)
    rows = row_messages(events)
    micro = micro_batch_messages(events, workload.micro_batch)
    return rows, micro


def batches(
    messages: Sequence[RawMessage], rows_per_message: int, rows: int
) -> list[list[RawMessage]]:
    """``messages`` cut into engine batches of about ``rows`` events each."""
    per_batch = max(1, rows // rows_per_message)
    return [list(messages[i : i + per_batch]) for i in range(0, len(messages), per_batch)]
