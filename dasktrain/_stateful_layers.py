"""Keras preprocessing layers whose adapted state must survive dasktrain's trip through JSON and flat weights.

A model travels as its JSON architecture and its flat weights: to the workers, into the model
table, and back for scoring. Two kinds of adapted state miss that trip in plain Keras:

- ``Normalization`` keeps its mean and variance as weights, but only uses them once
  ``finalize_state()`` has run; :func:`set_weights` runs it after every ``set_weights``.
- ``StringLookup`` and ``IntegerLookup`` keep an adapted vocabulary in a lookup table, neither in
  the weights nor in ``get_config()``; :func:`portable_config` writes it into the layer's config.

``Discretization`` (its bin boundaries), ``CategoryEncoding`` and ``Rescaling`` keep their state in
their config already.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import DataError

_LOOKUPS = ("StringLookup", "IntegerLookup")


def set_weights(model, weights: Sequence[np.ndarray]) -> None:
    """``model.set_weights(weights)``, then finalize the layers that compute their state from weights.

    >>> import keras
    >>> norm = keras.layers.Normalization()
    >>> norm.adapt(np.array([[1.0], [3.0]]))
    >>> twin = keras.Sequential.from_config(keras.Sequential([keras.Input((1,)), norm]).get_config())
    >>> set_weights(twin, norm.get_weights())
    >>> float(twin(np.array([[3.0]]))[0, 0])
    1.0
    """
    model.set_weights(weights)
    for layer in _layers(model):
        # Only layers whose state is in weights: Discretization's finalize_state() would recompute
        # its boundaries from an empty summary and lose them.
        if hasattr(layer, "adapt") and layer.weights:
            layer.finalize_state()


def portable_config(model) -> dict:
    """``model``'s config, with every adapted lookup layer's vocabulary written into its layer's config.

    >>> import keras
    >>> lookup = keras.layers.StringLookup(name="colour")
    >>> lookup.adapt(np.array(["red", "blue", "red"]))
    >>> config = portable_config(keras.Sequential([keras.Input((1,), dtype="string"), lookup]))
    >>> config["config"]["layers"][-1]["config"]["vocabulary"]
    ['red', 'blue']
    """
    import keras

    config = keras.saving.serialize_keras_object(model)
    adapted = {
        layer.name: layer
        for layer in _layers(model)
        if type(layer).__name__ in _LOOKUPS and layer.get_config().get("vocabulary") is None
    }
    if adapted:
        _write_vocabularies(config, adapted)
    return config


def _write_vocabularies(config, adapted: dict) -> None:
    if isinstance(config, list):
        for item in config:
            _write_vocabularies(item, adapted)
        return
    if not isinstance(config, dict):
        return
    inner = config.get("config")
    if config.get("class_name") in _LOOKUPS and isinstance(inner, dict) and inner.get("name") in adapted:
        layer = adapted[inner["name"]]
        vocabulary = layer.get_vocabulary(include_special_tokens=False)
        inner["vocabulary"] = [v.item() if isinstance(v, np.generic) else v for v in vocabulary]
        inner["vocabulary_size"] = None
        if inner.get("output_mode") == "tf_idf":
            raise DataError(
                f"Layer {layer.name!r} ({type(layer).__name__}) was adapted with output_mode='tf_idf', whose "
                f"document frequencies dasktrain cannot store: pass vocabulary= and idf_weights= instead of adapt()."
            )
    for value in config.values():
        _write_vocabularies(value, adapted)


def _layers(model):
    """Every layer of ``model``, nested models' layers included."""
    return list(model._flatten_layers(include_self=False))
