"""Where GPU work runs: on workers that advertise a ``GPU`` resource and hold their memory share.

``use_gpus`` in :func:`dasktrain.fit`, :func:`dasktrain.evaluate` and :func:`dasktrain.predict_table`:
``True`` places every task (reading segments included, so their rows are already where they
train) on GPU workers, an error when there are none; ``False`` asks for no GPU, so tasks go to
any worker; ``None`` is ``True`` when the cluster has GPU workers.
"""

from __future__ import annotations

from .._whole_table import WholeTable
from ..errors import GPUError
from ._gpu_memory import policy_outcome
from ._guard import cluster_workers, wait_for_workers


def gpu_workers(client) -> list[str]:
    """Addresses of the workers advertising a ``GPU`` resource."""
    workers = cluster_workers(client)
    return sorted(address for address, info in workers.items() if info.get("resources", {}).get("GPU"))


def check_gpu_workers(client, workers: list[str] | None = None) -> None:
    """Raise :class:`GPUError`, naming each, if a GPU worker could not take (or never took) its memory share."""
    workers = gpu_workers(client) if workers is None else workers
    if not workers:
        return
    outcomes = client.run(policy_outcome, workers=workers)
    problems = []
    for address, outcome in sorted(outcomes.items()):
        if "error" in outcome:
            problems.append(f"{address}: {outcome['error']}")
        elif "applied" not in outcome:
            problems.append(f"{address}: advertises a GPU but was started without --preload dasktrain.gpu_worker")
    if problems:
        raise GPUError("GPU workers could not take their share of GPU memory:\n  " + "\n  ".join(problems))


def resolve_use_gpus(client, use_gpus: bool | None, what: str) -> bool:
    """Whether ``what``'s tasks must run on GPU workers; checked before any work starts.

    >>> resolve_use_gpus(client, None, "fit")  # doctest: +SKIP
    False
    """
    if use_gpus not in (True, False, None):
        raise TypeError(f"use_gpus must be True, False or None, not {use_gpus!r}")
    if use_gpus is False:
        return False
    workers = gpu_workers(client)
    if not workers:
        if use_gpus:
            count = len(cluster_workers(client))
            raise GPUError(
                f"{what}: use_gpus=True, but none of the cluster's {count} workers advertises a GPU. Start one with "
                f"dasktrain.cluster(gpus='auto'), or by hand with 'dask cuda worker ... --resources GPU=1 "
                f"--preload dasktrain.gpu_worker'; or pass use_gpus=False."
            )
        return False
    check_gpu_workers(client, workers)
    return True


def placement(client, use_gpus: bool | None, what: str) -> dict:
    """:func:`task_options` for ``use_gpus`` on this cluster, once a worker is there.

    >>> client.compute(tasks, **placement(client, None, "scoring"))  # doctest: +SKIP
    """
    if use_gpus is not False:
        wait_for_workers(client, what)
    return task_options(resolve_use_gpus(client, use_gpus, what))


def task_options(use_gpus: bool) -> dict:
    """Keyword arguments for ``client.submit``/``compute``/``persist`` that place tasks on GPU workers.

    >>> task_options(True)
    {'resources': {'GPU': 1}}
    """
    return {"resources": {"GPU": 1}} if use_gpus else {}


def gpu_configuration(client=None):
    """What each worker runs on, like MADlib's ``gpu_configuration``: one row per worker.

    Columns: ``host``, ``worker``, ``device`` (the GPU's name, or ``cpu``), ``memory_mib`` (the
    GPU's), ``memory_limit_mib`` (the worker's share), ``workers_on_device``, ``backend``.

    A pandas DataFrame that prints whole (every column, however wide the terminal).

    >>> print(dasktrain.gpu_configuration(client))  # doctest: +SKIP
    host    worker                device                 memory_mib  memory_limit_mib  backend     workers_on_device
    node-1  tcp://10.0.0.5:40331  NVIDIA H100 80GB HBM3       81559             73403  tensorflow                  1
    """
    import pandas as pd

    from ._cluster import client_or_local
    from ._gpu_memory import device_facts

    with client_or_local(client) as client:
        facts = list(client.run(device_facts).values())
    frame = pd.DataFrame(facts, columns=[*DEVICE_COLUMNS, "uuid"])
    shared = frame.groupby(["host", frame["uuid"].fillna(frame["worker"])])["worker"].transform("count")
    frame["workers_on_device"] = shared.where(frame["device"] != "cpu", 1).astype(int)
    frame = frame.drop(columns="uuid").sort_values(["host", "device", "worker"], ignore_index=True)
    return DeviceTable(frame)


class DeviceTable(WholeTable):
    """:func:`gpu_configuration`'s table: a pandas DataFrame that prints whole, memory in whole MiB."""

    integer_columns = frozenset({"memory_mib", "memory_limit_mib", "workers_on_device"})


DEVICE_COLUMNS = ["host", "worker", "device", "memory_mib", "memory_limit_mib", "backend"]


def devices_used(client, workers: list[str] | None = None) -> list[dict]:
    """The devices a job ran on, grouped: ``[{"host", "device", "memory_limit_mib", "workers"}, ...]``."""
    frame = gpu_configuration(client)
    if workers is not None:
        frame = frame[frame["worker"].isin(workers)]
    groups = frame.fillna({"memory_limit_mib": 0}).groupby(["host", "device", "memory_limit_mib", "backend"])
    return [
        {"host": host, "device": device, "memory_limit_mib": int(limit) or None, "backend": backend, "workers": int(n)}
        for (host, device, limit, backend), n in groups.size().items()
    ]
