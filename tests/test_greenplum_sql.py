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
    server = {"host": psycopg2.extensions.parse_dsn(db.dsn).get("host", "localhost")}
    with db.cursor() as cur:
        cur.execute("SHOW port")
        server["port"] = int(cur.fetchone()[0])
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        cur.execute(
            sql.SQL(
                "CREATE TABLE {}.gp_segment_configuration (content int, role char, hostname text, address text, "
                "port int);"
                "INSERT INTO {}.gp_segment_configuration VALUES "
                "(-1, 'p', 'coordinator', 'coordinator', 5432), (0, 'p', 'localhost', %(host)s, %(port)s), "
                "(1, 'p', '127.0.0.1', %(host)s, %(port)s), (2, 'p', '10.255.255.1', %(host)s, %(port)s), "
                "(0, 'm', 'mirror-host', 'mirror-host', 7000);"
                "CREATE TABLE {}.images AS SELECT g AS id, ARRAY[g, -g]::real[] AS x, g %% 3 AS gp_segment_id "
                "FROM generate_series(0, 299) g;"
                # Replicated tables, views and external tables have no gp_segment_id column to split by.
                "CREATE TABLE {}.labels AS SELECT g AS id, 'class ' || g AS name FROM generate_series(0, 9) g;"
                "CREATE VIEW {}.small_images AS SELECT id, x FROM {}.images WHERE id < 30;"
                "CREATE TABLE {}.gp_distribution_policy (localoid oid, policytype char);"
                "ANALYZE {}.images"
            ).format(*[sql.Identifier(schema)] * 8),
            {"host": server["host"], "port": server["port"]},
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


def test_fewer_segments_than_workers_are_read_in_hash_shares_of_each_segment(greenplum):
    """A 3-segment table on 7 training workers: 3 shares per segment, every row read once, on its segment."""
    from dasktrain.io._read import plan_reads

    reads = plan_reads(greenplum, "images", columns=["id"]).at_least(7)
    assert len(reads.parts) == 9 and [s.gp_segment_id for s in reads.segments] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    parts = [reads.frame().partitions[k].compute()["id"] for k in range(9)]
    assert sorted(i for p in parts for i in p) == list(range(300))
    assert all(set(p % 3) <= {seg.gp_segment_id} for p, seg in zip(parts, reads.segments, strict=True))
    assert all(len(p) > 10 for p in parts)  # the hash shares rows out, not all to one piece


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


# -- reads straight from the segments (utility mode) ----------------------------------------------------


@pytest.fixture
def segment_servers(greenplum, db, monkeypatch):
    """Each simulated segment's own "server": a schema holding only that segment's rows, reached by DSN.

    A real segment's utility-mode connection sees its local rows; here ``segment_dsn`` points each
    segment at its schema instead (PostgreSQL knows no gp_role), which is all that differs.
    """
    schemas = [f"gpseg{k}_{uuid.uuid4().hex[:6]}" for k in range(3)]
    with db.cursor() as cur:
        for k, schema in enumerate(schemas):
            local_rows = sql.SQL(
                "CREATE SCHEMA {0}; CREATE TABLE {0}.images AS SELECT g AS id, ARRAY[g, -g]::real[] AS x "
                "FROM generate_series(0, 299) g WHERE g % 3 = {1}"
            )
            cur.execute(local_rows.format(sql.Identifier(schema), sql.Literal(k)))
    from dasktrain.io import _direct

    def simulated_segment_dsn(dsn, segment, dialect):
        return psycopg2.extensions.make_dsn(db.dsn, options=f"-c search_path={schemas[segment.gp_segment_id]}")

    monkeypatch.setattr(_direct, "segment_dsn", simulated_segment_dsn)
    yield schemas
    with db.cursor() as cur:
        for schema in schemas:
            cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def _share_locks(db, table: str) -> int:
    with db.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_locks WHERE relation = to_regclass(%s) AND mode = 'ShareLock' AND granted",
            (table,),
        )
        return cur.fetchone()[0]


def test_direct_reads_go_to_each_segment_under_a_share_lock(greenplum, segment_servers, db, monkeypatch):
    import gc
    import time

    from dasktrain.io._direct import ShareLock

    monkeypatch.setattr(ShareLock, "GRACE", 0.5)  # how long the lock outlives its frame
    schema = psycopg2.extensions.parse_dsn(greenplum.dsn)["options"].split("=")[1].split(",")[0]
    frame = dasktrain.read_table(greenplum, "images", columns=["id", "x"], direct=True)
    assert _share_locks(db, f"{schema}.images") == 1  # writers wait while the frame is alive
    parts = [frame.partitions[k].compute() for k in range(3)]
    assert [len(p) for p in parts] == [100, 100, 100]
    assert [set(p["id"] % 3) for p in parts] == [{0}, {1}, {2}]  # each from its own segment, no predicate
    del frame, parts
    gc.collect()
    time.sleep(1.5)
    assert _share_locks(db, f"{schema}.images") == 0


def test_a_persisted_direct_read_keeps_the_lock_past_its_frame(greenplum, segment_servers, db, client, monkeypatch):
    """``persist()`` drops the frame before the workers read; the lock must still be held for them.

    When the lock goes after that depends on when Dask lets go of the persisted graph (its reader
    holds the lock), which can take minutes: the release itself is tested on a plain frame above,
    and here the test ends the transaction itself.
    """
    import gc

    from distributed import wait

    from dasktrain.io._read import plan_reads

    monkeypatch.setattr("dasktrain.io._read._placements", lambda parts, client: None)  # the lazy path
    schema = psycopg2.extensions.parse_dsn(greenplum.dsn)["options"].split("=")[1].split(",")[0]
    reads = plan_reads(greenplum, "images", columns=["id"], direct=True)
    held = reads.held
    persisted = reads.frame().persist()
    del reads
    gc.collect()
    assert _share_locks(db, f"{schema}.images") == 1
    wait(persisted)
    assert sorted(persisted.compute()["id"]) == list(range(300))
    held.close()
    assert _share_locks(db, f"{schema}.images") == 0


def test_direct_reads_split_in_shares_stay_on_their_segments_under_the_lock(greenplum, segment_servers, db):
    from dasktrain.io._read import plan_reads

    schema = psycopg2.extensions.parse_dsn(greenplum.dsn)["options"].split("=")[1].split(",")[0]
    reads = plan_reads(greenplum, "images", columns=["id"], direct=True).at_least(6)
    assert len(reads.parts) == 6 and all(dsn is not None for _, _, dsn, _ in reads.parts)
    assert reads.held is not None and _share_locks(db, f"{schema}.images") == 1
    parts = [reads.frame().partitions[k].compute()["id"] for k in range(6)]
    assert sorted(i for p in parts for i in p) == list(range(300))
    assert [set(p % 3) for p in parts] == [{0}, {0}, {1}, {1}, {2}, {2}]  # each share on its own segment's server
    reads.held.close()


def test_direct_reads_placed_on_workers_release_the_lock_when_read(greenplum, segment_servers, db, client):
    import time

    schema = psycopg2.extensions.parse_dsn(greenplum.dsn)["options"].split("=")[1].split(",")[0]
    frame = dasktrain.read_table(greenplum, "images", columns=["id"], direct="auto", client=client)
    assert sorted(frame.compute()["id"]) == list(range(300))
    deadline = time.monotonic() + 10
    while _share_locks(db, f"{schema}.images") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _share_locks(db, f"{schema}.images") == 0


def test_auto_reads_through_the_coordinator_when_segments_refuse_and_says_so_once(greenplum, caplog):
    from dasktrain.io import _direct

    _direct._said_once.clear()
    with caplog.at_level("WARNING", logger="dasktrain"):
        for _ in range(2):
            frame = dasktrain.read_table(greenplum, "images", columns=["id"])  # gp_role is unknown here: refused
            assert sorted(frame.compute()["id"]) == list(range(300))
    said = [r.getMessage() for r in caplog.records if "utility-mode" in r.getMessage()]
    assert len(said) == 1 and "reading through the coordinator instead" in said[0]


def test_direct_true_refused_names_the_segment_and_the_fix(greenplum):
    with pytest.raises(dasktrain.errors.DatabaseConnectionError, match=r"segment 0 \(.*\) refused a utility-mode"):
        dasktrain.read_table(greenplum, "images", direct=True)
    with pytest.raises(ValueError, match="direct='auto', True, False, 'retrieve' or 'utility'"):
        dasktrain.read_table(greenplum, "images", direct="yes")


# -- parallel retrieve cursors -------------------------------------------------------------------


@pytest.fixture
def retrieve_catalog(greenplum, db):
    """``gp_get_endpoints()`` in the simulated catalog: the server then offers parallel retrieve cursors.

    PostgreSQL cannot declare one, so each test decides what DECLARE and the endpoints do.
    """
    schema = psycopg2.extensions.parse_dsn(greenplum.dsn)["options"].split("=")[1].split(",")[0]
    with db.cursor() as cur:
        cur.execute(
            sql.SQL(
                "CREATE TABLE {0}.endpoints (gp_segment_id int, hostname text, port int, username text, "
                "auth_token text, endpointname text, cursorname text, state text);"
                # An endpoint without a cursor name belongs to the cursor this session declared.
                "CREATE FUNCTION {0}.gp_get_endpoints() RETURNS SETOF {0}.endpoints LANGUAGE sql AS "
                "'SELECT gp_segment_id, hostname, port, username, auth_token, endpointname, "
                "coalesce(cursorname, (SELECT name FROM pg_cursors LIMIT 1)), state FROM {0}.endpoints'"
            ).format(sql.Identifier(schema))
        )
    return schema


def test_parallel_retrieve_cursors_are_found_in_the_catalog(greenplum, retrieve_catalog):
    from dasktrain.io import _direct
    from dasktrain.io._retrieve import retrieve_schema

    with greenplum.cursor() as cur:
        assert retrieve_schema(cur) == retrieve_catalog
    parts = dasktrain.segments(greenplum, "images")
    assert _direct.plan(greenplum, parts, "auto") == _direct.Route("retrieve", schema=retrieve_catalog)
    assert _direct.plan(greenplum, parts, False) is None
    assert _direct.plan(greenplum, parts, "auto", retrieve=False) is None  # utility refused here: the coordinator


def test_direct_retrieve_without_the_catalog_function_says_how_to_get_it(greenplum):
    with pytest.raises(dasktrain.errors.DatabaseConnectionError, match="CREATE EXTENSION gp_parallel_retrieve_cursor"):
        dasktrain.read_table(greenplum, "images", direct="retrieve")


def test_a_refused_cursor_falls_back_and_reads_every_row(greenplum, retrieve_catalog, caplog):
    """PostgreSQL rejects PARALLEL RETRIEVE CURSOR, as a server that refuses it would: auto reads on."""
    from dasktrain.io import _direct

    _direct._said_once.clear()
    with caplog.at_level("WARNING", logger="dasktrain"):
        frame = dasktrain.read_table(greenplum, "images", columns=["id"])
        assert sorted(frame.compute()["id"]) == list(range(300))
    assert any("refused a parallel retrieve cursor" in r.getMessage() for r in caplog.records)
    with pytest.raises(dasktrain.errors.DatabaseConnectionError, match="refused the cursor"):
        dasktrain.read_table(greenplum, "images", direct="retrieve")


def test_the_cursor_is_declared_for_the_whole_read_and_each_segment_gets_its_endpoint(
    greenplum, retrieve_catalog, db, monkeypatch
):
    """DECLARE runs (as a plain cursor: PostgreSQL has no other) in a held coordinator transaction;
    the catalog's endpoints become the parts' retrieve sessions."""
    from dasktrain.io import _retrieve
    from dasktrain.io._read import plan_reads

    def plain_cursor(name, select):
        return sql.SQL("DECLARE {} CURSOR FOR ").format(sql.Identifier(name)) + select

    monkeypatch.setattr(_retrieve, "declare_sql", plain_cursor)
    with db.cursor() as cur:
        cur.execute(
            sql.SQL(
                "INSERT INTO {}.endpoints SELECT k, 'sdw' || k, 6000 + k, 'ds', 'tk' || k, 'prc_' || k, NULL, 'READY' "
                "FROM generate_series(0, 2) k"
            ).format(sql.Identifier(retrieve_catalog))
        )
    reads = plan_reads(greenplum, "images", columns=["id", "x"], where="id < 100")
    assert isinstance(reads.held, _retrieve.RetrieveCursor)
    with reads.held._conn.cursor() as cur:  # the coordinator transaction the cursor lives in
        cur.execute("SELECT name, statement FROM pg_cursors")
        ((name, statement),) = cur.fetchall()
    assert name == reads.held.name and "CURSOR FOR SELECT" in statement and "WHERE (id < 100)" in statement
    assert "gp_segment_id" not in statement  # one query for all: each segment serves its own share
    endpoints = [part[3] for part in reads.parts]
    assert [e.name for e in endpoints] == ["prc_0", "prc_1", "prc_2"]
    assert [e.schema for e in endpoints] == [retrieve_catalog] * 3
    assert "gp_retrieve_conn=true" in reads.parts[1][2] and "port=6001" in reads.parts[1][2]
    assert "password=tk1" in reads.parts[1][2] and "user=ds" in reads.parts[1][2]
    assert "gp_segment_id" in reads.parts[1][1]  # the coordinator's read, if the endpoint cannot serve it
    reads.held.close()


def test_a_segment_whose_endpoint_cannot_serve_reads_through_the_coordinator(greenplum, retrieve_catalog, db, caplog):
    """A re-read after a worker loss finds its endpoint FINISHED: the coordinator serves the segment."""
    from dasktrain.io._read import plan_reads
    from dasktrain.io._retrieve import Endpoint

    reads = plan_reads(greenplum, "images", columns=["id", "x"], direct=False)
    finished = Endpoint(1, "sdw1", 6001, "ds", "tk", "prc_1", retrieve_catalog)
    with db.cursor() as cur:
        cur.execute(
            sql.SQL("INSERT INTO {}.endpoints VALUES (1, 'sdw1', 6001, 'ds', 'tk', 'prc_1', 'c', 'FINISHED')").format(
                sql.Identifier(retrieve_catalog)
            )
        )
    k, query, _, _ = reads.parts[1]
    with caplog.at_level("WARNING", logger="dasktrain"):
        part = reads.reader((k, query, finished.dsn(greenplum.dsn), finished))
    assert sorted(part["id"] % 3) == [1] * 100
    assert any("its state is FINISHED" in r.getMessage() for r in caplog.records)


def test_retrieved_rows_decode_to_what_a_binary_copy_decodes_to(db, table_name):
    """RETRIEVE answers over the ordinary protocol: the same rows from a SELECT must give the same arrays."""
    import numpy as np

    from dasktrain.io._read import plan_reads
    from dasktrain.io._retrieve import rows_to_columns

    with db.cursor() as cur:
        cur.execute(
            sql.SQL(
                "CREATE TABLE {} (id bigint, v real, a real[], i integer[], s text, b bytea);"
                "INSERT INTO {} SELECT g, CASE WHEN g % 4 = 0 THEN NULL ELSE g / 3.0 END, ARRAY[g, g + 0.5], "
                "ARRAY[[g, -g], [1, 2]], 'row ' || g, decode(lpad(to_hex(g), 4, '0'), 'hex') "
                "FROM generate_series(1, 50) g"
            ).format(sql.Identifier(table_name), sql.Identifier(table_name))
        )
    reads = plan_reads(db, table_name)
    copied = reads.reader(reads.parts[0])
    with db.cursor() as cur:
        cur.execute(sql.SQL("SELECT id, v, a, i, s, b FROM {}").format(sql.Identifier(table_name)))
        columns = rows_to_columns(cur.fetchall(), reads.specs)
    for spec in reads.specs:
        want = copied[spec.name]
        got = columns[spec.name]
        if spec.kind in ("array", "tensor"):
            np.testing.assert_array_equal(np.stack(dasktrain.to_arrays(copied, x=spec.name, y=None)[0]), got)
        else:
            np.testing.assert_array_equal(np.asarray(want.tolist(), dtype=got.dtype), got)
    loaded = dasktrain.io._segment_reader.frame_of(columns, reads.specs)
    assert list(loaded.columns) == list(copied.columns)


# -- exact for every query, and for every role (issue 21) ---------------------------------------------


def test_an_endpoints_state_is_its_own_segments_not_the_first_of_its_name(greenplum, retrieve_catalog, db):
    """Every segment's endpoint of one cursor has the same name: segment 0 attached leaves 1 and 2 READY."""
    from dasktrain.io._retrieve import Endpoint, endpoint_state

    with db.cursor() as cur:
        cur.execute(
            sql.SQL(
                "INSERT INTO {}.endpoints VALUES (0, 'h', 1, 'ds', 't', 'prc', 'c', 'ATTACHED'), "
                "(1, 'h', 2, 'ds', 't', 'prc', 'c', 'READY'), (2, 'h', 3, 'ds', 't', 'prc', 'c', 'READY')"
            ).format(sql.Identifier(retrieve_catalog))
        )
    endpoints = [Endpoint(k, "h", 1 + k, "ds", "t", "prc", retrieve_catalog) for k in range(3)]
    assert [endpoint_state(greenplum.dsn, e) for e in endpoints] == ["ATTACHED", "READY", "READY"]


def test_retrieve_sessions_write_floats_with_every_digit(db, table_name):
    """Rows come to a retrieve session as text: at Greenplum 6's default extra_float_digits (0) a real
    is rounded to 6 digits; the session's options set 3, which gives every value back bit for bit."""
    import numpy as np

    from dasktrain.io._retrieve import RETRIEVE_OPTIONS, Endpoint

    assert "-c extra_float_digits=3" in Endpoint(0, "h", 1, "ds", "t", "e").dsn(db.dsn)
    values = np.random.default_rng(0).random(200, dtype=np.float32)
    with db.cursor() as cur:
        cur.execute(sql.SQL("CREATE TABLE {} (v real[])").format(sql.Identifier(table_name)))
        cur.execute(sql.SQL("INSERT INTO {} VALUES (%s)").format(sql.Identifier(table_name)), (values.tolist(),))
    read = {}
    for digits in (0, 3):
        conn = psycopg2.connect(psycopg2.extensions.make_dsn(db.dsn, options=f"-c extra_float_digits={digits}"))
        with conn, conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT v::text FROM {}").format(sql.Identifier(table_name)))
            read[digits] = np.array(cur.fetchone()[0].strip("{}").split(","), dtype=np.float32)
        conn.close()
    assert not np.array_equal(read[0], values)  # rounded: what Greenplum 6 sent before
    assert np.array_equal(read[3], values) and RETRIEVE_OPTIONS.endswith("-c extra_float_digits=3")


def test_a_held_transaction_is_rolled_back_before_its_connection_closes():
    """Greenplum 6's coordinator, closed mid-transaction under an aborted retrieve cursor, refuses new
    sessions until restarted; a ROLLBACK first avoids that (seen on a live server)."""
    from dasktrain.io._snapshot import end_transaction

    class Connection:  # what end_transaction is sent, in order
        closed, calls = 0, []

        def rollback(self):
            self.calls.append("rollback")

        def close(self):
            self.calls.append("close")

    conn = Connection()
    end_transaction(conn)
    assert conn.calls == ["rollback", "close"]


def test_a_where_with_a_subquery_is_not_read_in_utility_mode(greenplum, segment_servers, caplog):
    """Each segment would evaluate the subquery against its own slice of the other table."""
    from dasktrain.io._direct import has_subquery

    with greenplum.cursor() as cur:
        cur.execute("CREATE TABLE sel AS SELECT g AS sel_id FROM generate_series(0, 299, 2) g")
    where = "id IN (SELECT sel_id FROM sel) AND 'select' <> 'x'"
    assert has_subquery(where) and not has_subquery("name = 'select' AND \"select\" > 1")
    with caplog.at_level("INFO", logger="dasktrain"):
        frame = dasktrain.read_table(greenplum, "images", columns=["id"], where=where)
        assert sorted(frame.compute()["id"]) == list(range(0, 300, 2))
    assert "read through the coordinator" in caplog.text
    with pytest.raises(dasktrain.errors.DataError, match="cannot read a where= with a subquery exactly"):
        dasktrain.read_table(greenplum, "images", where=where, direct="utility")
    assert len(dasktrain.read_table(greenplum, "images", ["id"], where="id < 10", direct="utility").compute()) == 10


def test_a_role_with_only_select_reads_with_the_defaults(greenplum, segment_servers, db, caplog):
    """LOCK TABLE ... IN SHARE MODE needs UPDATE, DELETE or TRUNCATE: "auto" reads another way, and says so."""
    role = f"analyst_{uuid.uuid4().hex[:6]}"
    schema = psycopg2.extensions.parse_dsn(greenplum.dsn)["options"].split("=")[1].split(",")[0]
    with db.cursor() as cur:
        cur.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        for owned in [schema, *segment_servers]:
            cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {0} TO {1}; GRANT SELECT ON ALL TABLES IN SCHEMA {0} TO {1}")
                        .format(sql.Identifier(owned), sql.Identifier(role)))  # fmt: skip
    analyst = Database(psycopg2.extensions.make_dsn(greenplum.dsn, user=role), greenplum.dialect)
    try:
        with caplog.at_level("INFO", logger="dasktrain"):
            frame = dasktrain.read_table(analyst, "images", columns=["id"])
            assert sorted(frame.compute()["id"]) == list(range(300))
        assert "no share lock for utility mode" in caplog.text and "read through the coordinator" in caplog.text
        with pytest.raises(dasktrain.errors.DatabaseConnectionError, match="needs UPDATE, DELETE or TRUNCATE"):
            dasktrain.read_table(analyst, "images", direct="utility")
    finally:
        del frame
        with db.cursor() as cur:
            for owned in [schema, *segment_servers]:
                revoke = "REVOKE ALL ON ALL TABLES IN SCHEMA {0} FROM {1}; REVOKE ALL ON SCHEMA {0} FROM {1}"
                cur.execute(sql.SQL(revoke).format(sql.Identifier(owned), sql.Identifier(role)))
            cur.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_fit_lets_writers_in_once_its_segments_are_read(greenplum, segment_servers, db, client, monkeypatch):
    """Utility mode locks the table while its segments are read; a fit needs no more than that."""
    import keras

    monkeypatch.setattr("dasktrain.io._read._placements", lambda parts, client: None)  # the lazy path: held longest
    schema = psycopg2.extensions.parse_dsn(greenplum.dsn)["options"].split("=")[1].split(",")[0]
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    result = dasktrain.fit("images", model, x="x", y="id", compile={"loss": "mse", "optimizer": "adam"},
                           iterations=2, db=greenplum, client=client, progress=False)  # fmt: skip
    assert result.num_rows == 300
    assert _share_locks(db, f"{schema}.images") == 0  # before: held until the frame went, and two minutes more
