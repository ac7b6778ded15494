"""write_arrays -> read_table on a real server and a real LocalCluster: exact round trips."""

import numpy as np
import pytest

import dasktrain
import loaders
from dasktrain.io._tensor_column import series_to_numpy


def _read_sorted(db, table, **kwargs):
    return dasktrain.read_table(db, table, **kwargs).compute().sort_values("id").reset_index(drop=True)


@pytest.mark.parametrize(
    "dtype", ["uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "float16", "float32", "float64", "bool"]
)
def test_arrays_come_back_bytes_equal_for_every_dtype(db, client, table_name, dtype):
    rng = np.random.default_rng(1)
    x = (rng.random((50, 4, 3)) * 100).astype(dtype)
    y = rng.integers(0, 10, 50).astype(dtype)
    loaders.write_arrays(db, table_name, x, y, segments=3)
    df = _read_sorted(db, table_name)
    assert df["id"].tolist() == list(range(50))
    back = series_to_numpy(df["x"])
    assert back.dtype == x.dtype and back.shape == x.shape
    assert back.tobytes() == x.tobytes()
    assert df["y"].dtype == y.dtype and df["y"].to_numpy().tobytes() == y.tobytes()


def test_given_ids_one_hot_targets_and_1d_features_round_trip(db, client, table_name):
    x = np.random.default_rng(2).normal(size=(30, 5)).astype(">f8")  # big-endian input, too
    y = np.eye(3, dtype=np.float32)[np.arange(30) % 3]
    ids = np.arange(30) * 7 + 1000
    loaders.write_arrays(db, table_name, x, y, ids=ids, segments=2)
    df = _read_sorted(db, table_name)
    assert df["id"].tolist() == ids.tolist()
    X, Y = dasktrain.to_arrays(df, x="x", y="y")
    assert X.shape == (30, 5) and X.dtype == np.float32
    assert np.array_equal(series_to_numpy(df["x"]), x)
    assert Y.shape == (30, 3) and np.array_equal(Y, y)


def test_to_arrays_gives_float32_features_and_integer_labels(db, client, table_name):
    x = np.arange(20 * 6, dtype=np.uint8).reshape(20, 2, 3)
    y = (np.arange(20) % 4).astype(np.uint8)
    loaders.write_arrays(db, table_name, x, y)
    ddf = dasktrain.read_table(db, table_name)
    X, Y = dasktrain.to_arrays(ddf.partitions[0].compute(), x="x", y="y")
    assert X.dtype == np.float32 and X.shape[1:] == (2, 3)
    assert Y.dtype == np.uint8 and len(X) == len(Y) > 0


def test_features_only_tables_have_no_label_column(db, client, table_name):
    loaders.write_arrays(db, table_name, np.ones((10, 2), dtype=np.float32))
    df = _read_sorted(db, table_name)
    assert list(df.columns) == ["id", "x"]
    X, Y = dasktrain.to_arrays(df, x="x", y=None)
    assert Y is None and X.sum() == 20


def test_summary_records_what_madlib_records(db, table_name):
    loaders.write_arrays(db, table_name, np.zeros((6, 2, 2), np.uint8), np.array([0, 1, 2, 0, 1, 2]), segments=2)
    with db.cursor() as cur:
        cur.execute(
            f"SELECT independent_varname, dependent_varname, class_values, num_classes, num_rows, "
            f"num_segments, array_columns FROM {table_name}_summary"
        )
        row = cur.fetchone()
    assert row[:6] == ("x", "y", ["0", "1", "2"], 3, 6, 2)
    assert row[6]["x"] == {"dtype": "|u1", "shape": [2, 2]}
