"""Segments: the database's own unit of data distribution, and our unit of I/O and scoring.

A segment is one read, one Dask partition, one scoring task. It is not the unit of training:
that is the *replica* (one per training worker by default), which trains on all the segments its
worker holds.

- Greenplum / Cloudberry: the primary segments (``gp_segment_configuration``); a segment's
  rows are ``WHERE gp_segment_id = k`` and its host is known, so Dask can read it nearby.
- PostgreSQL, partitioned table (our loaders make ``PARTITION BY HASH (id)``): one segment
  per leaf partition.
- PostgreSQL, plain table: ``n`` ranges of disk blocks, read with TID range scans.

On PostgreSQL a segment can be cut into block ranges of its relation (:meth:`Segment.split`), so
that a table with fewer segments than training workers still gives every worker rows to read.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from psycopg2 import sql

from .._names import TableName
from ..errors import DataError
from ._catalog import PARTITIONED, PLAIN, TableInfo, table_info
from ._database import Database, connect

GREENPLUM_SEGMENTS_SQL = sql.SQL(
    "SELECT content, hostname, address, port FROM gp_segment_configuration "
    "WHERE content >= 0 AND role = 'p' ORDER BY content"
)


@dataclass(frozen=True)
class Segment:
    """One segment of a table: what to read, about how many rows, and where it lives.

    Attributes
    ----------
    id : int
        0-based position (Greenplum: the segment's ``content`` id).
    rows : int
        Approximate number of rows (the catalog's estimate), or exact with ``segments(exact=True)``.
    host : str or None
        Host holding the segment's data, where the database says (Greenplum).
    relation : TableName
        Table to read: the table itself or one of its leaf partitions.
    gp_segment_id : int or None
        On Greenplum, the value of ``gp_segment_id`` selecting this segment's rows.
    blocks : (int, int or None) or None
        On a plain PostgreSQL table, the half-open range of disk blocks (open at the end).
    address, port : str and int, or None
        On Greenplum, where the segment's own server listens (for direct, utility-mode reads).
    share : (int, int) or None
        On Greenplum, ``(j, m)``: only the ``j``-th of ``m`` shares of the segment's rows, by a hash
        of each row's ``ctid`` (see :meth:`shares`).
    """

    id: int
    rows: int
    host: str | None
    relation: TableName
    gp_segment_id: int | None = None
    blocks: tuple[int, int | None] | None = None
    address: str | None = None
    port: int | None = None
    share: tuple[int, int] | None = None

    def predicate(self, local: bool = False) -> sql.Composable | None:
        """The WHERE condition selecting this segment's rows of :attr:`relation`, or None.

        ``local``: for a read on the segment's own server (Greenplum's utility mode), whose rows
        are all this segment's.

        >>> seg = Segment(0, 90, None, TableName(None, "t"), gp_segment_id=2, share=(1, 3))
        >>> seg.predicate(local=True).as_string(None)  # doctest: +SKIP
        '(hashtext(ctid::text) & 2147483647) % 3 = 1'
        """
        if self.gp_segment_id is not None:
            conditions = [] if local else [sql.SQL("gp_segment_id = {}").format(sql.Literal(self.gp_segment_id))]
            if self.share is not None:
                j, m = self.share
                # A row's ctid is fixed while the read's lock holds, so each row falls in exactly one share;
                # its hash spreads the rows near evenly, whatever the table's columns (heap and AO alike).
                conditions.append(
                    sql.SQL("(hashtext(ctid::text) & 2147483647) % {} = {}").format(sql.Literal(m), sql.Literal(j))
                )
            return sql.SQL(" AND ").join(conditions) if conditions else None
        if self.blocks is not None:
            start, stop = self.blocks
            lower = sql.SQL("ctid >= {}::tid").format(sql.Literal(f"({start},0)"))
            if stop is None:
                return lower
            return sql.SQL("{} AND ctid < {}::tid").format(lower, sql.Literal(f"({stop},0)"))
        return None

    def shares(self, k: int) -> list[Segment]:
        """This Greenplum segment as ``k`` reads, each of one share of its rows by a hash of ``ctid``.

        Each share scans the whole segment and keeps its rows: ``k`` shares cost ``k`` scans of the
        segment, on its own server. The pieces keep this segment's :attr:`id` (renumber them).

        >>> seg = Segment(0, 90, "h", TableName(None, "t"), gp_segment_id=0)
        >>> [(s.share, s.rows) for s in seg.shares(2)]
        [((0, 2), 45), ((1, 2), 45)]
        """
        if k <= 1 or self.gp_segment_id is None:
            return [self]
        return [
            dataclasses.replace(self, rows=self.rows * (j + 1) // k - self.rows * j // k, share=(j, k))
            for j in range(k)
        ]

    def split(self, pages: int, k: int) -> list[Segment]:
        """This segment as at most ``k`` block ranges of :attr:`relation`, which has ``pages`` blocks.

        A segment without :attr:`blocks` (a leaf partition) covers blocks ``(0, None)``. The pieces
        keep this segment's :attr:`id` (renumber them) and share its :attr:`rows` by blocks. Only
        for a relation whose rows have a ``ctid`` on disk (a PostgreSQL table, not a view).

        >>> seg = Segment(0, 90, None, TableName(None, "t_seg0"))
        >>> [(s.blocks, s.rows) for s in seg.split(9, 3)]
        [((0, 3), 30), ((3, 6), 30), ((6, None), 30)]
        >>> seg.split(1, 3) == [seg]
        True
        """
        ranges = split_blocks(self.blocks or (0, None), pages, self.rows, k)
        if len(ranges) == 1:
            return [self]
        return [dataclasses.replace(self, rows=rows, blocks=blocks) for blocks, rows in ranges]


def segments(
    db: Database | str | None, table: str | TableName, n: int | None = None, *, exact: bool = False
) -> list[Segment]:
    """List the segments of ``table``, the units :func:`read_table` reads in parallel.

    On Greenplum a distributed table has one segment per primary segment; a ``DISTRIBUTED
    REPLICATED`` table, a view or an external table is read whole, as one segment, through the
    coordinator. PostgreSQL: one segment per leaf of a partitioned table, else ``n`` block ranges
    of a plain table; a view is read whole.

    Parameters
    ----------
    db : Database, str or None
        A handle from :func:`connect`, a DSN, or None for the default database.
    table : str
        Table name, optionally schema-qualified.
    n : int, optional
        Only for plain (unpartitioned) PostgreSQL tables: how many block ranges to cut.
        Default: the number of workers of the current Dask client, else the number of CPUs.
    exact : bool, default False
        Count each segment's rows (on Greenplum, a scan of the whole table). Default: the
        catalog's estimates, up to date after ``ANALYZE``.

    Returns
    -------
    list of Segment

    Examples
    --------
    >>> import dasktrain
    >>> [s.rows for s in dasktrain.segments(None, "fashion_mnist_train")]  # doctest: +SKIP
    [15012, 14950, 15007, 15031]
    """
    db = connect(db)
    name = TableName.parse(table)
    with db.cursor() as cur:
        return list_segments(cur, db.dialect, table_info(cur, name), n, exact=exact)


def list_segments(cur, dialect, info: TableInfo, n: int | None = None, *, exact: bool = False) -> list[Segment]:
    """:func:`segments` on an open cursor, for a table already looked up."""
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise DataError(f"Expected a positive number of segments. Received: n={n!r}")
    if dialect.distributed and info.relkind in (PLAIN, PARTITIONED) and greenplum_policy(cur, info.oid) == "p":
        return _greenplum_segments(cur, info, exact)  # counted in one scan when exact
    if info.relkind == PARTITIONED and not dialect.distributed:
        found = _leaf_segments(cur, info.oid)
    elif info.relkind == PLAIN and not dialect.distributed:
        found = _block_segments(cur, info.name, info.oid, n or _default_parallelism())
    else:  # views, foreign tables, and on Greenplum replicated or external tables: read whole
        found = [Segment(0, _estimate(cur, info.oid), None, info.name)]
    return [dataclasses.replace(s, rows=_count(cur, s)) for s in found] if exact else found


def _count(cur, segment: Segment) -> int:
    query = sql.SQL("SELECT count(*) FROM {}").format(segment.relation.sql)
    if segment.predicate() is not None:
        query += sql.SQL(" WHERE ") + segment.predicate()
    cur.execute(query)
    return int(cur.fetchone()[0])


def greenplum_policy(cur, oid: int) -> str | None:
    """How Greenplum spreads a table: ``"p"`` by key or randomly, ``"r"`` replicated, None when it is
    not a distributed table at all (an external table)."""
    cur.execute("SELECT policytype FROM gp_distribution_policy WHERE localoid = %s", (oid,))
    row = cur.fetchone()
    return row[0] if row else None


def _greenplum_segments(cur, info: TableInfo, exact: bool) -> list[Segment]:
    cur.execute(GREENPLUM_SEGMENTS_SQL)
    hosts = cur.fetchall()
    if exact:
        cur.execute(greenplum_rows_sql(info.name))
        rows = dict(cur.fetchall())
    else:  # the coordinator's estimate for the whole table, shared evenly
        share = _estimate(cur, info.oid) // max(1, len(hosts))
        rows = {content: share for content, *_ in hosts}
    return [
        Segment(i, int(rows.get(content, 0)), host, info.name, gp_segment_id=content, address=address, port=port)
        for i, (content, host, address, port) in enumerate(hosts)
    ]


def _estimate(cur, oid: int) -> int:
    """The catalog's row estimate (0 for a table never analyzed, or a view)."""
    cur.execute("SELECT GREATEST(reltuples, 0)::bigint FROM pg_class WHERE oid = %s", (oid,))
    return int(cur.fetchone()[0])


def greenplum_segment_count(cur) -> int:
    """How many primary segments the Greenplum cluster has: every distributed table has that many."""
    cur.execute(sql.SQL("SELECT count(*) FROM ({}) s").format(GREENPLUM_SEGMENTS_SQL))
    return int(cur.fetchone()[0])


def greenplum_rows_sql(table: TableName) -> sql.Composed:
    """Rows per Greenplum segment, counted where they live."""
    return sql.SQL("SELECT gp_segment_id, count(*) FROM {} GROUP BY 1").format(table.sql)


def _leaf_segments(cur, oid: int) -> list[Segment]:
    # Leaves in creation order: our loaders create remainder 0, 1, ... in that order.
    cur.execute(
        """
        SELECT n.nspname, c.relname, GREATEST(c.reltuples, 0)::bigint
        FROM pg_partition_tree(%s) t
        JOIN pg_class c ON c.oid = t.relid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE t.isleaf
        ORDER BY c.oid
        """,
        (oid,),
    )
    return [Segment(i, rows, None, TableName(schema, name)) for i, (schema, name, rows) in enumerate(cur.fetchall())]


def _block_segments(cur, table: TableName, oid: int, n: int) -> list[Segment]:
    cur.execute(
        "SELECT pg_relation_size(%s) / current_setting('block_size')::int, GREATEST(reltuples, 0) "
        "FROM pg_class WHERE oid = %s",
        (oid, oid),
    )
    pages, tuples = cur.fetchone()
    return [
        Segment(i, rows, None, table, blocks=blocks)
        for i, (blocks, rows) in enumerate(block_ranges(int(pages), float(tuples), n))
    ]


def block_ranges(pages: int, tuples: float, n: int) -> list[tuple[tuple[int, int | None], int]]:
    """Cut ``pages`` disk blocks into at most ``n`` ranges of near-equal size.

    The last range is open-ended so rows added since the size was read are not missed.

    >>> block_ranges(10, 100.0, 3)
    [((0, 3), 30), ((3, 7), 40), ((7, None), 30)]
    """
    n = max(1, min(n, pages))
    bounds = [round(i * pages / n) for i in range(n + 1)]
    ranges = []
    for i in range(n):
        start, stop = bounds[i], bounds[i + 1]
        rows = round(tuples * (stop - start) / pages) if pages else int(tuples)
        ranges.append(((start, None if i == n - 1 else stop), rows))
    return ranges


def split_blocks(
    blocks: tuple[int, int | None], pages: int, rows: int, k: int
) -> list[tuple[tuple[int, int | None], int]]:
    """Cut the half-open block range ``blocks`` into at most ``k`` near-equal ranges, sharing ``rows`` by blocks.

    ``pages`` is the relation's size in blocks: an open-ended range (``(start, None)``) is cut up to
    there, and its last piece stays open-ended so rows beyond are not missed. The pieces cover
    exactly the blocks of ``blocks``, each once, and their rows add up to ``rows``.

    >>> split_blocks((0, 10), 10, 100, 3)
    [((0, 3), 30), ((3, 6), 30), ((6, 10), 40)]
    >>> split_blocks((4, None), 10, 60, 3)
    [((4, 6), 20), ((6, 8), 20), ((8, None), 20)]
    >>> split_blocks((4, None), 4, 7, 3)  # no block known past the start: kept whole
    [((4, None), 7)]
    """
    start, stop = blocks
    span = (stop if stop is not None else max(start, pages)) - start
    k = max(1, min(k, span))
    bounds = [start + i * span // k for i in range(k + 1)]
    shares = [round(rows * (b - start) / span) if span else rows for b in bounds]  # cumulative rows at each bound
    shares[0] = 0
    return [((bounds[i], stop if i == k - 1 else bounds[i + 1]), shares[i + 1] - shares[i]) for i in range(k)]


def _default_parallelism() -> int:
    try:
        from distributed import get_client

        return max(1, len(get_client().nthreads()))
    except (ImportError, ValueError):
        return os.cpu_count() or 1


def workers_by_host(parts: Sequence[Segment], worker_addresses) -> list[list[str] | None]:
    """For each segment, the worker addresses on its host (None where no worker is there).

    >>> from dasktrain._names import TableName
    >>> seg = Segment(0, 10, "127.0.0.1", TableName(None, "t"), gp_segment_id=0)
    >>> workers_by_host([seg], ["tcp://127.0.0.1:4000", "tcp://10.9.9.9:4000"])
    [['tcp://127.0.0.1:4000']]
    """
    by_ip: dict[str, list[str]] = {}
    for address in worker_addresses:
        host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
        by_ip.setdefault(_ip(host), []).append(address)
    return [by_ip.get(_ip(seg.host)) if seg.host else None for seg in parts]


@lru_cache(maxsize=256)
def _ip(host: str) -> str:
    try:
        return socket.gethostbyname(host)
    except OSError:
        return host
