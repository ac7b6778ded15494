"""Training state on Dask workers, and the tasks that use it.

State lives in one named ``WorkerPlugin`` (:class:`TrainingWorker`), reached from tasks with
``get_worker().plugins[NAME]``: one Keras model per worker process per architecture, built once
and reused (only weights change), and each replica's :class:`ReplicaState` across rounds (its
optimizer state, its place in the data, and for EASGD and ensembles its own weights).

Nothing here is the only copy of anything that matters: when a worker dies, its segments are
read again from the database on a live worker, and its replicas restart there from the center
the client keeps; only their optimizer state starts afresh. Replica states are stamped with their
iteration, and the previous one is kept, so a round run twice (retried after a loss) starts from
the same state.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field

import numpy as np
from distributed import WorkerPlugin, get_worker

from .._model_spec import compiled_model
from .._stateful_layers import set_weights
from ..errors import TrainingDivergedError
from ..models._fit_state import ReplicaState
from ..strategies import Strategy, WeightedSum
from ._class_weights import batch_weights
from ._segment_data import SegmentData, segment_finite

NAME = "dasktrain-training"


@dataclass(frozen=True)
class Job:
    """What every training task of one ``fit`` needs; small, sent with each task."""

    fit_id: str
    architecture: str
    compile: dict
    batch_size: int = 32
    epochs: int = 1
    sync_every: int | None = None
    shuffle: bool = True
    replicas: int = 1  # how many models train in parallel each round (for learning-rate rules)
    seed: int | None = None  # seeds each round's shuffle: (seed, replica, iteration) -> one permutation
    class_weights: tuple[float, ...] | None = None  # fit's class_weight, by class number
    model_key: str = field(init=False)

    def __post_init__(self):
        digest = hashlib.sha256((self.architecture + json.dumps(self.compile, sort_keys=True)).encode())
        object.__setattr__(self, "model_key", digest.hexdigest()[:16])


class _Slot:
    """One built model, the lock that serializes its use, and its optimizer's initial state."""

    def __init__(self, model):
        self.model = model
        self.lock = threading.Lock()
        optimizer = model.optimizer
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        self.initial_optimizer_state = [np.array(v.numpy()) for v in optimizer.variables]
        self.base_learning_rate = _settable_learning_rate(optimizer)
        self.holds: ReplicaState | None = None  # whose state the optimizer's variables hold now

    def start_from(self, weights, optimizer=None) -> None:
        """Load ``weights`` and an optimizer state (default: the fresh one) at the compiled learning
        rate, for a model trained outside a fit's rounds (a search's visit, a group). Hold the lock."""
        set_weights(self.model, weights)
        state = optimizer if optimizer is not None else self.initial_optimizer_state
        for variable, value in zip(self.model.optimizer.variables, state, strict=True):
            variable.assign(value)
        self.holds = None  # a fit's replica state is no longer in the optimizer's variables
        if self.base_learning_rate is not None:  # a fit on this worker may have scaled it (SlowMo)
            self.model.optimizer.learning_rate = self.base_learning_rate


def _settable_learning_rate(optimizer) -> float | None:
    """The compiled learning rate, or None when it is a schedule (left alone by learning-rate rules)."""
    import keras

    if isinstance(getattr(optimizer, "_learning_rate", None), keras.optimizers.schedules.LearningRateSchedule):
        return None
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class TrainingWorker(WorkerPlugin):
    """Per-worker-process training state. Registered by :func:`dasktrain.fit`.

    On setup it limits TensorFlow's thread pools to the worker's own threads, so that several
    worker processes on one machine do not each start a pool the size of the machine.
    """

    name = NAME

    def setup(self, worker) -> None:
        # State is made here, on the worker: the plugin object itself is pickled to get there.
        self.slots: dict[str, _Slot] = {}
        self.replicas: dict[tuple[str, int], dict[int, ReplicaState]] = {}
        self._lock = threading.Lock()
        limit_threads(worker.state.nthreads)

    def slot(self, job: Job) -> _Slot:
        with self._lock:
            slot = self.slots.get(job.model_key)
            if slot is None:
                slot = self.slots[job.model_key] = _Slot(compiled_model(job.architecture, job.compile))
            return slot

    def state(self, fit_id: str, replica: int, iteration: int) -> ReplicaState | None:
        """The replica's state after ``iteration``, if this worker trained it then."""
        with self._lock:
            return self.replicas.get((fit_id, replica), {}).get(iteration)

    def keep(self, fit_id: str, replica: int, state: ReplicaState) -> None:
        """Record the state after ``state.iteration``; keep the one before it for a retried round."""
        with self._lock:
            states = self.replicas.setdefault((fit_id, replica), {})
            states[state.iteration] = state
            for old in [i for i in states if i < state.iteration - 1]:
                del states[old]

    def forget(self, fit_id: str) -> None:
        """Drop the per-replica state of a finished fit (models stay for the next one)."""
        with self._lock:
            for key in [k for k in self.replicas if k[0] == fit_id]:
                del self.replicas[key]


def limit_threads(threads: int) -> None:
    """Give the Keras backend (TensorFlow, PyTorch or JAX) ``threads`` CPU threads.

    Several worker processes share one machine: each must use its own share of the cores, not
    start thread pools the size of the machine.
    """
    threads = max(1, int(threads))
    # Dask's nanny starts workers with OMP_NUM_THREADS=1, which would leave TensorFlow's oneDNN
    # kernels one thread however many the worker has; give them the worker's threads instead.
    for variable in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(threads)
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend == "jax":  # read by XLA when JAX starts, so it must be set before
        flags = os.environ.get("XLA_FLAGS", "")
        if "intra_op_parallelism_threads" not in flags:
            threading_flags = f"--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads={threads}"
            os.environ["XLA_FLAGS"] = f"{flags} {threading_flags}".strip()
    elif backend == "torch":
        try:
            import torch

            torch.set_num_threads(threads)
            torch.set_num_interop_threads(threads)
        except (ImportError, RuntimeError):
            pass  # RuntimeError: PyTorch's inter-op pool already started in this process
    elif backend == "tensorflow":
        try:
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except (ImportError, RuntimeError):
            pass  # RuntimeError: TensorFlow already started in this process; its pools are fixed


def _plugin() -> TrainingWorker:
    worker = get_worker()
    plugin = worker.plugins.get(NAME)
    if plugin is None:
        raise RuntimeError(f"The {NAME!r} worker plugin is missing: call dasktrain.fit, which registers it.")
    return plugin


# -- data ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentStats:
    """What the client checks before training starts."""

    rows: int
    x_shape: tuple[int, ...]
    finite: bool
    label_kind: str  # "sparse" (integer labels) or "dense" (one value or array per row)
    label_shape: tuple[int, ...]
    classes: tuple
    labels_finite: bool = True


def segment_stats(data: SegmentData) -> SegmentStats:
    finite = segment_finite(data)
    if data.y.ndim == 1 and data.y.dtype.kind in "biu":
        return SegmentStats(data.rows, data.X.shape[1:], finite, "sparse", (), tuple(np.unique(data.y).tolist()))
    labels_finite = bool(np.isfinite(data.y).all())
    return SegmentStats(data.rows, data.X.shape[1:], finite, "dense", data.y.shape[1:], (), labels_finite)


# -- training ----------------------------------------------------------------------------------


def train_replica(
    start: list[np.ndarray] | None,
    job: Job,
    replica: int,
    iteration: int,
    strategy: Strategy,
    carried: ReplicaState | None,
    *segments: SegmentData,
) -> WeightedSum:
    """One round of local training of one replica on its segments, as one stream of rows; returns its
    weights, rows and metrics (row-weighted).

    ``start`` is the center of the previous round (for ensembles: the member's weights, or None
    when this worker holds them). A replica that keeps its own weights (EASGD, Ensemble) starts
    from them, pulled towards the center by the strategy; one whose state was lost with its
    worker starts from ``start`` with a fresh optimizer. ``carried`` is the state of a replica
    just moved here from another worker. Each epoch shuffles the rows of all ``segments`` together.
    """
    data = SegmentData.concat(segments)
    plugin = _plugin()
    slot = plugin.slot(job)
    previous = plugin.state(job.fit_id, replica, iteration - 1) or carried
    if previous is not None and previous.weights is not None:
        weights = strategy.local(previous.weights, start)
    elif start is not None:
        weights = start
    else:
        raise RuntimeError(f"Replica {replica} has neither its own weights nor a start for iteration {iteration}.")
    with slot.lock:
        model = slot.model
        set_weights(model, weights)
        if previous is None or previous is not slot.holds:  # else they are still there, on the device
            optimizer = previous.optimizer if previous is not None else slot.initial_optimizer_state
            for variable, value in zip(model.optimizer.variables, optimizer, strict=True):
                variable.assign(value)
        slot.holds = None  # until this round's training succeeds
        if slot.base_learning_rate is not None:
            model.optimizer.learning_rate = strategy.inner_learning_rate(
                slot.base_learning_rate, job.replicas, iteration
            )
        rows, cursor = _round_rows(data, job, previous.cursor if previous is not None else 0)
        rng = None if job.seed is None else np.random.default_rng([job.seed, replica, iteration])
        metrics = _train(model, rows, job, rng)
        if not np.isfinite(metrics.get("loss", 0.0)):
            raise TrainingDivergedError(
                f"Training diverged at iteration {iteration}: replica {replica}'s loss is {metrics['loss']}. "
                f"Lower the learning rate, or check the data for extreme values."
            )
        trained = model.get_weights()
        state = ReplicaState(
            iteration,
            [np.array(v.numpy()) for v in model.optimizer.variables],
            cursor,
            trained if strategy.keeps_local_weights else None,
        )
        plugin.keep(job.fit_id, replica, state)
        slot.holds = state
        return WeightedSum.of(trained, data.rows, metrics)


def _train(model, data: SegmentData, job: Job, rng) -> dict[str, float]:
    """Train on the round's rows, scaled to float32 a batch at a time; the last epoch's metrics (row-weighted).

    Batch by batch, with Keras's compiled train step (``train_on_batch``), never ``model.fit``:
    it costs no set-up per round (``fit`` spends about 40 ms on callbacks and its data adapter),
    and with TensorFlow ``fit`` reads a Python dataset through a tf.data generator thread that,
    on a Dask worker, made a round take up to twice as long (docs/benchmarks.md, issue 19). Each
    epoch's order comes from ``rng`` (seeded runs: a resumed fit replays it), else a fresh one.
    """
    rng = rng or np.random.default_rng()
    metrics: dict[str, float] = {}
    for _ in range(job.epochs):
        order = rng.permutation(data.rows) if job.shuffle else None
        totals: dict[str, float] = {}
        for start in range(0, data.rows, job.batch_size):
            batch = slice(start, start + job.batch_size) if order is None else order[start : start + job.batch_size]
            labels = data.y[batch]
            logs = model.train_on_batch(data.features(batch), labels, sample_weight=batch_weights(job.class_weights,
                                        labels), return_dict=True)  # fmt: skip
            size = min(job.batch_size, data.rows - start)
            for name, value in logs.items():
                totals[name] = totals.get(name, 0.0) + float(value) * size
        metrics = {name: total / data.rows for name, total in totals.items()}
    return metrics


def _round_rows(data: SegmentData, job: Job, start: int) -> tuple[SegmentData, int]:
    """All rows, or with ``sync_every=k`` the next k minibatches (wrapping around the replica's rows)."""
    if not job.sync_every:
        return data, 0
    count = min(data.rows, job.sync_every * job.batch_size)
    index = (start + np.arange(count)) % data.rows
    return data.take(index), int((start + count) % data.rows)


def export_state(fit_id: str, replica: int, iteration: int) -> ReplicaState | None:
    """The replica's state after ``iteration`` on this worker, to carry to the worker it moves to."""
    return _plugin().state(fit_id, replica, iteration)


def same(value):
    """``value`` itself: run on another worker, a copy of a result there."""
    return value


def merge(*parts: WeightedSum) -> WeightedSum:
    """Add row-weighted sums: one node of the reducer tree."""
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def new_center(total: WeightedSum, previous: list[np.ndarray], state, strategy: Strategy, iteration: int):
    """The strategy's next center (and its own state) from the previous ones and the replicas' weighted mean."""
    center, state = strategy.update(previous, total.mean(), state)
    if not all(np.isfinite(w).all() for w in center):
        raise TrainingDivergedError(f"Training diverged at iteration {iteration}: the merged model has NaN weights.")
    return center, state


def collect(*locals_: WeightedSum) -> list[list[np.ndarray]]:
    """The ensemble members' weights after a round, as one list (one task, on the cluster)."""
    return [local.mean() for local in locals_]


def round_summary(total: WeightedSum) -> dict:
    """The round's row-weighted metrics, and the rows the reducer counted (each row once)."""
    return {"metrics": total.mean_metrics(), "rows": total.rows}


def forget_fit(fit_id: str, release_models: bool = False, dask_worker=None) -> None:
    """Run on every worker at the end of a fit (``client.run``).

    ``release_models`` (GPU fits) also drops the built models and clears Keras's session, so their
    device memory is free for the next job; CPU workers keep them to save the next fit building them.
    """
    plugin = (dask_worker or get_worker()).plugins.get(NAME)
    if plugin is not None:
        plugin.forget(fit_id)
        if release_models:
            from ..runtime._gpu_memory import release_models as release

            with plugin._lock:
                plugin.slots.clear()
            release()


def has_plugin(dask_worker=None) -> bool:
    return NAME in dask_worker.plugins
