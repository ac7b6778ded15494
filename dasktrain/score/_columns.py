"""Which columns scoring reads, and how their values become what the model takes.

A model reads one array column (``x``), or several plain numeric columns, one feature each. The
model table stores the columns' names joined by commas, as MADlib's ``independent_varname`` does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._names import identifier
from ..errors import DataError, SchemaError
from ._scoring import ScoringModel


def feature_columns(x: str | Sequence[str]) -> list[str]:
    """The feature columns named by ``x``: a column, a list of them, or names joined by commas.

    >>> feature_columns("alcohol, malic_acid"), feature_columns(["x"])
    (['alcohol', 'malic_acid'], ['x'])
    """
    names = x.split(",") if isinstance(x, str) else list(x)
    if not names:
        raise DataError("Expected at least one feature column. Received: x=[]")
    return [identifier(name.strip() if isinstance(name, str) else name, what="column") for name in names]


def check_features(dtypes, scorer: ScoringModel, columns: list[str]) -> None:
    """Refuse feature columns the model cannot take: an array column of another shape, or as many plain
    columns as the model has no inputs for."""
    from ..io._arrays import fit_input_shape
    from ..io._tensor_column import row_shape

    input_shape = tuple(scorer.keras_model().inputs[0].shape[1:])
    if len(columns) == 1 and row_shape(dtypes[columns[0]]):
        shape = row_shape(dtypes[columns[0]])
        if fit_input_shape(np.zeros((0, *shape)), input_shape).shape[1:] != input_shape:
            raise DataError(f"Column {columns[0]!r} holds arrays of shape {shape}; the model's input is {input_shape}.")
        return
    arrays = [c for c in columns if row_shape(dtypes[c])]
    if arrays:
        raise SchemaError(f"Column {arrays[0]!r} is an array column: it must be the only feature column.")
    plain = [c for c in columns if dtypes[c].kind not in "biuf"]
    if plain:
        raise SchemaError(f"Feature column {plain[0]!r} is not numeric (dtype {dtypes[plain[0]]}).")
    if input_shape != (len(columns),):
        raise DataError(
            f"Plain feature columns {', '.join(columns)} give {len(columns)} value(s) per row; the model's input "
            f"is {input_shape}: name an array column, or one plain column per input value."
        )


def class_labels(values: np.ndarray, scorer: ScoringModel, y: str) -> np.ndarray:
    """Labels as the model's class numbers: numbers stay; text and booleans are looked up in its ``class_values``.

    >>> scorer = ScoringModel("{}", [], ["setosa", "virginica"])
    >>> class_labels(np.array(["virginica", "setosa"], dtype=object), scorer, "species").tolist()
    [1, 0]
    """
    from ..io._arrays import class_indices, training_labels

    if values.dtype.kind in "iuf" or values.ndim > 1:
        return training_labels(values, y)
    return class_indices(np.array([str(v) for v in values], dtype=object), scorer.class_values, y)
