"""GPUs on this machine, and the memory policy every GPU worker follows.

The policy (one per cluster): each worker takes ``memory_fraction / workers_per_gpu`` of its GPU
when it starts and never grows, so a model or batch that does not fit fails at the start of a
fit, not halfway through it. Finding GPUs needs no CUDA library: ``CUDA_VISIBLE_DEVICES``, else
``nvidia-smi``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

#: Environment variables that carry the policy to a worker process (read by :mod:`dasktrain.gpu_worker`).
FRACTION_VARIABLE = "DASKTRAIN_GPU_MEMORY_FRACTION"
SHARING_VARIABLE = "DASKTRAIN_WORKERS_PER_GPU"


@dataclass(frozen=True)
class MemoryPolicy:
    """How much of its GPU each worker process may use.

    >>> MemoryPolicy(memory_fraction=0.9, workers_per_gpu=4).per_worker
    0.225
    """

    memory_fraction: float = 0.9
    workers_per_gpu: int = 1

    def __post_init__(self):
        if isinstance(self.workers_per_gpu, bool) or not isinstance(self.workers_per_gpu, int):
            raise TypeError(f"workers_per_gpu must be an integer, not {self.workers_per_gpu!r}")
        if self.workers_per_gpu < 1:
            raise ValueError(f"workers_per_gpu must be at least 1, not {self.workers_per_gpu}")
        if not 0.0 < float(self.memory_fraction) <= 1.0:
            raise ValueError(f"memory_fraction must be in (0, 1], not {self.memory_fraction!r}")

    @property
    def per_worker(self) -> float:
        """The share of one GPU's memory each worker takes."""
        return round(float(self.memory_fraction) / self.workers_per_gpu, 6)

    def environment(self) -> dict[str, str]:
        """Variables set in each worker process before any Keras backend starts.

        JAX reads its share from the environment when it starts (and preallocates exactly it);
        TensorFlow and PyTorch get theirs from :func:`dasktrain.gpu_worker.dask_setup`.

        >>> MemoryPolicy(0.9, 2).environment()["XLA_PYTHON_CLIENT_MEM_FRACTION"]
        '0.45'
        """
        share = f"{self.per_worker:g}"
        return {
            FRACTION_VARIABLE: share,
            SHARING_VARIABLE: str(self.workers_per_gpu),
            "XLA_PYTHON_CLIENT_MEM_FRACTION": share,
            "XLA_PYTHON_CLIENT_PREALLOCATE": "true",
            "TF_FORCE_GPU_ALLOW_GROWTH": "false",
        }

    @classmethod
    def from_environment(cls, environ=os.environ) -> MemoryPolicy | None:
        """The policy a worker process was started with, or None (not a GPU worker)."""
        share = environ.get(FRACTION_VARIABLE)
        if not share:
            return None
        sharing = int(environ.get(SHARING_VARIABLE, "1"))
        return cls(memory_fraction=round(float(share) * sharing, 6), workers_per_gpu=sharing)


def visible_gpus(environ=os.environ) -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries (indexes or UUIDs).

    ``CUDA_VISIBLE_DEVICES`` wins when set (empty or ``-1``: none); else ``nvidia-smi`` lists
    them; without it (a machine with no NVIDIA driver) there are none.

    >>> visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3"})
    ['2', '3']
    >>> visible_gpus({"CUDA_VISIBLE_DEVICES": ""})
    []
    """
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        entries = [entry.strip() for entry in listed.split(",") if entry.strip()]
        # CUDA stops at the first invalid entry: "-1" hides every device after it.
        return entries[: entries.index("-1")] if "-1" in entries else entries
    return [row["index"] for row in query_gpus()]


def query_gpus(device: str | None = None) -> list[dict]:
    """``nvidia-smi``'s facts on each GPU (or one): index, uuid, name, memory in MiB. [] without it."""
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return []
    command = [executable, "--query-gpu=index,uuid,name,memory.total", "--format=csv,noheader,nounits"]
    if device is not None:
        command.append(f"--id={device}")
    try:
        output = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    rows = []
    for line in output.strip().splitlines():
        index, uuid, name, memory = (part.strip() for part in line.split(","))
        rows.append({"index": index, "uuid": uuid, "name": name, "memory_mib": int(float(memory))})
    return rows


def worker_devices(gpus: list[str], workers_per_gpu: int) -> list[str]:
    """``CUDA_VISIBLE_DEVICES`` for each worker: each GPU ``workers_per_gpu`` times, its own GPU first.

    Like dask-cuda, each worker sees every GPU, rotated so that its own is device 0.

    >>> worker_devices(["0", "1"], 2)
    ['0,1', '0,1', '1,0', '1,0']
    """
    return [",".join(gpus[i:] + gpus[:i]) for i in range(len(gpus)) for _ in range(workers_per_gpu)]


def resolve_gpus(gpus: int | str | None, environ=os.environ) -> list[str]:
    """The GPUs a :func:`dasktrain.cluster` call asks for: ``"auto"`` (all visible), a count, or 0/None.

    >>> resolve_gpus(0)
    []
    >>> resolve_gpus(1, {"CUDA_VISIBLE_DEVICES": "3,5"})
    ['3']
    """
    if gpus is None or gpus == 0:
        return []
    visible = visible_gpus(environ)
    if gpus == "auto":
        return visible
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
        raise ValueError(f"gpus must be 'auto', None or a count of GPUs (0 or more), not {gpus!r}")
    if gpus > len(visible):
        seen = f"only {len(visible)} ({', '.join(visible)})" if visible else "none"
        raise ValueError(
            f"gpus={gpus} asked for, but this machine shows {seen}: CUDA_VISIBLE_DEVICES and nvidia-smi "
            f"list the GPUs this process may use. Use gpus='auto', or gpus=0 for a CPU cluster."
        )
    return visible[:gpus]
