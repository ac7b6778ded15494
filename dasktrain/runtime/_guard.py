"""Waiting on cluster work without hanging.

Dask re-runs the tasks of a worker that dies, but some situations would leave a caller waiting
forever: no worker ever joins (a scheduler started without workers), every worker leaves, or a
task is pinned to a worker that is gone. :func:`gather` waits for results while watching the
cluster, and turns each of these into a clear :class:`~dasktrain.errors.ClusterError`.

How long to wait for workers is the Dask config value ``dasktrain.worker-timeout`` (default 60 s):
``dask.config.set({"dasktrain.worker-timeout": "5 minutes"})`` or ``DASK_DASKTRAIN__WORKER_TIMEOUT``.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence

import dask
from dask.utils import parse_timedelta

from ..errors import ClusterError, NoWorkersError, SegmentFailedError

WORKER_TIMEOUT = "dasktrain.worker-timeout"
DEFAULT_WORKER_TIMEOUT = 60.0
POLL = 0.25  # seconds between looks at the cluster while results are pending


class WorkersLost(ClusterError):
    """Workers that held some of the work left the cluster (``fit`` retries the round)."""

    def __init__(self, workers: Collection[str]):
        names = ", ".join(sorted(workers)) or "a worker holding data the work needed"
        super().__init__(f"Workers left the cluster: {names}.")
        self.workers = set(workers)


def cluster_workers(client) -> dict[str, dict]:
    """The scheduler's workers now, ``{address: info}``, asked of the scheduler itself.

    Not ``client.scheduler_info()["workers"]``: that returns the client's cached copy, which the
    client's own periodic update (every 2 s, without per-worker details) can replace between the
    fetch and the read. Under load a reader then sees no workers at all, and ``fit`` would take
    every worker for lost.

    >>> sorted(cluster_workers(client))  # doctest: +SKIP
    ['tcp://127.0.0.1:40575', 'tcp://127.0.0.1:41231']
    """
    return client.sync(client.scheduler.identity, n_workers=-1)["workers"]


def worker_timeout() -> float:
    """Seconds to wait for a Dask worker before giving up (``dasktrain.worker-timeout``).

    >>> with dask.config.set({"dasktrain.worker-timeout": "2 minutes"}):
    ...     worker_timeout()
    120.0
    """
    return float(parse_timedelta(dask.config.get(WORKER_TIMEOUT, DEFAULT_WORKER_TIMEOUT), default="seconds"))


def wait_for_workers(client, what: str) -> None:
    """Return once the cluster has a worker; raise :class:`NoWorkersError` after the timeout.

    >>> wait_for_workers(client, "fit")  # doctest: +SKIP
    """
    if cluster_workers(client):
        return
    timeout = worker_timeout()
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        raise NoWorkersError(_no_workers_message(client, what, timeout)) from None


def _no_workers_message(client, what: str, timeout: float) -> str:
    address = client.scheduler.address
    return (
        f"{what}: no Dask worker is connected to the scheduler at {address} (waited {timeout:.0f} s). "
        f"Start workers with 'dask worker {address}', or give the cluster more time with the Dask "
        f"config value {WORKER_TIMEOUT}."
    )


def gather(
    client,
    futures: Sequence,
    labels: Sequence[str],
    what: str,
    *,
    watch: Collection[str] = (),
    fetch: bool = True,
    bar=None,
) -> list | None:
    """The results of ``futures``, in order, once all are done; never waits forever.

    Parameters
    ----------
    futures : list of distributed.Future
    labels : list of str
        What each future is, for messages (``"segment 3"``).
    what : str
        The work, for messages (``"predict_table into 'scores'"``).
    watch : collection of str
        Worker addresses the work depends on (tasks pinned to them): if one leaves,
        :class:`WorkersLost` is raised at once so the caller can retry elsewhere.
    fetch : bool, default True
        False only waits, leaving the results on the workers (and returns None).
    bar : tqdm progress bar, optional
        Advanced as futures finish.

    Raises
    ------
    SegmentFailedError
        A task's worker died more times than Dask allows (``distributed.scheduler.allowed-failures``).
    NoWorkersError
        The cluster had no worker for longer than ``dasktrain.worker-timeout``.
    WorkersLost
        A watched worker left, or data the work needed was lost with a worker.

    Examples
    --------
    >>> gather(client, futures, [f"segment {i}" for i in range(len(futures))], "scoring")  # doctest: +SKIP
    """
    from concurrent.futures import CancelledError

    from distributed import wait
    from distributed.scheduler import KilledWorker

    futures = list(futures)
    names = {f.key: label for f, label in zip(futures, labels, strict=True)}
    alone_since = None
    while True:
        try:
            wait(futures, timeout=POLL)
        except (TimeoutError, CancelledError):
            pass  # the statuses below say what happened
        for future in futures:
            if future.status == "error":
                error = future.exception()
                if isinstance(error, KilledWorker):
                    label = names.get(getattr(error, "task", None), names[future.key])
                    raise SegmentFailedError(
                        f"{what}: {label} failed: each of the workers that ran it died (out of memory, or "
                        f"killed) as many times as Dask allows (distributed.scheduler.allowed-failures)."
                    ) from None
                raise error.with_traceback(future.traceback())
            if future.status == "cancelled":  # data it needed (scattered by the client) was lost with a worker
                workers = cluster_workers(client)
                raise WorkersLost([w for w in watch if w not in workers])
        finished = sum(f.status == "finished" for f in futures)
        if bar is not None and finished > bar.n:
            bar.update(finished - bar.n)
        if finished == len(futures):
            return client.gather(futures) if fetch else None
        workers = cluster_workers(client)
        lost = [w for w in watch if w not in workers]
        if lost:
            raise WorkersLost(lost)
        if workers:
            alone_since = None
        elif alone_since is None:
            alone_since = time.monotonic()
        elif time.monotonic() - alone_since > worker_timeout():
            raise NoWorkersError(_no_workers_message(client, what, worker_timeout()))
