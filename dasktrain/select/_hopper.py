"""Model hopper parallelism: the data stays on the workers; models hop between workers.

The segments are grouped once per search into *parts*, one per training worker (rows evened
out, as :func:`dasktrain.fit` groups its replicas: :mod:`dasktrain.train._replicas`), and each
part is brought to its worker. Every model visits every part once per iteration, one pass over
all the part's rows (its segments shuffled together) each time, and carries its optimizer's state
from visit to visit: with 64 segments on 2 workers, 2 visits per model per iteration, not 64,
each with its fixed cost (as Cerebro does). A worker trains one model at a time, with the next
visit already waiting in its queue: a model that has not yet visited one of its parts in that
model's current iteration (there is no barrier between hops, nor between iterations: a model
that has finished an iteration starts the next one while others are still in theirs).

The client keeps each model's state after its last finished visit, and a visit counts only when
its result has come back. A worker lost mid-visit therefore costs only that visit: its segments
are read again on a live worker, the parts (their grouping fixed) are homed again on the live
workers, and the visit is run again from the kept state, once. Each row counts once per iteration.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from ..errors import SegmentFailedError, TrainingDivergedError
from ..models._fit_state import ModelState
from ..runtime._guard import POLL, cluster_workers
from ..train import _worker
from ..train._reducer import tree_reduce
from ..train._replicas import Replica, group_segments, home
from ..train._visit import Visit, evaluate_model, metrics_of, visit_part

logger = logging.getLogger("dasktrain")

QUEUED = 2  # visits given to a worker at once: one running, one waiting in its queue


@dataclass(eq=False)
class HoppingModel:
    """One model of the search (a configuration, or one fold of it) and where it stands."""

    mst_key: int
    job: _worker.Job
    state: ModelState
    last: int  # the iteration it trains up to
    fold: int | None = None
    iteration: int = 1  # the iteration it is in
    history: list[dict] = field(default_factory=list)
    failed: str | None = None  # why it diverged
    remaining: set = field(default_factory=set)  # parts it has yet to visit this iteration
    running: object = None  # the future of its visit in progress
    last_visit: object = None  # the future of its last finished visit, which the next one starts from
    visit: Visit | None = None
    worker: str | None = None
    totals: dict = field(default_factory=dict)  # Σ rows·metric over this iteration's visits
    rows: int = 0

    @property
    def done(self) -> bool:
        return self.failed is not None or self.iteration > self.last


def part_groups(client, train) -> list[tuple[int, ...]]:
    """The segments (positions in ``train``) of each part: one part per training worker, rows evened out.

    Made once per search: a part keeps its segments when workers come and go.
    """
    return group_segments(train.row_counts, None, train.training_workers(client), train.holders, train.on_disk)


class ModelHopper:
    """Run every model's iterations over the parts of ``train`` (a ``ClusterSegments``).

    ``groups`` are the parts' segments (positions in ``train``; default: :func:`part_groups`).
    ``validation`` (a ``ClusterSegments`` or None) is evaluated by each model after each
    ``metrics_every``-th iteration and its last; models with a ``fold`` are evaluated on that
    fold's rows of ``train`` instead.
    """

    def __init__(self, client, train, validation, models, *, groups=None, metrics_every=1, retries=2, progress=True,
                 started=None):  # fmt: skip
        self.client, self.train, self.validation = client, train, validation
        self.groups = part_groups(client, train) if groups is None else list(groups)
        self.parts: list[Replica] = []  # each part's segments and the worker it is homed on
        self.models = list(models)
        self.metrics_every, self.retries, self.progress = metrics_every, retries, progress
        self.started = time.perf_counter() if started is None else started
        self.visits: list[dict] = []
        self.evaluations: dict = {}  # future -> (model, history entry, weights)
        self.lost: dict = {}  # Visit -> how many times it was lost with its worker

    def run(self) -> list[dict]:
        """Train until every model has done its iterations (or diverged); returns every visit made."""
        from concurrent.futures import CancelledError

        from distributed import wait
        from tqdm.auto import tqdm

        self._home()
        for model in self.models:
            if not model.done:
                model.remaining = set(range(len(self.parts)))
        self.watched = time.monotonic()
        total = sum(max(0, m.last - m.iteration + 1) for m in self.models) * len(self.parts)
        self.bar = tqdm(total=total, desc="fit_multiple", unit="visit", disable=not self.progress, leave=True)
        try:
            while True:
                self._assign()
                pending = [m.running for m in self.models if m.running is not None] + list(self.evaluations)
                if not pending:
                    if all(m.done for m in self.models):
                        break
                    self._watch_workers()  # nothing could be given out: a worker left as we gave it a visit
                    time.sleep(POLL)
                    continue
                try:
                    wait(pending, timeout=POLL, return_when="FIRST_COMPLETED")
                except (TimeoutError, CancelledError):
                    pass  # the statuses below say what happened
                ended = [m for m in self.models if m.running is not None and m.running.status != "pending"]
                finished = [m for m in ended if m.running.status == "finished"]
                results = dict(zip(finished, self.client.gather([m.running for m in finished]), strict=True))
                for model in ended:
                    self._visited(model, results.get(model))
                for future in [f for f in self.evaluations if f.status != "pending"]:
                    self._evaluated(future)
                if len(finished) < len(ended) or time.monotonic() - self.watched > POLL:
                    self._watch_workers()
        finally:
            self.bar.close()
            for model in self.models:
                if model.running is not None:
                    model.running.cancel()
                    model.running = None
        return self.visits

    # -- parts -------------------------------------------------------------------------------------

    def _home(self) -> None:
        """Home every part on a live training worker (the one holding most of its rows, parts spread
        evenly) and bring its segments there; wait until they are."""
        client, train = self.client, self.train
        self.parts = home(self.groups, train.row_counts, train.holders, train.training_workers(client),
                          train.on_disk)  # fmt: skip
        moved = train.bring(client, self.parts)
        if moved:
            logger.info("fit_multiple: segments %s moved to the workers of their parts", moved)
            train.locate(client)

    def _segments(self, part: Replica) -> tuple[int, ...]:
        """The segment numbers of a part."""
        return tuple(self.train.ids[i] for i in part.segments)

    # -- scheduling --------------------------------------------------------------------------------

    def _assign(self) -> None:
        """Keep every worker at ``QUEUED`` visits: to its parts, by the models that still need them.

        The second visit waits in the worker's own queue and starts the moment the first ends,
        without waiting for the client to hear of it and send the next.
        """
        load = Counter(m.worker for m in self.models if m.running is not None)
        for worker in dict.fromkeys(p.worker for p in self.parts):
            while load[worker] < QUEUED:
                choice = self._choose(worker)
                if choice is None or not self._submit(*choice, worker):
                    break
                load[worker] += 1

    def _choose(self, worker: str) -> tuple[HoppingModel, Replica] | None:
        """The model furthest behind (so none lags at the end) that still has to visit one of ``worker``'s parts."""
        choice = None
        for part in self.parts:
            if part.worker != worker:
                continue
            for model in self.models:
                if model.running is None and not model.done and part.id in model.remaining:
                    rank = (model.iteration, -len(model.remaining), model.mst_key, model.fold or 0)
                    if choice is None or rank < choice[0]:
                        choice = (rank, model, part)
        return None if choice is None else choice[1:]

    def _submit(self, model: HoppingModel, part: Replica, worker: str) -> bool:
        client, train = self.client, self.train
        visit = Visit(model.mst_key, part.id, model.iteration, model.fold, self._segments(part))
        # From the last visit's result where it is still on the cluster (worker to worker); else from
        # the copy the client keeps (the first visit, or after a worker was lost).
        try:
            state = model.last_visit or client.scatter(model.state, workers=[worker], hash=False, timeout=POLL * 20)
        except (TimeoutError, OSError):  # the worker left meanwhile: the next look at the cluster sees it
            self.watched = 0.0
            return False
        model.running = client.submit(
            visit_part,
            state,
            model.job,
            visit,
            *[train.futures[i] for i in part.segments],
            workers=[worker],
            allow_other_workers=False,  # the part is there; a lost worker is handled by _watch_workers
            pure=False,
            key=f"visit-{model.mst_key}-{model.fold}-{part.id}-{model.iteration}-{uuid.uuid4().hex[:8]}",
            **train.placed,
        )
        model.visit, model.worker = visit, worker
        return True

    def _visited(self, model: HoppingModel, result) -> None:
        from distributed.scheduler import KilledWorker

        future, visit = model.running, model.visit
        model.running = None
        model.last_visit = None
        if future.status == "finished":
            model.state, model.last_visit = result.state, future
            model.remaining.discard(visit.part)
            model.rows += result.rows
            for name, value in result.metrics.items():
                model.totals[name] = model.totals.get(name, 0.0) + value * result.rows
            self.visits.append({
                "mst_key": visit.mst_key, "fold": visit.fold, "iteration": visit.iteration, "part": visit.part,
                "segments": list(visit.segments), "worker": result.worker, "rows": result.rows,
                "started": result.started, "seconds": result.seconds,
            })  # fmt: skip
            self.bar.update(1)
            if not model.remaining:
                self._iteration_done(model)
            return
        if future.status == "cancelled":  # data it needed was lost with a worker
            self._lost(model, visit)
            return
        error = future.exception()
        if isinstance(error, TrainingDivergedError):
            model.failed = str(error)
            self.bar.update((model.last - model.iteration) * len(self.parts) + len(model.remaining))
            logger.warning("fit_multiple: %s; the other configurations go on", error)
            return
        if isinstance(error, KilledWorker):
            raise SegmentFailedError(
                f"fit_multiple: {visit.label} failed: each worker that ran it died (out of memory, or killed) "
                f"as many times as Dask allows (distributed.scheduler.allowed-failures)."
            ) from None
        raise error.with_traceback(future.traceback())

    def _iteration_done(self, model: HoppingModel) -> None:
        entry = {
            "iteration": model.iteration,
            "elapsed": time.perf_counter() - self.started,
            "training": {k: v / model.rows for k, v in model.totals.items()} if model.rows else {},
            "validation": None,
            "rows": model.rows,
        }
        model.history.append(entry)
        if (self.validation is not None or model.fold is not None) and (
            model.iteration % self.metrics_every == 0 or model.iteration == model.last
        ):
            self._evaluate(model, entry, model.state.weights)
        model.iteration += 1
        model.totals, model.rows = {}, 0
        model.remaining = set(range(len(self.parts))) if not model.done else set()

    def _evaluate(self, model: HoppingModel, entry: dict, weights) -> None:
        """Evaluate ``weights``: one task per worker holding validation segments (with a fold: the
        training segments, on that fold's rows), reduced by rows on the cluster."""
        client = self.client
        sources = self.train if model.fold is not None else self.validation
        shared = client.scatter([weights], hash=False)[0]
        by_worker: dict[str, list] = {}
        for future, holder in zip(sources.futures, sources.holders, strict=True):
            by_worker.setdefault(holder, []).append(future)
        parts = [
            client.submit(
                evaluate_model,
                shared,
                model.job,
                model.fold,
                *futures,
                workers=[worker],
                allow_other_workers=True,
                pure=False,
                **sources.placed,
            )  # fmt: skip
            for worker, futures in by_worker.items()
        ]
        total = client.submit(metrics_of, tree_reduce(client, parts, _worker.merge), pure=False)
        self.evaluations[total] = (model, entry, weights)

    def _evaluated(self, future) -> None:
        model, entry, weights = self.evaluations.pop(future)
        if future.status == "finished":
            entry["validation"] = future.result()
        elif future.status == "cancelled":  # lost with a worker: evaluate again
            self._evaluate(model, entry, weights)
        else:
            raise future.exception().with_traceback(future.traceback())

    # -- lost workers ------------------------------------------------------------------------------

    def _watch_workers(self) -> None:
        self.watched = time.monotonic()
        workers = cluster_workers(self.client)
        gone = {w for w in [*self.train.holders, *(p.worker for p in self.parts),
                            *(m.worker for m in self.models if m.running)] if w not in workers}  # fmt: skip
        if not gone:
            self._spread(workers)
            return
        for model in self.models:
            model.last_visit = None  # it may have been on a lost worker: start from the client's copy
            if model.running is not None and model.worker in gone:
                model.running.cancel()
                model.running = None
                self._lost(model, model.visit)
        logger.warning("fit_multiple: lost %s; reading its segments again, homing its parts on the live workers "
                       "and re-running its visits", ", ".join(sorted(gone)))  # fmt: skip
        self.train.locate(self.client)
        if self.validation is not None:
            self.validation.locate(self.client)
        self._home()

    def _spread(self, workers: dict) -> None:
        """When a worker has joined (a lost one restarted) while another holds several parts, home them again."""
        homes = Counter(p.worker for p in self.parts)
        idle = [w for w, info in workers.items()
                if w not in homes and (not self.train.placed or info.get("resources", {}).get("GPU"))]  # fmt: skip
        if idle and max(homes.values(), default=0) > 1:
            logger.info("fit_multiple: %s joined; homing the parts again", ", ".join(sorted(idle)))
            self._home()

    def _lost(self, model: HoppingModel, visit: Visit) -> None:
        """A visit whose worker (or data) was lost: it is run again from the model's kept state."""
        self.lost[visit] = self.lost.get(visit, 0) + 1
        if self.lost[visit] > self.retries:
            raise SegmentFailedError(
                f"fit_multiple: {visit.label} was lost with its worker {self.lost[visit]} times "
                f"(retries={self.retries})."
            )
