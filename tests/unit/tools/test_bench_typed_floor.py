"""The typed decode floor's decoder: the benchmark's events into one typed struct per model."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pytest

from stream_monitor.tools.measuring import typed_decoder
from stream_monitor.tools.workload import BenchTraffic, Workload, bench_config, row_messages

WORKLOAD = Workload(events=300, models=3, features=6, categorical=2, categories=4)
FIELDS = ("event_id", "model_version", "timestamp", "prediction", "latency_ms", "label")


def typed_as_dict(event: Any) -> dict[str, Any]:
    """A decoded struct as the JSON object it came from: its tag, fields and features."""
    data = {field: getattr(event, field) for field in FIELDS}
    data["model"] = type(event).__struct_config__.tag
    data["features"] = msgspec.structs.asdict(event.features)
    return data


def expected(event: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """What the typed struct of ``event`` holds: every field (None where absent), features
    by name (None where absent), numbers of numeric fields as floats."""
    data = {field: event.get(field) for field in FIELDS}
    data["model"] = event["model"]
    data["features"] = {name: event["features"].get(name) for name in names}
    return data


def test_typed_structs_hold_what_orjson_reads() -> None:
    config = bench_config(WORKLOAD)
    messages = row_messages(BenchTraffic(WORKLOAD, rate_per_s=10).take(WORKLOAD.events))
    decoder = typed_decoder(config)
    names = WORKLOAD.numeric_names() + WORKLOAD.categorical_names()
    models = set()
    for message in messages:
        assert message.value is not None
        event = orjson.loads(message.value)
        typed = decoder.decode(message.value)
        assert typed_as_dict(typed) == expected(event, names)
        assert isinstance(typed.prediction, float)
        models.add(type(typed).__name__)
    assert len(models) == WORKLOAD.models  # one struct type per model


def test_micro_batches_decode_to_lists_of_the_same_structs() -> None:
    config = bench_config(WORKLOAD)
    events = BenchTraffic(WORKLOAD, rate_per_s=10).take(50)
    names = WORKLOAD.numeric_names() + WORKLOAD.categorical_names()
    typed = typed_decoder(config, micro_batch=True).decode(orjson.dumps(events))
    assert [typed_as_dict(t) for t in typed] == [expected(e, names) for e in events]


def test_unknown_fields_are_ignored_and_absent_features_are_none() -> None:
    decoder = typed_decoder(bench_config(WORKLOAD))
    typed = decoder.decode(
        b'{"extra": [1, {"a": 2}], "prediction": 1, "model": "bench-1",'
        b' "features": {"num_00": 2, "cat_1": true, "other": "x"}}'
    )
    assert type(typed).__struct_config__.tag == "bench-1"
    assert typed.prediction == 1.0 and isinstance(typed.prediction, float)
    features = msgspec.structs.asdict(typed.features)
    assert features == {"num_00": 2.0, "num_01": None, "num_02": None, "num_03": None,
                        "cat_0": None, "cat_1": True}  # fmt: skip


@pytest.mark.parametrize(
    "value",
    [
        b'{"model": "other", "prediction": 0.5, "features": {}}',  # an unknown model
        b'{"model": "bench-0", "prediction": 0.5, "features": {"num_00": "1"}}',  # a string
        b'{"model": "bench-0", "prediction": 0.5}',  # no features
        b'{"prediction": 0.5, "features": {}}',  # no model
        b'[{"model": "bench-0", "prediction": 0.5, "features": {}}]',  # an array
    ],
)
def test_what_the_typed_path_cannot_read_is_a_validation_error(value: bytes) -> None:
    with pytest.raises(msgspec.ValidationError):
        typed_decoder(bench_config(WORKLOAD)).decode(value)
