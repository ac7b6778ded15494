"""``write_arrays``: numpy arrays into a table spread over segments, in one COPY transaction."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence

import numpy as np
import psycopg2
from psycopg2 import sql
from tqdm.auto import tqdm

from dasktrain._names import TableName
from dasktrain.errors import DataError, TableExistsError
from dasktrain.io import _pgbinary
from dasktrain.io._catalog import SUMMARY_SUFFIX, exists
from dasktrain.io._columns import SCALAR, TENSOR, ColumnSpec, sql_type_for
from dasktrain.io._database import Database, connect, transaction
from dasktrain.io._locks import lock_for_creation
from dasktrain.io._retry import retrying
from dasktrain.io._segments import greenplum_segment_count
from dasktrain.io._staging import drop_table

DEFAULT_SEGMENTS = 4
_CHUNK_BYTES = 8 << 20  # rows are encoded and sent about 8 MiB at a time


def write_arrays(
    db: Database | str | None,
    table: str,
    x,
    y=None,
    *,
    segments: int | None = None,
    ids=None,
    if_exists: str = "fail",
    cascade: bool = False,
    class_values: Sequence[str] | None = None,
    source: str | None = None,
    progress: bool = False,
) -> int:
    """Create ``table`` and bulk-load arrays into it, spread over segments.

    The table has columns ``id bigint``, ``x bytea`` (each row's array, raw) and, when ``y`` is
    given, ``y`` (a plain column for one label per row, else ``bytea``). Dtypes and shapes are
    kept in ``<table>_summary``, so :func:`dasktrain.read_table` gives back the exact arrays.
    On Greenplum the table is ``DISTRIBUTED BY (id)``; on PostgreSQL it is
    ``PARTITION BY HASH (id)`` with ``segments`` leaves named ``<table>_seg<k>``.
    The whole load is one transaction: after a failure no table is left behind.

    Parameters
    ----------
    db : Database, str or None
        A handle from :func:`dasktrain.connect`, a DSN, or None for the default database.
    table : str
        Name of the table to create, optionally schema-qualified.
    x : array-like of shape (n, ...)
        Features: ``n`` numeric arrays of one shape.
    y : array-like of shape (n,) or (n, ...), optional
        Labels or targets.
    segments : int, optional
        PostgreSQL only: number of hash partitions. Default 4. Greenplum uses its own segments.
    ids : array-like of int, optional
        Unique row ids. Default ``0 .. n-1``.
    if_exists : {"fail", "replace"}, default "fail"
        What to do when the table exists: raise :class:`~dasktrain.errors.TableExistsError`,
        or drop it and its summary in the same transaction.
    cascade : bool, default False
        With ``if_exists="replace"``: also drop the views and other objects that depend on the
        old table. By default their existence is an error naming them, and nothing changes.
    class_values : list of str, optional
        Names of the classes, stored in the summary. Default: the distinct labels.
    source : str, optional
        Where the data came from (a file or folder), stored in the summary.
    progress : bool, default False
        Show a progress bar.

    Returns
    -------
    int
        Number of rows written.

    Examples
    --------
    >>> import numpy as np, loaders
    >>> x = np.random.randint(0, 255, (100, 28, 28), dtype=np.uint8)
    >>> loaders.write_arrays(None, "tiny", x, np.arange(100) % 10, if_exists="replace")  # doctest: +SKIP
    100
    """
    name = TableName.parse(table)
    x = _numeric_array(x, "x")
    n = len(x)
    if n == 0:
        raise DataError("x is empty: there are no rows to write.")
    if x[0].size == 0:
        raise DataError(f"x has rows of shape {x.shape[1:]}, which hold no values.")
    data = {"id": _ids(ids, n), "x": x}
    specs = [
        ColumnSpec("id", SCALAR, wire=np.dtype(">i8"), dtype=np.dtype("i8")),
        ColumnSpec("x", TENSOR, wire=_stored(x.dtype), dtype=x.dtype, shape=x.shape[1:]),
    ]
    column_types = {"id": "bigint", "x": "bytea"}
    if y is not None:
        y = _numeric_array(y, "y")
        if len(y) != n:
            raise DataError(f"x has {n} rows but y has {len(y)}: they must have one label per row.")
        spec, column_types["y"] = _label_column(y)
        specs.append(spec)
        data["y"] = y
    if segments is None:
        segments = DEFAULT_SEGMENTS
    if not isinstance(segments, int | np.integer) or isinstance(segments, bool) or segments < 1:
        raise DataError(f"Expected a positive number of segments. Received: segments={segments!r}")
    if if_exists not in ("fail", "replace"):
        raise ValueError(f"Expected if_exists='fail' or 'replace'. Received: if_exists={if_exists!r}")
    # Tensors are stored as raw bytes of `wire`; scalar labels as SQL numbers cast back to `dtype`.
    metadata = {
        s.name: {"dtype": (s.wire if s.kind == TENSOR else s.dtype).str, "shape": list(s.shape)}
        for s in specs
        if s.name != "id"
    }
    if class_values is None and y is not None and y.ndim == 1 and y.dtype.kind in "biu":
        class_values = [str(v) for v in np.unique(y)]

    db = connect(db)

    def load() -> int:
        conn = db.connection()
        try:
            with transaction(conn) as cur:
                lock_for_creation(cur, name)  # a concurrent first load waits here, then finds the table
                _prepare(cur, name, if_exists, cascade)
                _create(cur, db, name, column_types, int(segments))
                stream = _CopyStream(specs, data, progress=progress, table=str(name))
                copy = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(
                    name.sql, sql.SQL(", ").join(sql.Identifier(s.name) for s in specs)
                )
                try:
                    cur.copy_expert(copy.as_string(conn), stream, size=1 << 20)
                except psycopg2.Error:
                    # psycopg2 reports an error raised while reading our data as QueryCanceled.
                    if stream.error is not None:
                        raise stream.error from None
                    raise
                finally:
                    stream.close_bar()
                _write_summary(cur, name, specs, metadata, class_values, source, n, segments, db)
                cur.execute(sql.SQL("ANALYZE {}").format(name.sql))
        finally:
            conn.close()
        return n

    return retrying(f"Loading {str(name)!r}", load)


def _numeric_array(values, role: str) -> np.ndarray:
    try:
        array = np.asarray(values)
    except ValueError as exc:
        raise DataError(
            f"{role} is ragged: its rows have different shapes ({exc}). Pad or resize them to one shape."
        ) from None
    if array.dtype == object:
        raise DataError(
            f"{role} has dtype object: its rows are ragged or not numbers. "
            f"Give numeric arrays of one shape (uint8, int, float or bool)."
        )
    if array.dtype.kind not in "biuf":
        raise DataError(f"{role} has dtype {array.dtype}; expected numbers (uint8, int, float or bool).")
    if array.ndim == 0:
        raise DataError(f"{role} is a single value; expected one row per example.")
    return array


def _ids(ids, n: int) -> np.ndarray:
    if ids is None:
        return np.arange(n, dtype=np.int64)
    ids = np.asarray(ids)
    if ids.ndim != 1 or len(ids) != n:
        raise DataError(f"ids has shape {ids.shape}; expected one id per row of x ({n},).")
    if ids.dtype.kind not in "iu":
        raise DataError(f"ids has dtype {ids.dtype}; expected integers.")
    if ids.dtype.kind == "u" and ids.size and ids.max() > np.iinfo(np.int64).max:
        raise DataError("ids has values above the bigint range.")
    ids = ids.astype(np.int64)
    if len(np.unique(ids)) != n:
        raise DataError("ids has duplicate values; every row needs a unique id.")
    return ids


def _stored(dtype: np.dtype) -> np.dtype:
    """Arrays are stored little-endian whatever the machine, with the dtype recorded."""
    return dtype.newbyteorder("<") if dtype.byteorder not in ("|", "<") else dtype


def _label_column(y: np.ndarray) -> tuple[ColumnSpec, str]:
    if y.ndim == 1:
        if y.dtype.kind == "u" and y.dtype.itemsize == 8 and y.size and y.max() > np.iinfo(np.int64).max:
            raise DataError("y has values above the bigint range.")
        sql_type, wire = sql_type_for(y.dtype)
        return ColumnSpec("y", SCALAR, wire=wire, dtype=y.dtype), sql_type
    return ColumnSpec("y", TENSOR, wire=_stored(y.dtype), dtype=y.dtype, shape=y.shape[1:]), "bytea"


def _prepare(cur, name: TableName, if_exists: str, cascade: bool) -> None:
    summary = name.sibling(SUMMARY_SUFFIX)
    present = [t for t in (name, summary) if exists(cur, t)]
    if present and if_exists == "fail":
        raise TableExistsError(
            f"Table {str(present[0])!r} already exists. Choose another name, or pass "
            f"if_exists='replace' (--replace on the command line) to drop and rewrite it."
        )
    for table in present:
        drop_table(cur, table, cascade=cascade)


def create_table_sql(
    db: Database, name: TableName, column_types: dict[str, str], segments: int, not_null=None
) -> list:
    """The statements creating the table spread over segments, for this database's dialect.

    Every column is ``NOT NULL``, or only those in ``not_null`` when it is given.
    """
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}{}").format(
            sql.Identifier(column), sql.SQL(sql_type),
            sql.SQL(" NOT NULL" if not_null is None or column in not_null else ""),
        )  # fmt: skip
        for column, sql_type in column_types.items()
    )
    if db.dialect.distributed:
        return [sql.SQL("CREATE TABLE {} ({}){}").format(name.sql, columns, db.dialect.distribution("id"))]
    statements = [sql.SQL("CREATE TABLE {} ({}) PARTITION BY HASH (id)").format(name.sql, columns)]
    for k in range(segments):
        statements.append(
            sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES WITH (MODULUS {}, REMAINDER {})").format(
                name.sibling(f"_seg{k}").sql, name.sql, sql.Literal(segments), sql.Literal(k)
            )
        )
    return statements


def _create(cur, db: Database, name: TableName, column_types: dict[str, str], segments: int, not_null=None) -> None:
    for statement in create_table_sql(db, name, column_types, segments, not_null):
        cur.execute(statement)


def summary_table_sql(dialect, summary: TableName) -> sql.Composed:
    """The table's metadata row (MADlib's preprocessor summary), copied to every segment on Greenplum."""
    return sql.SQL(
        "CREATE TABLE {} (source_table text, output_table text, independent_varname text, "
        "dependent_varname text, dependent_vartype text, class_values text[], num_classes integer, "
        "num_rows bigint, num_segments integer, array_columns jsonb, loader text, "
        "created_at timestamptz DEFAULT now()){}"
    ).format(summary.sql, dialect.distribution())


def _write_summary(cur, name, specs, metadata, class_values, source, n, segments, db) -> None:
    summary = name.sibling(SUMMARY_SUFFIX)
    cur.execute(summary_table_sql(db.dialect, summary))
    has_y = any(s.name == "y" for s in specs)
    cur.execute(
        sql.SQL(
            "INSERT INTO {} (source_table, output_table, independent_varname, dependent_varname, "
            "dependent_vartype, class_values, num_classes, num_rows, num_segments, array_columns, loader) "
            "VALUES (%s, %s, 'x', %s, %s, %s, %s, %s, %s, %s::jsonb, 'dasktrain')"
        ).format(summary.sql),
        (
            source,
            str(name),
            "y" if has_y else None,
            metadata.get("y", {}).get("dtype"),
            list(class_values) if class_values is not None else None,
            len(class_values) if class_values is not None else None,
            n,
            greenplum_segment_count(cur) if db.dialect.distributed else segments,
            json.dumps(metadata),
        ),
    )


class _CopyStream(io.RawIOBase):
    """A file-like object psycopg2 reads the binary COPY stream from, encoded chunk by chunk."""

    def __init__(self, specs, data, *, progress: bool, table: str):
        n = len(data["id"])
        row_bytes = sum(v[:1].nbytes + 6 for v in data.values()) + 2
        self._chunk_rows = max(1, _CHUNK_BYTES // row_bytes)
        self._bar = tqdm(total=n, unit="rows", desc=f"loading {table}", disable=not progress)
        self._chunks = self._generate(specs, data, n)
        self._pending, self._pos = memoryview(b""), 0
        self.error: Exception | None = None

    def _generate(self, specs, data, n) -> Iterator[bytes]:
        yield _pgbinary.HEADER
        for start in range(0, n, self._chunk_rows):
            stop = min(n, start + self._chunk_rows)
            yield _pgbinary.encode_rows(specs, {k: v[start:stop] for k, v in data.items()})
            self._bar.update(stop - start)
        yield _pgbinary.TRAILER

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._pos >= len(self._pending):
            try:
                chunk = next(self._chunks, None)
            except Exception as exc:
                self.error = exc
                raise
            if chunk is None:
                return b""
            self._pending, self._pos = memoryview(chunk), 0
        end = len(self._pending) if size < 0 else self._pos + size
        out = self._pending[self._pos : end]
        self._pos += len(out)
        return bytes(out)

    def close_bar(self) -> None:
        self._bar.close()
