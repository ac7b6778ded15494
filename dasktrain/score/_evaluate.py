"""``evaluate``: loss and compiled metrics of a stored model over a whole table, on the cluster."""

from __future__ import annotations

import numpy as np
import pandas as pd
from psycopg2 import sql

from .._names import TableName, identifier
from .._params import MAX_BATCH_SIZE, boolean, positive_int
from ..errors import DataError, TableExistsError
from ..io._catalog import exists, refuse_protected_output
from ..io._database import Database, connect
from ._scoring import ScoringModel, features, scoring_model


def evaluate(
    db: Database | str | None,
    model_table: str,
    table: str,
    *,
    name: str | None = None,
    version: int | None = None,
    mst_key: int | None = None,
    x: str | None = None,
    y: str | None = None,
    output_table: str | None = None,
    replace: bool = False,
    batch_size: int = 1024,
    skip_nonfinite: bool = False,
    client=None,
    use_gpus: bool | None = None,
    progress: bool = True,
) -> dict:
    """Loss and compiled metrics of a stored model over every row of ``table``.

    Each segment is evaluated by a Dask worker; the results are combined weighted by rows, which
    equals evaluating all rows in one process (up to float rounding) for mean metrics such as
    loss and accuracy. Optionally writes MADlib's evaluate columns (``loss``, ``metric``,
    ``metrics_type``, ``loss_type``) to ``output_table``.

    Parameters
    ----------
    db : Database, str or None
    model_table : str
        A table written by :func:`save_model`; ``name``/``version`` choose the model (latest by default).
        For a search written by :func:`save_models`, ``mst_key`` chooses the configuration (default: the best).
    table : str
        Data with the features ``x`` and labels ``y`` (default: the columns the model was trained on).
    output_table : str, optional
        Where to write the one-row result; ``replace=True`` replaces an existing table. It may not
        be the data or the model table.
    skip_nonfinite : bool, default False
        Rows whose features hold NaN or infinity are an error naming them; True leaves them out
        and counts them in ``"skipped"``.
    use_gpus : bool, optional
        True: evaluate on GPU workers only (an error before any work when there are none); False:
        on any worker; None (default): on GPU workers when the cluster has them.
    progress : bool, default True
        Show a progress bar over the segments.

    Returns
    -------
    dict
        ``{"loss": ..., "<metric>": ..., "rows": n}`` (and ``"skipped"`` when rows were left out).

    Examples
    --------
    >>> dasktrain.evaluate(None, "models", "fashion_mnist_test", name="fashion_cnn")  # doctest: +SKIP
    {'loss': 0.41, 'accuracy': 0.853, 'rows': 10000}
    """
    import dask

    from ..io._read import read_table
    from ..runtime._cluster import client_or_local
    from ..runtime._placement import placement
    from ._columns import check_features, feature_columns
    from ._predict import _shared, protected_tables
    from ._segments import run_segments

    replace, skip_nonfinite = boolean(replace, "replace"), boolean(skip_nonfinite, "skip_nonfinite")
    db = connect(db)
    scorer = scoring_model(model_table, db=db, name=name, version=version, mst_key=mst_key)
    if not scorer.compile_params.get("loss"):
        raise DataError(f"The model in {model_table!r} has no stored loss (compile parameters): nothing to evaluate.")
    columns, y = feature_columns(x or scorer.x), identifier(y or scorer.class_name)
    batch_size = positive_int(batch_size, "batch_size", maximum=MAX_BATCH_SIZE)
    output = TableName.parse(output_table) if output_table else None
    if output is not None:
        with db.cursor() as cur:
            refuse_protected_output(cur, output, protected_tables(TableName.parse(table), model_table))
            if exists(cur, output) and not replace:
                raise TableExistsError(f"Output table {str(output)!r} already exists. Pass replace=True to replace it.")
    ddf = read_table(db, table, columns=[*columns, y])
    check_features(ddf.dtypes, scorer, columns)
    shared = _shared(scorer)
    tasks = [
        dask.delayed(_evaluate_partition, pure=False)(part, k, shared, columns, y, batch_size, skip_nonfinite)
        for k, part in enumerate(ddf.to_delayed())
    ]
    with client_or_local(client, quiet=not progress) as client:
        placed = placement(client, use_gpus, f"evaluating on {table}")
        parts = [p for p in run_segments(tasks, client, progress, f"evaluating on {table}", placed) if p["rows"]]
    rows = sum(p["rows"] for p in parts)
    if not rows:
        raise DataError(f"No row of {table!r} could be evaluated: every row has NaN or infinite features.")
    names = parts[0]["scores"].keys()
    result = {k: float(sum(p["rows"] * p["scores"][k] for p in parts) / rows) for k in names}
    result = {"loss": result.pop("loss"), **result, "rows": rows}
    skipped = sum(p["skipped"] for p in parts)
    if skipped:
        result["skipped"] = skipped
    if output is not None:
        _write(db, output, result, scorer, replace)
    return result


def _evaluate_partition(
    partition: pd.DataFrame, segment: int, scorer: ScoringModel, x: list, y: str, batch_size: int, skip: bool
) -> dict:
    """One segment's row count and loss and metrics (runs on a worker)."""
    from ..io._tensor_column import is_tensor_series, series_to_numpy
    from ._columns import class_labels
    from ._segments import finite_rows

    X = features(scorer, partition, x)
    column = partition[y]
    labels = class_labels(series_to_numpy(column) if is_tensor_series(column) else column.to_numpy(), scorer, y)
    keep = finite_rows(X, None, skip, f"Segment {segment}")
    skipped = 0 if keep is None else int(len(keep) - keep.sum())
    if keep is not None:
        X, labels = X[keep], labels[keep]
    if len(X) == 0:
        return {"rows": 0, "scores": {}, "skipped": skipped}
    model = scorer.keras_model(compiled=True)
    _check_labels(labels, model, scorer, segment)
    scores = model.evaluate(X, labels, batch_size=batch_size, verbose=0, return_dict=True)
    return {"rows": len(X), "scores": {k: float(v) for k, v in scores.items()}, "skipped": skipped}


def _check_labels(labels: np.ndarray, model, scorer: ScoringModel, segment: int) -> None:
    """Refuse integer labels outside the model's classes (Keras would fail deep inside the backend)."""
    loss = str(scorer.compile_params.get("loss", ""))
    classes = int(model.outputs[0].shape[-1])
    if "sparse" in loss and labels.dtype.kind in "iu":
        bad = np.unique(labels[(labels < 0) | (labels >= classes)])
        if bad.size:
            raise DataError(
                f"Segment {segment}: labels {bad[:5].tolist()} are outside the model's {classes} classes "
                f"(0..{classes - 1})."
            )


def output_table_sql(dialect, output: TableName) -> sql.Composed:
    """MADlib's evaluate output: one row, copied to every segment on Greenplum."""
    return sql.SQL(
        "CREATE TABLE {} (loss double precision, metric double precision, metrics_type text[], "
        "loss_type text, rows bigint){}"
    ).format(output.sql, dialect.distribution())


def _write(db: Database, output: TableName, result: dict, scorer: ScoringModel, replace: bool) -> None:
    from ..io._staging import drop_table

    metric = next((k for k in result if k not in ("loss", "rows", "skipped")), None)
    with db.cursor() as cur:
        if replace:
            drop_table(cur, output)
        cur.execute(output_table_sql(db.dialect, output))
        cur.execute(
            sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s)").format(output.sql),
            (
                result["loss"],
                result.get(metric),
                [metric] if metric else None,
                str(scorer.compile_params.get("loss")),
                result["rows"],
            ),
        )
