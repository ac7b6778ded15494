"""Races: concurrent first writers, and a table updated while it is being read."""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pandas as pd
import pytest
from chaos import architecture_in_process, save_in_process, write_in_process

import dasktrain


def _race(work, db, table):
    """Run ``work(dsn, table, barrier)`` in two fresh processes released at the same moment."""
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(2, mp_context=context) as pool:
        barrier = manager.Barrier(2)
        return [f.result(timeout=120) for f in [pool.submit(work, db.dsn, table, barrier) for _ in range(2)]]


@pytest.mark.slow
@pytest.mark.parametrize("work", [save_in_process, architecture_in_process], ids=["model", "architecture"])
def test_two_first_saves_into_a_new_table_both_succeed_with_distinct_versions(db, table_name, work):
    for trial in range(3):  # before the creation lock, 6 trials out of 6 failed
        assert sorted(_race(work, db, f"{table_name}_{trial}")) == [1, 2]


@pytest.mark.slow
def test_two_first_loads_into_a_new_table_one_wins_one_is_told_it_exists(db, table_name):
    for trial in range(3):
        assert sorted(_race(write_in_process, db, f"{table_name}_{trial}"), key=str) == [10, "TableExistsError"]


def _plain_table(db, name, rows=20_000):
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE {name} (id integer, v integer)")
        cur.execute(f"INSERT INTO {name} SELECT g, 0 FROM generate_series(1, {rows}) g")
        cur.execute(f"ANALYZE {name}")


def _read_while_updating(db, name, **kwargs) -> pd.DataFrame:
    """Read partition 0, update every row (new row versions go to the end of the table), read the rest."""
    ddf = dasktrain.read_table(db, name, npartitions=4, **kwargs)
    parts = [ddf.partitions[0].compute()]
    with db.cursor() as cur:
        cur.execute(f"UPDATE {name} SET v = v + 1")
    parts += [ddf.partitions[k].compute() for k in range(1, 4)]
    return pd.concat(parts)


def test_every_partition_of_one_read_sees_the_same_snapshot(db, client, table_name):
    _plain_table(db, table_name)
    frame = _read_while_updating(db, table_name)
    assert len(frame) == 20_000 and frame["id"].is_unique
    assert (frame["v"] == 0).all()  # the table as it was when read_table was called


def test_without_the_snapshot_a_concurrent_update_is_read_twice(db, client, table_name):
    _plain_table(db, table_name)
    frame = _read_while_updating(db, table_name, snapshot=False)
    assert len(frame) > 20_000  # the documented per-segment behaviour: rows seen before and after the update


def test_the_snapshot_outlives_its_frame_long_enough_for_a_persisted_read(db, table_name):
    """``read_table(...).persist()`` drops the frame before the workers read: the snapshot must stay a while."""
    import gc
    import time

    from dasktrain.io._snapshot import ExportedSnapshot, use_snapshot

    snapshot = ExportedSnapshot.export(db)
    snapshot._close.detach()  # this test's snapshot gets a grace of its own
    snapshot = ExportedSnapshot(snapshot._conn, snapshot.id, grace=1.0)
    snapshot_id = snapshot.id
    del snapshot
    gc.collect()

    def importable() -> bool:
        conn = db.connection()
        try:
            return use_snapshot(conn, snapshot_id)
        finally:
            conn.close()

    assert importable()  # the frame is gone, the snapshot is not yet
    time.sleep(2.0)
    assert not importable()  # and then it is released


def test_a_persisted_read_sees_one_snapshot(db, client, table_name):
    _plain_table(db, table_name)
    frame = dasktrain.read_table(db, table_name, npartitions=4).persist()
    with db.cursor() as cur:
        cur.execute(f"UPDATE {table_name} SET v = v + 1")
    result = frame.compute()
    assert len(result) == 20_000 and result["id"].is_unique
