"""The stream-monitor command line."""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from stream_monitor.config import ConfigError, MonitorConfig
from stream_monitor.config_file import ROLES, check_role, load_config, redact
from stream_monitor.engine import Engine
from stream_monitor.progress_bar import FileProgress
from stream_monitor.summaries.reference import (
    Reference,
    ReferenceError,
    build_reference,
    load_reference,
)

if TYPE_CHECKING:
    from stream_monitor.evaluate import DriftEvent
    from stream_monitor.tools.bench import BenchPlan

log = logging.getLogger("stream_monitor")
#: The values of ``--log-level`` (any case).
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

REPLAY_BATCH = 1000


class CommandError(RuntimeError):
    """A problem the user can fix; printed as one line, exit status 2."""


def load_baselines(config: MonitorConfig) -> dict[str, Reference]:
    """The baseline profiles named in the config, checked against each model."""
    baselines = {}
    for model in config.models:
        if model.reference.baseline:
            path = config.resolve_path(model.reference.baseline)
            baselines[model.name] = load_reference(path, model)
    return baselines


def _load(path: str) -> tuple[MonitorConfig, dict[str, Reference]]:
    config = load_config(path)
    return config, load_baselines(config)


def input_file(path: str) -> Path:
    """``--input`` as a readable file, or a :class:`CommandError` saying what is wrong."""
    source = Path(path)
    if not source.exists():
        raise CommandError(f"--input: {source} does not exist")
    if not source.is_file():
        raise CommandError(f"--input: {source} is not a file")
    try:
        source.open("rb").close()
    except OSError as exc:
        raise CommandError(f"--input: cannot read {source}: {exc.strerror}") from None
    return source


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate a config file (and the baselines it names, and the Kafka client settings)."""
    from stream_monitor.kafka.connection import check_client_settings

    config, baselines = _load(args.file)
    check_client_settings(config.kafka)
    print(
        f"ok: {len(config.models)} model(s) ({', '.join(m.name for m in config.models)}), "
        f"windows {', '.join(config.windows.sizes)}, {len(baselines)} baseline file(s)"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """The service: consume, compute, serve /metrics, emit drift events (or one stage of it)."""
    from stream_monitor.kafka.service import MonitorService
    from stream_monitor.scaleout.publisher import PartialPublisher
    from stream_monitor.scaleout.service import AggregateService
    from stream_monitor.sinks.prometheus import MetricsPortError, serve_metrics
    from stream_monitor.summaries.concept import import_in_background

    import_in_background()  # while the broker forms the consumer group
    config, baselines = _load(args.config)
    check_role(config, args.role)
    engine = Engine(config, baselines)
    service: MonitorService | AggregateService
    if args.role == "aggregate":
        service = AggregateService(config, engine)
    elif args.role == "ingest":
        topic = config.kafka.partials_topic
        service = MonitorService(
            config,
            engine,
            publisher_of=lambda writer, n: PartialPublisher(engine, writer, topic, n),
        )
    else:
        service = MonitorService(config, engine)
    metrics = config.metrics
    hint = f"set metrics.port in {args.config} (0: any free port)"
    try:
        server = serve_metrics(service.snapshot, metrics.host, metrics.port, service.ready, hint)
    except MetricsPortError:
        service.connection.close()
        raise
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    watch_for_crashes()
    log.info("serving /metrics on %s:%d", config.metrics.host, server.port)
    log.info(
        "role %s, kafka %s, group %s, client settings %s",
        args.role,
        config.kafka.bootstrap_servers,
        service.config.kafka.group_id,
        redact(config.kafka.client),
    )
    try:
        service.connection.wait_for_broker()
        service.run(stop)
    finally:
        service.connection.close()
        server.stop()
    log.info("stopped cleanly")
    return 0


def watch_for_crashes() -> None:
    """Where the service crashes or hangs, its log tells where: every thread's Python stack
    on a fatal signal (a crash in a native library, such as the Kafka client), and on
    SIGUSR1 (``kill -USR1 PID`` for a process that seems stuck), which it survives."""
    faulthandler.enable()
    faulthandler.register(signal.SIGUSR1, all_threads=True)


def write_events(out: BinaryIO, events: list[DriftEvent], progress: FileProgress) -> None:
    """Drift events as JSON Lines; a progress bar on the same terminal is cleared first."""
    if not events:
        return
    progress.clear()
    out.write(b"".join(event.to_json() + b"\n" for event in events))
    if progress.shown:
        out.flush()


def cmd_replay(args: argparse.Namespace) -> int:
    """Run the engine over a JSON Lines file; drift events as JSON Lines on stdout."""
    from stream_monitor.decode.rejects import RejectLog
    from stream_monitor.files import jsonl_batches
    from stream_monitor.sinks.prometheus import build_registry, exposition

    config, baselines = _load(args.config)
    source = input_file(args.input)
    engine = Engine(config, baselines)
    reject_log = RejectLog()
    out = sys.stdout.buffer
    with FileProgress("replay", source.stat().st_size) as progress:
        for batch in jsonl_batches(source, args.batch_size, on_read=progress.read):
            reject_log.record(engine.process(batch))
            write_events(out, engine.evaluate(), progress)
            progress.counted(len(batch))
        write_events(out, engine.evaluate(final=True), progress)
    out.flush()
    if args.metrics_out:
        Path(args.metrics_out).write_bytes(exposition(build_registry(engine.snapshot)))
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    """Build a reference profile from a JSON Lines or CSV file of events."""
    from stream_monitor.decode.batches import ModelBatch, concat_batches
    from stream_monitor.decode.decoder import Decoder
    from stream_monitor.files import NO_TIME_MS, csv_batches, jsonl_batches
    from stream_monitor.state.model_state import reference_quality
    from stream_monitor.summaries.layout import CounterLayout
    from stream_monitor.summaries.reference import file_digest, save_reference

    config = load_config(args.config)
    model = config.model(args.model)
    if model is None:
        raise CommandError(f"--model: {args.model!r} is not in {args.config}")
    source = input_file(args.input)
    decoder = Decoder([model], config.fields, config.limits)
    columns: list[ModelBatch] = []
    rejected = 0
    with FileProgress("baseline", source.stat().st_size) as progress:
        if source.suffix.lower() == ".csv":
            batches = csv_batches(source, model, REPLAY_BATCH, on_read=progress.read)
        else:
            batches = jsonl_batches(
                source, REPLAY_BATCH, timestamp_ms=NO_TIME_MS, on_read=progress.read
            )
        for batch in batches:
            result = decoder.decode(batch)
            rejected += sum(1 for r in result.rejects if r.reason != "unknown_model")
            columns.extend(result.batches)
            progress.counted(len(batch))
    if not columns:
        raise CommandError(f"--input: {source} holds no valid event of model {model.name}")
    reference = build_reference(
        model,
        columns,
        source=source.name,
        digest=file_digest(source),
        max_known_categories=config.limits.max_known_categories,
    )
    reference.quality = reference_quality(CounterLayout(model, reference), concat_batches(columns))
    save_reference(reference, Path(args.output))
    labeled = int(reference.quality.get("labeled", 0))
    print(
        f"wrote {args.output}: {reference.events} events of {model.name} "
        f"({labeled} labeled), {rejected} rejected"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The self-contained demo."""
    from stream_monitor.tools.demo import run_demo

    return run_demo(seconds=args.seconds, port=args.port, drift_after_s=args.drift_after)


def cmd_bench(args: argparse.Namespace) -> int:
    """The throughput and memory benchmark: its report as a table, or JSON with ``--json``."""
    from stream_monitor.tools.bench import plan_from_args, print_report

    try:
        plan = plan_from_args(args)
    except ValueError as exc:
        raise CommandError(str(exc)) from None

    def progress(text: str) -> None:
        if not args.json:
            print(f"... {text}", file=sys.stderr, flush=True)

    print_report(measure_bench(plan, progress), as_json=args.json)
    return 0


def measure_bench(plan: BenchPlan, say: Callable[[str], None]) -> dict[str, Any]:
    """Every measurement of ``plan`` in turn, each announced to ``say``; the JSON-ready report."""
    from stream_monitor.tools.bench import target_ratios
    from stream_monitor.tools.bench_broker import BROKER_REPEATS, measure_backlogs
    from stream_monitor.tools.bench_engine import measure_throughput, measure_wide, run_engine
    from stream_monitor.tools.bench_memory import memory_in_child
    from stream_monitor.tools.bench_restore import measure_restore
    from stream_monitor.tools.bench_scale import measure_ingest
    from stream_monitor.tools.measuring import machine
    from stream_monitor.tools.workload import bench_config, bench_config_data, workload_messages

    workload = plan.workload
    say(f"generating {workload.events:,} events")
    rows, micro = workload_messages(workload)
    say(f"both decode floors and the engine, best of {workload.repeats}")
    results = measure_throughput(workload, rows, micro)
    if plan.wide:
        say(f"wide workload: {plan.wide.models} models x {plan.wide.features} features")
        results["wide"] = measure_wide(plan.wide)
    if plan.memory:
        say("memory (fresh process)")
        results["memory"] = memory_in_child(plan.memory)
    if plan.broker:
        runs = min(workload.repeats, BROKER_REPEATS)
        say(
            "end to end through the embedded broker: rows, then micro-batches, "
            f"best of {runs}, each run followed by an engine pass"
        )
        engine_pass = partial(run_engine, bench_config(workload))
        results.update(measure_backlogs(workload, rows, micro, engine_pass))
    micro.clear()
    if plan.broker and plan.ingest_replicas:
        replicas = ", ".join(map(str, plan.ingest_replicas))
        say(f"ingest replicas {replicas} through the embedded broker")
        results["scale_out"] = measure_ingest(
            bench_config_data(workload), rows, plan.ingest_replicas
        )
    if plan.broker and plan.restore_partitions:
        counts = ", ".join(map(str, plan.restore_partitions))
        say(f"start-up and restore of stream-monitor run, {counts} partitions")
        results["restore"] = measure_restore(
            bench_config_data(workload), rows, plan.restore_partitions
        )
    return {
        "workload": asdict(workload),
        "machine": machine(),
        "results": results,
        "targets": target_ratios(results),
    }


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="stream-monitor",
        description="Streaming drift and quality monitoring for ML models: inference events "
        "from Kafka in, Prometheus metrics and drift events out.",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        help="DEBUG, INFO, WARNING or ERROR (default INFO; WARNING for bench, whose monitor "
        "runs would log every partition assignment between its progress lines)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="consume from Kafka, serve /metrics, emit drift events")
    run.add_argument("--config", required=True, help="the monitor's YAML config file")
    run.add_argument(
        "--role",
        choices=ROLES,
        default="all",
        help="all: one process does everything; ingest / aggregate: one stage of a "
        "scaled-out deployment (README, Scaling out)",
    )
    run.set_defaults(handler=cmd_run)

    demo = commands.add_parser(
        "demo", help="embedded broker + synthetic drifting traffic + monitor"
    )
    demo.add_argument("--seconds", type=float, default=None, help="stop after this long")
    demo.add_argument("--port", type=int, default=9108, help="/metrics port (0: any free port)")
    demo.add_argument(
        "--drift-after", type=float, default=25.0, help="seconds before traffic drifts"
    )
    demo.set_defaults(handler=cmd_demo)

    baseline = commands.add_parser(
        "baseline", help="build a reference profile from a file of events"
    )
    baseline.add_argument("--config", required=True, help="the monitor's YAML config file")
    baseline.add_argument("--model", required=True, help="the model (by name) to profile")
    baseline.add_argument("--input", required=True, help="events: JSON Lines, or .csv")
    baseline.add_argument("--output", required=True, help="the baseline file to write (JSON)")
    baseline.set_defaults(handler=cmd_baseline)

    replay = commands.add_parser("replay", help="run the engine over a JSON Lines file, no broker")
    replay.add_argument("--config", required=True, help="the monitor's YAML config file")
    replay.add_argument("--input", required=True, help="inference events, JSON Lines")
    replay.add_argument("--metrics-out", help="write the final metrics here (Prometheus text)")
    replay.add_argument("--batch-size", type=int, default=REPLAY_BATCH, help=argparse.SUPPRESS)
    replay.set_defaults(handler=cmd_replay)

    check = commands.add_parser("check-config", help="validate a config file")
    check.add_argument("file", help="the YAML config file to check")
    check.set_defaults(handler=cmd_check_config)

    bench = commands.add_parser("bench", help="measure throughput and memory")
    from stream_monitor.tools.bench import add_arguments

    add_arguments(bench)
    bench.set_defaults(handler=cmd_bench)
    return parser


def log_formatter() -> logging.Formatter:
    """Log lines stamped like drift events: ISO-8601 UTC with a ``Z``."""
    formatter = logging.Formatter(
        "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    return formatter


def log_level(args: argparse.Namespace) -> int:
    """The level of ``--log-level``; unset, INFO, or WARNING for ``bench``."""
    default = logging.WARNING if args.command == "bench" else logging.INFO
    return default if args.log_level is None else int(getattr(logging, args.log_level))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, run one command, turn user errors into one line on stderr."""
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(log_formatter())
    logging.basicConfig(level=log_level(args), handlers=[handler])
    from stream_monitor.kafka.connection import StartupError
    from stream_monitor.sinks.prometheus import MetricsPortError
    from stream_monitor.tools.embedded import EmbeddedBrokerError

    user_errors = (ConfigError, ReferenceError, CommandError, EmbeddedBrokerError, MetricsPortError)
    try:
        return int(args.handler(args))
    except user_errors as exc:
        print(f"stream-monitor {args.command}: {exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"stream-monitor {args.command}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
