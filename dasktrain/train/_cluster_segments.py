"""Segments read onto the workers of a cluster: the unit of I/O, kept in worker memory (or on disk) for a fit.

Each segment is read once, on a worker of its host where known, checked, and kept where it was
read; training (:mod:`._training`) groups them into replicas, and model selection visits them.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import dask.dataframe as dd

from ..runtime._guard import cluster_workers, gather
from ..runtime._placement import gpu_workers
from . import _segment_data, _worker

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
        shaping = plan.shaping
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
            return _released(source, cls._checked(client, prepared, plan, role, placed, on_disk=True))
        frame = source if isinstance(source, dd.DataFrame) else source.frame()
        if plan.strategy.centralized:
            frame = frame.repartition(npartitions=1)
        partitions = client.compute(frame.to_delayed(), **placed)
        prepared = [
            client.submit(_segment_data.prepare_segment, p, *shaping, plan.folds, pure=False, **placed)
            for p in partitions
        ]
        del partitions  # the prepared futures keep their lineage: a lost one is read again
        return _released(source, cls._checked(client, prepared, plan, role, placed))

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

    def training_workers(self, client) -> list[str]:
        """The workers that train on these segments: GPU workers when they were placed on GPUs, else all."""
        return sorted(gpu_workers(client) if self.placed else cluster_workers(client))

    @property
    def row_counts(self) -> list[int]:
        """The rows of each segment kept (in the order of :attr:`ids`)."""
        return [self.stats[k].rows for k in self.ids]

    def move(self, client, position: int, worker: str) -> None:
        """Copy segment ``position`` to ``worker`` and let go of it where it was.

        The copy keeps the read's lineage: were ``worker`` lost, Dask reads the segment again.
        """
        self.futures[position] = client.submit(
            _worker.same, self.futures[position], workers=[worker], allow_other_workers=True, pure=False, **self.placed
        )
        self.holders[position] = worker

    def bring(self, client, replicas) -> list[int]:
        """Move each replica's segments to its worker (without waiting); the segment numbers moved, sorted."""
        moved = []
        for replica in replicas:
            for i in replica.segments:
                if self.holders[i] != replica.worker:
                    self.move(client, i, replica.worker)
                    moved.append(self.ids[i])
        return sorted(moved)

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


def release_pending(futures) -> None:
    """Let the scheduler forget the futures not finished (and what they alone kept: segments read
    again, a scattered model), whoever else still holds them.

    A task pinned to a worker that was lost waits there ('no-worker') for as long as its future
    lives, and a progress callback keeps it alive until it ends, which it never does (issue 22).
    Releasing marks the future cancelled, which also ends the callback's wait. Not
    ``client.cancel``: it fails inside the scheduler on a dependent no client wants any more.
    """
    for future in futures:
        if future.status != "finished":
            future.release()


def planned_reads(source):
    """The planned reads of a table (None for a dask DataFrame)."""
    return None if isinstance(source, dd.DataFrame) else source


def _near(workers: list[str] | None) -> dict:
    """Task options that read a segment on a worker of its host, where known."""
    return {"workers": workers, "allow_other_workers": True} if workers else {}


def _released(source, segments: ClusterSegments) -> ClusterSegments:
    """``segments``, once the read's lock or cursor (Greenplum's utility mode, a retrieve cursor) is let go.

    A read needs one state of the table while its segments are read, not after: once every
    segment is on a worker, writers need not wait for the rest of the fit. A segment read again
    after a worker is lost then sees the table as it is at that moment.
    """
    held = getattr(source, "held", None)
    if held is not None:
        held.close()
    return segments

