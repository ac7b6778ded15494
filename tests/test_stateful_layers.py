"""Adapted preprocessing layers survive dasktrain's trip: JSON architecture plus flat weights, rebuilt in safe mode.

Plain Keras loses an adapted Normalization's mean and variance (not finalized after set_weights) and
a lookup layer's adapted vocabulary (not in the layer's config). No database or cluster: this is
the trip every model makes to the workers, into the model table and back for scoring.
"""

import json

import numpy as np
import pytest

from dasktrain._model_spec import build_model, flatten_weights, model_json, unflatten_weights, weight_shapes
from dasktrain._stateful_layers import set_weights


def _trip(model):
    """``model`` rebuilt as dasktrain rebuilds it: its JSON, and its weights stored as flat float32."""
    rebuilt = build_model(model_json(model))
    set_weights(rebuilt, unflatten_weights(flatten_weights(model.get_weights()), weight_shapes(rebuilt)))
    return rebuilt


def _layers():
    import keras

    x = np.random.default_rng(0).normal(3, 2, (100, 4)).astype("float32")
    normalization = keras.layers.Normalization()
    normalization.adapt(x)
    discretization = keras.layers.Discretization(num_bins=4)
    discretization.adapt(x)
    integers = keras.layers.IntegerLookup()
    integers.adapt(np.array([5, 7, 9, 7]))
    strings = keras.layers.StringLookup(output_mode="one_hot")
    strings.adapt(np.array(["a", "b", "b", "c"]))
    return {
        "Normalization": ([keras.Input((4,)), normalization, keras.layers.Dense(2)], x[:5]),
        "Discretization": ([keras.Input((4,)), discretization], x[:5]),
        "IntegerLookup": ([keras.Input((1,), dtype="int64"), integers], np.array([[7], [9], [3]])),
        "StringLookup": ([keras.Input((1,), dtype="string"), strings], np.array([["b"], ["c"], ["z"]])),
        "CategoryEncoding": ([keras.Input((1,), dtype="int32"), keras.layers.CategoryEncoding(4)], np.array([[1]])),
        "Rescaling": ([keras.Input((4,)), keras.layers.Rescaling(1 / 255.0)], x[:5]),
    }


@pytest.mark.parametrize("name", ["Normalization", "Discretization", "IntegerLookup", "StringLookup",
                                  "CategoryEncoding", "Rescaling"])  # fmt: skip
def test_an_adapted_layer_gives_the_same_outputs_after_the_trip(name):
    import keras

    layers, sample = _layers()[name]
    model = keras.Sequential(layers)
    np.testing.assert_allclose(np.asarray(_trip(model)(sample)), np.asarray(model(sample)), rtol=1e-6)


def test_a_lookup_vocabulary_is_written_into_the_json():
    import keras

    lookup = keras.layers.StringLookup(name="colour")
    lookup.adapt(np.array(["red", "blue", "red"]))
    config = json.loads(model_json(keras.Sequential([keras.Input((1,), dtype="string"), lookup])))
    assert config["config"]["layers"][-1]["config"]["vocabulary"] == ["red", "blue"]
