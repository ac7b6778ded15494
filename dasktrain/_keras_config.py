"""Why Keras cannot build a model config, in one sentence that names the layer and the bad value.

Keras reports a typo in a model's JSON as one long line that repeats the whole config, with the
cause at its end (an activation ``"sofmax"`` gives some 4,700 characters), or as "not a
KerasSaveable subclass" for a layer class ``"Dnese"``. :func:`explain` walks the config to find
such typos and says which layer holds them, with the closest valid name.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping

#: The keys of a layer's config that hold an activation's name.
ACTIVATION_KEYS = ("activation", "recurrent_activation")
#: Model classes whose config holds a list of layers.
MODEL_CLASSES = {"Sequential", "Functional", "Model"}
_NOT_ACTIVATIONS = {"get", "serialize", "deserialize"}
_LONGEST_CAUSE = 300  # characters of Keras's own message kept when no typo is found
#: Names compile() resolves itself from the labels' shape (keras/src/trainers/compile_utils.py), not from
#: keras.losses or keras.metrics.
_LOSS_ALIASES = {"crossentropy", "ce"}
_METRIC_ALIASES = {"accuracy", "acc"}
_MOST_LEAVES = 1000  # losses and metrics one compile= may name (a model with that many outputs is not ours)


def explain(config: dict, exc: BaseException) -> str:
    """One sentence saying why Keras could not build ``config``, the model config that raised ``exc``.

    Examples
    --------
    >>> layer = {"class_name": "Dense", "config": {"name": "dense_1", "units": 2, "activation": "sofmax"}}
    >>> explain({"class_name": "Sequential", "config": {"layers": [layer]}}, TypeError("..."))
    "Layer 'dense_1' (Dense): unknown activation 'sofmax'; did you mean 'softmax'?"
    """
    import keras

    model_class = config.get("class_name")
    if not _known_class(keras, model_class, config.get("registered_name")):
        return f"Invalid model JSON: unknown model class {model_class!r}; " + _suggest(
            model_class, sorted(MODEL_CLASSES), "expected 'Sequential' or 'Functional' (model.to_json())"
        )
    for layer in layers(config):
        problem = _layer_problem(keras, layer)
        if problem:
            return problem
    return f"Invalid model JSON: Keras cannot build it ({type(exc).__name__}: {cause(exc)})."


def check_compile(params: Mapping) -> None:
    """Resolve compile's losses and metrics as Keras does in the first round, refusing a bad one now.

    Keras's ``compile()`` keeps names as they are: ``loss='nosuchloss'``, a loss config naming
    another module, or a ``__lambda__`` metric failed only when a worker first trained, as a raw
    Keras error (issue 22). Dict configs are read in Keras's safe mode (no code runs).

    >>> check_compile({"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]})
    >>> check_compile({"loss": "mean_sqaured_error"})
    Traceback (most recent call last):
    ...
    dasktrain.errors.DataError: Unknown loss 'mean_sqaured_error' in compile=: did you mean 'mean_squared_error'?
    """
    import keras

    _resolve(_leaves(params.get("loss")), keras.losses, "loss", _LOSS_ALIASES, "sparse_categorical_crossentropy")
    for key in ("metrics", "weighted_metrics"):
        _resolve(_leaves(params.get(key)), keras.metrics, "metric", _METRIC_ALIASES, "accuracy")


def _resolve(leaves: list, module, what: str, aliases: set[str], example: str) -> None:
    from ._params import bounded_repr
    from .errors import DataError

    for leaf in leaves:
        if leaf is None or (isinstance(leaf, str) and leaf.lower() in aliases):
            continue
        try:
            found = module.get(leaf) if isinstance(leaf, str | Mapping) else None
        except Exception:  # Keras raises ValueError or TypeError for names and configs it cannot read
            found = None
        if found is None or not callable(found):
            names = [n for n in dir(module) if not n.startswith("_") and n not in _NOT_ACTIVATIONS]
            where = module.__name__.replace(".api", "").replace("._tf_keras", "").split(".")[-1]
            otherwise = f"expected a name from keras.{where} such as {example!r}"
            raise DataError(f"Unknown {what} {bounded_repr(leaf)} in compile=: " + _suggest(leaf, names, otherwise))


def _leaves(value) -> list:
    """The losses or metrics in compile's value: one, a list, per-output lists or mappings (a config is one)."""
    from .errors import DataError

    found, stack = [], [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping) and "class_name" not in item:
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        else:
            found.append(item)
        if len(found) + len(stack) > _MOST_LEAVES:
            raise DataError(f"compile= names more than {_MOST_LEAVES} losses or metrics.")
    return found


def layers(config: dict) -> Iterator[dict]:
    """Each layer config in a model config, those of nested models too, in order.

    >>> [layer["class_name"] for layer in layers({"config": {"layers": [{"class_name": "Dense"}]}})]
    ['Dense']
    """
    inner = config.get("config") if isinstance(config, dict) else None
    found = inner.get("layers") if isinstance(inner, dict) else None
    for layer in found if isinstance(found, list) else []:
        if isinstance(layer, dict):
            yield layer
            yield from layers(layer)


def cause(exc: BaseException) -> str:
    """The part of a Keras error that says what went wrong, without the config it repeats.

    >>> cause(TypeError("Sequential could not be deserialized... config={...}.\\n\\nException encountered: boom"))
    'boom'
    """
    text = str(exc)
    marker = "Exception encountered:"
    if marker in text:
        text = text.rsplit(marker, 1)[1]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    first = lines[0] if lines else type(exc).__name__
    return first if len(first) <= _LONGEST_CAUSE else first[: _LONGEST_CAUSE - 3] + "..."


def _layer_problem(keras, layer: dict) -> str | None:
    class_name = layer.get("class_name")
    settings = layer.get("config") if isinstance(layer.get("config"), dict) else {}
    name = settings.get("name") or layer.get("name") or "?"
    if not _known_class(keras, class_name, layer.get("registered_name")):
        known = [n for n in dir(keras.layers) if n[:1].isupper()]
        otherwise = "expected a keras.layers class, or one registered with keras.saving.register_keras_serializable"
        return f"Unknown layer class {class_name!r} (layer {name!r}): " + _suggest(class_name, known, otherwise)
    for key in ACTIVATION_KEYS:
        value = settings.get(key)
        if isinstance(value, dict) and value.get("class_name") == "function":
            value = value.get("config")  # Keras's serialized form of a built-in function
        if isinstance(value, str) and not _known_activation(keras, value):
            what = key.replace("_", " ")
            return f"Layer {name!r} ({class_name}): unknown {what} {value!r}; " + _suggest(
                value, _activations(keras), "expected a name from keras.activations such as 'relu' or 'softmax'"
            )
    return None


def _known_class(keras, class_name, registered_name) -> bool:
    if not isinstance(class_name, str):
        return False
    if class_name in MODEL_CLASSES or isinstance(getattr(keras.layers, class_name, None), type):
        return True
    return any(
        isinstance(key, str) and keras.saving.get_registered_object(key) is not None
        for key in (registered_name, class_name)
    )


def _known_activation(keras, value: str) -> bool:
    try:
        keras.activations.get(value)
    except (ValueError, TypeError):
        return False
    return True


def _activations(keras) -> list[str]:
    return [
        n for n in dir(keras.activations)
        if not n.startswith("_") and n not in _NOT_ACTIVATIONS and callable(getattr(keras.activations, n))
    ]  # fmt: skip


def _suggest(value, choices: list[str], otherwise: str) -> str:
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.7) if isinstance(value, str) else []
    return f"did you mean {close[0]!r}?" if close else f"{otherwise}."
