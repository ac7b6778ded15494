"""MADlib-style architecture tables."""

import json

import numpy as np
import pytest
from helpers import mlp

import dasktrain
from dasktrain._model_spec import build_model, unflatten_weights
from dasktrain.errors import DataError, SchemaError
from dasktrain.models._architectures import get_architecture


def test_load_list_get_delete(db, table_name):
    model = mlp()
    first = dasktrain.load_architecture(db, table_name, model, name="mlp", description="tiny")
    second = dasktrain.load_architecture(db, table_name, model.to_json(), weights=model.get_weights())
    assert second == first + 1
    listed = dasktrain.list_architectures(db, table_name)
    assert [(a["model_id"], a["name"], a["has_weights"]) for a in listed] == [
        (first, "mlp", False),
        (second, None, True),
    ]
    architecture, weights = get_architecture(db, table_name, second)
    assert json.loads(architecture)["class_name"] == "Sequential"
    shapes = [w.shape for w in model.get_weights()]
    for a, b in zip(unflatten_weights(weights, shapes), model.get_weights(), strict=True):
        assert a.tobytes() == np.asarray(b, np.float32).tobytes()
    dasktrain.delete_architecture(db, table_name, first)
    assert [a["model_id"] for a in dasktrain.list_architectures(db, table_name)] == [second]
    with pytest.raises(SchemaError, match=f"No architecture with model_id={first}"):
        dasktrain.delete_architecture(db, table_name, first)


def test_bad_architectures_are_refused_before_writing(db, table_name):
    with pytest.raises(DataError, match="Invalid model JSON"):
        dasktrain.load_architecture(db, table_name, "not json")
    with pytest.raises(SchemaError, match="does not exist"):
        dasktrain.list_architectures(db, table_name)


def _with_typo(layer: int, key: str, value: str) -> tuple[str, str]:
    """The tiny MLP's JSON with ``value`` in the ``key`` of its ``layer``-th layer (or of that layer's
    config), and that layer's name (Keras numbers names per process: 'dense', 'dense_1', ...)."""
    config = json.loads(mlp().to_json())
    entry = config["config"]["layers"][layer]
    (entry if key == "class_name" else entry["config"])[key] = value
    return json.dumps(config), entry["config"]["name"]


@pytest.mark.parametrize(
    "typo, expected",
    [
        ((2, "class_name", "Dnese"), "Unknown layer class 'Dnese' (layer '{}'): did you mean 'Dense'?"),
        ((3, "activation", "sofmax"), "Layer '{}' (Dense): unknown activation 'sofmax'; did you mean 'softmax'?"),
    ],
    ids=["layer class", "activation"],
)
def test_typos_are_refused_at_load_in_one_sentence(db, table_name, typo, expected):
    architecture, layer = _with_typo(*typo)
    expected = expected.format(layer)
    first = dasktrain.load_architecture(db, table_name, mlp(), name="good")
    with pytest.raises(DataError) as info:
        dasktrain.load_architecture(db, table_name, architecture, name="typo")
    assert str(info.value) == expected
    assert [a["model_id"] for a in dasktrain.list_architectures(db, table_name)] == [first]  # nothing written
    with pytest.raises(DataError) as info:  # fit and scoring build stored architectures the same way
        build_model(architecture)
    assert str(info.value) == expected


def test_a_typo_is_refused_before_the_table_is_created(db, table_name):
    with pytest.raises(DataError, match="sofmax"):
        dasktrain.load_architecture(db, table_name, _with_typo(3, "activation", "sofmax")[0])
    with pytest.raises(SchemaError, match="does not exist"):
        dasktrain.list_architectures(db, table_name)
