"""``evaluate``: loss and compiled metrics of a stored model over a whole table, on the cluster."""

from __future__ import annotations

import numpy as np
import pandas as pd
from psycopg2 import sql

from ._catalog import exists
from ._database import Database, connect
from ._names import TableName, identifier
from ._scoring import ScoringModel, features, scoring_model
from .errors import DataError, TableExistsError


def evaluate(
    db: Database | str | None,
    model_table: str,
    table: str,
    *,
    name: str | None = None,
    version: int | None = None,
    x: str | None = None,
    y: str | None = None,
    output_table: str | None = None,
    replace: bool = False,
    batch_size: int = 1024,
    client=None,
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
    table : str
        Data with the features ``x`` and labels ``y`` (default: the columns the model was trained on).
    output_table : str, optional
        Where to write the one-row result; ``replace=True`` replaces an existing table.

    Returns
    -------
    dict
        ``{"loss": ..., "<metric>": ..., "rows": n}``.

    Examples
    --------
    >>> dasktrain.evaluate(None, "models", "fashion_mnist_test", name="fashion_cnn")  # doctest: +SKIP
    {'loss': 0.41, 'accuracy': 0.853, 'rows': 10000}
    """
    from ._cluster import client_or_local
    from ._read import read_table

    db = connect(db)
    scorer = scoring_model(model_table, db=db, name=name, version=version)
    if not scorer.compile_params.get("loss"):
        raise DataError(f"The model in {model_table!r} has no stored loss (compile parameters): nothing to evaluate.")
    x, y = identifier(x or scorer.x), identifier(y or scorer.class_name)
    output = TableName.parse(output_table) if output_table else None
    if output is not None and not replace:
        with db.cursor() as cur:
            if exists(cur, output):
                raise TableExistsError(f"Output table {str(output)!r} already exists. Pass replace=True to replace it.")
    ddf = read_table(db, table, columns=[x, y])
    from ._predict import _check_shape, _shared

    _check_shape(ddf.dtypes[x], scorer, x)
    meta = pd.DataFrame(
        {
            "rows": pd.Series([], dtype=np.int64),
            "name": pd.Series([], dtype=object),
            "value": pd.Series([], dtype=np.float64),
        }
    )
    parts = ddf.map_partitions(_evaluate_partition, _shared(scorer), x, y, batch_size, meta=meta)
    with client_or_local(client) as client:
        frame = client.compute(parts).result()
    rows = int(frame.groupby("name")["rows"].sum().iloc[0])
    weighted = (frame["rows"] * frame["value"]).groupby(frame["name"]).sum() / rows
    result = {"loss": float(weighted["loss"])}
    result.update({k: float(v) for k, v in weighted.items() if k != "loss"})
    result["rows"] = rows
    if output is not None:
        _write(db, output, result, scorer, replace)
    return result


def _evaluate_partition(partition: pd.DataFrame, scorer: ScoringModel, x: str, y: str, batch_size: int) -> pd.DataFrame:
    from ._arrays import to_arrays

    X = features(scorer, partition, x)
    _, labels = to_arrays(partition, x=x, y=y)
    if len(X) == 0:
        return pd.DataFrame({"rows": [], "name": [], "value": []}).astype({"rows": np.int64, "value": np.float64})
    model = scorer.keras_model(compiled=True)
    scores = model.evaluate(X, labels, batch_size=batch_size, verbose=0, return_dict=True)
    return pd.DataFrame(
        {"rows": [len(X)] * len(scores), "name": list(scores), "value": [float(v) for v in scores.values()]}
    )


def _write(db: Database, output: TableName, result: dict, scorer: ScoringModel, replace: bool) -> None:
    metric = next((k for k in result if k not in ("loss", "rows")), None)
    with db.cursor() as cur:
        if replace:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(output.sql))
        cur.execute(
            sql.SQL(
                "CREATE TABLE {} (loss double precision, metric double precision, metrics_type text[], "
                "loss_type text, rows bigint)"
            ).format(output.sql)
        )
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
