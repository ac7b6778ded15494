"""``cluster()``: a local Dask cluster shaped for training: one worker process per GPU (or k sharing one), else CPU."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import socket
import sys
import warnings
from collections.abc import Iterator

import dask
from distributed import LocalCluster, Nanny
from distributed.system import MEMORY_LIMIT

DIRECT = "distributed.client.direct-to-workers"


def prefer_direct_gathers() -> None:
    """Have clients fetch results straight from the workers, unless the user configured otherwise.

    By default a Dask client gathers through the scheduler: the data makes two hops, and bringing
    a table into the client (``read_table(...).compute()``) took twice as long as the reads. Where
    a worker cannot be reached directly, the client still falls back to the scheduler; set the
    Dask config ``distributed.client.direct-to-workers`` to False where workers sit behind a
    network the client cannot reach (it then waits for no connection attempt).
    """
    if dask.config.get(DIRECT, None) is None:
        dask.config.set({DIRECT: True})


prefer_direct_gathers()


#: A worker preload (Dask runs a preload given as source text): Ctrl-C in a terminal reaches every
#: process of its group, and a worker that took it died with a KeyboardInterrupt traceback while the
#: client was still shutting the cluster down. The client alone handles Ctrl-C and closes the workers.
IGNORE_CTRL_C = """
import signal
import threading

def dask_setup(worker):
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
"""

#: Seconds a worker gets to finish its task after Ctrl-C: its work is lost anyway, and the user waits.
HURRIED_CLOSE = 3.0


class PatientNanny(Nanny):
    """A nanny that gives its worker 20 s, not 4, to exit when the cluster closes; after Ctrl-C, 2 s.

    A worker process that has run TensorFlow can take more than 4 s to exit on a busy machine;
    Dask's nanny then kills it and warns "Worker process still alive after 4.0 seconds, killing"
    at the end of every such run, though nothing went wrong. After Ctrl-C (``hurry``), a worker
    still training is stopped within seconds, without that warning: nothing is lost that was not
    already lost.
    """

    hurry = False

    async def close(self, timeout: float = 25, reason: str = "nanny-close"):
        if self.hurry:
            return await super().close(timeout=HURRIED_CLOSE, reason=reason)
        return await super().close(timeout=max(timeout, 25), reason=reason)


class _StillAlive(logging.Filter):
    """Drops the nanny's "still alive ... killing" warning for workers told to hurry."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Worker process still alive")


def close_hurriedly(local) -> None:
    """Close a cluster of :class:`PatientNanny` workers after Ctrl-C: each worker gets seconds, not minutes.

    A worker in the middle of a replica's pass cannot be interrupted, and a pass may take minutes;
    the nanny kills it instead, quietly.
    """
    quiet = _StillAlive()
    nanny_logger = logging.getLogger("distributed.nanny")
    for nanny in getattr(local, "workers", {}).values():
        if isinstance(nanny, PatientNanny):
            nanny.hurry = True
    nanny_logger.addFilter(quiet)
    try:
        local.close()
    finally:
        nanny_logger.removeFilter(quiet)


def cluster(
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    *,
    gpus: int | str | None = "auto",
    workers_per_gpu: int = 1,
    memory_fraction: float = 0.9,
    **kwargs,
):
    """Start a local cluster of worker *processes*: one per GPU (or ``workers_per_gpu`` sharing one), else CPU.

    ``n_workers`` asks for CPU workers, ``gpus`` for GPU workers; asking for neither gives GPU
    workers on a machine with GPUs, else one CPU worker per core. Each GPU worker sees its own GPU
    as device 0, advertises a ``GPU`` resource, and takes ``memory_fraction / workers_per_gpu`` of
    the GPU's memory when it starts (never more); with ``workers_per_gpu=1`` and dask-cuda
    installed the cluster is a ``dask_cuda.LocalCUDACluster``. CPU workers see no GPU at all
    (``CUDA_VISIBLE_DEVICES=""``) and run the Keras backend on the worker's own threads.

    Parameters
    ----------
    n_workers : int, optional
        CPU workers. Default: the number of CPUs divided by ``threads_per_worker``.
    threads_per_worker : int, default 1
    gpus : "auto", int or None, default "auto"
        "auto": every GPU this process may use (``CUDA_VISIBLE_DEVICES``, else ``nvidia-smi``) unless
        ``n_workers`` is given; a count: that many, an error if there are fewer; 0 or None: CPU.
    workers_per_gpu : int, default 1
        Worker processes sharing each GPU.
    memory_fraction : float, default 0.9
        Share of each GPU's memory taken by all its workers together.
    **kwargs
        Passed to ``distributed.LocalCluster`` (``memory_limit``, ...). ``dashboard_address``
        defaults to ``:8787``, or any free port when 8787 is taken (by another cluster).

    Raises
    ------
    ValueError
        More GPUs asked for than there are, or both ``n_workers`` and a count of ``gpus``.
    GPUError
        A GPU worker could not take its share of memory (the message says which, and why).

    Examples
    --------
    >>> from distributed import Client
    >>> client = Client(dasktrain.cluster(n_workers=2))  # doctest: +SKIP
    >>> client = Client(dasktrain.cluster(gpus="auto", workers_per_gpu=4))  # doctest: +SKIP
    """
    from ._gpu import MemoryPolicy, resolve_gpus

    policy = MemoryPolicy(memory_fraction, workers_per_gpu)
    if n_workers is not None and gpus not in ("auto", 0, None):
        raise ValueError(
            f"n_workers={n_workers} asks for CPU workers and gpus={gpus!r} for GPU workers: give one of them "
            f"(GPU workers number gpus * workers_per_gpu)."
        )
    devices = [] if n_workers is not None else resolve_gpus(gpus)
    kwargs.setdefault("dashboard_address", dashboard_address())
    kwargs.setdefault("worker_class", PatientNanny)
    kwargs["preload"] = [*kwargs.get("preload", []), IGNORE_CTRL_C]
    # Threads for TensorFlow's oneDNN kernels (OpenMP), read when the worker process starts.
    kwargs["env"] = {"OMP_NUM_THREADS": str(threads_per_worker), **kwargs.get("env", {})}
    with warnings.catch_warnings():
        # Two clusters starting at once may both find 8787 free; the second then takes another
        # port, which is what we want, and Dask's warning about it is noise.
        warnings.filterwarnings("ignore", message="Port .* is already in use", category=UserWarning)
        if devices:
            return gpu_cluster(devices, policy, threads_per_worker, **kwargs)
        kwargs["env"] = {"CUDA_VISIBLE_DEVICES": "", **kwargs["env"]}
        if n_workers is None:
            n_workers = max(1, (os.cpu_count() or 1) // threads_per_worker)
        return LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True, **kwargs)


def gpu_cluster(devices: list[str], policy, threads_per_worker: int = 1, *, preload: bool = True, **kwargs):
    """A cluster of ``policy.workers_per_gpu`` workers per GPU in ``devices``, each with its share.

    ``preload=False`` starts the workers without applying the policy (to test the cluster's
    shape on a machine without GPUs).
    """
    from ._gpu import worker_devices

    kwargs["env"] = {**kwargs.get("env", {}), **policy.environment()}
    kwargs["resources"] = {"GPU": 1, **kwargs.get("resources", {})}
    if preload:
        kwargs["preload"] = [*kwargs.get("preload", []), "dasktrain.gpu_worker"]
    if policy.workers_per_gpu == 1 and _has_dask_cuda():
        started = _cuda_cluster(devices, threads_per_worker, **kwargs)
    else:
        started = SharedGPUCluster(worker_devices(devices, policy.workers_per_gpu), threads_per_worker, **kwargs)
    if preload:
        _check_started(started)
    return started


def _check_started(started) -> None:
    """Close the cluster and say why if a worker could not take its share (Dask only logs a failed preload)."""
    from distributed import Client

    from ._placement import check_gpu_workers

    try:
        with Client(started, set_as_default=False) as client:
            check_gpu_workers(client)
    except BaseException:
        started.close()
        raise


def _has_dask_cuda() -> bool:
    import importlib.util

    return importlib.util.find_spec("dask_cuda") is not None


class _GPUSpecs:
    """Worker specs that give each worker its GPU: the part a ``LocalCluster`` subclass adds."""

    def _gpu_spec(self, spec: dict, visible: str) -> dict:
        options = spec["options"]
        options["env"] = {**options.get("env", {}), **self._worker_env, "CUDA_VISIBLE_DEVICES": visible}
        return spec


class SharedGPUCluster(_GPUSpecs, LocalCluster):
    """A ``LocalCluster`` with ``CUDA_VISIBLE_DEVICES`` chosen per worker (several may share a GPU).

    >>> SharedGPUCluster(["0,1", "0,1", "1,0", "1,0"], env=MemoryPolicy(0.9, 2).environment())  # doctest: +SKIP
    """

    def __init__(self, visible: list[str], threads_per_worker: int = 1, **kwargs):
        self._slots = {f"gpu{v.split(',')[0]}-{k}": v for k, v in enumerate(visible)}
        self._worker_env = kwargs.pop("env", {})
        kwargs.setdefault("memory_limit", MEMORY_LIMIT // len(visible))
        # LocalCluster builds its first workers without new_worker_spec: start none, then scale.
        super().__init__(n_workers=0, threads_per_worker=threads_per_worker, processes=True, **kwargs)
        self.scale(len(visible))
        self.sync(self._correct_state)

    def new_worker_spec(self):
        free = [name for name in self._slots if name not in self.worker_spec]
        if not free:
            raise ValueError(f"This cluster has one worker per GPU slot ({len(self._slots)}); it cannot scale beyond.")
        spec = copy.deepcopy(self.new_spec)
        return {free[0]: self._gpu_spec(spec, self._slots[free[0]])}


def _cuda_cluster(devices: list[str], threads_per_worker: int, **kwargs):
    """dask-cuda's ``LocalCUDACluster`` (one worker per GPU), with the policy in each worker's environment."""
    from dask_cuda import LocalCUDACluster

    class Cluster(_GPUSpecs, LocalCUDACluster):
        def __init__(self, **options):
            self._worker_env = options.pop("env", {})
            super().__init__(**options)

        def new_worker_spec(self):
            # dask-cuda replaces the spec's environment with CUDA_VISIBLE_DEVICES: add the policy back.
            ((name, spec),) = super().new_worker_spec().items()
            return {name: self._gpu_spec(spec, spec["options"]["env"]["CUDA_VISIBLE_DEVICES"])}

    return Cluster(
        CUDA_VISIBLE_DEVICES=devices, n_workers=len(devices), threads_per_worker=threads_per_worker, **kwargs
    )


def dashboard_address(preferred: int = 8787) -> str:
    """``":8787"`` when that port is free, else ``":0"`` (any free port): a second cluster must not fail or warn.

    >>> dashboard_address() in (":8787", ":0")
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("", preferred))
        except OSError:
            return ":0"
    return f":{preferred}"


def announce(client, what: str = "started a local Dask cluster") -> None:
    """Say on stderr how many workers a new cluster has and where its dashboard is."""
    from ._guard import cluster_workers

    workers = len(cluster_workers(client))
    link = client.dashboard_link if client.scheduler_info().get("services", {}).get("dashboard") else None
    noun = "worker process" if workers == 1 else "worker processes"
    print(f"dasktrain: {what} of {workers} {noun}" + (f"; dashboard: {link}" if link else ""),
          file=sys.stderr, flush=True)  # fmt: skip


@contextlib.contextmanager
def client_or_local(client=None, *, quiet: bool = False, current: bool = True, **shape) -> Iterator:
    """``client``, else the current Dask client, else a client on a new :func:`cluster` closed on exit.

    A new cluster is announced on stderr with its dashboard's link (unless ``quiet``); ``shape``
    is passed to :func:`cluster`, and ``current=False`` starts one even when a client exists.
    On Ctrl-C the new cluster is closed within seconds, its workers' running tasks abandoned.

    >>> with client_or_local() as client:  # doctest: +SKIP
    ...     client.submit(sum, [1, 2]).result()
    3
    """
    if client is not None:
        yield client
        return
    from distributed import Client, get_client

    if current:
        try:
            found = get_client()
        except ValueError:  # no client yet
            found = None
        if found is not None:
            yield found
            return
    local = cluster(**shape)
    interrupted = False
    try:
        with Client(local) as owned:
            if not quiet:
                announce(owned)
            yield owned
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if interrupted:
            close_hurriedly(local)
        else:
            local.close()
