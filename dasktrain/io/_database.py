"""Database handles: :func:`connect` and :class:`Database`."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote

import psycopg2
import psycopg2.extensions

from ..errors import ConnectionLostError, DatabaseConnectionError
from . import _dialect
from ._dialect import Dialect
from ._retry import is_transient, reason, retrying

DSN_ENV = "DASKTRAIN_DSN"
_HIDDEN = "***"
_UNPARSEABLE = "invalid dsn: "
_URI_PASSWORD = re.compile(r"(\w[\w+.-]*://[^:/@\s]*:)([^@\s]*)(@)")
_KEY_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'\"]+)", re.IGNORECASE)


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


def redact_text(text: str, *dsns: str | None) -> str:
    """``text`` with every password hidden: those of ``dsns`` wherever they stand alone (not inside a
    longer word), and any in a URI or a ``password=`` setting, even in a DSN libpq could not parse.

    >>> redact_text('invalid URI "postgresql://u:s3cret@[::1"', "postgresql://u:s3cret@[::1")
    'invalid URI "postgresql://u:***@[::1"'
    >>> redact_text("bad token: s3cret%zzpw", "postgresql://u:s3cret%zzpw@h/db")
    'bad token: ***'
    >>> redact_text('invalid URI query parameter: "bogus"', "postgresql://u:p@h/db?bogus=1")
    'invalid URI query parameter: "bogus"'
    """
    for secret in sorted({s for dsn in dsns if dsn for s in _passwords(dsn)}, key=len, reverse=True):
        # Only where it stands alone: a password "p" must not turn "parameter" into "***arameter".
        left = r"(?<!\w)" if re.match(r"\w", secret[0]) else ""
        right = r"(?!\w)" if re.match(r"\w", secret[-1]) else ""
        text = re.sub(left + re.escape(secret) + right, _HIDDEN, text)
    text = _URI_PASSWORD.sub(lambda m: m.group(1) + _HIDDEN + m.group(3), text)
    return _KEY_PASSWORD.sub(lambda m: m.group(1) + _HIDDEN, text)


def _passwords(dsn: str) -> set[str]:
    """The password of ``dsn`` in every spelling it may be echoed in (raw, percent-decoded)."""
    found = set()
    with contextlib.suppress(psycopg2.ProgrammingError):
        password = psycopg2.extensions.parse_dsn(dsn).get("password")
        if password:
            found.add(password)
    for pattern, group in ((_URI_PASSWORD, 2), (_KEY_PASSWORD, 2)):
        for match in pattern.finditer(dsn):
            raw = match.group(group).strip("'")
            if raw:
                found |= {raw, unquote(raw)}
    return found


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
        """Open a new connection (the caller closes it); a server that is restarting gets a few tries."""
        return retrying("Connecting to the database", lambda: open_connection(self.dsn))

    @contextlib.contextmanager
    def cursor(self) -> Iterator[psycopg2.extensions.cursor]:
        """A cursor in one transaction: committed on success, rolled back on any error."""
        conn = self.connection()
        try:
            with transaction(conn) as cur:
                yield cur
        finally:
            conn.close()

    def __repr__(self) -> str:
        return f"Database({redact_dsn(self.dsn)!r}, dialect={self.dialect.name!r})"


def open_connection(dsn: str) -> psycopg2.extensions.connection:
    """Connect with ``dsn``; raise :class:`DatabaseConnectionError` without the password on failure.

    The error's ``transient`` attribute says whether trying again may help (a server that is
    starting, a refused connection), judged on the database's own words, and its ``reason`` is
    those words alone, for the lines that announce a retry.
    """
    try:
        return psycopg2.connect(dsn)
    except psycopg2.Error as exc:
        why = redact_text(reason(exc), dsn)
        if isinstance(exc, psycopg2.ProgrammingError):  # libpq could not read the DSN at all
            message = (
                f"Could not read the DSN {redact_text(dsn, dsn)!r}: {why.removeprefix(_UNPARSEABLE)}. Write it as "
                f"'host=H port=P dbname=D user=U' or 'postgresql://user@host:port/dbname'"
            )
        else:
            message = f"Could not connect to the database {redact_dsn(dsn)!r}: {why}. Check the DSN, or set {DSN_ENV}"
        error = DatabaseConnectionError(f"{message}, or pass dsn=None to use the embedded server.")
        error.transient = is_transient(exc)
        error.reason = why
        raise error from None


@contextlib.contextmanager
def transaction(conn) -> Iterator[psycopg2.extensions.cursor]:
    """A cursor on ``conn`` in one transaction: committed on success, rolled back on any error.

    Unlike ``with conn:``, a failed rollback on a connection that is already gone never hides
    the error that broke it; a broken connection surfaces as :class:`ConnectionLostError`.

    >>> with transaction(db.connection()) as cur:  # doctest: +SKIP
    ...     cur.execute("SELECT 1")
    """
    try:
        with conn.cursor() as cur:
            yield cur
        conn.commit()
    except BaseException as exc:
        with contextlib.suppress(psycopg2.Error):
            conn.rollback()
        if isinstance(exc, psycopg2.Error) and is_transient(exc):
            raise ConnectionLostError(f"The database connection broke: {reason(exc)}.") from exc
        raise


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

    def detect() -> Dialect:
        conn = open_connection(dsn)
        try:
            with transaction(conn) as cur:
                return _dialect.detect(cur)
        finally:
            conn.close()

    return Database(dsn, retrying("Connecting to the database", detect))
