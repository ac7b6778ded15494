"""After any fit, faulted or not, the scheduler holds nothing of it (issue 22): a replica pinned to a worker that
was killed no longer waits there for good with its re-read segments and the scattered model."""

import gc

import pytest
from chaos import own_cluster
from helpers import COMPILE, frame, mlp

import dasktrain
from dasktrain.errors import SegmentFailedError
from dasktrain.testing import KillWorkerOn, wait_until


def _tasks(client) -> dict:
    return client.run_on_scheduler(lambda dask_scheduler: {str(k): ts.state for k, ts in dask_scheduler.tasks.items()})


def _nothing_left(client) -> None:
    gc.collect()
    try:  # the scheduler forgets released tasks within moments; a leak stays (in 'no-worker', say)
        wait_until(lambda: not _tasks(client), timeout=10)
    except TimeoutError:
        pytest.fail(f"the fit left tasks on the scheduler: {_tasks(client)}")
    assert client.who_has() == {}


@pytest.mark.slow
def test_a_fit_that_lost_a_worker_leaves_nothing_on_the_cluster(tmp_path):
    kw = dict(x="x", y="y", compile=COMPILE, iterations=3, progress=False)
    with own_cluster() as (_, client):
        client.register_plugin(KillWorkerOn("train-replica-2-", once_file=str(tmp_path / "killed")))
        result = dasktrain.fit(frame([300, 300]), mlp(), client=client, **kw)
        assert [h["retries"] for h in result.history] == [0, 1, 0]
        _nothing_left(client)
        client.register_plugin(KillWorkerOn("train-replica-2-"))  # every time: the fit fails
        with pytest.raises(SegmentFailedError):
            dasktrain.fit(frame([300, 300]), mlp(), client=client, retries=1, **kw)
        _nothing_left(client)
