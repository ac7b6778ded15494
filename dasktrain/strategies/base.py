"""What every strategy shares: row-weighted sums of weight lists, in pure numpy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Weights = list[np.ndarray]


@dataclass
class WeightedSum:
    """Σ nᵢ·wᵢ (in float64) and Σ nᵢ over the replicas merged so far, with their metrics."""

    total: Weights
    rows: int
    metrics: dict[str, float]  # Σ nᵢ·metricᵢ

    @classmethod
    def of(cls, weights: Sequence[np.ndarray], rows: int, metrics: dict[str, float] | None = None) -> WeightedSum:
        return cls(
            [np.asarray(w, dtype=np.float64) * rows for w in weights],
            rows,
            {k: float(v) * rows for k, v in (metrics or {}).items()},
        )

    def __add__(self, other: WeightedSum) -> WeightedSum:
        return WeightedSum(
            [a + b for a, b in zip(self.total, other.total, strict=True)],
            self.rows + other.rows,
            {k: self.metrics.get(k, 0.0) + other.metrics.get(k, 0.0) for k in self.metrics | other.metrics},
        )

    def mean(self) -> Weights:
        """Σ nᵢ·wᵢ / Σ nᵢ as float32."""
        return [(t / self.rows).astype(np.float32) for t in self.total]

    def mean_metrics(self) -> dict[str, float]:
        return {k: v / self.rows for k, v in self.metrics.items()}


class Strategy:
    """Base class: how the replicas' models are merged at the end of each round.

    Subclasses define :meth:`center` (the merged model from the previous center and the
    row-weighted mean of the replicas' models) and :meth:`local` (where each replica starts the
    next round). A strategy with state of its own between rounds (an outer optimizer's momentum)
    defines :meth:`update` instead of :meth:`center`, and one that changes the replicas' learning
    rate defines :meth:`inner_learning_rate`.
    """

    name = "strategy"
    #: Whether each replica keeps its own weights between rounds.
    keeps_local_weights = False
    #: Whether the result is several member models rather than one.
    is_ensemble = False
    #: Whether all data is trained by one worker as one replica.
    centralized = False

    def validate(self) -> None:
        """Raise :class:`~dasktrain.errors.DataError` for parameters out of range."""

    def center(self, previous: Weights, mean: Weights) -> Weights:
        return mean

    def update(self, previous: Weights, mean: Weights, state) -> tuple[Weights, object]:
        """The next center and the strategy's next state (``state`` is None before the first round)."""
        return self.center(previous, mean), state

    def local(self, local: Weights, center: Weights) -> Weights:
        return center

    def inner_learning_rate(self, base: float, replicas: int, iteration: int) -> float:
        """The learning rate each replica's optimizer uses in ``iteration`` (1-based), given the compiled one."""
        return base

    def params(self) -> dict:
        """The strategy's parameters, recorded in the model summary."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.params() == other.params()

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self.params().items()))))
