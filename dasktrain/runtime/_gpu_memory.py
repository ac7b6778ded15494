"""The memory policy applied inside a worker process, once per Keras backend, before it allocates.

Each backend gets the same rule, its own way:

- TensorFlow: only the worker's own GPU (device 0 of its ``CUDA_VISIBLE_DEVICES``) is visible,
  as one logical device with ``memory_limit``; TensorFlow reserves that much when it starts.
- PyTorch: ``torch.cuda.set_per_process_memory_fraction`` caps the caching allocator, and the
  share is allocated once at start and kept in PyTorch's cache.
- JAX: ``XLA_PYTHON_CLIENT_MEM_FRACTION`` (set in the worker's environment by the cluster, or
  here before JAX is imported) and preallocation; JAX takes the share on first use, done here.

Whatever cannot be applied raises :class:`~dasktrain.errors.GPUError` saying why, so the worker
fails as it starts rather than halfway through a fit.
"""

from __future__ import annotations

import gc
import os
import socket
import sys

from ..errors import GPUError
from ._gpu import MemoryPolicy, query_gpus, visible_gpus

#: Of a PyTorch worker's share, what is allocated at start; the rest is room for the small-block pool.
_TORCH_RESERVED = 0.9

#: What the policy did in this process: {"applied": {...}} or {"error": "..."}; {} before it ran.
_outcome: dict = {}


def policy_outcome(dask_worker=None) -> dict:
    """What applying the memory policy did in this worker (``client.run`` target)."""
    return dict(_outcome)


def backend_name(environ=os.environ) -> str:
    return environ.get("KERAS_BACKEND", "tensorflow")


def own_device(environ=os.environ) -> dict:
    """The worker's GPU (the first of its ``CUDA_VISIBLE_DEVICES``) as ``nvidia-smi`` describes it."""
    devices = visible_gpus(environ)
    if not devices:
        raise GPUError(
            f"This worker sees no GPU (CUDA_VISIBLE_DEVICES={environ.get('CUDA_VISIBLE_DEVICES')!r}, "
            f"and nvidia-smi lists none): start GPU workers on a machine with NVIDIA GPUs and their driver."
        )
    facts = query_gpus(devices[0])
    if not facts:
        raise GPUError(f"nvidia-smi cannot describe GPU {devices[0]!r}: is the NVIDIA driver installed?")
    return facts[0]


def apply_policy(policy: MemoryPolicy, backend: str | None = None, environ=os.environ) -> dict:
    """Give this process its share of its GPU, for ``backend`` (default: ``KERAS_BACKEND``).

    Returns what was applied: the device and the limit in MiB.

    >>> apply_policy(MemoryPolicy(0.9, 2), "torch")  # doctest: +SKIP
    {'device': 'NVIDIA H100 80GB HBM3', 'memory_mib': 81559, 'limit_mib': 36701, 'backend': 'torch'}
    """
    backend = backend or backend_name(environ)
    appliers = {"tensorflow": _tensorflow, "torch": _torch, "jax": _jax}
    if backend not in appliers:
        raise GPUError(f"KERAS_BACKEND={backend!r}: GPU workers support tensorflow, torch and jax.")
    try:
        device = own_device(environ)
        limit = int(device["memory_mib"] * policy.per_worker)
        appliers[backend](policy, limit, environ)
    except Exception as error:
        _outcome.update(error=f"{type(error).__name__}: {error}")
        raise
    applied = {"device": device["name"], "memory_mib": device["memory_mib"], "limit_mib": limit, "backend": backend}
    _outcome.update(applied=applied)
    return applied


def _tensorflow(policy: MemoryPolicy, limit_mib: int, environ) -> None:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        raise GPUError(
            "TensorFlow sees no GPU although this worker has one: this TensorFlow has no CUDA libraries. "
            "Install them with: pip install 'dasktrain[gpu-tensorflow]' (brings tensorflow[and-cuda])."
        )
    try:
        tf.config.set_visible_devices(gpus[0], "GPU")
        tf.config.set_logical_device_configuration(
            gpus[0], [tf.config.LogicalDeviceConfiguration(memory_limit=limit_mib)]
        )
        tf.config.list_logical_devices("GPU")  # starts TensorFlow's GPU now, which reserves the limit
    except RuntimeError as error:
        raise GPUError(
            f"TensorFlow had already started in this worker, so its GPU memory cannot be limited any more "
            f"({error}). Start the worker with the preload dasktrain.gpu_worker and import nothing before it."
        ) from error


def _torch(policy: MemoryPolicy, limit_mib: int, environ) -> None:
    import torch

    if not torch.cuda.is_available():
        raise GPUError(
            f"PyTorch sees no GPU although this worker has one: this PyTorch ({torch.__version__}) was built "
            f"without CUDA, or its CUDA is newer than the driver. Install a CUDA build of PyTorch."
        )
    torch.cuda.set_device(0)
    torch.cuda.set_per_process_memory_fraction(policy.per_worker, 0)
    try:  # take the share now: kept in PyTorch's cache, it is there for this worker's models
        block = torch.empty(int(limit_mib * _TORCH_RESERVED) << 20, dtype=torch.uint8, device="cuda:0")
        del block
    except torch.cuda.OutOfMemoryError as error:
        free, total = torch.cuda.mem_get_info(0)
        raise GPUError(
            f"This worker's share of its GPU ({limit_mib} MiB) is not free: {free >> 20} of {total >> 20} MiB "
            f"are. Other processes use the GPU; lower memory_fraction or workers_per_gpu."
        ) from error


def _jax(policy: MemoryPolicy, limit_mib: int, environ) -> None:
    wanted = f"{policy.per_worker:g}"
    if "jax" in sys.modules and os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION") != wanted:
        raise GPUError(
            "JAX was imported in this worker before its memory share was set: start the worker with "
            f"XLA_PYTHON_CLIENT_MEM_FRACTION={wanted} in its environment, or with the preload dasktrain.gpu_worker."
        )
    os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] = wanted
    os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "true"
    import jax

    try:
        jax.devices("gpu")  # starts the GPU client, which preallocates the share
    except RuntimeError as error:
        raise GPUError(f"JAX cannot use this worker's GPU: {error}. Install jax[cuda12].") from error


def release_models() -> None:
    """Free the device memory of models no longer used (Keras's session); the worker keeps its share."""
    import keras

    keras.backend.clear_session()
    gc.collect()


def allocated_mib(backend: str | None = None) -> dict:
    """Device memory this process has allocated now and at most, in MiB (PyTorch; {} elsewhere)."""
    if (backend or backend_name()) != "torch" or "torch" not in sys.modules:
        return {}
    import torch

    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    return {
        "allocated_mib": torch.cuda.memory_allocated(0) / 2**20,
        "peak_mib": torch.cuda.max_memory_allocated(0) / 2**20,
        "reserved_mib": torch.cuda.memory_reserved(0) / 2**20,
    }


def device_facts(dask_worker=None) -> dict:
    """What this worker runs on: host, device, its memory and share (``client.run`` target)."""
    policy = MemoryPolicy.from_environment()
    facts = {
        "host": socket.gethostname(),
        "worker": getattr(dask_worker, "address", None),
        "backend": backend_name(),
        "device": "cpu",
        "uuid": None,
        "memory_mib": None,
        "memory_limit_mib": None,
        "workers_per_gpu": None,
    }
    if policy is not None:
        device = own_device()
        facts.update(
            device=device["name"],
            uuid=device["uuid"],
            memory_mib=device["memory_mib"],
            memory_limit_mib=int(device["memory_mib"] * policy.per_worker),
            workers_per_gpu=policy.workers_per_gpu,
        )
    return facts
