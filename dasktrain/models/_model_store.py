"""Model tables: MADlib-compatible weights and architecture, a summary row per version.

``<table>`` holds one row per (name, version, member): ``model_weights bytea`` (all weights
flattened and concatenated, float32) and ``model_arch json``, as MADlib's ``madlib_keras_fit``
writes them. ``<table>_summary`` holds MADlib's summary fields for each (name, version), plus our
``version``, ``status`` and ``strategy``. Saving under an existing name adds the next version;
nothing is overwritten, and no version number is given twice (``<table>_versions`` keeps each
name's highest, see :mod:`._model_versions`).
"""

from __future__ import annotations

import json

from psycopg2 import sql

from .._model_spec import flatten_weights, unflatten_weights, weight_shapes
from .._names import TableName, identifier
from .._params import COMPILE_KEYS, FIT_KEYS, bounded_repr, parse_params
from .._version import __version__ as _version
from ..errors import DasktrainError, DataError, SchemaError
from ..io._catalog import table_info
from ..io._database import Database, connect
from ..io._locks import lock_for_creation
from ..io._retry import retrying
from ._model_versions import (
    check_model_table,
    delete_model,
    list_models,
    model_summary,
    model_tables,
    next_version,
    resolve_version,
    summary_row,
)
from ._result import TrainingResult, ensemble_model
from ._state_table import delete_states, read_states, write_states

__all__ = [
    "CHECKPOINT", "FINAL", "check_model_table", "delete_model", "list_models", "load_members", "load_model",
    "load_result", "model_summary", "save_model", "summary_row",
]  # fmt: skip

FINAL, CHECKPOINT = "final", "checkpoint"

_SUMMARY_COLUMNS = """
    name text NOT NULL, version integer NOT NULL, status text NOT NULL, description text,
    source_table text, model text, dependent_varname text, independent_varname text,
    model_arch_table text, model_id integer, compile_params text, fit_params text, num_iterations integer,
    validation_table text, metrics_compute_frequency integer, model_type text, model_size double precision,
    start_training_time timestamptz, end_training_time timestamptz, metrics_elapsed_time double precision[],
    dasktrain_version text, num_classes integer, class_values text[], dependent_vartype text,
    normalizing_const double precision, metrics_type text[], loss_type text,
    training_metrics_final double precision, training_loss_final double precision,
    training_metrics double precision[], training_loss double precision[],
    validation_metrics_final double precision, validation_loss_final double precision,
    validation_metrics double precision[], validation_loss double precision[], metrics_iters integer[],
    strategy text, strategy_params json, num_segments integer, num_replicas integer, num_rows bigint, members integer,
    history json, devices json, created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
"""


def format_params(params: dict) -> str:
    """A parameter dict as MADlib writes it: ``"optimizer='adam', metrics=['accuracy']"``.

    >>> format_params({"loss": "mse", "metrics": ["mae"]})
    "loss='mse', metrics=['mae']"
    """
    return ", ".join(f"{k}={v!r}" for k, v in params.items())


def _create(cur, db: Database, table: TableName, summary: TableName) -> None:
    lock_for_creation(cur, table)
    distributed = db.dialect.distribution("name")  # a model's versions and members stay on one segment
    cur.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (name text NOT NULL, version integer NOT NULL, member integer NOT NULL, "
            "model_weights bytea NOT NULL, model_arch json NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), "
            "PRIMARY KEY (name, version, member)){}"
        ).format(table.sql, distributed)
    )
    cur.execute(
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}){}").format(summary.sql, sql.SQL(_SUMMARY_COLUMNS), distributed)
    )
    for column, kind in _LATER_COLUMNS.items():  # summary tables made by earlier versions lack them
        if column not in table_info(cur, summary).columns:
            cur.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} " + kind).format(summary.sql, sql.Identifier(column)))


#: Summary columns added after the first release, and their types.
_LATER_COLUMNS = {"devices": "json", "num_replicas": "integer"}


def save_model(
    db: Database | str | None,
    table: str,
    result: TrainingResult,
    *,
    name: str | None = None,
    description: str | None = None,
    status: str = FINAL,
    keep: int | None = None,
    replica_states: dict | None = None,
) -> int:
    """Write a trained model as the next version of ``name`` in a MADlib-compatible model table.

    The write is one transaction, retried when the connection breaks (a server restart), and
    safe against concurrent savers: each gets its own version.

    Parameters
    ----------
    db : Database, str or None
        A handle from :func:`connect`, a DSN, or None for the default database.
    table : str
        The model table; ``<table>_summary`` is written beside it. Both are created if needed.
    result : TrainingResult
        What :func:`fit` returned.
    name : str, optional
        The model's name (default ``"model"``). An existing name gets a new version.
    description : str, optional
        Free text kept in the summary.
    status : {"final", "checkpoint"}, default "final"
    keep : int, optional
        With ``status="checkpoint"``: delete older checkpoint versions of ``name`` in the same
        transaction so that only the newest ``keep`` remain (final versions are never deleted).
    replica_states : dict, optional
        Each replica's optimizer state (``fit`` passes them with its checkpoints), kept in
        ``<table>_fit_state`` with the strategy's own state so that ``resume`` continues exactly.

    Returns
    -------
    int
        The version written (1 for a new name).

    Examples
    --------
    >>> version = dasktrain.save_model(None, "models", result, name="fashion_cnn")  # doctest: +SKIP
    """
    model_name = identifier(name or "model", what="model")
    table_name, summary = model_tables(table)
    db = connect(db)
    weights = [flatten_weights(member) for member in result.members]
    summary_values = _summary_values(result, table_name, model_name, status, description, weights)
    check_model_table(db, table)

    def write() -> int:
        with db.cursor() as cur:
            _create(cur, db, table_name, summary)
            # One writer at a time per table decides the next version number.
            cur.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(summary.sql))
            version = next_version(cur, db.dialect, table_name, summary, model_name)
            for member, blob in enumerate(weights):
                cur.execute(
                    sql.SQL(
                        "INSERT INTO {} (name, version, member, model_weights, model_arch) VALUES (%s, %s, %s, %s, %s)"
                    ).format(table_name.sql),
                    (model_name, version, member, blob, result.architecture),
                )
            values = {**summary_values, "version": version}
            cur.execute(
                sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                    summary.sql,
                    sql.SQL(", ").join(map(sql.Identifier, values)),
                    sql.SQL(", ").join(sql.Placeholder() * len(values)),
                ),
                list(values.values()),
            )
            if replica_states or result.outer_state is not None:
                write_states(cur, db.dialect, table_name, model_name, version, replica_states or {},
                             result.outer_state)  # fmt: skip
            if status == CHECKPOINT and keep is not None:
                _prune_checkpoints(cur, table_name, summary, model_name, keep)
            return version

    return retrying(f"Saving model {model_name!r} in {str(table_name)!r}", write)


def _summary_values(result: TrainingResult, table: TableName, name: str, status: str, description, weights) -> dict:
    """The summary row of one version (all but its number), MADlib's fields first."""
    history = result.history
    return {
        "name": name,
        "status": status,
        "description": description,
        "source_table": result.source_table,
        "model": str(table),
        "dependent_varname": _text(result.y),
        "independent_varname": _text(result.x),
        "model_arch_table": result.model_arch_table,
        "model_id": result.model_id,
        "compile_params": format_params(result.compile_params),
        "fit_params": format_params(result.fit_params),
        "num_iterations": len(history),
        "validation_table": result.validation_table,
        "metrics_compute_frequency": result.metrics_every,
        "model_type": "dasktrain_keras",
        "model_size": sum(len(b) for b in weights) / 1024.0,
        "start_training_time": result.start_time,
        "end_training_time": result.end_time,
        "dasktrain_version": _version,
        "num_classes": len(result.class_values) if result.class_values is not None else None,
        "class_values": [str(v) for v in result.class_values] if result.class_values is not None else None,
        "dependent_vartype": result.label_type,
        "normalizing_const": result.normalizing_const,
        **metric_columns(result),
        "strategy": result.strategy.name,
        "strategy_params": json.dumps(result.strategy.params()),
        "num_segments": result.num_segments,
        "num_replicas": result.num_replicas,
        "num_rows": result.num_rows,
        "members": len(weights),
        "history": result.history_json(),
        "devices": json.dumps(result.devices) if result.devices is not None else None,
    }


def _prune_checkpoints(cur, table: TableName, summary: TableName, name: str, keep: int) -> None:
    """Delete the checkpoint versions of ``name`` older than the newest ``keep``."""
    cur.execute(
        sql.SQL("SELECT version FROM {} WHERE name = %s AND status = %s ORDER BY version DESC OFFSET %s").format(
            summary.sql
        ),
        (name, CHECKPOINT, keep),
    )
    old = [row[0] for row in cur.fetchall()]
    if old:
        for target in (table, summary):
            cur.execute(sql.SQL("DELETE FROM {} WHERE name = %s AND version = ANY(%s)").format(target.sql), (name, old))
        delete_states(cur, table, name, old)


def metric_columns(result: TrainingResult) -> dict:
    """MADlib's per-iteration metric columns of a model (its first compiled metric, and the loss)."""
    history = result.history
    metric = next(iter(result.metric_names), None)
    training_loss = [h["training"].get("loss") for h in history if h.get("training")]
    validated = [h for h in history if h.get("validation")]
    return {
        "metrics_elapsed_time": [h["elapsed"] for h in history],
        "metrics_type": [metric] if metric else None,
        "loss_type": str(result.compile_params.get("loss")),
        "training_metrics_final": _last(h["training"].get(metric) for h in history if metric and h.get("training")),
        "training_loss_final": _last(training_loss),
        "training_metrics": [h["training"].get(metric) for h in history if h.get("training")] if metric else None,
        "training_loss": training_loss,
        "validation_metrics_final": _last(h["validation"].get(metric) for h in validated) if metric else None,
        "validation_loss_final": _last(h["validation"].get("loss") for h in validated),
        "validation_metrics": [h["validation"].get(metric) for h in validated] if metric and validated else None,
        "validation_loss": [h["validation"].get("loss") for h in validated] or None,
        "metrics_iters": [h["iteration"] for h in validated] or None,
    }


def _text(value) -> str:
    return value if isinstance(value, str) else ",".join(value)


def _last(values):
    values = [v for v in values if v is not None]
    return values[-1] if values else None


def load_members(db, table: str, name: str | None = None, version: int | None = None, mst_key: int | None = None):
    """``(architecture, [member weights...], summary)`` of one stored model version.

    From a search's table (:func:`save_models`), the configuration ``mst_key`` (default: the best).
    """
    from ._selection_store import is_selection_table, load_selection_members

    db = connect(db)
    table_name, summary_table = model_tables(table)
    with db.cursor() as cur:
        if is_selection_table(cur, table_name):
            return load_selection_members(cur, table_name, name, version, mst_key)
        if mst_key is not None:
            raise SchemaError(
                f"Table {str(table_name)!r} holds single models, not a search: mst_key= is for tables of save_models."
            )
        name, version = resolve_version(cur, table_name, summary_table, name, version)
        cur.execute(
            sql.SQL("SELECT model_arch, model_weights FROM {} WHERE name = %s AND version = %s ORDER BY member").format(
                table_name.sql
            ),
            (name, version),
        )
        rows = cur.fetchall()
    if not rows:
        raise SchemaError(
            f"Model {name!r} version {version} in {str(table_name)!r} has a summary row but no weights: the "
            f"table was edited by hand. Delete that version (dasktrain.delete_model) or choose another."
        )
    summary = model_summary(db, table, name, version)
    architecture = rows[0][0] if isinstance(rows[0][0], str) else json.dumps(rows[0][0])
    from .._model_spec import build_model

    shapes = weight_shapes(build_model(architecture))
    return architecture, [unflatten_weights(bytes(blob), shapes) for _, blob in rows], summary


def load_model(
    db: Database | str | None,
    table: str,
    name: str | None = None,
    version: int | None = None,
    *,
    mst_key: int | None = None,
):
    """Load a stored model as a compiled ``keras.Model`` (latest version by default).

    Built from its JSON in Keras safe mode; nothing is unpickled. An ensemble loads as one model
    whose output is the mean of its members' probabilities. From a search saved with
    :func:`save_models`, ``mst_key`` chooses the configuration (default: the search's best).

    Examples
    --------
    >>> model = dasktrain.load_model(None, "models", "fashion_cnn")  # doctest: +SKIP
    >>> model.predict(X_test)  # doctest: +SKIP
    >>> third = dasktrain.load_model(None, "search_models", mst_key=3)  # doctest: +SKIP
    """
    from .._model_spec import compiled_model
    from .._stateful_layers import set_weights

    architecture, members, summary = load_members(db, table, name, version, mst_key)
    compile_params = parse_params(summary["compile_params"], what="compile", allowed=COMPILE_KEYS)
    if summary["members"] and summary["members"] > 1:
        return ensemble_model(architecture, members, compile_params)
    model = compiled_model(architecture, compile_params)
    set_weights(model, members[0])
    return model


def load_result(db, table: str, name: str, version: int | None = None) -> TrainingResult:
    """A stored version as a :class:`TrainingResult`, with its fit state (used to resume from a checkpoint).

    A version whose stored summary or fit state cannot be read (a table edited by hand, a crafted
    row) is a :class:`DataError` naming it, never a raw ``KeyError`` or ``TypeError``.
    """
    db = connect(db)
    architecture, members, s = load_members(db, table, name, version)
    try:
        return _stored_result(db, table, architecture, members, s)
    except DasktrainError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(
            f"The summary of model {s['name']!r} version {s['version']} in {table!r} is corrupted "
            f"({type(exc).__name__}: {bounded_repr(str(exc))}). Delete that version (dasktrain.delete_model), "
            f"or load another."
        ) from None


def _stored_result(db, table: str, architecture: str, members: list, s: dict) -> TrainingResult:
    from ..strategies.named import recorded_strategy

    strategy = recorded_strategy(s["strategy"], **(s["strategy_params"] or {}))
    history = s["history"] if isinstance(s["history"], list) else json.loads(s["history"] or "[]")
    if not isinstance(history, list) or not all(isinstance(h, dict) and {"iteration", "elapsed"} <= set(h)
                                                for h in history):  # fmt: skip
        raise DataError(
            f"The history of model {s['name']!r} version {s['version']} in {table!r} is not a list of "
            f"iterations (each with 'iteration' and 'elapsed'): the summary was edited by hand."
        )
    with db.cursor() as cur:
        replica_states, outer_state = read_states(cur, TableName.parse(table), s["name"], s["version"])
    return TrainingResult(
        architecture=architecture,
        members=members,
        strategy=strategy,
        compile_params=parse_params(s["compile_params"], what="compile", allowed=COMPILE_KEYS),
        fit_params=parse_params(s["fit_params"], what="fit", allowed=FIT_KEYS),
        history=history,
        class_values=s["class_values"],
        label_type=s.get("dependent_vartype"),
        normalizing_const=s["normalizing_const"],
        source_table=s["source_table"],
        num_rows=s["num_rows"] or 0,
        num_segments=s["num_segments"] or 0,
        num_replicas=s.get("num_replicas") or 0,
        start_time=s["start_training_time"],
        end_time=s["end_training_time"],
        outer_state=outer_state,
        replica_states=replica_states or None,
    )
