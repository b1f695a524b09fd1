"""Synthetic inference traffic for the demo, the tests and the benchmark.

Two models: ``fraud-detector`` (binary classifier) and ``price-estimator``
(regression), with numeric and categorical features and some nulls. With
``drifted=True`` a few named features and the score shift, the rest stay put.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

COUNTRIES = ["US", "GB", "DE", "FR", "ES", "IT", "NL", "BR", "IN", "JP"]
COUNTRY_WEIGHTS = np.array([30, 15, 12, 10, 8, 7, 6, 5, 4, 3], dtype=float)
MERCHANTS = ["grocery", "travel", "electronics", "fashion", "gaming", "fuel"]
DISTRICTS = ["centre", "north", "south", "east", "west", "harbour"]

#: Features that drift in the drifted traffic, by model (the price estimator also slows down).
DRIFTING_FEATURES = {"fraud-detector": ("amount", "country"), "price-estimator": ("area_m2",)}


class SyntheticTraffic:
    """Seeded generator of inference events (dicts in the inference-event schema)."""

    def __init__(self, seed: int = 7, version: str = "v1") -> None:
        self.rng = np.random.default_rng(seed)
        self.version = version
        self._sequence = 0

    def _events(
        self,
        model: str,
        event_ts: float,
        features: list[dict[str, Any]],
        outcomes: Iterable[tuple[float, float | int, float]],
    ) -> list[dict[str, Any]]:
        """Events of ``model`` at ``event_ts``: one per ``features`` row, with its
        (prediction, label, latency) from ``outcomes``; ids go on from the last event's
        number, after the first word of ``model`` (and the version, other than ``v1``)."""
        start = self._sequence
        self._sequence += len(features)
        prefix = model.split("-")[0] + ("" if self.version == "v1" else f"-{self.version}")
        return [
            {
                "event_id": f"{prefix}-{number}",
                "model": model,
                "model_version": self.version,
                "timestamp": event_ts,
                "features": row,
                "prediction": prediction,
                "label": label,
                "latency_ms": latency,
            }
            for number, row, (prediction, label, latency) in zip(
                range(start, start + len(features)), features, outcomes, strict=True
            )
        ]

    def fraud(self, n: int, event_ts: float, drifted: bool = False) -> list[dict[str, Any]]:
        """``n`` events of the fraud detector at ``event_ts``."""
        rng = self.rng
        amount = rng.lognormal(3.5 + (1.2 if drifted else 0.0), 1.0, n)
        amount[rng.random(n) < 0.15] = 0.0
        age = rng.gamma(2.0, 300.0, n)
        weights = COUNTRY_WEIGHTS[::-1] if drifted else COUNTRY_WEIGHTS
        country = rng.choice(COUNTRIES, n, p=weights / weights.sum())
        merchant = rng.choice(MERCHANTS, n)
        logit = -3.0 + 0.6 * np.log1p(amount) - 0.001 * age + (0.8 if drifted else 0.0)
        score = 1.0 / (1.0 + np.exp(-logit))
        label = (rng.random(n) < score).astype(int)
        latency = rng.lognormal(np.log(12.0), 0.4, n)
        null_age = rng.random(n) < 0.03
        features = [
            {
                "amount": round(float(amount[i]), 2),
                "account_age_days": None if null_age[i] else round(float(age[i]), 1),
                "merchant_category": str(merchant[i]),
                "country": str(country[i]),
            }
            for i in range(n)
        ]
        outcomes = (
            (round(float(score[i]), 5), int(label[i]), round(float(latency[i]), 3))
            for i in range(n)
        )
        return self._events("fraud-detector", event_ts, features, outcomes)

    def price(
        self, n: int, event_ts: float, drifted: bool = False, error_scale: float = 1.0
    ) -> list[dict[str, Any]]:
        """``n`` events of the price estimator at ``event_ts``; ``error_scale`` widens the
        spread of its errors (a worse model version: 1.3 gives a 30% higher RMSE)."""
        rng = self.rng
        area = rng.normal(85.0 + (40.0 if drifted else 0.0), 25.0, n).clip(15, None)
        rooms = np.maximum(1, np.round(area / 28.0 + rng.normal(0, 0.7, n)))
        district = rng.choice(DISTRICTS, n)
        truth = 3000.0 * area + 15000.0 * rooms + rng.normal(0, 20000.0, n)
        spread = (15000.0 if not drifted else 40000.0) * error_scale
        prediction = truth + rng.normal(0, spread, n)
        latency = rng.lognormal(np.log(45.0 if drifted else 25.0), 0.5, n)
        null_rooms = rng.random(n) < 0.05
        features = [
            {
                "area_m2": round(float(area[i]), 1),
                "rooms": None if null_rooms[i] else int(rooms[i]),
                "district": str(district[i]),
            }
            for i in range(n)
        ]
        outcomes = (
            (round(float(prediction[i]), 2), round(float(truth[i]), 2), round(float(latency[i]), 3))
            for i in range(n)
        )
        return self._events("price-estimator", event_ts, features, outcomes)
