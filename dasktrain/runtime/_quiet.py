"""Keep noise that means nothing to a user out of the terminal, in the client and in every worker.

- TensorFlow's start-up. Importing TensorFlow prints lines from C++ before its logging is set up
  (``oneDNN custom operations are on``, ``Could not find cuda drivers``, ``rebuild TensorFlow with
  the appropriate compiler flags``), and on a machine without GPUs its first device query logs
  ``failed call to cuInit``; ``TF_CPP_MIN_LOG_LEVEL`` cannot stop the first kind. So the first
  ``import tensorflow`` in a process runs with file descriptor 2 sent to a temporary file, and
  every line that is not such noise is written back to stderr afterwards.
- A dashboard tab closed while the page loads or updates: Tornado and Bokeh log the write to the
  closed connection as an error with its traceback (:func:`quiet_closed_connections`).
- Ctrl-C while a Dask client waits: when it comes before the awaited coroutine has started,
  Dask's ``sync()`` schedules a ``cancel`` that reads a variable not yet set, and Tornado logs the
  ``NameError`` with its traceback after the command's own message (:class:`SyncCancelRace`).
- A worker closing with its cluster: its heartbeat may race the scheduler's removing it
  ("Failed to communicate with scheduler during heartbeat" and 30 lines of traceback), a task it
  was running when the cluster closed (after Ctrl-C) ends "with CancelledError", and a process
  that has loaded Keras and TensorFlow takes seconds to tear its modules down, so the nanny warns
  "Worker process still alive ... killing" (:func:`quiet_worker_exit`).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.abc
import importlib.util
import logging
import multiprocessing
import os
import re
import sys
import tempfile

#: Lines TensorFlow writes while it loads: absl's INFO/WARNING lines and its CPU-feature advice.
NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} \d\d:\d\d:\d\d"
    r"|To enable the following instructions: .* rebuild TensorFlow)"
)


def install() -> None:
    """Quiet the first ``import tensorflow`` of this process (a no-op if it already happened).

    Also sets ``TF_CPP_MIN_LOG_LEVEL`` unless the user did: 2 (errors only), or 3 on a machine
    without GPUs, where TensorFlow's one error line is ``failed call to cuInit``.
    """
    if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2" if _may_have_gpus() else "3"
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())
    quiet_closed_connections()
    quiet_cancelled_tasks()  # in every process: a worker may run in this one (a cluster of threads)
    if multiprocessing.parent_process() is not None:  # a worker process (a nanny's child), or another child
        quiet_worker_exit()


def _may_have_gpus() -> bool:
    """Cheaply, without running nvidia-smi at every import: GPUs listed, or an NVIDIA driver loaded."""
    from ._gpu import visible_gpus

    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return bool(visible_gpus())
    return os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/nvidiactl")


@contextlib.contextmanager
def filtered_stderr(noise: re.Pattern = NOISE):
    """Send file descriptor 2 to a temporary file meanwhile; then write back what is not ``noise``.

    >>> with filtered_stderr():
    ...     print("kept", file=sys.stderr)  # doctest: +SKIP
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines(True) if not noise.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        # The module is loaded as the real loader would; only its spec points back at it afterwards.
        module.__loader__ = module.__spec__.loader = self.loader
        with filtered_stderr():
            self.loader.exec_module(module)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once, through the other finders, and quiets the loading of it."""

    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


#: Loggers that report a write to a connection the other end closed: asyncio's "Task exception was
#: never retrieved", Tornado's uncaught exceptions and callbacks, Bokeh's server and its callbacks.
CONNECTION_LOGGERS = (
    "asyncio",
    "tornado.application",
    "tornado.general",
    "bokeh.server.views.ws",
    "bokeh.server.protocol_handler",
    "bokeh.server.session",
    "bokeh.util.tornado",
)
#: Tornado's exceptions for a closed peer (matched by name: Tornado need not be imported here).
CLOSED = {"WebSocketClosedError", "StreamClosedError"}


class ClosedConnectionFilter(logging.Filter):
    """Drops records whose exception (or one it was raised from) says the other end hung up.

    >>> f = ClosedConnectionFilter()
    >>> record = logging.LogRecord("asyncio", logging.ERROR, "", 0, "Task exception was never retrieved",
    ...                            None, (ValueError, ValueError("x"), None))
    >>> f.filter(record)
    True
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        seen = set()
        while exc is not None and id(exc) not in seen:
            seen.add(id(exc))
            if any(cls.__name__ in CLOSED for cls in type(exc).__mro__):
                return False
            exc = exc.__cause__ or exc.__context__
        return True


class SyncCancelRace(logging.Filter):
    """Drops the ``NameError`` of Dask's ``sync.<locals>.cancel``, run after Ctrl-C (distributed 2026.8).

    ``distributed.utils.sync`` declares ``future`` without a value and sets it once its coroutine
    runs; Ctrl-C before then schedules ``cancel()``, which reads it. The interrupt itself is
    handled; only this traceback would follow the command's message.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, NameError) and "sync.<locals>.cancel" in record.getMessage())


def quiet_closed_connections() -> None:
    """A browser tab on the dashboard closed early is not an error of the job: keep its traceback out.

    Only records about a closed connection (and Dask's ``sync`` race on Ctrl-C) are dropped;
    every other error of these loggers shows.
    """
    for name in CONNECTION_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ClosedConnectionFilter) for f in logger.filters):
            logger.addFilter(ClosedConnectionFilter())
    tornado = logging.getLogger("tornado.application")
    if not any(isinstance(f, SyncCancelRace) for f in tornado.filters):
        tornado.addFilter(SyncCancelRace())


class _WhileClosing(logging.Filter):
    """Drops what a worker says of its own closing: a heartbeat the scheduler no longer answers (it removed
    the worker meanwhile), and a running task cancelled (by the close, or by the client on Ctrl-C, which
    cancels it before the worker starts closing: a cancelled task is never news)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith("Async instruction for") and message.endswith("ended with CancelledError"):
            return False
        if not message.startswith("Failed to communicate with scheduler during heartbeat"):
            return True
        return not any(_closing(worker) for worker in _workers())


#: The loggers of a worker's messages about its own closing.
WORKER_LOGGERS = ("distributed.worker", "distributed.worker.state_machine")


def _workers() -> list:
    worker_module = sys.modules.get("distributed.worker")
    return list(worker_module.Worker._instances) if worker_module is not None else []


def _closing(worker) -> bool:
    return getattr(worker.status, "name", "") in ("closing", "closing_gracefully", "closed", "stopping", "stopped")


#: The name Dask's nanny gives the worker processes it starts.
NANNY_CHILD = "Dask Worker process (from Nanny)"


def quiet_cancelled_tasks() -> None:
    """Drop, in this process, a worker's word that a task it ran was cancelled (never news: it was asked for)."""
    for name in WORKER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _WhileClosing) for f in logger.filters):
            logger.addFilter(_WhileClosing())


def quiet_worker_exit() -> None:
    """In a Dask worker process: no heartbeat traceback or cancelled task while it closes, and a prompt exit.

    Once the worker of a nanny's process has closed (its directory removed, its results sent),
    the process only tears down its modules, which takes seconds with Keras and TensorFlow
    loaded: longer than the nanny waits (4 s) on a busy machine, which then kills it with a
    warning. So, after the exit handlers registered since dasktrain was imported (TensorFlow's
    among them) have run, such a process flushes its output and exits (status 0, as a closed
    worker's process does). A process whose worker did not close, or that is no nanny's worker,
    exits as usual.
    """
    quiet_cancelled_tasks()
    if not getattr(quiet_worker_exit, "registered", False):
        quiet_worker_exit.registered = True
        atexit.register(_exit_promptly)


def _exit_promptly() -> None:
    if multiprocessing.current_process().name != NANNY_CHILD or "keras" not in sys.modules:
        return
    if not all(getattr(w.status, "name", "") == "closed" for w in _workers()):  # a closed one may be gone
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


install()
