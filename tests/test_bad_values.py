"""Bad values in the data or the stored models: clear errors, empty segments skipped, scalar targets."""

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from helpers import COMPILE, frame, mlp

import dasktrain
import loaders
from dasktrain.errors import DasktrainError, DataError, SchemaError, TrainingDivergedError
from dasktrain.io._tensor_column import tensor_series

SOURCE = "fit_digits_test"


def _regression_frame(sizes, y_nan=False, scale=1.0):
    rng = np.random.default_rng(1)

    def part(n):
        x = rng.random((n, 8, 8)).astype(np.float32) * scale
        y = x.reshape(n, -1).sum(axis=1).astype(np.float32)
        if y_nan:
            y[0] = np.nan
        return pd.DataFrame({"x": tensor_series(x), "y": y})

    parts = [part(n) for n in sizes]
    return dd.from_delayed([dask.delayed(p) for p in parts], meta=parts[0].iloc[:0], verify_meta=False)


def _linear():
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8, 8)), keras.layers.Flatten(), keras.layers.Dense(1)])


def test_scalar_regression_targets_train_a_single_output_model(client):
    result = dasktrain.fit(
        _regression_frame([100, 100]), _linear(), x="x", y="y", compile={"optimizer": "adam", "loss": "mse"},
        iterations=3, client=client, progress=False,
    )  # fmt: skip
    assert result.num_rows == 200 and result.training_loss[-1] < result.training_loss[0]


def test_nan_labels_are_refused_before_training(client):
    with pytest.raises(DataError, match="data segment 0: y has NaN or infinite values"):
        dasktrain.fit(
            _regression_frame([50, 50], y_nan=True), _linear(), x="x", y="y", compile={"loss": "mse"},
            iterations=1, client=client, progress=False,
        )  # fmt: skip


def test_a_diverging_fit_stops_naming_the_iteration_and_replica_and_keeps_the_last_good_checkpoint(
    db, client, table_name
):
    with pytest.raises(TrainingDivergedError) as info:
        dasktrain.fit(
            _regression_frame([100, 100]), _linear(), x="x", y="y",
            compile={"optimizer": "SGD(learning_rate=5.0)", "loss": "mse"}, fit={"batch_size": 100},
            iterations=30, client=client, progress=False, checkpoint=(db, table_name, "m"), checkpoint_keep=None,
        )  # fmt: skip
    message = str(info.value)
    iteration = int(message.split("Training diverged at iteration ")[1].split(":")[0])
    assert iteration >= 2 and "replica" in message and "is inf" in message or "is nan" in message
    saved = [m["version"] for m in dasktrain.list_models(db, table_name)]
    assert saved == list(range(1, iteration))  # one checkpoint per good iteration, none after
    assert f"last checkpoint is version {iteration - 1} of 'm'" in message
    weights = dasktrain.load_model(db, table_name, "m").get_weights()
    assert all(np.isfinite(w).all() for w in weights)


@pytest.fixture
def nan_source(db, table_name):
    x, y = loaders.read_digits()
    x = x[1400:].astype(np.float32)
    x[[5, 17], 0, 0] = np.nan
    x[40, 3, 3] = np.inf
    loaders.write_arrays(db, f"{table_name}_src", x, y[1400:], segments=2)
    return f"{table_name}_src"


def test_predict_table_refuses_rows_with_non_finite_features_or_skips_and_counts_them(
    db, client, trained, nan_source, table_name, caplog
):
    with pytest.raises(DataError, match=r"3 row\(s\) have NaN or infinite features \(ids \[5, 17, 40\]\)|row\(s\)"):
        dasktrain.predict_table(db, "scoring_models", nan_source, table_name, progress=False)
    with caplog.at_level("WARNING", logger="dasktrain"):
        written = dasktrain.predict_table(
            db, "scoring_models", nan_source, table_name, skip_nonfinite=True, progress=False
        )
    assert written == 397 - 3 and "skipped 3 rows" in caplog.text
    with db.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table_name} WHERE id IN (5, 17, 40) OR prob = 'NaN'")
        assert cur.fetchone()[0] == 0


def test_evaluate_refuses_non_finite_features_or_skips_and_counts_them(db, client, trained, nan_source):
    with pytest.raises(DataError, match="NaN or infinite features"):
        dasktrain.evaluate(db, "scoring_models", nan_source, name="digits_mlp")
    result = dasktrain.evaluate(db, "scoring_models", nan_source, name="digits_mlp", skip_nonfinite=True)
    assert result["rows"] == 394 and result["skipped"] == 3 and np.isfinite(result["loss"])


def test_an_emptied_segment_is_skipped_by_scoring(db, client, trained, table_name):
    x, y = loaders.read_digits()
    source = f"{table_name}_src"
    loaders.write_arrays(db, source, x[1400:], y[1400:], segments=3)
    with db.cursor() as cur:
        cur.execute(f"DELETE FROM {source}_seg1")
        cur.execute(f"SELECT count(*) FROM {source}")
        remaining = cur.fetchone()[0]
    assert 0 < remaining < 397
    assert dasktrain.predict_table(db, "scoring_models", source, table_name, progress=False) == remaining
    scores = dasktrain.predict(trained, dasktrain.read_table(db, source), x="x").compute()
    assert len(scores) == remaining
    assert dasktrain.evaluate(db, "scoring_models", source, name="digits_mlp")["rows"] == remaining


def test_an_empty_source_writes_an_empty_output(db, client, trained, table_name):
    source = f"{table_name}_src"
    loaders.write_arrays(db, source, np.zeros((3, 8, 8)), [0, 1, 2], segments=2)
    with db.cursor() as cur:
        cur.execute(f"DELETE FROM {source}")
    assert dasktrain.predict_table(db, "scoring_models", source, table_name, progress=False) == 0
    with db.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table_name}")
        assert cur.fetchone()[0] == 0


def test_table_names_of_63_bytes_can_be_written_and_read(db, client):
    name = "long_" + "n" * 58
    try:
        loaders.write_arrays(db, name, np.arange(12).reshape(3, 2, 2), [0, 1, 0], segments=2)
        X, y = dasktrain.to_arrays(dasktrain.read_table(db, name).compute().sort_values("id"), x="x", y="y")
        assert X.shape == (3, 2, 2) and X[2, 1, 1] == 11 and y.tolist() == [0, 1, 0]
    finally:
        from dasktrain.testing import drop_tables

        drop_tables(db, name)
        drop_tables(db, name[:46])  # the hashed summary name keeps the first 46 bytes


@pytest.fixture
def stored(db, trained, table_name):
    """A copy of the trained model in a model table of this test's own."""
    dasktrain.save_model(db, table_name, trained, name="m")
    return table_name


def test_weights_that_are_not_float32_values_are_a_data_error(db, stored):
    with db.cursor() as cur:
        cur.execute(f"UPDATE {stored} SET model_weights = '\\x0102030405'::bytea")
    with pytest.raises(DataError, match="5 bytes, not a whole number of float32 values"):
        dasktrain.load_model(db, stored, "m")


def test_a_summary_without_weights_is_a_schema_error(db, stored):
    with db.cursor() as cur:
        cur.execute(f"DELETE FROM {stored}")
    with pytest.raises(SchemaError, match="has a summary row but no weights"):
        dasktrain.load_model(db, stored, "m")


def test_an_unknown_stored_strategy_is_a_data_error(db, client, stored):
    with db.cursor() as cur:
        cur.execute(f"UPDATE {stored}_summary SET strategy = 'gossip'")
    with pytest.raises(DataError, match="Unknown strategy 'gossip'"):
        dasktrain.fit(SOURCE, mlp(), x="x", y="y", compile=COMPILE, iterations=2, db=db, client=client,
                      checkpoint=(db, stored, "m"), resume=True, progress=False)  # fmt: skip


def test_labels_outside_the_models_classes_in_evaluate(db, client, trained, table_name):
    x, y = loaders.read_digits()
    loaders.write_arrays(db, table_name, x[:20], (y[:20] + 7), segments=2)  # labels up to 16
    with pytest.raises(DataError, match=r"labels \[10, .*\] are outside the model's 10 classes"):
        dasktrain.evaluate(db, "scoring_models", table_name, name="digits_mlp")


def test_a_keras_file_refused_by_safe_mode_is_a_data_error(db, trained, tmp_path, table_name):
    import keras

    model = keras.Sequential([keras.Input((8, 8)), keras.layers.Lambda(lambda t: t * 2), keras.layers.Flatten()])
    path = str(tmp_path / "lambda.keras")
    model.save(path)
    with pytest.raises(DataError, match="lambda.keras"):
        dasktrain.predict_table(db, path, SOURCE, table_name, progress=False)


@pytest.mark.parametrize("call", ["fit", "predict_table", "evaluate"])
def test_absurd_batch_sizes_are_refused(db, client, trained, table_name, call):
    huge = 2**63
    with pytest.raises(DataError, match="Expected batch_size between 1 and 2147483647"):
        if call == "fit":
            dasktrain.fit(frame([20]), mlp(), x="x", y="y", compile=COMPILE, iterations=1, fit={"batch_size": huge})
        elif call == "predict_table":
            dasktrain.predict_table(db, "scoring_models", SOURCE, table_name, batch_size=huge, progress=False)
        else:
            dasktrain.evaluate(db, "scoring_models", SOURCE, batch_size=huge)


def test_every_exception_class_is_a_dasktrain_error():
    import inspect

    import dasktrain.errors as errors

    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__]
    assert len(classes) == len(errors.__all__) and all(issubclass(c, DasktrainError) for c in classes)
