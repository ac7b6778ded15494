"""``read_table``: a database table as a Dask DataFrame, one partition per segment."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from functools import partial

import dask.dataframe as dd
import numpy as np
import pandas as pd
from psycopg2 import sql

from .._names import TableName, identifier
from ..errors import DataError, SchemaError
from . import _direct, _pgbinary, _split
from ._catalog import array_metadata, table_info
from ._columns import ARRAY, ColumnSpec, spec_from_catalog
from ._database import Database, connect
from ._retrieve import RetrieveCursor
from ._segment_reader import SegmentReader, frame_of
from ._segments import Segment, list_segments, workers_by_host
from ._snapshot import ExportedSnapshot

Where = str | Mapping[str, object] | None
logger = logging.getLogger("dasktrain")


def read_table(
    db: Database | str | None,
    table: str,
    columns: Sequence[str] | None = None,
    where: Where = None,
    *,
    npartitions: int | None = None,
    snapshot: bool = True,
    direct: bool | str = "auto",
    client=None,
) -> dd.DataFrame:
    """Read a table as a Dask DataFrame with one partition per database segment.

    Each partition reads only its own segment, on its own connection, with
    ``COPY ... (FORMAT binary)``, and decodes it with numpy in whole buffers. Array columns
    (our loaders' ``bytea`` with stored dtype and shape, and MADlib-style ``real[]``,
    ``double precision[]``, ``smallint[]``, ``integer[]``, ``bigint[]``) become tensor columns:
    one fixed-shape array per row, held by pyarrow; turn them into numpy with
    :func:`to_arrays`.

    Parameters
    ----------
    db : Database, str or None
        A handle from :func:`connect`, a DSN, or None for the default database.
    table : str
        Table name, optionally schema-qualified (``"schema.table"``).
    columns : list of str, optional
        Columns to read. Default: all.
    where : str or mapping, optional
        Rows to keep. A mapping ``{column: value}`` is composed safely (values become
        parameters; a list value means "any of"). A string is a SQL predicate inserted
        **as is**: it is trusted input and must never come from an untrusted user.
    npartitions : int, optional
        Plain (unpartitioned) PostgreSQL tables only: how many block ranges to read in
        parallel. Default: one per Dask worker.
    snapshot : bool, default True
        PostgreSQL: every partition sees the same snapshot of the table, even while other
        sessions change it (an exported snapshot, held open in this process while the returned
        frame is alive). False reads each segment in its own transaction, as Greenplum always
        does and as PostgreSQL does where it cannot export snapshots (a hot standby).
    direct : "auto", True, False, "retrieve" or "utility", default "auto"
        Greenplum and Cloudberry: read each segment straight from its own server, not through the
        coordinator. "auto" and True try, in order: utility mode (a utility-mode connection to
        each segment's host and port while the coordinator holds ``LOCK TABLE ... IN SHARE
        MODE``, writers waiting until the segments are read; the fastest; not for a role with
        only SELECT, nor for a ``where=`` with a subquery), then a parallel retrieve cursor (one
        distributed snapshot, exact for any query; writers are not blocked; rows come as text).
        "auto" then falls back to the coordinator, saying why once; True makes that an error;
        "retrieve" and "utility" ask for one way. The way taken is logged at INFO. Ignored on
        PostgreSQL, and for replicated tables and views.
    client : distributed.Client, optional
        Used on Greenplum to read each segment on a worker of the segment's host.
        Default: the current client, if any.

    Returns
    -------
    dask.dataframe.DataFrame
        ``npartitions`` equals the number of segments.

    Examples
    --------
    >>> import dasktrain
    >>> ddf = dasktrain.read_table(None, "fashion_mnist_train", columns=["id", "x", "y"])  # doctest: +SKIP
    >>> ddf.npartitions  # doctest: +SKIP
    4
    >>> X, y = dasktrain.to_arrays(ddf.partitions[0].compute(), x="x", y="y")  # doctest: +SKIP
    """
    return plan_reads(db, table, columns, where, npartitions=npartitions, snapshot=snapshot, direct=direct,
                      client=client).frame()  # fmt: skip


class SegmentReads:
    """A table's segment reads, planned on the client: what :func:`read_table` turns into a frame.

    It holds what must outlive the reads (the exported snapshot, the coordinator's SHARE lock),
    and the placement of each read on a worker of its segment's host, where known.
    """

    def __init__(
        self, reader: SegmentReader, parts: list, meta: pd.DataFrame, placements, held, segments: list, *,
        db: Database | None = None, segment_query: Callable[[Segment], sql.Composed] | None = None,
        snapshot: bool = False,
    ):  # fmt: skip
        self.reader, self.parts, self.meta, self.placements, self.held = reader, parts, meta, placements, held
        self.segments = segments  # the Segment of each part (estimated rows, host)
        # What at_least needs to plan more reads: a segment's COPY, and whether its reads share a snapshot
        self.db, self.segment_query, self.snapshot = db, segment_query, snapshot

    def at_least(self, n: int) -> SegmentReads:
        """These reads cut into ``n`` or more: each segment into ``ceil(n / len(segments))`` block ranges.

        Same snapshot and locks; every row is read once. ``self`` when there are ``n`` reads already,
        or on Greenplum, views and direct reads, which are read whole (see :mod:`dasktrain.io._split`).

        Parameters
        ----------
        n : int
            The fewest reads wanted: the number of training workers.

        Returns
        -------
        SegmentReads
            Its parts and segments numbered ``0..m-1``.

        Examples
        --------
        >>> len(plan_reads(None, "fit_digits_train").at_least(4).parts)  # doctest: +SKIP
        4
        """
        return _split.at_least(self, n)

    @property
    def specs(self) -> list[ColumnSpec]:
        return self.reader.specs

    def workers(self, k: int) -> list[str] | None:
        """The workers on segment ``k``'s host, when known."""
        return self.placements.workers[k] if self.placements else None

    def frame(self) -> dd.DataFrame:
        """The segments as a Dask DataFrame, one partition each."""
        if self.placements:
            futures = [
                self.placements.client.submit(
                    self.reader, part, pure=False, **({"workers": w, "allow_other_workers": True} if w else {})
                )
                for part, w in zip(self.parts, self.placements.workers, strict=True)
            ]
            if self.held is not None:  # the reads run now: release the lock when the last one is done
                _release_when_done(futures, self.held)
            return dd.from_delayed(futures, meta=self.meta, verify_meta=False)
        # A table can change between two calls: a fresh `read_id` gives each call its own task keys,
        # so Dask never hands back partitions an earlier call left in memory.
        label = f"read-{TableName.parse(self.reader.table).name}"
        return dd.from_map(self.reader, self.parts, read_id=uuid.uuid4().hex, meta=self.meta, label=label)


def plan_reads(
    db, table: str, columns=None, where: Where = None, *, npartitions=None, snapshot=True, direct="auto", client=None
) -> SegmentReads:
    """Check a read and plan it, segment by segment (the work of :func:`read_table` before the frame)."""
    db = connect(db)
    name = TableName.parse(table)
    with db.cursor() as cur:
        info = table_info(cur, name)
        metadata = array_metadata(cur, name)
        wanted = _column_names(info.columns, columns, name)
        specs = [spec_from_catalog(c, *info.columns[c], metadata.get(c)) for c in wanted]
        where_sql = _where_sql(where, info.columns, name)
        shapes = _first_row_shapes(cur, name, specs, where_sql, where)
        query_prefix = sql.SQL("SELECT {} FROM ").format(sql.SQL(", ").join(s.select_sql() for s in specs))
        segments = list_segments(cur, db.dialect, info, npartitions)
        route = _direct.plan(db, segments, direct, where=where)
        held = None
        if route is not None and route.kind == "utility":
            held, route = _direct.lock_or_fall_back(db, name, route, segments, direct, where)
        if route is not None and route.kind == "retrieve":
            held, route = _direct.declare_or_fall_back(
                db, route, segments, direct, _select(query_prefix, name, where_sql), where
            )
        local = route is not None and route.kind == "utility"
        segment_query = partial(_segment_query, query_prefix, where_sql=where_sql, local=local)
        queries = [segment_query(seg).as_string(cur.connection) for seg in segments]
    if db.dialect.distributed:
        way = route.kind if route is not None else "coordinator"
        logger.info("read_table: %s: %d segment(s), read %s", name, len(segments), _direct.WAYS[way])
    parts = [(k, query, route.dsns[k] if local else None, None) for k, query in enumerate(queries)]
    if isinstance(held, RetrieveCursor):  # each segment's endpoint; a segment without one reads via the coordinator
        endpoints = held.endpoints
        parts = [(k, query, *_endpoint_part(endpoints.get(seg.gp_segment_id), db.dsn))
                 for (k, query, _, _), seg in zip(parts, segments, strict=True)]  # fmt: skip
    specs = [_with_shape(spec, shapes.get(spec.name)) for spec in specs]
    placements = _placements(segments, client)
    if placements:
        reader = SegmentReader(db.dsn, specs, str(name), held=held)
    else:
        shared = ExportedSnapshot.export(db) if snapshot and len(queries) > 1 and not db.dialect.distributed else None
        reader = SegmentReader(db.dsn, specs, str(name), shared, held)
    return SegmentReads(
        reader, parts, _meta(specs), placements, held, segments, db=db, segment_query=segment_query, snapshot=snapshot
    )


def _endpoint_part(endpoint, dsn: str) -> tuple:
    return (endpoint.dsn(dsn), endpoint) if endpoint is not None else (None, None)


def _select(prefix: sql.Composable, table: TableName, where_sql) -> sql.Composed:
    """The whole read as one SELECT (for a parallel retrieve cursor: each segment serves its share)."""
    select = prefix + table.sql
    return select + sql.SQL(" WHERE ") + where_sql if where_sql is not None else select


def _release_when_done(futures: list, held) -> None:
    remaining = {f.key for f in futures}

    def done(future) -> None:
        remaining.discard(future.key)
        if not remaining:
            held.close()

    for future in futures:
        future.add_done_callback(done)


def _meta(specs: Sequence[ColumnSpec]) -> pd.DataFrame:
    empty = {spec.name: _pgbinary.empty_column(spec) for spec in specs}
    return frame_of(empty, specs)


def _with_shape(spec: ColumnSpec, shape: tuple[int, ...] | None) -> ColumnSpec:
    if spec.kind != ARRAY or shape is None:
        return spec
    return ColumnSpec(spec.name, spec.kind, spec.wire, spec.dtype, shape, spec.cast)


def _column_names(available: Mapping, columns: Sequence[str] | None, table: TableName) -> list[str]:
    if columns is None:
        return list(available)
    if isinstance(columns, str):
        columns = [columns]
    names = [identifier(c) for c in columns]
    missing = [c for c in names if c not in available]
    if missing:
        raise SchemaError(
            f"Table {str(table)!r} has no column {missing[0]!r}. Available columns: {', '.join(available)}."
        )
    if not names:
        raise SchemaError(f"No columns to read from {str(table)!r}: pass columns=None to read all.")
    return names


def _where_sql(where: Where, available: Mapping, table: TableName) -> sql.Composable | None:
    if where is None:
        return None
    if isinstance(where, str):
        return sql.SQL("(") + sql.SQL(where) + sql.SQL(")")
    if not isinstance(where, Mapping):
        raise TypeError(f"Expected where= as a SQL string or a mapping. Received: {type(where).__name__}")
    conditions = []
    for column, value in where.items():
        column = identifier(column)
        if column not in available:
            raise SchemaError(f"where= names column {column!r}, which table {str(table)!r} does not have.")
        if value is None:
            conditions.append(sql.SQL("{} IS NULL").format(sql.Identifier(column)))
        elif isinstance(value, list | tuple | set | frozenset):
            conditions.append(sql.SQL("{} = ANY({})").format(sql.Identifier(column), sql.Literal(list(value))))
        else:
            conditions.append(sql.SQL("{} = {}").format(sql.Identifier(column), sql.Literal(_plain(value))))
    return sql.SQL(" AND ").join(conditions) if conditions else None


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _first_row_shapes(cur, table: TableName, specs, where_sql, where) -> dict[str, tuple[int, ...]]:
    """Check that some row matches, and read the shape of each SQL array column from it."""
    arrays = [s for s in specs if s.kind == ARRAY]
    select = [sql.SQL("array_dims({})").format(sql.Identifier(s.name)) for s in arrays] or [sql.SQL("1")]
    query = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(select), table.sql)
    if where_sql is not None:
        query += sql.SQL(" WHERE ") + where_sql
    cur.execute(query + sql.SQL(" LIMIT 1"))
    row = cur.fetchone()
    if row is None:
        if where is None:
            raise DataError(f"Table {str(table)!r} is empty: load rows into it before reading or training.")
        raise DataError(f"No row of table {str(table)!r} matches where={where!r}.")
    return {spec.name: _parse_dims(dims) for spec, dims in zip(arrays, row, strict=False)}


def _parse_dims(dims: str | None) -> tuple[int, ...]:
    """``'[1:28][1:28]'`` -> ``(28, 28)``; NULL (an empty array) -> ``(0,)``."""
    if not dims:
        return (0,)
    return tuple(int(hi) - int(lo) + 1 for lo, hi in re.findall(r"\[(-?\d+):(-?\d+)\]", dims))


def _segment_query(prefix: sql.Composable, segment: Segment, where_sql, *, local: bool = False) -> sql.Composed:
    """The segment's COPY; ``local``: on the segment's own server, whose rows are all its own."""
    conditions = [c for c in (segment.predicate(local=local), where_sql) if c is not None]
    select = prefix + segment.relation.sql
    if conditions:
        select += sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions)
    return sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(select)


# -- Greenplum locality ---------------------------------------------------------------------------


class _Placements:
    def __init__(self, client, workers):
        self.client = client
        self.workers = workers


def _placements(parts: Sequence[Segment], client) -> _Placements | None:
    """Workers on each segment's host, when the database names hosts and a client is at hand."""
    if not any(seg.host for seg in parts):
        return None
    if client is None:
        try:
            from distributed import get_client

            client = get_client()
        except (ImportError, ValueError):
            return None
    workers = workers_by_host(parts, client.nthreads())
    if not any(workers):
        return None
    return _Placements(client, workers)
