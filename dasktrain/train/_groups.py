"""Training one model per group on the worker that holds the group's rows (:func:`dasktrain.fit_groups`)."""

from __future__ import annotations

import hashlib
import time

import numpy as np

from ..errors import TrainingDivergedError
from . import _worker
from ._segment_data import prepare_segment


def train_groups(partition, by: str, job: _worker.Job, initial: list, iterations: int, shaping: tuple) -> dict:
    """Train a fresh model from ``initial`` on each group of ``partition`` for ``iterations`` passes.

    Returns ``{group value: (weights, history)}``; each history entry has the pass's training metrics.
    """
    slot = _worker._plugin().slot(job)
    trained = {}
    for value, rows in partition.groupby(by, sort=True, observed=True):
        data = prepare_segment(rows, *shaping)
        clock, history = time.perf_counter(), []
        with slot.lock:
            model = slot.model
            slot.start_from(initial)
            for iteration in range(1, iterations + 1):
                seeds = None if job.seed is None else [job.seed, group_number(value), iteration]
                metrics = _worker._train(model, data, job, None if seeds is None else np.random.default_rng(seeds))
                if not np.isfinite(metrics.get("loss", 0.0)):
                    raise TrainingDivergedError(
                        f"Training diverged: group {by}={value!r} gave loss {metrics['loss']} at iteration {iteration}."
                    )
                history.append({"iteration": iteration, "elapsed": time.perf_counter() - clock,
                                "training": metrics, "validation": None, "rows": data.rows})  # fmt: skip
            trained[_plain(value)] = ([np.asarray(w) for w in model.get_weights()], history)
    return trained


def group_number(value) -> int:
    """A stable number for a group value, to seed its shuffles.

    >>> group_number("fr") == group_number("fr") != group_number("de")
    True
    """
    return int.from_bytes(hashlib.sha256(str(value).encode()).digest()[:4], "little")


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value
