"""``stream-monitor bench``: its options, and the table of its report.

The benchmark measures the engine's throughput and memory on seeded synthetic
traffic (:mod:`~stream_monitor.tools.workload`), on one core:

* both decode floors (orjson into dicts, msgspec into typed structs) and the
  engine, row events and micro-batches, in this process, then the same on a
  wide workload of 10 models x 50 features (:mod:`~stream_monitor.tools.bench_engine`);
* memory, in a fresh child process (:mod:`~stream_monitor.tools.bench_memory`);
* with ``--broker``, end to end through the embedded broker
  (:mod:`~stream_monitor.tools.bench_broker`), then ingest replica processes
  (:mod:`~stream_monitor.tools.bench_scale`) and the start-up and restore time of
  ``stream-monitor run`` processes (:mod:`~stream_monitor.tools.bench_restore`).

The command line runs them in turn (``stream_monitor.cli``) and prints the
report with :func:`print_report`, each target ratio beside its target
(:func:`target_ratios`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from typing import Any

import orjson

from stream_monitor.config_file import parse_duration_s
from stream_monitor.tools.workload import MEMORY_GROWTH_FACTOR, Workload, bench_config

QUICK_EVENTS = 10_000
QUICK_REPEATS = 2
#: The quick memory run's windows (every pane of a 24 h window is ~17,000 window ends to judge).
QUICK_MEMORY_WINDOWS = ("5m",)
#: The wide workload's shape: models, features, of which categorical.
WIDE_SHAPE = (10, 50, 5)
_MIB = 1024 * 1024
#: Characters of a table row's name column.
NAME_WIDTH = 52


@dataclass(frozen=True)
class Target:
    """A throughput target of the engine: a ratio measured in one run, and its bounds.

    ``path`` leads to the ratio of the best rates in the report's results,
    ``rounds`` to the ratios of each round (of one pass of each of the two measures).
    """

    name: str
    path: tuple[str, ...]
    rounds: tuple[str, ...]
    at_least: float
    stretch: float | None = None


#: The targets, each with where its ratio is in the report's results.
TARGETS = (
    Target(
        "engine / orjson floor, this workload",
        ("engine", "ratio_to_decode_floor"),
        ("engine", "round_ratios_to_decode_floor"),
        at_least=0.6,
        stretch=0.8,
    ),
    Target(
        "engine / orjson floor, wide workload",
        ("wide", "engine", "ratio_to_decode_floor"),
        ("wide", "engine", "round_ratios_to_decode_floor"),
        0.4,
    ),
    Target(
        "broker micro-batches / engine's micro-batches",
        ("broker_micro_batch", "monitor", "ratio_to_engine"),
        ("broker_micro_batch", "monitor", "round_ratios_to_engine"),
        0.9,
    ),
)


@dataclass(frozen=True)
class BenchPlan:
    """What one ``stream-monitor bench`` run measures, from its command-line options."""

    workload: Workload
    memory: Workload | None
    wide: Workload | None
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
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a few seconds (for CI): {QUICK_EVENTS:,} events, best of {QUICK_REPEATS}, "
        f"memory with windows {'/'.join(QUICK_MEMORY_WINDOWS)}",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    models, features, categorical = WIDE_SHAPE
    parser.add_argument(
        "--no-wide",
        action="store_true",
        help=f"skip the wide workload ({models} models x {features} features, "
        f"{categorical} categorical)",
    )
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
    memory = replace(workload, windows=QUICK_MEMORY_WINDOWS) if args.quick else workload
    models, features, categorical = WIDE_SHAPE
    wide = replace(workload, models=models, features=features, categorical=categorical)
    return BenchPlan(
        workload=workload,
        memory=None if args.no_memory else memory,
        wide=None if args.no_wide else wide,
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
    rate = f"{data['events_per_s']:>14,.0f}{data['us_per_event']:>10.2f}"
    return f"{name:<{NAME_WIDTH}}{rate}  {ratio}"


def _of_engine(monitor: dict[str, Any]) -> str:
    """A monitor's rate against the engine's passes over the same messages, between its runs."""
    return (
        f"{monitor['ratio_to_engine']:.2f} of the engine alongside "
        f"({monitor['engine_events_per_s']:,.0f} events/s)"
    )


def _waits(monitor: dict[str, Any]) -> str:
    """What a monitor waited for before its timed run: the group join, then its first batch."""
    return (
        f"untimed: {monitor['startup_s']:.1f} s joining the group, "
        f"{monitor['first_batch_s']:.2f} s to the first batch"
    )


def _timed_out(run: dict[str, Any]) -> str:
    return "" if run["complete"] else "; incomplete (timed out)"


def format_table(report: dict[str, Any]) -> str:
    """The human-readable table of a benchmark report (what ``--json`` prints)."""
    w = report["workload"]
    m = report["machine"]
    r = report["results"]
    lines = [
        f"stream-monitor bench: {w['events']:,} events, {shape(w)}, "
        f"windows {'/'.join(w['windows'])} of {w['pane_s']:g}s panes",
        f"machine: {m['nproc']} x {m['cpu']}; Python {m['python']}, numpy {m['numpy']}, "
        f"orjson {m['orjson']}, msgspec {m['msgspec']}; one core, best of {w['repeats']}",
        "",
        f"{'measure':<{NAME_WIDTH}}{'events/s':>14}{'us/event':>10}  ratio",
        *engine_rows(w, r),
    ]
    if "wide" in r:
        lines += wide_rows(r["wide"])
    if "broker" in r:
        lines += broker_rows(w, r)
    if "scale_out" in r:
        lines += scale_out_rows(r["scale_out"])
    lines += ["", *target_rows(report["targets"])]
    if "restore" in r:
        lines += ["", *restore_rows(r["restore"])]
    if "memory" in r:
        lines += ["", *memory_rows(r["memory"])]
    lines.append(f"\ndrift events emitted per engine pass: {r['engine']['drift_events']:,}")
    return "\n".join(lines)


def shape(workload: dict[str, Any]) -> str:
    """A workload's models and features, in words."""
    return (
        f"{workload['models']} model(s), {workload['features']} features "
        f"({workload['categorical']} categorical of {workload['categories']} values)"
    )


def of_floors(engine: dict[str, Any]) -> str:
    """An engine's rate as fractions of both decode floors."""
    return (
        f"{engine['ratio_to_decode_floor']:.2f} of orjson floor, "
        f"{engine['ratio_to_typed_floor']:.2f} of typed floor"
    )


def engine_rows(workload: dict[str, Any], results: dict[str, Any]) -> list[str]:
    """The rows of both decode floors and the engine, row events and micro-batches."""
    engine = results["engine"]
    micro = results["micro_batch_engine"]
    batches = f"micro-batches of {workload['micro_batch']:,}"
    return [
        measure_row("decode floor: orjson.loads, row events", results["decode_floor"]),
        measure_row("decode floor: msgspec typed, row events", results["typed_decode_floor"]),
        measure_row(
            f"engine: process + evaluate per {engine['batch_rows']:,} rows",
            engine,
            of_floors(engine),
        ),
        measure_row(f"decode floor: orjson.loads, {batches}", results["micro_batch_decode_floor"]),
        measure_row(
            f"decode floor: msgspec typed, {batches}", results["micro_batch_typed_decode_floor"]
        ),
        measure_row(
            f"engine: {batches}",
            micro,
            f"{micro['ratio_to_row_engine']:.2f}x row events; {of_floors(micro)}",
        ),
    ]


def wide_rows(wide: dict[str, Any]) -> list[str]:
    """The rows of the wide workload: both decode floors and the engine, row events."""
    w = wide["workload"]
    return [
        f"wide workload: {w['events']:,} events, {shape(w)}",
        measure_row("  decode floor: orjson.loads, row events", wide["decode_floor"]),
        measure_row("  decode floor: msgspec typed, row events", wide["typed_decode_floor"]),
        measure_row(
            f"  engine: process + evaluate per {w['batch']:,} rows",
            wide["engine"],
            of_floors(wide["engine"]),
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
            f"{_of_engine(monitor)}; {_waits(monitor)}" + _timed_out(monitor),
        ),
        f"{'  backlog: judged while read':<{NAME_WIDTH}}"
        f"{monitor['event_time_s'] / 60:,.0f} min of event time in {monitor['seconds']:.1f} s; "
        f"{monitor['judged_window_ends']:,} window ends judged, "
        f"{monitor['windows_skipped']:,} skipped; "
        f"peak RSS {monitor['peak_rss_bytes'] / 2**20:,.0f} MiB "
        f"(from {monitor['rss_before_bytes'] / 2**20:,.0f} MiB before)",
        measure_row(
            f"embedded broker: micro-batches of {workload['micro_batch']:,}",
            micro,
            f"{_of_engine(micro)}; "
            f"{micro['ratio_to_row_events']:.2f}x row events; {_waits(micro)}" + _timed_out(micro),
        ),
    ]


def target_ratios(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target: its ratio in ``results``, the ratio of each round, and whether it is met
    (all None where this run did not measure it), and its bounds."""
    ratios = []
    for target in TARGETS:
        value = _find(results, target.path)
        ratios.append(
            {
                "target": target.name,
                "ratio": value,
                "rounds": _find(results, target.rounds),
                "at_least": target.at_least,
                "stretch": target.stretch,
                "met": None if value is None else value >= target.at_least,
            }
        )
    return ratios


def _find(results: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The value at ``path`` in ``results``, None where there is none."""
    value: Any = results
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def target_rows(targets: list[dict[str, Any]]) -> list[str]:
    """The lines of :func:`target_ratios`: each ratio beside its target."""
    lines = ["targets (ratios of the best rates measured in this run; rounds: one pass of each):"]
    for t in targets:
        stretch = "" if t["stretch"] is None else f", stretch {t['stretch']:.2f}"
        bounds = f"at least {t['at_least']:.2f}{stretch}"
        if t["ratio"] is None:
            lines.append(f"  {t['target']:<{NAME_WIDTH - 2}}{'-':>6}  ({bounds}: not measured)")
            continue
        verdict = "met" if t["met"] else "not met"
        lines.append(
            f"  {t['target']:<{NAME_WIDTH - 2}}{t['ratio']:>6.2f}  ({bounds}: {verdict}"
            f"{_rounds(t['rounds'], t['at_least'])})"
        )
    return lines


def _rounds(ratios: list[float] | None, at_least: float) -> str:
    """The spread of a target's ratio over the rounds, and how many reached its bound."""
    if not ratios or len(ratios) < 2:
        return ""
    reached = sum(ratio >= at_least for ratio in ratios)
    return (
        f"; rounds {min(ratios):.3f} to {max(ratios):.3f}, "
        f"{reached} of {len(ratios)} at least {at_least:.2f}"
    )


def scale_out_rows(report: dict[str, Any]) -> list[str]:
    """The rows of a :func:`~stream_monitor.tools.bench_scale.measure_ingest` report."""
    return [
        measure_row(
            f"--role ingest x{run['replicas']}, {report['partitions']} partitions",
            {**run, "us_per_event": 1e6 / run["events_per_s"] if run["events_per_s"] else 0},
            f"{run['ratio_to_first']:.2f}x one replica" + _shares(run) + _timed_out(run),
        )
        for run in report["runs"]
    ]


def _shares(run: dict[str, Any]) -> str:
    """Each replica's share of the events, and the runs it took (beyond one replica)."""
    if run["replicas"] < 2:
        return ""
    shares = "/".join(f"{share:.0%}" for share in run["shares"])
    tries = f", {run['attempts']} runs" if run["attempts"] > 1 else ""
    return f"; shares {shares}{tries}"


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
