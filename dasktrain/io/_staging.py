"""Staging tables: a job's output is built aside, segment by segment, and published in one swap.

- Each segment's rows are committed together with a line in the job's *ledger*, under a lock on
  (job, segment). A task Dask runs again (its worker died after committing) finds its segment in
  the ledger and writes nothing: every segment is in the output exactly once.
- The job's client holds an advisory lock on its staging table for as long as it runs. Staging
  tables are named ``dasktrain_staging_<hash of the output's name>_<job>``, so the next job on the
  same output finds those whose owner is gone (a killed client, a database outage) and drops them.
- Publishing is one transaction: the old output (if replacing) goes, the staging table takes its
  name, the ledger goes. When the answer to that commit is lost (a server restart), the retry
  counts it as done only if the output *is* this job's staging table (the same table ``oid``): a
  restart also drops the job's lock, and the next job may have dropped its staging as left
  behind, leaving the old output in place (issue 22: that was reported as success).
- A job that must not replace its output claims the output's name for as long as it runs, so a
  second such job is refused before any work rather than at the end.
"""

from __future__ import annotations

import hashlib
import io
import logging
import uuid
from dataclasses import dataclass

import psycopg2
from psycopg2 import sql

from .._names import TableName
from ..errors import SchemaError, TableExistsError
from ._catalog import exists, regclass_text
from ._database import Database, open_connection, transaction
from ._locks import claim_output, hold_while_running, lock_for_creation, owner_is_gone
from ._retry import retrying

logger = logging.getLogger("dasktrain")
PREFIX = "dasktrain_staging_"


@dataclass
class Staging:
    """The staging and ledger tables of one job writing ``output``.

    >>> Staging.new(TableName(None, "scores")).table.name.startswith("dasktrain_staging_")
    True
    """

    output: TableName
    table: TableName
    ledger: TableName
    oid: int | None = None  # the staging table's, once created: still its oid once it is the output

    @classmethod
    def new(cls, output: TableName) -> Staging:
        name = f"{_prefix(output)}{uuid.uuid4().hex[:10]}"
        return cls(output, TableName(output.schema, name), TableName(output.schema, name + "_done"))

    def create_sql(self, dialect, columns: sql.Composable, distributed_by: str | None) -> list[sql.Composed]:
        """The staging table, spread on Greenplum by the source's key (a join with the source needs no
        motion), and its ledger, spread by segment."""
        spread = dialect.distribution(distributed_by) if distributed_by else sql.SQL("")
        return [
            sql.SQL("CREATE TABLE {} ({}){}").format(self.table.sql, columns, spread),
            sql.SQL("CREATE TABLE {} (segment integer PRIMARY KEY, rows bigint NOT NULL){}").format(
                self.ledger.sql, dialect.distribution("segment")
            ),
        ]

    def start(self, db: Database, columns: sql.Composable, distributed_by: str | None, *, replace: bool = True):
        """Drop stale staging tables of the same output, create this job's, and mark the job alive.

        Without ``replace``, also claim the output's name: :class:`TableExistsError` when another
        job that must not replace it is writing it now. Returns the connection holding the job's
        locks: close it when the job ends.
        """
        holder = db.connection()
        try:
            with transaction(holder) as cur:
                if not replace and not claim_output(cur, self.output):
                    raise TableExistsError(
                        f"Another job is writing the new table {str(self.output)!r} now: wait for it, or pass "
                        f"replace=True (--replace) to replace what it writes."
                    )
                hold_while_running(cur, self.table)
            with db.cursor() as cur:
                for stale in _stale_tables(cur, self.output):
                    if stale != self.table:
                        logger.warning("dropping %s, left behind by an earlier job that did not finish", stale)
                        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(stale.sql))
                for statement in self.create_sql(db.dialect, columns, distributed_by):
                    cur.execute(statement)
                cur.execute(
                    sql.SQL("COMMENT ON TABLE {} IS {}").format(
                        self.table.sql, sql.Literal(f"dasktrain staging for {self.output}; dropped when done")
                    )
                )
                self.oid = _oid(cur, self.table)
        except BaseException:
            holder.close()
            raise
        return holder

    def writer(self, dsn: str) -> SegmentWriter:
        """What a worker needs to write one segment (plain strings: cheap to send)."""
        conn = open_connection(dsn)
        try:
            return SegmentWriter(
                dsn,
                sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(self.table.sql).as_string(conn),
                sql.SQL("SELECT rows FROM {} WHERE segment = %s").format(self.ledger.sql).as_string(conn),
                sql.SQL("INSERT INTO {} (segment, rows) VALUES (%s, %s)").format(self.ledger.sql).as_string(conn),
                str(self.table),
            )
        finally:
            conn.close()

    def publish(
        self, db: Database, segments: int, rows_written: int, replace: bool, retype: dict[str, str] | None = None
    ) -> int:
        """Put the staging table in place of the output in one transaction; return its rows.

        ``retype`` maps columns written as text to the SQL type (a ``pg_type`` name, e.g. ``"bool"``)
        they get in the output, in the same transaction. Raises :class:`SchemaError` when the job's
        rows cannot be published (its staging table is gone and the output is not it), and
        :class:`TableExistsError` when, without ``replace``, another job created the output meanwhile.
        """

        def swap() -> int:
            with db.cursor() as cur:
                lock_for_creation(cur, self.output)  # publishers of one output, one at a time
                if self.oid is not None and _oid(cur, self.output) == self.oid:
                    return rows_written  # an earlier attempt committed; only its answer was lost
                if not exists(cur, self.table) or not exists(cur, self.ledger):
                    raise SchemaError(
                        f"Nothing was published into {str(self.output)!r}: this job's staging table "
                        f"{str(self.table)!r} is gone, dropped as left behind by another job on the same output "
                        f"after the database lost this job's lock (a server restart). "
                        + ("The output keeps its previous rows. " if exists(cur, self.output) else "")
                        + "Run the job again."
                    )
                if not replace and exists(cur, self.output):
                    raise TableExistsError(
                        f"Output table {str(self.output)!r} was created by another job while this one ran: "
                        f"nothing was published. Pass replace=True (--replace) to replace it."
                    )
                cur.execute(sql.SQL("SELECT count(*), coalesce(sum(rows), 0) FROM {}").format(self.ledger.sql))
                written, rows = cur.fetchone()
                if written != segments:
                    raise SchemaError(f"Only {written} of {segments} segments reached {str(self.table)!r}.")
                for column, type_name in (retype or {}).items():
                    cur.execute(
                        sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING {}::{}").format(
                            self.table.sql, sql.Identifier(column), sql.Identifier(type_name),
                            sql.Identifier(column), sql.Identifier(type_name),
                        )  # fmt: skip
                    )
                if replace:
                    drop_table(cur, self.output)
                cur.execute(
                    sql.SQL("ALTER TABLE {} RENAME TO {}").format(self.table.sql, sql.Identifier(self.output.name))
                )
                cur.execute(sql.SQL("COMMENT ON TABLE {} IS NULL").format(self.output.sql))
                cur.execute(sql.SQL("DROP TABLE {}").format(self.ledger.sql))
                return int(rows)

        return retrying(f"Publishing {str(self.output)!r}", swap)

    def drop(self, db: Database) -> None:
        """Drop the staging and ledger tables; a failure is logged, never raised over the real error."""
        try:
            with db.cursor() as cur:
                for table in (self.table, self.ledger):
                    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table.sql))
        except Exception as exc:  # e.g. the database is down: the next job on this output drops them
            logger.warning("could not drop %s (the next job on %s will): %s", self.table, self.output, exc)


@dataclass(frozen=True)
class SegmentWriter:
    """Writes one segment's rows into the staging table exactly once (runs on a worker)."""

    dsn: str
    copy: str
    recorded: str
    record: str
    label: str

    def write(self, segment: int, payload: bytes, rows: int) -> int:
        """COPY ``payload`` (binary COPY data holding ``rows`` rows) unless the segment is already in.

        Returns the rows the staging table holds for the segment.
        """

        def attempt() -> int:
            conn = open_connection(self.dsn)
            try:
                with transaction(conn) as cur:
                    # A second run of the same segment waits here, then finds the first one's line.
                    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s), %s)", (self.label, segment))
                    try:
                        cur.execute(self.recorded, (segment,))
                    except psycopg2.errors.UndefinedTable:
                        raise SchemaError(
                            f"The job writing into {self.label!r} has ended (published or abandoned): this late "
                            f"run of segment {segment} writes nothing."
                        ) from None
                    done = cur.fetchone()
                    if done is not None:
                        return int(done[0])
                    cur.copy_expert(self.copy, io.BytesIO(payload))
                    cur.execute(self.record, (segment, rows))
                    return rows
            finally:
                conn.close()

        return retrying(f"Writing segment {segment} into {self.label!r}", attempt)


def _oid(cur, table: TableName) -> int | None:
    """The table's ``oid`` (kept when it is renamed), None when there is no such table."""
    cur.execute("SELECT to_regclass(%s)::oid", (regclass_text(cur, table),))
    return cur.fetchone()[0]


def _prefix(output: TableName) -> str:
    return f"{PREFIX}{hashlib.sha256(output.name.encode()).hexdigest()[:10]}_"


def _stale_tables(cur, output: TableName) -> list[TableName]:
    """Staging tables of ``output`` whose job is gone (no session holds their lock)."""
    cur.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = coalesce(%s, current_schema()) AND c.relkind IN ('r', 'p') AND c.relname LIKE %s",
        (output.schema, _prefix(output).replace("_", r"\_") + "%"),
    )
    found = [TableName(output.schema, name) for _, name in cur.fetchall()]
    staging = [t for t in found if not t.name.endswith("_done")]
    stale = []
    for table in staging:
        if owner_is_gone(cur, table):
            stale += [table, table.sibling("_done")]
    # A ledger whose staging table is gone is stale too.
    stale += [t for t in found if t.name.endswith("_done") and TableName(t.schema, t.name[:-5]) not in staging]
    return stale


def drop_table(cur, table: TableName, *, cascade: bool = False) -> None:
    """Drop ``table`` if it exists; refuse, naming them, when views or other objects depend on it.

    The caller's transaction rolls back on the error, so nothing is dropped.
    """
    try:
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}{}").format(table.sql, sql.SQL(" CASCADE" if cascade else "")))
    except psycopg2.errors.DependentObjectsStillExist as exc:
        detail = (exc.diag.message_detail or "other objects depend on it").replace("\n", "; ")
        raise SchemaError(
            f"Cannot replace {str(table)!r}: {detail}. Drop or change them first"
            + ("." if cascade else ", or ask for cascade=True to drop them too.")
        ) from None
