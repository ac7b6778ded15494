"""Model selection outputs in MADlib's ``madlib_keras_fit_multiple_model`` layout, with versions.

``<table>`` holds one row per configuration: ``mst_key, model_weights, model_arch`` (MADlib's
columns) plus our ``name`` and ``version``. ``<table>_info`` holds each configuration's
parameters and per-iteration metrics (MADlib's ``_info`` columns, plus ``status`` and the full
``history``), and ``<table>_summary`` one row per search: the data, the classes, the best
``mst_key``. Saving under an existing name adds the next version.
"""

from __future__ import annotations

import json

from psycopg2 import sql

from .._model_spec import build_model, flatten_weights, unflatten_weights, weight_shapes
from .._names import TableName, identifier
from .._version import __version__ as _version
from ..errors import DataError, SchemaError
from ..io._catalog import SUMMARY_SUFFIX, exists, table_info
from ..io._database import Database, connect
from ..io._locks import lock_for_creation
from ..io._retry import retrying
from ._model_store import _text, format_params, metric_columns
from ._model_versions import model_tables, next_version, summary_row
from ._selection_result import GroupResult, SelectionResult

INFO_SUFFIX = "_info"

_INFO_COLUMNS = """
    name text NOT NULL, version integer NOT NULL, mst_key integer NOT NULL, model_arch_table text, model_id integer,
    compile_params text, fit_params text, model_type text, model_size double precision,
    metrics_elapsed_time double precision[], metrics_type text[], loss_type text,
    training_metrics_final double precision, training_loss_final double precision,
    training_metrics double precision[], training_loss double precision[],
    validation_metrics_final double precision, validation_loss_final double precision,
    validation_metrics double precision[], validation_loss double precision[], metrics_iters integer[],
    status text NOT NULL, history json, group_value text, PRIMARY KEY (name, version, mst_key)
"""
_SUMMARY_COLUMNS = """
    name text NOT NULL, version integer NOT NULL, description text, source_table text, validation_table text,
    model text, model_info text, dependent_varname text, independent_varname text, num_iterations integer,
    metrics_compute_frequency integer, start_training_time timestamptz, end_training_time timestamptz,
    dasktrain_version text, num_classes integer, class_values text[], normalizing_const double precision,
    num_configurations integer, best_mst_key integer, rank_by text, num_segments integer, num_rows bigint,
    group_column text,
    created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (name, version)
"""


def is_selection_table(cur, table: TableName) -> bool:
    """Whether ``table`` is a model selection output (it has an ``mst_key`` column)."""
    return exists(cur, table) and "mst_key" in table_info(cur, table).columns


def save_models(
    db: Database | str | None,
    table: str,
    selection: SelectionResult | GroupResult,
    *,
    name: str | None = None,
    description: str | None = None,
) -> int:
    """Write every configuration of a search (or every group's model) as the next version of ``name``,
    in MADlib's layout.

    A :func:`fit_groups` result is written the same way, each group numbered by ``mst_key``
    with its value in ``group_value`` and the grouping column in the summary's ``group_column``.

    One transaction: the model table (one row per ``mst_key``), ``<table>_info`` and
    ``<table>_summary`` are written together or not at all. Load one configuration with
    ``load_model(db, table, mst_key=...)``, score with ``predict_table(..., mst_key=...)``
    (the best configuration when ``mst_key`` is left out).

    Returns
    -------
    int
        The version written.

    Examples
    --------
    >>> dasktrain.save_models(None, "search_models", search, name="fashion_search")  # doctest: +SKIP
    1
    """
    if not isinstance(selection, SelectionResult):
        raise TypeError(f"Expected a SelectionResult (from fit_multiple). Received: {type(selection).__name__}")
    if selection.folds:
        raise DataError(
            "A cross-validated search keeps no models (each configuration trained one per fold): train the "
            "chosen configurations on all rows with fit_multiple(configs, ...) without folds=, and save that."
        )
    model_name = identifier(name or "search", what="model")
    table_name = TableName.parse(table)
    info, summary = table_name.sibling(INFO_SUFFIX), table_name.sibling(SUMMARY_SUFFIX)
    db = connect(db)
    groups = selection.values if isinstance(selection, GroupResult) else {}
    rows = []
    for key in sorted(selection.results):
        result = selection.results[key]
        blob = flatten_weights(result.weights)
        group = str(groups[key]) if key in groups else None
        values = {**_info_values(result, key, selection.status[key], blob), "group_value": group}
        rows.append((key, blob, result.architecture, group, values))
    first = selection.results[min(selection.results)]
    summary_values = {
        "name": model_name, "description": description, "source_table": first.source_table,
        "validation_table": first.validation_table, "model": str(table_name), "model_info": str(info),
        "dependent_varname": _text(first.y), "independent_varname": _text(first.x),
        "num_iterations": max(r.iterations for r in selection.results.values()),
        "metrics_compute_frequency": first.metrics_every, "start_training_time": first.start_time,
        "end_training_time": first.end_time, "dasktrain_version": _version,
        "num_classes": len(first.class_values) if first.class_values is not None else None,
        "class_values": [str(v) for v in first.class_values] if first.class_values is not None else None,
        "normalizing_const": first.normalizing_const, "num_configurations": len(rows),
        "best_mst_key": selection.best_key, "rank_by": selection.rank_by, "num_segments": first.num_segments,
        "num_rows": sum(r.num_rows for r in selection.results.values()) if groups else first.num_rows,
        "group_column": selection.by if groups else None,
    }  # fmt: skip

    def write() -> int:
        with db.cursor() as cur:
            _create(cur, db, table_name, info, summary)
            cur.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(summary.sql))
            version = next_version(cur, db.dialect, table_name, summary, model_name)
            for key, blob, architecture, group, values in rows:
                cur.execute(
                    sql.SQL(
                        "INSERT INTO {} (mst_key, model_weights, model_arch, name, version, group_value) "
                        "VALUES (%s, %s, %s, %s, %s, %s)"
                    ).format(table_name.sql),
                    (key, blob, architecture, model_name, version, group),
                )
                _insert(cur, info, {**values, "name": model_name, "version": version})
            _insert(cur, summary, {**summary_values, "version": version})
            return version

    return retrying(f"Saving the search {model_name!r} in {str(table_name)!r}", write)


def _create(cur, db: Database, table: TableName, info: TableName, summary: TableName) -> None:
    lock_for_creation(cur, table)
    if exists(cur, table) and not is_selection_table(cur, table):
        raise SchemaError(
            f"Table {str(table)!r} holds single models (save_model), not searches: save_models needs another table."
        )
    distributed = db.dialect.distribution("name")
    cur.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (mst_key integer NOT NULL, model_weights bytea NOT NULL, model_arch json "
            "NOT NULL, name text NOT NULL, version integer NOT NULL, group_value text, "
            "created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (name, version, mst_key)){}"
        ).format(table.sql, distributed)
    )
    for sibling, columns in ((info, _INFO_COLUMNS), (summary, _SUMMARY_COLUMNS)):
        cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}){}").format(sibling.sql, sql.SQL(columns), distributed))


def _insert(cur, table: TableName, values: dict) -> None:
    columns = sql.SQL(", ").join(map(sql.Identifier, values))
    placeholders = sql.SQL(", ").join(sql.Placeholder() * len(values))
    insert = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(table.sql, columns, placeholders)
    cur.execute(insert, list(values.values()))


def _info_values(result, key: int, status: str, blob: bytes) -> dict:
    """One configuration's ``_info`` row (MADlib's columns first)."""
    return {
        "mst_key": key, "model_arch_table": result.model_arch_table, "model_id": result.model_id,
        "compile_params": format_params(result.compile_params), "fit_params": format_params(result.fit_params),
        "model_type": "dasktrain_keras", "model_size": len(blob) / 1024.0, **metric_columns(result),
        "status": status, "history": json.dumps(result.history),
    }  # fmt: skip


def load_selection_members(cur, table: TableName, name: str | None, version: int | None, mst_key: int | None):
    """``(architecture, [weights], summary)`` of one configuration of a saved search (default: its best)."""
    summary_table, info = table.sibling(SUMMARY_SUFFIX), table.sibling(INFO_SUFFIX)
    summary = summary_row(cur, table, summary_table, name, version)
    name, version = summary["name"], summary["version"]
    key = summary["best_mst_key"] if mst_key is None else mst_key
    if isinstance(key, bool) or not isinstance(key, int):
        raise DataError(f"Expected mst_key as a whole number. Received: mst_key={mst_key!r}")
    cur.execute(
        sql.SQL(
            "SELECT m.model_arch, m.model_weights, i.compile_params FROM {} m JOIN {} i USING (name, version, mst_key) "
            "WHERE name = %s AND version = %s AND mst_key = %s"
        ).format(table.sql, info.sql),
        (name, version, key),
    )
    row = cur.fetchone()
    if row is None:
        cur.execute(sql.SQL("SELECT mst_key FROM {} WHERE name = %s AND version = %s ORDER BY 1").format(table.sql),
                    (name, version))  # fmt: skip
        keys = [r[0] for r in cur.fetchall()]
        raise SchemaError(f"Search {name!r} version {version} in {str(table)!r} has no mst_key {key}; it has {keys}.")
    architecture = row[0] if isinstance(row[0], str) else json.dumps(row[0])
    weights = unflatten_weights(bytes(row[1]), weight_shapes(build_model(architecture)))
    summary.update(compile_params=row[2], members=1, mst_key=key)
    return architecture, [weights], summary


def load_group_members(db, table: str, name: str | None = None, version: int | None = None):
    """``(architecture, {group value: weights}, summary)`` of a saved :func:`fit_groups` result."""
    db = connect(db)
    table_name, summary_table = model_tables(table)
    with db.cursor() as cur:
        if not is_selection_table(cur, table_name):
            raise SchemaError(f"Table {str(table_name)!r} holds no models per group: save fit_groups' result in it.")
        summary = summary_row(cur, table_name, summary_table, name, version)
        name, version = summary["name"], summary["version"]
        if not summary.get("group_column"):
            raise SchemaError(f"Model {name!r} version {version} in {str(table_name)!r} is a search, not models per "
                              f"group: score it with mst_key=, not by=.")  # fmt: skip
        cur.execute(
            sql.SQL(
                "SELECT m.group_value, m.model_arch, m.model_weights, i.compile_params FROM {} m JOIN {} i "
                "USING (name, version, mst_key) WHERE name = %s AND version = %s ORDER BY mst_key"
            ).format(table_name.sql, table_name.sibling(INFO_SUFFIX).sql),
            (name, version),
        )
        rows = cur.fetchall()
    architecture = rows[0][1] if isinstance(rows[0][1], str) else json.dumps(rows[0][1])
    shapes = weight_shapes(build_model(architecture))
    summary.update(compile_params=rows[0][3], members=1)
    return architecture, {group: unflatten_weights(bytes(blob), shapes) for group, _, blob, _ in rows}, summary
