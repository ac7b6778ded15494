"""Model architecture tables, as MADlib's ``load_keras_model`` makes them."""

from __future__ import annotations

import json

from psycopg2 import sql

from .._model_spec import build_model, flatten_weights, model_json
from .._names import TableName
from ..errors import SchemaError
from ..io._catalog import exists
from ..io._database import Database, connect
from ..io._locks import lock_for_creation


def create_sql(dialect, table: TableName) -> sql.Composed:
    """MADlib's architecture table, spread on Greenplum by its key ``model_id`` (as MADlib's own is)."""
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (model_id serial PRIMARY KEY, model_arch json NOT NULL, "
        "model_weights bytea, name text, description text, __internal_madlib_id__ text){}"
    ).format(table.sql, dialect.distribution("model_id"))


def load_architecture(
    db: Database | str | None,
    table: str,
    model,
    *,
    name: str | None = None,
    description: str | None = None,
    weights=None,
) -> int:
    """Store a Keras model's architecture (and optionally weights) in a MADlib-style table.

    The table (``model_id serial``, ``model_arch json``, ``model_weights bytea``, ``name``,
    ``description``) is created if needed.

    Parameters
    ----------
    db : Database, str or None
        A handle from :func:`connect`, a DSN, or None for the default database.
    table : str
        The architecture table.
    model : keras.Model or str
        The model, or its JSON (``model.to_json()``).
    name, description : str, optional
        Free text stored with it.
    weights : list of numpy arrays, optional
        Initial weights (``model.get_weights()``), stored flat as float32 like MADlib.

    Returns
    -------
    int
        The new ``model_id``.

    Raises
    ------
    DataError
        When Keras cannot build the model from its JSON (safe mode): the message names the layer
        and the bad value, e.g. "Layer 'dense_1' (Dense): unknown activation 'sofmax'; did you
        mean 'softmax'?". Nothing is written then.

    Examples
    --------
    >>> model_id = dasktrain.load_architecture(None, "model_arch", model, name="cnn")  # doctest: +SKIP
    """
    architecture = model_json(model)
    if isinstance(model, str | bytes | dict):
        build_model(architecture)  # a typo in a layer or an activation fails here, not at fit
    db = connect(db)
    name_ = TableName.parse(table)
    blob = flatten_weights(weights) if weights is not None else None
    with db.cursor() as cur:
        lock_for_creation(cur, name_)
        cur.execute(create_sql(db.dialect, name_))
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (model_arch, model_weights, name, description) VALUES (%s, %s, %s, %s) "
                "RETURNING model_id"
            ).format(name_.sql),
            (architecture, blob, name, description),
        )
        return cur.fetchone()[0]


def list_architectures(db: Database | str | None, table: str) -> list[dict]:
    """The architectures in ``table``: ``model_id``, ``name``, ``description``, ``has_weights``.

    >>> [a["model_id"] for a in dasktrain.list_architectures(None, "model_arch")]  # doctest: +SKIP
    [1, 2]
    """
    db = connect(db)
    name = TableName.parse(table)
    with db.cursor() as cur:
        _require(cur, name)
        cur.execute(
            sql.SQL("SELECT model_id, name, description, model_weights IS NOT NULL FROM {} ORDER BY model_id").format(
                name.sql
            )
        )
        return [{"model_id": i, "name": n, "description": d, "has_weights": w} for i, n, d, w in cur.fetchall()]


def delete_architecture(db: Database | str | None, table: str, model_id: int) -> None:
    """Delete architecture ``model_id``; raise :class:`SchemaError` if there is none.

    >>> dasktrain.delete_architecture(None, "model_arch", 2)  # doctest: +SKIP
    """
    db = connect(db)
    name = TableName.parse(table)
    with db.cursor() as cur:
        _require(cur, name)
        cur.execute(sql.SQL("DELETE FROM {} WHERE model_id = %s").format(name.sql), (int(model_id),))
        if cur.rowcount == 0:
            raise SchemaError(f"No architecture with model_id={model_id} in {str(name)!r}.")


def get_architecture(db: Database | str | None, table: str, model_id: int) -> tuple[str, bytes | None]:
    """``(model_arch JSON, model_weights bytes or None)`` of one architecture."""
    db = connect(db)
    name = TableName.parse(table)
    with db.cursor() as cur:
        _require(cur, name)
        cur.execute(
            # As text: psycopg2 would parse a json column itself, and raise RecursionError on a deeply nested one
            sql.SQL("SELECT model_arch::text, model_weights FROM {} WHERE model_id = %s").format(name.sql),
            (model_id,),
        )
        row = cur.fetchone()
    if row is None:
        raise SchemaError(f"No architecture with model_id={model_id} in {str(name)!r}; see list_architectures().")
    architecture, weights = row
    text = architecture if isinstance(architecture, str) else json.dumps(architecture)
    return text, bytes(weights) if weights is not None else None


def _require(cur, name: TableName) -> None:
    if not exists(cur, name):
        raise SchemaError(f"Architecture table {str(name)!r} does not exist; create it with load_architecture().")
