"""Batch scoring: ``predict`` over a dask DataFrame, ``predict_table`` from table to table."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from psycopg2 import sql

from .._names import TableName, identifier
from .._params import MAX_BATCH_SIZE, boolean, positive_int
from ..errors import DataError, SchemaError, TableExistsError
from ..io import _pgbinary
from ..io._catalog import exists, refuse_protected_output, table_info
from ..io._columns import SCALAR, TEXT, ColumnSpec
from ..io._database import Database, connect
from ..io._staging import Staging
from ._columns import check_features, feature_columns
from ._scoring import (
    ScoringModel,
    check_pred_type,
    features,
    prediction_frame,
    prediction_rows,
    probabilities,
    scoring_model,
)
from ._segments import finite_rows, run_segments

logger = logging.getLogger("dasktrain")

DEFAULT_BATCH_SIZE = 1024
_INTEGER_TYPES = {"int2", "int4", "int8"}
_OUTPUT_COLUMNS = sql.SQL("id bigint NOT NULL, class_name text, class_value text, prob double precision, rank integer")
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
    x: str | list[str] | None = None,
    id: str | None = "id",
    pred_type="response",
    batch_size: int = DEFAULT_BATCH_SIZE,
    class_values=None,
    normalizing_const=None,
    skip_nonfinite: bool = False,
):
    """Score a dask DataFrame lazily: one task per partition, MADlib's prediction columns.

    Parameters
    ----------
    model : keras.Model, TrainingResult, or str path of a ``.keras`` file
        For a stored model use :func:`load_model`, or :func:`predict_table`.
    ddf : dask.dataframe.DataFrame
        Holds the feature column ``x`` (and ``id``).
    x : str or list of str, optional
        The feature column (one array per row), or plain numeric columns (one feature each, a list
        or names joined by commas). Default: the columns the model was trained on, else ``"x"``.
    id : str or None, default "id"
        Column copied into the output's ``id``; None numbers rows within each partition.
    pred_type : {"response", "prob"}, int or float, default "response"
        Top class; every class; the top k classes; or every class whose probability is at least
        the threshold.
    class_values, normalizing_const : optional
        Override what the model carries (a TrainingResult carries both).
    skip_nonfinite : bool, default False
        Rows with NaN or infinite features are an error; True leaves them out.

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

    skip_nonfinite = boolean(skip_nonfinite, "skip_nonfinite")
    scorer = scoring_model(model, class_values=class_values, normalizing_const=normalizing_const)
    pred_type = check_pred_type(pred_type, len(scorer.class_values))
    columns = feature_columns(x or scorer.x)
    missing = [c for c in [*columns, *([id] if id is not None else [])] if c not in ddf.columns]
    if missing:
        raise SchemaError(
            f"The frame has no column {missing[0]!r}. Available columns: {', '.join(map(str, ddf.columns))}."
        )
    check_features(ddf.dtypes, scorer, columns)
    meta = prediction_frame(prediction_rows(np.zeros(0, np.int64), np.zeros((0, 2)), "response"), ["0", "1"], "y")
    shared = dask.delayed(scorer, pure=True, traverse=False)
    batch_size = positive_int(batch_size, "batch_size", maximum=MAX_BATCH_SIZE)
    return ddf.map_partitions(
        _score_partition, shared, tuple(columns), id, pred_type, batch_size, skip_nonfinite, meta=meta
    )


def _score_partition(partition: pd.DataFrame, scorer: ScoringModel, x: tuple, id, pred_type, batch_size, skip):
    ids = partition[id].to_numpy(np.int64) if id is not None else np.arange(len(partition), dtype=np.int64)
    X = features(scorer, partition, x)
    keep = finite_rows(X, ids, skip, "A partition")
    if keep is not None:
        ids, X = ids[keep], X[keep]
    probs = probabilities(scorer, X, batch_size)
    return prediction_frame(prediction_rows(ids, probs, pred_type), scorer.class_values, scorer.class_name)


def predict_table(
    db: Database | str | None,
    model_table,
    source_table: str,
    output_table: str,
    *,
    name: str | None = None,
    version: int | None = None,
    mst_key: int | None = None,
    by: str | None = None,
    id: str = "id",
    x: str | None = None,
    pred_type="response",
    batch_size: int = DEFAULT_BATCH_SIZE,
    client=None,
    replace: bool = False,
    class_values=None,
    normalizing_const=None,
    skip_nonfinite: bool = False,
    progress: bool = True,
    use_gpus: bool | None = None,
) -> int:
    """Score ``source_table`` into ``output_table``, segment by segment, in parallel.

    Each segment is read, predicted in batches and written with binary COPY by a Dask worker.
    Rows go into a staging table; only when every segment has succeeded does one transaction
    put it in place of ``output_table``, so the output appears whole or not at all and a failed
    re-run leaves the previous output as it was. Each segment is written exactly once even when
    Dask re-runs its task after losing a worker. Empty segments are skipped; an empty source
    gives an empty output.

    Parameters
    ----------
    db : Database, str or None
    model_table : str, (str, int), or str path of a ``.keras`` file
        A model table written by :func:`save_model` (choose with ``name``/``version``, default the
        latest), or by :func:`save_models` (choose the configuration with ``mst_key``, default the
        search's best), or with ``by`` a :func:`fit_groups` result saved by :func:`save_models`; an
        ``(architecture_table, model_id)`` pair with stored weights; or a ``.keras`` file.
    source_table, output_table : str
        The output may not be the source, the model table, or their summaries.
    id : str, default "id"
        Unique integer id column of the source, copied into the output.
    by : str, optional
        Score each row with the model of its group: ``by`` is the source's column holding the group
        values that :func:`fit_groups` trained a model for. A row of a group without one, or whose
        ``by`` is NULL, is an error (the NULL rows are counted before any work).
    x : str or list of str, optional
        The feature column, or plain numeric columns (a list, or names joined by commas); default:
        the columns the model was trained on.
    pred_type : {"response", "prob"}, int or float, default "response"
        Top class; every class; the top k; or classes whose probability is at least the threshold.
    batch_size : int, default 1024
    client : distributed.Client, optional
        Default: the current client, else a local cluster for this call.
    replace : bool, default False
        Replace an existing ``output_table`` (atomically) instead of raising.
    class_values, normalizing_const : optional
        For models from architecture tables or files; override the model table's for stored models.
    skip_nonfinite : bool, default False
        Rows whose features hold NaN or infinity are an error naming them; True skips them and
        logs how many (a warning on the ``dasktrain`` logger).
    progress : bool, default True
    use_gpus : bool, optional
        True: score on GPU workers only (an error before any work when there are none); False:
        on any worker; None (default): on GPU workers when the cluster has them.

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
    from ..io._read import read_table
    from ..runtime._cluster import client_or_local
    from ..runtime._placement import placement

    replace, skip_nonfinite = boolean(replace, "replace"), boolean(skip_nonfinite, "skip_nonfinite")
    db = connect(db)
    groups = None
    if by is not None:
        from ._scoring import group_scoring_models

        by = identifier(by)
        _, groups = group_scoring_models(db, model_table, name=name, version=version, class_values=class_values,
                                         normalizing_const=normalizing_const)  # fmt: skip
        scorer = next(iter(groups.values()))
    else:
        scorer = scoring_model(
            model_table, db=db, name=name, version=version, class_values=class_values,
            normalizing_const=normalizing_const, mst_key=mst_key,
        )  # fmt: skip
    pred_type = check_pred_type(pred_type, len(scorer.class_values))
    columns = feature_columns(x or scorer.x)
    id = identifier(id)
    source, output = TableName.parse(source_table), TableName.parse(output_table)
    batch_size = positive_int(batch_size, "batch_size", maximum=MAX_BATCH_SIZE)
    with db.cursor() as cur:
        _check_source(cur, source, id, columns, by)
        refuse_protected_output(cur, output, protected_tables(source, model_table))
        if exists(cur, output) and not replace:
            raise TableExistsError(
                f"Output table {str(output)!r} already exists. Pass replace=True (--replace) to replace it."
            )
        cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(source.sql))
        has_rows = cur.fetchone()[0]
    parts = []
    if has_rows:
        ddf = read_table(db, source_table, columns=[id, *columns] + ([by] if by else []))
        check_features(ddf.dtypes, scorer, columns)
        parts = ddf.to_delayed()
    model = scorer if by is None else (by, groups)
    job = (db, model, parts, output, columns, id, pred_type, batch_size, skip_nonfinite, replace)
    if not parts:  # an empty output needs no cluster
        return _score_table(*job, client, {}, progress)
    with client_or_local(client, quiet=not progress) as client:
        return _score_table(*job, client, placement(client, use_gpus, f"scoring into {output}"), progress)


def _score_table(db, scorer, parts, output, x, id, pred_type, batch_size, skip_nonfinite, replace, client, placed,
                 progress) -> int:  # fmt: skip
    """Score ``parts`` into a staging table, then publish it as ``output`` (or drop it on failure)."""
    import dask

    staging = Staging.new(output)
    holder = staging.start(db, _OUTPUT_COLUMNS, "id" if db.dialect.distributed else None, replace=replace)
    try:
        writer = staging.writer(db.dsn)
        shared = _shared(scorer)
        tasks = [
            dask.delayed(_score_and_write, pure=False)(
                part, k, shared, x, id, pred_type, batch_size, writer, skip_nonfinite
            )
            for k, part in enumerate(parts)
        ]
        counts = run_segments(tasks, client, progress, f"scoring into {output}", placed)
        written, skipped = sum(c[0] for c in counts), sum(c[1] for c in counts)
        typed = scorer if isinstance(scorer, ScoringModel) else next(iter(scorer[1].values()))
        retype = {"class_value": typed.label_type} if typed.label_type else None
        rows = staging.publish(db, len(tasks), written, replace, retype)
    except BaseException:
        staging.drop(db)
        raise
    finally:
        holder.close()
    if skipped:
        logger.warning("predict_table: skipped %d rows scoring into %s with NaN or infinite features", skipped, output)
    return rows


def protected_tables(source: TableName, model_table) -> dict[str, TableName | None]:
    """The tables a job reads, which its output must never replace."""
    from ..io._catalog import SUMMARY_SUFFIX

    protected = {"the source table": source, "the source table's summary": source.sibling(SUMMARY_SUFFIX)}
    if isinstance(model_table, tuple):
        protected["the architecture table"] = TableName.parse(model_table[0])
    elif isinstance(model_table, str) and not model_table.endswith(".keras"):
        model = TableName.parse(model_table)
        protected["the model table"] = model
        protected["the model table's summary"] = model.sibling(SUMMARY_SUFFIX)
        protected["the model table's info"] = model.sibling("_info")
    return protected


def _shared(scorer: ScoringModel):
    import dask

    return dask.delayed(scorer, pure=True, traverse=False)


def _check_source(cur, source: TableName, id: str, columns: list[str], by: str | None = None) -> None:
    info = table_info(cur, source)
    for column, role in ((id, "id"), *((c, "x") for c in columns), *(((by, "grouping"),) if by else ())):
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
    if by is not None:
        cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE {} IS NULL").format(source.sql, sql.Identifier(by)))
        missing = cur.fetchone()[0]
        if missing:
            raise DataError(
                f"{missing} rows of {str(source)!r} have no {by} (NULL), so no group's model can score them. "
                f"Score them with a single model, or give them a group, first."
            )


def _score_and_write(
    partition, segment: int, scorer, x, id, pred_type, batch_size, writer, skip_nonfinite: bool
) -> tuple[int, int]:
    """Score one segment and write its rows into the staging table once (runs on a worker).

    ``scorer`` is a :class:`ScoringModel`, or ``(by, {group value: ScoringModel})`` to score each
    row with its group's model. Returns (rows in the staging table for this segment, rows skipped
    for non-finite features).
    """
    where = f"Segment {segment}"
    if isinstance(scorer, ScoringModel):
        rows, skipped = _scored(partition, scorer, x, id, pred_type, batch_size, skip_nonfinite, where)
    else:
        by, models = scorer
        scored = []
        for value, rows in partition.groupby(partition[by].astype(str), sort=False):
            if value not in models:
                raise DataError(
                    f"{where}: rows with {by}={value!r} have no model; the models cover {by} in {sorted(models)[:10]}."
                )
            scored.append(_scored(rows, models[value], x, id, pred_type, batch_size, skip_nonfinite, where))
        scorer = next(iter(models.values()))
        skipped = sum(s for _, s in scored)
        rows = (
            {k: np.concatenate([r[k] for r, _ in scored]) for k in ("id", "class_index", "prob", "rank")}
            if scored
            else prediction_rows(np.zeros(0, np.int64), np.zeros((0, len(scorer.class_values))), pred_type)
        )
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
    return writer.write(segment, b"".join(chunks), len(rows["id"])), skipped


def _scored(partition, scorer: ScoringModel, x, id, pred_type, batch_size, skip_nonfinite: bool, where: str):
    """MADlib's prediction rows of ``partition`` by ``scorer``, and how many rows were skipped."""
    ids = partition[id].to_numpy(np.int64)
    X = features(scorer, partition, x)
    keep = finite_rows(X, ids, skip_nonfinite, where)
    skipped = 0 if keep is None else int(len(keep) - keep.sum())
    if keep is not None:
        ids, X = ids[keep], X[keep]
    return prediction_rows(ids, probabilities(scorer, X, batch_size), pred_type), skipped
