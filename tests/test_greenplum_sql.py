"""Greenplum code paths, run against PostgreSQL with Greenplum's catalog simulated.

A live Greenplum cannot run here. These tests run the Greenplum dialect's real queries on a
schema that holds a ``gp_segment_configuration`` table and a data table with a
``gp_segment_id`` column, so the SQL we build is executed, not just inspected.
"""

import uuid

import psycopg2.extensions
import pytest
from psycopg2 import sql

import dasktrain
from dasktrain._names import TableName
from dasktrain.io._database import Database
from dasktrain.io._dialect import GREENPLUM, Dialect
from dasktrain.io._read import _placements
from loaders._write import create_table_sql


@pytest.fixture
def greenplum(db):
    schema = f"gpsim_{uuid.uuid4().hex[:8]}"
    with db.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        cur.execute(
            sql.SQL(
                "CREATE TABLE {}.gp_segment_configuration (content int, role char, hostname text);"
                "INSERT INTO {}.gp_segment_configuration VALUES "
                "(-1, 'p', 'coordinator'), (0, 'p', 'localhost'), (1, 'p', '127.0.0.1'), "
                "(2, 'p', '10.255.255.1'), (0, 'm', 'mirror-host');"
                "CREATE TABLE {}.images AS SELECT g AS id, ARRAY[g, -g]::real[] AS x, g % 3 AS gp_segment_id "
                "FROM generate_series(0, 299) g"
            ).format(*[sql.Identifier(schema)] * 3)
        )
    dsn = psycopg2.extensions.make_dsn(db.dsn, options=f"-c search_path={schema},public")
    yield Database(dsn, Dialect(GREENPLUM, 120000))
    with db.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def test_segments_are_the_primary_segments_with_their_hosts(greenplum):
    segs = dasktrain.segments(greenplum, "images")
    assert [s.gp_segment_id for s in segs] == [0, 1, 2]
    assert [s.host for s in segs] == ["localhost", "127.0.0.1", "10.255.255.1"]
    assert [s.rows for s in segs] == [100, 100, 100]


def test_each_partition_reads_its_own_segment_near_its_host(greenplum, client):
    ddf = dasktrain.read_table(greenplum, "images", columns=["id", "x"], client=client)
    assert ddf.npartitions == 3
    for k in range(3):
        part = ddf.partitions[k].compute()
        assert len(part) == 100 and set(part["id"] % 3) == {k}
    placements = _placements(dasktrain.segments(greenplum, "images"), client)
    workers = sorted(client.nthreads())
    assert sorted(placements.workers[0]) == workers and sorted(placements.workers[1]) == workers
    assert placements.workers[2] is None  # no worker on that host: any worker may read it


def test_loader_tables_are_distributed_by_id(greenplum, db):
    statements = create_table_sql(greenplum, TableName(None, "fm"), {"id": "bigint", "x": "bytea"}, 4)
    with db.cursor() as cur:
        text = [s.as_string(cur.connection) for s in statements]
    assert text == ['CREATE TABLE "fm" ("id" bigint NOT NULL, "x" bytea NOT NULL) DISTRIBUTED BY (id)']


def test_segment_predicate_is_composed_not_formatted(db):
    seg = dasktrain.Segment(0, 1, "h", TableName("s", "t"), gp_segment_id=3)
    with db.cursor() as cur:
        assert seg.predicate().as_string(cur.connection) == "gp_segment_id = 3"
