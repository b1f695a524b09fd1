"""The embedded broker stops at once, even while a client is still connected to it."""

from __future__ import annotations

import socket
import time

from confluent_kafka import Producer

from stream_monitor.tools.embedded import STOP_GRACE_S, EmbeddedBroker


def test_a_broker_with_a_connected_client_stops_within_its_grace() -> None:
    broker = EmbeddedBroker().start()
    try:
        broker.create_topics(["stop-test"])
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
        producer.produce("stop-test", b"x")
        assert producer.flush(10) == 0  # delivered: the producer holds a connection
        started = time.monotonic()
        broker.stop()
        took = time.monotonic() - started
        # On SIGTERM alone, Tansu waits 5 s for the producer's connection to close.
        assert took < STOP_GRACE_S + 2.0, f"stopped after {took:.1f}s"
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", broker.port)) != 0  # nothing listens
    finally:
        broker.close()
