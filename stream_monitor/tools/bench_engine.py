"""``stream-monitor bench``: the engine's throughput in this process, against two decode floors.

* **decode floor**: ``orjson.loads`` of every message into dicts and nothing
  else, the least any JSON consumer that builds dicts has to do;
* **typed decode floor**: ``msgspec`` decoding of the same bytes straight into
  one typed struct per model (:func:`~stream_monitor.decode.typed.typed_decoder`,
  the decoder the engine's typed path uses),
  the least a schema-aware consumer has to do;
* **engine**: :meth:`Engine.process` on batches of ``--batch`` rows, and
  :meth:`Engine.evaluate` once per batch (every window judged, drift events
  built), from bytes to statistics;
* the same rows sent as **micro-batches** (one JSON array of
  ``--micro-batch`` events per message);
* in rounds of their own, both floors and the engine on a **wide** workload
  (many models and features, :func:`measure_wide`).

Timings use
:func:`time.perf_counter` and keep the best of ``--repeats`` runs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from operator import attrgetter
from typing import Any

import msgspec
import orjson

from stream_monitor.config import MonitorConfig
from stream_monitor.decode.batches import RawMessage
from stream_monitor.decode.typed import typed_decoder
from stream_monitor.engine import Engine
from stream_monitor.tools.measuring import rate_row, round_times
from stream_monitor.tools.workload import (
    BenchTraffic,
    Workload,
    batches,
    bench_config,
    row_messages,
)


def decode_floor(messages: Sequence[RawMessage]) -> None:
    """``orjson.loads`` of every message value and nothing else (in a C-level loop)."""
    deque(map(orjson.loads, map(_value, messages)), maxlen=0)


_value = attrgetter("value")


@dataclass
class EngineRun:
    """What one engine pass over the messages counted."""

    events: int = 0
    rejected: int = 0
    drift_events: int = 0
    windows: int = 0


def run_engine(config: MonitorConfig, engine_batches: Sequence[Sequence[RawMessage]]) -> EngineRun:
    """A fresh engine over ``engine_batches``: process, then evaluate, per batch; then close all."""
    engine = Engine(config)
    run = EngineRun()
    for batch in engine_batches:
        run.rejected += len(engine.process(batch))
        run.drift_events += len(engine.evaluate())
    run.drift_events += len(engine.evaluate(final=True))
    run.events = sum(engine.events_total.values())
    run.windows = len(engine.snapshot().windows)
    return run


def typed_floor(decoder: msgspec.json.Decoder[Any], messages: Sequence[RawMessage]) -> None:
    """``msgspec`` decoding of every message value into typed structs, and nothing else."""
    deque(map(decoder.decode, map(_value, messages)), maxlen=0)


def checked_run(
    config: MonitorConfig, engine_batches: Sequence[Sequence[RawMessage]], events: int, name: str
) -> EngineRun:
    """:func:`run_engine`, which must count all ``events`` and reject none (else RuntimeError)."""
    run = run_engine(config, engine_batches)
    if run.events != events or run.rejected:
        raise RuntimeError(
            f"{name} messages: the engine counted {run.events} of {events} events "
            f"and rejected {run.rejected}"
        )
    return run


def engine_and_floors(
    config: MonitorConfig,
    messages: Sequence[RawMessage],
    engine_batches: Sequence[Sequence[RawMessage]],
) -> dict[str, Callable[[], object]]:
    """The three timed measures of one kind of message: both decode floors, then the engine."""
    decoder = typed_decoder(config.models, config.fields)
    return {
        "decode_floor": lambda: decode_floor(messages),
        "typed_decode_floor": lambda: typed_floor(decoder, messages),
        "engine": lambda: run_engine(config, engine_batches),
    }


def floor_ratios(times: dict[str, list[float]], engine: str, prefix: str = "") -> dict[str, Any]:
    """The best rate of the measure ``engine`` as a fraction of the orjson floor's and of the
    typed floor's (``times``: :func:`~stream_monitor.tools.measuring.round_times`), and
    the fraction of the orjson floor's in each round (``round_ratios_to_decode_floor``)."""
    floor, typed_floor = times[f"{prefix}decode_floor"], times[f"{prefix}typed_decode_floor"]
    engine_s = min(times[engine])
    return {
        "ratio_to_decode_floor": min(floor) / engine_s,
        "ratio_to_typed_floor": min(typed_floor) / engine_s,
        "round_ratios_to_decode_floor": [
            floor_s / round_s for floor_s, round_s in zip(floor, times[engine], strict=True)
        ],
    }


def measure_throughput(
    workload: Workload, rows: Sequence[RawMessage], micro: Sequence[RawMessage]
) -> dict[str, Any]:
    """Both decode floors and the engine, of the row messages and of the micro-batch messages.

    The engine's ratios are to the floors of the same bytes (the micro-batches' to
    the micro-batch floors); all six measures share the rounds of
    :func:`~stream_monitor.tools.measuring.round_times`, and each keeps its best.
    """
    config = bench_config(workload)
    n = workload.events
    row_batches = batches(rows, 1, workload.batch)
    micro_batches = batches(micro, workload.micro_batch, workload.batch)
    check = checked_run(config, row_batches, n, "row")
    checked_run(config, micro_batches, n, "micro")
    measures = engine_and_floors(config, rows, row_batches)
    for name, function in engine_and_floors(config, micro, micro_batches).items():
        measures[f"micro_batch_{name}"] = function
    times = round_times(measures, workload.repeats)
    best = {name: min(seconds) for name, seconds in times.items()}
    engine_s, micro_s = best["engine"], best["micro_batch_engine"]
    return {
        "decode_floor": rate_row(n, best["decode_floor"]),
        "typed_decode_floor": rate_row(n, best["typed_decode_floor"]),
        "engine": rate_row(
            n,
            engine_s,
            **floor_ratios(times, "engine"),
            batch_rows=workload.batch,
            drift_events=check.drift_events,
            windows=check.windows,
        ),
        "micro_batch_decode_floor": rate_row(n, best["micro_batch_decode_floor"]),
        "micro_batch_typed_decode_floor": rate_row(n, best["micro_batch_typed_decode_floor"]),
        "micro_batch_engine": rate_row(
            n,
            micro_s,
            **floor_ratios(times, "micro_batch_engine", "micro_batch_"),
            ratio_to_row_engine=engine_s / micro_s,
            rows_per_message=workload.micro_batch,
        ),
    }


def measure_wide(workload: Workload) -> dict[str, Any]:
    """Both decode floors and the engine on row events of ``workload`` (the many-models,
    many-features shape), generated here and timed in rounds of their own."""
    traffic = BenchTraffic(workload, rate_per_s=workload.rate_per_s)
    rows = row_messages(traffic.take(workload.events))
    config = bench_config(workload)
    n = workload.events
    row_batches = batches(rows, 1, workload.batch)
    checked_run(config, row_batches, n, "wide row")
    times = round_times(engine_and_floors(config, rows, row_batches), workload.repeats)
    best = {name: min(seconds) for name, seconds in times.items()}
    return {
        "workload": asdict(workload),
        "decode_floor": rate_row(n, best["decode_floor"]),
        "typed_decode_floor": rate_row(n, best["typed_decode_floor"]),
        "engine": rate_row(n, best["engine"], **floor_ratios(times, "engine")),
    }
