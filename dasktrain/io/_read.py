"""``read_table``: a database table as a Dask DataFrame, one partition per segment."""

from __future__ import annotations

import io
import logging
import re
import socket
import uuid
from collections.abc import Mapping, Sequence
from functools import lru_cache

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
from psycopg2 import sql

from .._names import TableName, identifier
from ..errors import DataError, SchemaError
from . import _direct, _pgbinary
from ._catalog import array_metadata, table_info
from ._columns import ARRAY, BYTES, TENSOR, TEXT, ColumnSpec, spec_from_catalog
from ._database import Database, connect, open_connection, transaction
from ._retry import retrying
from ._segments import Segment, list_segments
from ._snapshot import ExportedSnapshot, use_snapshot
from ._tensor_column import tensor_series

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
    direct : "auto", True or False, default "auto"
        Greenplum and Cloudberry: read each segment straight from its own server (a utility-mode
        connection to the host and port in ``gp_segment_configuration``), not through the
        coordinator, while the coordinator holds ``LOCK TABLE ... IN SHARE MODE`` for as long as
        the frame is alive (writers wait; readers do not). "auto" does so when the segments accept
        utility connections and otherwise reads through the coordinator, saying so once; True
        makes a refusal an error. Ignored on PostgreSQL, and for replicated tables and views.
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
        parts = list_segments(cur, db.dialect, info, npartitions)
        dsns = _direct.plan(db, parts, direct)
        queries = [
            _segment_query(query_prefix, seg, where_sql, local=dsns is not None).as_string(cur.connection)
            for seg in parts
        ]
    held = _direct.ShareLock.take(db, name) if dsns is not None else None
    dsns = dsns or [None] * len(parts)
    specs = [_with_shape(spec, shapes.get(spec.name)) for spec in specs]
    meta = _meta(specs)
    placements = _placements(parts, client)
    parts_to_read = [(k, query, dsn) for k, (query, dsn) in enumerate(zip(queries, dsns, strict=True))]
    if placements:
        reader = SegmentReader(db.dsn, specs, str(name))
        futures = [
            placements.client.submit(
                reader,
                part,
                pure=False,
                **({"workers": workers, "allow_other_workers": True} if workers else {}),
            )
            for part, workers in zip(parts_to_read, placements.workers, strict=True)
        ]
        if held is not None:  # the reads run now: release the lock when the last one is done
            _release_when_done(futures, held)
        return dd.from_delayed(futures, meta=meta, verify_meta=False)
    shared = ExportedSnapshot.export(db) if snapshot and len(queries) > 1 and not db.dialect.distributed else None
    reader = SegmentReader(db.dsn, specs, str(name), shared, held)
    # A table can change between two calls: a fresh `read_id` gives each call its own task keys,
    # so Dask never hands back partitions an earlier call left in memory.
    return dd.from_map(reader, parts_to_read, read_id=uuid.uuid4().hex, meta=meta, label=f"read-{name.name}")


def _release_when_done(futures: list, held) -> None:
    remaining = {f.key for f in futures}

    def done(future) -> None:
        remaining.discard(future.key)
        if not remaining:
            held.close()

    for future in futures:
        future.add_done_callback(done)


class SegmentReader:
    """Reads one segment of a table: a picklable callable sent to the workers.

    It carries the exported snapshot's id; in the client process it also keeps the snapshot
    itself alive, so every segment of the frame (re-read after a worker loss too) sees the same
    data while the frame exists.
    """

    def __init__(
        self, dsn: str, specs: Sequence[ColumnSpec], table: str, snapshot: ExportedSnapshot | None = None, held=None
    ):
        self.dsn, self.specs, self.table = dsn, list(specs), table
        self.snapshot_id = snapshot.id if snapshot is not None else None
        self._snapshot = snapshot  # client side only: not pickled
        self._held = held  # client side only: a lock on the coordinator held while the frame lives

    def __reduce__(self):
        return SegmentReader._on_worker, (self.dsn, self.specs, self.table, self.snapshot_id)

    @staticmethod
    def _on_worker(dsn, specs, table, snapshot_id) -> SegmentReader:
        reader = SegmentReader(dsn, specs, table)
        reader.snapshot_id = snapshot_id
        return reader

    def __dask_tokenize__(self):
        return (type(self).__name__, self.table, self.snapshot_id, id(self))

    def __call__(self, part: tuple[int, str, str | None], read_id: str | None = None) -> pd.DataFrame:
        """Read segment ``part = (k, COPY statement, its own DSN or None)``. ``read_id`` only makes keys unique."""
        segment, query, dsn = part
        return read_segment(query, dsn or self.dsn, self.specs, snapshot=self.snapshot_id, label=f"segment {segment}")


def read_segment(
    query: str, dsn: str, specs: Sequence[ColumnSpec], *, snapshot: str | None = None, label: str = "a segment"
) -> pd.DataFrame:
    """Run one segment's binary COPY and decode it into a pandas DataFrame (runs on a worker).

    A broken connection (a server restart, a terminated backend) is retried with backoff; the
    error that remains is a :class:`~dasktrain.errors.ConnectionLostError` with the server's reason.
    """

    def attempt() -> io.BytesIO:
        buffer = io.BytesIO()
        conn = open_connection(dsn)
        try:
            if snapshot is not None and not use_snapshot(conn, snapshot):
                logger.warning("%s: the read's shared snapshot is gone; reading it with a snapshot of its own", label)
            with transaction(conn) as cur:
                cur.copy_expert(query, buffer)
        finally:
            conn.close()
        return buffer

    buffer = retrying(f"Reading {label}", attempt)
    return _frame(_pgbinary.decode(buffer.getbuffer(), specs), specs)


def _frame(columns: dict[str, np.ndarray], specs: Sequence[ColumnSpec]) -> pd.DataFrame:
    data = {}
    for spec in specs:
        values = columns[spec.name]
        if spec.kind in (ARRAY, TENSOR):
            if values.shape[1:] != spec.shape and len(values):
                raise DataError(
                    f"Column {spec.name!r} holds arrays of shape {values.shape[1:]} in one segment but "
                    f"{spec.shape} in another: ragged arrays cannot form one tensor."
                )
            data[spec.name] = tensor_series(values.reshape(len(values), *spec.shape), spec.name)
        elif spec.kind == BYTES:
            data[spec.name] = pd.Series(pd.arrays.ArrowExtensionArray(pa.array(values, pa.binary())))
        elif spec.kind == TEXT:
            data[spec.name] = pd.Series(values, dtype=object)
        else:
            data[spec.name] = values
    return pd.DataFrame(data)


def _meta(specs: Sequence[ColumnSpec]) -> pd.DataFrame:
    empty = {spec.name: _pgbinary.empty_column(spec) for spec in specs}
    return _frame(empty, specs)


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
    conditions = [c for c in (None if local else segment.predicate(), where_sql) if c is not None]
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
