"""Ranges to sample parameters from in a random search, like MADlib's ``linear``, ``log`` and ``log_near_one``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import DataError


class Distribution:
    """A range of values for ``model_configs(..., search="random")``."""

    def sample(self, rng: np.random.Generator):
        raise NotImplementedError


@dataclass(frozen=True)
class uniform(Distribution):  # noqa: N801 (named like the function it reads as)
    """Any value in ``[low, high)``, evenly (MADlib's ``linear``).

    >>> uniform(0.1, 0.9).sample(np.random.default_rng(0))
    0.6095...
    """

    low: float
    high: float

    def __post_init__(self):
        _check_range(self.low, self.high, type(self).__name__)

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low, self.high))


@dataclass(frozen=True)
class loguniform(Distribution):  # noqa: N801
    """A value in ``[low, high)`` whose logarithm is even (MADlib's ``log``): learning rates.

    >>> loguniform(1e-4, 1e-1).sample(np.random.default_rng(0))
    0.0081...
    """

    low: float
    high: float

    def __post_init__(self):
        _check_range(self.low, self.high, type(self).__name__)
        if self.low <= 0:
            raise DataError(f"loguniform needs low > 0. Received: low={self.low!r}")

    def sample(self, rng: np.random.Generator) -> float:
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))


@dataclass(frozen=True)
class log_near_one(Distribution):  # noqa: N801
    """A value in ``[low, high)`` below 1, dense near 1 (MADlib's ``log_near_one``): momentum, betas.

    ``1 - value`` is drawn with :class:`loguniform`.

    >>> log_near_one(0.9, 0.999).sample(np.random.default_rng(0))
    0.9812...
    """

    low: float
    high: float

    def __post_init__(self):
        _check_range(self.low, self.high, type(self).__name__)
        if self.high >= 1:
            raise DataError(f"log_near_one needs high < 1. Received: high={self.high!r}")

    def sample(self, rng: np.random.Generator) -> float:
        return 1.0 - loguniform(1.0 - self.high, 1.0 - self.low).sample(rng)


@dataclass(frozen=True)
class choice(Distribution):  # noqa: N801
    """One of ``values``, each as likely.

    >>> choice(["adam", "sgd"]).sample(np.random.default_rng(0))
    'sgd'
    """

    values: tuple

    def __init__(self, values):
        values = tuple(values)
        if not values:
            raise DataError("choice needs at least one value.")
        object.__setattr__(self, "values", values)

    def sample(self, rng: np.random.Generator):
        return self.values[int(rng.integers(len(self.values)))]


def _check_range(low, high, name: str) -> None:
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high)):
        raise DataError(f"{name} needs two finite numbers. Received: {low!r}, {high!r}")
    if not low < high:
        raise DataError(f"{name} needs low < high. Received: low={low!r}, high={high!r}")
