"""Text and boolean class labels, numbered by their sorted values as MADlib's preprocessor numbers them.

Before training, the client finds the label column's distinct values (one query for a table, one
pass for a dask DataFrame); every segment then numbers its labels by their place among them, the
model learns the numbers, and the summary keeps the values (``class_values``) and the column's
SQL type (``dependent_vartype``) so that scoring writes the class values back.
"""

from __future__ import annotations

import numpy as np
from psycopg2 import sql

from ..errors import DataError

MAX_CLASSES = 10_000  # more distinct labels than this is a regression target or an id, not classes
_CLASS_TYPES = {"text", "varchar", "bpchar", "name", "bool"}


def label_classes(data, y: str) -> tuple[list | None, str | None]:
    """``(sorted class values, SQL type name)`` of a text or boolean label column; ``(None, None)`` for numbers.

    ``data`` is a dask DataFrame or a table's planned reads (:class:`~dasktrain.io._read.SegmentReads`).
    """
    import dask.dataframe as dd

    if isinstance(data, dd.DataFrame):
        column = data[y]
        if column.dtype.kind in "iuf":
            return None, None
        values = column.drop_duplicates().compute()
        type_name = "bool" if column.dtype.kind == "b" else "text"
        return _sorted_classes(values.tolist(), y), type_name
    return _table_classes(data, y)


def _table_classes(reads, y: str) -> tuple[list | None, str | None]:
    from .._names import TableName
    from ..io._catalog import table_info

    table = TableName.parse(reads.reader.table)
    with reads.db.cursor() as cur:
        type_name = table_info(cur, table).columns[y][0]
        if type_name not in _CLASS_TYPES:
            return None, None
        cur.execute(
            sql.SQL("SELECT DISTINCT {} FROM {} LIMIT %s").format(sql.Identifier(y), table.sql), (MAX_CLASSES + 1,)
        )
        values = [row[0] for row in cur.fetchall()]
    return _sorted_classes(values, y), type_name


def _sorted_classes(values: list, y: str) -> list:
    """The distinct labels, sorted (Python's order: text by code point, False before True).

    >>> _sorted_classes(["virginica", "setosa", "versicolor"], "species")
    ['setosa', 'versicolor', 'virginica']
    """
    if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in values):
        raise DataError(f"Label column {y!r} has NULL values: filter them out (where=) or give them a class.")
    if len(values) > MAX_CLASSES:
        raise DataError(
            f"Label column {y!r} has more than {MAX_CLASSES:,} distinct values: is it a class label? "
            f"Pass a column of classes, or numbers for a regression."
        )
    values = [v.item() if isinstance(v, np.generic) else v for v in values]
    return sorted(values)


def check_classes(classes: list | None, output_shape: tuple, loss: str, y: str) -> None:
    """Refuse a model whose output cannot score these classes.

    >>> check_classes(["a", "b", "c"], (2,), "sparse_categorical_crossentropy", "y")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dasktrain.errors.DataError: Label column 'y' has 3 classes ('a', 'b', 'c'), but the model outputs 2 values: ...
    """
    if classes is None:
        return
    units = output_shape[-1] if output_shape else 1
    if "sparse" in loss and units != len(classes):
        shown = ", ".join(repr(c) for c in classes[:5]) + (", ..." if len(classes) > 5 else "")
        raise DataError(
            f"Label column {y!r} has {len(classes)} classes ({shown}), but the model outputs {units} values: "
            f"give its last layer {len(classes)} units."
        )
    if "sparse" not in loss and not (units == 1 and len(classes) <= 2):
        raise DataError(
            f"Label column {y!r} holds class values; train it with loss='sparse_categorical_crossentropy' "
            f"(or a one-unit binary_crossentropy model for two classes). Received: loss={loss!r}"
        )


def trained_classes(stats, output_shape: tuple, loss: str) -> list:
    """The class values a fit records when the labels are numbers (text labels bring their own).

    Integer labels index the model's outputs, so the classes are every output's index, whether or
    not the data held that label: a 10-output model trained without label 9 still scores class 9
    (issue 22; it used to record the 9 labels seen and could not be scored). A one-unit model of
    0/1 labels scores two classes. Other labels (one-hot rows, regression targets) give the
    output's indices.

    >>> from types import SimpleNamespace
    >>> seen = [SimpleNamespace(label_kind="sparse", classes=tuple(range(9)))]
    >>> trained_classes(seen, (10,), "sparse_categorical_crossentropy")
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    >>> trained_classes([SimpleNamespace(label_kind="sparse", classes=(1,))], (1,), "binary_crossentropy")
    [0, 1]
    """
    units = output_shape[-1] if output_shape else 1
    if not stats or stats[0].label_kind != "sparse":
        return list(range(units)) if output_shape else []
    seen = sorted({c for s in stats for c in s.classes})
    if "sparse" in loss:
        return list(range(units))  # the labels were checked to be indices of the outputs
    if units == 1 and set(seen) <= {0, 1}:
        return [0, 1]
    return seen
