"""Checks of the data before training starts: each segment's shapes, values and labels against the model."""

from __future__ import annotations

from ..errors import DataError, SchemaError


def check_stats(stats, role: str, loss: str, input_shape: tuple, output_shape: tuple) -> None:
    """Refuse bad data before training starts, naming the segment and the fix.

    ``stats`` are the segments' :class:`~._worker.SegmentStats`; ``role`` names the data ("data",
    "validation") in the messages.
    """
    classes = output_shape[-1] if output_shape else 1
    if not any(s.rows for s in stats):
        raise DataError(f"{role} has no rows: load data into it before training.")
    for k, s in enumerate(stats):
        where = f"{role} segment {k}"
        if s.rows == 0:
            continue  # skipped by training, and by the row-weighted reducer
        if s.x_shape != input_shape:
            raise DataError(f"{where}: x has shape {s.x_shape} per row; the model's input is {input_shape}.")
        if not s.finite:
            raise DataError(f"{where}: x has NaN or infinite values; clean or filter them before training.")
        if not s.labels_finite:
            raise DataError(f"{where}: y has NaN or infinite values; clean or filter them before training.")
        if s.label_kind == "sparse":
            if "sparse" not in loss and "categorical" in loss:
                raise DataError(
                    f"{where}: y holds integer class labels but loss={loss!r} expects one-hot rows; "
                    f"use loss='sparse_categorical_crossentropy' or one-hot labels."
                )
            bad = [c for c in s.classes if not 0 <= c < classes] if "sparse" in loss else []
            if bad:
                raise DataError(
                    f"{where}: labels {bad[:5]} are outside the model's {classes} classes (0..{classes - 1})."
                )
        else:
            if "sparse" in loss:
                raise DataError(f"{where}: y holds one-hot rows but loss={loss!r} expects integer labels.")
            if s.label_shape != output_shape:
                raise DataError(f"{where}: y has shape {s.label_shape} per row; the model outputs {output_shape}.")


def refuse_text_features(text: list[str], features: list[str], role: str) -> None:
    """Refuse, before any cluster starts, feature columns that hold text or dates rather than numbers."""
    text = [c for c in features if c in text]
    if text:
        raise SchemaError(
            f"{role} feature column {text[0]!r} does not hold numbers (it is read as text). Features must be "
            f"numbers or arrays of numbers: encode it as numbers in SQL, or leave it out of x."
        )


def check_read_columns(specs, features: list[str], y: str, table: str, role: str) -> None:
    """Refuse, from the catalog alone, columns a fit cannot use: text features, ``bytea`` without a
    recorded dtype and shape, and a label that is neither numbers, text nor boolean (a date, JSON).

    ``specs`` are the read's :class:`~dasktrain.io._columns.ColumnSpec`.
    """
    from ..io._columns import BYTES, TEXT

    kinds = {spec.name: spec for spec in specs}
    refuse_text_features([name for name, spec in kinds.items() if spec.kind == TEXT], features, role)
    raw = [name for name in [*features, y] if kinds[name].kind == BYTES]
    if raw:
        raise SchemaError(
            f"{role} column {raw[0]!r} of {table!r} is bytea with no recorded dtype and shape. dasktrain's loaders "
            f"record them in {table + '_summary'!r} (MADlib's layout); a view or a CREATE TABLE AS copy of a loaded "
            f"table has none: read the loaded table itself, or store the arrays as real[]."
        )
    label = kinds[y]
    if label.kind == TEXT and label.cast is not None:  # neither text nor a number: read only by casting to text
        raise SchemaError(
            f"{role} label column {y!r} of {table!r} holds neither numbers, text nor booleans: cast it in SQL "
            f"(a view with {y}::text for classes, or a number), or choose another label."
        )


def is_text(dtype) -> bool:
    """Whether a frame's column of this dtype holds text or dates (object columns may hold arrays: not judged).

    >>> import numpy as np, pandas as pd
    >>> is_text(pd.StringDtype()), is_text(np.dtype("float32")), is_text(np.dtype(object))
    (True, False, False)
    """
    import pandas as pd
    import pyarrow as pa

    if isinstance(dtype, pd.StringDtype):
        return True
    if isinstance(dtype, pd.ArrowDtype):
        kind = dtype.pyarrow_dtype
        return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_temporal(kind)
    return getattr(dtype, "kind", "O") in "mMSU"


def class_values(stats, output_shape) -> list:
    """The sorted integer labels seen (class-label data), else the output's indices."""
    if stats and stats[0].label_kind == "sparse":
        return sorted({c for s in stats for c in s.classes})
    return list(range(output_shape[-1])) if output_shape else []
