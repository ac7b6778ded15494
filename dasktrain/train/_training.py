"""The rounds of :func:`dasktrain.fit` on a cluster, and what happens when workers are lost.

Each round, every segment trains on the worker holding its rows; a tree of merge tasks on the
cluster adds the segments' row-weighted weights; the strategy turns the sum into the next center.
The client keeps that center (for ensembles, the members) as the round's recovery point and sends
it out again at the start of the next round, so no round ever depends on an earlier round's tasks:
when a worker dies, Dask re-reads its segments from the database on a live worker, and the round
is run again from the kept center, each segment counted exactly once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import operator
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import dask.dataframe as dd

from ..errors import ClusterError, SegmentFailedError, TrainingDivergedError
from ..models._result import TrainingResult
from ..runtime._guard import WorkersLost, cluster_workers, gather, wait_for_workers
from ..runtime._placement import devices_used, gpu_workers, resolve_use_gpus, task_options
from . import _segment_data, _worker
from ._cache import choose_cache
from ._progress import FitProgress
from ._reducer import tree_reduce

logger = logging.getLogger("dasktrain")


@dataclass
class ClusterSegments:
    """Segments read into worker memory: their futures, where each lives, and what was checked."""

    futures: list
    ids: list[int]  # the segment numbers (empty segments are left out)
    stats: list  # every segment's SegmentStats, empty ones included
    rows: int
    holders: list[str] | None = None
    placed: dict = dataclasses.field(default_factory=dict)  # task options that put them on GPU workers

    on_disk: bool = False  # cache="disk": each future's features live in a file on its worker's host

    @classmethod
    def prepare(cls, client, source, plan, role: str, placed: dict, cache: str = "memory") -> ClusterSegments:
        """Read each segment once onto a worker (in memory, or streamed to its disk); check them; skip empty ones.

        ``source`` is a dask DataFrame, or the planned reads of a table (:class:`SegmentReads`).
        """
        shaping = (plan.x, plan.y, plan.input_shape, plan.normalizing_const, plan.output_shape)
        if cache == "disk":
            prepared = [
                client.submit(
                    _segment_data.cache_segment,
                    source.reader,
                    part,
                    *shaping,
                    pure=False,
                    **_near(source.workers(k)),
                    **placed,
                )  # fmt: skip
                for k, part in enumerate(source.parts)
            ]
            return cls._checked(client, prepared, plan, role, placed, on_disk=True)
        frame = source if isinstance(source, dd.DataFrame) else source.frame()
        if plan.strategy.centralized:
            frame = frame.repartition(npartitions=1)
        partitions = client.compute(frame.to_delayed(), **placed)
        prepared = [
            client.submit(_segment_data.prepare_segment, p, *shaping, plan.folds, pure=False, **placed)
            for p in partitions
        ]
        del partitions  # the prepared futures keep their lineage: a lost one is read again
        return cls._checked(client, prepared, plan, role, placed)

    @classmethod
    def _checked(cls, client, prepared: list, plan, role: str, placed: dict, on_disk: bool = False) -> ClusterSegments:
        labels = [f"{role} segment {k}" for k in range(len(prepared))]
        stats = gather(client, [client.submit(_worker.segment_stats, s, pure=False) for s in prepared], labels, "fit")
        plan.check(stats, role)
        keep = [k for k, s in enumerate(stats) if s.rows]
        if len(keep) < len(stats):
            empty = [k for k in range(len(stats)) if k not in keep]
            logger.info("fit: %s segments %s are empty and are skipped", role, empty)
        segments = cls([prepared[k] for k in keep], keep, stats, sum(s.rows for s in stats), placed=placed)
        segments.on_disk = on_disk
        segments.locate(client)
        return segments

    def balance(self, client, fit_id: str, iteration: int) -> dict:
        """Move segments from the busiest workers to idle ones until their counts differ by at most one.

        Dask may read most segments on one worker, and after a worker is lost its segments are read
        again wherever Dask chooses; a replacement worker would then sit idle. Each moved segment's
        state (optimizer, own weights) moves with it: returns ``{segment: future of its state}``.
        """
        workers = gpu_workers(client) if self.placed else list(cluster_workers(client))
        carried, moved = {}, []
        # A segment cached on disk can only move to a worker of the same host, where its file is.
        for group in _by_host(workers) if self.on_disk else [workers]:
            self._even_out(client, group, fit_id, iteration, carried, moved)
        if moved:
            logger.info("fit: iteration %d: segments %s moved to even out the workers", iteration, moved)
            gather(client, [*carried.values(), *self.futures], ["state"] * len(carried) + ["segment"] * len(self.ids),
                   "fit", fetch=False)  # fmt: skip
        return carried

    def _even_out(self, client, workers: list[str], fit_id: str, iteration: int, carried: dict, moved: list) -> None:
        counts = {w: 0 for w in workers}
        for holder in self.holders:
            if holder in counts:  # a holder that left is dealt with when the round runs
                counts[holder] += 1
        while counts:
            busiest, idlest = max(counts, key=counts.get), min(counts, key=counts.get)
            if counts[busiest] - counts[idlest] <= 1:
                break
            i = len(self.holders) - 1 - self.holders[::-1].index(busiest)
            segment = self.ids[i]
            # Loose placement: were either worker lost, Dask must be free to redo these elsewhere.
            carried[segment] = client.submit(
                _worker.export_state,
                fit_id,
                segment,
                iteration - 1,
                workers=[busiest],
                allow_other_workers=True,
                pure=False,
                **self.placed,
            )
            self.futures[i] = client.submit(
                _worker.same, self.futures[i], workers=[idlest], allow_other_workers=True, pure=False, **self.placed
            )
            self.holders[i] = idlest
            counts[busiest] -= 1
            counts[idlest] += 1
            moved.append(segment)

    def release(self) -> None:
        """Let the workers drop the segments now (and delete their files), not when Python collects this."""
        for future in self.futures:
            future.release()
        self.futures = []

    def locate(self, client) -> None:
        """Wait until every segment is in some worker's memory (re-read if lost) and note where."""
        gather(client, self.futures, [f"segment {k}" for k in self.ids], "fit", fetch=False)
        where = client.who_has(self.futures)
        before = dict(zip(self.ids, self.holders or [None] * len(self.ids), strict=True))
        self.holders = [
            before[k] if before[k] in where[f.key] else sorted(where[f.key])[0]
            for k, f in zip(self.ids, self.futures, strict=True)
        ]


def _reads(source):
    """The planned reads of a table (None for a dask DataFrame)."""
    return None if isinstance(source, dd.DataFrame) else source


def _near(workers: list[str] | None) -> dict:
    """Task options that read a segment on a worker of its host, where known."""
    return {"workers": workers, "allow_other_workers": True} if workers else {}


def _by_host(workers: list[str]) -> list[list[str]]:
    """Worker addresses grouped by host.

    >>> _by_host(["tcp://10.0.0.1:1", "tcp://10.0.0.2:1", "tcp://10.0.0.1:2"])
    [['tcp://10.0.0.1:1', 'tcp://10.0.0.1:2'], ['tcp://10.0.0.2:1']]
    """
    groups: dict[str, list[str]] = {}
    for address in workers:
        groups.setdefault(address.split("://", 1)[-1].rsplit(":", 1)[0], []).append(address)
    return list(groups.values())


class Training:
    """One :func:`fit` run on one cluster."""

    def __init__(self, plan, client):
        self.plan = plan
        self.client = client
        self.last_checkpoint: tuple[str, str, int] | None = None

    def run(self) -> TrainingResult:
        plan, client = self.plan, self.client
        wait_for_workers(client, "fit")
        self.gpu = resolve_use_gpus(client, plan.use_gpus, "fit")
        placed = task_options(self.gpu)
        if not all(client.run(_worker.has_plugin).values()):
            client.register_plugin(_worker.TrainingWorker())
        result = plan.start_result()
        done = len(result.history)
        elapsed_before = result.history[-1]["elapsed"] if result.history else 0.0
        self.job = plan.job(uuid.uuid4().hex, sync_every=plan.sync_every)
        self.first_iteration = done + 1  # later than 1 when resuming from a checkpoint
        from ._fit import class_values

        holders = cluster_workers(client)
        if self.gpu:
            holders = {w: info for w, info in holders.items() if info.get("resources", {}).get("GPU")}
        self.cache = choose_cache(plan.cache, _reads(plan.data), plan.features, holders)
        self.train = ClusterSegments.prepare(client, plan.data, plan, "data", placed, self.cache)
        self.job = dataclasses.replace(self.job, segments=len(self.train.ids))
        result.num_rows = self.train.rows
        result.num_segments = len(self.train.ids)
        result.class_values = class_values(self.train.stats, plan.output_shape)
        self.used: set[str] = set()  # every worker that trained a segment, for result.devices
        self.validation = None
        if plan.validation is not None:
            cache = choose_cache(plan.cache, _reads(plan.validation), plan.features, holders)
            self.validation = ClusterSegments.prepare(client, plan.validation, plan, "validation", placed, cache)
        self.resumed = self._resumed_states(result)

        members = result.members
        if plan.strategy.is_ensemble and len(members) != len(self.train.ids):
            members = [members[0]] * len(self.train.ids)
        per_round = [s.rows if not plan.sync_every else min(s.rows, plan.sync_every * plan.batch_size)
                     for s in self.train.stats]  # fmt: skip
        self.progress = bar = FitProgress(plan.iterations, done, len(self.train.ids), sum(per_round), plan.progress)
        clock = time.perf_counter()
        try:
            for iteration in range(done + 1, plan.iterations + 1):
                evaluate = self.validation is not None and (
                    iteration % plan.metrics_every == 0 or iteration == plan.iterations
                )
                members, round_ = self._round(iteration, members, result.outer_state, evaluate)
                entry = {
                    "iteration": iteration,
                    "elapsed": elapsed_before + time.perf_counter() - clock,
                    "training": round_["metrics"],
                    "validation": round_["validation"],
                    "rows": round_["rows"],
                    "retries": round_["retries"],
                    "moved": round_["moved"],
                }
                result.history.append(entry)
                result.members, result.outer_state = members, round_["outer_state"]
                bar.round_done(entry)
                stop = plan.early is not None and plan.early.update(plan.monitored(entry))
                if plan.checkpoint and (iteration % plan.checkpoint_every == 0 or stop):
                    result.devices = devices_used(client, sorted(self.used))
                    self._save_checkpoint(result, iteration)
                if stop:
                    result.stopped_early = True
                    break
        finally:
            bar.close()
            for segments in (self.train, self.validation):
                if segments is not None:
                    segments.release()
            with contextlib.suppress(Exception):  # workers may be gone; their state goes with them
                client.run(_worker.forget_fit, self.job.fit_id, self.gpu)
        result.devices = devices_used(client, sorted(self.used))
        result.end_time = datetime.now().astimezone()
        return result

    # -- one round ---------------------------------------------------------------------------------

    def _round(self, iteration: int, members: list, outer_state, evaluate: bool):
        """Run one round; errors that end the fit say where its last checkpoint is."""
        try:
            return self._retried_round(iteration, members, outer_state, evaluate)
        except (TrainingDivergedError, ClusterError) as exc:
            raise type(exc)(f"{exc} {self._checkpoint_note()}") from None

    def _retried_round(self, iteration: int, members: list, outer_state, evaluate: bool):
        """Run one round, running it again when workers holding its segments are lost.

        A retry trains again only the segments whose work was lost: segments already trained on
        workers that are still there keep their result (each segment is still merged once).
        """
        trained: dict[int, object] = {}
        moved_states = self.train.balance(self.client, self.job.fit_id, iteration)
        moved = sorted(moved_states)
        self.carried, self.resumed = {**moved_states, **self.resumed}, {}
        for attempt in itertools.count():
            try:
                members, summary = self._attempt(iteration, members, outer_state, evaluate, attempt, trained)
                return members, {**summary, "retries": attempt, "moved": moved}
            except WorkersLost as lost:
                trained = {
                    k: future
                    for k, future in trained.items()
                    if future.status == "finished" and self.train.holders[self.train.ids.index(k)] not in lost.workers
                }
                affected = [k for k, w in zip(self.train.ids, self.train.holders, strict=True) if w in lost.workers]
                segments = ", ".join(map(str, affected)) or "none"
                if attempt >= self.plan.retries:
                    raise SegmentFailedError(
                        f"fit: iteration {iteration} failed {attempt + 1} times: workers holding segment(s) "
                        f"{segments} left the cluster each time (retries={self.plan.retries})."
                    ) from None
                logger.warning(
                    "fit: iteration %d: lost %s (segments %s); reading them again and retrying the round "
                    "(retry %d of %d)",
                    iteration,
                    ", ".join(sorted(lost.workers)) or "data on a worker",
                    segments,
                    attempt + 1,
                    self.plan.retries,
                )
                self.train.locate(self.client)
                self.carried = {}  # moved segments restart like lost ones

    def _attempt(self, iteration: int, members: list, outer_state, evaluate: bool, attempt: int, trained: dict):
        """Submit the round (reusing ``trained``'s finished segments), wait, check the rows merged.

        ``trained`` is filled with this attempt's training futures by segment, for a retry to reuse.
        """
        client, train, strategy = self.client, self.train, self.plan.strategy
        tag = f"{iteration}-{attempt}-{uuid.uuid4().hex[:8]}"
        if strategy.is_ensemble:
            first = attempt > 0 or iteration == self.first_iteration
            starts = client.scatter(members, hash=False) if first else [None] * len(train.ids)
        else:
            center = client.scatter([members[0]], hash=False)[0]
            starts = [center] * len(train.ids)
            if outer_state is not None:  # the strategy's own state (momentum) goes to the merge only
                outer_state = client.scatter([outer_state], hash=False)[0]
        for data, start, segment, holder in zip(train.futures, starts, train.ids, train.holders, strict=True):
            if segment not in trained:
                trained[segment] = client.submit(
                    _worker.train_segment,
                    data,
                    start,
                    self.job,
                    segment,
                    iteration,
                    strategy,
                    self.carried.get(segment),
                    workers=[holder],
                    allow_other_workers=False,  # the segment's state is there; a lost worker is handled here
                    key=f"train-segment-{tag}-{segment}",
                    **train.placed,
                )
                trained[segment].add_done_callback(self.progress.segment_done)
        self.used.update(train.holders)
        locals_ = [trained[segment] for segment in train.ids]
        total = tree_reduce(client, locals_, _worker.merge)
        summary = client.submit(_worker.round_summary, total, key=f"round-summary-{tag}")
        if strategy.is_ensemble:
            state = model = client.submit(_worker.collect, *locals_, key=f"ensemble-members-{tag}")
        else:
            state = client.submit(
                _worker.new_center, total, center, outer_state, strategy, iteration, key=f"new-center-{tag}"
            )
        wanted = [state, summary]
        if evaluate:
            if not strategy.is_ensemble:
                model = client.submit(operator.itemgetter(0), state, key=f"center-weights-{tag}")
            wanted.append(self._evaluation(model, tag))
        # On failure the round's futures are simply dropped: Dask forgets what nobody wants.
        results = gather(
            client, wanted, ["the merged model", "the round", "validation"][: len(wanted)], "fit",
            watch=set(train.holders),
        )  # fmt: skip
        state, summary = results[0], results[1]
        if summary["rows"] != train.rows:
            raise ClusterError(
                f"fit: iteration {iteration} merged {summary['rows']} rows, but the segments hold {train.rows}; "
                f"this is a bug, please report it."
            )
        members, outer_state = (state, None) if strategy.is_ensemble else ([state[0]], state[1])
        return members, {**summary, "validation": results[2] if evaluate else None, "outer_state": outer_state}

    def _evaluation(self, state, tag: str):
        """The merged model's loss and metrics on every validation segment, reduced by rows."""
        client, members = self.client, self.plan.strategy.is_ensemble
        evals = [
            client.submit(_worker.evaluate_segment, v, state, self.job, members, pure=False, **self.validation.placed)
            for v in self.validation.futures
        ]
        return client.submit(_worker.round_metrics, tree_reduce(client, evals, _worker.merge), key=f"validation-{tag}")

    # -- checkpoints ---------------------------------------------------------------------------------

    def _save_checkpoint(self, result: TrainingResult, iteration: int) -> None:
        from ..models._model_store import CHECKPOINT, save_model

        db, table, name = self.plan.checkpoint
        result.end_time = datetime.now().astimezone()
        version = save_model(
            db, table, result, name=name, status=CHECKPOINT, keep=self.plan.checkpoint_keep,
            segment_states=self._segment_states(iteration),
        )  # fmt: skip
        self.last_checkpoint = (str(table), name, version)

    def _segment_states(self, iteration: int) -> dict | None:
        """Every segment's state after ``iteration``, fetched from the workers holding them.

        None when a worker was lost meanwhile: the checkpoint then keeps the model only, and a
        resume starts the segments' optimizers afresh.
        """
        train = self.train
        futures = [
            self.client.submit(_worker.export_state, self.job.fit_id, segment, iteration, workers=[holder], pure=False)
            for segment, holder in zip(train.ids, train.holders, strict=True)
        ]
        try:
            states = gather(self.client, futures, [f"segment {k}" for k in train.ids], "fit", watch=set(train.holders))
        except WorkersLost:
            logger.warning("fit: iteration %d: a worker left; this checkpoint keeps no optimizer state", iteration)
            return None
        return dict(zip(train.ids, states, strict=True)) if all(s is not None for s in states) else None

    def _resumed_states(self, result: TrainingResult) -> dict:
        """The checkpoint's segment states, sent to the cluster for the first round (when they still fit)."""
        saved = result.segment_states or {}
        result.segment_states = None
        if not saved:
            return {}
        if set(saved) != set(self.train.ids):
            logger.warning(
                "fit: the checkpoint holds the state of segments %s but the data has segments %s; "
                "the segments' optimizers start afresh",
                sorted(saved),
                self.train.ids,
            )
            return {}
        futures = self.client.scatter([saved[k] for k in self.train.ids], hash=False)
        return dict(zip(self.train.ids, futures, strict=True))

    def _checkpoint_note(self) -> str:
        if self.last_checkpoint is None:
            if self.plan.checkpoint is None:
                return "No checkpoint was kept: pass checkpoint=(db, table, name) to keep progress."
            return "No checkpoint was saved yet in this run."
        table, name, version = self.last_checkpoint
        return f"The last checkpoint is version {version} of {name!r} in {table!r}: continue with resume=True."
