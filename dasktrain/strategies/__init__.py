"""How per-segment models are merged each round: one class per strategy."""

from .averaging import Averaging
from .base import Strategy, WeightedSum
from .centralized import Centralized
from .easgd import EASGD
from .ensemble import Ensemble

__all__ = ["EASGD", "Averaging", "Centralized", "Ensemble", "Strategy", "WeightedSum"]
