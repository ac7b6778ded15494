"""Fault injection for testing pipelines: kill worker processes at chosen moments, find blocked backends.

Re-exported by :mod:`dasktrain.testing`; the project's own reliability tests and
``benchmarks/faults.py`` use them, and so can yours.
"""

from __future__ import annotations

import os
import signal
import time

from distributed import WorkerPlugin


class KillWorkerOn(WorkerPlugin):
    """SIGKILL the worker's own process when a task whose key starts with ``prefix`` reaches ``state``.

    Parameters
    ----------
    prefix : str
        Start of the task keys to watch (``"train-replica-3-"``, ``"_score_and_write"``).
    state : str, default "executing"
        The worker task state: ``"executing"`` (the task started) or ``"memory"`` (it finished and
        its result is on this worker).
    suffix : str, default ""
        End of the task keys to watch (``"-1"`` for segment 1 of a fit's training tasks).
    once_file : str, optional
        A path: only the first match in the whole cluster kills (the file marks it). Without it,
        every match kills, on every worker, replacements included.

    Examples
    --------
    >>> client.register_plugin(KillWorkerOn("_score_and_write", state="memory", once_file="/tmp/k"))  # doctest: +SKIP
    """

    name = "dasktrain-kill-worker"

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


def wait_until(condition, timeout: float = 60.0, every: float = 0.02):
    """Poll ``condition()`` until it returns something true, and return that.

    >>> wait_until(lambda: 42)
    42
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"condition not met within {timeout} s")


def kill_worker_running(client, prefix: str, timeout: float = 120.0) -> str:
    """Wait until a task whose key starts with ``prefix`` is processing, then SIGKILL its worker by PID.

    Returns the worker's address.

    >>> kill_worker_running(client, "train-replica-3-")  # doctest: +SKIP
    'tcp://127.0.0.1:40331'
    """
    pids = client.run(os.getpid)

    def running():
        for worker, keys in client.processing().items():
            if any(str(k).startswith(prefix) for k in keys):
                return worker
        return None

    worker = wait_until(running, timeout)
    os.kill(pids[worker], signal.SIGKILL)
    return worker


def backends_waiting(db, query_start: str) -> list[int]:
    """Pids of server backends blocked on a lock while running a query that starts with ``query_start``.

    >>> backends_waiting(db, "COPY")  # doctest: +SKIP
    [41235, 41236]
    """
    with db.cursor() as cur:
        cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s "
            "AND pid <> pg_backend_pid()",
            (query_start + "%",),
        )
        return [row[0] for row in cur.fetchall()]
