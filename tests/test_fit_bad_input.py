"""Bad input to fit: a clear error before training starts, and nothing written to the database."""

import numpy as np
import pytest
from helpers import COMPILE, frame, mlp

import dasktrain
from dasktrain.errors import DataError, SchemaError
from dasktrain.testing import table_exists


@pytest.fixture
def attempt(db, client, digits, table_name):
    """Call fit with a checkpoint table; check that a bad call leaves no table behind."""

    def run(error, match, model=None, **kwargs):
        options = dict(
            x="x",
            y="y",
            db=db,
            client=client,
            compile=COMPILE,
            iterations=1,
            progress=False,
            checkpoint=(db, table_name, "m"),
            data="fit_digits_train",
        )
        options.update(kwargs)
        data = options.pop("data")
        with pytest.raises(error, match=match):
            dasktrain.fit(data, mlp() if model is None else model, **options)
        assert not table_exists(db, table_name) and not table_exists(db, f"{table_name}_summary")

    return run


def test_labels_outside_the_models_classes(attempt):
    attempt(DataError, r"labels \[5, 6, 7, 8, 9\] are outside the model's 5 classes", model=mlp(classes=5))


def test_x_shape_not_matching_the_model_input(attempt):
    attempt(DataError, r"x has shape \(8, 8\) per row; the model's input is \(7, 7\)", model=mlp(input_shape=(7, 7)))


def test_nan_features(attempt):
    attempt(DataError, "NaN or infinite", data=frame([50, 50], nan=True))


@pytest.mark.parametrize("alpha, beta", [(1.5, 0.5), (0.5, -1)])
def test_easgd_alpha_beta_outside_0_1(attempt, alpha, beta):
    attempt(DataError, r"in \[0, 1\]", strategy=dasktrain.EASGD(alpha, beta))


def test_data_with_no_rows_at_all(attempt):
    attempt(DataError, "data has no rows", data=frame([0, 0]))


def test_an_empty_segment_is_skipped_and_not_counted(db, client):
    result = dasktrain.fit(
        frame([40, 0, 40]), mlp(), x="x", y="y", compile=COMPILE, iterations=2, client=client, progress=False
    )
    assert result.num_segments == 2 and result.num_rows == 80
    assert np.isfinite(result.training_loss).all()


@pytest.mark.parametrize("bad", ['{"class_name": ', '{"config": {}}', '{"class_name": "NoSuchModel", "config": {}}'])
def test_invalid_model_json(attempt, bad):
    attempt(DataError, "Invalid model JSON", model=bad)


def test_a_compile_string_with_code_in_it(attempt):
    attempt(DataError, "not a literal", compile="optimizer='adam', loss=__import__('os').getcwd()")


def test_unknown_loss_or_optimizer(attempt):
    attempt(DataError, "cannot compile", compile={"optimizer": "nosuch", "loss": "mse"})


def test_integer_labels_with_a_one_hot_loss(attempt):
    attempt(
        DataError, "sparse_categorical_crossentropy", compile={"optimizer": "adam", "loss": "categorical_crossentropy"}
    )


def test_an_unknown_architecture_id(attempt, db, table_name):
    dasktrain.load_architecture(db, f"{table_name}_arch", mlp())
    try:
        attempt(SchemaError, "No architecture with model_id=99", model=(f"{table_name}_arch", 99))
    finally:
        with db.cursor() as cur:
            cur.execute(f"DROP TABLE {table_name}_arch")


def test_missing_columns_and_bad_numbers(attempt):
    attempt(SchemaError, "no column 'pixels'", x="pixels")
    attempt(DataError, "positive integer iterations", iterations=0)
    attempt(DataError, "positive normalizing_const", normalizing_const=0)
    attempt(DataError, "resume=True needs checkpoint", resume=True, checkpoint=None)
    attempt(DataError, "patience", early_stopping={"patience": 0})


@pytest.mark.parametrize("x, y", [("x", "x"), ("y", "y"), (["x", "y"], "y")])
def test_the_label_as_a_feature(attempt, x, y):
    """Once a raw decoding error from the workers after the cluster had started."""
    attempt(DataError, "the label column cannot be an input", x=x, y=y)


def test_weights_that_do_not_fit_the_model(attempt):
    attempt(DataError, "initial_weights have shapes", initial_weights=[np.zeros((2, 2))])


@pytest.mark.parametrize(
    "select, match",
    [
        ("SELECT x, y FROM fit_digits_train", "is bytea with no recorded dtype and shape"),
        ("SELECT x::text::bytea AS x, date '2020-01-01' + y::int AS y FROM fit_digits_train", "no recorded dtype"),
        ("SELECT ARRAY[1.0, 2.0]::real[] AS x, date '2020-01-01' + y::int AS y FROM fit_digits_train",
         "holds neither numbers, text nor booleans"),
    ],
)  # fmt: skip
def test_columns_a_fit_cannot_use_are_refused_from_the_catalog(db, digits, table_name, select, match):
    """Once refused only after the cluster had read them (about 40 s on the command line)."""
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} AS {select}")
    not_a_client = object()  # any use of a cluster would fail with AttributeError, not SchemaError
    with pytest.raises(SchemaError, match=match):
        dasktrain.fit(table_name, mlp(), x="x", y="y", db=db, client=not_a_client, compile=COMPILE, iterations=1,
                      progress=False)  # fmt: skip
