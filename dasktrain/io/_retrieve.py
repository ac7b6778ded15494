"""Greenplum's PARALLEL RETRIEVE CURSOR: every segment's rows straight from the segment, one snapshot.

The coordinator declares ``DECLARE c PARALLEL RETRIEVE CURSOR FOR SELECT ...`` in a transaction
it holds open. Each primary segment then serves its share of the result at an *endpoint*; a
*retrieve session* (a connection to the segment's host and port with ``gp_retrieve_conn=true``,
the session user, and the cursor's token as password) runs ``RETRIEVE n FROM ENDPOINT e`` until
no rows come. Unlike utility mode, every segment reads the same distributed snapshot and writers
are not blocked. Greenplum 7 and Cloudberry have it built in; Greenplum 6 with the
``gp_parallel_retrieve_cursor`` extension.

Rows arrive over the ordinary query protocol (text), not binary COPY: they are decoded here
column by column into the same arrays as a COPY read. An endpoint can be retrieved only once,
so a segment read again after a worker is lost goes through the coordinator instead.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

import numpy as np
import psycopg2
from psycopg2 import sql

from . import _pgbinary
from ._columns import ARRAY, BYTES, SCALAR, TENSOR, TEXT, ColumnSpec
from ._snapshot import HeldTransaction

logger = logging.getLogger("dasktrain")

#: Rows per RETRIEVE: what a retrieve session holds as Python objects at once.
RETRIEVE_ROWS = 20_000

#: A retrieve session's options: the session itself, and floats written exactly as text.
RETRIEVE_OPTIONS = "-c gp_retrieve_conn=true -c extra_float_digits=3"


def retrieve_schema(cur) -> str | None:
    """The schema of ``gp_get_endpoints()`` when this server has parallel retrieve cursors, else None."""
    cur.execute(
        "SELECT n.nspname FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
        "WHERE p.proname = 'gp_get_endpoints' ORDER BY n.nspname <> 'pg_catalog' LIMIT 1"
    )
    row = cur.fetchone()
    return row[0] if row else None


@dataclass(frozen=True)
class Endpoint:
    """Where one segment's share of a parallel retrieve cursor is served."""

    gp_segment_id: int
    host: str
    port: int
    user: str
    token: str = field(repr=False)  # the retrieve session's password: never in logs
    name: str
    schema: str = "pg_catalog"  # where the catalog functions live (an extension's schema on Greenplum 6)

    def dsn(self, dsn: str) -> str:
        """``dsn`` turned into this endpoint's retrieve session (the user's other options kept).

        Rows come as text: ``extra_float_digits=3`` makes the server write every float with the digits
        that give it back bit for bit (its default, 0, rounds ``real`` to 6 significant digits).

        >>> e = Endpoint(1, "sdw2", 6001, "ds", "tk0123", "prc1_2")
        >>> e.dsn("host=mdw dbname=prod user=ds password=secret")  # doctest: +NORMALIZE_WHITESPACE
        "user=ds password=tk0123 dbname=prod host=sdw2 port=6001
         options='-c gp_retrieve_conn=true -c extra_float_digits=3'"
        """
        given = psycopg2.extensions.parse_dsn(dsn)
        options = " ".join(o for o in (given.get("options"), RETRIEVE_OPTIONS) if o)
        return psycopg2.extensions.make_dsn(
            dsn, host=self.host, port=self.port, user=self.user, password=self.token, options=options
        )


class RetrieveCursor(HeldTransaction):
    """A parallel retrieve cursor declared in a coordinator transaction held like a snapshot.

    >>> cursor = RetrieveCursor.declare(db, "pg_catalog", select)  # doctest: +SKIP
    >>> sorted(cursor.endpoints)  # doctest: +SKIP
    [0, 1, 2]
    """

    def __init__(self, conn, name: str, endpoints: dict[int, Endpoint]):
        super().__init__(conn)
        self.name, self.endpoints = name, endpoints

    @classmethod
    def declare(cls, db, schema: str, select: sql.Composable) -> RetrieveCursor:
        name = f"dasktrain_{uuid.uuid4().hex[:16]}"
        conn = db.connection()
        try:
            with conn.cursor() as cur:
                cur.execute(declare_sql(name, select))
                cur.execute(endpoints_sql(schema), (name,))
                endpoints = {int(row[0]): Endpoint(int(row[0]), row[1], int(row[2]), *row[3:], schema) for row in cur}
        except BaseException:
            conn.close()
            raise
        return cls(conn, name, endpoints)


def declare_sql(name: str, select: sql.Composable) -> sql.Composed:
    """``DECLARE name PARALLEL RETRIEVE CURSOR FOR select``.

    >>> declare_sql("c1", sql.SQL("SELECT 1")).as_string(None)  # doctest: +SKIP
    'DECLARE "c1" PARALLEL RETRIEVE CURSOR FOR SELECT 1'
    """
    return sql.SQL("DECLARE {} PARALLEL RETRIEVE CURSOR FOR ").format(sql.Identifier(name)) + select


def endpoints_sql(schema: str) -> sql.Composed:
    """The endpoints of one cursor (its name is the parameter), from the catalog function."""
    return sql.SQL(
        "SELECT gp_segment_id, hostname, port, username, auth_token, endpointname FROM {}.gp_get_endpoints() "
        "WHERE cursorname = %s ORDER BY gp_segment_id"
    ).format(sql.Identifier(schema))


def endpoint_state(coordinator_dsn: str, endpoint: Endpoint) -> str | None:
    """The endpoint's state as the coordinator sees it (``READY`` until a retrieve session attaches).

    An endpoint serves its rows once; a segment read a second time (after its worker was lost)
    finds it ``FINISHED``, or gone with its cursor, and must read elsewhere.
    """
    conn = psycopg2.connect(coordinator_dsn)
    try:
        with conn.cursor() as cur:
            # Every segment's endpoint of a cursor has the same name: the segment tells them apart.
            cur.execute(
                sql.SQL(
                    "SELECT state FROM {}.gp_get_endpoints() WHERE endpointname = %s AND gp_segment_id = %s"
                ).format(sql.Identifier(endpoint.schema)),
                (endpoint.name, endpoint.gp_segment_id),
            )
            row = cur.fetchone()
    finally:
        conn.close()
    return row[0] if row else None


def retrieve_statement(endpoint: str, rows: int = RETRIEVE_ROWS) -> sql.Composed:
    """``RETRIEVE rows FROM ENDPOINT endpoint``, composed (the name comes from the catalog)."""
    return sql.SQL("RETRIEVE {} FROM ENDPOINT {}").format(sql.Literal(int(rows)), sql.Identifier(endpoint))


def rows_to_columns(rows: list[tuple], specs: list[ColumnSpec]) -> dict[str, np.ndarray]:
    """Rows as psycopg2 returns them, as the same column arrays a binary COPY decodes to.

    >>> spec = ColumnSpec("v", "scalar", wire=np.dtype(">f4"), dtype=np.dtype("f4"))
    >>> rows_to_columns([(1.5,), (None,)], [spec])["v"]
    array([1.5, nan], dtype=float32)
    """
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in specs]
    return {spec.name: _pgbinary.column([_value(v, spec) for v in values], spec)
            for spec, values in zip(specs, columns, strict=True)}  # fmt: skip


def _value(value, spec: ColumnSpec):
    if value is None:
        return None
    if spec.kind == TENSOR:
        return np.frombuffer(value, dtype=spec.wire)
    if spec.kind == ARRAY:
        return np.asarray(value, dtype=spec.wire)
    if spec.kind == BYTES:
        return bytes(value)
    if spec.kind in (TEXT, SCALAR):
        return value
    raise TypeError(f"Unknown column kind {spec.kind!r}")


def retrieve_segment(endpoint: str, dsn: str, specs: list[ColumnSpec], rows: int = RETRIEVE_ROWS, each=None) -> dict:
    """Retrieve one endpoint to its end, ``rows`` at a time; the columns as a COPY read gives them.

    With ``each``, every chunk of columns is handed to ``each(columns)`` instead (nothing is kept).
    """
    chunks = []
    conn = psycopg2.connect(dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            while True:
                cur.execute(retrieve_statement(endpoint, rows))
                batch = cur.fetchall()
                if not batch:
                    break
                columns = rows_to_columns(batch, specs)
                if each is not None:
                    each(columns)
                else:
                    chunks.append(columns)
    finally:
        conn.close()
    if each is not None:
        return {}
    if not chunks:
        return {spec.name: _pgbinary.empty_column(spec) for spec in specs}
    return {spec.name: np.concatenate([c[spec.name] for c in chunks]) for spec in specs}
