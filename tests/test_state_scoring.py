"""Scoring reports what happened (issue 22): real booleans only, no row dropped for a NULL group, every class
of the model scored, and no compiled model borrowed from another stored model."""

import dataclasses

import numpy as np
import pytest
from helpers import COMPILE, mlp
from psycopg2 import sql

import dasktrain
import loaders
from dasktrain.errors import DataError
from dasktrain.testing import table_exists

SOURCE = "fit_digits_test"


@pytest.mark.parametrize("keyword", ["replace", "skip_nonfinite"])
@pytest.mark.parametrize("value", ["false", "no", 0, 1, None])
def test_predict_table_takes_real_booleans_only(db, trained, table_name, keyword, value):
    with pytest.raises(DataError, match=rf"Expected {keyword}=True or False\. Received: {keyword}="):
        dasktrain.predict_table(db, "scoring_models", SOURCE, table_name, progress=False, **{keyword: value})
    assert not table_exists(db, table_name)


@pytest.fixture
def no_nines(db, digits, table_name):
    """200 digits whose labels never reach 9 (the 9s relabelled 8), a country for 3 of every 4 rows, the rest NULL."""
    x, y = digits
    loaders.write_arrays(db, table_name, x[:200], np.minimum(y[:200], 8), segments=2)
    with db.cursor() as cur:
        cur.execute(sql.SQL("ALTER TABLE {} ADD COLUMN country text").format(sql.Identifier(table_name)))
        cur.execute(sql.SQL("UPDATE {} SET country = CASE WHEN id % 2 = 0 THEN 'fr' ELSE 'de' END").format(
            sql.Identifier(table_name)))  # fmt: skip
    return table_name


def test_a_model_trained_without_a_class_scores_all_its_outputs(db, client, no_nines):
    result = dasktrain.fit(no_nines, mlp(), x="x", y="y", compile=COMPILE, iterations=1, db=db, client=client,
                           normalizing_const=16.0, progress=False)  # fmt: skip
    assert result.class_values == list(range(10))
    dasktrain.save_model(db, f"{no_nines}_models", result, name="m")
    output = f"{no_nines}_out"
    assert dasktrain.predict_table(db, f"{no_nines}_models", no_nines, output, pred_type=10, progress=False) == 2000
    assert dasktrain.evaluate(db, f"{no_nines}_models", no_nines, progress=False)["rows"] == 200
    scores = dasktrain.predict(result, dasktrain.read_table(db, no_nines), x="x").compute()
    assert set(scores["class_value"]) <= {str(i) for i in range(10)} and len(scores) == 200
    # A model saved before the fix recorded the 9 labels seen: it scores as well.
    with db.cursor() as cur:
        cur.execute(sql.SQL("UPDATE {} SET class_values = %s, num_classes = 9").format(
            sql.Identifier(f"{no_nines}_models_summary")), ([str(i) for i in range(9)],))  # fmt: skip
    assert dasktrain.evaluate(db, f"{no_nines}_models", no_nines, progress=False)["rows"] == 200


def test_rows_without_a_group_are_refused_by_fit_groups_and_predict_table(db, client, no_nines):
    kw = dict(by="country", x="x", y="y", compile=COMPILE, iterations=1, normalizing_const=16.0, db=db, client=client,
              progress=False)  # fmt: skip
    groups = dasktrain.fit_groups(no_nines, mlp(), **kw)
    dasktrain.save_models(db, f"{no_nines}_groups", groups, name="g")
    with db.cursor() as cur:
        cur.execute(sql.SQL("UPDATE {} SET country = NULL WHERE id % 4 = 1").format(sql.Identifier(no_nines)))
    with pytest.raises(DataError, match=r"fit_groups: 50 rows have no country \(NULL\)"):
        dasktrain.fit_groups(no_nines, mlp(), **kw)
    with pytest.raises(DataError, match=r"fit_groups: 50 rows have no country \(NULL\)"):
        dasktrain.fit_groups(dasktrain.read_table(db, no_nines), mlp(), **{**kw, "db": None})
    with pytest.raises(DataError, match=rf"50 rows of '{no_nines}' have no country \(NULL\)"):
        dasktrain.predict_table(db, f"{no_nines}_groups", no_nines, f"{no_nines}_out", by="country",
                                client=client, progress=False)  # fmt: skip
    assert not table_exists(db, f"{no_nines}_out")


def test_evaluate_compiles_each_stored_model_with_its_own_metrics(db, client, trained, table_name):
    dasktrain.save_model(db, table_name, trained, name="accuracy")
    other = {**trained.compile_params, "metrics": ["sparse_top_k_categorical_accuracy"]}
    dasktrain.save_model(db, table_name, dataclasses.replace(trained, compile_params=other), name="top_k")
    first = dasktrain.evaluate(db, table_name, SOURCE, name="accuracy", client=client, progress=False)
    second = dasktrain.evaluate(db, table_name, SOURCE, name="top_k", client=client, progress=False)
    assert "accuracy" in first and "sparse_top_k_categorical_accuracy" not in first
    assert "sparse_top_k_categorical_accuracy" in second and "accuracy" not in second
