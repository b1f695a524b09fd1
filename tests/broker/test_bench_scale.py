"""``stream-monitor bench --broker``: row events, micro-batches, ingest replica processes and
the start-up and restore of ``stream-monitor run`` through the embedded broker."""

from __future__ import annotations

import contextlib
import io

import orjson
import pytest

from stream_monitor.cli import main
from stream_monitor.tools.bench import restore_rows
from stream_monitor.tools.bench_restore import measure_restore
from stream_monitor.tools.bench_scale import ATTEMPTS
from stream_monitor.tools.workload import BenchTraffic, Workload, bench_config_data, row_messages


def test_broker_bench_times_one_and_two_ingest_replicas() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(
            ["bench", "--events", "6000", "--rate", "2", "--repeats", "1", "--no-memory",
             "--no-wide", "--broker", "--ingest-replicas", "1,2", "--restore-partitions", "",
             "--json"]
        )  # fmt: skip
    assert status == 0
    report = orjson.loads(out.getvalue())
    scale = report["results"]["scale_out"]
    assert [run["replicas"] for run in scale["runs"]] == [1, 2]
    for run in scale["runs"]:
        assert run["complete"], run  # every replica count read the whole topic
        assert run["events"] == 6000
        assert run["events_per_s"] > 0 and run["seconds"] > 0
        # each replica's share of the events; a run where one read too little is run again
        assert len(run["shares"]) == run["replicas"], run
        assert sum(run["shares"]) == pytest.approx(1.0), run
        assert 1 <= run["attempts"] <= (1 if run["replicas"] == 1 else ATTEMPTS), run
    for name in ("broker", "broker_micro_batch"):
        monitor = report["results"][name]["monitor"]
        assert monitor["complete"] and monitor["events"] == 6000, (name, monitor)
        # 50 minutes of event time read as a backlog: judged all the way, nothing skipped
        assert monitor["event_time_s"] == 3000
        assert monitor["judged_window_ends"] >= 40 and monitor["windows_skipped"] == 0, monitor
        assert monitor["peak_rss_bytes"] > 0
    micro = report["results"]["broker_micro_batch"]["monitor"]
    row_rate = report["results"]["broker"]["monitor"]["events_per_s"]
    assert micro["ratio_to_row_events"] == pytest.approx(micro["events_per_s"] / row_rate)
    first, second = scale["runs"]
    assert first["ratio_to_first"] == 1.0
    assert second["ratio_to_first"] == pytest.approx(second["events_per_s"] / first["events_per_s"])


def test_restore_bench_times_an_empty_and_a_restoring_start_per_partition_count() -> None:
    workload = Workload(events=3000)
    events = BenchTraffic(workload, rate_per_s=workload.rate_per_s).take(workload.events)
    report = measure_restore(bench_config_data(workload), row_messages(events), [3])
    [run] = report["runs"]
    assert run["partitions"] == 3
    empty, state = run["empty"], run["state"]
    assert empty["records"] == 0 and empty["bytes"] == 0  # a fresh group: nothing to restore
    assert state["complete"] and state["events"] == 3000
    assert state["records"] > 0 and state["bytes"] > 0
    for row in (empty, state):
        assert row["ready_s"] >= row["joined_s"] > 0 and row["restore_s"] >= 0, row
    table = "\n".join(restore_rows(report))
    assert "start-up and restore" in table and "3,000 events" in table
