"""A pandas DataFrame that prints whole: every column and row, text left-aligned, numbers right-aligned."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd


class WholeTable(pd.DataFrame):
    """A DataFrame whose ``print`` shows every column and row, a row per line.

    pandas elides columns to fit its display width; the tables dasktrain returns (a search's, the
    workers' devices) are wider than a terminal, and read better whole. Floats print to 4
    decimals, or as whole numbers in ``integer_columns`` (which pandas made float for a missing
    value), or to 1 decimal in ``one_decimal_columns``; a missing value prints as ``-``.

    >>> print(WholeTable({"mst_key": [2, 1], "architecture": ["cnn", "mlp"], "validation_loss": [0.31, None]}))
    mst_key  architecture  validation_loss
          2  cnn                    0.3100
          1  mlp                         -
    """

    integer_columns: ClassVar[frozenset[str]] = frozenset()
    one_decimal_columns: ClassVar[frozenset[str]] = frozenset()

    @property
    def _constructor(self):
        return type(self)  # a selection of its columns or rows prints whole too

    def __repr__(self) -> str:
        if self.columns.empty:
            return f"Empty table ({len(self)} rows)"
        frame = self.reset_index() if any(n is not None for n in self.index.names) else self  # set_index's
        columns = []
        for name in frame.columns:
            values = frame[name].tolist()
            numeric = all(_is_number(v) or _missing(v) for v in values)
            cells = [self._cell(str(name), v) for v in values]
            width = max(len(str(name)), *(len(c) for c in cells))
            align = str.rjust if numeric else str.ljust
            columns.append([align(str(name), width), *(align(c, width) for c in cells)])
        return "\n".join("  ".join(line).rstrip() for line in zip(*columns, strict=True))

    __str__ = __repr__

    def _cell(self, column: str, value) -> str:
        if _missing(value):
            return "-"
        if isinstance(value, float | np.floating):
            if float(value).is_integer() and column in self.integer_columns:
                return str(int(value))
            return f"{value:.1f}" if column in self.one_decimal_columns else f"{value:.4f}"
        return str(value)


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float | np.floating) and np.isnan(value))
