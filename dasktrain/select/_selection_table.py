"""Model selection tables in MADlib's layout (``load_model_selection_table``): one row per configuration."""

from __future__ import annotations

from psycopg2 import sql

from .._names import TableName
from ..errors import DataError, SchemaError
from ..io._catalog import exists, table_info
from ..io._database import Database, connect
from ..io._locks import lock_for_creation
from ._configs import ModelConfig


def save_model_selection(
    db: Database | str | None, table: str, configs: list[ModelConfig], *, if_exists: str = "fail"
) -> None:
    """Write ``configs`` to ``table`` (``mst_key, model_arch_table, model_id, compile_params, fit_params``)
    and ``<table>_summary`` (``model_arch_table, object_table``), as MADlib's ``load_model_selection_table``.

    Every architecture must be in an architecture table (:func:`load_architecture`). The whole
    write is one transaction: a failure leaves the database as it was.

    >>> dasktrain.save_model_selection(None, "mst_table", configs)  # doctest: +SKIP
    """
    if if_exists not in ("fail", "replace"):
        raise DataError(f"Expected if_exists='fail' or 'replace'. Received: if_exists={if_exists!r}")
    configs = list(configs)
    if not configs:
        raise DataError("No configurations to save: model_configs() makes them.")
    stored = [c for c in configs if isinstance(c, ModelConfig) and isinstance(c.model, tuple)]
    if len(stored) < len(configs):
        raise DataError(
            "A model selection table names each architecture by (architecture_table, model_id): store the "
            "architectures with dasktrain.load_architecture() and pass those pairs to model_configs()."
        )
    keys = [c.mst_key for c in configs]
    if len(set(keys)) < len(keys):
        raise DataError("Two configurations share an mst_key: pass the list model_configs() returned.")
    db = connect(db)
    name = TableName.parse(table)
    summary = name.sibling("_summary")
    tables = sorted({c.model[0] for c in configs})
    with db.cursor() as cur:
        lock_for_creation(cur, name)
        if exists(cur, name):
            if if_exists == "fail":
                raise SchemaError(f"Table {str(name)!r} exists: pass if_exists='replace' to overwrite it.")
            cur.execute(sql.SQL("DROP TABLE {}; DROP TABLE IF EXISTS {}").format(name.sql, summary.sql))
        cur.execute(
            sql.SQL(
                "CREATE TABLE {} (mst_key integer PRIMARY KEY, model_arch_table text NOT NULL, model_id integer "
                "NOT NULL, compile_params text NOT NULL, fit_params text NOT NULL){}"
            ).format(name.sql, db.dialect.distribution())
        )
        cur.executemany(
            sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s)").format(name.sql),
            [(c.mst_key, c.model[0], c.model[1], c.compile_params, c.fit_params) for c in configs],
        )
        cur.execute(
            sql.SQL("CREATE TABLE {} (model_arch_table text, object_table text){}").format(
                summary.sql, db.dialect.distribution()
            )
        )
        cur.execute(
            sql.SQL("INSERT INTO {} VALUES (%s, NULL)").format(summary.sql), (tables[0] if len(tables) == 1 else None,)
        )


def load_model_selection(db: Database | str | None, table: str) -> list[ModelConfig]:
    """The configurations in a model selection table (ours, or MADlib's, whose summary names the architectures).

    >>> [c.mst_key for c in dasktrain.load_model_selection(None, "mst_table")]  # doctest: +SKIP
    [1, 2, 3, 4]
    """
    db = connect(db)
    name = TableName.parse(table)
    with db.cursor() as cur:
        if not exists(cur, name):
            raise SchemaError(f"Model selection table {str(name)!r} does not exist; see save_model_selection().")
        if "model_arch_table" in table_info(cur, name).columns:
            arch = sql.SQL("model_arch_table")
        else:  # MADlib keeps the architecture table in the summary
            arch = sql.SQL("(SELECT model_arch_table FROM {})").format(name.sibling("_summary").sql)
        cur.execute(
            sql.SQL("SELECT mst_key, {}, model_id, compile_params, fit_params FROM {} ORDER BY mst_key").format(
                arch, name.sql
            )
        )
        return [ModelConfig(key, (arch_table, model_id), compile_, fit_ or "")
                for key, arch_table, model_id, compile_, fit_ in cur.fetchall()]  # fmt: skip
