"""Batch scoring and evaluation at table scale, on a real database and cluster."""

import numpy as np
import pandas as pd
import pytest

import dasktrain
import loaders
from dasktrain.errors import DataError, SchemaError, TableExistsError
from dasktrain.testing import table_exists

SOURCE = "fit_digits_test"


def _rows(db, table, order="id, rank"):
    with db.cursor() as cur:
        cur.execute(f"SELECT id, class_name, class_value, prob, rank FROM {table} ORDER BY {order}")
        return pd.DataFrame(cur.fetchall(), columns=["id", "class_name", "class_value", "prob", "rank"])


def _expected(trained, digits):
    x, _ = digits
    features = x[1400:].astype(np.float32) / 16
    return trained.model().predict(features, verbose=0)


def _staging_tables(db):
    with db.cursor() as cur:
        cur.execute("SELECT relname FROM pg_class WHERE relname LIKE '%%staging%%'")
        return [r[0] for r in cur.fetchall()]


def test_response_is_one_row_per_id_and_agrees_with_keras(db, client, trained, digits, table_name):
    written = dasktrain.predict_table(db, "scoring_models", SOURCE, table_name, name="digits_mlp", progress=False)
    rows = _rows(db, table_name)
    assert written == len(rows) == 397 and rows["id"].tolist() == list(range(397))
    probs = _expected(trained, digits)
    assert rows["class_value"].tolist() == [str(c) for c in probs.argmax(axis=1)]
    np.testing.assert_allclose(rows["prob"], probs.max(axis=1), rtol=1e-5)
    assert set(rows["class_name"]) == {"y"} and set(rows["rank"]) == {1}
    assert _staging_tables(db) == []


def test_prob_top_k_and_threshold(db, client, trained, digits, table_name):
    probs = _expected(trained, digits)
    dasktrain.predict_table(db, "scoring_models", SOURCE, table_name, pred_type="prob", progress=False)
    rows = _rows(db, table_name)
    assert len(rows) == 3970
    np.testing.assert_allclose(rows.groupby("id")["prob"].sum(), 1.0, rtol=1e-5)
    # atol: a probability near 1e-13 differs in its last float32 bits between batch sizes
    np.testing.assert_allclose(rows[rows["class_value"] == "3"]["prob"], probs[:, 3], rtol=1e-5, atol=1e-9)

    dasktrain.predict_table(db, "scoring_models", SOURCE, table_name, pred_type=3, replace=True, progress=False)
    rows = _rows(db, table_name)
    assert len(rows) == 3 * 397 and rows["rank"].tolist()[:3] == [1, 2, 3]
    top3 = np.sort(probs, axis=1)[:, ::-1][:, :3].ravel()
    np.testing.assert_allclose(rows["prob"], top3, rtol=1e-5)

    dasktrain.predict_table(db, "scoring_models", SOURCE, table_name, pred_type=0.3, replace=True, progress=False)
    rows = _rows(db, table_name)
    assert len(rows) == int((probs >= 0.3).sum()) and (rows["prob"] >= 0.3).all()


def test_accuracy_in_sql_equals_evaluate(db, client, trained, table_name):
    dasktrain.predict_table(db, "scoring_models", SOURCE, table_name, progress=False)
    with db.cursor() as cur:
        cur.execute(f"SELECT avg((p.class_value = s.y::text)::int) FROM {table_name} p JOIN {SOURCE} s USING (id)")
        sql_accuracy = float(cur.fetchone()[0])
    result = dasktrain.evaluate(db, "scoring_models", SOURCE, name="digits_mlp", output_table=f"{table_name}_eval")
    assert result["rows"] == 397
    assert result["accuracy"] == pytest.approx(sql_accuracy, abs=1e-6)
    with db.cursor() as cur:
        cur.execute(f"SELECT loss, metric, metrics_type, loss_type FROM {table_name}_eval")
        loss, metric, metrics_type, loss_type = cur.fetchone()
    assert (metric, metrics_type, loss_type) == (
        pytest.approx(sql_accuracy),
        ["accuracy"],
        "sparse_categorical_crossentropy",
    )
    assert loss == pytest.approx(result["loss"])


def test_evaluate_equals_one_process_evaluation(db, client, trained, digits):
    x, y = digits
    expected = trained.model().evaluate(x[1400:].astype(np.float32) / 16, y[1400:], verbose=0, return_dict=True)
    result = dasktrain.evaluate(db, "scoring_models", SOURCE, name="digits_mlp", version=1)
    assert result["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert result["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-6)


def test_an_ensemble_scores_the_mean_of_its_members(db, client, digits, table_name):
    from helpers import COMPILE, mlp

    x, _ = digits
    result = dasktrain.fit(
        "fit_digits_train",
        mlp(),
        x="x",
        y="y",
        db=db,
        client=client,
        compile=COMPILE,
        iterations=1,
        strategy=dasktrain.Ensemble(),
        normalizing_const=16.0,
        progress=False,
    )
    dasktrain.save_model(db, f"{table_name}_models", result, name="ens")
    dasktrain.predict_table(db, f"{table_name}_models", SOURCE, table_name, pred_type="prob", progress=False)
    rows = _rows(db, table_name, order="id, class_value")
    members = []
    for weights in result.members:
        single = mlp()
        single.set_weights(weights)
        members.append(single.predict(x[1400:].astype(np.float32) / 16, verbose=0))
    order = np.argsort([str(c) for c in range(10)])
    np.testing.assert_allclose(rows["prob"], np.mean(members, axis=0)[:, order].ravel(), rtol=1e-5, atol=1e-7)


def test_bring_your_own_model_from_an_architecture_table_or_a_keras_file(
    db, client, trained, digits, table_name, tmp_path
):
    model = trained.model()
    model_id = dasktrain.load_architecture(db, f"{table_name}_arch", model, weights=model.get_weights())
    classes = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    dasktrain.predict_table(
        db,
        (f"{table_name}_arch", model_id),
        SOURCE,
        table_name,
        class_values=classes,
        normalizing_const=16.0,
        progress=False,
    )
    from_table = _rows(db, table_name)
    expected = np.asarray(classes)[_expected(trained, digits).argmax(axis=1)].tolist()
    assert from_table["class_value"].tolist() == expected
    path = str(tmp_path / "digits.keras")
    model.save(path)
    dasktrain.predict_table(
        db, path, SOURCE, table_name, class_values=classes, normalizing_const=16.0, replace=True, progress=False
    )
    assert _rows(db, table_name)["class_value"].tolist() == expected


def test_the_dataframe_path_is_lazy_and_matches_the_table_path(db, client, trained, table_name):
    ddf = dasktrain.read_table(db, SOURCE)
    scores = dasktrain.predict(trained, ddf, x="x", pred_type=2)
    assert scores.npartitions == ddf.npartitions
    assert list(scores.columns) == ["id", "class_name", "class_value", "prob", "rank"]
    frame = scores.compute().sort_values(["id", "rank"]).reset_index(drop=True)
    dasktrain.predict_table(db, "scoring_models", SOURCE, table_name, pred_type=2, progress=False)
    rows = _rows(db, table_name)
    assert frame["class_value"].tolist() == rows["class_value"].tolist()
    np.testing.assert_allclose(frame["prob"], rows["prob"], rtol=1e-6)


def test_a_failed_rerun_leaves_the_previous_output_in_place(db, client, trained, table_name):
    source = f"{table_name}_src"
    x, y = loaders.read_digits()
    loaders.write_arrays(db, source, x[:300], y[:300], segments=3)
    dasktrain.predict_table(db, "scoring_models", source, table_name, progress=False)
    before = _rows(db, table_name)
    with db.cursor() as cur:  # one row of one segment becomes unreadable: that segment's task fails
        cur.execute(f"ALTER TABLE {source} ALTER COLUMN x DROP NOT NULL")
        cur.execute(f"UPDATE {source} SET x = NULL WHERE id = 150")
    with pytest.raises(DataError, match="NULL"):
        dasktrain.predict_table(db, "scoring_models", source, table_name, replace=True, progress=False)
    pd.testing.assert_frame_equal(_rows(db, table_name), before)
    assert _staging_tables(db) == []


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"name": "nope"}, SchemaError, "No model named 'nope'"),
        ({"version": 7}, SchemaError, "has no version 7"),
        ({"pred_type": 1.5}, DataError, r"threshold must be in \(0, 1\)"),
        ({"pred_type": 0.0}, DataError, r"threshold must be in \(0, 1\)"),
        ({"pred_type": 11}, DataError, "top 11 of only 10 classes"),
        ({"pred_type": "top"}, DataError, "Expected pred_type"),
        ({"id": "ident"}, SchemaError, "no id column 'ident'"),
        ({"x": "y"}, DataError, r"Plain feature columns y give 1 value\(s\) per row; the model's input is \(8, 8\)"),
    ],
)
def test_bad_scoring_input_changes_nothing(db, client, trained, table_name, kwargs, error, match):
    options = {"name": "digits_mlp", "progress": False, **kwargs}
    with pytest.raises(error, match=match):
        dasktrain.predict_table(db, "scoring_models", SOURCE, table_name, **options)
    assert not table_exists(db, table_name) and _staging_tables(db) == []


def test_output_that_exists_needs_replace(db, client, trained, table_name):
    dasktrain.predict_table(db, "scoring_models", SOURCE, table_name, progress=False)
    with pytest.raises(TableExistsError, match="replace=True"):
        dasktrain.predict_table(db, "scoring_models", SOURCE, table_name, progress=False)


def test_x_shape_and_id_problems_in_the_source(db, client, trained, table_name):
    loaders.write_arrays(db, f"{table_name}_small", np.zeros((10, 4, 4), np.uint8))
    with pytest.raises(DataError, match=r"shape \(4, 4\); the model's input is \(8, 8\)"):
        dasktrain.predict_table(db, "scoring_models", f"{table_name}_small", table_name, progress=False)
    with db.cursor() as cur:
        cur.execute(
            f"CREATE TABLE {table_name}_dup AS SELECT * FROM {SOURCE} UNION ALL SELECT * FROM {SOURCE} LIMIT 500"
        )
    with pytest.raises(DataError, match="'id' .* is not unique"):
        dasktrain.predict_table(db, "scoring_models", f"{table_name}_dup", table_name, progress=False)
