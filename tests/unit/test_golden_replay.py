"""``replay`` gives, byte for byte, the drift events and metrics recorded in ``tests/unit/golden``.

A guard for refactoring: five stored streams (drift on every model kind, a
concept change, a regression model alone, bad input mixed in, delayed labels)
are replayed with one stored config, and the drift events (without their
wall-clock ``detected_at``) and the ``--metrics-out`` file must equal what was
recorded. A change that means to alter results regenerates them, on purpose and
in its own commit: ``python -m tests.unit.test_golden_replay``.

The inputs are stored rather than generated at test time, so that a new numpy
(whose random streams may change between releases) cannot move them.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from stream_monitor.cli import main
from stream_monitor.tools.synthetic import SyntheticTraffic
from tests.conftest import FRAUD_MODEL, PRICE_MODEL

GOLDEN = Path(__file__).parent / "golden"
START = 1_700_000_000.0
STREAMS = ("drift", "concept", "regression", "bad_input", "delayed_labels")

CONFIG: dict[str, Any] = {
    "windows": {"pane_s": 60, "sizes": ["5m", "15m"], "allowed_lateness_s": 120},
    "drift": {"min_window_events": 150},
    "quality": {"min_labeled_events": 100},
    "labels": {"join": True, "ttl_s": 1800},
    "concept_drift": {"chunk": 8},
    "models": [
        {
            **FRAUD_MODEL,
            "reference": {"warmup_events": 1500},
            "quality": {"latency_p99_ms": {"warn": 40, "alert": 80}},
        },
        {**PRICE_MODEL, "reference": {"warmup_events": 1500}},
        {
            "name": "merchant-type",
            "task": "multiclass",
            "features": {"amount": "numeric", "country": "categorical"},
            "reference": {"warmup_events": 1500},
        },
    ],
}


def _multiclass(events: list[dict[str, Any]], shift: bool) -> list[dict[str, Any]]:
    """A multiclass model fed from fraud events: it predicts the merchant category."""
    found = []
    for event in events:
        features = event["features"]
        truth = features["merchant_category"]
        guess = "travel" if shift and features["amount"] > 60 else truth
        found.append(
            {
                "event_id": "m" + event["event_id"],
                "model": "merchant-type",
                "model_version": "1",
                "timestamp": event["timestamp"],
                "features": {"amount": features["amount"], "country": features["country"]},
                "prediction": guess,
                "label": truth,
            }
        )
    return found


def stream(kind: str) -> list[bytes]:
    """The lines of one stored input stream."""
    traffic = SyntheticTraffic(seed=STREAMS.index(kind) + 21)
    lines: list[bytes] = []
    delayed: list[dict[str, Any]] = []
    for minute in range(36):
        ts = START + minute * 60.0
        drifted = minute >= 20
        events: list[dict[str, Any]] = []
        if kind != "regression":
            fraud = traffic.fraud(150, ts, drifted=drifted and kind == "drift")
            if kind == "concept" and drifted:  # same inputs, the truth flips
                for event in fraud:
                    event["label"] = 1 - event["label"]
            events += fraud + _multiclass(fraud, shift=drifted and kind == "drift")
        events += traffic.price(150, ts, drifted=drifted and kind in ("drift", "regression"))
        if kind == "delayed_labels":
            for event in events:
                delayed.append(
                    {
                        "event_id": event["event_id"],
                        "model": event["model"],
                        "label": event.pop("label"),
                        "timestamp": ts + 90.0,
                    }
                )
            due = [label for label in delayed if label["timestamp"] <= ts]
            delayed = [label for label in delayed if label["timestamp"] > ts]
            events += due
        lines += [orjson.dumps(event) for event in events]
        if kind == "bad_input":
            lines += [
                b"{not json",
                b"[]",
                b'{"model": "nobody", "features": {}, "prediction": 1}',
                orjson.dumps({"model": "fraud-detector", "features": {"amount": "x"}}),
                b'{"model": "price-estimator", "features": {"area_m2": 1e400}, "prediction": 2}',
                b"",
            ]
    return lines


def replay(kind: str, tmp_path: Path) -> tuple[bytes, bytes]:
    """Drift events (without ``detected_at``) and metrics of ``replay`` over a stored stream."""
    config = tmp_path / "config.yaml"
    config.write_bytes((GOLDEN / "config.yaml").read_bytes())
    lines = tmp_path / f"{kind}.jsonl"
    lines.write_bytes(gzip.decompress((GOLDEN / f"{kind}.jsonl.gz").read_bytes()))
    metrics = tmp_path / f"{kind}.prom"
    out = tmp_path / f"{kind}.out"
    stdout = sys.stdout
    with out.open("w") as handle:
        sys.stdout = handle
        try:
            status = main(["replay", "--config", str(config), "--input", str(lines),
                           "--metrics-out", str(metrics)])  # fmt: skip
        finally:
            sys.stdout = stdout
    assert status == 0
    events = []
    for line in out.read_bytes().splitlines():
        event = orjson.loads(line)
        event.pop("detected_at")
        events.append(orjson.dumps(event))
    return b"\n".join(events) + b"\n", metrics.read_bytes()


@pytest.mark.parametrize("kind", STREAMS)
def test_replay_is_byte_identical_to_the_recording(kind: str, tmp_path: Path) -> None:
    events, metrics = replay(kind, tmp_path)
    assert events == (GOLDEN / f"{kind}.drift.jsonl").read_bytes()
    assert metrics == (GOLDEN / f"{kind}.prom").read_bytes()


def test_the_recordings_hold_what_they_guard() -> None:
    """Each stream raises what it was made for (so the recording guards something)."""

    def metrics_of(kind: str) -> set[str]:
        rows = (GOLDEN / f"{kind}.drift.jsonl").read_bytes().splitlines()
        return {orjson.loads(row)["metric"] for row in rows}

    assert {"psi", "csi", "accuracy"} <= metrics_of("drift")
    assert "concept_drift" in metrics_of("concept")
    assert {"csi", "rmse"} & metrics_of("regression")
    bad = (GOLDEN / "bad_input.prom").read_text()
    assert 'stream_monitor_invalid_events_total{reason="malformed_json"} 36.0' in bad
    delayed = (GOLDEN / "delayed_labels.prom").read_text()
    assert 'stream_monitor_label_joins_total{outcome="joined"}' in delayed


def regenerate() -> None:
    """Write the stored inputs, then record what ``replay`` gives for them."""
    import tempfile

    GOLDEN.mkdir(exist_ok=True)
    (GOLDEN / "config.yaml").write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    for kind in STREAMS:
        data = b"\n".join(stream(kind)) + b"\n"
        (GOLDEN / f"{kind}.jsonl.gz").write_bytes(gzip.compress(data, mtime=0))
        with tempfile.TemporaryDirectory() as folder:
            events, metrics = replay(kind, Path(folder))
        (GOLDEN / f"{kind}.drift.jsonl").write_bytes(events)
        (GOLDEN / f"{kind}.prom").write_bytes(metrics)
        print(f"{kind}: {len(events.splitlines())} drift events, {len(data)} bytes of input")


if __name__ == "__main__":
    regenerate()
