"""The versions of a model table: checked to be one, chosen, numbered, listed and deleted.

A version number is given once: ``<table>_versions`` keeps each name's highest number ever
written, so a deleted (or pruned) version's number is never handed out again (issue 22: save 1,
save 2, delete 2, save gave 2 again, and whoever held "version 2" got another model).
"""

from __future__ import annotations

from psycopg2 import sql

from .._names import TableName, identifier
from .._params import positive_int
from ..errors import SchemaError
from ..io._catalog import SUMMARY_SUFFIX, exists, regclass_text, table_info
from ..io._database import Database, connect
from ..io._locks import lock_for_creation
from ._state_table import delete_states

VERSIONS_SUFFIX = "_versions"
_MODEL_COLUMNS = {"name", "version", "member", "model_weights", "model_arch"}
_KEY_SUMMARY_COLUMNS = {"name", "version", "status", "members", "history", "compile_params"}
_SELECTION_COLUMNS = {"name", "version", "mst_key", "model_weights", "model_arch"}
_LISTED = (
    "name", "version", "status", "strategy", "num_iterations", "training_loss_final", "training_metrics_final",
    "validation_loss_final", "validation_metrics_final", "metrics_type", "description", "created_at",
)  # fmt: skip


def model_tables(name: str) -> tuple[TableName, TableName]:
    """``(table, its summary)`` of a model table's name.

    >>> [t.name for t in model_tables("models")]
    ['models', 'models_summary']
    """
    table = TableName.parse(name)
    return table, table.sibling(SUMMARY_SUFFIX)


def version_number(version) -> int | None:
    """``version`` as chosen by a caller: None (the latest) or a whole number >= 1; a True, a 1.9 or
    an ``"abc"`` is refused rather than taken for 1.

    >>> version_number(2), version_number(None)
    (2, None)
    >>> version_number(True)
    Traceback (most recent call last):
    ...
    dasktrain.errors.DataError: Expected a positive integer version. Received: version=True
    """
    return None if version is None else positive_int(version, "version")


def check_model_table(db: Database | str | None, table: str) -> None:
    """Refuse, before any training, a model table that exists but is not one, or cannot be written.

    >>> check_model_table(None, "models")  # doctest: +SKIP
    """
    db = connect(db)
    table_name, summary = model_tables(table)
    with db.cursor() as cur:
        for name, needed, what in ((table_name, _MODEL_COLUMNS, "model"), (summary, _KEY_SUMMARY_COLUMNS, "summary")):
            if not exists(cur, name):
                continue
            missing = sorted(needed - set(table_info(cur, name).columns))
            if missing:
                raise SchemaError(
                    f"Table {str(name)!r} exists but is not a dasktrain {what} table (no column "
                    f"{', '.join(missing)}): choose another model table name."
                )
        if exists(cur, table_name):
            cur.execute("SELECT has_table_privilege(to_regclass(%s), 'INSERT')", (regclass_text(cur, table_name),))
            writable = cur.fetchone()[0]
        else:
            cur.execute("SELECT has_schema_privilege(coalesce(%s, current_schema()), 'CREATE')", (table_name.schema,))
            writable = cur.fetchone()[0]
        if not writable:
            raise SchemaError(f"This database user cannot write the model table {str(table_name)!r}.")


def require_model_table(cur, table: TableName, summary: TableName) -> bool:
    """Refuse a table that holds no stored models (a data table, say); True for a search's table.

    A data table has a ``_summary`` too (the loader's), so "it exists" is not enough.
    """
    if not exists(cur, summary):
        raise SchemaError(f"Model table {str(table)!r} does not exist (or has no summary); save a model first.")
    columns = set(table_info(cur, table).columns) if exists(cur, table) else set()
    selection = "mst_key" in columns
    needed = _SELECTION_COLUMNS if selection else _MODEL_COLUMNS
    missing = sorted((needed - columns) | ({"name", "version"} - set(table_info(cur, summary).columns)))
    if missing:
        raise SchemaError(
            f"Table {str(table)!r} is not a model table (it has no column {', '.join(missing)}): pass a table "
            f"written by save_model or save_models, e.g. the checkpoint table of a fit."
        )
    return selection


def resolve_version(cur, table: TableName, summary: TableName, name: str | None, version) -> tuple[str, int]:
    """``(name, version)`` of the stored model chosen (the only name, the latest version by default)."""
    version = version_number(version)
    require_model_table(cur, table, summary)
    if name is None:
        cur.execute(sql.SQL("SELECT DISTINCT name FROM {} ORDER BY 1").format(summary.sql))
        names = [r[0] for r in cur.fetchall()]
        if len(names) != 1:
            raise SchemaError(f"Model table {str(table)!r} holds models {names}: pass name= to choose one.")
        name = names[0]
    name = identifier(name, what="model")
    if version is None:
        cur.execute(sql.SQL("SELECT max(version) FROM {} WHERE name = %s").format(summary.sql), (name,))
        version = cur.fetchone()[0]
        if version is None:
            raise SchemaError(f"No model named {name!r} in {str(table)!r}; see list_models().")
        return name, version
    cur.execute(sql.SQL("SELECT 1 FROM {} WHERE name = %s AND version = %s").format(summary.sql), (name, version))
    if cur.fetchone() is None:
        raise SchemaError(f"Model {name!r} has no version {version} in {str(table)!r}; see list_models().")
    return name, version


def next_version(cur, dialect, table: TableName, summary: TableName, name: str) -> int:
    """The number of ``name``'s next version, recorded as given (the caller holds a lock on ``summary``
    that serializes savers, and has taken :func:`lock_for_creation` on ``table``)."""
    versions = _versions_table(cur, dialect, table)
    cur.execute(
        sql.SQL(
            "SELECT greatest((SELECT max(version) FROM {} WHERE name = %s), "
            "(SELECT max(last_version) FROM {} WHERE name = %s))"
        ).format(summary.sql, versions.sql),
        (name, name),
    )
    version = (cur.fetchone()[0] or 0) + 1
    _record(cur, versions, name, version)
    return version


def _versions_table(cur, dialect, table: TableName) -> TableName:
    versions = table.sibling(VERSIONS_SUFFIX)
    cur.execute(
        sql.SQL("CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, last_version integer NOT NULL){}").format(
            versions.sql, dialect.distribution("name")
        )
    )
    return versions


def _record(cur, versions: TableName, name: str, version: int) -> None:
    cur.execute(
        sql.SQL("UPDATE {} SET last_version = greatest(last_version, %s) WHERE name = %s").format(versions.sql),
        (version, name),
    )
    if cur.rowcount == 0:
        cur.execute(sql.SQL("INSERT INTO {} (name, last_version) VALUES (%s, %s)").format(versions.sql),
                    (name, version))  # fmt: skip


def model_summary(db: Database | str | None, table: str, name: str | None = None, version: int | None = None) -> dict:
    """The summary row of one model version as a dict (latest version by default).

    >>> dasktrain.model_summary(None, "models", "fashion_cnn")["class_values"]  # doctest: +SKIP
    ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']
    """
    db = connect(db)
    table_name, summary = model_tables(table)
    with db.cursor() as cur:
        return summary_row(cur, table_name, summary, name, version)


def summary_row(cur, table: TableName, summary: TableName, name: str | None, version: int | None) -> dict:
    """The summary row of ``name``'s ``version`` (resolved as :func:`model_summary` does), as a dict."""
    name, version = resolve_version(cur, table, summary, name, version)
    cur.execute(sql.SQL("SELECT * FROM {} WHERE name = %s AND version = %s").format(summary.sql), (name, version))
    return dict(zip([d.name for d in cur.description], cur.fetchone(), strict=True))


def list_models(db: Database | str | None, table: str) -> list[dict]:
    """Every stored version: name, version, status, strategy, iterations, final losses and metrics, created_at.

    A search's table (:func:`save_models`) lists each search's versions, with None for the columns
    its summary has not (``status``, ``strategy``, the final losses and metrics).

    >>> [(m["name"], m["version"]) for m in dasktrain.list_models(None, "models")]  # doctest: +SKIP
    [('fashion_cnn', 1), ('fashion_cnn', 2)]
    """
    db = connect(db)
    table_name, summary = model_tables(table)
    with db.cursor() as cur:
        require_model_table(cur, table_name, summary)
        present = set(table_info(cur, summary).columns)  # a search's summary has fewer columns
        columns = [sql.Identifier(c) if c in present else sql.SQL("NULL AS {}").format(sql.Identifier(c))
                   for c in _LISTED]  # fmt: skip
        cur.execute(sql.SQL("SELECT {} FROM {} ORDER BY name, version").format(sql.SQL(", ").join(columns),
                                                                                summary.sql))  # fmt: skip
        return [dict(zip(_LISTED, row, strict=True)) for row in cur.fetchall()]


def delete_model(db: Database | str | None, table: str, name: str, version: int | None = None) -> int:
    """Delete one version of ``name`` (or all its versions when ``version`` is None); return how many.

    The numbers deleted are not given again: the next save of ``name`` gets a new one.

    >>> dasktrain.delete_model(None, "models", "fashion_cnn", version=1)  # doctest: +SKIP
    1
    """
    db = connect(db)
    table_name, summary = model_tables(table)
    with db.cursor() as cur:
        name, chosen = resolve_version(cur, table_name, summary, name, version)
        selection = require_model_table(cur, table_name, summary)
        lock_for_creation(cur, table_name)
        cur.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(summary.sql))
        versions = _versions_table(cur, db.dialect, table_name)
        cur.execute(sql.SQL("SELECT max(version) FROM {} WHERE name = %s").format(summary.sql), (name,))
        _record(cur, versions, name, cur.fetchone()[0] or 0)
        condition = sql.SQL("name = %s") + (sql.SQL(" AND version = %s") if version is not None else sql.SQL(""))
        params = (name,) if version is None else (name, chosen)
        siblings = [table_name.sibling("_info")] if selection else []
        for target in (table_name, *siblings, summary):
            cur.execute(sql.SQL("DELETE FROM {} WHERE ").format(target.sql) + condition, params)
        deleted = cur.rowcount
        delete_states(cur, table_name, name, None if version is None else [chosen])
        return deleted
