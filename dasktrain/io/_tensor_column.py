"""Tensor columns in pandas: one fixed-shape array per row, held by pyarrow without copies.

A column of ``n`` arrays of shape ``(28, 28)`` is a pandas column of dtype
``ArrowDtype(fixed_size_list<fixed_size_list<uint8>[28]>[28])``: one contiguous buffer, the
shape kept in the type, zero-copy to and from numpy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa


def arrow_type(dtype: np.dtype, shape: tuple[int, ...]) -> pa.DataType:
    """The nested fixed-size-list type holding one ``shape`` array of ``dtype`` per row.

    >>> str(arrow_type(np.dtype("uint8"), (2, 3)))
    'fixed_size_list<item: fixed_size_list<item: uint8>[3]>[2]'
    """
    value_type = pa.from_numpy_dtype(dtype)
    for size in reversed(shape):
        value_type = pa.list_(value_type, size)
    return value_type


def tensor_series(values: np.ndarray, name: str | None = None) -> pd.Series:
    """Wrap an ``(n, *shape)`` array as a pandas Series of per-row arrays.

    >>> tensor_series(np.zeros((4, 2, 3), dtype="float32")).dtype.pyarrow_dtype.list_size
    2
    """
    flat = pa.array(np.ascontiguousarray(values).reshape(-1))
    array = flat
    for size in reversed(values.shape[1:]):
        array = pa.FixedSizeListArray.from_arrays(array, size)
    return pd.Series(pd.arrays.ArrowExtensionArray(array), name=name, copy=False)


def is_tensor_series(series: pd.Series) -> bool:
    """Whether ``series`` is a tensor column made by :func:`tensor_series`."""
    return row_shape(series.dtype) is not None


def row_shape(dtype) -> tuple[int, ...] | None:
    """The per-row shape of a tensor column's dtype, or None for any other dtype.

    >>> row_shape(tensor_series(np.zeros((4, 2, 3))).dtype)
    (2, 3)
    """
    if not (isinstance(dtype, pd.ArrowDtype) and pa.types.is_fixed_size_list(dtype.pyarrow_dtype)):
        return None
    shape, value_type = [], dtype.pyarrow_dtype
    while pa.types.is_fixed_size_list(value_type):
        shape.append(value_type.list_size)
        value_type = value_type.value_type
    return tuple(shape)


def series_to_numpy(series: pd.Series) -> np.ndarray:
    """The ``(n, *shape)`` numpy array behind a tensor column (no copy where arrow allows)."""
    chunked = pa.chunked_array(series.array.__arrow_array__())
    array = chunked.combine_chunks() if chunked.num_chunks != 1 else chunked.chunk(0)
    shape = []
    while pa.types.is_fixed_size_list(array.type):
        shape.append(array.type.list_size)
        if array.null_count:
            raise ValueError(f"Column {series.name!r} has missing rows; drop them before converting.")
        array = array.flatten()
    return array.to_numpy(zero_copy_only=False).reshape(len(series), *shape)
