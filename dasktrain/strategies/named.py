"""Strategies by name, as job files, the command line and stored summaries spell them."""

from __future__ import annotations

import inspect

from ..errors import DataError
from .averaging import Averaging
from .base import Strategy
from .centralized import Centralized
from .easgd import EASGD
from .ensemble import Ensemble
from .slowmo import SlowMo

STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (Averaging, EASGD, Ensemble, Centralized, SlowMo)}


def strategy_named(name: str, **params) -> Strategy:
    """The strategy called ``name`` (any case) with ``params``; a parameter it does not take is an error.

    >>> strategy_named("EASGD", alpha=0.5)
    EASGD(alpha=0.5, beta=0.9)
    >>> strategy_named("averaging", alpha=0.5)
    Traceback (most recent call last):
    ...
    dasktrain.errors.DataError: Strategy 'averaging' takes no parameter alpha (it takes none).
    """
    cls = STRATEGIES.get(str(name).lower())
    if cls is None:
        raise DataError(f"Unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)} (any case).")
    accepted = [
        p.name
        for p in inspect.signature(cls).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) or "none"
        raise DataError(f"Strategy {cls.name!r} takes no parameter {', '.join(unknown)} (it takes {takes}).")
    strategy = cls(**params)
    strategy.validate()
    return strategy


def recorded_strategy(name: str, **params) -> Strategy:
    """The strategy a stored model records: any of :data:`STRATEGIES`, or ``"hopper"`` for a search's model.

    >>> recorded_strategy("hopper"), recorded_strategy("averaging")
    (Hopper(), Averaging())
    """
    from .hopper import Hopper

    return Hopper() if str(name).lower() == Hopper.name else strategy_named(name, **params)
