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
                "FROM generate_series(0, 299) g;"
                # Replicated tables, views and external tables have no gp_segment_id column to split by.
                "CREATE TABLE {}.labels AS SELECT g AS id, 'class ' || g AS name FROM generate_series(0, 9) g;"
                "CREATE VIEW {}.small_images AS SELECT id, x FROM {}.images WHERE id < 30;"
                "CREATE TABLE {}.gp_distribution_policy (localoid oid, policytype char);"
                "ANALYZE {}.images"
            ).format(*[sql.Identifier(schema)] * 8)
        )
        cur.execute(
            sql.SQL(
                "INSERT INTO {}.gp_distribution_policy VALUES (to_regclass(%s), 'p'), (to_regclass(%s), 'r')"
            ).format(sql.Identifier(schema)),
            (f"{schema}.images", f"{schema}.labels"),
        )
    dsn = psycopg2.extensions.make_dsn(db.dsn, options=f"-c search_path={schema},public")
    yield Database(dsn, Dialect(GREENPLUM, 120000))
    with db.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def test_segments_are_the_primary_segments_with_their_hosts(greenplum):
    segs = dasktrain.segments(greenplum, "images", exact=True)
    assert [s.gp_segment_id for s in segs] == [0, 1, 2]
    assert [s.host for s in segs] == ["localhost", "127.0.0.1", "10.255.255.1"]
    assert [s.rows for s in segs] == [100, 100, 100]


def test_segments_estimate_from_the_catalog_without_scanning_the_table(greenplum):
    with greenplum.cursor() as cur:  # a count would see 301 rows; the catalog, analyzed before, still 300
        cur.execute("INSERT INTO images VALUES (300, ARRAY[1, 2]::real[], 0)")
    assert [s.rows for s in dasktrain.segments(greenplum, "images")] == [100, 100, 100]
    assert [s.rows for s in dasktrain.segments(greenplum, "images", exact=True)] == [101, 100, 100]


def test_replicated_tables_and_views_are_read_whole_through_the_coordinator(greenplum, client):
    for table, rows in (("labels", 10), ("small_images", 30)):
        (segment,) = dasktrain.segments(greenplum, table)
        assert segment.gp_segment_id is None and segment.predicate() is None
        frame = dasktrain.read_table(greenplum, table, client=client)
        assert frame.npartitions == 1 and len(frame.compute()) == rows


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
    assert text == ['CREATE TABLE "fm" ("id" bigint NOT NULL, "x" bytea NOT NULL) DISTRIBUTED BY ("id")']


def test_segment_predicate_is_composed_not_formatted(db):
    seg = dasktrain.Segment(0, 1, "h", TableName("s", "t"), gp_segment_id=3)
    with db.cursor() as cur:
        assert seg.predicate().as_string(cur.connection) == "gp_segment_id = 3"


def test_every_table_dasktrain_creates_has_a_deliberate_distribution(greenplum, db):
    """Metadata rows are copied to every segment; keyed tables are spread by their key; PostgreSQL gets neither."""
    from dasktrain.io._dialect import POSTGRESQL
    from dasktrain.io._staging import Staging
    from dasktrain.models._architectures import create_sql as architecture_sql
    from dasktrain.models._state_table import create_sql as state_sql
    from dasktrain.score._evaluate import output_table_sql
    from loaders._write import summary_table_sql

    staging = Staging.new(TableName(None, "scores"))
    columns = sql.SQL("id bigint")

    def statements(dialect):
        return [
            architecture_sql(dialect, TableName(None, "arch")),
            state_sql(dialect, TableName(None, "models_fit_state")),
            *staging.create_sql(dialect, columns, "id"),
            output_table_sql(dialect, TableName(None, "eval_out")),
            summary_table_sql(dialect, TableName(None, "images_summary")),
        ]

    def clauses(dialect, cur):
        texts = [s.as_string(cur.connection) for s in statements(dialect)]
        return [text[text.index(" DISTRIBUTED") :] if " DISTRIBUTED" in text else "" for text in texts]

    with db.cursor() as cur:
        on_greenplum, on_postgresql = clauses(greenplum.dialect, cur), clauses(Dialect(POSTGRESQL, 160000), cur)
        assert on_greenplum == [
            ' DISTRIBUTED BY ("model_id")',
            ' DISTRIBUTED BY ("name")',
            ' DISTRIBUTED BY ("id")',
            ' DISTRIBUTED BY ("segment")',
            " DISTRIBUTED REPLICATED",
            " DISTRIBUTED REPLICATED",
        ]
        assert on_postgresql == [""] * 6
        from dasktrain.io._segments import greenplum_segment_count

        with greenplum.cursor() as gp:
            assert greenplum_segment_count(gp) == 3  # primaries only: not the coordinator, not mirrors
