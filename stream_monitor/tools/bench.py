"""``stream-monitor bench``: its options, and the table of its report.

The benchmark measures the engine's throughput and memory on seeded synthetic
traffic (:mod:`~stream_monitor.tools.workload`), on one core:

* the decode floor and the engine, row events and micro-batches, in this
  process (:mod:`~stream_monitor.tools.bench_engine`);
* memory, in a fresh child process (:mod:`~stream_monitor.tools.bench_memory`);
* with ``--broker``, end to end through the embedded broker
  (:mod:`~stream_monitor.tools.bench_broker`), then ingest replica processes
  (:mod:`~stream_monitor.tools.bench_scale`) and the start-up and restore time of
  ``stream-monitor run`` processes (:mod:`~stream_monitor.tools.bench_restore`).

The command line runs them in turn (``stream_monitor.cli``) and prints the
report with :func:`print_report`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import orjson

from stream_monitor.config_file import parse_duration_s
from stream_monitor.tools.workload import MEMORY_GROWTH_FACTOR, Workload, bench_config

QUICK_EVENTS = 10_000
QUICK_REPEATS = 2
_MIB = 1024 * 1024


@dataclass(frozen=True)
class BenchPlan:
    """What one ``stream-monitor bench`` run measures, from its command-line options."""

    workload: Workload
    memory: bool
    broker: bool
    ingest_replicas: tuple[int, ...]
    restore_partitions: tuple[int, ...]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Define the options of ``stream-monitor bench``."""
    d = Workload()
    parser.add_argument("--events", type=int, default=None, help=f"events (default {d.events:,})")
    parser.add_argument(
        "--features", type=int, default=d.features, help="features per event, categorical included"
    )
    parser.add_argument(
        "--categorical", type=int, default=d.categorical, help="how many features are categorical"
    )
    parser.add_argument(
        "--categories", type=int, default=d.categories, help="values per categorical feature"
    )
    parser.add_argument("--models", type=int, default=d.models, help="models (events round robin)")
    parser.add_argument(
        "--windows", default=",".join(d.windows), help="window sizes, comma-separated"
    )
    parser.add_argument("--pane", type=float, default=d.pane_s, help="pane length in seconds")
    parser.add_argument("--batch", type=int, default=d.batch, help="rows per engine batch")
    parser.add_argument(
        "--micro-batch", type=int, default=d.micro_batch, help="events per micro-batch message"
    )
    parser.add_argument(
        "--rate", type=float, default=d.rate_per_s, help="events per second of event time"
    )
    parser.add_argument("--repeats", type=int, default=None, help="timing runs, best kept")
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of the synthetic events")
    parser.add_argument("--quick", action="store_true", help="a few seconds (for CI)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument(
        "--broker", action="store_true", help="also end to end through the embedded broker"
    )
    parser.add_argument(
        "--ingest-replicas",
        default="1,2",
        help="with --broker: ingest replica processes to time, comma-separated ('' to skip)",
    )
    parser.add_argument(
        "--restore-partitions",
        default="4,32,128",
        help="with --broker: input partition counts to time start-up and restore at ('' to skip)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def workload_from_args(args: argparse.Namespace) -> Workload:
    """The :class:`Workload` the command-line options describe."""
    windows = tuple(w.strip() for w in str(args.windows).split(",") if w.strip())
    for window in windows:
        parse_duration_s(window, "--windows")
    default = Workload()
    events = args.events or (QUICK_EVENTS if args.quick else default.events)
    repeats = args.repeats or (QUICK_REPEATS if args.quick else default.repeats)
    return Workload(
        events=events,
        features=args.features,
        categorical=args.categorical,
        categories=args.categories,
        models=args.models,
        windows=windows,
        pane_s=args.pane,
        batch=args.batch,
        micro_batch=args.micro_batch,
        rate_per_s=args.rate,
        repeats=repeats,
        seed=args.seed,
    )


def plan_from_args(args: argparse.Namespace) -> BenchPlan:
    """The :class:`BenchPlan` of the command-line options (ValueError or ConfigError if wrong)."""
    workload = workload_from_args(args)
    bench_config(workload)
    return BenchPlan(
        workload=workload,
        memory=not args.no_memory,
        broker=args.broker,
        ingest_replicas=tuple(int(n) for n in str(args.ingest_replicas).split(",") if n.strip()),
        restore_partitions=tuple(
            int(n) for n in str(args.restore_partitions).split(",") if n.strip()
        ),
    )


def print_report(report: dict[str, Any], as_json: bool) -> None:
    """Print ``report`` as its table, or as indented JSON."""
    if as_json:
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        print(format_table(report))


def measure_row(name: str, data: dict[str, Any], ratio: str = "") -> str:
    """One row of the table: the measure's name, events per second, microseconds per event."""
    return f"{name:<44}{data['events_per_s']:>14,.0f}{data['us_per_event']:>10.2f}  {ratio}"


def _timed_out(run: dict[str, Any]) -> str:
    return "" if run["complete"] else "; incomplete (timed out)"


def format_table(report: dict[str, Any]) -> str:
    """The human-readable table of a benchmark report (what ``--json`` prints)."""
    w = report["workload"]
    m = report["machine"]
    r = report["results"]
    lines = [
        f"stream-monitor bench: {w['events']:,} events, {w['models']} model(s), "
        f"{w['features']} features ({w['categorical']} categorical of {w['categories']} values), "
        f"windows {'/'.join(w['windows'])} of {w['pane_s']:g}s panes",
        f"machine: {m['nproc']} x {m['cpu']}; Python {m['python']}, numpy {m['numpy']}, "
        f"orjson {m['orjson']}; one core, best of {w['repeats']}",
        "",
        f"{'measure':<44}{'events/s':>14}{'us/event':>10}  ratio",
        *engine_rows(w, r),
    ]
    if "broker" in r:
        lines += broker_rows(w, r)
    if "scale_out" in r:
        lines += scale_out_rows(r["scale_out"])
    if "restore" in r:
        lines += ["", *restore_rows(r["restore"])]
    if "memory" in r:
        lines += ["", *memory_rows(r["memory"])]
    lines.append(f"\ndrift events emitted per engine pass: {r['engine']['drift_events']:,}")
    return "\n".join(lines)


def engine_rows(workload: dict[str, Any], results: dict[str, Any]) -> list[str]:
    """The rows of the decode floor and the engine, row events and micro-batches."""
    engine = results["engine"]
    micro = results["micro_batch_engine"]
    return [
        measure_row("decode floor: orjson.loads, row events", results["decode_floor"]),
        measure_row(
            f"engine: process + evaluate per {engine['batch_rows']:,} rows",
            engine,
            f"{engine['ratio_to_decode_floor']:.2f} of decode floor",
        ),
        measure_row(
            f"decode floor: micro-batches of {workload['micro_batch']:,}",
            results["micro_batch_decode_floor"],
        ),
        measure_row(
            f"engine: micro-batches of {micro['rows_per_message']:,}",
            micro,
            f"{micro['ratio_to_row_engine']:.2f}x row events",
        ),
    ]


def broker_rows(workload: dict[str, Any], results: dict[str, Any]) -> list[str]:
    """The rows of the runs through the embedded broker: row events, then micro-batches."""
    monitor = results["broker"]["monitor"]
    micro = results["broker_micro_batch"]["monitor"]
    return [
        measure_row("embedded broker: produce", results["broker"]["produce"]),
        measure_row(
            "embedded broker: consume + engine",
            monitor,
            f"after {monitor['startup_s']:.1f}s joining the group" + _timed_out(monitor),
        ),
        f"{'  backlog: judged while read':<44}"
        f"{monitor['event_time_s'] / 60:,.0f} min of event time in {monitor['seconds']:.1f} s; "
        f"{monitor['judged_window_ends']:,} window ends judged, "
        f"{monitor['windows_skipped']:,} skipped; "
        f"peak RSS {monitor['peak_rss_bytes'] / 2**20:,.0f} MiB "
        f"(from {monitor['rss_before_bytes'] / 2**20:,.0f} MiB before)",
        measure_row(
            f"embedded broker: micro-batches of {workload['micro_batch']:,}",
            micro,
            f"{micro['ratio_to_row_events']:.2f}x row events" + _timed_out(micro),
        ),
    ]


def scale_out_rows(report: dict[str, Any]) -> list[str]:
    """The rows of a :func:`~stream_monitor.tools.bench_scale.measure_ingest` report."""
    return [
        measure_row(
            f"--role ingest x{run['replicas']}, {report['partitions']} partitions",
            {**run, "us_per_event": 1e6 / run["events_per_s"] if run["events_per_s"] else 0},
            f"{run['ratio_to_first']:.2f}x one replica" + _timed_out(run),
        )
        for run in report["runs"]
    ]


def memory_rows(mem: dict[str, Any]) -> list[str]:
    """The lines of a :func:`~stream_monitor.tools.bench_memory.measure_memory` report."""
    return [
        f"memory (fresh process; each {mem['events']:,} events span the "
        f"{mem['event_time_s']:,.0f}s of event time the windows keep):",
        f"  RSS before the engine          {mem['rss_before_engine_bytes'] / _MIB:8.1f} MiB",
        f"  RSS, every pane filled         {mem['rss_filled_bytes'] / _MIB:8.1f} MiB",
        f"  RSS, steady state (2x events)  {mem['rss_bytes'] / _MIB:8.1f} MiB"
        f"  (pane state {mem['engine_state_bytes'] / _MIB:.1f} MiB, {mem['panes']:,} panes)",
        f"  RSS after {MEMORY_GROWTH_FACTOR}x more events      "
        f"{mem['rss_after_growth_bytes'] / _MIB:8.1f} MiB"
        f"  (growth {mem['rss_growth_bytes'] / _MIB:+.1f} MiB)",
        f"  peak RSS (VmHWM)               {mem['peak_rss_bytes'] / _MIB:8.1f} MiB",
    ]


def restore_rows(report: dict[str, Any]) -> list[str]:
    """The table rows of a :func:`~stream_monitor.tools.bench_restore.measure_restore` report."""

    def seconds(value: float | None, width: int) -> str:
        return f"{'-':>{width}}" if value is None else f"{value:>{width - 2}.2f} s"

    lines = [
        f"start-up and restore (`stream-monitor run`, session.timeout.ms "
        f"{report['session_timeout_ms']:,}):",
        f"  {'partitions':>10}  {'changelog':<18}{'ready':>10}{'joined':>10}{'restore':>10}"
        f"{'records':>10}{'MiB':>8}",
    ]
    for run in report["runs"]:
        state = run["state"]
        for label, row in (("empty", run["empty"]), (f"{state['events']:,} events", state)):
            mib = (row["bytes"] or 0) / 1024 / 1024
            lines.append(
                f"  {run['partitions']:>10}  {label:<18}{seconds(row['ready_s'], 10)}"
                f"{seconds(row['joined_s'], 10)}{seconds(row['restore_s'], 10)}"
                f"{row['records'] if row['records'] is not None else '-':>10}{mib:>8.2f}"
            )
    return lines
