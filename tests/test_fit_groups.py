"""fit_groups: one model per group, trained where the group's rows were gathered once; scored by group."""

import numpy as np
import pytest
from helpers import COMPILE, mlp
from psycopg2 import sql

import dasktrain
import loaders
from dasktrain.errors import DataError, SchemaError
from dasktrain.testing import drop_tables, table_exists

GROUPS = "fit_groups_digits"
# de: ids 2, 3 mod 4 (700 rows: more than max_group_rows, so trained across the segments); fr, big: 350 each.
COUNTRY = "CASE WHEN id % 4 = 0 THEN 'big' WHEN id % 4 = 1 THEN 'fr' ELSE 'de' END"


@pytest.fixture(scope="module")
def grouped(db, digits):
    x, y = digits
    loaders.write_arrays(db, GROUPS, x[:1400], y[:1400], segments=2, if_exists="replace")
    with db.cursor() as cur:
        cur.execute(sql.SQL("ALTER TABLE {} ADD COLUMN country text").format(sql.Identifier(GROUPS)))
        cur.execute(sql.SQL("UPDATE {} SET country = " + COUNTRY).format(sql.Identifier(GROUPS)))
    yield GROUPS
    drop_tables(db, GROUPS)


@pytest.fixture(scope="module")
def groups(db, client, grouped):
    return dasktrain.fit_groups(grouped, mlp(), by="country", x="x", y="y", compile=COMPILE, iterations=3,
                                max_group_rows=500, normalizing_const=16.0, seed=2, db=db, client=client,
                                progress=False)  # fmt: skip


def test_one_model_per_group_trained_on_that_group_only(db, groups):
    table = groups.table().set_index("country")
    assert sorted(table.index) == ["big", "de", "fr"]
    assert table.loc["de", "trained_on"] == "segments" and table.loc["fr", "trained_on"] == "one worker"
    assert dict(table["rows"]) == {"big": 350, "de": 700, "fr": 350}
    assert [h["rows"] for h in groups.group("fr").history] == [350] * 3
    assert groups.group("de").num_segments == 2 and groups.group("de").history[-1]["rows"] == 700
    assert all(groups.group(g).iterations == 3 for g in ("big", "de", "fr"))
    weights = [groups.group(g).weights[0] for g in ("big", "de", "fr")]
    assert not np.array_equal(weights[0], weights[1]) and not np.array_equal(weights[0], weights[2])
    assert table["training_accuracy"].min() > 0.5
    # what trained each: one worker alone (no merging), or fit across the segments with its default strategy
    assert groups.group("fr").strategy.name == "centralized" and groups.group("fr").num_replicas == 1
    assert groups.group("de").strategy.name == "slowmo"
    (name,) = set(table["architecture"])
    assert name.startswith("sequential")  # helpers.mlp() is an unnamed keras.Sequential: Keras numbers its name


def test_a_dask_dataframe_groups_as_its_table_does(db, client, grouped, groups):
    frame = dasktrain.read_table(db, grouped)
    by_frame = dasktrain.fit_groups(frame, mlp(), by="country", x="x", y="y", compile=COMPILE, iterations=1,
                                    max_group_rows=500, normalizing_const=16.0, seed=2, client=client,
                                    progress=False)  # fmt: skip
    table = by_frame.table().set_index("country")
    assert dict(table["rows"]) == dict(groups.table().set_index("country")["rows"])
    assert table.loc["de", "trained_on"] == "segments" and table.loc["fr", "trained_on"] == "one worker"
    assert all(by_frame.group(g).source_table is None and by_frame.group(g).iterations == 1 for g in ("big", "fr"))


def test_saved_group_models_score_each_row_with_its_groups_model(db, client, grouped, groups, table_name):
    dasktrain.save_models(db, table_name, groups, name="per_country")
    with db.cursor() as cur:
        cur.execute(sql.SQL("SELECT group_value FROM {} ORDER BY mst_key").format(sql.Identifier(table_name)))
        assert [r[0] for r in cur.fetchall()] == ["big", "de", "fr"]
    output = table_name + "_scores"
    written = dasktrain.predict_table(db, table_name, grouped, output, by="country", pred_type="prob",
                                      client=client, progress=False)  # fmt: skip
    assert written == 1400 * 10
    with db.cursor() as cur:
        cur.execute(sql.SQL("SELECT id, prob FROM {} WHERE class_value = '3' AND id < 8 ORDER BY id").format(
            sql.Identifier(output)))  # fmt: skip
        stored = dict(cur.fetchall())
    frame = dasktrain.read_table(db, grouped, columns=["id", "x", "country"]).compute().set_index("id")
    for row_id, prob in stored.items():
        row = frame.loc[row_id]
        X, _ = dasktrain.to_arrays(frame.loc[[row_id]].reset_index(), x="x", y=None)
        expected = groups.group(row["country"]).model().predict(X / 16.0, verbose=0)[0, 3]
        assert prob == pytest.approx(float(expected), abs=1e-5)
    drop_tables(db, output)


def test_a_row_of_a_group_without_a_model_fails_and_writes_nothing(db, client, grouped, groups, table_name):
    dasktrain.save_models(db, table_name, groups, name="per_country")
    with db.cursor() as cur:
        cur.execute(sql.SQL("UPDATE {} SET country = 'es' WHERE id = 5").format(sql.Identifier(grouped)))
    try:
        with pytest.raises(DataError, match="country='es' have no model"):
            dasktrain.predict_table(db, table_name, grouped, table_name + "_scores", by="country", client=client,
                                    progress=False)  # fmt: skip
        assert not table_exists(db, table_name + "_scores")
    finally:
        with db.cursor() as cur:
            cur.execute(sql.SQL("UPDATE {} SET country = 'fr' WHERE id = 5").format(sql.Identifier(grouped)))


def test_bad_groupings_are_refused(db, grouped, trained):
    with pytest.raises(SchemaError, match="no column 'region'"):
        dasktrain.fit_groups(grouped, mlp(), by="region", x="x", y="y", compile=COMPILE, iterations=1, db=db)
    with pytest.raises(DataError, match="also a feature or the label"):
        dasktrain.fit_groups(grouped, mlp(), by="y", x="x", y="y", compile=COMPILE, iterations=1, db=db)
    with pytest.raises(DataError, match=r"group country='\w+' has labels from 0 to 9, outside the model's 5 classes"):
        dasktrain.fit_groups(grouped, mlp(classes=5), by="country", x="x", y="y", compile=COMPILE, iterations=1,
                             db=db, progress=False)  # fmt: skip
    with pytest.raises(SchemaError, match="holds no models per group"):
        dasktrain.predict_table(db, "scoring_models", grouped, "never_written", by="country")
