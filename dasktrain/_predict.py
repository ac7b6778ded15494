"""Batch scoring: ``predict`` over a dask DataFrame, ``predict_table`` from table to table."""

from __future__ import annotations

import io
import uuid

import numpy as np
import pandas as pd
from psycopg2 import sql

from . import _pgbinary
from ._catalog import exists, table_info
from ._columns import SCALAR, TEXT, ColumnSpec
from ._database import Database, connect, open_connection
from ._names import TableName, identifier
from ._scoring import (
    ScoringModel,
    check_pred_type,
    features,
    prediction_frame,
    prediction_rows,
    probabilities,
    scoring_model,
)
from ._tensor_column import row_shape
from .errors import DataError, SchemaError, TableExistsError

DEFAULT_BATCH_SIZE = 1024
_INTEGER_TYPES = {"int2", "int4", "int8"}
_OUTPUT_SPECS = [
    ColumnSpec("id", SCALAR, wire=np.dtype(">i8"), dtype=np.dtype("i8")),
    ColumnSpec("class_name", TEXT),
    ColumnSpec("class_value", TEXT),
    ColumnSpec("prob", SCALAR, wire=np.dtype(">f8"), dtype=np.dtype("f8")),
    ColumnSpec("rank", SCALAR, wire=np.dtype(">i4"), dtype=np.dtype("i4")),
]


def predict(
    model,
    ddf,
    *,
    x: str = "x",
    id: str | None = "id",
    pred_type="response",
    batch_size: int = DEFAULT_BATCH_SIZE,
    class_values=None,
    normalizing_const=None,
):
    """Score a dask DataFrame lazily: one task per partition, MADlib's prediction columns.

    Parameters
    ----------
    model : keras.Model, TrainingResult, or str path of a ``.keras`` file
        For a stored model use :func:`load_model`, or :func:`predict_table`.
    ddf : dask.dataframe.DataFrame
        Holds the feature column ``x`` (and ``id``).
    x : str, default "x"
    id : str or None, default "id"
        Column copied into the output's ``id``; None numbers rows within each partition.
    pred_type : {"response", "prob"}, int or float, default "response"
        Top class; every class; the top k classes; or every class whose probability is at least
        the threshold.
    class_values, normalizing_const : optional
        Override what the model carries (a TrainingResult carries both).

    Returns
    -------
    dask.dataframe.DataFrame
        Columns ``id``, ``class_name``, ``class_value``, ``prob``, ``rank``.

    Examples
    --------
    >>> scores = dasktrain.predict(result, ddf, x="x", pred_type=3)  # doctest: +SKIP
    >>> scores.compute().head()  # doctest: +SKIP
    """
    import dask

    scorer = scoring_model(model, class_values=class_values, normalizing_const=normalizing_const)
    pred_type = check_pred_type(pred_type, len(scorer.class_values))
    if x not in ddf.columns or (id is not None and id not in ddf.columns):
        missing = x if x not in ddf.columns else id
        raise SchemaError(
            f"The frame has no column {missing!r}. Available columns: {', '.join(map(str, ddf.columns))}."
        )
    meta = prediction_frame(prediction_rows(np.zeros(0, np.int64), np.zeros((0, 2)), "response"), ["0", "1"], "y")
    shared = dask.delayed(scorer, pure=True, traverse=False)
    return ddf.map_partitions(_score_partition, shared, x, id, pred_type, batch_size, meta=meta)


def _score_partition(partition: pd.DataFrame, scorer: ScoringModel, x: str, id, pred_type, batch_size: int):
    ids = partition[id].to_numpy(np.int64) if id is not None else np.arange(len(partition), dtype=np.int64)
    probs = probabilities(scorer, features(scorer, partition, x), batch_size)
    return prediction_frame(prediction_rows(ids, probs, pred_type), scorer.class_values, scorer.class_name)


def predict_table(
    db: Database | str | None,
    model_table,
    source_table: str,
    output_table: str,
    *,
    name: str | None = None,
    version: int | None = None,
    id: str = "id",
    x: str | None = None,
    pred_type="response",
    batch_size: int = DEFAULT_BATCH_SIZE,
    client=None,
    replace: bool = False,
    class_values=None,
    normalizing_const=None,
    progress: bool = True,
) -> int:
    """Score ``source_table`` into ``output_table``, segment by segment, in parallel.

    Each segment is read, predicted in batches and written with binary COPY by a Dask worker.
    Rows go into a staging table; only when every segment has succeeded does one transaction
    put it in place of ``output_table``, so the output appears whole or not at all and a failed
    re-run leaves the previous output as it was.

    Parameters
    ----------
    db : Database, str or None
    model_table : str, (str, int), or str path of a ``.keras`` file
        A model table written by :func:`save_model` (choose with ``name``/``version``, default the
        latest); an ``(architecture_table, model_id)`` pair with stored weights; or a ``.keras`` file.
    source_table, output_table : str
    id : str, default "id"
        Unique integer id column of the source, copied into the output.
    x : str, optional
        Feature column; default the one the model was trained on.
    pred_type : {"response", "prob"}, int or float, default "response"
        Top class; every class; the top k; or classes whose probability is at least the threshold.
    batch_size : int, default 1024
    client : distributed.Client, optional
        Default: the current client, else a local cluster for this call.
    replace : bool, default False
        Replace an existing ``output_table`` (atomically) instead of raising.
    class_values, normalizing_const : optional
        For models from architecture tables or files; override the model table's for stored models.
    progress : bool, default True

    Returns
    -------
    int
        Rows written.

    Examples
    --------
    >>> dasktrain.predict_table(None, "models", "fashion_mnist_test", "fashion_scores",
    ...                         name="fashion_cnn", pred_type=3, replace=True)  # doctest: +SKIP
    30000
    """
    from ._read import read_table

    db = connect(db)
    scorer = scoring_model(
        model_table, db=db, name=name, version=version, class_values=class_values, normalizing_const=normalizing_const
    )
    pred_type = check_pred_type(pred_type, len(scorer.class_values))
    x = identifier(x or scorer.x)
    id = identifier(id)
    source, output = TableName.parse(source_table), TableName.parse(output_table)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise DataError(f"Expected a positive batch_size. Received: batch_size={batch_size!r}")
    with db.cursor() as cur:
        _check_source(cur, source, id, x)
        if exists(cur, output) and not replace:
            raise TableExistsError(
                f"Output table {str(output)!r} already exists. Pass replace=True (--replace) to replace it."
            )
    ddf = read_table(db, source_table, columns=[id, x])
    _check_shape(ddf.dtypes[x], scorer, x)
    staging = (
        output.sibling(f"__staging_{uuid.uuid4().hex[:8]}")
        if len(output.name) < 45
        else TableName(output.schema, f"dasktrain_staging_{uuid.uuid4().hex[:16]}")
    )
    with db.cursor() as cur:
        cur.execute(_create_output_sql(db, staging))
        copy = sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(staging.sql).as_string(cur.connection)
    try:
        counts = ddf.map_partitions(
            _score_and_write,
            _shared(scorer),
            x,
            id,
            pred_type,
            batch_size,
            db.dsn,
            copy,
            meta=pd.Series([], dtype=np.int64),
        )
        written = _run(counts, client, progress, str(output))
        with db.cursor() as cur:
            if replace:
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(output.sql))
            cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(staging.sql, sql.Identifier(output.name)))
    except BaseException:
        with db.cursor() as cur:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(staging.sql))
        raise
    return written


def _shared(scorer: ScoringModel):
    import dask

    return dask.delayed(scorer, pure=True, traverse=False)


def _check_source(cur, source: TableName, id: str, x: str) -> None:
    info = table_info(cur, source)
    for column, role in ((id, "id"), (x, "x")):
        if column not in info.columns:
            raise SchemaError(
                f"Source table {str(source)!r} has no {role} column {column!r}. "
                f"Available columns: {', '.join(info.columns)}."
            )
    if info.columns[id][0] not in _INTEGER_TYPES:
        raise SchemaError(f"The id column {id!r} of {str(source)!r} is {info.columns[id][0]}; expected an integer.")
    cur.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {} GROUP BY {} HAVING count(*) > 1)").format(
            source.sql, sql.Identifier(id)
        )
    )
    if cur.fetchone()[0]:
        raise DataError(f"The id column {id!r} of {str(source)!r} is not unique: every row needs its own id.")


def _check_shape(dtype, scorer: ScoringModel, x: str) -> None:
    """Refuse a feature column whose arrays the model cannot take (a channel axis may be added)."""
    from ._arrays import fit_input_shape

    shape = row_shape(dtype)
    if shape is None:
        raise SchemaError(f"Column {x!r} is not an array column; predict_table scores array features.")
    input_shape = tuple(scorer.keras_model().inputs[0].shape[1:])
    if fit_input_shape(np.zeros((0, *shape)), input_shape).shape[1:] != input_shape:
        raise DataError(f"Column {x!r} holds arrays of shape {shape}; the model's input is {input_shape}.")


def _create_output_sql(db: Database, table: TableName) -> sql.Composed:
    distributed = sql.SQL(" DISTRIBUTED BY (id)") if db.dialect.distributed else sql.SQL("")
    return sql.SQL(
        "CREATE TABLE {} (id bigint NOT NULL, class_name text, class_value text, prob double precision, rank integer){}"
    ).format(table.sql, distributed)


def _score_and_write(partition, scorer: ScoringModel, x, id, pred_type, batch_size, dsn, copy: str) -> pd.Series:
    """Score one segment and COPY its rows into the staging table (runs on a worker)."""
    ids = partition[id].to_numpy(np.int64)
    probs = probabilities(scorer, features(scorer, partition, x), batch_size)
    rows = prediction_rows(ids, probs, pred_type)
    name = scorer.class_name.encode()
    chunks = [_pgbinary.HEADER]
    for index, value in enumerate(scorer.class_values):
        mask = rows["class_index"] == index
        if mask.any():
            data = {
                "id": rows["id"][mask],
                "class_name": name,
                "class_value": value.encode(),
                "prob": rows["prob"][mask],
                "rank": rows["rank"][mask],
            }
            chunks.append(_pgbinary.encode_rows(_OUTPUT_SPECS, data))
    chunks.append(_pgbinary.TRAILER)
    conn = open_connection(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.copy_expert(copy, io.BytesIO(b"".join(chunks)))
    finally:
        conn.close()
    return pd.Series([len(rows["id"])], dtype=np.int64)


def _run(counts, client, progress: bool, label: str) -> int:
    """Compute the per-segment tasks on the cluster with a progress bar; return rows written."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    from ._cluster import client_or_local

    with client_or_local(client) as client:
        futures = client.compute(counts.to_delayed())
        total = 0
        try:
            with tqdm(total=len(futures), unit="segment", desc=f"scoring into {label}", disable=not progress) as bar:
                for future in as_completed(futures):
                    total += int(future.result().sum())
                    bar.update(1)
        except BaseException:
            client.cancel(futures)  # the caller drops the staging table next
            raise
        return total
