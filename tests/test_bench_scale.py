"""``stream-monitor bench --broker``: row events, micro-batches and ingest replica processes
through the embedded broker."""

from __future__ import annotations

import contextlib
import io

import orjson
import pytest

from stream_monitor.cli import main

pytestmark = pytest.mark.broker


def test_broker_bench_times_one_and_two_ingest_replicas() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(
            ["bench", "--events", "6000", "--repeats", "1", "--no-memory", "--broker",
             "--ingest-replicas", "1,2", "--json"]
        )  # fmt: skip
    assert status == 0
    report = orjson.loads(out.getvalue())
    scale = report["results"]["scale_out"]
    assert [run["replicas"] for run in scale["runs"]] == [1, 2]
    for run in scale["runs"]:
        assert run["complete"], run  # every replica count read the whole topic
        assert run["events"] == 6000
        assert run["events_per_s"] > 0 and run["seconds"] > 0
    for name in ("broker", "broker_micro_batch"):
        monitor = report["results"][name]["monitor"]
        assert monitor["complete"] and monitor["events"] == 6000, (name, monitor)
    micro = report["results"]["broker_micro_batch"]["monitor"]
    row_rate = report["results"]["broker"]["monitor"]["events_per_s"]
    assert micro["ratio_to_row_events"] == pytest.approx(micro["events_per_s"] / row_rate)
    first, second = scale["runs"]
    assert first["ratio_to_first"] == 1.0
    assert second["ratio_to_first"] == pytest.approx(second["events_per_s"] / first["events_per_s"])
