"""The rounds of :func:`dasktrain.fit` on a cluster, and what happens when workers are lost.

Segments are read once onto the workers and grouped into *replicas* (:mod:`._replicas`): by
default one per training worker. Each round, every replica trains on its segments' rows, as one
stream, on the worker holding them; a tree of merge tasks on the cluster adds the replicas'
row-weighted weights; the strategy turns the sum into the next center. The client keeps that
center (for ensembles, the members) as the round's recovery point and sends it out again at the
start of the next round, so no round ever depends on an earlier round's tasks: when a worker
dies, Dask re-reads its segments from the database on a live worker, its replicas move to live
workers, and the round is run again from the kept center, each row counted exactly once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import operator
import time
import uuid
from datetime import datetime

import dask.dataframe as dd

from ..errors import ClusterError, SegmentFailedError, TrainingDivergedError
from ..models._result import TrainingResult
from ..runtime._guard import WorkersLost, cluster_workers, gather, wait_for_workers
from ..runtime._placement import devices_used, resolve_use_gpus, task_options
from . import _evaluation, _worker
from ._cache import choose_cache
from ._checkpoints import Checkpoints
from ._cluster_segments import ClusterSegments, planned_reads, release_pending
from ._labels import trained_classes
from ._progress import FitProgress
from ._reducer import tree_reduce
from ._replicas import SEGMENTS, Replica, group_segments, home, host_of, reads_wanted
from ._resume import resumed_states

logger = logging.getLogger("dasktrain")


class Training:
    """One :func:`fit` run on one cluster."""

    def __init__(self, plan, client):
        self.plan = plan
        self.client = client
        self.checkpoints = Checkpoints(plan, client)
        self.carried: dict = {}  # {replica: future of the state it brings to its new worker}

    def run(self) -> TrainingResult:
        with self.checkpoints.held():
            return self._run()

    def _run(self) -> TrainingResult:
        plan, client = self.plan, self.client
        wait_for_workers(client, "fit")
        self.gpu = resolve_use_gpus(client, plan.use_gpus, "fit")
        placed = task_options(self.gpu)
        if not all(client.run(_worker.has_plugin).values()):
            client.register_plugin(_worker.TrainingWorker())
        result = plan.start_result()
        done = len(result.history)
        elapsed_before = result.history[-1]["elapsed"] if result.history else 0.0
        self.first_iteration = done + 1  # later than 1 when resuming from a checkpoint
        holders = self._workers_info()
        data = self._enough_reads(plan.data, len(holders))
        self.cache = choose_cache(plan.cache, planned_reads(data), plan.features, holders)
        self.train = ClusterSegments.prepare(client, data, plan, "data", placed, self.cache)
        self.replica_ids = None  # "segments": replicas are numbered by their segment
        self.groups = self._group()
        self.replicas: list[Replica] = []
        self.job = plan.job(uuid.uuid4().hex, sync_every=plan.sync_every, replicas=len(self.groups))
        result.num_rows = self.train.rows
        result.num_segments = len(self.train.ids)
        result.num_replicas = len(self.groups)
        loss = str(plan.compile_params.get("loss", ""))
        result.class_values = plan.classes or trained_classes(self.train.stats, plan.output_shape, loss)
        self.used: set[str] = set()  # every worker that trained a replica, for result.devices
        self.validation = None
        if plan.validation is not None:
            cache = choose_cache(plan.cache, planned_reads(plan.validation), plan.features, holders)
            self.validation = ClusterSegments.prepare(client, plan.validation, plan, "validation", placed, cache)
        members = result.members
        self.resumed = resumed_states(client, result, self._ids(), plan.strategy)
        if plan.strategy.is_ensemble and len(members) != len(self.groups):
            members = [members[0]] * len(self.groups)
        per_round = [sum(self._round_rows(self.train.row_counts[i]) for i in group) for group in self.groups]
        self.progress = bar = FitProgress(plan.iterations, done, len(self.groups), sum(per_round), plan.progress)
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
                    "replicas": len(self.groups),
                    "retries": round_["retries"],
                    "moved": round_["moved"],
                }
                result.history.append(entry)
                result.members, result.outer_state = members, round_["outer_state"]
                bar.round_done(entry)
                stop = plan.early is not None and plan.early.update(plan.monitored(entry))
                if plan.checkpoint and (iteration % plan.checkpoint_every == 0 or stop):
                    result.devices = devices_used(client, sorted(self.used))
                    self.checkpoints.save(result, iteration, self.replicas, self.job.fit_id)
                if stop:
                    result.stopped_early = True
                    break
        finally:
            bar.close()
            for segments in (self.train, self.validation):
                if segments is not None:
                    segments.release()
            release_pending([*self.carried.values(), *self.resumed.values()])
            self.carried, self.resumed = {}, {}  # a traceback keeping this object keeps no state on the cluster
            with contextlib.suppress(Exception):  # workers may be gone; their state goes with them
                client.run(_worker.forget_fit, self.job.fit_id, self.gpu)
        result.devices = devices_used(client, sorted(self.used))
        result.num_replicas = len(self.groups)
        result.end_time = datetime.now().astimezone()
        return result

    # -- replicas ----------------------------------------------------------------------------------

    def _workers_info(self) -> dict[str, dict]:
        """The workers that train: ``{address: scheduler info}`` (GPU workers only, on GPUs)."""
        workers = cluster_workers(self.client)
        if self.gpu:
            workers = {w: info for w, info in workers.items() if info.get("resources", {}).get("GPU")}
        return workers

    def _enough_reads(self, data, workers: int):
        """The data, read in enough parts that every replica (and every worker) has rows of its own."""
        wanted = 1 if self.plan.strategy.centralized else reads_wanted(self.plan.replicas, workers)
        if isinstance(data, dd.DataFrame):
            if data.npartitions >= wanted:
                return data
            logger.info("fit: %d partitions for %d replicas: splitting them", data.npartitions, wanted)
            return data.repartition(npartitions=wanted)
        return data.at_least(wanted)

    def _group(self) -> list[tuple[int, ...]]:
        """Each replica's segments (positions in ``self.train``): made once, rows evened out."""
        replicas = 1 if self.plan.strategy.centralized else self.plan.replicas
        workers = self.train.training_workers(self.client)
        return group_segments(self.train.row_counts, replicas, workers, self.train.holders, self.train.on_disk)

    def _ids(self) -> list[int]:
        """Each replica's number: its segment's with replicas="segments" (seeds, states), else 0, 1, ..."""
        if self.plan.replicas == SEGMENTS and not self.plan.strategy.centralized:
            return [self.train.ids[group[0]] for group in self.groups]
        return list(range(len(self.groups)))

    def _round_rows(self, rows: int) -> int:
        return rows if not self.plan.sync_every else min(rows, self.plan.sync_every * self.plan.batch_size)

    def _follow_workers(self, iteration: int) -> None:
        """With ``replicas=None``, one replica per training worker: when workers join or leave between
        rounds, group the segments anew (an ensemble keeps its members, and its number of replicas)."""
        plan = self.plan
        if plan.replicas is not None or plan.strategy.is_ensemble or plan.strategy.centralized:
            return
        count = min(len(self.train.training_workers(self.client)), len(self.train.ids))
        if count in (0, len(self.groups)):
            return
        logger.info("fit: iteration %d: %d workers train now: %d replicas instead of %d",
                    iteration, count, count, len(self.groups))  # fmt: skip
        self._regroup()

    def _regroup(self) -> None:
        """Group the segments anew, and tell the job (learning-rate rules) and the progress bar."""
        self.groups = self._group()
        self.job = dataclasses.replace(self.job, replicas=len(self.groups))
        self.progress.set_replicas(len(self.groups))

    def _place(self, iteration: int) -> tuple[dict, list[int]]:
        """Home every replica on a live worker and bring its segments there, before a round.

        A replica that moves from a live worker brings its state (optimizer, own weights); one whose
        worker was lost starts from the center with a fresh optimizer. Returns
        ``({replica: future of its state}, the segments moved)``.
        """
        client, train = self.client, self.train
        workers = self.train.training_workers(self.client)
        if train.on_disk and any(len({host_of(train.holders[i]) for i in g}) > 1 for g in self.groups):
            self._regroup()  # segments re-read on another host after a loss: group them anew
        before = {r.id: r.worker for r in self.replicas}
        self.replicas = home(self.groups, train.row_counts, train.holders, workers, train.on_disk, self._ids())
        carried = {}
        for replica in self.replicas:
            was = before.get(replica.id)
            if was is not None and was != replica.worker and was in workers:
                # Loose placement: were either worker lost, Dask must be free to redo this elsewhere.
                carried[replica.id] = client.submit(
                    _worker.export_state, self.job.fit_id, replica.id, iteration - 1,
                    workers=[was], allow_other_workers=True, pure=False, **train.placed,
                )  # fmt: skip
        moved = train.bring(client, self.replicas)
        if moved:
            logger.info("fit: iteration %d: segments %s moved to the workers of their replicas", iteration, moved)
            gather(client, [*carried.values(), *train.futures], ["state"] * len(carried) + ["segment"] * len(train.ids),
                   "fit", fetch=False)  # fmt: skip
            train.locate(client)
        return carried, moved

    # -- one round ---------------------------------------------------------------------------------

    def _round(self, iteration: int, members: list, outer_state, evaluate: bool):
        """Run one round; errors that end the fit say where its last checkpoint is."""
        try:
            return self._retried_round(iteration, members, outer_state, evaluate)
        except WorkersLost as exc:  # lost again while its segments were being moved: its own type takes workers
            raise ClusterError(f"fit: iteration {iteration}: {exc} {self.checkpoints.note()}") from None
        except (TrainingDivergedError, ClusterError) as exc:
            raise type(exc)(f"{exc} {self.checkpoints.note()}") from None

    def _retried_round(self, iteration: int, members: list, outer_state, evaluate: bool):
        """Run one round, running it again when workers holding its segments are lost.

        A retry trains again only the replicas whose work was lost: replicas already trained on
        workers that are still there keep their result (each row is still merged once).
        """
        trained: dict[int, object] = {}
        self._follow_workers(iteration)
        carried, moved = self._place(iteration)
        self.carried, self.resumed = {**carried, **self.resumed}, {}
        try:
            return self._attempts(iteration, members, outer_state, evaluate, trained, moved)
        finally:
            # A replica pinned to a lost worker waits there ('no-worker') for good, keeping its
            # re-read segments and the scattered model on the cluster after fit returns (issue 22):
            # its progress callback holds the future, so dropping it is not enough.
            release_pending(trained.values())

    def _attempts(self, iteration: int, members: list, outer_state, evaluate: bool, trained: dict, moved: list):
        for attempt in itertools.count():
            try:
                members, summary = self._attempt(iteration, members, outer_state, evaluate, attempt, trained)
                return members, {**summary, "retries": attempt, "moved": moved}
            except WorkersLost as lost:
                kept = {
                    r.id: trained[r.id]
                    for r in self.replicas
                    if r.id in trained and trained[r.id].status == "finished" and r.worker not in lost.workers
                }
                release_pending(f for k, f in trained.items() if k not in kept)
                trained.clear()
                trained.update(kept)
                affected = [self.train.ids[i] for i, w in enumerate(self.train.holders) if w in lost.workers]
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
                homes = {r.id: r.worker for r in self.replicas}
                self.carried, again = self._place(iteration)
                moved = sorted({*moved, *again})
                # A finished replica that had to move trains again where its state now goes.
                kept = {r.id: trained[r.id] for r in self.replicas if r.id in trained and r.worker == homes[r.id]}
                release_pending(f for k, f in trained.items() if k not in kept)
                trained.clear()
                trained.update(kept)

    def _attempt(self, iteration: int, members: list, outer_state, evaluate: bool, attempt: int, trained: dict):
        """Submit the round (reusing ``trained``'s finished replicas), wait, check the rows merged.

        ``trained`` is filled with this attempt's training futures by replica, for a retry to reuse.
        """
        client, train, strategy = self.client, self.train, self.plan.strategy
        tag = f"{iteration}-{attempt}-{uuid.uuid4().hex[:8]}"
        if strategy.is_ensemble:
            first = attempt > 0 or iteration == self.first_iteration
            starts = client.scatter(members, hash=False) if first else [None] * len(self.replicas)
        else:
            center = client.scatter([members[0]], hash=False)[0]
            starts = [center] * len(self.replicas)
            if outer_state is not None:  # the strategy's own state (momentum) goes to the merge only
                outer_state = client.scatter([outer_state], hash=False)[0]
        for replica, start in zip(self.replicas, starts, strict=True):
            if replica.id not in trained:
                trained[replica.id] = client.submit(
                    _worker.train_replica,
                    start,
                    self.job,
                    replica.id,
                    iteration,
                    strategy,
                    self.carried.get(replica.id),
                    *[train.futures[i] for i in replica.segments],
                    workers=[replica.worker],
                    allow_other_workers=False,  # the replica's state is there; a lost worker is handled here
                    key=f"train-replica-{tag}-{replica.id}",
                    **train.placed,
                )
                trained[replica.id].add_done_callback(self.progress.replica_done)
        self.used.update(r.worker for r in self.replicas)
        locals_ = [trained[r.id] for r in self.replicas]
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
            watch={r.worker for r in self.replicas},
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
        """The merged model's loss and metrics on the validation segments, one task per worker holding
        them, reduced by rows."""
        client, validation, members = self.client, self.validation, self.plan.strategy.is_ensemble
        validation.locate(client)
        by_worker: dict[str, list] = {}
        for future, holder in zip(validation.futures, validation.holders, strict=True):
            by_worker.setdefault(holder, []).append(future)
        evals = [
            client.submit(
                _evaluation.evaluate_segments,
                state,
                self.job,
                members,
                *futures,
                workers=[worker],
                allow_other_workers=True,
                pure=False,
                **validation.placed,
            )  # fmt: skip
            for worker, futures in by_worker.items()
        ]
        total = tree_reduce(client, evals, _worker.merge)
        return client.submit(_evaluation.round_metrics, total, key=f"validation-{tag}")
