# syntax=docker/dockerfile:1
# stream-monitor container image: a multi-stage build on Debian slim (numpy and librdkafka
# ship manylinux wheels, so nothing is compiled and no build tools reach the final image).
#
#   docker build -t stream-monitor .
#   docker run --rm -p 9108:9108 -e KAFKA_BOOTSTRAP_SERVERS=broker:9092 stream-monitor
#   docker run --rm -v "$PWD/config/monitor.yaml:/etc/stream-monitor/monitor.yaml:ro" stream-monitor
#
# tests/test_dockerfile.py replays the builder stage's RUN steps in a local venv, so keep
# them plain shell commands that work from the build context's root.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: a virtual environment holding the dependencies and the package
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv
RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH"

WORKDIR /src

# Dependencies first, in their own layer: rebuilt only when pyproject.toml changes, not on
# every source edit.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && pip install -r requirements.txt

# Then the package itself (its dependencies are already satisfied, so this layer is quick).
COPY README.md ./
COPY stream_monitor ./stream_monitor
RUN pip install .

# ---- final: the slim runtime, the venv, and nothing else
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="stream-monitor" \
      org.opencontainers.image.description="Streaming drift and quality monitoring for ML models, from Kafka to Prometheus" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH="/opt/venv/bin:$PATH"

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin app

COPY --from=builder /opt/venv /opt/venv
# A default config (the commented example); Kubernetes mounts its ConfigMap over this folder.
COPY config/monitor.yaml /etc/stream-monitor/monitor.yaml

USER 10001:10001
EXPOSE 9108

ENTRYPOINT ["stream-monitor"]
CMD ["run", "--config", "/etc/stream-monitor/monitor.yaml"]
