"""``cluster()``: a local Dask cluster shaped for training, one worker process per segment-slot."""

from __future__ import annotations

import os


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
