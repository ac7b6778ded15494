from __future__ import annotations

from .base import Strategy


class Centralized(Strategy):
    """One worker trains on all the data, through the same code: the baseline for comparisons.

    Examples
    --------
    >>> Centralized().centralized
    True
    """

    name = "centralized"
    centralized = True
