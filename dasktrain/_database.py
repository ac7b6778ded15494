"""Database handles: :func:`connect` and :class:`Database`."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg2
import psycopg2.extensions

from . import _dialect
from ._dialect import Dialect
from .errors import DatabaseConnectionError

DSN_ENV = "DASKTRAIN_DSN"


def redact_dsn(dsn: str) -> str:
    """Return ``dsn`` without its password, safe to print or log.

    >>> "s3cret" in redact_dsn("host=db user=ann password=s3cret dbname=x")
    False
    """
    try:
        params = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError:
        return "<a DSN that could not be parsed>"
    params.pop("password", None)
    return psycopg2.extensions.make_dsn(**params)


@dataclass(frozen=True)
class Database:
    """A handle on one database: its DSN and its dialect.

    A handle holds no open connection, so it can be sent to Dask workers; each
    :meth:`connection` opens a new one. Build it with :func:`connect`.

    Examples
    --------
    >>> db = connect()  # doctest: +SKIP
    >>> with db.cursor() as cur:  # doctest: +SKIP
    ...     cur.execute("SELECT 1")
    """

    dsn: str = field(repr=False)
    dialect: Dialect

    def connection(self) -> psycopg2.extensions.connection:
        """Open a new connection (the caller closes it)."""
        return open_connection(self.dsn)

    @contextlib.contextmanager
    def cursor(self) -> Iterator[psycopg2.extensions.cursor]:
        """A cursor in one transaction: committed on success, rolled back on any error."""
        conn = self.connection()
        try:
            with conn, conn.cursor() as cur:
                yield cur
        finally:
            conn.close()

    def __repr__(self) -> str:
        return f"Database({redact_dsn(self.dsn)!r}, dialect={self.dialect.name!r})"


def open_connection(dsn: str) -> psycopg2.extensions.connection:
    """Connect with ``dsn``; raise :class:`DatabaseConnectionError` without the password on failure."""
    try:
        return psycopg2.connect(dsn)
    except psycopg2.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseConnectionError(
            f"Could not connect to the database {redact_dsn(dsn)!r}: {reason}. "
            f"Check the DSN, or set {DSN_ENV}, or pass dsn=None to use the embedded server."
        ) from None


def connect(dsn: str | Database | None = None) -> Database:
    """Return a handle on the database to read from and write to.

    Parameters
    ----------
    dsn : str or Database, optional
        A libpq connection string or URI. Default: ``$DASKTRAIN_DSN`` if set, else an
        embedded PostgreSQL server (``pgserver``) in a per-user data directory, started on
        first use and reused across runs.

    Returns
    -------
    Database
        A handle that knows the server's dialect (PostgreSQL, Greenplum or Cloudberry).

    Examples
    --------
    >>> import dasktrain
    >>> db = dasktrain.connect()  # doctest: +SKIP
    >>> db.dialect.name  # doctest: +SKIP
    'postgresql'
    """
    if isinstance(dsn, Database):
        return dsn
    if dsn is None:
        dsn = os.environ.get(DSN_ENV) or None
    if dsn is None:
        from ._embedded import embedded_dsn

        dsn = embedded_dsn()
    if not isinstance(dsn, str):
        raise TypeError(f"Expected a DSN string or a Database. Received: dsn={type(dsn).__name__}")
    conn = open_connection(dsn)
    try:
        with conn, conn.cursor() as cur:
            dialect = _dialect.detect(cur)
    finally:
        conn.close()
    return Database(dsn, dialect)
