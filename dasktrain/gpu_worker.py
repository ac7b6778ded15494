"""Dask preload that makes a worker a dasktrain GPU worker: its share of its GPU, taken at start.

:func:`dasktrain.cluster` starts GPU workers with it. For workers started by hand, one per GPU::

    DASKTRAIN_GPU_MEMORY_FRACTION=0.9 dask cuda worker tcp://scheduler:8786 \\
        --resources GPU=1 --preload dasktrain.gpu_worker

``DASKTRAIN_GPU_MEMORY_FRACTION`` is each worker's share of its GPU (default 0.9); the ``GPU``
resource is how ``fit``, ``evaluate`` and ``predict_table`` find GPU workers.
"""

from __future__ import annotations

import logging
import os

from .errors import GPUError
from .runtime._gpu import MemoryPolicy
from .runtime._gpu_memory import apply_policy

logger = logging.getLogger("dasktrain")


def dask_setup(worker) -> None:
    """Apply the memory policy before any task runs; a worker that cannot fails to start, saying why.

    >>> dask_setup(worker)  # doctest: +SKIP
    """
    policy = MemoryPolicy.from_environment()
    if policy is None:  # started by hand without a share: the default, also for device_facts
        policy = MemoryPolicy()
        for name, value in policy.environment().items():
            os.environ.setdefault(name, value)
    if not worker.state.total_resources.get("GPU"):
        raise GPUError(
            "A dasktrain GPU worker must advertise its GPU: start it with --resources GPU=1 "
            "(fit, evaluate and predict_table place GPU work by that resource)."
        )
    applied = apply_policy(policy)
    logger.info(
        "GPU worker %s: %s, %d of %d MiB for %s",
        worker.name, applied["device"], applied["limit_mib"], applied["memory_mib"], applied["backend"],
    )  # fmt: skip
