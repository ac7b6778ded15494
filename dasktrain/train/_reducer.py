"""The cluster-side reducer: a tree of merge tasks placed by the scheduler.

Per-segment results stay on the workers; only the merged result moves on, so the client never
holds one copy of the model per segment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

FAN_IN = 4


def tree_reduce(client, futures: Sequence, combine: Callable, fan_in: int = FAN_IN):
    """Reduce ``futures`` with ``combine(*group)`` in a tree of at most ``fan_in`` inputs per task.

    Examples
    --------
    >>> total = tree_reduce(client, futures, merge)  # doctest: +SKIP
    """
    if fan_in < 2:
        raise ValueError(f"Expected fan_in >= 2. Received: fan_in={fan_in}")
    level = list(futures)
    if not level:
        raise ValueError("Nothing to reduce.")
    while len(level) > 1:
        level = [
            client.submit(combine, *level[i : i + fan_in], pure=False) if len(level[i : i + fan_in]) > 1 else level[i]
            for i in range(0, len(level), fan_in)
        ]
    return level[0]


def tree_depth(n: int, fan_in: int = FAN_IN) -> int:
    """Levels of merge tasks for ``n`` inputs.

    >>> [tree_depth(n) for n in (1, 4, 5, 16, 17)]
    [0, 1, 2, 2, 3]
    """
    depth = 0
    while n > 1:
        n = -(-n // fan_in)
        depth += 1
    return depth
