"""``cluster()``: a local Dask cluster shaped for training, one worker process per segment-slot."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def cluster(n_workers: int | None = None, threads_per_worker: int = 1, **kwargs):
    """Start a ``LocalCluster`` of worker *processes*, each with ``threads_per_worker`` threads.

    Each worker trains one segment at a time with TensorFlow limited to its own threads.

    Parameters
    ----------
    n_workers : int, optional
        Default: the number of CPUs divided by ``threads_per_worker``.
    threads_per_worker : int, default 1
    **kwargs
        Passed to ``distributed.LocalCluster`` (``memory_limit``, ``dashboard_address``, ...).

    Examples
    --------
    >>> from distributed import Client
    >>> client = Client(dasktrain.cluster(n_workers=2))  # doctest: +SKIP
    """
    from distributed import LocalCluster

    if n_workers is None:
        n_workers = max(1, (os.cpu_count() or 1) // threads_per_worker)
    kwargs.setdefault("dashboard_address", None)
    # Threads for TensorFlow's oneDNN kernels (OpenMP), read when the worker process starts.
    kwargs["env"] = {"OMP_NUM_THREADS": str(threads_per_worker), **kwargs.get("env", {})}
    return LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True, **kwargs)


@contextlib.contextmanager
def client_or_local(client=None) -> Iterator:
    """``client``, else the current Dask client, else a client on a new :func:`cluster` closed on exit.

    >>> with client_or_local() as client:  # doctest: +SKIP
    ...     client.submit(sum, [1, 2]).result()
    3
    """
    if client is not None:
        yield client
        return
    from distributed import Client, get_client

    try:
        current = get_client()
    except ValueError:  # no client yet
        current = None
    if current is not None:
        yield current
        return
    with cluster() as local, Client(local) as owned:
        yield owned
