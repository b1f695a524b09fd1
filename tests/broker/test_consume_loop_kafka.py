"""The service loop reads a backlog of micro-batches without idling for ``poll_timeout_s``.

``consume()`` waits until it has ``kafka.batch_size`` messages or its timeout
passed. Micro-batches of a thousand events fill the client's fetch queue long
before they number ``batch_size``, so a loop that always waited would idle for
the timeout before every batch of a backlog. Here ``batch_size`` is 8 and the
backlog 30 messages: the batches fill but the last, which such a loop would
take only once the timeout passed. After a batch worth taking at once, the
loop waits only for the first message of the next batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import orjson

from stream_monitor.config_file import config_from_dict
from stream_monitor.engine import Engine
from stream_monitor.kafka.service import SUBSTANTIAL_BYTES, MonitorService
from stream_monitor.tools.embedded import EmbeddedBroker
from stream_monitor.tools.synthetic import SyntheticTraffic
from tests.conftest import broker_config, produce, wait_for
from tests.unit.test_engine import START

POLL_TIMEOUT_S = 2.0
BATCH_SIZE = 8
MESSAGES = 30
#: Events per micro-batch message: about 290 KB each.
EVENTS_PER_MESSAGE = 1200


def test_a_backlog_of_micro_batches_is_read_without_waiting_for_full_batches(
    broker: EmbeddedBroker, topic_names: Callable[..., str]
) -> None:
    events_topic, drift_topic = topic_names("events"), topic_names("drift")
    events = SyntheticTraffic(seed=3).fraud(MESSAGES * EVENTS_PER_MESSAGE, START)
    values = [
        orjson.dumps(events[start : start + EVENTS_PER_MESSAGE])
        for start in range(0, len(events), EVENTS_PER_MESSAGE)
    ]
    assert min(map(len, values)) >= SUBSTANTIAL_BYTES  # each is worth taking at once
    produce(broker.bootstrap_servers, events_topic, values)
    data = broker_config(
        broker, f"loop-{events_topic}", {"events": events_topic, "drift_events": drift_topic}
    )
    data["kafka"] |= {
        "poll_timeout_s": POLL_TIMEOUT_S,
        "batch_size": BATCH_SIZE,
    }
    config = config_from_dict(data)
    engine = Engine(config)
    service = MonitorService(config, engine)
    batches: list[tuple[float, float, int]] = []  # arrival, end of processing, messages
    process = service.process

    def timed(messages: list[Any]) -> None:
        arrived = time.monotonic()
        process(messages)
        if messages:
            batches.append((arrived, time.monotonic(), len(messages)))

    service.process = timed  # type: ignore[method-assign]
    stop = threading.Event()
    service.connection.wait_for_broker()
    thread = threading.Thread(target=service.run, args=(stop,))
    thread.start()
    try:
        wait_for(
            lambda: sum(engine.events_total.values()) >= len(events),
            timeout_s=60,
            what="every event counted",
        )
    finally:
        stop.set()
        thread.join(30)
    assert sum(count for _, _, count in batches) == MESSAGES
    assert len(batches) >= MESSAGES // BATCH_SIZE, batches
    waits = [arrived - ended for (_, ended, _), (arrived, _, _) in pairwise(batches)]
    # Waiting for full batches would idle POLL_TIMEOUT_S before the last one.
    assert max(waits) < POLL_TIMEOUT_S / 2, (waits, batches)
