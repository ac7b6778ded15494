"""What a search prints: its whole table, each configuration's architecture by name, the truth about how its
models trained, and no TensorFlow retracing warnings from the workers (issue 20, item 11)."""

import json
import sys

import cloudpickle
import numpy as np
import pandas as pd
import pytest

import dasktrain
from dasktrain.models._selection_result import SelectionResult, SelectionTable
from dasktrain.strategies.hopper import Hopper

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # record() and recorded() run on the workers

COMPILE = {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}
PARAMS = "optimizer='Adam(learning_rate=0.001)', loss='sparse_categorical_crossentropy', metrics=['accuracy']"


def _result(name: str, loss: float):
    architecture = json.dumps({"class_name": "Sequential", "config": {"name": name}})
    metrics = {"accuracy": 0.9, "loss": loss}
    history = [{"iteration": 1, "elapsed": 12.345, "rows": 1400, "training": metrics, "validation": metrics}]
    compile_params, fit_params = {"optimizer": "Adam(learning_rate=0.001)"}, {"batch_size": 32}
    weights = [np.zeros((64, 32)), np.zeros(32)]
    return dasktrain.TrainingResult(architecture, [weights], Hopper(), compile_params, fit_params, history)


def test_the_table_prints_every_column_and_row_whole():
    search = SelectionResult({1: _result("mlp", 0.7), 2: _result("cnn", 0.3)}, {1: "finished", 2: "finished"})
    table = search.table()
    assert isinstance(table, SelectionTable) and list(table["architecture"]) == ["cnn", "mlp"]
    with pd.option_context("display.width", 80, "display.max_columns", 0):  # pandas's defaults in a terminal
        assert "..." in repr(pd.DataFrame(table))  # what pandas prints: columns elided
        text = str(table)
        assert repr(table) == text and "..." not in text
    lines = text.splitlines()
    assert len(lines) == 3 and lines[0].split() == list(table.columns)
    assert lines[1].split()[:3] == ["2", "cnn", "-"] and "0.3000" in lines[1] and lines[1].endswith("12.3")
    assert str(table[["mst_key", "validation_loss"]]).splitlines() == ["mst_key  validation_loss",
                                                                      "      2           0.3000",
                                                                      "      1           0.7000"]  # fmt: skip
    printed = str(search)
    assert printed.splitlines()[0] == repr(search) and printed.endswith(text)
    assert "strategy=hopper" in repr(search.best) and "replicas" in repr(search.best)


@pytest.fixture(scope="module")
def named(db, digits):
    """An architecture stored as "wide32" and an in-memory model named "mlp16", 3 learning rates each."""
    import keras

    from dasktrain.testing import drop_tables

    def mlp(units, name=None):
        keras.utils.set_random_seed(units)
        layers = [keras.layers.Flatten(), keras.layers.Dense(units, activation="relu"), keras.layers.Dense(10)]
        return keras.Sequential([keras.Input((8, 8)), *layers, keras.layers.Softmax()], name=name)

    table = "selection_output_arch"
    model_id = dasktrain.load_architecture(db, table, mlp(32), name="wide32")
    yield dasktrain.model_configs([(table, model_id), mlp(16, name="mlp16")],
                                  compile=COMPILE | {"learning_rate": [0.01, 0.003, 0.001]})  # fmt: skip
    drop_tables(db, table)


def record(dask_worker=None):
    """Keep what the worker's ``tensorflow`` logger lets through, from now on."""
    import logging

    class Recorder(logging.Handler):
        def emit(self, record):
            self.messages.append(record.getMessage())

    handler = Recorder()
    handler.messages = []
    logging.getLogger("tensorflow").addHandler(handler)
    dask_worker.selection_output_recorder = handler


def recorded(dask_worker=None):
    import logging

    logger = logging.getLogger("tensorflow")
    logger.removeHandler(dask_worker.selection_output_recorder)
    filters = [type(f).__name__ for f in logger.filters]
    return dask_worker.selection_output_recorder.messages, filters


@pytest.fixture(scope="module")
def search(db, client, named):
    client.run(record)
    search = dasktrain.fit_multiple("fit_digits_train", named, x="x", y="y", iterations=1,
                                    validation="fit_digits_test", normalizing_const=16.0, db=db, client=client,
                                    progress=False, seed=0)  # fmt: skip
    return search, client.run(recorded)


def test_a_search_names_each_architecture_and_prints_whole(search):
    search, _ = search
    table = search.table()
    assert dict(zip(table["mst_key"], table["architecture"], strict=True)) == {
        1: "wide32", 2: "wide32", 3: "wide32", 4: "mlp16", 5: "mlp16", 6: "mlp16"
    }  # fmt: skip
    text = str(search)
    lines = text.splitlines()
    assert len(lines) == 1 + 1 + 6 and "..." not in text
    assert all(column in lines[1] for column in table.columns)
    assert PARAMS in text  # compile parameters in full


def test_the_best_says_the_hopper_trained_it(search):
    search, _ = search
    best = repr(search.best)
    assert "strategy=hopper" in best and "replicas=1," in best and "slowmo" not in best
    assert all(r.strategy.name == "hopper" for r in search.results.values())


def test_workers_print_no_retracing_warning(search):
    """Six models per worker each trace their functions once: TensorFlow counted that as retracing."""
    _, workers = search
    assert len(workers) == 2
    for messages, filters in workers.values():
        assert "_DropRetracing" in filters
        assert not [m for m in messages if "retracing" in m]
