"""``Hopper``: how a model selection search's models trained, recorded as their strategy."""

from __future__ import annotations

from .base import Strategy


class Hopper(Strategy):
    """How a search's models trained (their results' ``strategy``): model hopper parallelism.

    Not a way of merging replicas: each model trains alone, one visit to one part at a time, its
    weights and optimizer state carried from part to part, so it trains as one model on the whole
    table would. Nothing is merged.

    >>> Hopper()
    Hopper()
    >>> Hopper().name
    'hopper'
    """

    name = "hopper"
