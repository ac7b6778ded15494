"""``fit(fit={"class_weight": {class: weight}})``: each row's loss weighted by its class, as Keras's ``fit`` does.

The client turns the dict into one weight per class number (text and boolean labels are numbered
by their sorted values, so their keys are the class values); each replica looks its batch's
weights up there and passes them to ``train_on_batch`` as ``sample_weight``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .._params import bounded_repr
from ..errors import DataError


def class_weight_table(class_weight, classes: list | None, output_shape: tuple, y: str) -> tuple[float, ...] | None:
    """Each class's weight by its number (1.0 for a class not named), or None without ``class_weight``.

    ``classes`` are the sorted values of a text or boolean label (None for integer labels, which
    are their own numbers); ``output_shape`` is the model's, whose last axis counts the classes
    (one sigmoid unit scores two).

    >>> class_weight_table({1: 5.0}, None, (3,), "y")
    (1.0, 5.0, 1.0)
    >>> class_weight_table({"dog": 2}, ["cat", "dog"], (2,), "y")
    (1.0, 2.0)
    >>> class_weight_table({3: 1.0}, None, (3,), "y")
    Traceback (most recent call last):
    ...
    dasktrain.errors.DataError: class_weight names class 3, but y's classes are numbered 0 to 2 (the model's outputs).
    """
    if class_weight is None:
        return None
    if not isinstance(class_weight, Mapping) or not class_weight:
        raise DataError(
            f"Expected class_weight as a dict of class: weight, e.g. {{0: 1.0, 1: 5.0}}. "
            f"Received: class_weight={bounded_repr(class_weight)}"
        )
    units = output_shape[-1] if output_shape else 1
    size = max(units, 2, len(classes or ()))
    table = np.ones(size)
    for key, weight in class_weight.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float | np.number) or not 0 <= weight < np.inf:
            raise DataError(
                f"class_weight[{bounded_repr(key)}]: expected a weight >= 0. Received: {bounded_repr(weight)}"
            )
        if classes is not None:
            if key not in classes:
                raise DataError(
                    f"class_weight names class {bounded_repr(key)}, which {y!r} does not hold: its classes are "
                    f"{bounded_repr(classes)}."
                )
            index = classes.index(key)
        elif isinstance(key, bool) or not isinstance(key, int | np.integer) or not 0 <= key < size:
            raise DataError(
                f"class_weight names class {bounded_repr(key)}, but {y}'s classes are numbered 0 to {size - 1} "
                f"(the model's outputs)."
            )
        else:
            index = int(key)
        table[index] = float(weight)
    return tuple(table.tolist())


def batch_weights(table: tuple[float, ...] | None, labels: np.ndarray) -> np.ndarray | None:
    """The weight of each row of a batch, by its label's class: an integer, a one-hot row or a 0/1 value.

    >>> batch_weights((1.0, 5.0), np.array([1, 0, 1])).tolist()
    [5.0, 1.0, 5.0]
    >>> batch_weights((1.0, 2.0, 3.0), np.eye(3, dtype=np.float32)[[2, 0]]).tolist()
    [3.0, 1.0]
    """
    if table is None:
        return None
    if labels.ndim > 1 and labels.shape[-1] > 1:
        index = np.argmax(labels.reshape(len(labels), -1), axis=-1)
    else:
        index = np.rint(np.asarray(labels, dtype=np.float64).reshape(len(labels))).astype(np.int64)
    weights = np.asarray(table, dtype=np.float32)
    if len(index) and (index.min() < 0 or index.max() >= len(weights)):
        raise DataError(
            f"class_weight: a label ({int(index.min()) if index.min() < 0 else int(index.max())}) is not a class "
            f"number from 0 to {len(weights) - 1}: class_weight is for class labels."
        )
    return weights[index]
