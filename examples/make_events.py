"""Write the sample inference events of ``examples/``: a baseline, then a stream that drifts.

Two models, the fraud detector (binary classifier) and the price estimator
(regression), one event of each per second of event time, from the seeded
generator of the demo (``stream_monitor/tools/synthetic.py``):

- ``baseline-events.jsonl``: 1,000 events of each model, the day before, as
  they were when the models were validated;
- ``events.jsonl``: 30 minutes of each model; from minute 15 on, the traffic
  drifts (the fraud detector's ``amount`` and ``country``, the price
  estimator's ``area_m2``, its errors and its latency).

Run from the repository's top folder: ``python examples/make_events.py``. The
output is the same on every run (fixed seed and event times).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from stream_monitor.tools.synthetic import SyntheticTraffic

#: Event time of the stream's first second (2023-11-14T22:13:20Z).
START_S = 1_700_000_000
BASELINE_EVENTS = 1000
STREAM_S = 30 * 60
DRIFT_AFTER_S = 15 * 60
SEED = 2023


def events(
    traffic: SyntheticTraffic, start_s: int, seconds: int, drift_after_s: int
) -> Iterator[dict[str, Any]]:
    """One event of each model per second from ``start_s``, drifted from ``drift_after_s`` on."""
    for second in range(seconds):
        drifted = second >= drift_after_s
        yield from traffic.fraud(1, start_s + second, drifted)
        yield from traffic.price(1, start_s + second, drifted)


def write_jsonl(path: Path, rows: Iterator[dict[str, Any]]) -> int:
    """Write ``rows`` as JSON Lines; the number written."""
    count = 0
    with path.open("wb") as out:
        for row in rows:
            out.write(orjson.dumps(row) + b"\n")
            count += 1
    return count


def main() -> None:
    """Write both files into ``--out`` (default: this script's folder)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent, help="folder to write to"
    )
    out = parser.parse_args().out
    traffic = SyntheticTraffic(seed=SEED)
    baseline = write_jsonl(
        out / "baseline-events.jsonl",
        events(traffic, START_S - 86_400, BASELINE_EVENTS, BASELINE_EVENTS),
    )
    stream = write_jsonl(out / "events.jsonl", events(traffic, START_S, STREAM_S, DRIFT_AFTER_S))
    print(f"wrote {out}: baseline-events.jsonl ({baseline} events), events.jsonl ({stream} events)")


if __name__ == "__main__":
    main()
