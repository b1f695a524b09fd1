"""The concept-drift adapter: same detections as river, state that round-trips exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from river import drift

from stream_monitor.summaries.concept import ConceptDriftDetector

PARAMS = [
    ("adwin", {}, drift.ADWIN),
    ("adwin", {"delta": 0.01, "clock": 8}, drift.ADWIN),
    ("page_hinkley", {}, drift.PageHinkley),
    ("page_hinkley", {"threshold": 20.0, "min_instances": 50}, drift.PageHinkley),
]


def shifting_errors(seed: int) -> np.ndarray:
    """Misclassification indicators whose rate goes 0.1 -> 0.4 -> 0.15."""
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [rng.binomial(1, 0.1, 3000), rng.binomial(1, 0.4, 3000), rng.binomial(1, 0.15, 3000)]
    ).astype(float)


@pytest.mark.parametrize(("kind", "params", "river_cls"), PARAMS)
def test_same_detections_as_river(kind: str, params: dict, river_cls: type) -> None:
    errors = shifting_errors(1)
    reference = river_cls(**params)
    expected = []
    for i, x in enumerate(errors):
        reference.update(x)
        if reference.drift_detected:
            expected.append(i)
    detector = ConceptDriftDetector(kind, **params)
    assert detector.update_many(errors) == expected
    assert expected, "the shift must be detected"
    assert detector.n_detections == len(expected)
    assert detector.n_seen == len(errors)


@pytest.mark.parametrize(("kind", "params", "river_cls"), PARAMS)
@pytest.mark.parametrize("cut", [0, 17, 3020, 3100, 8999])
def test_state_round_trips_through_json(kind: str, params: dict, river_cls: type, cut: int) -> None:
    errors = shifting_errors(2)
    whole = ConceptDriftDetector(kind, **params)
    expected = [i for i in whole.update_many(errors) if i >= cut]

    first = ConceptDriftDetector(kind, **params)
    first.update_many(errors[:cut])
    state = json.loads(json.dumps(first.to_state()))
    second = ConceptDriftDetector.from_state(state, strict=True)
    assert second.restored
    assert second.drift_detected == first.drift_detected
    assert [cut + i for i in second.update_many(errors[cut:])] == expected
    assert second.n_detections == whole.n_detections
    assert second.to_state() == whole.to_state()


def test_state_round_trips_right_after_a_detection() -> None:
    errors = shifting_errors(3)
    whole = ConceptDriftDetector()
    detections = whole.update_many(errors)
    cut = detections[0] + 1  # the state is saved while drift_detected is still True
    first = ConceptDriftDetector()
    first.update_many(errors[:cut])
    assert first.drift_detected
    second = ConceptDriftDetector.from_state(first.to_state())
    assert second.drift_detected
    assert [cut + i for i in second.update_many(errors[cut:])] == detections[1:]


def test_other_river_version_starts_afresh_or_raises_when_strict() -> None:
    d = ConceptDriftDetector(delta=0.01)
    d.update_many(shifting_errors(4))
    state = d.to_state() | {"river_version": "0.0.1"}
    fresh = ConceptDriftDetector.from_state(state)
    assert not fresh.restored and fresh.params == {"delta": 0.01}
    assert fresh.n_seen == 0 and fresh.n_detections == d.n_detections
    with pytest.raises(ValueError, match="river"):
        ConceptDriftDetector.from_state(state, strict=True)
    with pytest.raises(ValueError):
        ConceptDriftDetector.from_state(
            d.to_state() | {"detector": "bm90IGJpbmNvZGU="}, strict=True
        )


def test_non_finite_values_are_skipped() -> None:
    d = ConceptDriftDetector()
    assert d.update_many(np.array([np.nan, 1.0, np.inf, 0.0])) == []
    assert d.n_seen == 2


def test_bad_kind_or_parameters() -> None:
    with pytest.raises(ValueError, match="unknown"):
        ConceptDriftDetector("kswin")
    with pytest.raises(ValueError, match="bad parameters"):
        ConceptDriftDetector("adwin", threshold=3)
    with pytest.raises(ValueError):
        ConceptDriftDetector("page_hinkley", mode="sideways")


def test_error_stream_places_each_detection_on_its_chunks_last_error() -> None:
    """Where a detection lands depends on the errors alone, not on how they were batched."""
    from stream_monitor.config import ConceptDriftConfig
    from stream_monitor.state.errors import ErrorStream

    rng = np.random.default_rng(3)
    errors = np.concatenate((rng.random(3000) < 0.1, rng.random(3000) < 0.6)).astype(float)
    errors[rng.choice(len(errors), 200, replace=False)] = np.nan  # unlabeled rows
    config = ConceptDriftConfig("adwin", {}, chunk=16)

    whole = ErrorStream(config).feed(errors)
    assert whole, "the error rate jumps from 10% to 60%"
    for cuts in ([1000, 2500, 4000], [7, 3001, 3002, 5999]):
        stream, found = ErrorStream(config), []
        for start, end in zip([0, *cuts], [*cuts, len(errors)], strict=True):
            found += [start + row for row in stream.feed(errors[start:end])]
        assert found == whole

    # each index is the last finite error of a chunk of 16 (counting finite errors only)
    finite = np.flatnonzero(np.isfinite(errors))
    detector = ConceptDriftDetector("adwin")
    means = errors[finite][: len(finite) // 16 * 16].reshape(-1, 16).mean(axis=1)
    assert whole == [int(finite[(k + 1) * 16 - 1]) for k in detector.update_many(means)]
