"""``fit_groups``: one model per value of a grouping column (per country, per device), trained in parallel."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from .._params import keyword_defaults
from ..errors import DataError, SchemaError
from ..models._selection_result import FINISHED, GroupResult
from ..runtime._cluster import client_or_local
from ..runtime._guard import cluster_workers, gather, wait_for_workers
from ..strategies import Centralized
from ..train import _worker
from ..train._cache import rows_one_worker_holds
from ..train._checks import class_values
from ..train._fit import _Plan
from ..train._fit import fit as fit_one
from ..train._groups import train_groups
from ._fit_multiple import architecture_names
from ._retracing import silence_retracing

logger = logging.getLogger("dasktrain")


def fit_groups(
    data,
    model,
    *,
    by: str,
    x: str | Sequence[str],
    y: str,
    compile,
    fit=None,
    iterations: int,
    max_group_rows: int | None = None,
    strategy=None,
    normalizing_const: float = 1.0,
    seed: int | None = None,
    client=None,
    db=None,
    progress: bool = True,
) -> GroupResult:
    """Train one model per value of ``by``, all from the same starting weights, in parallel.

    The rows are shuffled once so that each group's rows are together on one worker; each worker
    then trains its groups one after another, ``iterations`` passes each. A group with more than
    ``max_group_rows`` rows is too large for one worker: it trains instead with :func:`fit` across
    the segments that hold it, merged with ``strategy``.

    Parameters
    ----------
    data : dask.dataframe.DataFrame or str
        The rows, with the ``by`` column; or a table name in ``db``.
    model, x, y, compile, fit, iterations, strategy, normalizing_const, seed, client, db, progress
        As for :func:`fit`.
    by : str
        The grouping column (any type; its values are kept as text in the model table). Rows whose
        ``by`` is NULL are refused before any training, with a :class:`DataError` naming how many:
        leave them out, or give them a group, first.
    max_group_rows : int, optional
        Default: for a table, the rows that fit in the smallest worker's memory below Dask's spill
        threshold (from the catalog's column sizes); for a DataFrame, no limit.

    Returns
    -------
    GroupResult
        ``.group(value)`` gives a group's :class:`TrainingResult`; :func:`save_models` saves them
        all, and ``predict_table(..., by=...)`` scores each row with its group's model.

    Examples
    --------
    >>> groups = dasktrain.fit_groups("sales", model, by="country", x="x", y="y", iterations=5,
    ...     compile="optimizer='adam', loss='sparse_categorical_crossentropy'")  # doctest: +SKIP
    >>> groups.table()[["country", "rows", "training_loss"]]  # doctest: +SKIP
    """
    if max_group_rows is not None and (isinstance(max_group_rows, bool) or not isinstance(max_group_rows, int)
                                       or max_group_rows < 1):  # fmt: skip
        raise DataError(f"Expected max_group_rows as a whole number >= 1. Received: max_group_rows={max_group_rows!r}")
    features = [x] if isinstance(x, str) else list(x)
    reads = None
    if isinstance(data, str):
        from ..io._read import plan_reads

        reads = plan_reads(db, data, columns=list(dict.fromkeys([*features, y, by])))
        frame = reads.frame()
    else:
        frame = data
    if by not in frame.columns:
        raise SchemaError(f"The data has no grouping column {by!r}. Available columns: {', '.join(frame.columns)}.")
    if by in (*features, y):
        raise DataError(f"by={by!r} is also a feature or the label: group by another column.")
    given = {"data": frame, "model": model, "x": x, "y": y, "compile": compile, "fit": fit, "iterations": iterations,
             "strategy": strategy, "normalizing_const": normalizing_const, "seed": seed, "client": client, "db": db,
             "progress": progress}  # fmt: skip
    plan = _Plan.build(**{**keyword_defaults(fit_one), **given})
    with client_or_local(client, quiet=not progress) as client:
        wait_for_workers(client, "fit_groups")
        if not all(client.run(_worker.has_plugin).values()):
            client.register_plugin(_worker.TrainingWorker())
        silence_retracing(client)
        sizes = _group_sizes(frame, by, plan)
        limit = max_group_rows or rows_one_worker_holds(reads, features, cluster_workers(client))
        large = sorted(v for v, n in sizes.items() if limit is not None and n > limit)
        small = sorted(v for v in sizes.index if v not in set(large))
        job = plan.job(uuid.uuid4().hex)
        tasks = _submit_small(client, frame, by, small, plan, job) if small else []
        results, placement = {}, {}
        for value in large:
            logger.info("fit_groups: group %s=%r has %d rows, more than one worker holds: training it across "
                        "segments", by, value, sizes[value])  # fmt: skip
            rows = frame[frame[by] == value]
            results[value] = fit_one(rows, plan.architecture, x=x, y=y, compile=plan.compile_params,
                                     fit=plan.fit_params, iterations=iterations, strategy=strategy,
                                     initial_weights=plan.initial_weights, normalizing_const=normalizing_const,
                                     seed=seed, client=client, progress=progress)  # fmt: skip
            placement[value] = "segments"
        trained = {}
        for part in gather(client, tasks, [f"groups task {k}" for k in range(len(tasks))], "fit_groups"):
            trained.update(part)
        for value, (weights, history) in trained.items():
            result = plan.start_result()
            result.strategy, result.num_replicas = Centralized(), 1  # one worker trained the group's rows alone
            result.members, result.history = [weights], history
            result.num_rows, result.num_segments = int(sizes[value]), 1
            results[value], placement[value] = result, "one worker"
    name = architecture_names({0: plan}, db)[0]
    stats_classes = plan.classes or class_values([], plan.output_shape)
    keys = {value: k for k, value in enumerate(sorted(results, key=str), start=1)}
    for value, result in results.items():
        result.mst_key = keys[value]
        result.class_values = result.class_values or stats_classes
        result.source_table = data if isinstance(data, str) else None
    return GroupResult(
        {keys[v]: r for v, r in results.items()}, dict.fromkeys(keys.values(), FINISHED), rank_by="training_loss",
        by=by, values={k: v for v, k in keys.items()}, placement={keys[v]: p for v, p in placement.items()},
        architectures=dict.fromkeys(keys.values(), name),
    )  # fmt: skip


def _group_sizes(frame, by: str, plan):
    """Each group's row count, in one pass that also checks integer labels against the model's classes
    and refuses rows without a group (a group by would drop them unseen)."""
    import dask
    import numpy as np

    if frame[plan.y].dtype.kind not in "iu":
        sizes, missing = dask.compute(frame[by].value_counts(), frame[by].isna().sum())
    else:
        stats, missing = dask.compute(frame.groupby(by)[plan.y].agg(["count", "min", "max"]), frame[by].isna().sum())
    if missing:
        raise DataError(
            f"fit_groups: {int(missing)} rows have no {by} (NULL): every row needs a group. Leave them out "
            f"(WHERE {by} IS NOT NULL, or frame[frame[{by!r}].notna()]) or give them a value first."
        )
    if frame[plan.y].dtype.kind in "iu":
        classes = plan.output_shape[-1] if plan.output_shape else 1
        if "sparse" in str(plan.compile_params.get("loss", "")):
            bad = stats[(stats["min"] < 0) | (stats["max"] >= classes)]
            if len(bad):
                value = bad.index[0]
                raise DataError(
                    f"fit_groups: group {by}={value!r} has labels from {bad.loc[value, 'min']} to "
                    f"{bad.loc[value, 'max']}, outside the model's {classes} classes (0..{classes - 1})."
                )
        sizes = stats["count"].astype(np.int64)
    if sizes.empty or not sizes.sum():
        raise DataError("fit_groups: the data has no rows.")
    return sizes


def _submit_small(client, frame, by: str, values: list, plan, job) -> list:
    """Shuffle the small groups' rows once, so each group is on one worker, and train each there.

    Returns the training tasks' futures, each ``{value: (weights, history)}`` for its groups.
    """
    workers = max(1, sum(info.get("nthreads", 1) for info in cluster_workers(client).values()))
    # The task-based shuffle: Dask's P2P shuffle cannot carry array columns (nested Arrow lists) through Arrow.
    rows = frame[frame[by].isin(values)]
    shuffled = rows.shuffle(on=by, npartitions=min(len(values), 2 * workers), shuffle_method="tasks")
    shaping = plan.shaping
    parts = client.compute(shuffled.to_delayed())
    return [client.submit(train_groups, part, by, job, plan.initial_weights, plan.iterations, shaping, pure=False)
            for part in parts]  # fmt: skip
