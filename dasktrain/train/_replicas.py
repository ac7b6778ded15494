"""Replicas: the unit of training, planned over the segments (the unit of I/O) that the workers hold.

A *replica* is one model that trains each round on a group of segments, as one stream of rows,
on one worker. Its optimizer state (and for EASGD and ensembles its own weights) lives on that
worker across rounds. ``fit(replicas=)`` chooses how many:

- ``None`` (default): one per training worker;
- an int: that many;
- ``"segments"``: one per segment, MADlib's way (kept for comparison).

The groups are made once per fit from the segments' row counts alone (largest first, each to the
group with the fewest rows), so that a seeded fit groups its rows the same way whichever worker
happened to read which segment. Segments cached on disk stay on their host: they are grouped
host by host. Each round, each group is *homed* on a live worker: the one that already holds most
of its rows, with the groups spread evenly over the workers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import DataError

SEGMENTS = "segments"


@dataclass(frozen=True)
class Replica:
    """One replica: its number, the segments it trains on (their positions), and the worker it trains on.

    >>> Replica(0, (2, 5), "tcp://10.0.0.1:4000").segments
    (2, 5)
    """

    id: int
    segments: tuple[int, ...]
    worker: str


def check_replicas(replicas) -> int | str | None:
    """Check ``fit(replicas=)`` before any work.

    >>> check_replicas(4), check_replicas(None), check_replicas("segments")
    (4, None, 'segments')
    >>> check_replicas(0)
    Traceback (most recent call last):
    ...
    dasktrain.errors.DataError: Expected replicas=None, a positive whole number or 'segments'. Received: replicas=0
    """
    if replicas is None or replicas == SEGMENTS:
        return replicas
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise DataError(
            f"Expected replicas=None, a positive whole number or 'segments'. Received: replicas={replicas!r}"
        )
    return int(replicas)


def parse_replicas(value) -> int | str | None:
    """``replicas`` from the command line or a job file: a whole number, ``"segments"``, or None.

    >>> parse_replicas("4"), parse_replicas("segments"), parse_replicas(None)
    (4, 'segments', None)
    """
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return check_replicas(value.strip().lower() if isinstance(value, str) else value)


def reads_wanted(replicas, workers: int) -> int:
    """How many segment reads a fit needs so that every replica (and every worker) has rows to train on.

    >>> reads_wanted(None, 4), reads_wanted(8, 2), reads_wanted("segments", 4)
    (4, 8, 1)
    """
    if replicas == SEGMENTS:
        return 1
    return max(workers, replicas or 0)


def host_of(address: str) -> str:
    """The host part of a worker address.

    >>> host_of("tcp://10.0.0.1:4000"), host_of("tcp://[::1]:4000")
    ('10.0.0.1', '[::1]')
    """
    return address.split("://", 1)[-1].rsplit(":", 1)[0]


def group_segments(
    rows: Sequence[int], replicas, workers: Sequence[str], holders: Sequence[str], on_disk: bool = False
) -> list[tuple[int, ...]]:
    """The segments (positions) of each replica, rows evened out; made once per fit.

    ``rows[i]`` and ``holders[i]`` are segment ``i``'s row count and the worker holding it;
    ``workers`` are the workers that train. Without ``on_disk`` only the row counts matter.

    >>> group_segments([5, 3, 3, 2, 1], None, ["a:1", "b:1"], ["a:1"] * 5)
    [(0, 3), (1, 2, 4)]
    >>> group_segments([5, 3], "segments", ["a:1"], ["a:1"] * 2)
    [(0,), (1,)]
    """
    if replicas == SEGMENTS:
        return [(i,) for i in range(len(rows))]
    count = min(replicas or len(workers), len(rows))
    if not on_disk:
        return _lpt(range(len(rows)), rows, count)
    # Segments cached on disk are read where their file is: group them host by host.
    by_host: dict[str, list[int]] = {}
    for i, holder in enumerate(holders):
        by_host.setdefault(host_of(holder), []).append(i)
    if count < len(by_host):
        raise DataError(
            f"cache='disk' keeps each segment on the host that read it, and {len(by_host)} hosts hold segments: "
            f"pass replicas={len(by_host)} or more. Received: replicas={replicas!r}"
        )
    shares = _shares({h: sum(rows[i] for i in members) for h, members in by_host.items()}, count)
    groups = []
    for host in sorted(by_host):
        groups += _lpt(by_host[host], rows, min(shares[host], len(by_host[host])))
    return groups


def _lpt(segments, rows: Sequence[int], count: int) -> list[tuple[int, ...]]:
    """``segments`` in ``count`` groups, largest first, each to the group with the fewest rows (ties: the first)."""
    groups: list[list[int]] = [[] for _ in range(count)]
    sizes = [0] * count
    for i in sorted(segments, key=lambda i: (-rows[i], i)):
        g = min(range(count), key=lambda g: (sizes[g], g))
        groups[g].append(i)
        sizes[g] += rows[i]
    return sorted(tuple(sorted(g)) for g in groups if g)


def _shares(rows_by_host: dict[str, int], count: int) -> dict[str, int]:
    """``count`` replicas shared among hosts in proportion to their rows, at least one each (largest remainders).

    >>> _shares({"a": 300, "b": 100}, 4)
    {'a': 3, 'b': 1}
    """
    hosts = sorted(rows_by_host)
    total = sum(rows_by_host.values()) or 1
    spare = count - len(hosts)
    exact = {h: spare * rows_by_host[h] / total for h in hosts}
    shares = {h: 1 + math.floor(exact[h]) for h in hosts}
    for h in sorted(hosts, key=lambda h: (-(exact[h] - math.floor(exact[h])), h))[: count - sum(shares.values())]:
        shares[h] += 1
    return shares


def home(
    groups: Sequence[tuple[int, ...]],
    rows: Sequence[int],
    holders: Sequence[str],
    workers: Sequence[str],
    on_disk: bool = False,
    ids: Sequence[int] | None = None,
) -> list[Replica]:
    """Put each group on a worker: the one holding most of its rows, with at most ``ceil(groups / workers)``
    groups per worker (on disk: a worker of the group's host).

    >>> [r.worker for r in home([(0,), (1, 2)], [4, 2, 2], ["b:1", "a:1", "a:1"], ["a:1", "b:1"])]
    ['b:1', 'a:1']
    """
    if not workers:
        raise DataError("No worker is left to train on.")
    capacity = -(-len(groups) // len(workers))
    load = {w: 0 for w in workers}
    held = [{w: sum(rows[i] for i in g if holders[i] == w) for w in workers} for g in groups]
    allowed = [_allowed(g, holders, workers, on_disk) for g in groups]
    placed: dict[int, str] = {}
    pairs = sorted(
        ((held[g][w], g, w) for g in range(len(groups)) for w in allowed[g] if held[g][w]),
        key=lambda p: (-p[0], p[1], p[2]),
    )
    for _, g, w in pairs:
        if g not in placed and load[w] < capacity:
            placed[g], load[w] = w, load[w] + 1
    for g in range(len(groups)):
        if g not in placed:
            w = min(allowed[g], key=lambda w: (load[w], w))
            placed[g], load[w] = w, load[w] + 1
    ids = range(len(groups)) if ids is None else ids
    return [Replica(ids[g], groups[g], placed[g]) for g in range(len(groups))]


def _allowed(group: tuple[int, ...], holders: Sequence[str], workers: Sequence[str], on_disk: bool) -> list[str]:
    if not on_disk:
        return list(workers)
    hosts = {host_of(holders[i]) for i in group}
    near = [w for w in workers if host_of(w) in hosts]
    if len(hosts) > 1 or not near:
        raise DataError(
            f"Segments cached on disk on {', '.join(sorted(hosts))} cannot be trained together: no worker of "
            f"that host is left. Use cache='memory', or restart the fit."
        )
    return near
