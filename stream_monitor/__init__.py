"""stream-monitor: streaming drift and quality monitoring for ML models, Kafka to Prometheus.

The data's path, one subpackage per step: ``kafka`` (source, offsets, changelog)
-> ``decode`` (messages to column batches) -> ``state`` (panes per input partition,
windows, label joins, checkpoints) -> ``summaries`` (mergeable bins and the
statistics read from them) -> :mod:`~stream_monitor.evaluate` (severities, drift
events) -> ``sinks`` (Prometheus, the drift-event and dead-letter topics).
:mod:`~stream_monitor.engine` is the facade over the pure core; ``scaleout``
spreads it over a consumer group; ``tools`` holds the demo and the benchmarks.
"""

__version__ = "0.1.0"
