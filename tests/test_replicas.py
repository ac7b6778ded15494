"""Replicas, not segments: how many models train each round follows the workers, not the table's layout."""

import logging

import numpy as np
import pytest
from chaos import in_background, own_cluster
from helpers import COMPILE, frame, mlp

import dasktrain
import loaders
from dasktrain import cli
from dasktrain.errors import DataError
from dasktrain.models._fit_state import ReplicaState
from dasktrain.models._model_store import load_result
from dasktrain.testing import kill_worker_running
from dasktrain.train._replicas import group_segments, home, parse_replicas
from dasktrain.train._resume import mean_state
from dasktrain.train._segment_data import ConcatRows

MANY = "replicas_digits_16"  # the digits' 1,400 training rows in 16 segments
ONE = "replicas_digits_1"  # ... and in one


@pytest.fixture(scope="module")
def tables(db, digits):
    x, y = digits
    loaders.write_arrays(db, MANY, x[:1400], y[:1400], segments=16, if_exists="replace")
    loaders.write_arrays(db, ONE, x[:1400], y[:1400], segments=1, if_exists="replace")
    yield
    from dasktrain.testing import drop_tables

    drop_tables(db, MANY)
    drop_tables(db, ONE)


def train(db, client, data=MANY, **kwargs):
    options = dict(
        x="x", y="y", db=db, client=client, compile=COMPILE, iterations=2, normalizing_const=16.0, progress=False
    )
    options.update(kwargs)
    return dasktrain.fit(data, options.pop("model", None) or mlp(), **options)


# -- planning (no cluster) ------------------------------------------------------------------------


def test_groups_even_out_rows_and_do_not_depend_on_where_segments_were_read():
    rows = [int(r) for r in np.random.default_rng(1).integers(50, 150, 64)]
    here = group_segments(rows, None, ["w:1", "w:2"], ["w:1"] * 64)
    there = group_segments(rows, None, ["w:1", "w:2"], ["w:1", "w:2"] * 32)
    assert here == there and len(here) == 2
    assert sorted(i for g in here for i in g) == list(range(64))  # every segment in exactly one replica
    sums = [sum(rows[i] for i in g) for g in here]
    assert abs(sums[0] - sums[1]) <= max(rows)
    assert len(group_segments(rows, 5, ["w:1", "w:2"], ["w:1"] * 64)) == 5
    assert group_segments(rows[:3], None, ["w:1", "w:2", "w:3", "w:4"], ["w:1"] * 3) == [(0,), (1,), (2,)]


def test_replicas_go_where_their_rows_are_and_spread_over_the_workers():
    groups = [(0, 1), (2, 3), (4, 5), (6, 7)]
    holders = ["b:1", "b:1", "b:1", "b:1", "a:1", "a:1", "c:1", "c:1"]
    placed = home(groups, [10] * 8, holders, ["a:1", "b:1"])
    assert [r.worker for r in placed] == ["b:1", "b:1", "a:1", "a:1"]  # at most 2 per worker; c:1 is gone


def test_segments_cached_on_disk_are_grouped_and_homed_host_by_host():
    holders = ["tcp://h1:1", "tcp://h1:2", "tcp://h2:1", "tcp://h2:1"]
    groups = group_segments([10, 10, 10, 10], None, ["tcp://h1:1", "tcp://h2:1"], holders, on_disk=True)
    placed = home(groups, [10] * 4, holders, ["tcp://h1:1", "tcp://h2:1"], on_disk=True)
    for replica in placed:
        assert {holders[i].rsplit(":", 1)[0] for i in replica.segments} == {replica.worker.rsplit(":", 1)[0]}
    with pytest.raises(DataError, match="2 hosts hold segments: pass replicas=2"):
        group_segments([10] * 4, 1, ["tcp://h1:1"], holders, on_disk=True)


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "segment", "all"])
def test_bad_replicas_values_are_refused_before_any_work(bad):
    with pytest.raises(DataError, match="Expected replicas=None, a positive whole number or 'segments'"):
        dasktrain.fit("no_such_table", mlp(), x="x", y="y", compile=COMPILE, iterations=1, replicas=bad)


def test_the_command_line_refuses_a_bad_replicas_value(capsys):
    with pytest.raises(SystemExit):
        cli.main(["fit", "--replicas", "many", "--data", "t"])
    assert "replicas='many'" in capsys.readouterr().err
    assert parse_replicas("3") == 3 and parse_replicas("Segments") == "segments"


def test_several_segments_read_as_one_stream_in_any_order():
    parts = [np.arange(i * 10, i * 10 + 10).reshape(5, 2) for i in range(3)]
    rows = ConcatRows(parts)
    order = np.random.default_rng(0).permutation(15)
    np.testing.assert_array_equal(rows[order], np.concatenate(parts)[order])
    np.testing.assert_array_equal(rows[3:12], np.concatenate(parts)[3:12])
    assert rows.reshape(15, 2, 1).shape == (15, 2, 1)


def test_a_resumed_optimizer_state_is_the_mean_of_the_saved_ones():
    states = [ReplicaState(4, [np.array(10, np.int64), np.full(3, k, np.float32)]) for k in (1.0, 2.0, 6.0)]
    mean = mean_state(states)
    assert mean.optimizer[0].dtype == np.int64 and int(mean.optimizer[0]) == 10
    np.testing.assert_allclose(mean.optimizer[1], [3.0, 3.0, 3.0])


# -- on a cluster ------------------------------------------------------------------------------------


def test_sixteen_segments_on_two_workers_train_two_replicas_over_every_row(db, client, tables):
    result = train(db, client, validation="fit_digits_test")
    assert result.num_segments == 16 and result.num_replicas == 2 and result.num_rows == 1400
    assert [h["replicas"] for h in result.history] == [2, 2]
    assert [h["rows"] for h in result.history] == [1400, 1400]  # every row once per round
    assert "segments=16, replicas=2" in repr(result)
    per_segment = train(db, client, replicas="segments", iterations=1)
    assert per_segment.num_replicas == 16 and per_segment.history[0]["rows"] == 1400


def test_a_replica_trains_its_segments_as_one_shuffled_stream(db, client, tables):
    """One replica over 16 segments is plain Keras on their rows, one permutation of all of them per epoch."""
    import keras

    start = mlp(seed=4).get_weights()
    result = train(db, client, replicas=1, strategy=dasktrain.Averaging(), initial_weights=start, seed=7,
                   fit={"batch_size": 50})  # fmt: skip
    frame = dasktrain.read_table(db, MANY, columns=["x", "y"]).compute()
    x, y = dasktrain.to_arrays(frame, x="x", y="y")
    x = x.astype(np.float32) / 16
    model = mlp()
    model.set_weights(start)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    for iteration in (1, 2):
        order = np.random.default_rng([7, 0, iteration]).permutation(len(x))
        model.fit(x[order], y[order], batch_size=50, shuffle=False, epochs=1, verbose=0)
    for ours, keras_own in zip(result.weights, model.get_weights(), strict=True):
        np.testing.assert_allclose(ours, keras_own, rtol=1e-4, atol=1e-5)


def test_segments_as_replicas_is_one_replica_per_segment(db, client, tables):
    """replicas="segments" (MADlib's way) equals as many replicas as segments, each holding one."""
    start = mlp(seed=2).get_weights()
    options = dict(initial_weights=start, fit={"shuffle": False})
    per_segment = train(db, client, replicas="segments", **options)
    sixteen = train(db, client, replicas=16, **options)
    assert [h["replicas"] for h in per_segment.history] == [16, 16]
    for a, b in zip(per_segment.weights, sixteen.weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_one_segment_table_trains_on_both_workers(db, client, tables):
    result = train(db, client, data=ONE)
    assert result.num_replicas == 2 and result.num_segments == 2 and result.num_rows == 1400
    assert result.history[-1]["rows"] == 1400
    in_memory = train(db, client, data=frame([300]), normalizing_const=1.0)
    assert in_memory.num_replicas == 2 and in_memory.num_rows == 300


def test_resume_with_another_number_of_replicas_starts_from_their_mean_state(
    db, client, tables, table_name, caplog
):
    train(db, client, replicas=4, checkpoint=(db, table_name, "m"))
    with caplog.at_level(logging.WARNING, logger="dasktrain"):
        resumed = train(db, client, iterations=4, checkpoint=(db, table_name, "m"), resume=True)
    assert "holds the state of 4 replicas and this fit trains 2" in caplog.text
    assert [h["replicas"] for h in resumed.history] == [4, 4, 2, 2]
    assert resumed.training_loss[-1] < resumed.training_loss[0]
    assert load_result(db, table_name, "m").num_replicas == 2
    train(db, client, replicas=4, strategy=dasktrain.Ensemble(), checkpoint=(db, table_name, "e"))
    with pytest.raises(DataError, match="ensemble of 4 members.*resume it with replicas=4"):
        train(db, client, iterations=3, strategy=dasktrain.Ensemble(), checkpoint=(db, table_name, "e"), resume=True)


@pytest.mark.slow
def test_a_lost_worker_is_retried_with_every_row_counted_once(db, tables):
    with own_cluster() as (_, client):
        killer = in_background(lambda: kill_worker_running(client, "train-replica-2-"))
        result = train(db, client, iterations=4)
        killer.join()
    assert killer.error is None
    assert [h["rows"] for h in result.history] == [1400] * 4
    assert result.history[1]["retries"] == 1
    # The retried round keeps its replicas; a later round may train one fewer until the worker is back.
    replicas = [h["replicas"] for h in result.history]
    assert replicas[:2] == [2, 2] and set(replicas) <= {1, 2}
