"""A model's ``metadata:`` block: a fixed set of keys, short single-line values."""

from __future__ import annotations

from typing import Any

import pytest

from stream_monitor.config import ConfigError
from stream_monitor.config_file import config_from_dict, load_config
from stream_monitor.model_metadata import MAX_VALUE_CHARS, METADATA_KEYS
from tests.conftest import ROOT


def with_metadata(metadata: Any) -> dict[str, Any]:
    model = {"name": "m", "task": "binary", "features": {"x": "numeric"}, "metadata": metadata}
    return {"models": [model]}


def test_every_key_is_read_as_a_string() -> None:
    metadata = {key: f"value of {key}" for key in METADATA_KEYS}
    metadata |= {"kubernetes_namespace": "serving", "kubernetes_workload": "fraud-api.v2"}
    metadata["training_dataset"] = 20240501  # a number is taken as its text
    (model,) = config_from_dict(with_metadata(metadata)).models
    assert model.metadata == {**metadata, "training_dataset": "20240501"}


def test_no_block_and_an_empty_block_mean_no_metadata() -> None:
    minimal = with_metadata(None)
    assert config_from_dict(minimal).models[0].metadata == {}
    del minimal["models"][0]["metadata"]
    assert config_from_dict(minimal).models[0].metadata == {}


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"team": "risk"}, "models[0].metadata.team: unknown metadata key (expected one of owner,"),
        (["owner"], "models[0].metadata: expected a mapping, got list"),
        ({"owner": ""}, "models[0].metadata.owner: expected a non-empty string"),
        ({"owner": True}, "models[0].metadata.owner: expected a non-empty string, got True"),
        ({"owner": ["a", "b"]}, "models[0].metadata.owner: expected a non-empty string"),
        (
            {"description": "x" * (MAX_VALUE_CHARS + 1)},
            f"models[0].metadata.description: {MAX_VALUE_CHARS + 1} characters, at most "
            f"{MAX_VALUE_CHARS}",
        ),
        ({"owner": "risk\nteam"}, "models[0].metadata.owner: must be one line"),
        (
            {"kubernetes_namespace": "Serving"},
            "models[0].metadata.kubernetes_namespace: 'Serving' is not a Kubernetes name",
        ),
        (
            {"kubernetes_workload": "fraud-api.*"},
            "models[0].metadata.kubernetes_workload: 'fraud-api.*' is not a Kubernetes name",
        ),
        (
            {"kubernetes_namespace": "n" * 64},
            "models[0].metadata.kubernetes_namespace: ",
        ),
    ],
)
def test_bad_metadata_names_the_key(metadata: Any, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        config_from_dict(with_metadata(metadata))
    assert str(error.value).startswith(message), str(error.value)


def test_a_value_of_the_longest_length_is_accepted() -> None:
    text = "d" * MAX_VALUE_CHARS
    assert config_from_dict(with_metadata({"description": text})).models[0].metadata == {
        "description": text
    }


def test_the_example_config_describes_its_models() -> None:
    config = load_config(ROOT / "config" / "monitor.yaml", environ={})
    for model in config.models:
        assert {"owner", "kubernetes_namespace", "kubernetes_workload"} <= set(model.metadata)
