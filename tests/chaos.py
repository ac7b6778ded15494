"""Helpers of the reliability tests: a cluster of their own, background faults, racing processes.

The fault injectors themselves are public, in :mod:`dasktrain.testing`.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np
from distributed import Client, LocalCluster


@contextlib.contextmanager
def own_cluster(n_workers: int = 2):
    """A LocalCluster of worker processes for one test (faults must not touch the shared one)."""
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
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
    import keras

    import dasktrain

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])  # load_architecture builds what it stores
    db = dasktrain.connect(dsn)
    barrier.wait()
    try:
        return dasktrain.load_architecture(db, table, model.to_json())
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def hyperband_in_process(dsn: str, state_table: str) -> None:
    """A Hyperband search with its state saved in ``state_table``, on a cluster of its own (killed by the test)."""
    from distributed import Client, LocalCluster
    from search_spaces import HYPERBAND

    import dasktrain

    db = dasktrain.connect(dsn)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with Client(cluster) as client:
            dasktrain.hyperband(**HYPERBAND, db=db, client=client, checkpoint=(db, state_table), progress=False)
