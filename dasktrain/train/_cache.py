"""Where a worker keeps its segments between rounds: in memory, or in a file on its disk.

In memory (the stored dtype, scaled a batch at a time) a fit adds about 1.5× the raw size of a
worker's segments (``benchmarks/memory.py``). ``cache="auto"`` keeps them there when that fits
below Dask's spill threshold (60 % of the worker's memory limit) next to what the worker already
uses, and otherwise streams each segment to the worker's disk and reads it a batch at a time.
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import DataError

logger = logging.getLogger("dasktrain")

CACHES = ("auto", "memory", "disk")
GROWTH = 1.5  # what a fit adds per byte of a worker's segments, measured by benchmarks/memory.py
SPILL_FRACTION = 0.6  # Dask's distributed.worker.memory.target


def check_cache(cache, data, centralized: bool) -> str:
    """Check ``cache=`` against the data and strategy, before any work.

    >>> check_cache("disk", "images", centralized=False)
    'disk'
    """
    if cache not in CACHES:
        raise DataError(f"Expected cache='auto', 'memory' or 'disk'. Received: cache={cache!r}")
    if cache == "disk" and not isinstance(data, str):
        raise DataError(
            "cache='disk' streams segments from the database to the workers' disks, so it needs a table "
            "name: the partitions of a dask DataFrame are already in memory."
        )
    if cache == "disk" and centralized:
        raise DataError("cache='disk' does not combine with Centralized(), which gathers every row in one worker.")
    return cache


def choose_cache(cache: str, reads, features: list[str], workers: dict[str, dict]) -> str:
    """``"memory"`` or ``"disk"`` for this fit; ``"auto"`` compares the segments with the workers' memory.

    ``reads`` is a :class:`~dasktrain.io._read.SegmentReads` (None for a DataFrame: memory), and
    ``workers`` the scheduler's ``{address: info}`` of the workers that will hold segments.
    """
    if reads is None:
        return "memory"  # a dask DataFrame (validation data may be one) is in memory already
    if cache != "auto" or not workers:
        return "memory" if cache == "auto" else cache
    row_bytes = sum(_row_bytes(spec) for spec in reads.specs if spec.name in features)
    rows = [max(0, segment.rows) for segment in reads.segments]
    total, largest = row_bytes * sum(rows), row_bytes * max(rows, default=0)
    # A table never ANALYZEd has no row estimate (0): judged by it alone, it always fit in memory, and a
    # table larger than the workers' memory killed them (issue 22). Its size on disk stands in for it.
    stored = stored_bytes(reads) if not all(rows) else None
    if stored:
        total, largest = max(total, stored), max(largest, stored / len(rows))
    per_worker = max(largest, total / len(workers))
    rooms = [room for room in map(_room, workers.values()) if room is not None]
    room = min(rooms, default=None)
    unknown = not any(rows) and bool(stored)
    if room is None or GROWTH * per_worker <= room:
        if unknown:
            logger.info("fit: %s has no row estimate (never ANALYZEd): judged by its %s on disk, its segments "
                        "fit in the workers' memory (cache='memory')", _tables(reads), _size(stored))  # fmt: skip
        return "memory"
    logger.info(
        "fit: about %s of features per worker, more than its memory has room for (%s below Dask's spill "
        "threshold): each worker streams its segments to its local disk and reads them a batch at a time "
        "(cache='disk'). Pass cache='memory' to keep them in memory anyway.%s",
        _size(per_worker),
        _size(room),
        f" ({_tables(reads)} has no row estimate: judged by its size on disk; run ANALYZE on it)" if unknown else "",
    )
    return "disk"


def stored_bytes(reads) -> int | None:
    """What the relations of ``reads`` take on disk, TOAST and indexes included (None when it cannot be read).

    Stands in for the rows' size when the catalog has no row estimate: a table never ANALYZEd.
    """
    import psycopg2

    from ..io._catalog import regclass_text

    if reads.db is None:
        return None
    relations = sorted({segment.relation for segment in reads.segments}, key=str)
    try:
        with reads.db.cursor() as cur:
            total = 0
            for relation in relations:
                cur.execute("SELECT coalesce(pg_total_relation_size(to_regclass(%s)), 0)",
                            (regclass_text(cur, relation),))  # fmt: skip
                total += int(cur.fetchone()[0])
            return total
    except psycopg2.Error:
        return None


def unknown_size_hint(cache: str, reads) -> str:
    """A sentence for the error of a fit whose workers died: when ``cache="auto"`` kept in memory the segments
    of a table with no row estimate, that they may not have fit, and what to do ("" otherwise).

    >>> unknown_size_hint("disk", None)
    ''
    """
    if cache != "memory" or reads is None or any(max(0, segment.rows) for segment in reads.segments):
        return ""
    tables = _tables(reads)
    return (
        f" {tables} has no row estimate (it was never ANALYZEd), so cache='auto' could not judge its size and kept "
        f"its segments in the workers' memory: if they ran out of memory, run ANALYZE {tables} or pass "
        f"cache='disk'."
    )


def _tables(reads) -> str:
    return ", ".join(sorted({str(segment.relation) for segment in reads.segments}))


def rows_one_worker_holds(reads, features: list[str], workers: dict[str, dict]) -> int | None:
    """How many rows of the planned reads fit in the smallest worker below its spill threshold
    (None when the workers have no memory limit, or for a DataFrame).

    >>> rows_one_worker_holds(None, ["x"], {})
    """
    if reads is None:
        return None
    row_bytes = sum(_row_bytes(spec) for spec in reads.specs if spec.name in features)
    rooms = [room for room in map(_room, workers.values()) if room is not None]
    if not rooms or not row_bytes:
        return None
    return int(min(rooms) / (GROWTH * row_bytes))


def _row_bytes(spec) -> int:
    return np.dtype(spec.dtype).itemsize * int(np.prod(spec.shape or (1,), dtype=np.int64))


def _room(info: dict) -> float | None:
    """Bytes a worker can still take below its spill threshold; None without a memory limit."""
    limit = info.get("memory_limit") or 0
    if not limit:
        return None
    used = (info.get("metrics") or {}).get("memory") or 0
    return max(0.0, SPILL_FRACTION * limit - used)


def _size(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"
