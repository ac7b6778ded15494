"""One model's visit to one *part* (model hopper parallelism), run on the worker holding the part.

A part is the segments that one training worker holds for a search (grouped once, rows evened
out, as :func:`dasktrain.fit` groups its replicas). In :func:`dasktrain.fit_multiple` parts stay
where they are and models move: a visit loads the model's weights *and its optimizer's state*
into this worker's built model, trains one pass over all the part's rows, shuffled across its
segments as one stream, and returns both. The next part continues exactly where this one stopped
(MADlib resets the optimizer at every hop). One visit per worker, not per segment, keeps the
fixed cost of a visit (loading a model, one ``model.fit``) to one per worker per iteration.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from dask.sizeof import sizeof

from ..errors import TrainingDivergedError
from ..models._fit_state import ModelState
from ..strategies import WeightedSum
from . import _evaluation, _worker
from ._segment_data import SegmentData


@dataclass(frozen=True)
class Visit:
    """Which model visits which part in which of its iterations (``fold``: the rows it leaves out).

    >>> Visit(3, 1, 2, segments=(0, 4)).label
    'configuration 3 on part 1 (segments 0, 4), iteration 2'
    """

    mst_key: int
    part: int
    iteration: int
    fold: int | None = None
    segments: tuple[int, ...] = ()  # the segment numbers of the part

    @property
    def label(self) -> str:
        fold = "" if self.fold is None else f" fold {self.fold}"
        segments = f" (segments {', '.join(map(str, self.segments))})" if self.segments else ""
        return f"configuration {self.mst_key}{fold} on part {self.part}{segments}, iteration {self.iteration}"


@dataclass(frozen=True)
class VisitResult:
    """The model after a visit, the visit's row-weighted metrics, and when and where it ran."""

    state: ModelState
    metrics: dict[str, float]
    rows: int
    started: float  # time.time() on the worker
    seconds: float
    worker: str


@sizeof.register(ModelState)
def _sizeof_state(state: ModelState) -> int:
    """A model's bytes (weights and optimizer state), so Dask's memory and transfer accounting sees them."""
    return sum(np.asarray(a).nbytes for a in (*state.weights, *(state.optimizer or ()))) + 1024


@sizeof.register(VisitResult)
def _sizeof_visit(result: VisitResult) -> int:
    return _sizeof_state(result.state)


def visit_part(state, job: _worker.Job, visit: Visit, *segments: SegmentData) -> VisitResult:
    """Train the model in ``state`` (a ModelState, or the previous visit's result) for one pass over the
    rows of ``segments`` (this worker's part), shuffled together; return it with its optimizer.

    ``job.seed`` seeds the pass's shuffle from (seed, mst_key, part, iteration): a search run
    twice visits the same batches in the same order.
    """
    from distributed import get_worker

    started, clock = time.time(), time.perf_counter()
    if isinstance(state, VisitResult):
        state = state.state
    rows = training_rows(SegmentData.concat(segments), visit.fold)
    slot = _worker._plugin().slot(job)
    with slot.lock:
        model = slot.model
        rows = as_input(rows, model)
        slot.start_from(state.weights, state.optimizer)
        rng = (
            None if job.seed is None else np.random.default_rng([job.seed, visit.mst_key, visit.part, visit.iteration])
        )
        metrics = _worker._train(model, rows, job, rng) if rows.rows else {}
        if not np.isfinite(metrics.get("loss", 0.0)):
            raise TrainingDivergedError(
                f"Training diverged: {visit.label} gave loss {metrics['loss']}. "
                f"Lower this configuration's learning rate."
            )
        trained = ModelState(
            [np.asarray(w) for w in model.get_weights()],
            [np.array(v.numpy()) for v in model.optimizer.variables],
            state.visits + 1,
        )
    return VisitResult(trained, metrics, rows.rows, started, time.perf_counter() - clock, get_worker().address)


def evaluate_model(weights, job: _worker.Job, fold: int | None, *segments: SegmentData) -> WeightedSum:
    """Loss and metrics of ``weights`` on the rows of ``segments`` (this worker's), as one stream (with
    ``fold``: on that fold's rows only)."""
    data = SegmentData.concat(segments)
    rows = data if fold is None else data.take(np.flatnonzero(data.fold == fold))
    if not rows.rows:
        return WeightedSum.of([], 0, {})
    return _evaluation.evaluate_segment(as_input(rows, _worker._plugin().slot(job).model), weights, job)


def as_input(data: SegmentData, model) -> SegmentData:
    """The rows' features viewed in the model's input shape (an MLP's (28, 28), a CNN's (28, 28, 1)):
    configurations of one search share the data, read once, and may differ in their input's axes."""
    shape = tuple(model.inputs[0].shape[1:])
    if tuple(data.X.shape[1:]) == shape:
        return data
    return SegmentData(data.X.reshape(data.rows, *shape), data.y, data.scale, data.fold)


def training_rows(data: SegmentData, fold: int | None) -> SegmentData:
    """All of the part's rows, or those outside ``fold`` (cross-validation).

    >>> data = SegmentData(np.arange(4).reshape(4, 1), np.arange(4), fold=np.array([0, 1, 0, 1], np.uint8))
    >>> training_rows(data, 1).y.tolist()
    [0, 2]
    """
    return data if fold is None else data.take(np.flatnonzero(data.fold != fold))


def metrics_of(total: WeightedSum) -> dict[str, float]:
    """Row-weighted metrics of a merged evaluation (empty when no rows were evaluated)."""
    return total.mean_metrics() if total.rows else {}
