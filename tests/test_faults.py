"""Faults during work, injected for real: worker processes killed, backends terminated, the server
restarted, a client killed with SIGKILL. Nothing may be lost, duplicated or left hanging."""

import os
import re
import signal
import subprocess
import sys
import time

import dask
import numpy as np
import pytest
from chaos import in_background, own_cluster
from helpers import COMPILE, mlp

import dasktrain
import loaders
from dasktrain.errors import ConnectionLostError, NoWorkersError, SegmentFailedError
from dasktrain.testing import KillWorkerOn, backends_waiting, kill_worker_running, wait_until

SOURCE = "fit_digits_test"  # 397 rows in 2 segments


def _fit(db, client, **kwargs):
    options = dict(
        x="x", y="y", db=db, client=client, compile=COMPILE, iterations=6, normalizing_const=16.0, progress=False
    )
    options.update(kwargs)
    return dasktrain.fit("fit_digits_train", mlp(), **options)


def _staging_tables(db):
    with db.cursor() as cur:
        cur.execute(r"SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE 'dasktrain\_staging\_%'")
        return sorted(r[0] for r in cur.fetchall())


def _rows_and_distinct(db, table):
    with db.cursor() as cur:
        cur.execute(f"SELECT count(*), count(DISTINCT (id, rank)) FROM {table}")
        return cur.fetchone()


# -- a worker killed by PID -------------------------------------------------------------------------


@pytest.mark.slow
def test_fit_survives_a_worker_killed_mid_round(db, digits):
    with own_cluster() as (_, client):
        baseline = _fit(db, client, validation=SOURCE)
        killer = in_background(lambda: kill_worker_running(client, "train-replica-3-"))
        faulted = _fit(db, client, validation=SOURCE)
        killer.join()
    assert killer.error is None
    # Every round merged every row exactly once, and round 3 was run again once.
    assert [h["rows"] for h in faulted.history] == [1400] * 6
    assert [h["retries"] for h in faulted.history] == [0, 0, 1, 0, 0, 0]
    accuracy = faulted.metric("accuracy", "validation")[-1]
    assert accuracy > 0.8 and abs(accuracy - baseline.metric("accuracy", "validation")[-1]) < 0.1


@pytest.mark.slow
@pytest.mark.parametrize("strategy", [dasktrain.EASGD(alpha=0.5, beta=0.9), dasktrain.Ensemble()], ids=repr)
def test_strategies_that_keep_segment_weights_survive_a_killed_worker(db, digits, strategy):
    with own_cluster() as (_, client):
        killer = in_background(lambda: kill_worker_running(client, "train-replica-2-"))
        result = _fit(db, client, iterations=4, strategy=strategy, validation=SOURCE)
        killer.join()
    assert killer.error is None
    assert [h["rows"] for h in result.history] == [1400] * 4 and result.history[1]["retries"] == 1
    assert len(result.members) == (2 if strategy.is_ensemble else 1)
    assert result.metric("accuracy", "validation")[-1] > 0.7


@pytest.mark.slow
def test_a_segment_that_kills_its_worker_every_time_ends_fit_naming_it(db, digits, table_name):
    with own_cluster() as (_, client):
        client.register_plugin(KillWorkerOn("train-replica-2-", suffix="-1"))  # segment 1, iteration 2
        with pytest.raises(SegmentFailedError) as info:
            _fit(db, client, iterations=3, retries=1, checkpoint=(db, table_name, "m"))
    message = str(info.value)
    assert re.search(r"iteration 2 failed 2 times: workers holding segment\(s\) (0, )?1 left the cluster", message)
    assert "last checkpoint is version 1 of 'm'" in message


@pytest.mark.slow
def test_losing_every_worker_ends_fit_with_a_clear_error(db, digits, table_name):
    with dask.config.set({"dasktrain.worker-timeout": 3}), own_cluster(n_workers=1) as (cluster, client):

        def stop_all_workers():
            wait_until(lambda: any(str(k).startswith("train-replica-2-") for k in _processing(client)))
            cluster.scale(0)

        stopper = in_background(stop_all_workers)
        with pytest.raises(NoWorkersError, match="no Dask worker is connected.*last checkpoint is version 1"):
            _fit(db, client, iterations=200, checkpoint=(db, table_name, "m"))
        stopper.join()
    assert stopper.error is None


def _processing(client):
    return [k for keys in client.processing().values() for k in keys]


@pytest.mark.slow
def test_predict_table_writes_each_segment_once_when_a_worker_dies_after_committing(db, trained, table_name, tmp_path):
    marker = tmp_path / "killed"
    with own_cluster() as (_, client):
        client.register_plugin(KillWorkerOn("_score_and_write", state="memory", once_file=str(marker)))
        written = dasktrain.predict_table(db, "scoring_models", SOURCE, table_name, client=client, progress=False)
    assert marker.exists()  # a worker really died holding a committed segment's result
    assert written == 397 and _rows_and_distinct(db, table_name) == (397, 397)
    assert _staging_tables(db) == []


@pytest.mark.slow
def test_evaluate_gives_the_same_answer_when_a_worker_dies(db, client, trained, tmp_path):
    expected = dasktrain.evaluate(db, "scoring_models", SOURCE, name="digits_mlp", client=client)
    marker = tmp_path / "killed"
    with own_cluster() as (_, own):
        own.register_plugin(KillWorkerOn("_evaluate_partition", state="memory", once_file=str(marker)))
        result = dasktrain.evaluate(db, "scoring_models", SOURCE, name="digits_mlp", client=own)
    assert marker.exists()
    assert result["rows"] == expected["rows"] == 397
    assert result["loss"] == pytest.approx(expected["loss"], rel=1e-6)
    assert result["accuracy"] == expected["accuracy"]


# -- backends terminated ----------------------------------------------------------------------------


def _blocked_read(db, client):
    """Start reading fit_digits_train while its leaves are locked: the segment COPYs wait on the lock.

    Returns the frame too: it keeps the read's shared snapshot alive.
    """
    ddf = dasktrain.read_table(db, "fit_digits_train")
    locker = db.connection()
    with locker.cursor() as cur:
        cur.execute("LOCK TABLE fit_digits_train IN ACCESS EXCLUSIVE MODE")
    return ddf, client.compute(ddf), locker


def _terminate(db, pids):
    with db.cursor() as cur:
        for pid in pids:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_read_whose_backends_are_terminated_is_retried(db, client, digits, caplog):
    _frame, future, locker = _blocked_read(db, client)
    try:
        _terminate(db, wait_until(lambda: len(p := backends_waiting(db, "COPY")) >= 2 and p))
    finally:
        locker.rollback()
        locker.close()
    frame = future.result()
    assert sorted(frame["id"]) == list(range(1400))
    assert "shared snapshot is gone" not in caplog.text


def test_a_read_that_keeps_losing_its_connection_ends_with_the_servers_reason(db, client, digits):
    _frame, future, locker = _blocked_read(db, client)
    stop = []

    def keep_terminating():
        while not stop:
            _terminate(db, backends_waiting(db, "COPY"))
            time.sleep(0.02)

    terminator = in_background(keep_terminating)
    try:
        lost = "Reading segment [01] failed: the database connection broke"
        with pytest.raises(ConnectionLostError, match=lost) as info:
            future.result()
        # The server's own reason, not psycopg2's "connection already closed" from a failed rollback.
        assert re.search("terminating connection|server closed the connection", str(info.value))
        assert "already closed" not in str(info.value)
    finally:
        stop.append(True)
        terminator.join()
        locker.rollback()
        locker.close()


# -- the server restarted during a checkpoint -------------------------------------------------------


@pytest.fixture
def own_server(tmp_path):
    """A second embedded server, so that restarting it disturbs no other test."""
    from pgserver._commands import pg_ctl

    from dasktrain.io._embedded import _servers, embedded_dsn

    dsn = embedded_dsn(tmp_path / "pg", announce=False)
    server = _servers[(tmp_path / "pg").resolve()]
    yield dasktrain.connect(dsn), lambda *args: pg_ctl(["-w", *args], pgdata=server.pgdata, user=server.system_user)
    pg_ctl(["-w", "stop", "-m", "immediate"], pgdata=server.pgdata, user=server.system_user)


@pytest.mark.slow
def test_a_server_restart_during_a_checkpoint_is_ridden_out(own_server, client, caplog):
    db, pg_ctl = own_server
    x, y = loaders.read_digits()
    loaders.write_arrays(db, "digits", x[:1400], y[:1400], segments=2)

    def restart_during_the_second_checkpoint():
        wait_until(lambda: _checkpoints(db), timeout=120)
        locker = db.connection()  # holds the next save at its LOCK TABLE ...
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE ck_summary IN ACCESS EXCLUSIVE MODE")
        wait_until(lambda: backends_waiting(db, "LOCK TABLE"))
        pg_ctl("restart", "-m", "fast")  # ... and the restart breaks it mid-transaction

    blip = in_background(restart_during_the_second_checkpoint)
    with caplog.at_level("WARNING", logger="dasktrain"):
        result = dasktrain.fit(
            "digits", mlp(), x="x", y="y", db=db, client=client, compile=COMPILE, iterations=4,
            normalizing_const=16.0, checkpoint=(db, "ck", "m"), progress=False,
        )  # fmt: skip
    blip.join()
    assert blip.error is None and "retrying" in caplog.text
    assert len(result.history) == 4
    assert _checkpoints(db) == [3, 4]  # every checkpoint was saved; the last two are kept


def _checkpoints(db, table="ck"):
    try:
        return [m["version"] for m in dasktrain.list_models(db, table)]
    except dasktrain.errors.DasktrainError:
        return []


# -- a client killed with SIGKILL -------------------------------------------------------------------


@pytest.mark.slow
def test_a_killed_predict_leaves_staging_that_the_next_run_cleans_up(db, client, trained, table_name):
    x, y = loaders.read_digits()
    source = f"{table_name}_src"
    loaders.write_arrays(db, source, np.tile(x, (2, 1, 1)), np.tile(y, 2), segments=2)
    command = [
        sys.executable, "-m", "dasktrain.cli", "predict", "--dsn", db.dsn, "--scheduler", client.scheduler.address,
        "--model-table", "scoring_models", "--source", source, "--output", table_name, "--batch-size", "1", "--quiet",
    ]  # fmt: skip
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        left = wait_until(lambda: _staging_tables(db), timeout=120)
    finally:
        job.send_signal(signal.SIGKILL)
        job.wait()
    assert left == _staging_tables(db)  # a killed client leaves its staging table behind
    written = dasktrain.predict_table(db, "scoring_models", source, table_name, client=client, progress=False)
    assert written == 2 * 1797 and _rows_and_distinct(db, table_name) == (3594, 3594)
    assert _staging_tables(db) == []


# -- the embedded server and signals ----------------------------------------------------------------

_USE_SERVER = "import time, dasktrain; dasktrain.connect(); print('ready', flush=True); time.sleep(60)"


def _server_pid(data_dir):
    return int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])


def _start_user(data_dir):
    env = {**os.environ, "DASKTRAIN_DATA_DIR": str(data_dir)}
    env.pop("DASKTRAIN_DSN", None)
    user = subprocess.Popen([sys.executable, "-c", _USE_SERVER], env=env, stdout=subprocess.PIPE, text=True)
    assert user.stdout.readline().strip() == "ready"
    return user, env


@pytest.mark.slow
def test_sigterm_stops_the_embedded_server(tmp_path):
    import psutil

    user, _ = _start_user(tmp_path)
    pid = _server_pid(tmp_path)
    user.send_signal(signal.SIGTERM)
    user.wait(timeout=60)
    wait_until(lambda: not psutil.pid_exists(pid), timeout=30)


@pytest.mark.slow
def test_a_stale_pid_file_left_by_sigkill_does_not_keep_the_server_running(tmp_path):
    import psutil

    user, env = _start_user(tmp_path)
    pid = _server_pid(tmp_path)
    user.kill()  # SIGKILL: no exit handler runs, the pid stays in .handle_pids.json
    user.wait()
    assert psutil.pid_exists(pid)
    subprocess.run([sys.executable, "-c", "import dasktrain; dasktrain.connect()"], env=env, check=True)
    wait_until(lambda: not psutil.pid_exists(pid), timeout=30)


# -- a worker joining mid-fit -----------------------------------------------------------------------


def _fit_while_a_worker_joins(db, table_name, **options):
    """A fit that starts on one worker; a second joins during its first checkpoint."""
    locker = db.connection()
    with locker.cursor() as cur:  # the checkpoint table exists, and its first save waits until a worker has joined
        cur.execute(f"LOCK TABLE {table_name}_summary IN ACCESS EXCLUSIVE MODE")

    def add_a_worker_during_the_first_checkpoint():
        wait_until(lambda: backends_waiting(db, "LOCK TABLE"), timeout=120)
        cluster.scale(2)
        client.wait_for_workers(2)
        locker.rollback()

    with own_cluster(n_workers=1) as (cluster, client):
        grower = in_background(add_a_worker_during_the_first_checkpoint)
        joined = _fit(db, client, checkpoint=(db, table_name, "m"), **options)
        grower.join()
    locker.close()
    assert grower.error is None, grower.error
    return joined


@pytest.mark.slow
def test_a_replica_moves_to_a_worker_that_joins_with_its_optimizer_state(db, digits, trained, table_name):
    start = mlp(seed=5).get_weights()
    options = dict(iterations=4, fit={"shuffle": False, "batch_size": 64}, initial_weights=start, replicas=2)
    with own_cluster(n_workers=1) as (_, client):
        alone = _fit(db, client, **options)
    dasktrain.save_model(db, table_name, trained, name="other")
    joined = _fit_while_a_worker_joins(db, table_name, **options)
    moved = [h["moved"] for h in joined.history]
    assert moved[0] == moved[2] == moved[3] == [] and len(moved[1]) == 1
    # The moved replica carried its Adam moments: training is exactly what one worker would do.
    for a, b in zip(alone.weights, joined.weights, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_by_default_a_worker_that_joins_trains_a_replica_of_its_own(db, digits, trained, table_name):
    dasktrain.save_model(db, table_name, trained, name="other")
    joined = _fit_while_a_worker_joins(db, table_name, iterations=4)
    assert [h["replicas"] for h in joined.history] == [1, 2, 2, 2]
    assert [h["rows"] for h in joined.history] == [1400] * 4 and joined.num_replicas == 2


def test_the_workers_are_seen_while_the_client_refreshes_its_cached_view(client):
    """The client's periodic update replaces its cached scheduler_info with one that lists no workers.

    Read through that cache, a busy machine saw every worker of a fit as lost and retried the round;
    ``cluster_workers`` asks the scheduler and must see both workers every time.
    """
    import threading

    from dasktrain.runtime._guard import cluster_workers

    stop = threading.Event()

    def refresh_like_the_client_does():
        while not stop.is_set():
            client.sync(client._update_scheduler_info, n_workers=0)

    refresher = threading.Thread(target=refresh_like_the_client_does, daemon=True)
    refresher.start()
    try:
        seen = [len(cluster_workers(client)) for _ in range(200)]
    finally:
        stop.set()
        refresher.join()
    assert set(seen) == {2}
