"""Scoring: which model to apply, and turning probabilities into MADlib's prediction rows.

Output columns follow MADlib's ``madlib_keras_predict``: ``id``, ``class_name`` (the label
column's name), ``class_value``, ``prob`` and ``rank``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._model_spec import build_model, model_json
from ..errors import DataError

OUTPUT_COLUMNS = ("id", "class_name", "class_value", "prob", "rank")


@dataclass(frozen=True)
class ScoringModel:
    """Everything scoring needs, small enough to send to every worker once.

    Build one with :func:`scoring_model`.
    """

    architecture: str
    members: list  # one weight list per member (ensembles have several)
    class_values: list[str]
    normalizing_const: float = 1.0
    class_name: str = "y"
    x: str = "x"
    compile_params: dict = field(default_factory=dict)
    token: str = ""
    label_type: str | None = None  # the label column's SQL type (text and boolean classes), for the output

    def keras_model(self, *, compiled: bool = False):
        """A Keras model with these weights, built once per process and reused."""
        return _cached(self, compiled)


def scoring_model(
    model, *, db=None, name=None, version=None, class_values=None, normalizing_const=None, mst_key=None
) -> ScoringModel:
    """Resolve what a user names as "the model" into a :class:`ScoringModel`.

    ``model`` may be a model table name (with ``name``/``version``), an ``(architecture_table,
    model_id)`` pair with stored weights, a ``.keras`` file, a ``keras.Model`` or a
    :class:`~dasktrain.TrainingResult`; from a search's table (:func:`save_models`), ``mst_key``
    chooses the configuration (default: the best). ``class_values`` and ``normalizing_const`` override what
    the model table stored (and are the only source for the other kinds; default: class
    indices and 1.0).
    """
    from ..models._result import TrainingResult

    stored_classes, stored_norm, class_name, x, compile_params, label_type = None, None, "y", "x", {}, None
    if isinstance(model, TrainingResult):
        architecture, members = model.architecture, model.members
        stored_classes, stored_norm = model.class_values, model.normalizing_const
        class_name, x, compile_params = _text(model.y), _text(model.x), model.compile_params
        label_type = model.label_type
    elif isinstance(model, tuple):
        from .._model_spec import unflatten_weights, weight_shapes
        from ..models._architectures import get_architecture

        architecture, blob = get_architecture(db, *model)
        if blob is None:
            raise DataError(f"Architecture {model[1]} in {model[0]!r} has no stored weights to score with.")
        members = [unflatten_weights(blob, weight_shapes(build_model(architecture)))]
    elif isinstance(model, str | os.PathLike) and str(model).endswith(".keras"):
        loaded = load_keras_file(model)
        architecture, members = loaded.to_json(), [loaded.get_weights()]
    elif isinstance(model, str):
        from .._params import COMPILE_KEYS, parse_params
        from ..models._model_store import load_members

        architecture, members, summary = load_members(db, model, name, version, mst_key)
        stored_classes, stored_norm = summary["class_values"], summary["normalizing_const"]
        class_name = summary["dependent_varname"] or "y"
        x = summary["independent_varname"] or "x"
        compile_params = parse_params(summary["compile_params"], what="compile", allowed=COMPILE_KEYS)
        label_type = summary.get("dependent_vartype")
    else:
        architecture, members = model_json(model), [model.get_weights()]
    stored = (stored_classes, stored_norm, class_name, x, compile_params, label_type)
    return _scoring_model(architecture, members, stored, class_values, normalizing_const)


def group_scoring_models(db, table: str, *, name=None, version=None, class_values=None, normalizing_const=None):
    """``(grouping column, {group value as text: ScoringModel})`` of a saved :func:`dasktrain.fit_groups` result."""
    from .._params import COMPILE_KEYS, parse_params
    from ..models._selection_store import load_group_members

    architecture, weights, summary = load_group_members(db, table, name, version)
    stored = (summary["class_values"], summary["normalizing_const"], summary["dependent_varname"] or "y",
              summary["independent_varname"] or "x",
              parse_params(summary["compile_params"], what="compile", allowed=COMPILE_KEYS),
              summary.get("dependent_vartype"))  # fmt: skip
    models = {group: _scoring_model(architecture, [w], stored, class_values, normalizing_const)
              for group, w in weights.items()}  # fmt: skip
    return summary["group_column"], models


def _scoring_model(architecture, members, stored, class_values, normalizing_const) -> ScoringModel:
    stored_classes, stored_norm, class_name, x, compile_params, label_type = stored
    members = [[np.asarray(w, dtype=np.float32) for w in m] for m in members]
    outputs = _output_size(architecture)
    chosen = class_values if class_values is not None else _covering(stored_classes, label_type, max(outputs, 2))
    chosen = [str(c) for c in chosen] if chosen is not None else [str(i) for i in range(max(outputs, 2))]
    if len(chosen) != max(outputs, 2):
        raise DataError(f"{len(chosen)} class_values given, but the model scores {max(outputs, 2)} classes.")
    norm = normalizing_const if normalizing_const is not None else (stored_norm or 1.0)
    if isinstance(norm, bool) or not isinstance(norm, int | float) or not norm > 0:
        raise DataError(f"Expected a positive normalizing_const. Received: normalizing_const={norm!r}")
    digest = hashlib.sha256(architecture.encode())
    # Workers cache compiled models by this token: two models with the same weights but another
    # loss or metric must not share one (evaluate reported the first one's metric, issue 22).
    digest.update(json.dumps(compile_params, sort_keys=True, default=repr).encode())
    for member in members:
        for w in member:
            digest.update(w.tobytes())
    return ScoringModel(
        architecture, members, chosen, float(norm), class_name, x, compile_params, digest.hexdigest()[:16],
        label_type if class_values is None else None,
    )


def _covering(stored: list | None, label_type: str | None, classes: int) -> list | None:
    """Stored integer class values, filled in to every class the model scores.

    Integer labels index the outputs; models saved before issue 22 recorded only the labels their
    data held (9 of a 10-output model's classes), and could not be scored. Text labels (with a
    ``label_type``) are kept as they are.

    >>> _covering(["0", "1", "3"], None, 5)
    [0, 1, 2, 3, 4]
    >>> _covering(["b", "a"], "text", 3)
    ['b', 'a']
    """
    if stored is None or label_type is not None or len(stored) >= classes:
        return stored
    try:
        numbers = [int(str(value)) for value in stored]
    except ValueError:
        return stored
    if [str(n) for n in numbers] != [str(v) for v in stored] or not all(0 <= n < classes for n in numbers):
        return stored
    return list(range(classes))


def load_keras_file(path):
    """A ``.keras`` file loaded in Keras safe mode (no code runs); :class:`DataError` when it cannot be.

    >>> load_keras_file("missing.keras")
    Traceback (most recent call last):
    ...
    dasktrain.errors.DataError: Model file 'missing.keras' does not exist.
    """
    if not os.path.exists(path):
        raise DataError(f"Model file {str(path)!r} does not exist.")
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises ValueError, TypeError, OSError... for files it refuses
        reason = str(exc).split(". ")[0]
        raise DataError(f"Keras cannot load model file {str(path)!r} in safe mode: {reason}.") from None


def _text(value) -> str:
    return value if isinstance(value, str) else ",".join(value)


def _output_size(architecture: str) -> int:
    model = build_model(architecture)
    return int(model.outputs[0].shape[-1])


def check_pred_type(pred_type, classes: int):
    """Validate ``pred_type``: 'response', 'prob', an integer k in [1, classes], or a float in (0, 1).

    >>> check_pred_type(3, 10)
    3
    """
    if pred_type in ("response", "prob"):
        return pred_type
    if isinstance(pred_type, bool):
        pass
    elif isinstance(pred_type, int | np.integer):
        if 1 <= pred_type <= classes:
            return int(pred_type)
        raise DataError(f"pred_type={pred_type} asks for the top {pred_type} of only {classes} classes.")
    elif isinstance(pred_type, float):
        if 0 < pred_type < 1:
            return pred_type
        raise DataError(f"A probability threshold must be in (0, 1). Received: pred_type={pred_type}")
    raise DataError(
        f"Expected pred_type 'response', 'prob', an integer k or a threshold in (0, 1). Received: {pred_type!r}"
    )


def parse_pred_type(text: str):
    """The command line's ``--pred-type``: ``response``, ``prob``, ``3`` or ``0.5``.

    >>> parse_pred_type("0.25"), parse_pred_type("3"), parse_pred_type("prob")
    (0.25, 3, 'prob')
    """
    if text in ("response", "prob"):
        return text
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise DataError(f"--pred-type takes response, prob, an integer k or a threshold. Received: {text!r}") from None


def probabilities(model: ScoringModel, X: np.ndarray, batch_size: int) -> np.ndarray:
    """Class probabilities, ``(n, classes)``; a one-unit sigmoid output becomes two columns."""
    if not len(X):  # an empty segment
        return np.zeros((0, len(model.class_values)))
    p = model.keras_model().predict(X, batch_size=batch_size, verbose=0)
    p = np.asarray(p, dtype=np.float64).reshape(len(X), -1)
    if p.shape[1] == 1:
        p = np.concatenate([1 - p, p], axis=1)
    return p


def prediction_rows(ids: np.ndarray, probs: np.ndarray, pred_type) -> dict[str, np.ndarray]:
    """MADlib's prediction rows from probabilities: ``id``, ``class_index``, ``prob``, ``rank``.

    >>> rows = prediction_rows(np.array([7]), np.array([[0.2, 0.5, 0.3]]), 2)
    >>> rows["class_index"].tolist(), rows["rank"].tolist()
    ([1, 2], [1, 2])
    """
    n, k = probs.shape
    order = np.argsort(-probs, axis=1, kind="stable")
    if pred_type == "response":
        take = order[:, :1]
    elif pred_type == "prob":
        take = order
    elif isinstance(pred_type, int):
        take = order[:, :pred_type]
    else:
        take = order
    ranks = np.broadcast_to(np.arange(1, take.shape[1] + 1, dtype=np.int32), take.shape)
    chosen = np.take_along_axis(probs, take, axis=1)
    keep = chosen >= pred_type if isinstance(pred_type, float) else np.ones(take.shape, dtype=bool)
    return {
        "id": np.repeat(ids, take.shape[1]).reshape(take.shape)[keep],
        "class_index": take[keep],
        "prob": chosen[keep],
        "rank": ranks[keep],
    }


def prediction_frame(rows: dict[str, np.ndarray], class_values: list[str], class_name: str) -> pd.DataFrame:
    """Prediction rows as the pandas frame :func:`dasktrain.predict` returns."""
    values = np.asarray(class_values, dtype=object)
    return pd.DataFrame(
        {
            "id": rows["id"].astype(np.int64),
            "class_name": pd.Series([class_name] * len(rows["id"]), dtype=object),
            "class_value": pd.Series(values[rows["class_index"]], dtype=object),
            "prob": rows["prob"].astype(np.float64),
            "rank": rows["rank"].astype(np.int32),
        }
    )


def features(model: ScoringModel, partition: pd.DataFrame, x: str) -> np.ndarray:
    """The partition's features as the model takes them: float32, normalized, channel axis added."""
    from ..io._arrays import model_inputs, to_arrays

    X, _ = to_arrays(partition, x=x, y=None)
    return model_inputs(X, model.normalizing_const, model.keras_model().inputs[0].shape[1:])


_cache: OrderedDict[tuple[str, bool], object] = OrderedDict()
_cache_lock = threading.Lock()
_CACHE_SIZE = 4  # models kept per process; GPU memory is only freed when the process exits


def _cached(model: ScoringModel, compiled: bool):
    key = (model.token, compiled)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    from .._model_spec import compiled_model
    from .._stateful_layers import set_weights
    from ..models._result import ensemble_model

    if len(model.members) > 1:
        keras_model = ensemble_model(model.architecture, model.members, model.compile_params if compiled else None)
    else:
        keras_model = (
            compiled_model(model.architecture, model.compile_params) if compiled else build_model(model.architecture)
        )
        set_weights(keras_model, model.members[0])
    with _cache_lock:
        _cache[key] = keras_model
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return keras_model
