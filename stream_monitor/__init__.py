"""stream-monitor: streaming drift and quality monitoring for ML models, Kafka to Prometheus.

The data's path: ``kafka``/``replay`` (source) -> :mod:`~stream_monitor.decode`
-> :mod:`~stream_monitor.state` and :mod:`~stream_monitor.windows` (window
state) -> :mod:`~stream_monitor.stats` (statistics) -> :mod:`~stream_monitor.evaluate`
(severities, drift events) -> :mod:`~stream_monitor.sinks` (Prometheus, Kafka).
"""

__version__ = "0.1.0"
