"""``fit_multiple``: train many configurations at once with model hopper parallelism.

The data is read once, its segments grouped into one *part* per training worker
(:mod:`._hopper`); each configuration's model visits each part once per iteration.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime

import numpy as np

from .._params import keyword_defaults
from ..errors import DataError
from ..models._fit_state import ModelState
from ..models._selection_result import DIVERGED, FINISHED, SelectionResult
from ..runtime._guard import cluster_workers, wait_for_workers
from ..runtime._placement import resolve_use_gpus, task_options
from ..strategies.hopper import Hopper
from ..train import _worker
from ..train._cache import choose_cache
from ..train._checks import class_values
from ..train._cluster_segments import ClusterSegments, planned_reads
from ..train._fit import _Plan, fit
from ._configs import ModelConfig
from ._hopper import HoppingModel, ModelHopper, part_groups
from ._retracing import silence_retracing

logger = logging.getLogger("dasktrain")

MAX_FOLDS = 255


def fit_multiple(
    data,
    configs,
    *,
    x: str | Sequence[str],
    y: str,
    iterations: int,
    validation=None,
    metrics_every: int = 1,
    folds: int | None = None,
    id: str = "id",
    rank_by: str | None = None,
    normalizing_const: float = 1.0,
    retries: int = 2,
    seed: int | None = None,
    use_gpus: bool | None = None,
    cache: str = "auto",
    client=None,
    db=None,
    progress: bool = True,
) -> SelectionResult:
    """Train every configuration on the data at once: the data stays on its workers, models hop.

    Each segment is read once, onto one worker. The segments are grouped once into *parts*, one
    per training worker with rows evened out, and each part is brought to its worker, where it
    stays. In each iteration every configuration's model visits every part exactly once and
    trains one pass over its rows, its segments shuffled together (``epochs`` passes with
    ``fit_params`` epochs), carrying its weights *and its optimizer's state* from part to part,
    so a model trains as it would on the whole table in one process. Each worker trains one model
    at a time and, when free, takes a model that has not yet visited its part: no worker waits
    for a round to end. A worker lost mid-visit costs that visit only: the parts are homed again
    on the live workers and the visit runs again, counted once. A configuration whose loss
    becomes NaN is marked ``"diverged"`` and the others go on.

    Parameters
    ----------
    data : dask.dataframe.DataFrame or str
        The training data, or a table name in ``db``.
    configs : list of ModelConfig, or str
        From :func:`model_configs`, or a model selection table (:func:`save_model_selection`,
        or MADlib's ``load_model_selection_table``) in ``db``.
    x, y : str
        Feature and label columns, as for :func:`fit`.
    iterations : int
        Passes of every model over the data (a visit to every part).
    validation : dask.dataframe.DataFrame or str, optional
        Evaluated by each model after every ``metrics_every``-th iteration and its last.
    folds : int, optional
        k-fold cross-validation: each row's fold is a fixed hash of its ``id`` (no row moves, and
        a row keeps its fold across runs); each configuration trains k models, each leaving one
        fold out and evaluated on it. The result's validation metrics are the folds' mean, and
        ``cv`` their standard deviation. Not with ``validation`` or ``cache="disk"``.
    id : str, default "id"
        The integer id column that ``folds`` hashes.
    rank_by : str, optional
        What ``best`` ranks by: ``"validation_loss"`` (the default with validation or folds, else
        ``"training_loss"``), or a compiled metric such as ``"accuracy"`` / ``"validation_accuracy"``
        (higher is better).
    normalizing_const, retries, seed, use_gpus, cache, client, db, progress
        As for :func:`fit`. ``seed`` seeds each visit's shuffle from (seed, mst_key, part, iteration).

    Returns
    -------
    SelectionResult

    Examples
    --------
    >>> configs = dasktrain.model_configs([cnn, mlp], compile={"optimizer": "adam",
    ...     "learning_rate": [1e-3, 1e-2], "loss": "sparse_categorical_crossentropy",
    ...     "metrics": ["accuracy"]}, fit={"batch_size": [64, 256]})  # doctest: +SKIP
    >>> search = dasktrain.fit_multiple("fashion_train", configs, x="x", y="y", iterations=3,
    ...                                 validation="fashion_test", normalizing_const=255.0)  # doctest: +SKIP
    >>> search.table()  # doctest: +SKIP
    """
    search = Search.plan(**locals())
    with search.started():
        models = search.models()
        search.run(models)
        return search.result(models)


class Search:
    """A search's data read once onto the cluster, and its configurations' plans."""

    @classmethod
    def plan(cls, **kw) -> Search:
        """Check everything before any work: configurations, folds, ranking; plan the reads once."""
        self = cls()
        configs = kw["configs"]
        if isinstance(configs, str):
            from ._selection_table import load_model_selection

            configs = load_model_selection(kw["db"], configs)
        if isinstance(configs, ModelConfig):
            configs = [configs]
        if not isinstance(configs, Sequence) or not configs or not all(isinstance(c, ModelConfig) for c in configs):
            raise DataError("fit_multiple needs configurations: a list of ModelConfig from dasktrain.model_configs.")
        keys = [c.mst_key for c in configs]
        if len(set(keys)) != len(keys):
            raise DataError(f"Configurations must have distinct mst_key values. Received: {keys}")
        self.configs = list(configs)
        self.folds = _folds(kw["folds"], kw["validation"], kw["cache"])
        first = configs[0]
        fit_kw = keyword_defaults(fit)
        names = ("x", "y", "iterations", "validation", "metrics_every", "normalizing_const", "retries", "seed",
                 "use_gpus", "cache", "client", "db", "progress")  # fmt: skip
        fit_kw.update({name: kw[name] for name in names})
        data, reads = _with_id(kw["data"], kw["x"], kw["y"], kw["id"], kw["db"]) if self.folds else (kw["data"], None)
        fit_kw.update(data=data, model=first.model, compile=first.compile_params, fit=first.fit_params)
        base = _Plan.build(**fit_kw)
        self.plans = {first.mst_key: base}
        for config in configs[1:]:
            plan = base.for_config(config.model, config.compile_params, config.fit_params)
            if np.prod(plan.input_shape) != np.prod(base.input_shape):
                raise DataError(
                    f"Configuration {config.mst_key}'s model takes inputs of shape {plan.input_shape}, but "
                    f"configuration {first.mst_key}'s takes {base.input_shape}: the data is read once for all, "
                    f"so their inputs must hold as many values per row."
                )
            plan.input_shape = base.input_shape  # what the data is checked against; each visit reshapes it
            self.plans[config.mst_key] = plan
        if self.folds:
            base.folds = (kw["id"], self.folds)
            if reads is not None:  # read as a table, segment by segment (the frame only served the checks)
                base.data, base.source_table = reads, kw["data"]
        self.base = base
        self.names = architecture_names(self.plans, kw["db"])
        # `is not None`, never truthiness: validation may be a dask DataFrame, whose truth value is ambiguous
        validated = self.folds is not None or base.validation is not None
        self.rank_by = _rank_by(kw["rank_by"], self.plans.values(), validated=validated)
        return self

    @contextlib.contextmanager
    def started(self):
        """Read the segments onto the cluster and group them into parts; release them (and the workers'
        state) at the end."""
        from ..runtime._cluster import client_or_local

        base = self.base
        with client_or_local(base.client, quiet=not base.progress) as client:
            self.client = client
            wait_for_workers(client, "fit_multiple")
            gpu = resolve_use_gpus(client, base.use_gpus, "fit_multiple")
            placed = task_options(gpu)
            if not all(client.run(_worker.has_plugin).values()):
                client.register_plugin(_worker.TrainingWorker())
            silence_retracing(client)
            holders = cluster_workers(client)
            if gpu:
                holders = {w: info for w, info in holders.items() if info.get("resources", {}).get("GPU")}
            self.fit_id = uuid.uuid4().hex
            self.start_time = datetime.now().astimezone()
            self.train = self.validation = None
            try:
                cache = choose_cache(base.cache, planned_reads(base.data), base.features, holders)
                self.train = ClusterSegments.prepare(client, base.data, base, "data", placed, cache)
                for plan in self.plans.values():
                    plan.check(self.train.stats, "data")
                self.groups = part_groups(client, self.train)  # fixed for the search (Hyperband's rungs too)
                if base.validation is not None:
                    cache = choose_cache(base.cache, planned_reads(base.validation), base.features, holders)
                    self.validation = ClusterSegments.prepare(
                        client, base.validation, base, "validation", placed, cache
                    )
                    for plan in self.plans.values():
                        plan.check(self.validation.stats, "validation")
                yield self
            finally:
                for segments in (self.train, self.validation):
                    if segments is not None:
                        segments.release()
                with contextlib.suppress(Exception):  # workers may be gone; their state goes with them
                    client.run(_worker.forget_fit, self.fit_id, gpu)

    def job(self, mst_key: int) -> _worker.Job:
        return self.plans[mst_key].job(self.fit_id)  # one model, trained by one worker at a time

    def models(self, keys=None, last: int | None = None) -> list[HoppingModel]:
        """A fresh model per configuration (per fold with cross-validation), at its initial weights."""
        keys = list(self.plans) if keys is None else keys
        folds = range(self.folds) if self.folds else [None]
        last = self.base.iterations if last is None else last
        return [
            HoppingModel(key, self.job(key), ModelState(self.plans[key].initial_weights), last, fold)
            for key in keys
            for fold in folds
        ]

    def run(self, models: list[HoppingModel], started: float | None = None) -> None:
        hopper = ModelHopper(
            self.client, self.train, self.validation, models, groups=self.groups,
            metrics_every=self.base.metrics_every, retries=self.base.retries, progress=self.base.progress,
            started=started,
        )  # fmt: skip
        self.visits = getattr(self, "visits", []) + hopper.run()

    def result(self, models: list[HoppingModel], status: dict | None = None) -> SelectionResult:
        """The search's outcome, one :class:`TrainingResult` per configuration (the folds combined)."""
        by_key: dict[int, list[HoppingModel]] = {}
        for model in models:
            by_key.setdefault(model.mst_key, []).append(model)
        results, statuses, errors, cv = {}, {}, {}, {}
        for key, group in by_key.items():
            plan = self.plans[key]
            result = plan.start_result()
            result.start_time, result.end_time = self.start_time, datetime.now().astimezone()
            result.mst_key, result.strategy, result.num_replicas = key, Hopper(), 1  # one model, part after part
            result.num_rows, result.num_segments = self.train.rows, len(self.train.ids)
            result.class_values = plan.classes or class_values(self.train.stats, plan.output_shape)
            failed = [m.failed for m in group if m.failed]
            statuses[key] = DIVERGED if failed else (status or {}).get(key, FINISHED)
            if failed:
                errors[key] = failed[0]
            if self.folds:
                result.history, cv[key] = _fold_history(group)
            else:
                result.members, result.history = [group[0].state.weights], group[0].history
            results[key] = result
        return SelectionResult(results, statuses, list(self.visits), self.rank_by, self.folds, cv, errors,
                               architectures={key: self.names[key] for key in results})  # fmt: skip


def architecture_names(plans: dict, db) -> dict[int, str]:
    """Each plan's architecture by name, by key: its ``name`` in the architecture table it is stored in,
    else (no name stored, or a model given as such) the Keras model's own ``name``."""
    from ..models._architectures import list_architectures
    from ..models._selection_result import architecture_name

    stored = {}
    for table in sorted({p.model_arch_table for p in plans.values() if p.model_arch_table is not None}):
        stored.update({(table, a["model_id"]): a["name"] for a in list_architectures(db, table)})
    return {
        key: stored.get((plan.model_arch_table, plan.model_id)) or architecture_name(plan.architecture)
        for key, plan in plans.items()
    }


def _folds(folds, validation, cache) -> int | None:
    if folds is None:
        return None
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or not 2 <= folds <= MAX_FOLDS:
        raise DataError(f"Expected folds as a whole number from 2 to {MAX_FOLDS}, or None. Received: folds={folds!r}")
    if validation is not None:
        raise DataError("folds= holds out each fold in turn as validation data: leave out validation=.")
    if cache == "disk":
        raise DataError("folds= takes a fold's rows out of each part in memory: use cache='memory' or 'auto'.")
    return int(folds)


def _with_id(data, x, y: str, id: str, db):
    """``(frame, reads)``: the data with the id column that folds hash. A table's reads are planned
    once, with it (``reads`` is None for a frame, whose columns are checked)."""
    from ..errors import SchemaError

    columns = list(dict.fromkeys([*([x] if isinstance(x, str) else x), y, id]))
    if isinstance(data, str):
        from ..io._read import plan_reads

        reads = plan_reads(db, data, columns=columns)
        return reads.frame(), reads
    if id not in data.columns:
        raise SchemaError(f"folds= hashes the id column {id!r}, which the data does not have: pass id=.")
    return data[columns], None


def _rank_by(rank_by, plans, validated: bool) -> str:
    """``rank_by`` as ``"<part>_<metric>"``, checked against the compiled metrics.

    >>> _rank_by("accuracy", [], validated=True)
    Traceback (most recent call last):
    ...
    dasktrain.errors.DataError: rank_by='accuracy' is not compiled in every configuration. Choose from: loss.
    """
    part = "validation" if validated else "training"
    if rank_by is None:
        return f"{part}_loss"
    if not isinstance(rank_by, str):
        raise DataError(f"Expected rank_by as a string such as 'validation_loss'. Received: rank_by={rank_by!r}")
    name = rank_by
    if rank_by.startswith(("training_", "validation_")):
        part, name = rank_by.split("_", 1)
        if part == "validation" and not validated:
            raise DataError(f"rank_by={rank_by!r} needs validation= or folds=.")
    compiled = [{m for m in plan.compile_params.get("metrics") or [] if isinstance(m, str)} for plan in plans]
    known = {"loss"} | (set.intersection(*compiled) if compiled else set())
    if name not in known:
        raise DataError(
            f"rank_by={rank_by!r} is not compiled in every configuration. Choose from: {', '.join(sorted(known))}."
        )
    return f"{part}_{name}"


def _fold_history(models: list[HoppingModel]) -> tuple[list[dict], dict[str, float]]:
    """One history from the folds' models: each metric's mean per iteration; the last validation's std."""
    history = []
    for entries in zip(*(m.history for m in models), strict=False):
        entry = {"iteration": entries[0]["iteration"], "elapsed": max(e["elapsed"] for e in entries),
                 "rows": sum(e["rows"] for e in entries)}  # fmt: skip
        for part in ("training", "validation"):
            values = [e[part] for e in entries if e.get(part)]
            entry[part] = {k: float(np.mean([v[k] for v in values])) for k in values[0]} if values else None
        history.append(entry)
    last = [m.history[-1]["validation"] for m in models if m.history and m.history[-1].get("validation")]
    spread = {f"{k}_std": float(np.std([v[k] for v in last])) for k in last[0]} if last else {}
    return history, spread
