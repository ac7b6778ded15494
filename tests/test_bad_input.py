"""Bad input: a clear error naming the problem, before anything is written."""

import numpy as np
import pytest

import dasktrain
import loaders
from dasktrain.errors import DataError, InvalidNameError, SchemaError, TableExistsError
from dasktrain.testing import table_exists


def test_unknown_table(db):
    with pytest.raises(SchemaError, match="'no_such_table' does not exist"):
        dasktrain.read_table(db, "no_such_table")


def test_unknown_column_lists_the_available_ones(db, table_name):
    loaders.write_arrays(db, table_name, np.zeros((3, 2)), [0, 1, 1])
    with pytest.raises(SchemaError, match="no column 'z'. Available columns: id, x, y"):
        dasktrain.read_table(db, table_name, columns=["x", "z"])
    with pytest.raises(SchemaError, match="where= names column 'q'"):
        dasktrain.read_table(db, table_name, where={"q": 1})


def test_empty_table(db, table_name):
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} (id int, x real[])")
    with pytest.raises(DataError, match=f"'{table_name}' is empty"):
        dasktrain.read_table(db, table_name)


@pytest.mark.parametrize("bad", ['im"ages', "images; DROP TABLE x", "my images", "x.y.z"])
def test_bad_table_names_write_nothing(db, bad):
    with pytest.raises(InvalidNameError, match="Invalid table name"):
        loaders.write_arrays(db, bad, np.zeros((2, 2)))
    with pytest.raises(InvalidNameError):
        dasktrain.read_table(db, bad)


def test_length_mismatch_names_both_lengths_and_writes_nothing(db, table_name):
    with pytest.raises(DataError, match="x has 5 rows but y has 4"):
        loaders.write_arrays(db, table_name, np.zeros((5, 2)), np.zeros(4))
    assert not table_exists(db, table_name)


@pytest.mark.parametrize(
    "x, message",
    [
        ([np.zeros(3), np.zeros(4)], "ragged"),
        ([["a", "b"], ["c", "d"]], "dtype <U1"),
        (np.array([{"a": 1}, {"b": 2}]), "dtype object"),
        (np.zeros((0, 3)), "empty"),
        (np.zeros((3, 0)), "hold no values"),
    ],
)
def test_unusable_arrays_are_refused_before_writing(db, table_name, x, message):
    with pytest.raises(DataError, match=message):
        loaders.write_arrays(db, table_name, x)
    assert not table_exists(db, table_name)


def test_bad_ids_are_refused(db, table_name):
    with pytest.raises(DataError, match="duplicate"):
        loaders.write_arrays(db, table_name, np.zeros((3, 2)), ids=[1, 1, 2])
    with pytest.raises(DataError, match="one id per row"):
        loaders.write_arrays(db, table_name, np.zeros((3, 2)), ids=[1, 2])
    assert not table_exists(db, table_name)


def test_an_existing_table_is_kept_unless_replace(db, table_name):
    loaders.write_arrays(db, table_name, np.ones((4, 2)))
    with pytest.raises(TableExistsError, match="if_exists='replace'"):
        loaders.write_arrays(db, table_name, np.zeros((9, 2)))
    assert len(dasktrain.read_table(db, table_name).compute(scheduler="sync")) == 4
    loaders.write_arrays(db, table_name, np.zeros((9, 2)), if_exists="replace")
    assert len(dasktrain.read_table(db, table_name).compute(scheduler="sync")) == 9


def test_a_load_failing_part_way_leaves_the_previous_table_whole(db, table_name):
    loaders.write_arrays(db, table_name, np.ones((4, 2)), segments=2)
    with db.cursor() as cur:  # a stray table where the new load's 6th leaf must go
        cur.execute(f"CREATE TABLE {table_name}_seg5 (a int)")
    with pytest.raises(Exception, match="already exists"):
        loaders.write_arrays(db, table_name, np.zeros((100, 2)), segments=8, if_exists="replace")
    df = dasktrain.read_table(db, table_name).compute(scheduler="sync")
    assert len(df) == 4 and len(dasktrain.segments(db, table_name)) == 2
    assert not table_exists(db, f"{table_name}_seg7")


def test_a_load_failing_during_copy_leaves_no_table(db, table_name, monkeypatch):
    from dasktrain.io import _pgbinary
    from loaders import _write

    sent = []

    def encode_then_fail(specs, data):
        if sent:
            raise OSError("simulated failure after the first chunk was sent")
        sent.append(len(data["id"]))
        return _pgbinary.encode_rows(specs, data)

    monkeypatch.setattr(_write, "_CHUNK_BYTES", 1000)
    monkeypatch.setattr(_write._pgbinary, "encode_rows", encode_then_fail)
    with pytest.raises(OSError, match="simulated failure"):
        _write.write_arrays(db, table_name, np.zeros((500, 10)))
    assert sent and sent[0] < 500
    assert not table_exists(db, table_name) and not table_exists(db, f"{table_name}_summary")
