"""Hyperband's schedule (Li et al., 2018), as MADlib's ``hyperband_schedule`` prints it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..errors import DataError


def hyperband_schedule(R: int, eta: int = 3, skip_last: int = 0) -> pd.DataFrame:
    """Every round of every Hyperband bracket: ``s`` (bracket), ``i`` (round), ``n_i`` configurations
    trained for ``r_i`` iterations each.

    Bracket ``s`` starts ``n = ceil((s_max + 1) / (s + 1) · eta^s)`` configurations at
    ``r = R · eta^-s`` iterations; each round keeps the best ``1/eta`` of them and trains them
    ``eta`` times longer, up to ``R``. ``skip_last`` drops the last rounds of every bracket (MADlib's
    and the reference implementation's meaning), for a cheaper search.

    Parameters
    ----------
    R : int
        The most iterations one configuration gets (at least ``eta``).
    eta : int, default 3
        Each round keeps ``1/eta`` of the configurations (greater than 1).
    skip_last : int, default 0
        How many of the last rounds of each bracket to leave out.

    Returns
    -------
    pandas.DataFrame
        Columns ``s, i, n_i, r_i``, brackets from the most exploratory down.

    Examples
    --------
    >>> hyperband_schedule(R=9, eta=3)
       s  i  n_i  r_i
    0  2  0    9  1.0
    1  2  1    3  3.0
    2  2  2    1  9.0
    3  1  0    5  3.0
    4  1  1    1  9.0
    5  0  0    3  9.0
    """
    for name, value in (("R", R), ("eta", eta), ("skip_last", skip_last)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise DataError(f"Expected {name} as a whole number. Received: {name}={value!r}")
    if eta < 2:
        raise DataError(f"Expected eta >= 2 (each round keeps 1/eta of the configurations). Received: eta={eta}")
    if R < eta:
        raise DataError(f"Expected R >= eta: with R={R} and eta={eta} there is only one round.")
    if skip_last < 0:
        raise DataError(f"Expected skip_last >= 0. Received: skip_last={skip_last}")
    s_max = 0
    while eta ** (s_max + 1) <= R:  # floor(log_eta(R)) in integers: no rounding error at exact powers
        s_max += 1
    rows = []
    for s in range(s_max, -1, -1):
        n = math.ceil((s_max + 1) * eta**s / (s + 1))
        for i in range(s + 1 - skip_last):
            rows.append((s, i, n // eta**i, float(R * eta ** (i - s))))
    return pd.DataFrame(rows, columns=["s", "i", "n_i", "r_i"])
