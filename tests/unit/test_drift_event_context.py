"""Drift events carry the model's metadata block and the features its windows are judged on."""

from __future__ import annotations

import orjson

from stream_monitor.engine import Engine
from stream_monitor.tools.synthetic import SyntheticTraffic
from tests.conftest import FRAUD_MODEL, PRICE_MODEL, as_messages, make_config

START = 1_700_000_000.0
METADATA = {"owner": "risk-ml-team", "kubernetes_workload": "fraud-api"}


def test_every_drift_event_names_its_metadata_and_features() -> None:
    engine = Engine(make_config(models=[{**FRAUD_MODEL, "metadata": METADATA}, PRICE_MODEL]))
    traffic = SyntheticTraffic(seed=1)
    drift = []
    for minute in range(25):
        ts = START + minute * 60.0
        events = traffic.fraud(300, ts, drifted=minute >= 12)
        events += traffic.price(300, ts, drifted=minute >= 12)
        engine.process(as_messages(events))
        drift += engine.evaluate(now_s=START)
    models = {event.model for event in drift}
    assert models == {"fraud-detector", "price-estimator"}
    for event in drift:
        body = orjson.loads(event.to_json())
        if event.model == "fraud-detector":
            assert body["metadata"] == METADATA
            assert body["features"] == list(FRAUD_MODEL["features"])
        else:
            assert body["metadata"] == {}
            assert body["features"] == list(PRICE_MODEL["features"])
