"""One snapshot for all the segments of a read (PostgreSQL's exported snapshots).

Each segment is read on its own connection, in its own transaction. Without care, a table that
changes during the read would be seen at different moments by different segments (rows counted
twice or missed). :class:`ExportedSnapshot` opens a transaction in the client process and exports
its snapshot with ``pg_export_snapshot()``; every segment reader starts with
``SET TRANSACTION SNAPSHOT`` and so sees exactly the same data, as long as that transaction is
open. It stays open while the dask DataFrame from :func:`dasktrain.read_table` (or any frame made
from it) is alive, and two minutes more (a persisted frame drops its graph before the workers
read), or until the process exits.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref

import psycopg2

from ._retry import reason

logger = logging.getLogger("dasktrain")


class HeldTransaction:
    """A connection whose open transaction a read's segments depend on (a snapshot, a lock).

    It stays open while the frame refers to it, and ``GRACE`` seconds more: ``read_table(...).persist()``
    drops the frame as soon as the reads are submitted, before the workers start them.
    """

    GRACE = 120.0

    def __init__(self, conn, grace: float | None = None):
        self._conn = conn
        self._close = weakref.finalize(self, _close_later, conn, self.GRACE if grace is None else grace)

    def close(self) -> None:
        """End the transaction now."""
        self._close.detach()
        end_transaction(self._conn)


class ExportedSnapshot(HeldTransaction):
    """A snapshot exported by an open ``REPEATABLE READ`` transaction in this process.

    Examples
    --------
    >>> snapshot = ExportedSnapshot.export(db)  # doctest: +SKIP
    >>> snapshot.id  # doctest: +SKIP
    '00000003-0000001B-1'
    """

    def __init__(self, conn, snapshot_id: str, grace: float | None = None):
        super().__init__(conn, grace)
        self.id = snapshot_id

    @classmethod
    def export(cls, db) -> ExportedSnapshot | None:
        """Export a snapshot, or None where the server cannot (a hot standby, an old server)."""
        conn = db.connection()
        try:
            conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
            with conn.cursor() as cur:
                cur.execute("SELECT pg_export_snapshot()")
                return cls(conn, cur.fetchone()[0])
        except psycopg2.Error as exc:
            conn.close()
            logger.info("no exported snapshot (%s): each segment is read in its own transaction", reason(exc))
            return None


def end_transaction(conn) -> None:
    """Roll back ``conn``'s open transaction, then close it.

    A connection closed in mid-transaction ends it too, but not always cleanly: Greenplum 6's
    coordinator, closed under a parallel retrieve cursor whose endpoints were aborted, logs
    ``FATAL ... Endpoint retrieve session is quitting`` and accepts no new session until restarted.
    An explicit ROLLBACK first avoids that.
    """
    try:
        if not conn.closed:
            conn.rollback()
    except psycopg2.Error:
        pass  # the server is gone or the session broken: closing is all that is left
    finally:
        conn.close()


def _close_later(conn, seconds: float) -> None:
    """End ``conn``'s transaction after ``seconds``, in a daemon thread (at exit, the process closes it anyway)."""
    timer = threading.Timer(seconds, end_transaction, (conn,))
    timer.daemon = True
    timer.start()


def use_snapshot(conn, snapshot_id: str | None) -> bool:
    """Start ``conn``'s transaction on the exported snapshot; False (and a fresh transaction) when it is gone."""
    if snapshot_id is None:
        return False
    conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot_id,))
        return True
    except (psycopg2.errors.InvalidParameterValue, psycopg2.errors.ObjectNotInPrerequisiteState):
        with contextlib.suppress(psycopg2.Error):
            conn.rollback()
        return False
