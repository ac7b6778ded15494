from __future__ import annotations

from ..errors import DataError
from .base import Strategy, Weights


class EASGD(Strategy):
    """Elastic averaging SGD: replicas keep their own weights, pulled towards a moving center.

    At the end of each round::

        center ← (1 − beta) · center + beta · mean_n(local)
        localᵢ ← localᵢ − alpha · (localᵢ − center)

    ``EASGD(alpha=1, beta=1)`` is exactly :class:`Averaging`.

    Parameters
    ----------
    alpha : float, default 0.01
        How far each replica's weights move towards the center, in [0, 1].
    beta : float, default 0.9
        How far the center moves towards the replicas' row-weighted mean, in [0, 1].

    Examples
    --------
    >>> EASGD(alpha=0.01, beta=0.9)
    EASGD(alpha=0.01, beta=0.9)
    """

    name = "easgd"
    keeps_local_weights = True

    def __init__(self, alpha: float = 0.01, beta: float = 0.9):
        self.alpha = alpha
        self.beta = beta

    def validate(self) -> None:
        for label, value in (("alpha", self.alpha), ("beta", self.beta)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise DataError(f"EASGD expects {label} in [0, 1]. Received: {label}={value!r}")

    def center(self, previous: Weights, mean: Weights) -> Weights:
        b = self.beta
        return [((1 - b) * p + b * m).astype(m.dtype) for p, m in zip(previous, mean, strict=True)]

    def local(self, local: Weights, center: Weights) -> Weights:
        # (1 − a)·w + a·c is w − a·(w − c), written so that a = 1 gives exactly c.
        a = self.alpha
        return [((1 - a) * w + a * c).astype(w.dtype) for w, c in zip(local, center, strict=True)]

    def params(self) -> dict:
        return {"alpha": self.alpha, "beta": self.beta}
