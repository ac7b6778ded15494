"""Hyperband's schedule: MADlib's ``hyperband_schedule`` (the default) or Li et al.'s (2018) Table 1."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..errors import DataError

#: How each bracket's first rung is sized: MADlib's integer division, or the paper's ceiling.
SCHEDULES = ("madlib", "li")


def hyperband_schedule(R: int, eta: int = 3, skip_last: int = 0, *, schedule: str = "madlib") -> pd.DataFrame:
    """Every round of every Hyperband bracket: ``s`` (bracket), ``i`` (round), ``n_i`` configurations
    trained for ``r_i`` iterations each.

    Bracket ``s`` (from ``s_max = floor(log_eta R)`` down to 0) starts ``n`` configurations at
    ``r = R · eta^-s`` iterations; round ``i`` keeps ``n_i = floor(n · eta^-i)`` of them and trains
    them to ``r_i = r · eta^i`` iterations, up to ``R``. ``skip_last`` drops the last rounds of
    every bracket (MADlib's and the reference implementation's meaning), for a cheaper search.

    ``schedule`` chooses ``n``:

    - ``"madlib"`` (the default): ``n = floor((s_max + 1) / (s + 1)) · eta^s``, as MADlib's
      ``hyperband_schedule`` and ``madlib_keras_automl`` compute it, so a search moved from
      MADlib trains as many configurations for as many iterations: it costs the same.
    - ``"li"``: ``n = ceil((s_max + 1) / (s + 1) · eta^s)``, Li et al. (2018), Table 1: the middle
      brackets start more configurations (R=81, eta=3: bracket 3 starts 34 rather than 27).

    Parameters
    ----------
    R : int
        The most iterations one configuration gets (at least ``eta``).
    eta : int, default 3
        Each round keeps ``1/eta`` of the configurations (greater than 1).
    skip_last : int, default 0
        How many of the last rounds of each bracket to leave out.
    schedule : {"madlib", "li"}, default "madlib"
        Whose bracket sizes: MADlib's or the paper's.

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
    3  1  0    3  3.0
    4  1  1    1  9.0
    5  0  0    3  9.0
    >>> hyperband_schedule(R=9, eta=3, schedule="li").n_i.tolist()
    [9, 3, 1, 5, 1, 3]
    """
    for name, value in (("R", R), ("eta", eta), ("skip_last", skip_last)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise DataError(f"Expected {name} as a whole number. Received: {name}={value!r}")
    if schedule not in SCHEDULES:
        raise DataError(f"Expected schedule='madlib' or 'li'. Received: schedule={schedule!r}")
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
        if schedule == "madlib":
            n = (s_max + 1) // (s + 1) * eta**s
        else:
            n = math.ceil((s_max + 1) * eta**s / (s + 1))
        for i in range(s + 1 - skip_last):
            rows.append((s, i, n // eta**i, float(R * eta ** (i - s))))
    return pd.DataFrame(rows, columns=["s", "i", "n_i", "r_i"])
