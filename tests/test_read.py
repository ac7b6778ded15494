"""Reading MADlib-style array columns, plain numeric columns, and filtered reads."""

import numpy as np
import pytest

import dasktrain
from dasktrain.io._tensor_column import series_to_numpy


@pytest.fixture
def madlib_table(db, table_name):
    with db.cursor() as cur:
        cur.execute(
            f"""CREATE TABLE {table_name} AS SELECT g AS id,
                ARRAY[g, g + 0.5, g + 0.25]::real[] AS r,
                ARRAY[[g, -g], [2 * g, 3]]::double precision[] AS d,
                ARRAY[g % 7, 1]::smallint[] AS s,
                ARRAY[g, g * 1000]::integer[] AS i,
                ARRAY[g, 2]::numeric[] AS n,
                (g % 3)::smallint AS label, g * 0.5 AS half, (g / 3.0)::numeric(10, 4) AS price,
                g % 2 = 0 AS even, 'row ' || g AS note
            FROM generate_series(1, 3000) g"""
        )
    return table_name


def test_madlib_array_and_plain_columns_read_exactly(db, client, madlib_table):
    ddf = dasktrain.read_table(db, madlib_table)
    df = ddf.compute().sort_values("id").reset_index(drop=True)
    g = np.arange(1, 3001)
    assert np.array_equal(series_to_numpy(df["r"]), np.stack([g, g + 0.5, g + 0.25], 1).astype(np.float32))
    d = series_to_numpy(df["d"])
    assert d.shape == (3000, 2, 2) and d.dtype == np.float64
    assert np.array_equal(d[:, 0, 1], -g) and np.array_equal(d[:, 1, 0], 2 * g)
    assert series_to_numpy(df["s"]).dtype == np.int16 and np.array_equal(series_to_numpy(df["s"])[:, 0], g % 7)
    assert np.array_equal(series_to_numpy(df["i"])[:, 1], g * 1000)
    assert np.array_equal(series_to_numpy(df["n"])[:, 0], g.astype(float))
    assert df["label"].dtype == np.int16 and np.array_equal(df["label"], g % 3)
    assert np.array_equal(df["half"], g * 0.5)
    assert np.allclose(df["price"], np.round(g / 3.0, 4))
    assert np.array_equal(df["even"], g % 2 == 0)
    assert df["note"].iloc[4] == "row 5"


def test_columns_subset_and_where_mapping(db, client, madlib_table):
    ddf = dasktrain.read_table(db, madlib_table, columns=["id", "r", "label"], where={"label": [0, 2]})
    df = ddf.compute()
    assert list(df.columns) == ["id", "r", "label"]
    assert set(df["label"]) == {0, 2} and len(df) == 2000
    with pytest.raises(dasktrain.errors.DataError, match="No row"):
        dasktrain.read_table(db, madlib_table, columns=["id"], where={"note": "row 7; DROP TABLE x"})
    # mappings are parameterised: a quote in a value is just a value
    with pytest.raises(dasktrain.errors.DataError, match="No row"):
        dasktrain.read_table(db, madlib_table, where={"note": "it's"})


def test_where_string_is_a_trusted_predicate(db, client, madlib_table):
    df = dasktrain.read_table(db, madlib_table, columns=["id"], where="id <= 10 AND half > 1").compute()
    assert sorted(df["id"]) == list(range(3, 11))


def test_tabular_to_arrays_stacks_plain_columns(db, client, madlib_table):
    df = dasktrain.read_table(db, madlib_table, columns=["id", "half", "price", "label"]).compute()
    X, y = dasktrain.to_arrays(df, x=["half", "price"], y="label")
    assert X.shape == (len(df), 2) and X.dtype == np.float32
    assert np.array_equal(y, df["label"].to_numpy())


def test_reading_again_sees_changed_rows_even_while_the_first_read_is_held(db, client, table_name):
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} AS SELECT g AS id FROM generate_series(1, 10) g")
    first = dasktrain.read_table(db, table_name, npartitions=1).persist()
    assert len(first) == 10
    with db.cursor() as cur:
        cur.execute(f"INSERT INTO {table_name} VALUES (11)")
    assert len(dasktrain.read_table(db, table_name, npartitions=1).compute()) == 11


def test_clients_gather_straight_from_the_workers_unless_configured_otherwise():
    """Through the scheduler, read_table(...).compute() took twice as long (benchmarks/read_throughput.py)."""
    import os
    import subprocess
    import sys

    code = "import dasktrain, dask; print(dask.config.get('distributed.client.direct-to-workers'))"
    env = {k: v for k, v in os.environ.items() if "DIRECT_TO_WORKERS" not in k}
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout.strip() == "True"
    )
    env["DASK_DISTRIBUTED__CLIENT__DIRECT_TO_WORKERS"] = "False"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout.strip() == "False"
    )
