from __future__ import annotations

from .base import Strategy


class Averaging(Strategy):
    """Row-weighted model averaging: after each round, every replica starts from Σ nᵢ·wᵢ / Σ nᵢ.

    ``nᵢ`` is the number of rows of replica ``i``, so replicas of unequal size count in
    proportion to their data.

    Examples
    --------
    >>> import dasktrain
    >>> dasktrain.fit("digits", model, x="x", y="y", compile=..., iterations=5,
    ...               strategy=dasktrain.Averaging())  # doctest: +SKIP
    """

    name = "averaging"
