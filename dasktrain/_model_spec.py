"""Keras models as data: JSON architecture, flat float32 weights (MADlib's format), safe loading."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from .errors import DataError

#: How deep a model's JSON may nest: a Keras config nests about 10 levels, and each model inside another about 6 more.
MAX_JSON_DEPTH = 100


def model_json(model) -> str:
    """The architecture of ``model`` (a ``keras.Model`` or its JSON) as a JSON string.

    >>> model_json('{"class_name": "Sequential", "config": {}}')
    '{"class_name": "Sequential", "config": {}}'
    """
    if isinstance(model, str | bytes):
        try:
            text = model.decode() if isinstance(model, bytes) else model
        except UnicodeDecodeError:
            raise DataError("Invalid model JSON: it is not UTF-8 text.") from None
        config = load_config(text)
        if not isinstance(config, dict) or "class_name" not in config:
            raise DataError("Invalid model JSON: expected a Keras model config with a 'class_name' (model.to_json()).")
        return text
    if isinstance(model, dict):
        return json.dumps(model)
    if getattr(model, "to_json", None) is None:
        raise TypeError(f"Expected a keras.Model or its JSON. Received: {type(model).__name__}")
    from ._stateful_layers import portable_config

    return json.dumps(portable_config(model))  # model.to_json() would lose adapted vocabularies


def load_config(text: str):
    """The model config in JSON ``text``; :class:`DataError` unless it is JSON nested at most
    :data:`MAX_JSON_DEPTH` levels (Python's parser and Keras's would raise ``RecursionError``).

    >>> load_config('{"class_name": "Sequential"}')
    {'class_name': 'Sequential'}
    >>> load_config("[" * 100000)
    Traceback (most recent call last):
    ...
    dasktrain.errors.DataError: Invalid model JSON: nested more than 100 levels deep ...
    """
    deep = f"Invalid model JSON: nested more than {MAX_JSON_DEPTH} levels deep (a Keras model config nests about 10)."
    try:
        config = json.loads(text)
    except RecursionError:
        raise DataError(deep) from None
    except ValueError as exc:
        raise DataError(f"Invalid model JSON: {str(exc)[:200]}.") from None
    stack = [(config, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise DataError(deep)
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return config


def build_model(architecture: str):
    """Build an (uncompiled) ``keras.Model`` from JSON, in Keras safe mode (no lambdas, no code)."""
    import keras

    from ._keras_config import explain

    config = load_config(architecture)
    try:
        model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    except Exception as exc:  # Keras raises many types for bad configs
        raise DataError(explain(config, exc)) from None
    if not isinstance(model, keras.Model):
        raise DataError(f"Invalid model JSON: it describes a {type(model).__name__}, not a keras.Model.")
    return model


def flatten_weights(weights: Sequence[np.ndarray]) -> bytes:
    """All weights flattened and concatenated as float32 bytes, as MADlib stores ``model_weights``.

    >>> len(flatten_weights([np.zeros((2, 3)), np.zeros(3)]))
    36
    """
    if not weights:
        return b""
    return np.concatenate([np.asarray(w, dtype=np.float32).ravel() for w in weights]).astype("<f4").tobytes()


def unflatten_weights(data: bytes, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    """Split MADlib-format weight bytes back into arrays of ``shapes``.

    >>> [w.shape for w in unflatten_weights(bytes(36), [(2, 3), (3,)])]
    [(2, 3), (3,)]
    """
    if len(data) % 4:
        raise DataError(
            f"Stored weights are {len(data)} bytes, not a whole number of float32 values: they were not "
            f"written as MADlib's flat float32 weights."
        )
    flat = np.frombuffer(data, dtype="<f4")
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    if flat.size != sum(sizes):
        raise DataError(f"Stored weights hold {flat.size} values; the architecture needs {sum(sizes)}.")
    out, start = [], 0
    for shape, size in zip(shapes, sizes, strict=True):
        out.append(flat[start : start + size].reshape(shape).astype(np.float32))
        start += size
    return out


def weight_shapes(model) -> list[tuple[int, ...]]:
    """Shapes of ``model.get_weights()``, in order."""
    return [tuple(w.shape) for w in model.weights]


def compiled_model(architecture: str, compile_params: dict):
    """Build a model from its JSON and compile it (optimizer strings such as ``"Adam(learning_rate=0.01)"`` too).

    >>> compiled_model(model_json, {"optimizer": "adam", "loss": "mse"})  # doctest: +SKIP
    """
    from ._keras_config import check_compile

    check_compile(compile_params)  # Keras itself reads losses and metrics only in the first training step
    model = build_model(architecture)
    params = dict(compile_params)
    if "optimizer" in params:
        import keras

        from ._params import optimizer_config

        params["optimizer"] = keras.optimizers.get(optimizer_config(params["optimizer"]))
    model.compile(**params)
    return model
