"""The benchmark command, and the engine's numbers on its workload against plain numpy.

The reference implementation below shares nothing with the package but the
synthetic events: it reads the raw message bytes with orjson, cuts panes and
windows itself, takes the reference from each model's first events with
``np.quantile`` and counts bins with ``np.digitize`` (right-closed bins, the
outer ones open, as SPEC section 6 and ``sketches/binning.py`` define them).
"""

from __future__ import annotations

import contextlib
import io
import math
from collections import Counter
from typing import Any

import numpy as np
import orjson
import pytest

from stream_monitor.cli import main
from stream_monitor.engine import Engine
from stream_monitor.snapshot import WindowSample
from stream_monitor.tools.bench import QUICK_EVENTS, QUICK_REPEATS, format_table
from stream_monitor.tools.bench_memory import memory_in_child
from stream_monitor.tools.workload import (
    MEMORY_GROWTH_FACTOR,
    BenchTraffic,
    Workload,
    batches,
    bench_config,
    micro_batch_messages,
    row_messages,
)

EPSILON = 1e-4
WARMUP = 1000
BINS = 10
TOP_K = 50


FLOOR_RATIOS = {
    "ratio_to_decode_floor": "decode_floor",
    "ratio_to_typed_floor": "typed_decode_floor",
}


def assert_rates(row: dict[str, Any], events: int) -> None:
    """A measured row: its events, and positive seconds and rates that agree with each other."""
    assert row["events"] == events
    for key in ("seconds", "events_per_s", "us_per_event"):
        assert row[key] > 0, key
    assert row["events_per_s"] == pytest.approx(events / row["seconds"])
    assert row["us_per_event"] == pytest.approx(row["seconds"] / events * 1e6)


def assert_floor_ratios(
    engine: dict[str, Any], floors: dict[str, Any], rounds: int, prefix: str = ""
) -> None:
    """The engine's ratios to both floors are its rate over theirs (the same events), and its
    ratio to the orjson floor is given for each of the ``rounds``."""
    for ratio, floor in FLOOR_RATIOS.items():
        expected = engine["events_per_s"] / floors[prefix + floor]["events_per_s"]
        assert engine[ratio] == pytest.approx(expected), ratio
    round_ratios = engine["round_ratios_to_decode_floor"]
    assert len(round_ratios) == rounds
    assert all(0 < ratio < math.inf for ratio in round_ratios), round_ratios
    # the round of the engine's best pass: its floor pass was no faster than the best floor's
    assert max(round_ratios) >= engine["ratio_to_decode_floor"] * (1 - 1e-9), round_ratios


def test_quick_json_report_has_every_row() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["bench", "--quick", "--json"])
    assert status == 0
    report = orjson.loads(out.getvalue())
    assert report["workload"]["events"] == QUICK_EVENTS
    assert report["workload"]["features"] == 23 and report["workload"]["categorical"] == 3
    assert {"cpu", "nproc", "python", "numpy", "orjson", "msgspec"} <= set(report["machine"])
    results = report["results"]
    for kind in ("", "micro_batch_"):
        for row in ("decode_floor", "typed_decode_floor", "engine"):
            assert_rates(results[kind + row], QUICK_EVENTS)
        assert_floor_ratios(results[kind + "engine"], results, QUICK_REPEATS, kind)
    assert results["engine"]["drift_events"] > 0
    micro = results["micro_batch_engine"]
    assert micro["ratio_to_row_engine"] == pytest.approx(
        micro["events_per_s"] / results["engine"]["events_per_s"]
    )

    wide = results["wide"]
    assert (wide["workload"]["models"], wide["workload"]["features"]) == (10, 50)
    assert wide["workload"]["categorical"] == 5
    for row in ("decode_floor", "typed_decode_floor", "engine"):
        assert_rates(wide[row], QUICK_EVENTS)
    assert_floor_ratios(wide["engine"], wide, QUICK_REPEATS)

    engine_target, wide_target, broker_target = report["targets"]
    assert engine_target["ratio"] == results["engine"]["ratio_to_decode_floor"]
    assert engine_target["rounds"] == results["engine"]["round_ratios_to_decode_floor"]
    assert wide_target["rounds"] == wide["engine"]["round_ratios_to_decode_floor"]
    assert (engine_target["at_least"], engine_target["stretch"]) == (0.6, 0.8)
    assert wide_target["ratio"] == wide["engine"]["ratio_to_decode_floor"]
    assert wide_target["at_least"] == 0.4
    for target in (engine_target, wide_target):
        assert target["met"] == (target["ratio"] >= target["at_least"])
    assert broker_target["at_least"] == 0.9
    assert broker_target["ratio"] is None and broker_target["met"] is None  # no --broker
    assert broker_target["rounds"] is None

    memory = results["memory"]
    for key in ("rss_filled_bytes", "rss_bytes", "rss_after_growth_bytes", "peak_rss_bytes"):
        assert memory[key] > 0, key
    assert memory["engine_state_bytes"] > 0 and memory["panes"] > 0
    assert memory["counted_events"] == memory["events_after_growth"]
    assert memory["peak_rss_bytes"] >= memory["rss_bytes"]
    assert memory["event_time_s"] == 5 * 60 + 300 + 60  # the quick windows: 5m, lateness, a pane
    assert "broker" not in results

    table = format_table(report)
    for text in (
        "decode floor: msgspec typed, row events",
        "decode floor: orjson.loads, micro-batches of 1,000",
        f"{results['engine']['ratio_to_typed_floor']:.2f} of typed floor",
        "wide workload: 10,000 events, 10 model(s), 50 features (5 categorical",
        f"{wide['engine']['ratio_to_decode_floor']:.2f}  (at least 0.40: ",
        "(at least 0.60, stretch 0.80: ",
        f"{min(engine_target['rounds']):.3f} to {max(engine_target['rounds']):.3f}, ",
        "(at least 0.90: not measured)",
    ):
        assert text in table, text


def test_table_names_every_measure() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        status = main(["bench", "--events", "3000", "--repeats", "1", "--no-memory", "--no-wide"])
    assert status == 0
    table = out.getvalue()
    for text in (
        "decode floor: orjson.loads",
        "decode floor: msgspec typed",
        "engine: process + evaluate",
        "micro-batches of 1,000",
        "x row",
        "of orjson floor",
        "of typed floor",
        "targets (ratios of the best rates measured in this run; rounds: one pass of each)",
    ):
        assert text in table, text
    assert "wide workload:" not in table
    assert table.count("not measured") == 2  # the wide workload's target and the broker's


def test_bad_options_give_one_line() -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["bench", "--categorical", "30", "--features", "5"]) == 2
    assert err.getvalue().startswith("stream-monitor bench: ")


# -- the reference implementation ------------------------------------------------------------


def proportions(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return np.full(len(counts), EPSILON) if total == 0 else np.maximum(counts / total, EPSILON)


def stability_index(expected: np.ndarray, actual: np.ndarray) -> float:
    e, a = proportions(expected.astype(float)), proportions(actual.astype(float))
    return float(np.sum((a - e) * np.log(a / e)))


def numeric_values(values: list[Any]) -> np.ndarray:
    """JSON values of a numeric column: numbers as floats, anything else NaN."""
    return np.array(
        [
            float(v) if isinstance(v, int | float) and not isinstance(v, bool) else np.nan
            for v in values
        ]
    )


class ReferenceColumn:
    """One column's reference bins, computed from the warm-up values with plain numpy."""

    def __init__(self, values: list[Any], kind: str) -> None:
        self.kind = kind
        if kind == "numeric":
            present = numeric_values(values)
            present = present[~np.isnan(present)]
            self.edges = np.unique(np.quantile(present, np.linspace(0, 1, BINS + 1)[1:-1]))
        else:
            frequencies = Counter(v for v in values if v is not None)
            ranked = sorted(frequencies.items(), key=lambda item: (-item[1], item[0]))
            self.categories = [value for value, _ in ranked[:TOP_K]]
            self.known = set(frequencies)
        self.counts, _, _ = self.count(values)

    def count(self, values: list[Any]) -> tuple[np.ndarray, int, int]:
        """Bin counts, nulls and never-seen values of ``values``."""
        if self.kind == "numeric":
            x = numeric_values(values)
            present = x[~np.isnan(x)]
            bins = np.digitize(present, self.edges, right=True)
            counts = np.bincount(bins, minlength=len(self.edges) + 1)
            return counts, int(np.isnan(x).sum()), 0
        present = [v for v in values if v is not None]
        slot = {c: i for i, c in enumerate(self.categories)}
        counts = np.zeros(len(self.categories) + 1)
        for value in present:
            counts[slot.get(value, len(self.categories))] += 1
        new = sum(1 for v in present if v not in self.known)
        return counts, len(values) - len(present), new


def reference_windows(
    messages: list[bytes], workload: Workload, pane_s: float, window_panes: dict[str, int]
) -> dict[tuple[str, str], dict[str, Any]]:
    """PSI, CSI, null and new-category ratios per (model, window), from the raw messages."""
    events = [orjson.loads(m) for m in messages]
    kinds = dict.fromkeys(workload.numeric_names(), "numeric")
    kinds.update(dict.fromkeys(workload.categorical_names(), "categorical"))
    expected: dict[tuple[str, str], dict[str, Any]] = {}
    for model in workload.model_names():
        mine = [e for e in events if e["model"] == model]
        columns = {"prediction": [e["prediction"] for e in mine]}
        columns.update({f: [e["features"].get(f) for e in mine] for f in kinds})
        profiles = {
            name: ReferenceColumn(values[:WARMUP], kinds.get(name, "numeric"))
            for name, values in columns.items()
        }
        panes = np.floor(np.array([e["timestamp"] for e in mine]) / pane_s)
        end = panes.max()
        for window, size in window_panes.items():
            rows = np.flatnonzero(panes > end - size)
            stats: dict[str, Any] = {"events": len(rows), "csi": {}, "null": {}, "new": {}}
            for name, values in columns.items():
                profile = profiles[name]
                counts, nulls, new = profile.count([values[i] for i in rows])
                value = stability_index(profile.counts, counts)
                if name == "prediction":
                    stats["psi"] = value
                    continue
                stats["csi"][name] = value
                stats["null"][name] = nulls / len(rows)
                if profile.kind == "categorical":
                    stats["new"][name] = new / counts.sum()
            expected[(model, window)] = stats
    return expected


def assert_matches(samples: tuple[WindowSample, ...], expected: dict[Any, dict[str, Any]]) -> None:
    assert {(s.model, s.window) for s in samples} == set(expected)
    for sample in samples:
        want = expected[(sample.model, sample.window)]
        got = sample.stats
        where = (sample.model, sample.window)
        assert got.events == want["events"], where
        assert math.isclose(got.psi, want["psi"], rel_tol=0, abs_tol=1e-9), where
        assert got.csi.keys() == want["csi"].keys()
        for name, value in want["csi"].items():
            assert math.isclose(got.csi[name], value, rel_tol=0, abs_tol=1e-9), (where, name)
            assert math.isclose(got.null_ratio[name], want["null"][name], abs_tol=1e-12)
        assert got.new_category_ratio.keys() == want["new"].keys()
        for name, value in want["new"].items():
            assert math.isclose(got.new_category_ratio[name], value, abs_tol=1e-12), (where, name)


@pytest.mark.parametrize("micro_batch", [False, True])
def test_engine_statistics_equal_a_plain_numpy_reference(micro_batch: bool) -> None:
    workload = Workload(
        events=9000, models=2, categories=8, windows=("5m", "10m", "1h"), rate_per_s=10.0
    )
    config = bench_config(workload)
    events = BenchTraffic(workload, rate_per_s=workload.rate_per_s).take(workload.events)
    rows = row_messages(events)
    messages = micro_batch_messages(events, 500) if micro_batch else rows
    per_message = 500 if micro_batch else 1
    sizes = {"5m": 5, "10m": 10, "1h": 60}
    engine = Engine(config)
    drift_events = 0
    engine_batches = batches(messages, per_message, 1000)
    half = len(engine_batches) // 2
    for number, batch in enumerate(engine_batches, start=1):
        assert engine.process(batch) == []
        drift_events += len(engine.evaluate())
        if number == half:
            sent = sum(len(b) * per_message for b in engine_batches[:half])
            raw = [m.value for m in rows[:sent] if m.value is not None]
            assert_matches(engine.snapshot().windows, reference_windows(raw, workload, 60.0, sizes))
    raw = [m.value for m in rows if m.value is not None]
    assert_matches(engine.snapshot().windows, reference_windows(raw, workload, 60.0, sizes))
    assert drift_events > 0
    assert {s.stats.events for s in engine.snapshot().windows if s.window == "1h"} == {4500}


def test_memory_run_counts_every_event_in_the_child() -> None:
    workload = Workload(events=2000, features=4, categorical=1, windows=("5m",))
    result = memory_in_child(workload)
    assert result["counted_events"] == 2000 * (MEMORY_GROWTH_FACTOR + 2)
    assert result["panes"] > 0 and result["engine_state_bytes"] > 0
