"""Greenplum reads straight from the segments, past the coordinator.

Through the coordinator, every byte of a ``WHERE gp_segment_id = k`` read passes through one
process. In *utility mode* a connection made to a primary segment's own host and port reads
that segment's local rows only; one such connection per segment reads the table in parallel
with nothing in between. A live Greenplum 7 cluster served the same counts both ways.

Utility mode has no distributed snapshot. So while the segments are read, a transaction on the
coordinator holds ``LOCK TABLE ... IN SHARE MODE``: writers wait until the frame is released
(readers do not), and every segment sees the table as it was when the read began. The lock is
held while the dask DataFrame from :func:`dasktrain.read_table` is alive, and two minutes more
(a persisted frame drops its graph before the workers read), like the exported snapshot; reads
placed on workers (and so a fit's) release it as soon as the last segment is read.

Which way ``direct="auto"`` (and True) reads, in order, logged at INFO:

1. *Utility mode*, the fastest (rows come as binary COPY), when the segments accept utility
   connections, the role may take the share lock (``UPDATE``, ``DELETE`` or ``TRUNCATE`` on the
   table: a role with only ``SELECT`` may not), and ``where=`` has no subquery (in utility mode each
   segment would evaluate it against its own slice of the other table).
2. A *parallel retrieve cursor* (:mod:`._retrieve`), where the catalog has them: one distributed
   snapshot, exact for any query, only ``SELECT`` needed, writers not blocked; rows come as text.
3. The coordinator, ``WHERE gp_segment_id = k``.

``pg_hba.conf`` may refuse utility connections. ``direct="auto"`` then says so once and goes on
down the list; ``direct="utility"`` raises an error that names the segment and the reason.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import psycopg2
from psycopg2 import sql

from .._names import TableName
from ..errors import DatabaseConnectionError, DataError
from ._database import redact_dsn, redact_text
from ._retrieve import RetrieveCursor, retrieve_schema
from ._retry import reason
from ._segments import Segment
from ._snapshot import HeldTransaction

logger = logging.getLogger("dasktrain")

#: Seconds to wait for a segment's utility connection when probing whether direct reads are allowed.
PROBE_TIMEOUT = 5


def utility_option(dialect) -> str:
    """The server option that opens a utility-mode session: Greenplum 7 and Cloudberry vs Greenplum 6.

    >>> from dasktrain.io._dialect import GREENPLUM, Dialect
    >>> utility_option(Dialect(GREENPLUM, 120012)), utility_option(Dialect(GREENPLUM, 90426))
    ('-c gp_role=utility', '-c gp_session_role=utility')
    """
    return "-c gp_role=utility" if dialect.server_version_num >= 120000 else "-c gp_session_role=utility"


def segment_dsn(dsn: str, segment: Segment, dialect) -> str:
    """``dsn`` pointed at ``segment``'s own host and port, in utility mode (other settings kept).

    >>> from dasktrain._names import TableName
    >>> from dasktrain.io._dialect import GREENPLUM, Dialect
    >>> seg = Segment(0, 0, "sdw1", TableName(None, "t"), gp_segment_id=0, address="10.0.0.7", port=6000)
    >>> segment_dsn("host=mdw dbname=prod user=ds options='-c search_path=ml'", seg, Dialect(GREENPLUM, 120012))
    "user=ds dbname=prod host=10.0.0.7 options='-c search_path=ml -c gp_role=utility' port=6000"
    """
    given = psycopg2.extensions.parse_dsn(dsn)
    options = " ".join(o for o in (given.get("options"), utility_option(dialect)) if o)
    return psycopg2.extensions.make_dsn(dsn, host=segment.address or segment.host, port=segment.port, options=options)


def probe(dsn: str, segment: Segment, dialect) -> str | None:
    """None when a utility connection to ``segment`` works, else the server's reason."""
    try:
        conn = psycopg2.connect(segment_dsn(dsn, segment, dialect), connect_timeout=PROBE_TIMEOUT)
    except psycopg2.Error as exc:
        return redact_text(reason(exc), dsn)
    conn.close()
    return None


def refused_error(dsn: str, segment: Segment, why: str, direct=True) -> DatabaseConnectionError:
    where = f"{segment.address or segment.host}:{segment.port}"
    return DatabaseConnectionError(
        f"direct={direct!r}, but segment {segment.gp_segment_id} ({where}) refused a utility-mode connection "
        f"for {redact_dsn(dsn)!r}: {why}. Allow it in the segments' pg_hba.conf, or read through the "
        f"coordinator with direct=False."
    )


DIRECT = ("auto", True, False, "retrieve", "utility")
WAYS = {
    "utility": "straight from each segment in utility mode",
    "retrieve": "from each segment's endpoint of a parallel retrieve cursor",
    "coordinator": "through the coordinator",
}


@dataclass(frozen=True)
class Route:
    """How a read goes straight to the segments: ``"retrieve"`` (a parallel retrieve cursor, its
    catalog functions in ``schema``) or ``"utility"`` (each segment's own DSN in ``dsns``)."""

    kind: str
    dsns: list[str] | None = None
    schema: str | None = None


def plan(db, parts: list[Segment], direct, *, where=None, retrieve: bool = True, utility: bool = True) -> Route | None:
    """How to read ``parts`` straight from the segments, or None to read through the coordinator.

    ``"auto"`` and True try utility mode, then a parallel retrieve cursor (see the module's
    docstring); ``"utility"`` and ``"retrieve"`` ask for one of them. What is refused falls back
    with "auto" (said once) and is an error otherwise. ``where``: the read's ``where=``; a
    subquery in it rules utility mode out. ``retrieve``/``utility`` False: that way was refused.

    >>> plan(db, dasktrain.segments(db, "images"), "auto")  # doctest: +SKIP
    Route(kind='utility', dsns=[...], schema=None)
    """
    if direct not in DIRECT:
        raise ValueError(f"Expected direct='auto', True, False, 'retrieve' or 'utility'. Received: direct={direct!r}")
    if direct is False or not db.dialect.distributed or any(p.gp_segment_id is None for p in parts):
        return None  # PostgreSQL, or a table read whole (replicated, a view): nothing to read directly
    refused = None  # why utility mode cannot read, when direct=True must say why nothing could
    if utility and direct != "retrieve":
        if has_subquery(where):
            if direct == "utility":
                raise DataError(
                    "direct='utility' cannot read a where= with a subquery exactly: each segment would evaluate it "
                    "against only its own rows of the other table. Use direct='auto' (a parallel retrieve cursor "
                    "or the coordinator), or direct=False."
                )
        else:
            missing = next((p for p in parts if not p.port), None)
            why = "gp_segment_configuration gives no port" if missing else probe(db.dsn, parts[0], db.dialect)
            if why is None:
                return Route("utility", dsns=[segment_dsn(db.dsn, p, db.dialect) for p in parts])
            refused = refused_error(db.dsn, missing or parts[0], why, direct)
            if direct == "utility":
                raise refused
    if retrieve and direct != "utility":
        with db.cursor() as cur:
            schema = retrieve_schema(cur)
        if schema is not None:
            if refused is not None:
                fall_back_once(db.dsn, why, "a parallel retrieve cursor")
            return Route("retrieve", schema=schema)
        if direct == "retrieve":
            raise DatabaseConnectionError(
                "direct='retrieve', but this server has no parallel retrieve cursors (no gp_get_endpoints() in "
                "its catalog). On Greenplum 6, run CREATE EXTENSION gp_parallel_retrieve_cursor; or use "
                "direct='utility' or direct=False."
            )
    if refused is not None and direct is not True:
        fall_back_once(db.dsn, why, "the coordinator")
    if direct is True:
        raise refused or DatabaseConnectionError(
            "direct=True, but neither utility mode nor a parallel retrieve cursor can read this table here: "
            "use direct='auto' to read through the coordinator."
        )
    return None


_SQL_TEXT = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\$(\w*)\$.*?\$\1\$", re.S)


def has_subquery(where) -> bool:
    """Whether a ``where=`` string runs a query of its own (``SELECT`` outside quotes and literals).

    >>> has_subquery("id IN (SELECT sel_id FROM sel)"), has_subquery("name = 'select me'"), has_subquery({"y": 1})
    (True, False, False)
    """
    if not isinstance(where, str):
        return False  # a mapping of column values is per row
    return re.search(r"\bselect\b", _SQL_TEXT.sub(" ", where), re.I) is not None


def lock_or_fall_back(db, table: TableName, route: Route, parts: list[Segment], direct, where):
    """``(the share lock utility mode needs, route)``; where the role may not take it, the next way, said at INFO.

    >>> held, route = lock_or_fall_back(db, TableName(None, "images"), route, parts, "auto", None)  # doctest: +SKIP
    """
    try:
        return ShareLock.take(db, table), route
    except psycopg2.errors.InsufficientPrivilege as exc:
        why = redact_text(reason(exc), db.dsn)
        if direct == "utility":
            raise DatabaseConnectionError(
                f"direct='utility' reads under LOCK TABLE {str(table)!r} IN SHARE MODE, which this role may not take "
                f"({why}): it needs UPDATE, DELETE or TRUNCATE on the table. Use direct='auto' to read with SELECT "
                f"alone (a parallel retrieve cursor, or the coordinator)."
            ) from None
        logger.info("read_table: %s: no share lock for utility mode (%s); reading another way", table, why)
        return None, plan(db, parts, direct, where=where, utility=False)


def declare_or_fall_back(db, route: Route, parts: list[Segment], direct, select, where=None):
    """Declare the parallel retrieve cursor for ``select``; if the server refuses, the next route (or an error)."""
    try:
        return RetrieveCursor.declare(db, route.schema, select), route
    except psycopg2.Error as exc:
        why = redact_text(reason(exc), db.dsn)
        if direct == "retrieve":
            raise DatabaseConnectionError(f"direct='retrieve', but the server refused the cursor: {why}") from None
        key = ("cursor", redact_dsn(db.dsn))
        if key not in _said_once:
            _said_once.add(key)
            logger.warning("read_table: the server refused a parallel retrieve cursor (%s); reading another way", why)
        return None, plan(db, parts, direct, where=where, retrieve=False, utility=False)


class ShareLock(HeldTransaction):
    """``LOCK TABLE ... IN SHARE MODE`` in an open transaction on the coordinator, held like a snapshot.

    >>> lock = ShareLock.take(db, TableName(None, "images"))  # doctest: +SKIP
    """

    @classmethod
    def take(cls, db, table: TableName) -> ShareLock:
        conn = db.connection()
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(table.sql))
        except BaseException:
            conn.close()
            raise
        return cls(conn)


_said_once: set = set()


def fall_back_once(dsn: str, why: str, instead: str) -> None:
    """Say (once per database) that utility-mode reads were refused, and which way is used ``instead``."""
    key = redact_dsn(dsn)
    if key not in _said_once:
        _said_once.add(key)
        logger.warning(
            "read_table: the segments refused a direct (utility-mode) connection (%s); reading through %s "
            "instead. Allow utility connections in pg_hba.conf for faster reads.",
            why,
            instead,
        )
