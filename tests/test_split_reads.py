"""A table with fewer segments than training workers is read in more, smaller reads (SegmentReads.at_least)."""

import logging

import numpy as np
import pandas as pd
import pytest

import loaders
from dasktrain._names import TableName
from dasktrain.io._database import Database
from dasktrain.io._dialect import GREENPLUM, Dialect
from dasktrain.io._read import SegmentReads, plan_reads
from dasktrain.io._segment_reader import SegmentReader
from dasktrain.io._segments import Segment, split_blocks


def _ids(reads) -> list[int]:
    return reads.frame()["id"].compute().tolist()


def _plain_table(db, name: str, rows: int = 5000) -> None:
    with db.cursor() as cur:  # about 60 rows to a block: 5,000 rows span some 80 blocks
        cur.execute(f"CREATE TABLE {name} AS SELECT g AS id, repeat('x', 100) AS pad FROM generate_series(1, {rows}) g")
        cur.execute(f"ANALYZE {name}")


@pytest.mark.parametrize("where", [None, "id % 3 <> 1"])
def test_two_hash_leaves_split_into_at_least_five_reads_of_the_same_rows(db, client, table_name, where):
    loaders.write_arrays(db, table_name, np.random.random((3000, 16)).astype(np.float32), segments=2)
    with db.cursor() as cur:
        cur.execute(f"ANALYZE {table_name}")
    reads = plan_reads(db, table_name, columns=["id", "x"], where=where)
    assert len(reads.parts) == 2
    split = reads.at_least(5)
    assert len(split.parts) == 6  # ceil(5 / 2) = 3 block ranges of each leaf
    assert [part[0] for part in split.parts] == [seg.id for seg in split.segments] == list(range(6))
    assert {seg.relation for seg in split.segments} == {seg.relation for seg in reads.segments}
    for leaf in (split.segments[:3], split.segments[3:]):  # each leaf cut end to end, half-open, its last open
        assert leaf[0].blocks[0] == 0 and leaf[-1].blocks[1] is None and len({s.relation for s in leaf}) == 1
        assert all(a.blocks[1] == b.blocks[0] for a, b in zip(leaf, leaf[1:], strict=False))
    assert sum(seg.rows for seg in split.segments) == sum(seg.rows for seg in reads.segments) == 3000
    assert split.reader is reads.reader and split.reader.snapshot_id is not None and split.held is reads.held

    unsplit = _ids(reads)
    ids = _ids(split)
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(unsplit)
    expected = [i for i in range(3000) if where is None or i % 3 != 1]
    assert sorted(ids) == expected
    # Cut where the rows are, not in the empty blocks PostgreSQL 16's COPY adds to a table by the dozen.
    assert min(split.frame().map_partitions(len).compute().tolist()) > len(expected) / 6 / 2


def test_a_plain_table_read_as_one_block_range_splits_into_four_in_one_snapshot(db, client, table_name):
    _plain_table(db, table_name)
    reads = plan_reads(db, table_name, columns=["id"], npartitions=1)
    assert len(reads.parts) == 1 and reads.reader.snapshot_id is None  # one read needs no shared snapshot
    split = reads.at_least(4)
    assert len(split.parts) == 4
    blocks = [seg.blocks for seg in split.segments]
    assert blocks[0][0] == 0 and blocks[-1][1] is None
    assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:], strict=False))  # half-open, end to end
    assert split.reader.snapshot_id is not None  # its four reads see one state of the table
    with db.cursor() as cur:  # rows written after the split: in the last, open-ended range, but not in its snapshot
        cur.execute(f"INSERT INTO {table_name} SELECT g, 'y' FROM generate_series(5001, 6000) g")
    ids = _ids(split)
    assert len(ids) == len(set(ids)) and sorted(ids) == list(range(1, 5001))
    assert min(split.frame().map_partitions(len).compute().tolist()) > 5000 / 4 / 2


def test_a_plain_table_cut_in_block_ranges_cuts_each_again(db, client, table_name):
    _plain_table(db, table_name)
    reads = plan_reads(db, table_name, columns=["id"], npartitions=2)
    split = reads.at_least(5)
    assert len(split.parts) == 6
    assert split.segments[2].blocks[1] == reads.segments[0].blocks[1] == split.segments[3].blocks[0]
    assert split.reader is reads.reader
    ids = _ids(split)
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(_ids(reads)) == list(range(1, 5001))


def test_enough_reads_already_returns_the_same_plan(db, table_name):
    loaders.write_arrays(db, table_name, np.zeros((40, 2), np.float32), segments=3)
    reads = plan_reads(db, table_name)
    assert reads.at_least(3) is reads and reads.at_least(1) is reads
    for bad in (0, -2, 2.5, True):
        with pytest.raises(ValueError, match=f"n={bad!r}"):
            reads.at_least(bad)


def test_a_view_is_read_whole_and_says_why(db, table_name, caplog):
    _plain_table(db, table_name, rows=500)
    with db.cursor() as cur:
        cur.execute(f"CREATE VIEW {table_name}_v AS SELECT * FROM {table_name}")
    try:
        reads = plan_reads(db, f"{table_name}_v", columns=["id"])
        with caplog.at_level(logging.INFO, logger="dasktrain"):
            assert reads.at_least(4) is reads
        assert "1 read(s), fewer than the 4 training workers" in caplog.text and "views" in caplog.text
    finally:
        with db.cursor() as cur:
            cur.execute(f"DROP VIEW IF EXISTS {table_name}_v")


@pytest.mark.parametrize(
    "dialect, segment, part, why",
    [
        (GREENPLUM, {"gp_segment_id": 0, "host": "sdw1"}, (None, object()), "one endpoint per segment"),
        (GREENPLUM, {"gp_segment_id": None, "host": None}, (None, None), "replicated, external or a view"),
    ],
)
def test_retrieve_endpoints_and_replicated_tables_are_read_whole(caplog, dialect, segment, part, why):
    """Decided before any query: no server needed."""
    db = Database("host=nowhere", Dialect(dialect, 120012 if dialect == GREENPLUM else 160000))
    table = TableName(None, "images")
    reads = SegmentReads(
        SegmentReader(db.dsn, [], "images"), [(0, "COPY ...", *part)], pd.DataFrame(), None, None,
        [Segment(0, 100, relation=table, **segment)], db=db, segment_query=lambda seg: None, snapshot=True,
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="dasktrain"):
        assert reads.at_least(3) is reads
    assert "images: 1 read(s), fewer than the 3 training workers" in caplog.text and why in caplog.text


def test_block_ranges_split_into_half_open_pieces_that_cover_them_once():
    assert split_blocks((0, 10), 10, 100, 3) == [((0, 3), 30), ((3, 6), 30), ((6, 10), 40)]
    assert split_blocks((4, None), 10, 60, 3) == [((4, 6), 20), ((6, 8), 20), ((8, None), 20)]
    assert split_blocks((4, None), 4, 7, 3) == [((4, None), 7)]  # nothing known past block 4: whole
    assert split_blocks((3, 5), 100, 9, 4) == [((3, 4), 4), ((4, 5), 5)]  # at most one piece per block
    assert split_blocks((0, None), 0, 0, 4) == [((0, None), 0)]  # an empty leaf
    for start, stop, pages, rows, k in [(0, None, 97, 1001, 7), (13, 50, 80, 333, 5), (20, None, 21, 5, 9)]:
        pieces = split_blocks((start, stop), pages, rows, k)
        assert pieces[0][0][0] == start and pieces[-1][0][1] == stop
        assert all(a[0][1] == b[0][0] and a[0][0] < a[0][1] for a, b in zip(pieces, pieces[1:], strict=False))
        assert sum(r for _, r in pieces) == rows and all(r >= 0 for _, r in pieces)
    leaf = Segment(2, 90, None, "t_seg2")
    assert [(s.blocks, s.rows, s.relation) for s in leaf.split(9, 3)] == [
        ((0, 3), 30, "t_seg2"), ((3, 6), 30, "t_seg2"), ((6, None), 30, "t_seg2"),
    ]  # fmt: skip
    assert leaf.split(1, 3) == [leaf]


def test_a_greenplum_segment_shares_its_rows_by_a_hash_of_ctid(db):
    seg = Segment(2, 10, "sdw1", TableName(None, "t"), gp_segment_id=2, address="sdw1", port=6002)
    shares = seg.shares(3)
    assert [s.share for s in shares] == [(0, 3), (1, 3), (2, 3)] and sum(s.rows for s in shares) == 10
    assert {(s.gp_segment_id, s.host, s.port) for s in shares} == {(2, "sdw1", 6002)}  # read where it lies
    assert seg.shares(1) == [seg]
    with db.cursor() as cur:
        whole, local = (shares[1].predicate(local=on).as_string(cur.connection) for on in (False, True))
    assert whole == "gp_segment_id = 2 AND (hashtext(ctid::text) & 2147483647) % 3 = 1"
    assert local == "(hashtext(ctid::text) & 2147483647) % 3 = 1"  # on its own server, every row is its own
