"""Fault injection for the reliability tests: real processes killed, real backends terminated.

Importable by worker processes (pytest puts ``tests/`` on the path they inherit).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

import numpy as np
from distributed import Client, LocalCluster, WorkerPlugin


class KillWorkerOn(WorkerPlugin):
    """SIGKILL the worker's own process when a task whose key starts with ``prefix`` reaches ``state``.

    ``state`` is a worker task state: ``"executing"`` (it started) or ``"memory"`` (it finished, its
    result is on this worker). With ``once_file``, only the first match in the whole cluster kills.
    """

    name = "chaos-kill-worker"

    def __init__(self, prefix: str, state: str = "executing", suffix: str = "", once_file: str | None = None):
        self.prefix, self.state, self.suffix, self.once_file = prefix, state, suffix, once_file

    def transition(self, key, start, finish, **kwargs):
        text = str(key[0] if isinstance(key, tuple) else key)
        if finish != self.state or not text.startswith(self.prefix) or not str(key).endswith(self.suffix):
            return
        if self.once_file is not None:
            try:
                os.close(os.open(self.once_file, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return
        os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def own_cluster(n_workers: int = 2):
    """A LocalCluster of worker processes for one test (faults must not touch the shared one)."""
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            yield cluster, client


def in_background(work) -> threading.Thread:
    """Run ``work()`` in a daemon thread; its exception, if any, is kept in ``thread.error``."""

    def run():
        try:
            work()
        except BaseException as exc:  # reported by the test that started it
            thread.error = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.error = None
    thread.start()
    return thread


def kill_worker_running(client, prefix: str, timeout: float = 120.0) -> str:
    """Wait for a task whose key starts with ``prefix`` to be processing, then SIGKILL its worker."""
    pids = client.run(os.getpid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker, keys in client.processing().items():
            if any(str(k).startswith(prefix) for k in keys):
                os.kill(pids[worker], signal.SIGKILL)
                return worker
        time.sleep(0.02)
    raise TimeoutError(f"no task {prefix}* ran within {timeout} s")


def wait_until(condition, timeout: float = 60.0, every: float = 0.02):
    """Poll ``condition()`` until it returns something true; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"condition not met within {timeout} s")


def backends_waiting(db, query_start: str) -> list[int]:
    """Pids of server backends blocked on a lock while running a query that starts with ``query_start``."""
    with db.cursor() as cur:
        cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s AND pid <> "
            "pg_backend_pid()",
            (query_start + "%",),
        )
        return [row[0] for row in cur.fetchall()]


# -- run in separate processes (multiprocessing "spawn"): two writers racing ------------------------


def save_in_process(dsn: str, table: str, barrier) -> object:
    import dasktrain
    from dasktrain import Averaging, TrainingResult

    db = dasktrain.connect(dsn)
    result = TrainingResult(
        architecture='{"class_name": "Sequential", "config": {}}',
        members=[[np.zeros(3, np.float32)]],
        strategy=Averaging(),
        compile_params={"loss": "mse"},
        fit_params={},
    )
    barrier.wait()
    try:
        return dasktrain.save_model(db, table, result, name="raced")
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def write_in_process(dsn: str, table: str, barrier) -> object:
    import dasktrain
    import loaders

    db = dasktrain.connect(dsn)
    barrier.wait()
    try:
        return loaders.write_arrays(db, table, np.zeros((10, 2)), np.arange(10) % 2)
    except Exception as exc:
        return type(exc).__name__


def architecture_in_process(dsn: str, table: str, barrier) -> object:
    import dasktrain

    db = dasktrain.connect(dsn)
    barrier.wait()
    try:
        return dasktrain.load_architecture(db, table, '{"class_name": "Sequential", "config": {}}')
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
