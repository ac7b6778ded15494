"""How the replicas' models are merged each round: one class per strategy."""

from .averaging import Averaging
from .base import Strategy, WeightedSum
from .centralized import Centralized
from .easgd import EASGD
from .ensemble import Ensemble
from .named import STRATEGIES, strategy_named
from .slowmo import SlowMo

__all__ = [
    "EASGD",
    "STRATEGIES",
    "Averaging",
    "Centralized",
    "Ensemble",
    "SlowMo",
    "Strategy",
    "WeightedSum",
    "strategy_named",
]
