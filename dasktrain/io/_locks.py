"""Advisory locks keyed on table names: who may create a shared table, and which jobs are alive.

PostgreSQL (and Greenplum's coordinator) grant advisory locks by a pair of integers; ours use a
fixed first key per purpose and ``hashtext(schema.table)`` as the second, so two processes naming
the same table (qualified or through the search path) contend for the same lock.
"""

from __future__ import annotations

from psycopg2 import sql

from .._names import TableName

CREATING = 0x6474_01  # serializes "create if missing" of a shared table (model, architecture, data)
RUNNING_JOB = 0x6474_02  # held by a live job on its staging table for as long as the job runs
NEW_OUTPUT = 0x6474_03  # held by a job that creates (not replaces) its output, on the output
CHECKPOINTING = 0x6474_04  # held by a fit on its checkpoint (model table, name) for as long as it runs

_KEY = sql.SQL("{}, hashtext(coalesce({}, current_schema()) || '.' || {})")


def _key(purpose: int, table: TableName) -> sql.Composed:
    return _KEY.format(sql.Literal(purpose), sql.Literal(table.schema), sql.Literal(table.name))


def lock_for_creation(cur, table: TableName) -> None:
    """Wait for, then hold until commit, the right to create ``table`` (and its siblings).

    ``CREATE TABLE IF NOT EXISTS`` alone is not safe against a concurrent creator: both see no
    table, and one fails on the catalog's unique index. Taking this lock first makes the second
    creator wait, then find the table.

    >>> with db.cursor() as cur:  # doctest: +SKIP
    ...     lock_for_creation(cur, TableName.parse("models"))
    ...     cur.execute("CREATE TABLE IF NOT EXISTS models (...)")
    """
    cur.execute(sql.SQL("SELECT pg_advisory_xact_lock({})").format(_key(CREATING, table)))


def hold_while_running(cur, table: TableName) -> None:
    """Mark the job owning ``table`` as alive for as long as this session lasts."""
    cur.execute(sql.SQL("SELECT pg_advisory_lock({})").format(_key(RUNNING_JOB, table)))


def owner_is_gone(cur, table: TableName) -> bool:
    """True when no live session marks ``table``'s job as running (so it is safe to drop).

    The probe takes the lock when it is free, and gives it back at once.
    """
    cur.execute(sql.SQL("SELECT pg_try_advisory_lock({})").format(_key(RUNNING_JOB, table)))
    free = cur.fetchone()[0]
    if free:
        cur.execute(sql.SQL("SELECT pg_advisory_unlock({})").format(_key(RUNNING_JOB, table)))
    return bool(free)


def claim_output(cur, table: TableName) -> bool:
    """Claim, for as long as this session lasts, the creation of ``table``; False when another
    session holds the claim (a second job creating the same new table)."""
    cur.execute(sql.SQL("SELECT pg_try_advisory_lock({})").format(_key(NEW_OUTPUT, table)))
    return bool(cur.fetchone()[0])


def hold_checkpoint(cur, table: TableName, name: str) -> bool:
    """Take, for as long as this session lasts, the right to save and prune checkpoints ``name`` in
    ``table``; False when another session (another fit) holds it."""
    key = sql.SQL("{}, hashtext(coalesce({}, current_schema()) || '.' || {} || '/' || {})").format(
        sql.Literal(CHECKPOINTING), sql.Literal(table.schema), sql.Literal(table.name), sql.Literal(name)
    )
    cur.execute(sql.SQL("SELECT pg_try_advisory_lock({})").format(key))
    return bool(cur.fetchone()[0])
