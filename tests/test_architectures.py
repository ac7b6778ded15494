"""MADlib-style architecture tables."""

import json

import numpy as np
import pytest
from helpers import mlp

import dasktrain
from dasktrain._model_spec import unflatten_weights
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
