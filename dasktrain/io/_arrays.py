"""``to_arrays``: one pandas partition as the ``(X, y)`` numpy arrays Keras trains on."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import DataError, SchemaError
from ._tensor_column import is_tensor_series, series_to_numpy


def to_arrays(
    partition: pd.DataFrame, x: str | Sequence[str] = "x", y: str | None = "y"
) -> tuple[np.ndarray, np.ndarray | None]:
    """Turn one partition into ``(X, y)`` numpy arrays.

    Parameters
    ----------
    partition : pandas.DataFrame
        One partition of a frame from :func:`read_table` (or any frame with such columns).
    x : str or list of str, default "x"
        A tensor column (one array per row; X keeps the stored shape), or one or more plain
        numeric columns (X has shape ``(n, len(x))``). X is always float32.
    y : str or None, default "y"
        The label column: integer class labels (kept as integers) or one array per row (one-hot
        targets, as float32). None returns ``y=None``.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray or None)

    Examples
    --------
    >>> import pandas as pd
    >>> X, y = to_arrays(pd.DataFrame({"a": [1, 2], "b": [3, 4], "y": [0, 1]}), x=["a", "b"])
    >>> X.shape, X.dtype, y.tolist()
    ((2, 2), dtype('float32'), [0, 1])
    """
    features, labels = stored_arrays(partition, x, y)
    return features.astype(np.float32, copy=False), labels


def stored_arrays(
    partition: pd.DataFrame, x: str | Sequence[str] = "x", y: str | None = "y", classes: Sequence | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`to_arrays`, but the features keep the dtype they were stored in (uint8 pixels stay uint8).

    Tensor columns come back without a copy, as read-only views of the partition's memory: a
    worker keeps a segment at its stored size and scales it to float32 one batch at a time.
    ``classes`` (text or boolean labels) turns each label into its index among them.

    >>> X, y = stored_arrays(pd.DataFrame({"a": np.array([1, 2], np.uint8), "y": [0, 1]}), x=["a"])
    >>> X.dtype
    dtype('uint8')
    """
    features = _column_array(partition, x, "x")
    if features.dtype.kind not in "biuf":
        raise DataError(f"Feature column(s) {x!r} are not numeric (dtype {features.dtype}).")
    if y is None:
        return features, None
    labels = _column_array(partition, y, "y")
    if classes is not None:
        return features, class_indices(labels, classes, y)
    return features, training_labels(labels, y)


def class_indices(labels, classes: Sequence, y: str) -> np.ndarray:
    """Each label's index among ``classes``, the sorted class values (MADlib numbers text classes so).

    >>> class_indices(np.array(["b", "a", "b"], dtype=object), ["a", "b"], "y").tolist()
    [1, 0, 1]
    >>> class_indices(np.array(["a", "c"], dtype=object), ["a", "b"], "y")
    Traceback (most recent call last):
    ...
    dasktrain.errors.DataError: Label column 'y' has values the model does not know: 'c'. Its classes are: 'a', 'b'.
    """
    labels = pd.Series(np.asarray(labels, dtype=object))
    if labels.isna().any():
        raise DataError(f"Label column {y!r} has NULL values: filter them out or give them a class.")
    index = labels.map({value: k for k, value in enumerate(classes)})
    unknown = labels[index.isna()].unique()
    if len(unknown):
        raise DataError(
            f"Label column {y!r} has values the model does not know: {_few(unknown)}. Its classes are: {_few(classes)}."
        )
    return index.to_numpy(np.int64)


def _few(values, shown: int = 5) -> str:
    values = list(values)
    text = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in values[:shown])
    return text + (f" and {len(values) - shown} more" if len(values) > shown else "")


def training_labels(labels: np.ndarray, y: str) -> np.ndarray:
    """Labels as Keras takes them: integer classes kept, float or array targets as float32.

    >>> training_labels(np.array([1.0, 2.0]), "y").dtype
    dtype('float32')
    """
    if labels.dtype.kind not in "biuf":
        raise DataError(f"Label column {y!r} is not numeric (dtype {labels.dtype}).")
    if labels.ndim > 1 or labels.dtype.kind == "f":
        labels = labels.astype(np.float32, copy=False)
    return labels


def _column_array(partition: pd.DataFrame, columns: str | Sequence[str], role: str) -> np.ndarray:
    names = [columns] if isinstance(columns, str) else list(columns)
    missing = [c for c in names if c not in partition.columns]
    if missing or not names:
        raise SchemaError(
            f"{role}={columns!r}: no column {missing[0] if missing else ''!r} in this frame. "
            f"Available columns: {', '.join(map(str, partition.columns))}."
        )
    if len(names) == 1:
        series = partition[names[0]]
        return series_to_numpy(series) if is_tensor_series(series) else series.to_numpy()
    tensors = [c for c in names if is_tensor_series(partition[c])]
    if tensors:
        raise DataError(f"{role}={columns!r}: tensor column {tensors[0]!r} must be the only {role} column.")
    return partition[names].to_numpy()


def model_inputs(X: np.ndarray, normalizing_const: float, input_shape) -> np.ndarray:
    """Features as a model takes them: divided by ``normalizing_const``, a channel axis added if needed.

    The division is in place when ``X`` owns its memory (``to_arrays`` makes a new array from
    integer pixels), so it costs no extra copy.

    >>> model_inputs(np.full((2, 3, 3), 255, np.float32), 255.0, (3, 3, 1)).shape
    (2, 3, 3, 1)
    """
    if normalizing_const != 1:
        X = np.divide(X, np.float32(normalizing_const), out=X if X.flags.owndata and X.flags.writeable else None)
    return fit_input_shape(X, input_shape)


def fit_input_shape(X: np.ndarray, input_shape) -> np.ndarray:
    """Add a trailing channel axis when that is the only difference from the model's input."""
    input_shape = tuple(input_shape)
    if X.shape[1:] != input_shape and X.shape[1:] + (1,) == input_shape:
        return X.reshape(*X.shape, 1)
    return X
