"""What the catalog says about a table: its kind, its columns and our stored metadata."""

from __future__ import annotations

import json
from dataclasses import dataclass

from psycopg2 import sql

from .._names import TableName
from ..errors import SchemaError

SUMMARY_SUFFIX = "_summary"

# relkind values (pg_class): plain, partitioned, materialized view, view, foreign table.
PLAIN, PARTITIONED = "r", "p"


@dataclass(frozen=True)
class TableInfo:
    """A table's oid, kind and columns (name -> (type name, array element type or None))."""

    name: TableName
    oid: int
    relkind: str
    columns: dict[str, tuple[str, str | None]]


def regclass_text(cur, table: TableName) -> str:
    """The quoted, qualified name as text, for ``to_regclass(%s)`` parameters."""
    return table.sql.as_string(cur.connection)


def table_info(cur, table: TableName) -> TableInfo:
    """Look the table up; raise :class:`SchemaError` naming it when it does not exist."""
    cur.execute(
        "SELECT c.oid, c.relkind FROM pg_class c WHERE c.oid = to_regclass(%s)",
        (regclass_text(cur, table),),
    )
    row = cur.fetchone()
    if row is None:
        raise SchemaError(
            f"Table {str(table)!r} does not exist. Check the name and schema "
            f"(unqualified names are looked up on the search_path)."
        )
    oid, relkind = row
    cur.execute(
        """
        SELECT a.attname, t.typname, CASE WHEN t.typcategory = 'A' THEN e.typname END
        FROM pg_attribute a
        JOIN pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_type e ON e.oid = t.typelem
        WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum
        """,
        (oid,),
    )
    columns = {name: (type_name, element) for name, type_name, element in cur.fetchall()}
    return TableInfo(table, oid, relkind, columns)


def refuse_protected_output(cur, output: TableName, protected: dict[str, TableName | None]) -> None:
    """Raise :class:`SchemaError` when ``output`` is one of the ``protected`` tables or a partition of one.

    ``protected`` maps a description ("the source table") to a table; replacing it would destroy
    what the job reads or the model it applies.
    """
    cur.execute("SELECT to_regclass(%s)::oid", (regclass_text(cur, output),))
    target = cur.fetchone()[0]
    if target is None:
        return
    for role, table in protected.items():
        if table is None:
            continue
        cur.execute(
            "WITH RECURSIVE tree(relid) AS (SELECT to_regclass(%s)::oid UNION ALL "
            "SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.relid) "
            "SELECT EXISTS (SELECT 1 FROM tree WHERE relid = %s)",
            (regclass_text(cur, table), target),
        )
        if cur.fetchone()[0]:
            raise SchemaError(
                f"The output table {str(output)!r} is {role} ({str(table)!r}): writing there would destroy it. "
                f"Choose another output table."
            )


def exists(cur, table: TableName) -> bool:
    """Whether a table (or view) of that name exists."""
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (regclass_text(cur, table),))
    return cur.fetchone()[0]


def array_metadata(cur, table: TableName) -> dict[str, dict]:
    """Per-column ``{"dtype", "shape"}`` stored by our loaders in ``<table>_summary``; {} if none."""
    summary = table.sibling(SUMMARY_SUFFIX)
    if not exists(cur, summary):
        return {}
    cur.execute(
        "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = 'array_columns'",
        (regclass_text(cur, summary),),
    )
    if cur.fetchone() is None:
        return {}  # a summary table of another tool (MADlib's preprocessor, say)

    cur.execute(sql.SQL("SELECT array_columns FROM {} LIMIT 1").format(summary.sql))
    row = cur.fetchone()
    if row is None or row[0] is None:
        return {}
    value = row[0]
    return json.loads(value) if isinstance(value, str) else value
