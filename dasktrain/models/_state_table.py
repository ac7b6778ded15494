"""The ``<model table>_fit_state`` side table: what a checkpoint needs to continue exactly.

One row per (name, version, replica): the replica's optimizer variables (and, for EASGD and
ensembles, its own weights) as ``.npz`` bytes, with its iteration and its place in the data; the
strategy's own state (SlowMo's momentum) is the row numbered -1. The column holding the replica's
number is called ``segment``, as it was when every segment was a replica: tables written then
still read. MADlib's tools ignore the
table; :func:`~dasktrain.delete_model` and checkpoint pruning keep it in step with the model table.
"""

from __future__ import annotations

from psycopg2 import sql

from .._names import TableName
from ..errors import DataError
from ..io._catalog import exists
from ._fit_state import ReplicaState

SUFFIX = "_fit_state"
OUTER = -1  # the row number of the strategy's own state


def state_table(model_table: TableName) -> TableName:
    """``models`` -> ``models_fit_state``.

    >>> state_table(TableName(None, "models")).name
    'models_fit_state'
    """
    return model_table.sibling(SUFFIX)


def create_sql(dialect, table: TableName) -> sql.Composed:
    """The side table, spread on Greenplum like its model table: by model name."""
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (name text NOT NULL, version integer NOT NULL, segment integer NOT NULL, "
        "iteration integer NOT NULL, cursor bigint NOT NULL, state bytea NOT NULL, "
        "PRIMARY KEY (name, version, segment)){}"
    ).format(table.sql, dialect.distribution("name"))


def write_states(cur, dialect, model_table: TableName, name: str, version: int, replicas: dict, outer) -> None:
    """Store the replicas' states and the strategy's state of one version (inside the caller's transaction)."""
    table = state_table(model_table)
    cur.execute(create_sql(dialect, table))
    rows = [(segment, s.iteration, s.cursor, s.to_bytes()) for segment, s in sorted(replicas.items())]
    if outer is not None:
        rows.append((OUTER, 0, 0, ReplicaState(0, list(outer)).to_bytes()))
    insert = sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s)").format(table.sql)
    for segment, iteration, cursor, data in rows:
        cur.execute(insert, (name, version, segment, iteration, cursor, data))


def read_states(cur, model_table: TableName, name: str, version: int) -> tuple[dict[int, ReplicaState], list | None]:
    """``({replica: ReplicaState}, the strategy's state or None)`` of one version; empty when none was saved."""
    table = state_table(model_table)
    if not exists(cur, table):
        return {}, None
    cur.execute(
        sql.SQL("SELECT segment, iteration, cursor, state FROM {} WHERE name = %s AND version = %s").format(table.sql),
        (name, version),
    )
    segments, outer = {}, None
    for segment, iteration, cursor, data in cur.fetchall():
        try:
            state = ReplicaState.from_bytes(data, iteration, cursor)
        except DataError as exc:
            whose = "the strategy's state" if segment == OUTER else f"replica {segment}"
            raise DataError(
                f"The fit state of model {name!r} version {version} in {str(table)!r} ({whose}) is corrupted: "
                f"{exc} Delete that version (dasktrain.delete_model), or resume from another."
            ) from None
        if segment == OUTER:
            outer = state.optimizer
        else:
            segments[segment] = state
    return segments, outer


def delete_states(cur, model_table: TableName, name: str, versions: list[int] | None = None) -> None:
    """Delete the states of ``versions`` of ``name`` (all its versions when None)."""
    table = state_table(model_table)
    if not exists(cur, table):
        return
    if versions is None:
        cur.execute(sql.SQL("DELETE FROM {} WHERE name = %s").format(table.sql), (name,))
    else:
        cur.execute(sql.SQL("DELETE FROM {} WHERE name = %s AND version = ANY(%s)").format(table.sql), (name, versions))
