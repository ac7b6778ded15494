from __future__ import annotations

from .base import Strategy, Weights


class Ensemble(Strategy):
    """Independent replicas' models; the prediction is the mean of the members' probabilities.

    The result keeps one member per replica; :func:`dasktrain.load_model` returns one Keras model
    that averages them.

    Examples
    --------
    >>> Ensemble().is_ensemble
    True
    """

    name = "ensemble"
    keeps_local_weights = True
    is_ensemble = True

    def local(self, local: Weights, center: Weights) -> Weights:
        return local
