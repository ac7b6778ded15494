"""SlowMo (outer momentum on the round's pseudo-gradient), learning-rate rules, and exact resumes."""

import numpy as np
import pytest
from helpers import COMPILE, mlp

import dasktrain
from dasktrain.errors import DataError
from dasktrain.strategies import SlowMo


def _reference(centers, means, outer_lr, momentum, nesterov):
    """SlowMo's outer step written out in plain numpy, one round at a time."""
    velocity = np.zeros_like(centers[0])
    out = []
    center = centers[0]
    for mean in means:
        g = center.astype(np.float64) - mean
        velocity = momentum * velocity + g
        step = g + momentum * velocity if nesterov else velocity
        center = (center - outer_lr * step).astype(np.float32)
        out.append(center)
    return out


@pytest.mark.parametrize("nesterov", [True, False])
def test_the_outer_update_equals_a_numpy_reference_step_for_step(nesterov):
    rng = np.random.default_rng(0)
    start = rng.normal(size=(3, 4)).astype(np.float32)
    means = [rng.normal(size=(3, 4)).astype(np.float32) for _ in range(5)]
    strategy = SlowMo(outer_lr=0.7, momentum=0.9, nesterov=nesterov)
    center, state = [start], None
    for mean, expected in zip(means, _reference([start], means, 0.7, 0.9, nesterov), strict=True):
        center, state = strategy.update(center, [mean], state)
        np.testing.assert_allclose(center[0], expected, rtol=1e-6, atol=1e-6)
        assert center[0].dtype == np.float32 and state[0].dtype == np.float32


def test_without_momentum_or_scaling_it_is_exactly_averaging():
    rng = np.random.default_rng(1)
    previous, mean = [rng.normal(size=5).astype(np.float32)], [rng.normal(size=5).astype(np.float32)]
    center, _ = SlowMo(outer_lr=1, momentum=0, lr_scaling=None).update(previous, mean, None)
    np.testing.assert_array_equal(center[0], mean[0])


@pytest.mark.parametrize(
    "scaling, rates",
    [("sqrt", [0.002, 0.002]), ("linear", [0.004, 0.004]), (None, [0.001, 0.001])],
)
def test_learning_rate_rules(scaling, rates):
    strategy = SlowMo(lr_scaling=scaling, warmup=0)
    assert [strategy.inner_learning_rate(0.001, 4, i) for i in (1, 5)] == pytest.approx(rates)
    warm = SlowMo(lr_scaling="linear", warmup=3)
    assert [warm.inner_learning_rate(1.0, 5, i) for i in (1, 2, 3, 4)] == pytest.approx([2.0, 3.0, 4.0, 5.0])


@pytest.mark.parametrize(
    "params, match",
    [
        ({"momentum": 1.0}, "momentum in \\[0, 1\\)"),
        ({"outer_lr": 0}, "positive outer_lr"),
        ({"lr_scaling": "cubic"}, "lr_scaling"),
        ({"warmup": -1}, "warmup"),
    ],
)
def test_bad_parameters_are_refused(params, match):
    with pytest.raises(DataError, match=match):
        SlowMo(**params).validate()


def _fit(db, client, **kwargs):
    options = dict(
        x="x", y="y", db=db, client=client, compile=COMPILE, normalizing_const=16.0, progress=False,
        fit={"batch_size": 32},
    )  # fmt: skip
    options.update(kwargs)
    return dasktrain.fit("fit_digits_train", options.pop("model", None) or mlp(seed=4), **options)


def test_slowmo_without_momentum_trains_exactly_like_averaging(db, client, digits):
    start = mlp(seed=4).get_weights()
    runs = [
        _fit(db, client, iterations=2, strategy=s, initial_weights=start, seed=3)
        for s in (dasktrain.Averaging(), SlowMo(outer_lr=1, momentum=0, lr_scaling=None))
    ]
    for a, b in zip(runs[0].weights, runs[1].weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_default_strategy_learns_on_digits(db, client, digits):
    result = _fit(db, client, iterations=4, validation="fit_digits_test", seed=0)  # seeded: no flaky shuffles
    assert isinstance(result.strategy, SlowMo)
    assert result.metric("accuracy", "validation")[-1] > 0.85, result.metric("accuracy", "validation")


@pytest.mark.parametrize(
    "strategy, fit_params",
    [
        (SlowMo(), {"batch_size": 32}),
        (dasktrain.EASGD(alpha=0.5, beta=0.9), {"batch_size": 32}),
        (SlowMo(warmup=3), {"batch_size": 16}),  # with sync_every: each segment's place in its rows
    ],
    ids=["slowmo", "easgd", "slowmo-sync-every"],
)
def test_resume_restores_every_state_and_continues_exactly(db, client, digits, table_name, strategy, fit_params):
    start = mlp(seed=4).get_weights()
    sync_every = 5 if fit_params["batch_size"] == 16 else None
    common = dict(strategy=strategy, initial_weights=start, seed=11, fit=fit_params, sync_every=sync_every)
    straight = _fit(db, client, iterations=3, **common)
    checkpoint = (db, table_name, "m")
    _fit(db, client, iterations=2, checkpoint=checkpoint, **common)
    resumed = _fit(db, client, iterations=3, checkpoint=checkpoint, resume=True, **common)
    assert len(resumed.history) == 3
    for a, b in zip(straight.weights, resumed.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    if isinstance(strategy, SlowMo):
        for a, b in zip(straight.outer_state, resumed.outer_state, strict=True):
            np.testing.assert_array_equal(a, b)


def test_checkpoints_keep_each_segments_optimizer_state_and_pruning_removes_it(db, client, digits, table_name):
    from dasktrain.models._model_store import load_result

    _fit(db, client, iterations=3, checkpoint=(db, table_name, "m"), strategy=SlowMo(warmup=0))
    saved = load_result(db, table_name, "m")
    assert sorted(saved.replica_states) == [0, 1] and saved.outer_state is not None
    state = saved.replica_states[0]
    assert state.iteration == 3 and len(state.optimizer) == 2 + 2 * len(saved.weights)  # iteration, lr, m, v
    # The learning rate the segments used: Adam's 0.01 scaled by the 2 segments (the linear rule).
    assert float(state.optimizer[1]) == pytest.approx(0.02, rel=1e-6)
    with db.cursor() as cur:
        cur.execute(f"SELECT DISTINCT version FROM {table_name}_fit_state ORDER BY 1")
        assert [r[0] for r in cur.fetchall()] == [2, 3]  # the two kept checkpoints
    dasktrain.delete_model(db, table_name, "m")
    with db.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table_name}_fit_state")
        assert cur.fetchone()[0] == 0


def test_worker_threads_are_passed_to_jax_before_it_starts(monkeypatch):
    from dasktrain.train._worker import limit_threads

    monkeypatch.setenv("KERAS_BACKEND", "jax")
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    for variable in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(variable, raising=False)
    limit_threads(3)
    import os

    assert os.environ["XLA_FLAGS"] == (
        "--xla_dump_to=/tmp/x --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=3"
    )
    assert os.environ["OMP_NUM_THREADS"] == "3"


def test_short_rounds_report_the_row_weighted_metrics_of_their_minibatches(db, client, digits):
    result = _fit(db, client, iterations=3, sync_every=3, fit={"batch_size": 50}, strategy=SlowMo())
    assert all(0 < h["training"]["accuracy"] <= 1 and np.isfinite(h["training"]["loss"]) for h in result.history)
    assert result.training_loss[-1] < result.training_loss[0]


def test_slowmo_is_public():
    assert dasktrain.SlowMo is SlowMo and "SlowMo" in dasktrain.__all__
