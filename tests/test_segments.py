"""Segment listing for hash-partitioned, externally partitioned and plain tables."""

import numpy as np
import pytest

import dasktrain
import loaders
from dasktrain.io._segments import block_ranges


@pytest.mark.parametrize("n", [1, 3, 4])
def test_loader_tables_have_one_segment_per_hash_leaf(db, client, table_name, n):
    loaders.write_arrays(db, table_name, np.zeros((400, 3), np.float32), segments=n)
    segs = dasktrain.segments(db, table_name)
    assert len(segs) == n
    assert sum(s.rows for s in segs) == 400
    assert [s.relation.name for s in segs] == [f"{table_name}_seg{k}" for k in range(n)]
    ddf = dasktrain.read_table(db, table_name)
    assert ddf.npartitions == n
    sizes = ddf.map_partitions(len).compute().tolist()
    assert sizes == [s.rows for s in segs]


def test_an_existing_range_partitioned_table_uses_its_leaves(db, client, table_name):
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} (id int, v real[]) PARTITION BY RANGE (id)")
        for k, (lo, hi) in enumerate([(0, 100), (100, 250), (250, 1000)]):
            cur.execute(f"CREATE TABLE {table_name}_p{k} PARTITION OF {table_name} FOR VALUES FROM ({lo}) TO ({hi})")
        cur.execute(f"INSERT INTO {table_name} SELECT g, ARRAY[g, g * 2]::real[] FROM generate_series(0, 399) g")
        cur.execute(f"ANALYZE {table_name}")
    segs = dasktrain.segments(db, table_name)
    assert [s.rows for s in segs] == [100, 150, 150]
    ddf = dasktrain.read_table(db, table_name)
    assert ddf.map_partitions(len).compute().tolist() == [100, 150, 150]


def test_a_plain_table_is_cut_into_block_ranges_that_cover_every_row_once(db, client, table_name):
    with db.cursor() as cur:
        cur.execute(
            f"CREATE TABLE {table_name} AS SELECT g AS id, g::float8 * 0.5 AS v FROM generate_series(1, 20000) g"
        )
    segs = dasktrain.segments(db, table_name, n=5)
    assert len(segs) == 5 and segs[-1].blocks[1] is None
    ddf = dasktrain.read_table(db, table_name, npartitions=5)
    assert ddf.npartitions == 5
    ids = ddf["id"].compute()
    assert sorted(ids.tolist()) == list(range(1, 20001))
    assert min(ddf.map_partitions(len).compute().tolist()) > 0


def test_plain_tables_default_to_one_segment_per_worker(db, client, table_name):
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} AS SELECT g AS id FROM generate_series(1, 20000) g")
    assert len(dasktrain.segments(db, table_name)) == len(client.nthreads()) == 2


def test_block_ranges_are_balanced_and_open_at_the_end():
    ranges = block_ranges(100, 1000.0, 4)
    assert [r[0] for r in ranges] == [(0, 25), (25, 50), (50, 75), (75, None)]
    assert sum(r[1] for r in ranges) == 1000
    assert block_ranges(2, 10.0, 8) == [((0, 1), 5), ((1, None), 5)]
    assert block_ranges(0, 0.0, 4) == [((0, None), 0)]


def test_bad_segment_counts_are_refused(db, table_name):
    loaders.write_arrays(db, table_name, np.zeros((4, 1)))
    with pytest.raises(dasktrain.errors.DataError, match="n=0"):
        dasktrain.segments(db, table_name, n=0)


def test_exact_counts_each_segment_where_the_catalog_only_estimates(db, table_name, capsys):
    from dasktrain import cli

    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE {table_name} (id int, v real[]) PARTITION BY RANGE (id)")
        for k, (lo, hi) in enumerate([(0, 100), (100, 1000)]):
            cur.execute(f"CREATE TABLE {table_name}_p{k} PARTITION OF {table_name} FOR VALUES FROM ({lo}) TO ({hi})")
        cur.execute(f"INSERT INTO {table_name} SELECT g, ARRAY[g]::real[] FROM generate_series(0, 299) g")
    assert [s.rows for s in dasktrain.segments(db, table_name)] == [0, 0]  # never analyzed
    assert [s.rows for s in dasktrain.segments(db, table_name, exact=True)] == [100, 200]
    assert cli.main(["segments", table_name, "--dsn", db.dsn, "--exact"]) == 0
    assert [line.split()[1] for line in capsys.readouterr().out.splitlines()[1:]] == ["100", "200"]
