"""A Hyperband search's state in the database, written after every rung, so a stopped search resumes.

``<table>`` holds one row per model (a configuration, or one fold of it): its bracket, status,
the iterations it has trained, its model (weights and optimizer state as ``.npz`` bytes, read
back without pickle) and its history. ``<table>_summary`` holds the search's parameters and the rungs finished; a resume
with other parameters is refused.
"""

from __future__ import annotations

import json

from psycopg2 import sql

from .._names import TableName
from ..errors import DataError, SchemaError, TableExistsError
from ..io._catalog import SUMMARY_SUFFIX, exists
from ..io._database import Database, connect
from ..io._locks import lock_for_creation
from ..io._retry import retrying
from ..models._fit_state import ModelState


def check_state_table(db: Database | str | None, table: str, resume: bool) -> None:
    """Before any work: a new search needs a free table; a resumed one, an existing one.

    >>> check_state_table(None, "hyperband_state", resume=False)  # doctest: +SKIP
    """
    name = TableName.parse(table)
    with connect(db).cursor() as cur:
        found = exists(cur, name)
    if found and not resume:
        raise TableExistsError(
            f"Search state table {str(name)!r} exists: pass resume=True to continue that search, or choose another."
        )


def save_state(db, table: str, parameters: dict, rungs_done: int, rows: list[dict]) -> None:
    """Replace the search's state with ``rows`` (one per model; ``fold`` -1 without folds), in one transaction."""
    name = TableName.parse(table)
    summary = name.sibling(SUMMARY_SUFFIX)
    db = connect(db)

    def write() -> None:
        with db.cursor() as cur:
            lock_for_creation(cur, name)
            cur.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (mst_key integer NOT NULL, fold integer NOT NULL, "
                    "bracket integer NOT NULL, status text NOT NULL, iterations integer NOT NULL, "
                    "model_state bytea NOT NULL, history json, "
                    "PRIMARY KEY (mst_key, fold)){}"
                ).format(name.sql, db.dialect.distribution("mst_key"))
            )
            columns = sql.SQL("parameters json NOT NULL, rungs_done integer NOT NULL")
            cur.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}){}").format(summary.sql, columns, db.dialect.distribution())
            )
            cur.execute(sql.SQL("DELETE FROM {}; DELETE FROM {}").format(name.sql, summary.sql))
            cur.execute(
                sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(summary.sql),
                (json.dumps(parameters, sort_keys=True), rungs_done),
            )
            cur.executemany(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s, %s)").format(name.sql),
                [
                    (
                        r["mst_key"],
                        r["fold"],
                        r["bracket"],
                        r["status"],
                        r["iterations"],
                        r["state"].to_bytes(),
                        json.dumps(r["history"]),
                    )
                    for r in rows
                ],  # fmt: skip
            )

    retrying(f"Saving the search state in {str(name)!r}", write)


def load_state(db, table: str, parameters: dict) -> tuple[int, dict[tuple[int, int], dict]]:
    """``(rungs done, {(mst_key, fold): row})`` of a saved search; refused when its parameters differ."""
    name = TableName.parse(table)
    summary = name.sibling(SUMMARY_SUFFIX)
    with connect(db).cursor() as cur:
        if not exists(cur, summary):
            raise SchemaError(f"No search state in {str(name)!r} to resume: run without resume=True first.")
        cur.execute(sql.SQL("SELECT parameters, rungs_done FROM {}").format(summary.sql))
        saved, rungs_done = cur.fetchone()
        saved = saved if isinstance(saved, dict) else json.loads(saved)
        if saved != json.loads(json.dumps(parameters, sort_keys=True)):
            changed = sorted(k for k in saved.keys() | parameters.keys() if saved.get(k) != parameters.get(k))
            raise DataError(
                f"The search saved in {str(name)!r} was run with other parameters ({', '.join(changed)}): resume it "
                f"with the same ones, or start a new search in another table."
            )
        cur.execute(
            sql.SQL("SELECT mst_key, fold, bracket, status, iterations, model_state, history FROM {}").format(name.sql)
        )
        rows = {
            (key, fold): {"bracket": bracket, "status": status, "iterations": iterations,
                  "state": ModelState.from_bytes(bytes(blob)),
                  "history": history if isinstance(history, list) else json.loads(history or "[]")}
            for key, fold, bracket, status, iterations, blob, history in cur.fetchall()
        }  # fmt: skip
    return rungs_done, rows
