import pytest

from dasktrain._params import COMPILE_KEYS, FIT_KEYS, optimizer_config, parse_params
from dasktrain.errors import DataError
from dasktrain.models._model_store import format_params


def test_madlib_compile_strings_parse_to_literals():
    text = "optimizer='SGD(learning_rate=0.01, momentum=0.9)', loss='categorical_crossentropy', metrics=['accuracy']"
    params = parse_params(text, what="compile", allowed=COMPILE_KEYS)
    assert params == {
        "optimizer": "SGD(learning_rate=0.01, momentum=0.9)",
        "loss": "categorical_crossentropy",
        "metrics": ["accuracy"],
    }
    assert optimizer_config(params["optimizer"]) == {
        "class_name": "SGD",
        "config": {"learning_rate": 0.01, "momentum": 0.9},
    }
    assert parse_params(format_params(params), what="compile", allowed=COMPILE_KEYS) == params


@pytest.mark.parametrize(
    "text, message",
    [
        ("loss=__import__('os').system('true')", "not a literal"),
        ("loss=open('/etc/passwd').read()", "not a literal"),
        ("loss='mse'; import os", "Cannot parse"),
        ("'mse'", "name=value pairs only"),
        ("los='mse'", "Unknown compile parameter 'los'"),
    ],
)
def test_anything_but_literals_is_refused(text, message):
    with pytest.raises(DataError, match=message):
        parse_params(text, what="compile", allowed=COMPILE_KEYS)


def test_optimizer_arguments_must_be_literals_too():
    with pytest.raises(DataError, match="not a literal"):
        optimizer_config("Adam(learning_rate=exec('x'))")


def test_fit_params_accept_dicts_and_check_keys():
    assert parse_params({"batch_size": 64}, what="fit", allowed=FIT_KEYS) == {"batch_size": 64}
    with pytest.raises(DataError, match="Unknown fit parameter 'epoch'"):
        parse_params("epoch=3", what="fit", allowed=FIT_KEYS)
