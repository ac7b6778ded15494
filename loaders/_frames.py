"""``write_frame``: a pandas DataFrame into a plain table spread over segments, one column per column."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from psycopg2 import sql

from dasktrain._names import TableName, identifier
from dasktrain.errors import DataError
from dasktrain.io._database import Database, connect, transaction
from dasktrain.io._locks import lock_for_creation
from dasktrain.io._retry import retrying

from ._write import DEFAULT_SEGMENTS, _create, _prepare


def write_frame(
    db: Database | str | None,
    table: str,
    frame: pd.DataFrame,
    *,
    segments: int | None = None,
    if_exists: str = "fail",
    cascade: bool = False,
) -> int:
    """Create ``table`` with one plain column per column of ``frame`` and load its rows, in one transaction.

    Numbers become ``double precision`` or ``bigint``, booleans ``boolean``, and anything else
    ``text`` (missing values are NULL). The table gets an ``id bigint`` column (``frame``'s own
    ``id`` column if it has one, else ``0 .. n-1``) and is spread over segments by it, as
    :func:`write_arrays` does: ``DISTRIBUTED BY (id)`` on Greenplum, ``segments`` hash
    partitions on PostgreSQL.

    Parameters
    ----------
    db : Database, str or None
        A handle from :func:`dasktrain.connect`, a DSN, or None for the default database.
    table : str
        Name of the table to create, optionally schema-qualified.
    frame : pandas.DataFrame
        The rows; column names must be plain SQL identifiers (they are folded to lower case).
    segments : int, optional
        PostgreSQL only: number of hash partitions. Default 4.
    if_exists : {"fail", "replace"}, default "fail"
        What to do when the table exists.
    cascade : bool, default False
        With ``if_exists="replace"``: also drop the objects that depend on the old table.

    Returns
    -------
    int
        Number of rows written.

    Examples
    --------
    >>> import pandas as pd, loaders
    >>> frame = pd.DataFrame({"petal_length": [1.4, 4.7], "species": ["setosa", "versicolor"]})
    >>> loaders.write_frame(None, "flowers", frame, if_exists="replace")  # doctest: +SKIP
    2
    """
    name = TableName.parse(table)
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"Expected a pandas DataFrame. Received: {type(frame).__name__}")
    if frame.empty:
        raise DataError("The frame has no rows to write.")
    frame = frame.rename(columns=lambda c: identifier(str(c)))
    if "id" not in frame.columns:
        frame = frame.assign(id=np.arange(len(frame), dtype=np.int64))
    if frame["id"].dtype.kind not in "iu" or frame["id"].duplicated().any():
        raise DataError("The frame's id column must hold unique integers.")
    frame = frame[["id", *[c for c in frame.columns if c != "id"]]]
    column_types = {column: _sql_type(frame[column]) for column in frame.columns}
    segments = DEFAULT_SEGMENTS if segments is None else segments
    if not isinstance(segments, int | np.integer) or isinstance(segments, bool) or segments < 1:
        raise DataError(f"Expected a positive number of segments. Received: segments={segments!r}")
    if if_exists not in ("fail", "replace"):
        raise ValueError(f"Expected if_exists='fail' or 'replace'. Received: if_exists={if_exists!r}")
    csv = frame.to_csv(index=False, header=False, na_rep="")
    db = connect(db)

    def load() -> int:
        conn = db.connection()
        try:
            with transaction(conn) as cur:
                lock_for_creation(cur, name)
                _prepare(cur, name, if_exists, cascade)
                _create(cur, db, name, column_types, int(segments), not_null=("id",))
                copy = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
                    name.sql, sql.SQL(", ").join(sql.Identifier(c) for c in frame.columns)
                )
                cur.copy_expert(copy.as_string(conn), io.StringIO(csv))
                cur.execute(sql.SQL("ANALYZE {}").format(name.sql))
        finally:
            conn.close()
        return len(frame)

    return retrying(f"Loading {str(name)!r}", load)


def _sql_type(column: pd.Series) -> str:
    kind = column.dtype.kind
    if kind == "b":
        return "boolean"
    if kind in "iu":
        return "bigint"
    if kind == "f":
        return "double precision"
    return "text"
