"""Keras fit parameters are honoured or refused, never stored and ignored (issue 22, item 5).

``class_weight`` weighs each row's loss by its class; ``validation_split``, ``verbose``,
``sample_weight`` and a ``shuffle`` other than True or False are refused before any work.
"""

import numpy as np
import pytest
from helpers import COMPILE, frame, mlp

import dasktrain
from dasktrain.errors import DataError
from dasktrain.train._class_weights import class_weight_table


@pytest.mark.parametrize(
    "fit, message",
    [
        ({"validation_split": 0.2}, "fit parameter validation_split is not supported: pass validation="),
        ({"verbose": 0}, "fit parameter verbose is not supported: pass progress=True or False"),
        ({"sample_weight": "w"}, "fit parameter sample_weight is not supported: weighing rows by a column"),
        ({"shuffle": "batch"}, "Expected shuffle=True or False. Received: shuffle='batch'"),
        ({"class_weight": [1.0, 2.0]}, "Expected class_weight as a dict of class: weight"),
        ({"class_weight": {10: 1.0}}, "class_weight names class 10, but y's classes are numbered 0 to 9"),
        ({"class_weight": {0: -1.0}}, r"class_weight\[0\]: expected a weight >= 0. Received: -1.0"),
        ("batch_size=32, verbose=2", "fit parameter verbose is not supported"),
    ],
)
def test_fit_parameters_it_would_ignore_are_refused_before_any_work(fit, message):
    # A dask DataFrame and no client: a fit that got past its checks would start a cluster.
    with pytest.raises(DataError, match=message):
        dasktrain.fit(frame([10, 10]), mlp(), x="x", y="y", compile=COMPILE, fit=fit, iterations=1)


def test_a_search_refuses_them_too():
    with pytest.raises(DataError, match="fit parameter validation_split is not supported"):
        dasktrain.model_configs(mlp(), compile={"loss": "mse"}, fit={"validation_split": [0.1, 0.2]})


def test_text_labels_are_weighed_by_their_class_values():
    assert class_weight_table({"dog": 3.0}, ["bird", "cat", "dog"], (3,), "animal") == (1.0, 1.0, 3.0)
    assert class_weight_table({True: 2.0}, [False, True], (1,), "flag") == (1.0, 2.0)
    with pytest.raises(DataError, match="class_weight names class 'dgo', which 'animal' does not hold"):
        class_weight_table({"dgo": 3.0}, ["bird", "cat", "dog"], (3,), "animal")


def _fit(db, client, fit):
    return dasktrain.fit("fit_digits_train", mlp(), x="x", y="y", db=db, client=client, compile=COMPILE,
                         normalizing_const=16.0, iterations=1, seed=7, fit={"batch_size": 64, **fit},
                         progress=False)  # fmt: skip


def test_class_weight_changes_the_training_and_weights_of_one_do_not(db, client, digits):
    plain = _fit(db, client, {})
    ones = _fit(db, client, {"class_weight": dict.fromkeys(range(10), 1.0)})
    weighed = _fit(db, client, {"class_weight": {0: 20.0, 1: 0.0}})
    for a, b in zip(plain.weights, ones.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(plain.weights, weighed.weights, strict=True))
    assert weighed.fit_params["class_weight"] == {0: 20.0, 1: 0.0}  # kept with the model, as it trained
