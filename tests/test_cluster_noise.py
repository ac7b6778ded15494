"""What a cluster prints that is not the job's: Ctrl-C in workers, closed dashboard tabs, workers closing."""

import logging
import os
import signal
import sys
import time
import types

import pytest

import dasktrain
from dasktrain.runtime import _quiet


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def records():
    """A handler collecting what some loggers emit: ``records(name, ...)`` attaches it to them."""
    handler, loggers = Records(), []

    def attach(*names):
        for name in names:
            logging.getLogger(name).addHandler(handler)
            loggers.append(logging.getLogger(name))
        return handler.records

    yield attach
    for logger in loggers:
        logger.removeHandler(handler)


def closed_websocket_error():
    """The exception Tornado raises writing to a dashboard tab that was closed: WebSocketClosedError from
    StreamClosedError."""
    from tornado.iostream import StreamClosedError
    from tornado.websocket import WebSocketClosedError

    try:
        try:
            raise StreamClosedError()
        except StreamClosedError:
            raise WebSocketClosedError() from None
    except WebSocketClosedError as exc:
        return exc


def test_a_closed_dashboard_tab_leaves_no_traceback_and_other_errors_still_show(records):
    seen = records(*_quiet.CONNECTION_LOGGERS)
    closed = closed_websocket_error()
    for name in _quiet.CONNECTION_LOGGERS:
        logging.getLogger(name).error("Task exception was never retrieved", exc_info=(type(closed), closed, None))
    assert seen == []
    chained = closed.__context__  # the StreamClosedError inside, as an Uncaught exception GET /status/ws has it
    logging.getLogger("tornado.application").error("Uncaught exception", exc_info=(type(chained), chained, None))
    assert seen == []
    other = ValueError("a real error")
    logging.getLogger("asyncio").error("Task exception was never retrieved", exc_info=(ValueError, other, None))
    assert [r.exc_info[1] for r in seen] == [other]


def test_ctrl_c_before_a_dask_call_started_leaves_no_name_error(records):
    seen = records("tornado.application")

    def sync():  # as distributed.utils.sync declares it: set only once its coroutine has run
        future: object

        def cancel():
            if future is not None:  # noqa: F821 (unset on purpose: the race)
                pass

        return cancel

    try:
        sync()()
    except NameError as exc:
        race = exc
    message = f"Exception in callback functools.partial({sync()!r})"
    logging.getLogger("tornado.application").error(message, exc_info=(NameError, race, None))
    assert seen == []
    logging.getLogger("tornado.application").error("Exception in callback f", exc_info=(NameError, race, None))
    assert len(seen) == 1


def test_a_missed_heartbeat_is_quiet_only_while_the_worker_closes(monkeypatch):
    class Worker:
        def __init__(self, status):
            self.status = type("Status", (), {"name": status})()

    quiet = _quiet._WhileClosing()
    message = "Failed to communicate with scheduler during heartbeat."
    record = logging.LogRecord("distributed.worker", logging.ERROR, "", 0, message, None, None)
    monkeypatch.setattr(_quiet, "_workers", lambda: [Worker("closing_gracefully")])
    assert not quiet.filter(record)
    monkeypatch.setattr(_quiet, "_workers", lambda: [Worker("running")])
    assert quiet.filter(record)


def test_a_cancelled_task_is_quiet_even_before_its_worker_closes(monkeypatch):
    """Ctrl-C cancels the round's tasks while the workers still run: this once broke the CLI's one line."""
    monkeypatch.setattr(_quiet, "_workers", lambda: [])
    task = "<Task cancelled name=\"execute('train-replica-2-0-43e5f0a7-1')\">"
    message = f"Async instruction for {task} ended with CancelledError"
    record = logging.LogRecord("distributed.worker.state_machine", logging.WARNING, "", 0, message, None, None)
    assert not _quiet._WhileClosing().filter(record)
    other = logging.LogRecord("distributed.worker", logging.WARNING, "", 0, "Compute Failed", None, None)
    assert _quiet._WhileClosing().filter(other)


def test_workers_of_a_local_cluster_leave_ctrl_c_to_the_client():
    from distributed import Client

    with dasktrain.cluster(n_workers=1, dashboard_address=":0") as local, Client(local) as client:
        (pid,) = client.run(os.getpid).values()
        os.kill(pid, signal.SIGINT)  # what a terminal's Ctrl-C sends every process of its group
        time.sleep(2)
        assert list(client.run(os.getpid).values()) == [pid]  # the same process, still serving


def slow_teardown(seconds: float) -> None:
    """Make this process's teardown take ``seconds``, as tearing down Keras and TensorFlow does on a busy machine."""
    module = types.ModuleType("dasktrain_test_slow_teardown")
    source = ["import time", "class Slow:", "    def __del__(self, sleep=time.sleep):", f"        sleep({seconds})",
              "slow = Slow()"]  # fmt: skip
    exec("\n".join(source), module.__dict__)
    sys.modules[module.__name__] = module


@pytest.mark.slow
def test_closing_your_own_cluster_after_a_fit_does_not_kill_workers(db, digits, records):
    """A worker process whose teardown outlasts the nanny's 4 s (Keras and TensorFlow on a busy machine) was
    killed with a warning at every close; one whose worker has closed now exits at once."""
    from distributed import Client, LocalCluster
    from helpers import COMPILE, mlp

    warnings = records("distributed.nanny")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as own:
        with Client(own) as client:
            dasktrain.fit("fit_digits_train", mlp(), x="x", y="y", compile=COMPILE, iterations=1, db=db,
                          client=client, normalizing_const=16.0, progress=False)  # fmt: skip
            client.run(slow_teardown, 6.0)
        started = time.monotonic()
    assert not [r.getMessage() for r in warnings if "still alive" in r.getMessage()]
    assert time.monotonic() - started < 4.0
